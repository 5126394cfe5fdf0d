//! HTTP integration tests: a real server on a free port, over real HTTP, against a fresh
//! SQLite file and a fresh PostgreSQL database for every test (PostgreSQL halves are skipped
//! with a message when no server is reachable, unless `CI=true`).
//!
//! Run: `cargo test -p vigil-server --test api`.

mod helpers;

mod ai;
mod alerts;
mod auth;
mod bad_input;
mod concurrency;
mod ingest;
mod ingest_limits;
mod loki_syslog;
mod ml;
mod org_isolation;
mod outbox;
mod rate_limit;
mod rbac;
mod search;
mod storage_faults;
mod system;
mod users;
mod webhooks;
