//! Organizations, users and roles, agents and response actions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::alert::string_enum;
use crate::{Error, Result};

string_enum!(
    /// What a user may do. Ordered: `Viewer < Analyst < Admin`; each role includes the ones below.
    Role, "role", {
        /// Reads alerts, history and dashboards.
        Viewer = "viewer",
        /// Viewer, plus triage: create alerts, change status, acknowledge, close.
        Analyst = "analyst",
        /// Analyst, plus user management within the organization.
        Admin = "admin",
    }
);

impl Role {
    fn level(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Analyst => 1,
            Role::Admin => 2,
        }
    }
    /// Whether this role includes `required`.
    pub fn allows(self, required: Role) -> bool {
        self.level() >= required.level()
    }
}

/// A tenant. Every alert, user and agent belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A user account (never carries the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A username: 3 to 64 characters of letters, digits and `._-@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self> {
        let n = s.chars().count();
        let ok = (3..=64).contains(&n)
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(Error::Invalid {
                kind: "username",
                value: s.chars().take(64).collect(),
                reason: "must be 3-64 characters of letters, digits and . _ - @",
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Minimum password length; long passphrases are encouraged, no composition rules.
pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 1024;

/// Checks a new password against the policy.
pub fn validate_password(p: &str) -> Result<()> {
    let n = p.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(Error::Invalid {
            kind: "password",
            value: String::new(),
            reason: "must be 12 to 1024 characters long",
        });
    }
    Ok(())
}

string_enum!(
    /// Connection state of an agent, derived from its last heartbeat.
    AgentStatus, "agent status", {
        Online = "online",
        Offline = "offline",
        Stale = "stale",
    }
);

/// A monitored host running `vigil-agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub hostname: String,
    pub ip: Option<String>,
    pub os: Option<String>,
    pub version: Option<String>,
    pub status: AgentStatus,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When an admin revoked the agent's credential; a revoked agent cannot send.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The latest metrics snapshot from a heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub last_metrics: Option<serde_json::Value>,
}

impl AgentStatus {
    /// Seconds without a heartbeat after which an agent is no longer online.
    pub const ONLINE_SECS: i64 = 120;
    /// Seconds without a heartbeat after which an agent counts as offline.
    pub const STALE_SECS: i64 = 900;

    /// The status an agent last heard from at `last_seen` has at `now`.
    pub fn from_last_seen(last_seen: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        match last_seen.map(|t| (now - t).num_seconds()) {
            Some(s) if s <= Self::ONLINE_SECS => AgentStatus::Online,
            Some(s) if s <= Self::STALE_SECS => AgentStatus::Stale,
            _ => AgentStatus::Offline,
        }
    }
}

/// A one-time enrollment token (the secret itself is shown once and stored hashed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentToken {
    pub id: Uuid,
    pub org_id: Uuid,
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub agent_id: Option<Uuid>,
}

string_enum!(
    /// What an API key may do.
    ApiScope, "API key scope", {
        /// Send events: `/api/v1/ingest/events`, `/loki/api/v1/push`.
        Ingest = "ingest",
    }
);

/// An API key for machines (log shippers); the secret is shown once and stored hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub scopes: Vec<ApiScope>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

string_enum!(
    /// Progress of a response action.
    ActionStatus, "action status", {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

/// A response action (block an IP, isolate a host, open a case ...), executed by later
/// integrations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Action {
    pub id: Uuid,
    pub org_id: Uuid,
    pub alert_id: Option<Uuid>,
    pub action_type: String,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    pub status: ActionStatus,
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_lower_roles() {
        assert!(Role::Admin.allows(Role::Analyst));
        assert!(Role::Analyst.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Analyst));
        assert!(!Role::Analyst.allows(Role::Admin));
    }

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert!(Username::parse("alice.b@corp").is_ok());
        for bad in ["ab", "has space", "semi;colon", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert!(validate_password("short").is_err());
        assert!(validate_password("correct horse battery").is_ok());
    }
}
