//! Alert events: what every sink (webhooks, the live stream, Redis fan-out) receives when an
//! alert changes. Written to the outbox in the same transaction as the change, so an event
//! exists exactly when its change was committed; delivered at least once with a stable id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{Alert, Error, Result};

/// The schema version of [`AlertEvent`]. A change that could break a receiver (a field
/// removed, renamed or given another meaning) bumps it; new fields do not.
pub const ALERT_EVENT_SCHEMA: u32 = 1;

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AlertEventKind {
    /// A new alert was raised (API, detection, import).
    #[serde(rename = "alert.created")]
    Created,
    /// A repeated detection was folded into an open alert by deduplication
    /// (`event_count` grew, `last_seen` moved).
    #[serde(rename = "alert.folded")]
    Folded,
    /// The status changed (acknowledged, in progress, reopened); closing is [`Self::Closed`].
    #[serde(rename = "alert.status_changed")]
    StatusChanged,
    /// The severity changed.
    #[serde(rename = "alert.severity_changed")]
    SeverityChanged,
    /// The assignee was set, changed or removed.
    #[serde(rename = "alert.assigned")]
    Assigned,
    /// An AI triage of the alert was stored (its suggestions wait for an analyst).
    #[serde(rename = "alert.triaged")]
    Triaged,
    /// The alert was closed or marked a false positive.
    #[serde(rename = "alert.closed")]
    Closed,
}

impl AlertEventKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [AlertEventKind] = &[
        Self::Created,
        Self::Folded,
        Self::StatusChanged,
        Self::SeverityChanged,
        Self::Assigned,
        Self::Triaged,
        Self::Closed,
    ];

    /// The serialised name, e.g. `alert.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "alert.created",
            Self::Folded => "alert.folded",
            Self::StatusChanged => "alert.status_changed",
            Self::SeverityChanged => "alert.severity_changed",
            Self::Assigned => "alert.assigned",
            Self::Triaged => "alert.triaged",
            Self::Closed => "alert.closed",
        }
    }
}

impl std::fmt::Display for AlertEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AlertEventKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidEnum {
                kind: "alert event kind",
                value: s.chars().take(64).collect(),
                expected: "alert.created alert.folded alert.status_changed alert.severity_changed \
                           alert.assigned alert.triaged alert.closed",
            })
    }
}

/// One field of the alert that changed, as text (the same values the alert history shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertFieldChange {
    /// The alert field: `status`, `severity`, `assignee`, `acknowledged_by`, `closed_by`,
    /// `resolution_notes`, `event_count`, `triage`.
    pub field: String,
    /// The value before the change; `null` when the field was empty.
    pub old: Option<String>,
    /// The value after the change; `null` when the field was cleared.
    pub new: Option<String>,
}

/// The versioned document every sink receives: the body of a webhook, the `event` of a
/// stream frame. Schema version 1 ([`ALERT_EVENT_SCHEMA`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertEvent {
    /// The schema version of this document (1).
    pub schema: u32,
    /// The event's id: the same on every redelivery of this event (the webhook id), so a
    /// receiver deduplicates on it.
    pub id: Uuid,
    /// Outbox sequence number: the stream's resume cursor. Increases with commit order on
    /// SQLite; on PostgreSQL concurrent transactions may commit out of sequence order, so
    /// it is approximate across them (never across the changes of one alert).
    pub seq: i64,
    /// What happened.
    pub kind: AlertEventKind,
    /// The organization the alert belongs to.
    pub org_id: Uuid,
    /// When the change was committed.
    pub occurred_at: DateTime<Utc>,
    /// Who made the change: a user name, `detection`, `system` or `ai`.
    pub actor: String,
    /// The alert as it is after the change.
    pub alert: Alert,
    /// The fields that changed, old and new; empty for `alert.created`.
    pub changes: Vec<AlertFieldChange>,
}

impl AlertFieldChange {
    /// A change of `field` from `old` to `new`.
    pub fn new(field: &str, old: Option<String>, new: Option<String>) -> Self {
        Self {
            field: field.to_string(),
            old,
            new,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialise_to_their_dotted_names_and_parse_back() {
        for k in AlertEventKind::ALL {
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<AlertEventKind>(&json).unwrap(), *k);
            assert_eq!(k.as_str().parse::<AlertEventKind>().unwrap(), *k);
        }
        assert!("alert.deleted".parse::<AlertEventKind>().is_err());
    }
}
