//! The job queue on Redis Streams, shared by every `vigil serve` replica and `vigil worker`.
//!
//! Keys (prefix `[redis] key_prefix`, default `vigil`):
//! - `{prefix}:jobs`: the stream; one consumer group (`workers`). An entry holds `kind`,
//!   `payload` (JSON text) and `attempt` (the run it starts). `XREADGROUP` hands an entry to
//!   one consumer; `ack` is `XACK` + `XDEL`, so the stream holds only unfinished jobs.
//! - A consumer that dies leaves its entry pending; once it has been idle longer than
//!   `jobs.visibility_timeout_secs`, `XAUTOCLAIM` hands it to the next consumer that asks,
//!   with the attempt raised by the deliveries it already had.
//! - `{prefix}:jobs:delayed`: a sorted set of retries scored by their due time (ms); a Lua
//!   script moves the due ones back into the stream (atomic, so two workers never move one
//!   twice).
//! - `{prefix}:jobs:dead`: the dead-letter stream (capped near `jobs.dead_letter_max`).
//!
//! Retry and dead-lettering first `XACK` the entry in a script and act only if that
//! acknowledged it, so a run that was taken over after the visibility timeout cannot put
//! a second copy of its job back.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamRangeReply, StreamReadReply,
};

use super::{DeadJob, Job, JobQueue, RetryPolicy};

const GROUP: &str = "workers";

/// Longest a single `XREADGROUP ... BLOCK` waits, so due retries are moved back promptly.
const MAX_BLOCK: Duration = Duration::from_secs(1);

/// How often `next` moves due retries back and looks for stale entries (two round trips
/// that would otherwise come before every read).
const MAINTENANCE_EVERY: Duration = Duration::from_millis(250);

/// Moves due members of the delayed set (KEYS[1]) into the stream (KEYS[2]).
const PROMOTE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local j = cjson.decode(m)
  redis.call('XADD', KEYS[2], '*', 'kind', j.kind, 'payload', j.payload, 'attempt', j.attempt)
end
return #due
"#;

/// Acknowledges entry ARGV[2] of stream KEYS[1] in group ARGV[1]; only if that succeeded,
/// deletes it and: ARGV[3] = 'delay': ZADD KEYS[2] ARGV[4] ARGV[5]; 'dead': XADD KEYS[2]
/// (capped near ARGV[4]) the fields in ARGV[5..]; 'ack': nothing more.
const SETTLE: &str = r#"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == 'delay' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
elseif ARGV[3] == 'dead' then
  local fields = {}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
end
return 1
"#;

/// Opens a connection that reconnects by itself (`ConnectionManager`). `response_timeout`
/// bounds each command; `None` for connections that run blocking reads.
pub async fn connect_with(
    url: &str,
    response_timeout: Option<Duration>,
) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(response_timeout)
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|e| anyhow::anyhow!("redis {}: {e}", vigil_store::redact_url(url)))
}

/// A connection for ordinary commands (each bounded to 10 s).
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    connect_with(url, Some(Duration::from_secs(10))).await
}

pub struct RedisQueue {
    conn: ConnectionManager,
    /// Its own connection for `XREADGROUP BLOCK`, which would hold up every command queued
    /// behind it on a shared one.
    blocking: tokio::sync::Mutex<Option<ConnectionManager>>,
    url_for_blocking: Option<String>,
    stream: String,
    delayed: String,
    dead: String,
    policy: RetryPolicy,
    visibility: Duration,
    dead_max: usize,
    promote: redis::Script,
    settle: redis::Script,
    /// When `next` last moved due retries and looked for stale entries.
    maintained: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl RedisQueue {
    /// Creates the consumer group when missing. `conn` serves the commands; blocking reads
    /// get a connection of their own, opened from the same client on first use.
    pub async fn new(
        conn: ConnectionManager,
        prefix: &str,
        policy: RetryPolicy,
        visibility: Duration,
        dead_max: usize,
    ) -> anyhow::Result<Self> {
        Self::with_url(conn, None, prefix, policy, visibility, dead_max).await
    }

    /// Like [`RedisQueue::new`]; with `url`, blocking reads use a second connection to it
    /// (else short polls on `conn`).
    pub async fn with_url(
        mut conn: ConnectionManager,
        url: Option<&str>,
        prefix: &str,
        policy: RetryPolicy,
        visibility: Duration,
        dead_max: usize,
    ) -> anyhow::Result<Self> {
        let stream = format!("{prefix}:jobs");
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(anyhow::anyhow!(
                "redis: creating consumer group on {stream}: {e}"
            ));
        }
        Ok(Self {
            conn,
            blocking: tokio::sync::Mutex::new(None),
            url_for_blocking: url.map(str::to_owned),
            delayed: format!("{prefix}:jobs:delayed"),
            dead: format!("{prefix}:jobs:dead"),
            stream,
            policy,
            visibility,
            dead_max: dead_max.max(1),
            promote: redis::Script::new(PROMOTE),
            settle: redis::Script::new(SETTLE),
            maintained: std::sync::Mutex::new(None),
        })
    }

    /// Whether `MAINTENANCE_EVERY` passed since the last maintenance (and if so, it starts now).
    fn maintenance_due(&self) -> bool {
        let now = tokio::time::Instant::now();
        let mut last = self.maintained.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < MAINTENANCE_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn now_ms() -> i64 {
        vigil_core::now().timestamp_millis()
    }

    async fn promote_due(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .promote
            .key(&self.delayed)
            .key(&self.stream)
            .arg(Self::now_ms())
            .invoke_async(&mut conn)
            .await
            .context("redis: moving due retries")?;
        Ok(())
    }

    /// Acknowledges `id` and, if this call acknowledged it, applies `then`.
    async fn settle(&self, id: &str, then: Settle<'_>) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let mut inv = self.settle.key(&self.stream);
        match &then {
            Settle::Ack => {
                inv.key(&self.stream).arg(GROUP).arg(id).arg("ack");
            }
            Settle::Delay { due_ms, member } => {
                inv.key(&self.delayed)
                    .arg(GROUP)
                    .arg(id)
                    .arg("delay")
                    .arg(*due_ms)
                    .arg(member.as_str());
            }
            Settle::Dead { fields } => {
                inv.key(&self.dead)
                    .arg(GROUP)
                    .arg(id)
                    .arg("dead")
                    .arg(self.dead_max);
                for (k, v) in fields {
                    inv.arg(*k).arg(v.as_str());
                }
            }
        }
        let n: i64 = inv
            .invoke_async(&mut conn)
            .await
            .context("redis: settling a job")?;
        Ok(n == 1)
    }

    fn dead_fields<'a>(
        kind: &str,
        payload: &str,
        attempts: u32,
        error: &str,
    ) -> Vec<(&'a str, String)> {
        vec![
            ("kind", kind.to_owned()),
            ("payload", payload.to_owned()),
            ("attempts", attempts.to_string()),
            ("error", error.to_owned()),
            ("failed_at", vigil_core::now().to_rfc3339()),
        ]
    }

    /// Parses a stream entry; an entry that is not a job is dead-lettered as it is.
    async fn job_of(&self, e: &StreamId, attempt_bonus: u32) -> anyhow::Result<Option<Job>> {
        let kind: Option<String> = e.get("kind");
        let payload: Option<String> = e.get("payload");
        let attempt: u32 = e
            .get::<String>("attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(1);
        let parsed = payload
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>);
        match (kind, parsed) {
            (Some(kind), Some(Ok(payload))) => Ok(Some(Job {
                id: e.id.clone(),
                kind,
                payload,
                attempt: attempt.saturating_add(attempt_bonus),
            })),
            (kind, _) => {
                let kind = kind.unwrap_or_default();
                tracing::warn!(id = e.id, kind, "malformed job entry dead-lettered");
                let fields = Self::dead_fields(
                    &kind,
                    payload_text(e).as_str(),
                    attempt,
                    "malformed job entry",
                );
                self.settle(&e.id, Settle::Dead { fields }).await?;
                Ok(None)
            }
        }
    }

    /// Takes one entry idle past the visibility timeout, if any.
    async fn claim_stale(&self, consumer: &str) -> anyhow::Result<Option<Job>> {
        let mut conn = self.conn.clone();
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(u64::try_from(self.visibility.as_millis()).unwrap_or(u64::MAX))
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .context("redis: XAUTOCLAIM")?;
        let Some(entry) = reply.claimed.into_iter().next() else {
            return Ok(None);
        };
        // Deliveries so far, this one included: each earlier one was a run that died.
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&entry.id)
            .arg(&entry.id)
            .arg(1)
            .query_async(&mut conn)
            .await
            .context("redis: XPENDING")?;
        let deliveries = pending.ids.first().map_or(2, |p| p.times_delivered);
        let bonus = u32::try_from(deliveries.saturating_sub(1)).unwrap_or(u32::MAX);
        let Some(job) = self.job_of(&entry, bonus).await? else {
            return Ok(None);
        };
        tracing::warn!(
            id = job.id,
            kind = job.kind,
            attempt = job.attempt,
            "job taken over after its runner went quiet"
        );
        if job.attempt > self.policy.max_attempts {
            let fields = Self::dead_fields(
                &job.kind,
                &job.payload.to_string(),
                job.attempt - 1,
                "visibility timeout: the runner went quiet",
            );
            self.settle(&job.id, Settle::Dead { fields }).await?;
            return Ok(None);
        }
        Ok(Some(job))
    }

    async fn read_new(&self, consumer: &str, wait: Duration) -> anyhow::Result<Option<Job>> {
        let block = wait.min(MAX_BLOCK);
        let mut guard = self.blocking.lock().await;
        if guard.is_none()
            && let Some(url) = &self.url_for_blocking
        {
            *guard = Some(connect_with(url, None).await?);
        }
        let (mut conn, block_ms) = match guard.as_ref() {
            Some(c) => (
                c.clone(),
                u64::try_from(block.as_millis()).unwrap_or(1000).max(1),
            ),
            // Without a connection of its own: no BLOCK, poll shortly.
            None => (self.conn.clone(), 0),
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(">");
        let reply: Option<StreamReadReply> = cmd
            .query_async(&mut conn)
            .await
            .context("redis: XREADGROUP")?;
        drop(guard);
        let entry = reply
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next());
        match entry {
            Some(e) => self.job_of(&e, 0).await,
            None => {
                if block_ms == 0 {
                    tokio::time::sleep(block.min(Duration::from_millis(100))).await;
                }
                Ok(None)
            }
        }
    }
}

fn payload_text(e: &StreamId) -> String {
    e.get::<String>("payload").unwrap_or_default()
}

enum Settle<'a> {
    Ack,
    Delay { due_ms: i64, member: String },
    Dead { fields: Vec<(&'a str, String)> },
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn enqueue(&self, kind: &str, payload: serde_json::Value) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("kind")
            .arg(kind)
            .arg("payload")
            .arg(payload.to_string())
            .arg("attempt")
            .arg("1")
            .query_async(&mut conn)
            .await
            .context("redis: XADD job")?;
        Ok(())
    }

    async fn next(&self, consumer: &str, wait: Duration) -> anyhow::Result<Option<Job>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.maintenance_due() {
                self.promote_due().await?;
                if let Some(job) = self.claim_stale(consumer).await? {
                    return Ok(Some(job));
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(job) = self.read_new(consumer, left).await? {
                return Ok(Some(job));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    async fn ack(&self, job: &Job) -> anyhow::Result<()> {
        self.settle(&job.id, Settle::Ack).await?;
        Ok(())
    }

    async fn retry(&self, job: &Job, error: &str) -> anyhow::Result<()> {
        if job.attempt >= self.policy.max_attempts {
            return self.bury(job, error).await;
        }
        let due = vigil_core::now() + self.policy.backoff(job.attempt);
        let member = serde_json::json!({
            "kind": job.kind,
            "payload": job.payload.to_string(),
            "attempt": (job.attempt + 1).to_string(),
            // Two retries of one job never collapse into one member.
            "nonce": uuid::Uuid::new_v4().to_string(),
        })
        .to_string();
        let settled = self
            .settle(
                &job.id,
                Settle::Delay {
                    due_ms: due.timestamp_millis(),
                    member,
                },
            )
            .await?;
        if !settled {
            tracing::warn!(
                id = job.id,
                kind = job.kind,
                "retry of a job already taken over; not queued twice"
            );
        }
        Ok(())
    }

    async fn bury(&self, job: &Job, error: &str) -> anyhow::Result<()> {
        tracing::warn!(
            kind = job.kind,
            attempts = job.attempt,
            error,
            "job dead-lettered"
        );
        let fields = Self::dead_fields(&job.kind, &job.payload.to_string(), job.attempt, error);
        self.settle(&job.id, Settle::Dead { fields }).await?;
        Ok(())
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        let mut conn = self.conn.clone();
        let (len, delayed): (u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(&self.stream)
            .cmd("ZCARD")
            .arg(&self.delayed)
            .query_async(&mut conn)
            .await
            .context("redis: XLEN/ZCARD")?;
        Ok(len + delayed)
    }

    async fn dead_letters(&self, limit: usize) -> anyhow::Result<Vec<DeadJob>> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.dead)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await
            .context("redis: XREVRANGE dead letters")?;
        Ok(reply
            .ids
            .iter()
            .map(|e| DeadJob {
                kind: e.get("kind").unwrap_or_default(),
                payload: serde_json::from_str(&payload_text(e)).unwrap_or(serde_json::Value::Null),
                attempts: e
                    .get::<String>("attempts")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0),
                error: e.get("error").unwrap_or_default(),
                failed_at: e
                    .get::<String>("failed_at")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .map_or_else(vigil_core::now, |t| t.with_timezone(&chrono::Utc)),
            })
            .take(limit)
            .collect())
    }
}
