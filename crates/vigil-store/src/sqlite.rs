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

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
fn migrator() -> &'static Migrator {
    &MIGRATOR
}

/// The embedded default store.
#[derive(Clone)]
pub struct SqliteStore {
    read: Pool<Db>,
    write: Pool<Db>,
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
            .pragma("cache_size", "-65536");
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
        Ok(Self { read, write })
    }
}

include!("common.rs");
