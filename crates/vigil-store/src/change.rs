//! Alert lifecycle changes as a pure function, so both backends apply exactly the same rules.

use chrono::{DateTime, Utc};
use vigil_core::{Alert, AlertEventKind, AlertStatus, Severity};

use crate::{Error, Result};

/// A requested change to an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    /// Move to another status; notes are stored when closing.
    Status {
        to: AlertStatus,
        notes: Option<String>,
    },
    /// Take ownership: records who acknowledged and moves an open alert to in_progress.
    Acknowledge,
    /// Set the severity (any status; the same severity changes nothing).
    Severity { to: Severity },
    /// Assign the alert to a user (by name), or unassign it with `None`.
    Assign { to: Option<String> },
}

impl AlertChange {
    /// The outbox event kind this change raises when it changed something.
    pub fn event_kind(&self, after: &Alert) -> AlertEventKind {
        match self {
            AlertChange::Status { .. } if after.status.is_terminal() => AlertEventKind::Closed,
            AlertChange::Status { .. } | AlertChange::Acknowledge => AlertEventKind::StatusChanged,
            AlertChange::Severity { .. } => AlertEventKind::SeverityChanged,
            AlertChange::Assign { .. } => AlertEventKind::Assigned,
        }
    }
}

/// One audited field change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: Option<String>,
    pub new: Option<String>,
}

fn set<T: ToString + PartialEq>(
    changes: &mut Vec<FieldChange>,
    field: &'static str,
    slot: &mut Option<T>,
    value: Option<T>,
) {
    if *slot != value {
        changes.push(FieldChange {
            field,
            old: slot.as_ref().map(ToString::to_string),
            new: value.as_ref().map(ToString::to_string),
        });
        *slot = value;
    }
}

/// The state machine's refusal, listing what `from` may move to.
fn refused(from: AlertStatus, to: AlertStatus) -> Error {
    Error::Transition {
        from,
        to,
        allowed: from.allowed_transitions(),
    }
}

/// Applies `change` to `alert` in place and returns the audited field changes (empty when
/// nothing changed, e.g. acknowledging twice).
pub fn apply_change(
    alert: &mut Alert,
    change: &AlertChange,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<FieldChange>> {
    let mut changes = Vec::new();
    let from = alert.status;
    let (to, notes) = match change {
        AlertChange::Severity { to } => {
            let mut slot = Some(alert.severity);
            set(&mut changes, "severity", &mut slot, Some(*to));
            alert.severity = *to;
            if !changes.is_empty() {
                alert.updated_at = now;
            }
            return Ok(changes);
        }
        AlertChange::Assign { to } => {
            set(&mut changes, "assignee", &mut alert.assignee, to.clone());
            if !changes.is_empty() {
                alert.updated_at = now;
            }
            return Ok(changes);
        }
        AlertChange::Status { to, notes } => (*to, notes.clone()),
        AlertChange::Acknowledge => {
            if from.is_terminal() {
                return Err(refused(from, AlertStatus::InProgress));
            }
            if alert.acknowledged_by.is_none() {
                set(
                    &mut changes,
                    "acknowledged_by",
                    &mut alert.acknowledged_by,
                    Some(actor.to_string()),
                );
                alert.acknowledged_at = Some(now);
            }
            let to = if from == AlertStatus::Open {
                AlertStatus::InProgress
            } else {
                from
            };
            (to, None)
        }
    };
    if to != from {
        if !from.can_transition_to(to) {
            return Err(refused(from, to));
        }
        changes.push(FieldChange {
            field: "status",
            old: Some(from.to_string()),
            new: Some(to.to_string()),
        });
        alert.status = to;
        if to.is_terminal() {
            set(
                &mut changes,
                "closed_by",
                &mut alert.closed_by,
                Some(actor.to_string()),
            );
            alert.closed_at = Some(now);
        } else if from.is_terminal() {
            // Reopened: it is no longer closed by anyone.
            set(&mut changes, "closed_by", &mut alert.closed_by, None);
            alert.closed_at = None;
        }
        if to == AlertStatus::InProgress && alert.acknowledged_by.is_none() {
            set(
                &mut changes,
                "acknowledged_by",
                &mut alert.acknowledged_by,
                Some(actor.to_string()),
            );
            alert.acknowledged_at = Some(now);
        }
    } else if matches!(change, AlertChange::Status { .. }) {
        return Err(refused(from, to));
    }
    if let Some(n) = notes {
        set(
            &mut changes,
            "resolution_notes",
            &mut alert.resolution_notes,
            Some(n),
        );
    }
    if !changes.is_empty() {
        alert.updated_at = now;
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::{Alert, AlertSource, AlertStatus, Severity, now};

    fn alert() -> Alert {
        let now = now();
        Alert {
            id: uuid::Uuid::new_v4(),
            alert_id: "A-1".into(),
            org_id: uuid::Uuid::new_v4(),
            title: "t".into(),
            description: String::new(),
            severity: Severity::High,
            status: AlertStatus::Open,
            source: AlertSource::User,
            event_type: "generic".into(),
            timestamp: now,
            created_at: now,
            updated_at: now,
            metadata: serde_json::json!({}),
            attack_technique_id: None,
            confidence_score: None,
            agent_id: None,
            tags: vec![],
            observables: vec![],
            resolution_notes: None,
            acknowledged_by: None,
            acknowledged_at: None,
            closed_by: None,
            closed_at: None,
            assignee: None,
            event_count: 1,
            last_seen: None,
        }
    }

    #[test]
    fn acknowledge_moves_open_to_in_progress_once() {
        let mut a = alert();
        let c = apply_change(&mut a, &AlertChange::Acknowledge, "bob", now()).unwrap();
        assert_eq!(a.status, AlertStatus::InProgress);
        assert_eq!(a.acknowledged_by.as_deref(), Some("bob"));
        assert_eq!(c.len(), 2);
        let again = apply_change(&mut a, &AlertChange::Acknowledge, "eve", now()).unwrap();
        assert!(again.is_empty());
        assert_eq!(a.acknowledged_by.as_deref(), Some("bob"));
    }

    #[test]
    fn close_and_reopen_track_closer_and_notes() {
        let mut a = alert();
        let close = AlertChange::Status {
            to: AlertStatus::Closed,
            notes: Some("benign scanner".into()),
        };
        let c = apply_change(&mut a, &close, "amy", now()).unwrap();
        let fields: Vec<_> = c.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["status", "closed_by", "resolution_notes"]);
        assert!(a.closed_at.is_some());
        let err = apply_change(
            &mut a,
            &AlertChange::Status {
                to: AlertStatus::InProgress,
                notes: None,
            },
            "amy",
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Transition { allowed, .. } if allowed == [AlertStatus::Open]));
        apply_change(
            &mut a,
            &AlertChange::Status {
                to: AlertStatus::Open,
                notes: None,
            },
            "amy",
            now(),
        )
        .unwrap();
        assert!(a.closed_by.is_none() && a.closed_at.is_none());
    }

    #[test]
    fn severity_and_assignee_change_once_and_name_their_event() {
        let mut a = alert();
        let c = apply_change(
            &mut a,
            &AlertChange::Severity { to: Severity::Low },
            "x",
            now(),
        )
        .unwrap();
        assert_eq!(
            c,
            [FieldChange {
                field: "severity",
                old: Some("high".into()),
                new: Some("low".into())
            }]
        );
        assert_eq!(a.severity, Severity::Low);
        assert!(
            apply_change(
                &mut a,
                &AlertChange::Severity { to: Severity::Low },
                "x",
                now()
            )
            .unwrap()
            .is_empty()
        );
        let assign = AlertChange::Assign {
            to: Some("bob".into()),
        };
        let c = apply_change(&mut a, &assign, "x", now()).unwrap();
        assert_eq!(
            c,
            [FieldChange {
                field: "assignee",
                old: None,
                new: Some("bob".into())
            }]
        );
        assert_eq!(assign.event_kind(&a), AlertEventKind::Assigned);
        let c = apply_change(&mut a, &AlertChange::Assign { to: None }, "x", now()).unwrap();
        assert_eq!(c[0].old.as_deref(), Some("bob"));
        assert_eq!(a.assignee, None);
        let close = AlertChange::Status {
            to: AlertStatus::Closed,
            notes: None,
        };
        apply_change(&mut a, &close, "x", now()).unwrap();
        assert_eq!(close.event_kind(&a), AlertEventKind::Closed);
        assert_eq!(
            AlertChange::Acknowledge.event_kind(&a),
            AlertEventKind::StatusChanged
        );
    }

    #[test]
    fn same_status_is_rejected_and_terminal_ack_is_rejected() {
        let mut a = alert();
        assert!(
            apply_change(
                &mut a,
                &AlertChange::Status {
                    to: AlertStatus::Open,
                    notes: None
                },
                "x",
                now()
            )
            .is_err()
        );
        a.status = AlertStatus::FalsePositive;
        assert!(apply_change(&mut a, &AlertChange::Acknowledge, "x", now()).is_err());
    }
}
