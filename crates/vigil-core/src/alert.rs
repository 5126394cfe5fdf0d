//! Alerts: the record an analyst works on, its enumerations, validation and lifecycle.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{Error, Result};

/// Declares a closed string enumeration with `FromStr` (case-insensitive), `Display`,
/// `as_str`, `ALL` and serde in snake_case.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $kind:literal, { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The canonical lowercase name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $(if s.eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err(Error::InvalidEnum {
                    kind: $kind,
                    value: s.chars().take(64).collect(),
                    expected: concat!($($text, " "),+),
                })
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// How bad an alert is. Ordered: `Low < Medium < High < Critical`.
    Severity, "severity", {
        Low = "low",
        Medium = "medium",
        High = "high",
        Critical = "critical",
    }
);

impl Severity {
    /// Numeric rank (1..=4) used for storage and sorting.
    pub fn rank(self) -> i16 {
        match self {
            Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High => 3,
            Severity::Critical => 4,
        }
    }

    /// Inverse of [`Severity::rank`].
    pub fn from_rank(rank: i16) -> Result<Self> {
        match rank {
            1 => Ok(Severity::Low),
            2 => Ok(Severity::Medium),
            3 => Ok(Severity::High),
            4 => Ok(Severity::Critical),
            _ => Err(Error::Invalid {
                kind: "severity rank",
                value: rank.to_string(),
                reason: "must be 1..=4",
            }),
        }
    }
}

#[allow(clippy::derivable_impls)] // the enum is declared by a macro
impl Default for Severity {
    fn default() -> Self {
        Severity::Medium
    }
}

impl PartialOrd for Severity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Severity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

string_enum!(
    /// Where an alert is in its lifecycle. See [`AlertStatus::can_transition_to`].
    AlertStatus, "status", {
        Open = "open",
        InProgress = "in_progress",
        Closed = "closed",
        FalsePositive = "false_positive",
    }
);

impl AlertStatus {
    /// The states this one may move to.
    ///
    /// `open -> in_progress | closed | false_positive`, `in_progress -> open | closed |
    /// false_positive`, and a closed or false-positive alert can only be reopened.
    pub fn allowed_transitions(self) -> &'static [AlertStatus] {
        use AlertStatus::*;
        match self {
            Open => &[InProgress, Closed, FalsePositive],
            InProgress => &[Open, Closed, FalsePositive],
            Closed | FalsePositive => &[Open],
        }
    }

    pub fn can_transition_to(self, to: AlertStatus) -> bool {
        self.allowed_transitions().contains(&to)
    }

    /// Terminal states record who closed the alert and when.
    pub fn is_terminal(self) -> bool {
        matches!(self, AlertStatus::Closed | AlertStatus::FalsePositive)
    }
}

string_enum!(
    /// What produced an alert.
    AlertSource, "source", {
        Agent = "agent",
        MlEngine = "ml_engine",
        User = "user",
        Rule = "rule",
        Intel = "intel",
    }
);

string_enum!(
    /// Kind of an observable (artifact) attached to an alert; names follow TheHive's data types.
    ObservableType, "observable type", {
        Ip = "ip",
        Domain = "domain",
        Fqdn = "fqdn",
        Hostname = "hostname",
        Url = "url",
        UriPath = "uri_path",
        Hash = "hash",
        Mail = "mail",
        Filename = "filename",
        UserAgent = "user_agent",
        Registry = "registry",
        User = "user",
        Other = "other",
    }
);

/// An artifact attached to an alert (an IP, a hash, a domain ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Observable {
    #[serde(rename = "type")]
    pub kind: ObservableType,
    pub value: String,
}

/// A MITRE ATT&CK technique id such as `T1059` or `T1059.001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttackTechniqueId(String);

impl AttackTechniqueId {
    pub fn parse(s: &str) -> Result<Self> {
        let up = s.trim().to_ascii_uppercase();
        let b = up.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        let ok = match b.len() {
            5 => b[0] == b'T' && digits(1..5),
            9 => b[0] == b'T' && digits(1..5) && b[5] == b'.' && digits(6..9),
            _ => false,
        };
        if ok {
            Ok(Self(up))
        } else {
            Err(Error::Invalid {
                kind: "ATT&CK technique id",
                value: s.chars().take(64).collect(),
                reason: "expected T followed by 4 digits, optionally .NNN (e.g. T1059.001)",
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AttackTechniqueId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}
impl From<AttackTechniqueId> for String {
    fn from(t: AttackTechniqueId) -> String {
        t.0
    }
}

/// An alert as stored and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Internal id.
    pub id: Uuid,
    /// Human-readable id, unique within the organization (given by the source or generated).
    pub alert_id: String,
    pub org_id: Uuid,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub status: AlertStatus,
    pub source: AlertSource,
    pub event_type: String,
    /// When the detected activity happened.
    pub timestamp: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// MITRE ATT&CK technique, e.g. `T1059.001`.
    pub attack_technique_id: Option<String>,
    /// Confidence in the detection, 0.0 to 1.0.
    pub confidence_score: Option<f64>,
    pub agent_id: Option<String>,
    pub tags: Vec<String>,
    pub observables: Vec<Observable>,
    pub resolution_notes: Option<String>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The user the alert is assigned to (`PATCH /alerts/{id}/assignee`); `null` when unassigned.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Detections folded into this alert by deduplication (1 for an alert raised once).
    #[serde(default = "one")]
    pub event_count: i64,
    /// Time of the latest detection folded into this alert, when deduplication updated it.
    #[serde(default)]
    pub last_seen: Option<DateTime<Utc>>,
}

fn one() -> i64 {
    1
}

/// Unvalidated input for a new alert (the body of `POST /alerts`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertInput {
    pub alert_id: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub severity: Severity,
    #[serde(default)]
    pub source: Option<AlertSource>,
    #[serde(default)]
    pub event_type: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
    pub attack_technique_id: Option<String>,
    pub confidence_score: Option<f64>,
    pub agent_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, alias = "artifacts")]
    pub observables: Vec<Observable>,
}

/// A validated new alert, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub alert_id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub source: AlertSource,
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    pub metadata: serde_json::Value,
    pub attack_technique_id: Option<AttackTechniqueId>,
    pub confidence_score: Option<f64>,
    pub agent_id: Option<String>,
    pub tags: Vec<String>,
    pub observables: Vec<Observable>,
}

/// Limits on alert fields; input beyond them is rejected, never truncated silently.
pub mod limits {
    pub const TITLE_MAX: usize = 512;
    pub const DESCRIPTION_MAX: usize = 16 * 1024;
    pub const ALERT_ID_MAX: usize = 128;
    pub const EVENT_TYPE_MAX: usize = 128;
    pub const AGENT_ID_MAX: usize = 128;
    pub const TAGS_MAX: usize = 64;
    pub const TAG_MAX: usize = 128;
    pub const OBSERVABLES_MAX: usize = 256;
    pub const OBSERVABLE_VALUE_MAX: usize = 4096;
    pub const METADATA_MAX_BYTES: usize = 64 * 1024;
    pub const NOTES_MAX: usize = 16 * 1024;
}

fn check_len(kind: &'static str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(Error::Invalid {
            kind,
            value: value.chars().take(64).collect(),
            reason: if n < min {
                "must not be empty"
            } else {
                "is too long"
            },
        });
    }
    Ok(())
}

fn has_control_chars(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

/// Validates free-text notes (resolution notes, comments).
pub fn validate_notes(notes: &str) -> Result<()> {
    check_len("resolution_notes", notes, 0, limits::NOTES_MAX)
}

/// Generates a human-readable alert id: `ALERT-YYYYMMDD-xxxxxxxx`.
pub fn generate_alert_id(at: DateTime<Utc>) -> String {
    let r = Uuid::new_v4().simple().to_string();
    format!("ALERT-{}-{}", at.format("%Y%m%d"), &r[..12])
}

impl NewAlert {
    /// Validates input. `now` fills a missing timestamp.
    pub fn parse(input: AlertInput, now: DateTime<Utc>) -> Result<Self> {
        let title = input.title.trim().to_string();
        check_len("title", &title, 1, limits::TITLE_MAX)?;
        check_len(
            "description",
            &input.description,
            0,
            limits::DESCRIPTION_MAX,
        )?;
        let alert_id = match input.alert_id {
            Some(id) => {
                check_len("alert_id", &id, 1, limits::ALERT_ID_MAX)?;
                if !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
                {
                    return Err(Error::Invalid {
                        kind: "alert_id",
                        value: id.chars().take(64).collect(),
                        reason: "may contain only letters, digits and - _ . :",
                    });
                }
                id
            }
            None => generate_alert_id(now),
        };
        let event_type = input.event_type.unwrap_or_else(|| "generic".into());
        check_len("event_type", &event_type, 1, limits::EVENT_TYPE_MAX)?;
        if let Some(a) = &input.agent_id {
            check_len("agent_id", a, 1, limits::AGENT_ID_MAX)?;
        }
        let attack_technique_id = input
            .attack_technique_id
            .as_deref()
            .map(AttackTechniqueId::parse)
            .transpose()?;
        if let Some(c) = input.confidence_score
            && !(c.is_finite() && (0.0..=1.0).contains(&c))
        {
            return Err(Error::Invalid {
                kind: "confidence_score",
                value: c.to_string(),
                reason: "must be a number from 0.0 to 1.0",
            });
        }
        if input.tags.len() > limits::TAGS_MAX {
            return Err(Error::Invalid {
                kind: "tags",
                value: input.tags.len().to_string(),
                reason: "too many tags (at most 64)",
            });
        }
        let mut tags: Vec<String> = Vec::with_capacity(input.tags.len());
        for t in input.tags {
            let t = t.trim().to_string();
            check_len("tag", &t, 1, limits::TAG_MAX)?;
            if has_control_chars(&t) {
                return Err(Error::Invalid {
                    kind: "tag",
                    value: t.chars().take(64).collect(),
                    reason: "must not contain control characters",
                });
            }
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        if input.observables.len() > limits::OBSERVABLES_MAX {
            return Err(Error::Invalid {
                kind: "observables",
                value: input.observables.len().to_string(),
                reason: "too many observables (at most 256)",
            });
        }
        for o in &input.observables {
            check_len(
                "observable value",
                &o.value,
                1,
                limits::OBSERVABLE_VALUE_MAX,
            )?;
        }
        let metadata = input
            .metadata
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        if !metadata.is_object() {
            return Err(Error::Invalid {
                kind: "metadata",
                value: String::new(),
                reason: "must be a JSON object",
            });
        }
        if serde_json::to_vec(&metadata).map_or(0, |v| v.len()) > limits::METADATA_MAX_BYTES {
            return Err(Error::Invalid {
                kind: "metadata",
                value: String::new(),
                reason: "is larger than 64 KiB",
            });
        }
        Ok(NewAlert {
            alert_id,
            title,
            description: input.description,
            severity: input.severity,
            source: input.source.unwrap_or(AlertSource::User),
            event_type,
            timestamp: crate::truncate_micros(input.timestamp.unwrap_or(now)),
            metadata,
            attack_technique_id,
            confidence_score: input.confidence_score,
            agent_id: input.agent_id,
            tags,
            observables: input.observables,
        })
    }
}

/// One entry of an alert's audit trail: who changed which field from what to what, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertHistoryEntry {
    pub id: i64,
    pub alert_id: Uuid,
    /// Username of the actor (or `system`).
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

/// Field an alert list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertSortField {
    #[default]
    Timestamp,
    CreatedAt,
    UpdatedAt,
    Severity,
}

impl std::str::FromStr for AlertSortField {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "timestamp" => Ok(Self::Timestamp),
            "created_at" => Ok(Self::CreatedAt),
            "updated_at" => Ok(Self::UpdatedAt),
            "severity" => Ok(Self::Severity),
            _ => Err(Error::InvalidEnum {
                kind: "sort field",
                value: s.chars().take(64).collect(),
                expected: "timestamp created_at updated_at severity",
            }),
        }
    }
}

/// Filters, order and page of an alert listing. Every filter is AND-ed; list-valued filters
/// match any of their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    pub statuses: Vec<AlertStatus>,
    pub severities: Vec<Severity>,
    pub sources: Vec<AlertSource>,
    pub agent_id: Option<String>,
    /// Matches the technique and its sub-techniques (`T1059` matches `T1059.001`).
    pub technique: Option<AttackTechniqueId>,
    pub tag: Option<String>,
    /// Case-insensitive substring of title or description.
    pub text: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub sort: AlertSortField,
    pub descending: bool,
    pub skip: u64,
    pub limit: u64,
    /// Keyset position returned by a previous page; when set, `skip` is ignored.
    pub cursor: Option<Cursor>,
    /// Count every match even beyond [`AlertFilter::count_cap`] (slower on large result sets).
    pub exact_total: bool,
}

/// Listings count matches exactly up to this many; beyond it `total` is this lower bound
/// and `total_is_exact` is false (like Elasticsearch's `track_total_hits`), unless the
/// caller asks for an exact count.
pub const TOTAL_COUNT_CAP: u64 = 10_000;

/// The count cap when a text search is part of the filter: text is matched row by row,
/// so its count stops sooner.
pub const TEXT_COUNT_CAP: u64 = 1_000;

impl AlertFilter {
    /// How far listings count matches before reporting a lower bound.
    pub fn count_cap(&self) -> u64 {
        if self.text.is_some() {
            TEXT_COUNT_CAP
        } else {
            TOTAL_COUNT_CAP
        }
    }
}

/// Keyset position: the sort key and id of the last row of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sort key: microseconds since the epoch for time fields, the rank for severity.
    pub key: i64,
    /// Secondary key (timestamp in microseconds) when sorting by severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    pub id: Uuid,
}

/// One page of alerts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<Alert>,
    /// Number of alerts matching the filter, ignoring pagination; a lower bound when
    /// `total_is_exact` is false.
    pub total: u64,
    /// False when more alerts match than the count cap (10,000; 1,000 with a text search)
    /// and `exact_total=true` was not asked for.
    pub total_is_exact: bool,
    pub skip: u64,
    pub limit: u64,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AlertInput {
        AlertInput {
            title: "Brute force".into(),
            severity: Severity::High,
            ..Default::default()
        }
    }

    #[test]
    fn state_machine_allows_only_listed_transitions() {
        use AlertStatus::*;
        let mut allowed = vec![];
        for &a in AlertStatus::ALL {
            for &b in AlertStatus::ALL {
                if a.can_transition_to(b) {
                    allowed.push((a, b));
                }
            }
        }
        assert_eq!(
            allowed,
            vec![
                (Open, InProgress),
                (Open, Closed),
                (Open, FalsePositive),
                (InProgress, Open),
                (InProgress, Closed),
                (InProgress, FalsePositive),
                (Closed, Open),
                (FalsePositive, Open),
            ]
        );
    }

    #[test]
    fn enums_parse_case_insensitively_and_reject_unknown() {
        assert_eq!("Critical".parse::<Severity>().unwrap(), Severity::Critical);
        assert_eq!(
            "IN_PROGRESS".parse::<AlertStatus>().unwrap(),
            AlertStatus::InProgress
        );
        let e = "urgent".parse::<Severity>().unwrap_err().to_string();
        assert!(e.contains("urgent") && e.contains("critical"), "{e}");
        assert!(Severity::Low < Severity::Critical);
        for &s in Severity::ALL {
            assert_eq!(Severity::from_rank(s.rank()).unwrap(), s);
        }
    }

    #[test]
    fn technique_ids_are_validated_and_normalised() {
        assert_eq!(
            AttackTechniqueId::parse("t1059.001").unwrap().as_str(),
            "T1059.001"
        );
        for bad in ["T105", "T1059.01", "X1059", "T1059.0011", "", "T10590"] {
            assert!(AttackTechniqueId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_alert_fills_defaults_and_dedups_tags() {
        let now = crate::now();
        let mut i = input();
        i.tags = vec!["a".into(), " a ".into(), "b".into()];
        let a = NewAlert::parse(i, now).unwrap();
        assert_eq!(a.tags, vec!["a", "b"]);
        assert_eq!(a.source, AlertSource::User);
        assert_eq!(a.timestamp, now);
        assert!(a.alert_id.starts_with("ALERT-"));
        assert!(a.metadata.is_object());
    }

    #[test]
    fn new_alert_rejects_bad_fields() {
        let now = crate::now();
        type Mutation = Box<dyn Fn(&mut AlertInput)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("title", Box::new(|i| i.title = "  ".into())),
            ("title", Box::new(|i| i.title = "x".repeat(513))),
            ("confidence", Box::new(|i| i.confidence_score = Some(1.5))),
            (
                "confidence",
                Box::new(|i| i.confidence_score = Some(f64::NAN)),
            ),
            (
                "technique",
                Box::new(|i| i.attack_technique_id = Some("bad".into())),
            ),
            ("alert_id", Box::new(|i| i.alert_id = Some("a b".into()))),
            (
                "metadata",
                Box::new(|i| i.metadata = Some(serde_json::json!([1]))),
            ),
            ("tags", Box::new(|i| i.tags = vec!["t".into(); 65])),
            ("tag", Box::new(|i| i.tags = vec!["a\u{0}b".into()])),
        ];
        for (name, f) in cases {
            let mut i = input();
            f(&mut i);
            assert!(NewAlert::parse(i, now).is_err(), "{name} accepted");
        }
    }
}
