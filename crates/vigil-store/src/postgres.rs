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
        Ok(Self {
            read: pool.clone(),
            creates: GroupCommit::start(pool.clone(), Self::group_committers(max_connections)),
            write: pool,
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
