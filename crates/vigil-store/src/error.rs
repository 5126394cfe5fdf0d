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
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    // Not a `#[source]`: the message already includes it, and chains would print it twice.
    #[error("migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
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
    /// The database could not be reached or the pool is exhausted: worth a retry (503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
