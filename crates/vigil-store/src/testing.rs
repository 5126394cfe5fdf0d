//! Throwaway databases for tests (feature `testing`).
//!
//! SQLite: a fresh file in a temporary directory. PostgreSQL: a fresh database with a random
//! name on the server `VIGIL_TEST_PG_URL` points at (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the guard is dropped.
//!
//! When PostgreSQL cannot be reached, [`TestDb::new`] returns `None` and prints why, so a
//! laptop without PostgreSQL still runs the SQLite half — unless `CI=true`, where it panics.

use std::path::PathBuf;

use crate::{Backend, DynStore};

/// Server the PostgreSQL tests use.
pub fn pg_admin_url() -> String {
    std::env::var("VIGIL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A migrated store on a database that exists only for this test.
pub struct TestDb {
    pub store: DynStore,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    PgDatabase { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh, migrated database; `None` (with a printed reason) when PostgreSQL is
    /// unreachable outside CI.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let (url, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("vigil-test-{suffix}"));
                let url = format!("sqlite://{}/vigil.db", dir.display());
                (url, Cleanup::Dir(dir))
            }
            Backend::Postgres => {
                let admin_url = pg_admin_url();
                let name = format!("vigil_test_{suffix}");
                let url = match crate::PgStore::create_database(&admin_url, &name).await {
                    Ok(url) => url,
                    Err(e @ crate::Error::Config(_)) => panic!("VIGIL_TEST_PG_URL: {e}"),
                    Err(e) if !in_ci() => {
                        eprintln!(
                            "skipped: PostgreSQL not reachable at {} ({e}); set VIGIL_TEST_PG_URL",
                            crate::redact_url(&admin_url)
                        );
                        return None;
                    }
                    Err(e) => panic!(
                        "CI=true and PostgreSQL is not reachable at {}: {e}",
                        crate::redact_url(&admin_url)
                    ),
                };
                (url, Cleanup::PgDatabase { admin_url, name })
            }
        };
        let store = crate::connect(&url, 4).await.expect("connect test store");
        store.migrate().await.expect("migrate test store");
        Some(TestDb {
            store,
            url,
            cleanup,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Cleanup::PgDatabase { admin_url, name } => {
                // Drop runs outside any async context guarantee: use a private runtime.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async move {
                        let _ = crate::PgStore::drop_database(&admin_url, &name).await;
                    });
                })
                .join();
            }
        }
    }
}
