//! `POST /analyze` and `vigil analyze`: gather the last N minutes of events (local store or
//! Loki), aggregate them deterministically, and — when a model is configured — ask it for an
//! analysis of the aggregate and a sample of lines.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vigil_core::AlertFilter;
use vigil_integrations::llm::{Analysis, build_prompt};
use vigil_store::{DynStore, EventFilter, EventStore};

use super::aggregate::{DeterministicAnalysis, SourceEvent, aggregate, event_text};
use super::{Ai, AiError, apply_safety};

/// Where the events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalyzeSource {
    /// Vigil's own event store.
    #[default]
    Local,
    /// Grafana Loki (`[loki] url`), with the configured LogQL selector or `query`.
    Loki,
}

/// The body of `POST /analyze` (all optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// Minutes back from now, 1 to 1440 (default 5).
    pub timeframe: Option<u32>,
    pub source: Option<AnalyzeSource>,
    /// LogQL selector overriding `[loki] query` (source `loki` only).
    pub query: Option<String>,
}

/// The model's part of an analysis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelAnalysis {
    pub provider: String,
    pub model: String,
    pub prompt_version: String,
    pub cached: bool,
    /// The first answer did not match the schema; the repair retry fixed it.
    pub repaired: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Validated against the schema: summary, verdict, suggested_severity,
    /// attack_techniques, entities, recommended_actions, confidence.
    #[schema(value_type = Object)]
    pub analysis: Analysis,
    /// The model's verdict was not taken as given (see `note`).
    pub verdict_overridden: bool,
    pub note: Option<String>,
}

/// Why the model part is missing although a model is configured.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelFailure {
    pub kind: String,
    pub message: String,
}

/// The answer of `POST /analyze`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnalysisReport {
    pub timeframe_minutes: u32,
    pub source: AnalyzeSource,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// No model answer is included: none is configured, or it failed (`model_error`).
    pub deterministic_only: bool,
    pub deterministic: DeterministicAnalysis,
    pub model: Option<ModelAnalysis>,
    pub model_error: Option<ModelFailure>,
    /// The events analysed (store ids, or `loki:<time>:<n>`), up to 500.
    pub event_refs: Vec<String>,
    /// More events matched than `[ollama] max_events`; the newest were analysed.
    pub events_truncated: bool,
}

const MAX_REFS: usize = 500;
const PROMPT_LINES: usize = 60;

/// Parses and checks a request.
pub fn check(req: &AnalyzeRequest) -> Result<(u32, AnalyzeSource), String> {
    let tf = req.timeframe.unwrap_or(5);
    if !(1..=1440).contains(&tf) {
        return Err(format!("timeframe must be 1 to 1440 minutes, got {tf}"));
    }
    let source = req.source.unwrap_or_default();
    if req.query.is_some() && source != AnalyzeSource::Loki {
        return Err("query applies only to source \"loki\"".into());
    }
    if let Some(q) = &req.query
        && (q.trim().is_empty() || q.len() > 2000)
    {
        return Err("query must be a LogQL selector of 1 to 2000 bytes".into());
    }
    Ok((tf, source))
}

async fn local_events(
    events: &Arc<dyn EventStore>,
    org: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: usize,
) -> Result<(Vec<SourceEvent>, bool), AiError> {
    let mut out = Vec::new();
    let mut f = EventFilter {
        from: Some(from),
        to: Some(to),
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = events.query_events(org, &f).await?;
        for e in page.items {
            if out.len() == max {
                return Ok((out, true));
            }
            out.push(SourceEvent {
                reference: e.id.to_string(),
                doc: e.doc,
            });
        }
        match page.next_cursor {
            Some(c) => f.cursor = Some(c),
            None => return Ok((out, false)),
        }
    }
}

async fn loki_events(
    ai: &Ai,
    query: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: usize,
) -> Result<(Vec<SourceEvent>, bool), AiError> {
    let loki = ai.loki.as_ref().ok_or(AiError::NoLoki)?;
    let q = query.unwrap_or(&ai.loki_query);
    // One more than the cap tells whether there were more.
    let r = loki.query_range_split(q, from, to, max + 1, None).await?;
    let mut docs = vigil_integrations::loki::result_to_events(&r);
    let truncated = docs.len() > max;
    docs.truncate(max);
    Ok((
        docs.into_iter()
            .enumerate()
            .map(|(i, doc)| SourceEvent {
                reference: format!(
                    "loki:{}:{i}",
                    vigil_core::event::get_str(&doc, "@timestamp").unwrap_or("")
                ),
                doc,
            })
            .collect(),
        truncated,
    ))
}

/// The lines the model sees: those behind findings first, then the rest, newest first.
fn prompt_lines(events: &[SourceEvent], det: &DeterministicAnalysis) -> Vec<String> {
    let wanted: std::collections::BTreeSet<&str> = det
        .findings
        .iter()
        .flat_map(|f| f.event_refs.iter().map(String::as_str))
        .collect();
    let line = |e: &SourceEvent| {
        let d = &e.doc;
        let g = |p| vigil_core::event::get_str(d, p).unwrap_or("-");
        format!(
            "{} host={} dataset={} outcome={} text={}",
            g("@timestamp"),
            g("host.name"),
            g("event.dataset"),
            g("event.outcome"),
            event_text(d)
        )
    };
    let first = events
        .iter()
        .filter(|e| wanted.contains(e.reference.as_str()));
    let rest = events
        .iter()
        .filter(|e| !wanted.contains(e.reference.as_str()));
    first.chain(rest).take(PROMPT_LINES).map(line).collect()
}

/// Runs an analysis for `org`.
pub async fn run(
    ai: &Ai,
    store: &DynStore,
    events: &Arc<dyn EventStore>,
    org: Uuid,
    req: &AnalyzeRequest,
) -> Result<AnalysisReport, AiError> {
    let (timeframe, source) =
        check(req).map_err(|m| AiError::Store(vigil_store::Error::InvalidInput(m)))?;
    let to = vigil_core::now();
    let from = to - chrono::Duration::minutes(i64::from(timeframe));
    let (evs, events_truncated) = match source {
        AnalyzeSource::Local => local_events(events, org, from, to, ai.max_events).await?,
        AnalyzeSource::Loki => {
            loki_events(ai, req.query.as_deref(), from, to, ai.max_events).await?
        }
    };
    let alerts = store
        .list_alerts(
            org,
            &AlertFilter {
                since: Some(from),
                limit: 1000,
                descending: true,
                ..Default::default()
            },
        )
        .await?
        .items;
    let det = aggregate(&evs, &alerts);
    let mut report = AnalysisReport {
        timeframe_minutes: timeframe,
        source,
        from,
        to,
        deterministic_only: true,
        model: None,
        model_error: None,
        event_refs: evs
            .iter()
            .take(MAX_REFS)
            .map(|e| e.reference.clone())
            .collect(),
        events_truncated,
        deterministic: det,
    };
    let Some(llm) = &ai.llm else {
        return Ok(report);
    };
    if evs.is_empty() && alerts.is_empty() {
        // Nothing to analyse: do not spend a model call on it.
        return Ok(report);
    }
    let mut context = serde_json::to_value(&report.deterministic).unwrap_or_default();
    if let Some(o) = context.as_object_mut() {
        // Event references mean nothing to the model.
        o.remove("suspicious_event_refs");
        if let Some(f) = o.get_mut("findings").and_then(|f| f.as_array_mut()) {
            for x in f {
                if let Some(x) = x.as_object_mut() {
                    x.remove("event_refs");
                }
            }
        }
        o.insert("timeframe_minutes".into(), timeframe.into());
    }
    let prompt = build_prompt(
        "Analyse the security events of the last minutes summarised below: say what happened, \
         whether it is an attack, how severe, which ATT&CK techniques apply, which entities are \
         involved and what the analyst should do next.",
        &context,
        &prompt_lines(&evs, &report.deterministic),
    );
    let answer = match ai.model_deadline {
        Some(d) => match tokio::time::timeout(d, llm.analyze(&prompt)).await {
            Ok(r) => r,
            Err(_) => Err(vigil_integrations::llm::LlmError::Timeout {
                provider: llm.provider(),
                secs: d.as_secs(),
            }),
        },
        None => llm.analyze(&prompt).await,
    };
    match answer {
        Ok(mut out) => {
            let note = apply_safety(&mut out.analysis, report.deterministic.injection_suspected);
            report.deterministic_only = false;
            report.model = Some(ModelAnalysis {
                provider: out.provider,
                model: out.model,
                prompt_version: out.prompt_version,
                cached: out.cached,
                repaired: out.repaired,
                prompt_tokens: out.prompt_tokens,
                completion_tokens: out.completion_tokens,
                analysis: out.analysis,
                verdict_overridden: note.is_some(),
                note,
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "model analysis failed; returning the deterministic analysis");
            report.model_error = Some(ModelFailure {
                kind: e.kind().into(),
                message: e.to_string(),
            });
        }
    }
    Ok(report)
}
