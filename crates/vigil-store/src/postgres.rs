//! PostgreSQL backend, for deployments with several server replicas.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

type Db = sqlx::Postgres;
type StoreImpl = PgStore;
const BACKEND: Backend = Backend::Postgres;
const FOR_UPDATE: &str = " FOR UPDATE";
/// After a bound JSON document's text: PostgreSQL parses it into JSONB.
const JSON_PARAM_CAST: &str = "::jsonb";
const ANALYZE_SQL: &str = "ANALYZE alerts, alert_tags";
const INSERT_EVENTS: &str = "INSERT INTO events";
// Autovacuum keeps PostgreSQL's statistics fresh.
const OPTIMIZE_SQL: &str = "SELECT 1";
/// PostgreSQL text cannot hold U+0000: stored text is escaped (`text.rs`).
const ESCAPES_NUL: bool = true;

/// SQL: whether the (stored, escaped) text in `col` needs a search text
/// (`text::search_text`): a control character or U+E000 (which also marks an escaped NUL).
fn needs_search_sql(col: &str) -> String {
    format!(r"({col} ~ '[\x01-\x1f\x7f-\x9f\ue000]')")
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
fn migrator() -> &'static Migrator {
    &MIGRATOR
}

/// PostgreSQL store; reads and writes share one pool.
#[derive(Clone)]
pub struct PgStore {
    read: Pool<Db>,
    write: Pool<Db>,
    /// Woken after a commit that wrote outbox rows.
    outbox_notify: std::sync::Arc<tokio::sync::Notify>,
    /// Alert creations, written by the group commit tasks (`common.rs`).
    creates: GroupCommit,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let outbox_notify = std::sync::Arc::<tokio::sync::Notify>::default();
        Ok(Self {
            read: pool.clone(),
            creates: GroupCommit::start(
                pool.clone(),
                Self::group_committers(max_connections),
                outbox_notify.clone(),
            ),
            write: pool,
            outbox_notify,
        })
    }

    /// Alert-creation transactions in flight at once for a pool of `max_connections`:
    /// PostgreSQL has many writers, so several group commits overlap, each carrying what
    /// queued while the others committed; half the pool (1 to 8), so reads and the ingest
    /// path keep connections.
    pub fn group_committers(max_connections: u32) -> usize {
        (max_connections / 2).clamp(1, 8) as usize
    }
}

impl PgStore {
    /// Creates an empty database `name` (letters, digits and `_` only) on the server
    /// `admin_url` connects to, and returns its URL (for benchmarks and tests).
    pub async fn create_database(admin_url: &str, name: &str) -> Result<String> {
        use sqlx::Connection;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::Config(format!("bad database name '{name}'")));
        }
        let Some((base, _)) = admin_url.rsplit_once('/') else {
            return Err(Error::Config(format!(
                "'{}' must end in /DATABASE",
                crate::redact_url(admin_url)
            )));
        };
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(format!("{base}/{name}"))
    }

    /// Drops database `name` (made by [`create_database`](Self::create_database)) and
    /// ends its sessions.
    pub async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
        use sqlx::Connection;
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::Config(format!("bad database name '{name}'")));
        }
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(())
    }

    /// Only SQLite has a file to lose.
    fn check_file(&self) -> Result<()> {
        Ok(())
    }
}

/// `doc`'s field at a dotted path as text (numbers as written), for equality filters.
/// The path is bound, never spliced into the SQL.
fn push_json_text(qb: &mut QueryBuilder<'_, Db>, path: &str) {
    let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
    qb.push("(doc #>> ").push_bind(parts).push(")");
}

include!("common.rs");
