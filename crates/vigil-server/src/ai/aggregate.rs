//! The deterministic part of an analysis: counts, top talkers, failed authentications,
//! rule hits (alerts of the rule engine; alerts raised by people, agents or the ML engine
//! are listed apart) and findings computed from the events alone. The same events always give the
//! same result, whatever text they carry and whether or not a model is configured; the
//! model sees this summary instead of thousands of raw lines.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use vigil_core::event::get_str;
use vigil_core::{Alert, AlertSource, Severity};
use vigil_integrations::llm::looks_like_injection;

/// An event to analyse and how to refer to it.
#[derive(Debug, Clone)]
pub struct SourceEvent {
    /// The stored event's id, or `loki:<time>:<n>` for an event read from Loki.
    pub reference: String,
    pub doc: Value,
}

/// A value and how often it occurred.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

/// Failed authentications in the timeframe.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FailedAuth {
    pub total: u64,
    pub by_user: Vec<Count>,
    pub by_source_ip: Vec<Count>,
}

/// Alerts the rule engine raised in the timeframe, by title.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RuleHit {
    pub title: String,
    pub severity: Severity,
    pub count: u64,
}

/// Alerts raised in the timeframe by anything but a rule (a person through the API, an
/// agent, the ML engine, intel), by source and title.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OtherAlert {
    pub source: AlertSource,
    pub title: String,
    pub severity: Severity,
    pub count: u64,
}

/// Something the counts show, with the events that show it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Finding {
    pub severity: Severity,
    pub text: String,
    pub event_refs: Vec<String>,
}

/// Everything computed without a model.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeterministicAnalysis {
    pub event_count: u64,
    pub by_host: Vec<Count>,
    pub by_dataset: Vec<Count>,
    pub by_outcome: Vec<Count>,
    /// Source addresses with the most events.
    pub top_source_ips: Vec<Count>,
    pub failed_authentications: FailedAuth,
    pub rule_hits: Vec<RuleHit>,
    pub other_alerts: Vec<OtherAlert>,
    /// High and critical alerts of the timeframe still open or in progress.
    pub open_high_alerts: u64,
    pub findings: Vec<Finding>,
    pub recommendations: Vec<String>,
    /// Some event text tries to instruct an AI model ("ignore previous instructions...").
    pub injection_suspected: bool,
    pub suspicious_event_refs: Vec<String>,
}

const TOP: usize = 10;
const REFS: usize = 20;

fn top(m: &BTreeMap<String, u64>) -> Vec<Count> {
    let mut v: Vec<Count> = m
        .iter()
        .map(|(k, c)| Count {
            key: k.clone(),
            count: *c,
        })
        .collect();
    // Count descending, then key: stable across runs and backends.
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    v.truncate(TOP);
    v
}

fn is_auth_failure(doc: &Value) -> bool {
    let outcome = get_str(doc, "event.outcome") == Some("failure");
    let auth = get_str(doc, "event.dataset") == Some("auth")
        || get_str(doc, "event.category") == Some("authentication")
        || doc
            .pointer("/event/category")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|c| c == "authentication"));
    outcome && auth
}

fn is_auth_success(doc: &Value) -> bool {
    get_str(doc, "event.outcome") == Some("success")
        && matches!(
            get_str(doc, "event.action"),
            Some("ssh_login") | Some("su") | Some("sudo")
        )
}

/// The text an event carries that a person (or a model) would read.
pub fn event_text(doc: &Value) -> String {
    let mut parts = Vec::new();
    for p in [
        "message",
        "event.original",
        "user.name",
        "url.original",
        "user_agent.original",
        "process.command_line",
    ] {
        if let Some(s) = get_str(doc, p) {
            parts.push(s);
        }
    }
    parts.join(" ")
}

/// Computes the deterministic analysis of `events` and the alerts raised meanwhile.
pub fn aggregate(events: &[SourceEvent], alerts: &[Alert]) -> DeterministicAnalysis {
    let mut by_host = BTreeMap::new();
    let mut by_dataset = BTreeMap::new();
    let mut by_outcome = BTreeMap::new();
    let mut by_ip = BTreeMap::new();
    let mut fail_user = BTreeMap::new();
    let mut fail_ip: BTreeMap<String, u64> = BTreeMap::new();
    let mut fail_refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut fail_users_per_ip: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut success_after: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures = 0u64;
    let mut suspicious = Vec::new();
    // In time order, so "success after failures" means after. Stores list newest first.
    let mut ordered: Vec<&SourceEvent> = events.iter().collect();
    ordered.sort_by_key(|e| vigil_core::event::timestamp(&e.doc));
    for e in ordered {
        let d = &e.doc;
        *by_host
            .entry(get_str(d, "host.name").unwrap_or("(none)").to_string())
            .or_insert(0) += 1;
        *by_dataset
            .entry(get_str(d, "event.dataset").unwrap_or("(none)").to_string())
            .or_insert(0) += 1;
        *by_outcome
            .entry(get_str(d, "event.outcome").unwrap_or("(none)").to_string())
            .or_insert(0) += 1;
        let ip = get_str(d, "source.ip").map(str::to_string);
        if let Some(ip) = &ip {
            *by_ip.entry(ip.clone()).or_insert(0) += 1;
        }
        if is_auth_failure(d) {
            failures += 1;
            let user = get_str(d, "user.name").unwrap_or("(unknown)").to_string();
            *fail_user.entry(user.clone()).or_insert(0) += 1;
            if let Some(ip) = &ip {
                *fail_ip.entry(ip.clone()).or_insert(0) += 1;
                fail_refs
                    .entry(ip.clone())
                    .or_default()
                    .push(e.reference.clone());
                fail_users_per_ip
                    .entry(ip.clone())
                    .or_default()
                    .insert(user);
            }
        } else if is_auth_success(d)
            && let Some(ip) = &ip
            && fail_ip.get(ip).copied().unwrap_or(0) >= 3
        {
            success_after
                .entry(ip.clone())
                .or_default()
                .push(e.reference.clone());
        }
        if looks_like_injection(&event_text(d)) {
            suspicious.push(e.reference.clone());
        }
    }

    let mut findings = Vec::new();
    let mut recommendations = Vec::new();
    for c in top(&fail_ip) {
        let users = &fail_users_per_ip[&c.key];
        let refs: Vec<String> = fail_refs[&c.key].iter().take(REFS).cloned().collect();
        if let Some(ok) = success_after.get(&c.key) {
            findings.push(Finding {
                severity: Severity::Critical,
                text: format!(
                    "{} failed authentications from {} followed by {} successful login(s): possible brute-force success",
                    c.count,
                    c.key,
                    ok.len()
                ),
                event_refs: refs.iter().chain(ok.iter().take(REFS)).cloned().collect(),
            });
            recommendations.push(format!(
                "Review the sessions opened from {} and reset the passwords of the accounts used",
                c.key
            ));
        }
        if users.len() >= 5 {
            findings.push(Finding {
                severity: Severity::High,
                text: format!(
                    "{} failed authentications from {} against {} different users: password spraying",
                    c.count,
                    c.key,
                    users.len()
                ),
                event_refs: refs.clone(),
            });
        } else if c.count >= 5 {
            findings.push(Finding {
                severity: if c.count >= 20 {
                    Severity::High
                } else {
                    Severity::Medium
                },
                text: format!(
                    "{} failed authentications from {} (users: {})",
                    c.count,
                    c.key,
                    users.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                event_refs: refs.clone(),
            });
        }
        if c.count >= 5 {
            recommendations.push(format!(
                "Block or rate-limit {} at the firewall if it is not a known address",
                c.key
            ));
        }
    }

    // Keyed by source and title; the most severe alert of a key gives its severity.
    let mut hits: BTreeMap<(&str, &str), (AlertSource, Severity, u64)> = BTreeMap::new();
    for a in alerts {
        let h = hits
            .entry((a.source.as_str(), a.title.as_str()))
            .or_insert((a.source, a.severity, 0));
        h.1 = h.1.max(a.severity);
        h.2 += a.event_count.max(1) as u64;
    }
    let mut rule_hits = Vec::new();
    let mut other_alerts = Vec::new();
    for ((_, title), (source, severity, count)) in hits {
        let title = title.to_string();
        if source == AlertSource::Rule {
            rule_hits.push(RuleHit {
                title,
                severity,
                count,
            });
        } else {
            other_alerts.push(OtherAlert {
                source,
                title,
                severity,
                count,
            });
        }
    }
    rule_hits.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.count.cmp(&a.count))
            .then_with(|| a.title.cmp(&b.title))
    });
    other_alerts.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.count.cmp(&a.count)));
    for h in rule_hits.iter().filter(|h| h.severity >= Severity::High) {
        findings.push(Finding {
            severity: h.severity,
            text: format!("Rule '{}' fired {} time(s)", h.title, h.count),
            event_refs: Vec::new(),
        });
    }
    // Closed and false-positive alerts need no triage.
    let open_high_alerts = alerts
        .iter()
        .filter(|a| a.severity >= Severity::High && !a.status.is_terminal())
        .count() as u64;
    if open_high_alerts > 0 {
        recommendations.push(format!(
            "Triage the {open_high_alerts} open high and critical alert(s) first"
        ));
    }
    if !suspicious.is_empty() {
        findings.push(Finding {
            severity: Severity::Medium,
            text: format!(
                "{} event(s) carry text that tries to instruct an AI model (prompt injection); \
                 whoever wrote them knows the logs are analysed",
                suspicious.len()
            ),
            event_refs: suspicious.iter().take(REFS).cloned().collect(),
        });
        recommendations.push(
            "Treat the sources of the prompt-injection text as hostile and investigate them".into(),
        );
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    recommendations.dedup();

    DeterministicAnalysis {
        event_count: events.len() as u64,
        by_host: top(&by_host),
        by_dataset: top(&by_dataset),
        by_outcome: top(&by_outcome),
        top_source_ips: top(&by_ip),
        failed_authentications: FailedAuth {
            total: failures,
            by_user: top(&fail_user),
            by_source_ip: top(&fail_ip),
        },
        rule_hits,
        other_alerts,
        open_high_alerts,
        findings,
        recommendations,
        injection_suspected: !suspicious.is_empty(),
        suspicious_event_refs: suspicious.into_iter().take(REFS).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(i: usize, doc: Value) -> SourceEvent {
        SourceEvent {
            reference: format!("e{i}"),
            doc,
        }
    }

    #[test]
    fn brute_force_then_success_is_a_critical_finding() {
        let mut events: Vec<SourceEvent> = (0..6)
            .map(|i| {
                ev(i, json!({"host": {"name": "web-1"}, "event": {"dataset": "auth", "outcome": "failure", "action": "ssh_login"},
                    "source": {"ip": "203.0.113.9"}, "user": {"name": "root"}, "message": "Failed password"}))
            })
            .collect();
        events.push(ev(6, json!({"host": {"name": "web-1"}, "event": {"dataset": "auth", "outcome": "success", "action": "ssh_login"},
            "source": {"ip": "203.0.113.9"}, "user": {"name": "root"}})));
        let a = aggregate(&events, &[]);
        assert_eq!(a.event_count, 7);
        assert_eq!(a.failed_authentications.total, 6);
        assert_eq!(
            a.failed_authentications.by_source_ip[0],
            Count {
                key: "203.0.113.9".into(),
                count: 6
            }
        );
        assert_eq!(a.findings[0].severity, Severity::Critical);
        assert!(a.findings[0].event_refs.contains(&"e6".to_string()));
        assert!(!a.injection_suspected);
        assert_eq!(aggregate(&events, &[]), a, "deterministic");
    }

    fn alert(title: &str, severity: &str, source: &str, status: &str) -> Alert {
        let now = vigil_core::event::format_timestamp(vigil_core::now());
        serde_json::from_value(json!({
            "id": uuid::Uuid::nil(), "alert_id": "A-1", "org_id": uuid::Uuid::nil(),
            "title": title, "description": "", "severity": severity, "status": status,
            "source": source, "event_type": "generic", "timestamp": now, "created_at": now,
            "updated_at": now, "metadata": {}, "attack_technique_id": null,
            "confidence_score": null, "agent_id": null, "tags": [], "observables": [],
            "resolution_notes": null, "acknowledged_by": null, "acknowledged_at": null,
            "closed_by": null, "closed_at": null}))
        .unwrap()
    }

    #[test]
    fn manual_alerts_are_not_rule_hits_and_closed_alerts_need_no_triage() {
        let alerts = [
            alert("Typed by hand", "critical", "user", "open"),
            alert("SSH Brute Force", "high", "rule", "closed"),
        ];
        let a = aggregate(&[], &alerts);
        assert_eq!(a.rule_hits.len(), 1);
        assert_eq!(a.rule_hits[0].title, "SSH Brute Force");
        assert_eq!(a.other_alerts[0].source, AlertSource::User);
        assert_eq!(a.open_high_alerts, 1);
        assert_eq!(
            a.recommendations,
            ["Triage the 1 open high and critical alert(s) first"]
        );
        let closed = [alert("SSH Brute Force", "high", "rule", "false_positive")];
        let a = aggregate(&[], &closed);
        assert_eq!(a.open_high_alerts, 0);
        assert!(a.recommendations.is_empty(), "{:?}", a.recommendations);
    }
}
