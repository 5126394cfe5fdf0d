//! Detection in the server: the rule set (the built-in pack and the rule directories of the
//! config, loaded as one set) evaluated on each normalized event, correlations kept per
//! organization, and matches at `ingest.min_alert_level` or above turned into alerts.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Value as Json, json};
use uuid::Uuid;
use vigil_core::event::{self, fields};
use vigil_core::{AlertInput, AlertSource, NewAlert, Observable, ObservableType, Severity};
use vigil_detect::{
    CompileOptions, CorrelationEngine, CorrelationMatch, Level, LoadReport, PipelineSet, Ruleset,
};
use vigil_store::Detection;

/// Rules compiled once, shared by every pipeline worker.
pub struct Rules {
    pub ruleset: Ruleset,
    report_correlations: LoadReport,
    /// Base rules that only feed correlations (their own matches raise no alert).
    correlation_only: Vec<bool>,
    /// Rule and correlation matches below this level raise no alert.
    min_alert_level: Level,
}

impl Rules {
    /// The built-in pack and every rule directory given, loaded as one set so a directory's
    /// filters and correlations may name built-in rules; bad rules are logged and skipped.
    pub fn load(dirs: &[PathBuf], min_alert_level: Level) -> anyhow::Result<Self> {
        let mut report = vigil_detect::load(true, dirs, &CompileOptions::default())
            .map_err(|e| anyhow::anyhow!("rules: {e}"))?;
        for e in &report.errors {
            tracing::warn!(error = %e, "rule skipped");
        }
        let pipelines = PipelineSet::builtin()?;
        let engine = report.correlation_engine()?;
        let correlation_only = report
            .rules
            .iter()
            .map(|r| {
                [r.rule().id.as_deref(), r.rule().name.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|k| engine.is_correlation_only(k))
            })
            .collect();
        let rules = std::mem::take(&mut report.rules);
        // Keep the base rules' names for new correlation engines.
        let names = LoadReport {
            rules: Vec::new(),
            errors: Vec::new(),
            correlations: report.correlations.clone(),
            filters: Vec::new(),
        };
        let ruleset = Ruleset::with_pipelines(rules, &pipelines);
        tracing::info!(
            rules = ruleset.rules().len(),
            correlations = names.correlations.len(),
            filters = report.filters.len(),
            rejected = report.errors.len(),
            min_alert_level = ?min_alert_level,
            "detection rules loaded"
        );
        Ok(Self {
            ruleset,
            report_correlations: names,
            correlation_only,
            min_alert_level,
        })
    }

    /// Whether a match at `level` (none: informational) becomes an alert.
    fn alerts_at(&self, level: Option<Level>) -> bool {
        level.unwrap_or(Level::Informational) >= self.min_alert_level
    }

    fn new_correlation_engine(&self) -> CorrelationEngine {
        CorrelationEngine::new(self.report_correlations.correlations.clone())
            .map(|e| e.with_rule_names(self.ruleset.rules()))
            .unwrap_or_else(|_| CorrelationEngine::new(Vec::new()).expect("empty engine"))
    }
}

/// Per-organization correlation state.
#[derive(Default)]
pub struct Correlations {
    by_org: HashMap<Uuid, CorrelationEngine>,
}

fn severity(level: Option<Level>) -> Severity {
    match level {
        Some(Level::Critical) => Severity::Critical,
        Some(Level::High) => Severity::High,
        Some(Level::Medium) => Severity::Medium,
        _ => Severity::Low,
    }
}

/// The most specific ATT&CK technique among the tags: `attack.t1110.001` -> `T1110.001`.
fn technique(tags: &[String]) -> Option<String> {
    tags.iter()
        .filter_map(|t| {
            let rest = t.strip_prefix("attack.t")?;
            let ok = rest.len() >= 4 && rest[..4].bytes().all(|b| b.is_ascii_digit());
            ok.then(|| format!("T{}", rest.to_ascii_uppercase()))
        })
        .max_by_key(String::len)
}

fn observables(doc: &Json) -> Vec<Observable> {
    let mut out = Vec::new();
    let mut add = |path: &str, kind: ObservableType| {
        if let Some(v) = event::get(doc, path) {
            let text = match v {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                _ => return,
            };
            if !text.is_empty() && text.len() <= 512 {
                out.push(Observable { kind, value: text });
            }
        }
    };
    add(fields::SOURCE_IP, ObservableType::Ip);
    add(fields::DESTINATION_IP, ObservableType::Ip);
    add("dns.question.name", ObservableType::Domain);
    add("url.original", ObservableType::Url);
    add(fields::USER_NAME, ObservableType::User);
    add(fields::HOST_NAME, ObservableType::Hostname);
    out
}

struct Raise<'a> {
    id: Option<&'a str>,
    title: &'a str,
    description: Option<&'a str>,
    level: Option<Level>,
    tags: &'a [String],
    event_type: &'a str,
    key: String,
    extra: Json,
}

fn detection(doc: &Json, r: Raise<'_>) -> Option<Detection> {
    let when = event::timestamp(doc).unwrap_or_else(vigil_core::now);
    let host = event::get_str(doc, fields::HOST_NAME).unwrap_or("-");
    let input = AlertInput {
        alert_id: Some(format!("DET-{}", Uuid::now_v7().simple())),
        title: r.title.chars().take(200).collect(),
        description: r.description.unwrap_or("").chars().take(4000).collect(),
        severity: severity(r.level),
        source: Some(AlertSource::Rule),
        event_type: Some(r.event_type.to_owned()),
        timestamp: Some(when),
        metadata: Some(json!({
            "rule": {"id": r.id, "title": r.title, "level": r.level.map(|l| format!("{l:?}").to_lowercase())},
            "host": host,
            "detail": r.extra,
            "event": doc,
        })),
        attack_technique_id: technique(r.tags),
        agent_id: event::get_str(doc, fields::AGENT_ID).map(str::to_owned),
        tags: r
            .tags
            .iter()
            .take(32)
            .map(|t| t.chars().take(64).collect())
            .collect(),
        observables: observables(doc),
        ..Default::default()
    };
    match NewAlert::parse(input, vigil_core::now()) {
        Ok(alert) => Some(Detection {
            alert,
            dedup_key: Some(format!("{}|{}", r.id.unwrap_or(r.title), r.key)),
            seen: when,
        }),
        Err(e) => {
            tracing::warn!(error = %e, rule = r.title, "detection could not become an alert");
            None
        }
    }
}

impl Correlations {
    /// Runs the rules on one event of `org` and returns the alerts to raise.
    pub fn detect(&mut self, rules: &Rules, org: Uuid, doc: &Json) -> Vec<Detection> {
        let all = rules.ruleset.rules();
        let matched = rules.ruleset.match_indices(doc);
        let mut out = Vec::new();
        let host = event::get_str(doc, fields::HOST_NAME)
            .unwrap_or("-")
            .to_owned();
        for &i in &matched {
            let rule = all[i].rule();
            if rules.correlation_only[i] || !rules.alerts_at(rule.level) {
                continue;
            }
            let event_type = rule
                .logsource
                .category
                .as_deref()
                .or(rule.logsource.service.as_deref())
                .unwrap_or("sigma");
            out.extend(detection(
                doc,
                Raise {
                    id: rule.id.as_deref(),
                    title: &rule.title,
                    description: rule.description.as_deref(),
                    level: rule.level,
                    tags: &rule.tags,
                    event_type,
                    key: host.clone(),
                    extra: Json::Null,
                },
            ));
        }
        if rules.report_correlations.correlations.is_empty() {
            return out;
        }
        let engine = self
            .by_org
            .entry(org)
            .or_insert_with(|| rules.new_correlation_engine());
        let time = event::timestamp(doc)
            .unwrap_or_else(vigil_core::now)
            .timestamp_millis();
        let refs: Vec<&vigil_detect::CompiledRule> = matched.iter().map(|&i| &all[i]).collect();
        for m in engine.process_rules(time, &refs, doc) {
            if !rules.alerts_at(m.level) {
                continue;
            }
            out.extend(correlation_detection(rules, doc, &m));
        }
        out
    }
}

fn correlation_detection(rules: &Rules, doc: &Json, m: &CorrelationMatch) -> Option<Detection> {
    let rule = rules.report_correlations.correlations.get(m.correlation)?;
    let key = m
        .group
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",");
    // A correlation's own tags; without any, those of the rules it counts.
    let own = !rule.tags.is_empty();
    let tags: Vec<String> = if own {
        rule.tags.clone()
    } else {
        rules
            .ruleset
            .rules()
            .iter()
            .filter(|r| {
                [r.rule().id.as_deref(), r.rule().name.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|k| rule.rules.iter().any(|x| x == k))
            })
            .flat_map(|r| r.rule().tags.iter().cloned())
            .collect()
    };
    let group: serde_json::Map<String, Json> = m
        .group
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().map_or(Json::Null, Json::String)))
        .collect();
    detection(
        doc,
        Raise {
            id: m.id.as_deref(),
            title: &m.title,
            description: rule.description.as_deref(),
            level: m.level,
            tags: &tags,
            event_type: "correlation",
            key,
            extra: json!({"correlation": m.kind.name(), "group": group, "count": m.count,
                          "window_ms": [m.window.0, m.window.1]}),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_come_from_attack_tags() {
        let tags = vec![
            "attack.credential_access".to_owned(),
            "attack.t1110.001".to_owned(),
        ];
        assert_eq!(technique(&tags).as_deref(), Some("T1110.001"));
        assert_eq!(technique(&["attack.ta0001".to_owned()]), None);
    }
}
