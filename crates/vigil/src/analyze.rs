//! `vigil analyze`: the analysis `POST /api/v1/analyze` returns, run against the configured
//! database (or Loki) from the command line and printed.

use anyhow::Context;
use clap::Args;
use vigil_server::ai::analyze::{AnalysisReport, AnalyzeRequest, AnalyzeSource};
use vigil_server::config::Config;

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Minutes back from now, 1 to 1440.
    #[arg(long, default_value_t = 5)]
    timeframe: u32,
    /// Where the events come from: local (the event store) or loki (`[loki] url`).
    #[arg(long, default_value = "local")]
    source: String,
    /// LogQL selector instead of `[loki] query` (with --source loki).
    #[arg(long)]
    query: Option<String>,
    /// Organization whose events are analysed.
    #[arg(long, default_value = "default")]
    org: String,
    /// Print the whole report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: Config, args: AnalyzeArgs) -> anyhow::Result<()> {
    let source = match args.source.as_str() {
        "local" => AnalyzeSource::Local,
        "loki" => AnalyzeSource::Loki,
        other => anyhow::bail!("--source must be local or loki, got '{other}'"),
    };
    let req = AnalyzeRequest {
        timeframe: Some(args.timeframe),
        source: Some(source),
        query: args.query,
    };
    vigil_server::ai::analyze::check(&req).map_err(|m| anyhow::anyhow!(m))?;
    let store = crate::open_store(&cfg, false).await?;
    let org = store
        .get_org_by_name(&args.org)
        .await?
        .with_context(|| format!("no organization named '{}'", args.org))?
        .id;
    let mut ai = vigil_server::ai::Ai::from_config(&cfg)?;
    // No HTTP request to answer in time: wait for the model as long as its own timeout.
    ai.model_deadline = None;
    let events = store.event_store();
    let report = vigil_server::ai::analyze::run(&ai, &store, &events, org, &req)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

fn top(items: &[vigil_server::ai::aggregate::Count]) -> String {
    if items.is_empty() {
        return "-".into();
    }
    items
        .iter()
        .take(5)
        .map(|c| format!("{} ({})", c.key, c.count))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as text for a terminal.
pub fn render(r: &AnalysisReport) -> String {
    use std::fmt::Write;
    let d = &r.deterministic;
    let mut o = String::new();
    let source = match r.source {
        AnalyzeSource::Local => "local",
        AnalyzeSource::Loki => "loki",
    };
    let _ = writeln!(
        o,
        "Analysis of the last {} minutes (source {source}): {} events{}",
        r.timeframe_minutes,
        d.event_count,
        if r.events_truncated {
            " (truncated)"
        } else {
            ""
        }
    );
    let _ = writeln!(o, "Hosts: {}", top(&d.by_host));
    let _ = writeln!(o, "Datasets: {}", top(&d.by_dataset));
    let _ = writeln!(o, "Outcomes: {}", top(&d.by_outcome));
    let _ = writeln!(o, "Top source addresses: {}", top(&d.top_source_ips));
    let _ = writeln!(
        o,
        "Failed authentications: {} (by address: {}; by user: {})",
        d.failed_authentications.total,
        top(&d.failed_authentications.by_source_ip),
        top(&d.failed_authentications.by_user)
    );
    for h in &d.rule_hits {
        let _ = writeln!(
            o,
            "Rule hit: [{}] {} x{}",
            h.severity.as_str(),
            h.title,
            h.count
        );
    }
    for a in &d.other_alerts {
        let _ = writeln!(
            o,
            "Alert ({}): [{}] {} x{}",
            a.source.as_str(),
            a.severity.as_str(),
            a.title,
            a.count
        );
    }
    if d.injection_suspected {
        let _ = writeln!(
            o,
            "WARNING: {} event(s) carry prompt-injection text",
            d.suspicious_event_refs.len()
        );
    }
    let _ = writeln!(o, "Findings:");
    if d.findings.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for f in &d.findings {
        let _ = writeln!(o, "  [{}] {}", f.severity.as_str(), f.text);
    }
    let _ = writeln!(o, "Recommendations:");
    if d.recommendations.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for x in &d.recommendations {
        let _ = writeln!(o, "  - {x}");
    }
    match (&r.model, &r.model_error) {
        (Some(m), _) => {
            let a = &m.analysis;
            let _ = writeln!(
                o,
                "Model analysis ({}/{}, prompt {}{}) — a suggestion, not a decision:",
                m.provider,
                m.model,
                m.prompt_version,
                if m.cached { ", cached" } else { "" }
            );
            let _ = writeln!(
                o,
                "  Verdict: {}  Suggested severity: {}  Confidence: {:.2}",
                a.verdict.as_str(),
                a.suggested_severity.as_str(),
                a.confidence
            );
            if let Some(n) = &m.note {
                let _ = writeln!(o, "  Note: {n}");
            }
            let _ = writeln!(o, "  Summary: {}", a.summary);
            let t: Vec<&str> = a.attack_techniques.iter().map(|t| t.as_str()).collect();
            let _ = writeln!(
                o,
                "  ATT&CK: {}",
                if t.is_empty() {
                    "-".into()
                } else {
                    t.join(", ")
                }
            );
            for x in &a.recommended_actions {
                let _ = writeln!(o, "  - {x}");
            }
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "Model analysis failed ({}): {}", e.kind, e.message);
        }
        (None, None) => {
            let _ = writeln!(o, "No model configured: deterministic analysis only.");
        }
    }
    let _ = writeln!(
        o,
        "Events used: {} (their ids with --json)",
        r.event_refs.len()
    );
    o
}
