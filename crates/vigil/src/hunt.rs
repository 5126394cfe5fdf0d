//! `vigil hunt`: Sigma rules over files, offline. The work is `vigil_hunt`'s; this parses
//! arguments, shows progress and prints.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use vigil_detect::{CompileOptions, Level};
use vigil_hunt::report::{self, RuleCounts};
use vigil_hunt::{Hunter, Progress};

#[derive(Args)]
pub struct HuntArgs {
    /// Directory of Sigma rules (searched recursively); repeat for several, e.g. a SigmaHQ
    /// checkout's rules/ and rules-emerging-threats/. Default: Vigil's built-in rule pack.
    #[arg(long = "rules", short = 'r', value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Processing pipelines mapping rule logsources to events: one built-in, or all of them.
    #[arg(long, value_enum, default_value_t = PipelineChoice::All)]
    pipeline: PipelineChoice,
    /// Only matches of rules at this level or above.
    #[arg(long, value_enum)]
    min_level: Option<MinLevel>,
    /// One JSON object per match and line (with the whole event) instead of a table; the
    /// summary goes to standard error.
    #[arg(long)]
    json: bool,
    /// Files, directories (searched recursively) or patterns (`logs/*.evtx`) to hunt:
    /// .evtx, .json (one event or an array), .jsonl/.ndjson, .pcap/.pcapng/.cap (network
    /// flow, DNS, HTTP and TLS events), and anything else as text lines.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PipelineChoice {
    Windows,
    Linux,
    Network,
    Vigil,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum MinLevel {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl From<MinLevel> for Level {
    fn from(l: MinLevel) -> Self {
        match l {
            MinLevel::Informational => Level::Informational,
            MinLevel::Low => Level::Low,
            MinLevel::Medium => Level::Medium,
            MinLevel::High => Level::High,
            MinLevel::Critical => Level::Critical,
        }
    }
}

pub fn run(args: HuntArgs) -> anyhow::Result<()> {
    let pipeline = match args.pipeline {
        PipelineChoice::Windows => "windows",
        PipelineChoice::Linux => "linux",
        PipelineChoice::Network => "network",
        PipelineChoice::Vigil => "vigil",
        PipelineChoice::All => "all",
    };
    // These errors already name their cause; `{:#}` would repeat it.
    let flat = |e: vigil_hunt::Error| anyhow::anyhow!("{e}");
    let pipelines = vigil_hunt::pipelines(pipeline).map_err(flat)?;
    let tty = std::io::stderr().is_terminal();
    let spinner = if tty {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    spinner.set_message("loading rules");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let loaded = vigil_hunt::load_rules(&args.rules, &CompileOptions::default());
    spinner.finish_and_clear();
    let loaded = loaded.map_err(flat)?;
    let mut counts = RuleCounts {
        loaded: loaded.rules.len(),
        rejected: loaded.errors.len(),
        unmapped: 0,
    };
    for (reason, errors) in loaded.rejection_reasons() {
        eprintln!("warning: {} rules rejected: {reason}", errors.len());
    }
    let ruleset = loaded.into_ruleset_with(&pipelines);
    counts.unmapped = ruleset.unmapped().count();

    let (files, errors) = vigil_hunt::expand_inputs(&args.inputs);
    if files.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        anyhow::bail!("no input files");
    }

    let bar = if tty {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, eta {eta}) {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut hunter = Hunter::new(&ruleset);
    if let Some(level) = args.min_level {
        hunter = hunter.min_level(level.into());
    }
    let (mut done, mut total) = (0, 0);
    let hunt = hunter.hunt(&args.inputs, |p| match p {
        Progress::Planned { files, bytes } => {
            total = files;
            bar.set_length(bytes);
        }
        Progress::FileStarted { path } => {
            // The end of the path: a message wider than the terminal breaks the bar.
            let path = path.display().to_string();
            let tail: String = path
                .chars()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bar.set_message(format!("{}/{total} {tail}", done + 1));
        }
        Progress::FileDone { bytes, .. } => {
            done += 1;
            bar.inc(bytes);
        }
    });
    bar.finish_and_clear();
    for e in &hunt.errors {
        eprintln!("warning: skipped {e}");
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        report::write_json_lines(&hunt, &mut out).context("writing results")?;
        out.flush().context("writing results")?;
        report::write_summary(&hunt, counts, &mut std::io::stderr()).context("writing summary")?;
    } else {
        report::write_table(&hunt, &mut out).context("writing results")?;
        writeln!(out).context("writing results")?;
        report::write_summary(&hunt, counts, &mut out).context("writing results")?;
        out.flush().context("writing results")?;
    }
    Ok(())
}
