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
    /// Alert creations, written by the group commit task (`common.rs`).
    creates: GroupCommit,
    /// The database file opened at start (`None` in memory).
    file: Option<FileId>,
    /// Woken after a commit that wrote outbox rows.
    outbox_notify: std::sync::Arc<tokio::sync::Notify>,
}

impl SqliteStore {
    /// Opens (and creates) the database file a `sqlite://PATH` URL names.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        Self::open(url, max_connections, true).await
    }

    /// Opens the database file a `sqlite://PATH` URL names; with `create` false a missing
    /// file is an error instead of a new empty database.
    pub async fn open(url: &str, max_connections: u32, create: bool) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("bad SQLite URL '{url}': {e}")))?
            .create_if_missing(create)
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
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory && !create && !path.exists() {
            return Err(Error::NoDatabase(path));
        }
        if create && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        // The first connection creates the file; every later one (a writer replaced after a
        // failure included) must find this very file, never create a new empty one.
        let first = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
        let file = if in_memory {
            None
        } else {
            Some(FileId::of(&path)?)
        };
        sqlx::Connection::close(first).await?;
        let opts = opts.create_if_missing(false);
        let hook_file = file.clone();
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                let file = hook_file.clone();
                Box::pin(async move {
                    if let Some(file) = file {
                        // Checked at every COMMIT: a write into a deleted or replaced file
                        // would be acknowledged and then lost with it; SQLite turns the
                        // COMMIT into a ROLLBACK when the hook says no.
                        conn.lock_handle()
                            .await?
                            .set_commit_hook(move || file.check().is_ok());
                    }
                    Ok(())
                })
            })
            .after_release(|conn, _| Box::pin(writer_is_clean(conn)))
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await?;
        let outbox_notify = std::sync::Arc::<tokio::sync::Notify>::default();
        // One committer: SQLite has one writer.
        let creates = GroupCommit::start(write.clone(), 1, outbox_notify.clone());
        Ok(Self {
            read,
            write,
            creates,
            file,
            outbox_notify,
        })
    }

    /// Refuses when the database file at the path is not the one opened at start.
    fn check_file(&self) -> Result<()> {
        self.file.as_ref().map_or(Ok(()), FileId::check)
    }
}

/// Whether the writer connection goes back to the pool. After a failed statement or COMMIT
/// it can be inside a transaction (SQLite rolls back by itself after an I/O error, so the
/// driver's ROLLBACK fails and its transaction depth stays up; or the ROLLBACK itself
/// failed): every later write would go into a transaction that never commits while
/// answering success. A connection that opened its WAL while the file could not be written
/// (immutable, read-only) has it read-only for good. Either is closed, and the pool opens a
/// fresh connection for the next write.
async fn writer_is_clean(
    conn: &mut sqlx::SqliteConnection,
) -> std::result::Result<bool, sqlx::Error> {
    use sqlx::{Connection, Executor};
    if conn.is_in_transaction() {
        tracing::warn!("writer connection left inside a transaction after an error; replacing it");
        return Ok(false);
    }
    // Takes the write lock without writing: fails when SQLite is still inside a
    // transaction the driver does not know of, or cannot write (read-only file or WAL).
    if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
        tracing::warn!(error = %e, "writer connection cannot start a write; replacing it");
        return Ok(false);
    }
    conn.execute("ROLLBACK").await?;
    Ok(true)
}

/// The database file as it was opened: a deleted or replaced file shows another identity
/// (or none) at the same path.
#[derive(Debug, Clone)]
struct FileId {
    path: std::path::PathBuf,
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &std::path::Path) -> Result<Self> {
        let (dev, ino) = file_identity(path)
            .map_err(|e| Error::Config(format!("cannot stat {}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            dev,
            ino,
        })
    }

    fn check(&self) -> Result<()> {
        match file_identity(&self.path) {
            Ok(id) if id == (self.dev, self.ino) => Ok(()),
            // The path stays out: this text reaches unauthenticated `/ready` callers.
            Ok(_) => Err(Error::Unavailable(
                "the database file was replaced after it was opened; restore it or restart Vigil"
                    .into(),
            )),
            Err(e) => Err(Error::Unavailable(format!(
                "the database file is gone ({}); restore it or restart Vigil",
                e.kind()
            ))),
        }
    }
}

#[cfg(unix)]
fn file_identity(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    // No inode numbers: only a deleted file is noticed.
    std::fs::metadata(path).map(|_| (0, 0))
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
