//! Vigil's state: one [`Store`] trait with two implementations chosen by URL.
//!
//! * `sqlite://path/to/file.db` (the default, WAL mode, one writer connection and a pool
//!   of readers) — [`SqliteStore`];
//! * `postgres://user@host/db` — [`PgStore`].
//!
//! Both run the same SQL text (the implementation lives once in `common.rs`, compiled for
//! each typed pool) and embed their migrations, which [`Store::migrate`] applies.
//!
//! ```no_run
//! # async fn demo() -> vigil_store::Result<()> {
//! let store = vigil_store::connect("sqlite://vigil-data/vigil.db", 8).await?;
//! store.migrate().await?;
//! let org = store.create_org("acme").await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use vigil_core::{
    Action, ActionStatus, Agent, Alert, AlertFilter, AlertHistoryEntry, AlertPage, ApiKey,
    ApiScope, EnrollmentToken, NewAlert, Organization, Role, User,
};

mod change;
mod error;
mod events;
pub mod ml;
pub mod outbox;
mod postgres;
mod rows;
mod sqlite;
pub mod stream;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
pub mod webhooks;

pub use change::{AlertChange, FieldChange, apply_change};
pub use error::{Error, Result};
pub use events::{
    AppendOutcome, EventFilter, EventPage, EventStore, MAX_KEY_CHARS, NewEvent, StoredEvent,
    valid_field_path as events_valid_field_path,
};
pub use ml::{MlStore, NewFeatureRow, NewModel, StoredModel};
pub use outbox::OutboxStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use stream::{NewStreamTicket, StreamStore, StreamTicket};
pub use webhooks::{
    NewWebhookDelivery, NewWebhookEndpoint, WebhookAttemptContext, WebhookAttemptLog,
    WebhookAttemptRecord, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint,
    WebhookEndpointUpdate, WebhookNext, WebhookStore,
};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub org_id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub role: Role,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub email: Option<Option<String>>,
}

/// Result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was valid; it is now spent and the new one is stored in the same session.
    Rotated { user_id: Uuid, session_id: Uuid },
    /// The token had already been used: the whole session (token family) is now revoked.
    Reused { session_id: Uuid },
    /// Unknown, expired, or its session was revoked.
    Invalid,
}

/// A new response action.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub alert_id: Option<Uuid>,
    pub action_type: String,
    pub parameters: serde_json::Value,
    pub created_by: Option<String>,
}

/// A new enrollment token; the secret is already hashed.
#[derive(Debug, Clone)]
pub struct NewEnrollmentToken {
    pub org_id: Uuid,
    pub token_hash: Vec<u8>,
    pub description: Option<String>,
    pub created_by: String,
    pub expires_at: DateTime<Utc>,
}

/// An agent registering with an enrollment token; the credential is already hashed.
#[derive(Debug, Clone)]
pub struct NewAgentRegistration {
    pub hostname: String,
    pub os: Option<String>,
    pub version: Option<String>,
    pub ip: Option<String>,
    pub credential_hash: Vec<u8>,
}

/// A heartbeat to record.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatUpdate {
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub version: Option<String>,
    pub ip: Option<String>,
    pub metrics: Option<serde_json::Value>,
}

/// A new API key; the secret is already hashed.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub org_id: Uuid,
    pub name: String,
    pub key_hash: Vec<u8>,
    pub scopes: Vec<ApiScope>,
    pub created_by: String,
}

/// An alert the detection pipeline wants raised. With a `dedup_key`, an open or
/// in-progress alert with the same key created within the window absorbs it instead
/// (its `event_count` grows and `last_seen` moves).
#[derive(Debug, Clone)]
pub struct Detection {
    pub alert: NewAlert,
    pub dedup_key: Option<String>,
    pub seen: DateTime<Utc>,
}

/// What became of a [`Detection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectionOutcome {
    Created(Uuid),
    Folded(Uuid),
}

/// Everything Vigil persists. Every method that touches tenant data takes the org id, so a
/// caller cannot read or change another organization's rows by id alone.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Applies the embedded migrations that have not run yet.
    async fn migrate(&self) -> Result<()>;
    /// Refreshes the query planner's statistics; call after large loads.
    async fn analyze(&self) -> Result<()>;
    /// Checks that the database takes a write: the writer commits a one-row upsert, and on
    /// SQLite the file at the path is still the one opened at start.
    async fn ping(&self) -> Result<()>;
    /// Waits for in-flight queries and closes the connections.
    async fn close(&self);

    // Organizations
    async fn create_org(&self, name: &str) -> Result<Organization>;
    async fn get_org_by_name(&self, name: &str) -> Result<Option<Organization>>;
    async fn list_orgs(&self) -> Result<Vec<Organization>>;

    // Users
    async fn count_users(&self) -> Result<u64>;
    async fn create_user(&self, user: NewUser) -> Result<User>;
    /// `org = None` looks across organizations (CLI and token validation only).
    async fn get_user(&self, org: Option<Uuid>, id: Uuid) -> Result<Option<User>>;
    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// The user and their password hash, for login.
    async fn get_credentials(&self, username: &str) -> Result<Option<(User, String)>>;
    async fn list_users(&self, org: Option<Uuid>) -> Result<Vec<User>>;
    async fn update_user(&self, org: Option<Uuid>, id: Uuid, update: UserUpdate) -> Result<User>;
    /// Replaces the password hash and revokes every session of the user.
    async fn set_password(&self, org: Option<Uuid>, id: Uuid, password_hash: &str) -> Result<()>;
    async fn record_login(&self, id: Uuid, at: DateTime<Utc>) -> Result<()>;

    // Sessions and refresh tokens (tokens are given as hashes, never in clear)
    async fn create_session(
        &self,
        user_id: Uuid,
        refresh_hash: &[u8],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Uuid>;
    async fn rotate_refresh_token(
        &self,
        presented_hash: &[u8],
        new_hash: &[u8],
        new_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RefreshOutcome>;
    /// Revokes the session the refresh token belongs to; false if the token is unknown.
    async fn revoke_session_by_token(&self, token_hash: &[u8], now: DateTime<Utc>) -> Result<bool>;
    async fn revoke_session(&self, session_id: Uuid, now: DateTime<Utc>) -> Result<()>;
    async fn revoke_user_sessions(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<()>;
    /// Whether the session exists, is not revoked or expired, and its user is enabled.
    async fn session_active(&self, session_id: Uuid, now: DateTime<Utc>) -> Result<bool>;

    // Alerts
    /// Stores a new alert and its `created` history entry. `Error::Conflict` when the
    /// organization already has an alert with the same `alert_id`.
    async fn create_alert(&self, org: Uuid, alert: NewAlert, actor: &str) -> Result<Alert>;
    /// Stores many alerts in large transactions (seeding, imports) and returns the count.
    /// An alert whose `alert_id` exists is not stored: the batch holding it is committed
    /// without it and `Error::Conflict` names it. Call [`Store::analyze`] after a large load.
    async fn insert_alerts_bulk(&self, org: Uuid, alerts: Vec<NewAlert>) -> Result<u64>;
    async fn get_alert(&self, org: Uuid, id: Uuid) -> Result<Option<Alert>>;
    async fn list_alerts(&self, org: Uuid, filter: &AlertFilter) -> Result<AlertPage>;
    /// Applies a lifecycle change atomically with its audit entries.
    /// `Error::NotFound`, or `Error::Transition` when the state machine forbids it.
    async fn update_alert(
        &self,
        org: Uuid,
        id: Uuid,
        change: &AlertChange,
        actor: &str,
    ) -> Result<Alert>;
    /// `None` when the alert does not exist in this organization.
    async fn alert_history(&self, org: Uuid, id: Uuid) -> Result<Option<Vec<AlertHistoryEntry>>>;

    // Agents
    async fn upsert_agent(&self, agent: &Agent) -> Result<()>;
    async fn list_agents(&self, org: Uuid) -> Result<Vec<Agent>>;
    async fn get_agent(&self, org: Uuid, id: Uuid) -> Result<Option<Agent>>;
    async fn create_enrollment_token(&self, token: NewEnrollmentToken) -> Result<EnrollmentToken>;
    async fn list_enrollment_tokens(&self, org: Uuid) -> Result<Vec<EnrollmentToken>>;
    /// Spends an unused, unexpired enrollment token and creates the agent in the token's
    /// organization, atomically. `None` when the token is unknown, spent or expired.
    async fn register_agent(
        &self,
        token_hash: &[u8],
        registration: NewAgentRegistration,
        now: DateTime<Utc>,
    ) -> Result<Option<Agent>>;
    /// The agent a credential belongs to, unless revoked.
    async fn agent_by_credential(&self, credential_hash: &[u8]) -> Result<Option<Agent>>;
    async fn record_heartbeat(
        &self,
        org: Uuid,
        agent: Uuid,
        update: HeartbeatUpdate,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Revokes an agent's credential. `NotFound` when not in this organization.
    async fn revoke_agent(&self, org: Uuid, agent: Uuid, now: DateTime<Utc>) -> Result<Agent>;

    // API keys
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey>;
    async fn list_api_keys(&self, org: Uuid) -> Result<Vec<ApiKey>>;
    async fn revoke_api_key(&self, org: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<ApiKey>;
    /// The key a secret belongs to, unless revoked.
    async fn api_key_by_hash(&self, key_hash: &[u8]) -> Result<Option<ApiKey>>;

    // Detections
    /// Raises or folds each detection (see [`Detection`]) in one transaction.
    async fn record_detections(
        &self,
        org: Uuid,
        detections: Vec<Detection>,
        window: chrono::Duration,
    ) -> Result<Vec<DetectionOutcome>>;

    /// The event store kept in the same database.
    fn event_store(&self) -> Arc<dyn EventStore>;

    /// The ML engine's feature vectors and models, in the same database.
    fn ml_store(&self) -> Arc<dyn MlStore>;

    /// Outgoing webhooks: endpoints, deliveries, attempts (migration 0009_webhooks).
    fn webhook_store(&self) -> Arc<dyn WebhookStore>;

    /// The live stream's one-time tickets (migration 0010_stream), in the same database.
    fn stream_store(&self) -> Arc<dyn StreamStore>;
    /// The outbox of alert events (`outbox.rs`), in the same database.
    fn outbox_store(&self) -> Arc<dyn OutboxStore>;

    /// Events stored after the event with id `after` (ids are UUIDv7, given at storage
    /// time), oldest first, at most `limit` (up to 10,000): the Loki forwarder's cursor.
    async fn events_after(
        &self,
        org: Uuid,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<StoredEvent>>;

    // AI triage (migration 0004_ai)
    /// Stores a triage of an alert. `NotFound` when the alert is not this organization's.
    async fn create_triage(
        &self,
        org: Uuid,
        triage: vigil_core::NewTriage,
    ) -> Result<vigil_core::AlertTriage>;
    /// The alert's triages, newest first; `None` when the alert is not this organization's.
    async fn list_triage(
        &self,
        org: Uuid,
        alert: Uuid,
    ) -> Result<Option<Vec<vigil_core::AlertTriage>>>;
    /// Records an analyst's decision on one suggestion (never changes the alert).
    /// `NotFound` for an unknown triage, `InvalidInput` for an unknown suggestion index.
    #[allow(clippy::too_many_arguments)]
    async fn decide_suggestion(
        &self,
        org: Uuid,
        alert: Uuid,
        triage: Uuid,
        index: u32,
        decision: vigil_core::SuggestionStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<vigil_core::AlertTriage>;

    // Actions
    async fn create_action(&self, org: Uuid, action: NewAction) -> Result<Action>;
    async fn list_actions(&self, org: Uuid, alert: Option<Uuid>) -> Result<Vec<Action>>;
    async fn finish_action(
        &self,
        org: Uuid,
        id: Uuid,
        status: ActionStatus,
        result: serde_json::Value,
    ) -> Result<Action>;
}

/// A shared store handle.
pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names: `sqlite://...` or `postgres://...` / `postgresql://...`.
/// SQLite creates the file and its directory when missing.
pub async fn connect(url: &str, max_connections: u32) -> Result<DynStore> {
    open(url, max_connections, true).await
}

/// Connects to an existing database: a SQLite file that is missing is an error
/// ([`Error::NoDatabase`]) instead of a new empty database. For admin commands, which must not
/// quietly work on a fresh database when run from another directory.
pub async fn connect_existing(url: &str, max_connections: u32) -> Result<DynStore> {
    open(url, max_connections, false).await
}

async fn open(url: &str, max_connections: u32, create: bool) -> Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::open(url, max_connections, create).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, max_connections).await?))
    } else {
        Err(Error::Config(format!(
            "unsupported database URL scheme in '{}': use sqlite://PATH or postgres://...",
            redact_url(url)
        )))
    }
}

/// Hides the password of a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

/// Encodes a listing cursor as URL-safe text.
pub fn encode_cursor(c: &vigil_core::Cursor) -> String {
    use base64::Engine;
    let json = serde_json::to_vec(c).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(s: &str) -> Result<vigil_core::Cursor> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .map_err(|_| Error::InvalidInput("cursor is not valid".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| Error::InvalidInput("cursor is not valid".into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = vigil_core::Cursor {
            key: 42,
            ts: Some(7),
            id: uuid::Uuid::new_v4(),
        };
        assert_eq!(super::decode_cursor(&super::encode_cursor(&c)).unwrap(), c);
        assert!(super::decode_cursor("!!").is_err());
        assert!(super::decode_cursor("e30").is_err()); // "{}"
    }
}
