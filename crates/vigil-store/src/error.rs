use vigil_core::AlertStatus;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule would be broken (duplicate username, alert id, org name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The alert state machine does not allow this change.
    #[error("cannot change status from {from} to {to}")]
    Transition {
        from: AlertStatus,
        to: AlertStatus,
        allowed: &'static [AlertStatus],
    },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("configuration: {0}")]
    Config(String),
    /// Opening without creating: the SQLite file is not there.
    #[error("database file {} does not exist", .0.display())]
    NoDatabase(std::path::PathBuf),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    // Not a `#[source]`: the message already includes it, and chains would print it twice.
    #[error("migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database cannot take writes now (the file was deleted or replaced, the writer
    /// did not answer in time); worth a retry once the cause is fixed (503).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(e)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return Error::Conflict(db.message().to_string());
        }
        if matches!(e, sqlx::Error::RowNotFound) {
            return Error::NotFound;
        }
        Error::Database(e)
    }
}

impl From<vigil_core::Error> for Error {
    fn from(e: vigil_core::Error) -> Self {
        Error::Corrupt(e.to_string())
    }
}

impl Error {
    /// The database could not be reached, could not write (I/O error, full disk, read-only
    /// or missing file, connection killed) or the pool is exhausted: nothing was stored, and
    /// the same request is worth repeating once the storage is healthy again (503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable(_) => true,
            Error::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Error::Database(sqlx::Error::Database(db)) => storage_failure(db.as_ref()),
            _ => false,
        }
    }
}

/// Whether a database error says the storage (not the statement) failed.
fn storage_failure(db: &dyn sqlx::error::DatabaseError) -> bool {
    use sqlx::error::DatabaseError;
    if let Some(e) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        // Extended result code: the primary code is its low byte.
        let code: i32 = e.code().and_then(|c| c.parse().ok()).unwrap_or(0);
        return code == SQLITE_CONSTRAINT_COMMITHOOK
            || matches!(
                code & 0xff,
                // BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN
                5 | 6 | 7 | 8 | 10 | 13 | 14
            );
    }
    if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = e.code();
        // 08: connection exception, 53: insufficient resources (disk full, out of memory,
        // too many connections), 57P: operator intervention (pg_terminate_backend, shutdown,
        // starting up), 58: system error (I/O), 25006: read-only transaction (a standby).
        return code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || code.starts_with("58")
            || code == "25006";
    }
    false
}

/// SQLite's answer when the commit hook turned a COMMIT into a ROLLBACK: the writer's hook
/// does that when the database file is no longer the one opened at start.
pub(crate) const SQLITE_CONSTRAINT_COMMITHOOK: i32 = 531;

pub type Result<T, E = Error> = std::result::Result<T, E>;
