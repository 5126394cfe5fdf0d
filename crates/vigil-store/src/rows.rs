//! Row types shared by both backends (`FromRow` is derived generically over the row type)
//! and their conversion into domain values.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;
use vigil_core::{
    Action, Agent, AgentStatus, Alert, AlertHistoryEntry, ApiKey, ApiScope, EnrollmentToken,
    Observable, Organization, Severity, User,
};

use crate::Result;

/// Alert columns, qualified so they stay unambiguous in joins.
pub const ALERT_COLS: &str = "alerts.id, alerts.org_id, alerts.alert_id, alerts.title, \
    alerts.description, alerts.severity, alerts.status, alerts.source, alerts.event_type, \
    alerts.timestamp, alerts.created_at, alerts.updated_at, alerts.metadata, \
    alerts.attack_technique_id, alerts.confidence_score, alerts.agent_id, alerts.tags, \
    alerts.observables, alerts.resolution_notes, alerts.acknowledged_by, alerts.acknowledged_at, \
    alerts.closed_by, alerts.closed_at, alerts.event_count, alerts.last_seen, alerts.assignee";

pub const USER_COLS: &str =
    "id, org_id, username, email, role, disabled, created_at, last_login_at";

#[derive(sqlx::FromRow)]
pub struct AlertRow {
    id: Uuid,
    org_id: Uuid,
    alert_id: String,
    title: String,
    description: String,
    severity: i16,
    status: String,
    source: String,
    event_type: String,
    timestamp: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    metadata: Json<serde_json::Value>,
    attack_technique_id: Option<String>,
    confidence_score: Option<f64>,
    agent_id: Option<String>,
    tags: Json<Vec<String>>,
    observables: Json<Vec<Observable>>,
    resolution_notes: Option<String>,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<DateTime<Utc>>,
    closed_by: Option<String>,
    closed_at: Option<DateTime<Utc>>,
    event_count: i64,
    last_seen: Option<DateTime<Utc>>,
    assignee: Option<String>,
}

impl AlertRow {
    pub fn into_alert(self) -> Result<Alert> {
        Ok(Alert {
            id: self.id,
            alert_id: self.alert_id,
            org_id: self.org_id,
            title: self.title,
            description: self.description,
            severity: Severity::from_rank(self.severity)?,
            status: self.status.parse()?,
            source: self.source.parse()?,
            event_type: self.event_type,
            timestamp: self.timestamp,
            created_at: self.created_at,
            updated_at: self.updated_at,
            metadata: self.metadata.0,
            attack_technique_id: self.attack_technique_id,
            confidence_score: self.confidence_score,
            agent_id: self.agent_id,
            tags: self.tags.0,
            observables: self.observables.0,
            resolution_notes: self.resolution_notes,
            acknowledged_by: self.acknowledged_by,
            acknowledged_at: self.acknowledged_at,
            closed_by: self.closed_by,
            closed_at: self.closed_at,
            event_count: self.event_count,
            last_seen: self.last_seen,
            assignee: self.assignee,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct UserRow {
    id: Uuid,
    org_id: Uuid,
    username: String,
    email: Option<String>,
    role: String,
    disabled: bool,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

impl UserRow {
    pub fn into_user(self) -> Result<User> {
        Ok(User {
            id: self.id,
            org_id: self.org_id,
            username: self.username,
            email: self.email,
            role: self.role.parse()?,
            disabled: self.disabled,
            created_at: self.created_at,
            last_login_at: self.last_login_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct OrgRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl OrgRow {
    pub fn into_org(self) -> Organization {
        Organization {
            id: self.id,
            name: self.name,
            created_at: self.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct HistoryRow {
    id: i64,
    alert_id: Uuid,
    changed_by: String,
    changed_at: DateTime<Utc>,
    field: String,
    old_value: Option<String>,
    new_value: Option<String>,
}

impl HistoryRow {
    pub fn into_entry(self) -> AlertHistoryEntry {
        AlertHistoryEntry {
            id: self.id,
            alert_id: self.alert_id,
            changed_by: self.changed_by,
            changed_at: self.changed_at,
            field: self.field,
            old_value: self.old_value,
            new_value: self.new_value,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct AgentRow {
    id: Uuid,
    org_id: Uuid,
    hostname: String,
    ip: Option<String>,
    os: Option<String>,
    version: Option<String>,
    last_seen: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_metrics: Option<Json<serde_json::Value>>,
}

pub const AGENT_COLS: &str =
    "id, org_id, hostname, ip, os, version, last_seen, created_at, revoked_at, last_metrics";

impl AgentRow {
    /// The status is derived from the last heartbeat at read time.
    pub fn into_agent(self) -> Result<Agent> {
        let status = if self.revoked_at.is_some() {
            AgentStatus::Offline
        } else {
            AgentStatus::from_last_seen(self.last_seen, Utc::now())
        };
        Ok(Agent {
            id: self.id,
            org_id: self.org_id,
            hostname: self.hostname,
            ip: self.ip,
            os: self.os,
            version: self.version,
            status,
            last_seen: self.last_seen,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            last_metrics: self.last_metrics.map(|j| j.0),
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct EnrollmentRow {
    id: Uuid,
    org_id: Uuid,
    description: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    agent_id: Option<Uuid>,
}

pub const ENROLLMENT_COLS: &str =
    "id, org_id, description, created_by, created_at, expires_at, used_at, agent_id";

impl From<EnrollmentRow> for EnrollmentToken {
    fn from(r: EnrollmentRow) -> Self {
        EnrollmentToken {
            id: r.id,
            org_id: r.org_id,
            description: r.description,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            agent_id: r.agent_id,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct ApiKeyRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    scopes: String,
    created_by: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

pub const API_KEY_COLS: &str =
    "id, org_id, name, scopes, created_by, created_at, revoked_at, last_used_at";

impl ApiKeyRow {
    pub fn into_key(self) -> Result<ApiKey> {
        let scopes = self
            .scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<ApiScope>())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(ApiKey {
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            scopes,
            created_by: self.created_by,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct EventRow {
    id: Uuid,
    timestamp: DateTime<Utc>,
    ingested_at: DateTime<Utc>,
    host: Option<String>,
    dataset: Option<String>,
    channel: String,
    message: Option<String>,
    doc: Json<serde_json::Value>,
}

pub const EVENT_COLS: &str = "id, timestamp, ingested_at, host, dataset, channel, message, doc";

impl From<EventRow> for crate::StoredEvent {
    fn from(r: EventRow) -> Self {
        crate::StoredEvent {
            id: r.id,
            timestamp: r.timestamp,
            ingested_at: r.ingested_at,
            host: r.host,
            dataset: r.dataset,
            channel: r.channel,
            message: r.message,
            doc: r.doc.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct ActionRow {
    id: Uuid,
    org_id: Uuid,
    alert_id: Option<Uuid>,
    action_type: String,
    parameters: Json<serde_json::Value>,
    status: String,
    result: Option<Json<serde_json::Value>>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl ActionRow {
    pub fn into_action(self) -> Result<Action> {
        Ok(Action {
            id: self.id,
            org_id: self.org_id,
            alert_id: self.alert_id,
            action_type: self.action_type,
            parameters: self.parameters.0,
            status: self.status.parse()?,
            result: self.result.map(|j| j.0),
            created_by: self.created_by,
            created_at: self.created_at,
            completed_at: self.completed_at,
        })
    }
}
