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
            write: pool,
            outbox_notify: Default::default(),
        })
    }
}

impl PgStore {
    /// Only SQLite has a file to lose.
    fn check_file(&self) -> Result<()> {
        Ok(())
    }

    async fn create_alert_impl(&self, p: PendingAlert) -> Result<Alert> {
        insert_alerts(&self.write, vec![p], &self.outbox_notify)
            .await
            .pop()
            .unwrap_or(Err(Error::NotFound))
    }
}

/// `doc`'s field at a dotted path as text (numbers as written), for equality filters.
/// The path is bound, never spliced into the SQL.
fn push_json_text(qb: &mut QueryBuilder<'_, Db>, path: &str) {
    let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
    qb.push("(doc #>> ").push_bind(parts).push(")");
}

include!("common.rs");
