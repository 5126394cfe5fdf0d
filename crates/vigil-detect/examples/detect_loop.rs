//! Replays the SigmaHQ regression events against every SigmaHQ rule (with the built-in
//! pipelines) for a few seconds and prints events/s: a loop to profile (`perf record`), not a
//! benchmark (that is `benches/detect.rs`). Each event is parsed from its JSON text
//! ([`JsonEvent::parse`]) as part of the work.
//!
//! `cargo run --release -p vigil-detect --example detect_loop -- [SECONDS] [pipelines|plain]`

use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_detect::{CompileOptions, CompiledRule, JsonEvent, PipelineSet, Ruleset};

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let plain = args.next().is_some_and(|m| m == "plain");
    let sigma = vigil_testdata::root().join("sigma");
    let mut rule_files = Vec::new();
    for d in ["rules", "rules-emerging-threats", "rules-threat-hunting"] {
        rule_files.extend(vigil_testdata::files_with_extension(&sigma.join(d), "yml"));
    }
    let opts = CompileOptions::default();
    let rules: Vec<CompiledRule> = rule_files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| CompiledRule::from_yaml(&t, &opts).ok())
        .collect();
    let n_rules = rules.len();
    let ruleset = if plain {
        Ruleset::new(rules)
    } else {
        Ruleset::with_pipelines(rules, &PipelineSet::builtin().expect("pipelines"))
    };
    let event_files = vigil_testdata::files_with_extension(&sigma.join("regression_data"), "json");
    let mut texts = Vec::new();
    for p in event_files {
        let Ok(t) = std::fs::read_to_string(&p) else {
            continue;
        };
        for v in serde_json::Deserializer::from_str(&t)
            .into_iter::<Value>()
            .flatten()
        {
            texts.push(v.to_string());
        }
    }
    println!("{n_rules} rules, {} events", texts.len());
    if let Ok(passes) = std::env::var("DETECT_LOOP_PASSES") {
        // A fixed amount of work, e.g. for `valgrind --tool=callgrind --collect-atstart=no
        // --toggle-collect=*run_passes*` (instruction counts do not depend on the machine's load).
        let passes: usize = passes.parse().unwrap_or(1);
        // Passes before the counted ones (`DETECT_LOOP_WARMUP`, default none) fill the regexes'
        // lazy DFA caches, as a long-running process has them: the counted passes then show
        // the steady state.
        let warmup: usize = std::env::var("DETECT_LOOP_WARMUP")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        warm_up(&ruleset, &texts, warmup);
        let matches = run_passes(&ruleset, &texts, passes);
        println!("{passes} passes: {matches} matches");
        return;
    }
    let cpu0 = cpu_ns();
    let started = Instant::now();
    let (mut events, mut matches) = (0u64, 0usize);
    while started.elapsed() < Duration::from_secs(secs) {
        for t in &texts {
            if let Ok(event) = JsonEvent::parse(t) {
                matches += ruleset.matches(&event).count();
            }
            events += 1;
        }
    }
    let el = started.elapsed().as_secs_f64();
    let cpu = (cpu_ns() - cpu0) as f64 / 1e9;
    println!(
        "{events} events in {el:.2}s ({cpu:.2}s on the CPU): {:.0} events/s of CPU time, {matches} matches",
        events as f64 / cpu
    );
}

/// The same passes as [`run_passes`], under a name callgrind's toggle does not match.
#[inline(never)]
fn warm_up(ruleset: &Ruleset, texts: &[String], passes: usize) {
    std::hint::black_box(replay(ruleset, texts, passes));
}

#[inline(never)]
fn run_passes(ruleset: &Ruleset, texts: &[String], passes: usize) -> usize {
    replay(ruleset, texts, passes)
}

fn replay(ruleset: &Ruleset, texts: &[String], passes: usize) -> usize {
    let mut matches = 0;
    for _ in 0..passes {
        for t in texts {
            if let Ok(event) = JsonEvent::parse(t) {
                matches += ruleset.matches(&event).count();
            }
        }
    }
    matches
}

/// This thread's time on the CPU (`/proc/thread-self/schedstat`), in nanoseconds: steadier than
/// wall time on a shared machine.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
