//! What a stream client wants to see: sent in a `subscribe` message (WebSocket) or as query
//! parameters (SSE). Empty lists and a missing severity match everything.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_core::{Alert, AlertSource, AlertStatus, Severity};

use crate::error::ApiError;

/// Most values one list of a filter may hold.
const MAX_VALUES: usize = 100;

/// Alerts a stream delivers: each given criterion must hold (lists match any of their
/// values). Applied to the alert as it is after the change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StreamFilter {
    /// Minimum severity (`high`: high and critical).
    pub severity: Option<Severity>,
    /// Sources, any of.
    pub source: Vec<AlertSource>,
    /// Statuses after the change, any of.
    pub status: Vec<AlertStatus>,
    /// Tags: the alert carries at least one of them.
    pub tag: Vec<String>,
}

impl StreamFilter {
    pub fn matches(&self, alert: &Alert) -> bool {
        self.severity.is_none_or(|min| alert.severity >= min)
            && (self.source.is_empty() || self.source.contains(&alert.source))
            && (self.status.is_empty() || self.status.contains(&alert.status))
            && (self.tag.is_empty() || alert.tags.iter().any(|t| self.tag.contains(t)))
    }

    /// Whether it matches everything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Refuses filters that could never match or are too large to be meant.
    pub fn check(&self) -> Result<(), String> {
        if self.source.len() > MAX_VALUES
            || self.status.len() > MAX_VALUES
            || self.tag.len() > MAX_VALUES
        {
            return Err(format!("a filter list holds at most {MAX_VALUES} values"));
        }
        if let Some(t) = self
            .tag
            .iter()
            .find(|t| t.is_empty() || t.chars().any(char::is_control))
        {
            return Err(format!("tag {t:?} is empty or holds control characters"));
        }
        Ok(())
    }

    /// Takes one query parameter (`severity`, `source`, `status`, `tag`; lists
    /// comma-separated or repeated); `Ok(false)` when the key is not a filter key.
    pub fn set_query_param(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        let invalid =
            |e: vigil_core::Error| ApiError::bad_request("invalid_query", format!("{key}: {e}"));
        let parts = value.split(',').map(str::trim).filter(|p| !p.is_empty());
        match key {
            "severity" => self.severity = Some(value.trim().parse().map_err(invalid)?),
            "source" => {
                for p in parts {
                    self.source.push(p.parse().map_err(invalid)?);
                }
            }
            "status" => {
                for p in parts {
                    self.status.push(p.parse().map_err(invalid)?);
                }
            }
            "tag" => {
                crate::api::no_control_chars(key, value)?;
                self.tag.extend(parts.map(str::to_owned));
            }
            _ => return Ok(false),
        }
        self.check()
            .map_err(|m| ApiError::bad_request("invalid_query", m))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(severity: Severity, source: AlertSource, status: AlertStatus, tags: &[&str]) -> Alert {
        let now = vigil_core::now();
        Alert {
            id: uuid::Uuid::new_v4(),
            alert_id: "A-1".into(),
            org_id: uuid::Uuid::new_v4(),
            title: "t".into(),
            description: String::new(),
            severity,
            status,
            source,
            event_type: "x".into(),
            timestamp: now,
            created_at: now,
            updated_at: now,
            metadata: serde_json::json!({}),
            attack_technique_id: None,
            confidence_score: None,
            agent_id: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            observables: vec![],
            resolution_notes: None,
            acknowledged_by: None,
            acknowledged_at: None,
            closed_by: None,
            closed_at: None,
            event_count: 1,
            last_seen: None,
            assignee: None,
        }
    }

    #[test]
    fn every_criterion_must_hold() {
        let f: StreamFilter = serde_json::from_value(serde_json::json!({
            "severity": "high", "source": ["rule", "agent"], "status": ["open"], "tag": ["vip", "prod"]
        }))
        .unwrap();
        use AlertSource::*;
        use AlertStatus::*;
        use Severity::*;
        assert!(f.matches(&alert(Critical, Rule, Open, &["prod"])));
        assert!(f.matches(&alert(High, Agent, Open, &["x", "vip"])));
        assert!(
            !f.matches(&alert(Medium, Rule, Open, &["vip"])),
            "below the minimum"
        );
        assert!(
            !f.matches(&alert(High, User, Open, &["vip"])),
            "other source"
        );
        assert!(
            !f.matches(&alert(High, Rule, Closed, &["vip"])),
            "other status"
        );
        assert!(
            !f.matches(&alert(High, Rule, Open, &["VIP"])),
            "tags match exactly"
        );
        assert!(!f.matches(&alert(High, Rule, Open, &[])), "no tag");
        assert!(StreamFilter::default().matches(&alert(Low, User, Closed, &[])));
    }

    #[test]
    fn unknown_values_and_keys_are_refused() {
        for bad in [
            serde_json::json!({"severity": "urgent"}),
            serde_json::json!({"source": ["nope"]}),
            serde_json::json!({"severities": ["high"]}),
        ] {
            assert!(
                serde_json::from_value::<StreamFilter>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let mut f = StreamFilter::default();
        assert!(f.set_query_param("severity", "HIGH").unwrap());
        assert!(f.set_query_param("status", "open,in_progress").unwrap());
        assert!(f.set_query_param("tag", "a").unwrap());
        assert!(f.set_query_param("tag", "b,c").unwrap());
        assert!(!f.set_query_param("after", "1").unwrap());
        assert_eq!(f.severity, Some(Severity::High));
        assert_eq!(f.status, vec![AlertStatus::Open, AlertStatus::InProgress]);
        assert_eq!(f.tag, vec!["a", "b", "c"]);
        assert_eq!(
            f.set_query_param("source", "rule,x").unwrap_err().code,
            "invalid_query"
        );
    }
}
