//! SQLite backend: WAL mode, one writer connection (SQLite allows one writer at a time;
//! queuing in the pool instead of in `SQLITE_BUSY` retries) and a pool of readers.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

type Db = sqlx::Sqlite;
type StoreImpl = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;
const FOR_UPDATE: &str = "";
/// After a bound JSON document's text: SQLite stores it as TEXT as it is.
const JSON_PARAM_CAST: &str = "";
const ANALYZE_SQL: &str = "ANALYZE";
/// OR FAIL: a constraint error ends the statement without undoing its earlier rows, so
/// SQLite keeps no statement journal for the multi-row insert (the ingest transaction is
/// rolled back whole on any error anyway); see migration 0005.
const INSERT_EVENTS: &str = "INSERT OR FAIL INTO events";
const OPTIMIZE_SQL: &str = "PRAGMA optimize";
/// SQLite keeps U+0000 in text as it is (`text.rs`).
const ESCAPES_NUL: bool = false;

/// SQL: whether the text in `col` needs a search text (`text::search_text`): a control
/// character or U+E000 in it. `instr` finds a NUL (`GLOB`, like `LIKE`, stops at one).
fn needs_search_sql(col: &str) -> String {
    format!(
        "(instr({col}, char(0)) > 0 OR {col} GLOB '*[' || char(1) || '-' || char(31) || char(127) \
         || '-' || char(159) || char(57344) || ']*')"
    )
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
fn migrator() -> &'static Migrator {
    &MIGRATOR
}

/// The embedded default store.
#[derive(Clone)]
pub struct SqliteStore {
    read: Pool<Db>,
    write: Pool<Db>,
    creates: tokio::sync::mpsc::Sender<CreateRequest>,
}

struct CreateRequest {
    alert: PendingAlert,
    reply: tokio::sync::oneshot::Sender<Result<Alert>>,
}

/// Most alerts one group commit writes.
const GROUP_COMMIT_MAX: usize = 512;

/// Group commit: SQLite has one writer, so concurrent alert creations are collected and
/// written in one transaction (each still succeeds or fails on its own). Under no load a
/// batch is a single alert and nothing waits.
async fn group_commit(pool: Pool<Db>, mut rx: tokio::sync::mpsc::Receiver<CreateRequest>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|r| (r.alert, r.reply)).unzip();
        let results = insert_alerts(&pool, items).await;
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

impl SqliteStore {
    async fn create_alert_impl(&self, p: PendingAlert) -> Result<Alert> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.creates
            .send(CreateRequest { alert: p, reply })
            .await
            .map_err(|_| Error::Config("the alert writer has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Config("the alert writer has stopped".into()))?
    }
}

impl SqliteStore {
    /// Opens (and creates) the database file a `sqlite://PATH` URL names.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("bad SQLite URL '{url}': {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536")
            // Map the file: index pages are read without a syscall each (large databases
            // were spending most of their time in pread).
            .pragma("mmap_size", "1073741824")
            // Checkpoint every 16 MiB of WAL instead of 4 MiB: ingestion rewrites the same
            // index leaf pages in every batch, and a checkpoint copies each page once
            // however often it was rewritten, so fewer checkpoints copy (and fsync) less.
            .pragma("wal_autocheckpoint", "4000");
        let path = opts.get_filename().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await?;
        let (creates, rx) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        tokio::spawn(group_commit(write.clone(), rx));
        Ok(Self {
            read,
            write,
            creates,
        })
    }
}

/// `doc`'s field at a dotted path as text (numbers as written), for equality filters.
/// The path is bound, never spliced into the SQL.
fn push_json_text(qb: &mut QueryBuilder<'_, Db>, path: &str) {
    let json_path = format!(
        "$.{}",
        path.split('.')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".")
    );
    qb.push("CAST(json_extract(doc, ")
        .push_bind(json_path)
        .push(") AS TEXT)");
}

include!("common.rs");
