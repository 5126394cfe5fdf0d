//! Syslog listeners: UDP (one message per datagram), TCP and TLS (RFC 6587 octet-counting
//! or newline framing, detected per frame; TLS as in RFC 5425). RFC 3164 and RFC 5424
//! messages become normalized events (`vigil_parse::syslog`) and go through the pipeline
//! in small batches.
//!
//! Back-pressure: a TCP/TLS connection waits for room in the ingest memory budget and the
//! pipeline queue, so a fast sender is slowed down rather than dropped. UDP cannot push
//! back: a batch refused by a full queue or budget is counted
//! (`security_events_total{source="syslog",outcome="refused"}`) and logged, never dropped
//! silently. A batch is charged [`batch_cost`] of its messages.
//!
//! Shutdown: on the server's shutdown signal the listeners stop accepting and reading;
//! every complete message already read (in a connection's buffer or a partial batch) goes
//! to the pipeline, which stores it before the store closes. A message only partly read
//! when the signal came is not stored (the sender never saw it delivered either). Each
//! listener counts what it read and what was stored ([`SyslogTasks::report`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::SyslogConfig;
use crate::ingest::budget::batch_cost;
use crate::ingest::normalize::{Origin, Received, normalize};
use crate::ingest::{Job, Pipeline};

/// Events per pipeline job, and how long a partial batch waits.
const BATCH: usize = 500;
const FLUSH: Duration = Duration::from_millis(200);

/// Bound listeners, ready to run.
pub struct SyslogListeners {
    pub udp: Option<UdpSocket>,
    pub tcp: Option<TcpListener>,
    pub tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
}

impl SyslogListeners {
    /// Binds what the configuration asks for.
    pub async fn bind(cfg: &SyslogConfig) -> anyhow::Result<Self> {
        let udp = match &cfg.udp {
            Some(a) => Some(
                UdpSocket::bind(a)
                    .await
                    .map_err(|e| anyhow::anyhow!("syslog UDP {a}: {e}"))?,
            ),
            None => None,
        };
        let tcp = match &cfg.tcp {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|e| anyhow::anyhow!("syslog TCP {a}: {e}"))?,
            ),
            None => None,
        };
        let tls = match &cfg.tls {
            Some(a) => {
                let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) else {
                    anyhow::bail!("syslog.tls needs syslog.tls_cert and syslog.tls_key");
                };
                let acceptor = tls_acceptor(cert, key)?;
                let l = TcpListener::bind(a)
                    .await
                    .map_err(|e| anyhow::anyhow!("syslog TLS {a}: {e}"))?;
                Some((l, acceptor))
            }
            None => None,
        };
        Ok(Self { udp, tcp, tls })
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|s| s.local_addr().ok())
    }
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(s, _)| s.local_addr().ok())
    }

    /// Starts one task per listener; they stop reading when `shutdown` is cancelled.
    pub fn spawn(
        self,
        pipeline: Pipeline,
        org: Uuid,
        max_len: usize,
        max_future_skew_secs: u64,
        shutdown: CancellationToken,
    ) -> SyslogTasks {
        let tasks = SyslogTasks {
            tracker: TaskTracker::new(),
            listeners: Vec::new(),
        };
        let mut listeners = Vec::new();
        let ctx = |name: &'static str, listeners: &mut Vec<_>| {
            let counts = Arc::new(Counts::default());
            listeners.push((name, counts.clone()));
            Ctx {
                pipeline: pipeline.clone(),
                org,
                max_len,
                max_future_skew_secs,
                shutdown: shutdown.clone(),
                tracker: tasks.tracker.clone(),
                counts,
            }
        };
        if let Some(s) = self.udp {
            let ctx = ctx("udp", &mut listeners);
            tasks.tracker.spawn(serve_udp(s, ctx));
        }
        if let Some(l) = self.tcp {
            let ctx = ctx("tcp", &mut listeners);
            tasks.tracker.spawn(accept_loop(l, None, ctx));
        }
        if let Some((l, acceptor)) = self.tls {
            let ctx = ctx("tls", &mut listeners);
            tasks.tracker.spawn(accept_loop(l, Some(acceptor), ctx));
        }
        SyslogTasks { listeners, ..tasks }
    }
}

/// What one listener did, for the shutdown log.
#[derive(Default)]
struct Counts {
    /// Complete messages read that are syslog (became events).
    received: AtomicU64,
    /// Of those, handed to the pipeline.
    queued: AtomicU64,
    /// Of those, stored (the pipeline's answer).
    stored: AtomicU64,
    /// Refused: UDP with a full queue, or the pipeline had stopped.
    refused: AtomicU64,
    /// Read but not syslog, or a frame the framer rejected.
    invalid: AtomicU64,
    /// Bytes of messages only partly read when shutdown came (not stored).
    incomplete_bytes: AtomicU64,
}

/// One listener's numbers at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerReport {
    pub listener: &'static str,
    pub received: u64,
    pub queued: u64,
    pub stored: u64,
    pub refused: u64,
    pub invalid: u64,
    pub incomplete_bytes: u64,
}

/// The running listeners and their connections.
pub struct SyslogTasks {
    tracker: TaskTracker,
    listeners: Vec<(&'static str, Arc<Counts>)>,
}

impl SyslogTasks {
    /// Waits until every listener and connection has stopped (after the shutdown signal)
    /// and the pipeline has answered for every batch they queued.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Each listener's numbers so far; logged as `syslog drained` at shutdown.
    pub fn report(&self) -> Vec<ListenerReport> {
        self.listeners
            .iter()
            .map(|(name, c)| ListenerReport {
                listener: name,
                received: c.received.load(Ordering::Relaxed),
                queued: c.queued.load(Ordering::Relaxed),
                stored: c.stored.load(Ordering::Relaxed),
                refused: c.refused.load(Ordering::Relaxed),
                invalid: c.invalid.load(Ordering::Relaxed),
                incomplete_bytes: c.incomplete_bytes.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// What every task of one listener shares.
#[derive(Clone)]
struct Ctx {
    pipeline: Pipeline,
    org: Uuid,
    max_len: usize,
    /// `[ingest] max_future_skew_secs`: a message timed later is kept at its receive time.
    max_future_skew_secs: u64,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    counts: Arc<Counts>,
}

impl Ctx {
    /// One message as an event, counted.
    fn event(&self, bytes: &[u8], peer: SocketAddr) -> Option<Json> {
        let doc = to_event(bytes, peer, self.max_future_skew_secs);
        let counter = match doc {
            Some(_) => &self.counts.received,
            None => &self.counts.invalid,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        doc
    }

    /// Hands `batch` to the pipeline: waiting for room (TCP/TLS, and UDP's last batch at
    /// shutdown), or refused at once when the queue is full (UDP). Whether it was queued.
    /// `bytes` is the size of the batch's messages, charged to the memory budget.
    async fn flush(&self, batch: &mut Vec<Json>, bytes: &mut u64, wait: bool) -> bool {
        if batch.is_empty() {
            return true;
        }
        let events = std::mem::take(batch);
        let n = events.len() as u64;
        let cost = batch_cost(events.len(), std::mem::take(bytes) as usize);
        let reservation = if wait {
            Some(self.pipeline.budget().reserve(cost).await)
        } else {
            self.pipeline.budget().try_reserve(cost).ok()
        };
        let Some(reservation) = reservation else {
            self.counts.refused.fetch_add(n, Ordering::Relaxed);
            metrics::counter!(crate::metrics::SECURITY_EVENTS, "source" => "syslog", "outcome" => "refused")
                .increment(n);
            tracing::warn!(
                events = n,
                "ingest memory budget full: syslog messages refused"
            );
            return false;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            org: self.org,
            batch: None,
            channel: "syslog",
            events,
            reply: Some(tx),
            reservation: Some(reservation),
        };
        let queued = if wait {
            self.pipeline.submit(job).await.is_ok()
        } else {
            self.pipeline.try_submit(job).is_ok()
        };
        if !queued {
            self.counts.refused.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(
                events = n,
                "ingestion overloaded or stopped: syslog messages refused"
            );
            return false;
        }
        self.counts.queued.fetch_add(n, Ordering::Relaxed);
        // Counts what was stored without holding up the connection; tracked, so the
        // shutdown report waits for the answer.
        let counts = self.counts.clone();
        self.tracker.spawn(async move {
            if let Ok(Ok(o)) = rx.await {
                counts.stored.fetch_add(o.stored as u64, Ordering::Relaxed);
            }
        });
        true
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("syslog.tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("syslog.tls_cert {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("syslog.tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// One message (datagram or frame) as a normalized event, `None` when it is not syslog.
fn to_event(bytes: &[u8], peer: SocketAddr, max_future_skew_secs: u64) -> Option<Json> {
    let now = vigil_core::now();
    match vigil_parse::syslog::parse(bytes, now) {
        Ok(msg) => {
            let mut doc = vigil_parse::syslog::to_event(&msg);
            vigil_core::event::set_default(&mut doc, "host.ip", Json::from(peer.ip().to_string()));
            let received = Received::new(now).with_max_future_skew(max_future_skew_secs);
            normalize(doc, &received, &Origin::default()).ok()
        }
        Err(e) => {
            metrics::counter!(crate::metrics::SECURITY_EVENTS, "source" => "syslog", "outcome" => "failed").increment(1);
            tracing::debug!(%peer, error = %e, "not a syslog message");
            None
        }
    }
}

async fn serve_udp(socket: UdpSocket, ctx: Ctx) {
    let mut buf = vec![0u8; ctx.max_len.max(512)];
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    loop {
        let got = tokio::select! {
            // Datagrams already read are in `batch`; what the kernel still holds is not
            // read any more.
            _ = ctx.shutdown.cancelled() => break,
            got = tokio::time::timeout(FLUSH, socket.recv_from(&mut buf)) => got,
        };
        match got {
            Ok(Ok((n, peer))) => {
                bytes += n as u64;
                batch.extend(ctx.event(&buf[..n], peer));
                if batch.len() < BATCH {
                    continue;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "syslog UDP receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {} // idle: flush what we have
        }
        // UDP cannot push back: a full queue or budget refuses the batch (counted, logged).
        ctx.flush(&mut batch, &mut bytes, false).await;
    }
    ctx.flush(&mut batch, &mut bytes, true).await;
}

async fn accept_loop(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, ctx: Ctx) {
    loop {
        let accepted = tokio::select! {
            // Dropping the listener refuses new connections from here on.
            _ = ctx.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "syslog accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        ctx.tracker.clone().spawn(async move {
            match tls {
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        _ = ctx.shutdown.cancelled() => return,
                        h = acceptor.accept(stream) => h,
                    };
                    match handshake {
                        Ok(s) => serve_stream(s, peer, ctx).await,
                        Err(e) => tracing::info!(%peer, error = %e, "syslog TLS handshake failed"),
                    }
                }
                None => serve_stream(stream, peer, ctx).await,
            }
        });
    }
}

async fn serve_stream(mut stream: impl AsyncRead + Unpin, peer: SocketAddr, ctx: Ctx) {
    let mut framer = vigil_parse::syslog::Framer::new(ctx.max_len);
    let mut buf = vec![0u8; 64 * 1024];
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    loop {
        // `read` is cancel-safe: bytes are either read into `buf` or left in the socket.
        let read = tokio::select! {
            _ = ctx.shutdown.cancelled() => None,
            r = tokio::time::timeout(FLUSH, stream.read(&mut buf)) => Some(r),
        };
        let eof = match read {
            None => {
                // Shutdown: the complete messages already read were framed below on the
                // previous rounds; a message cut off mid-way is not one the sender finished.
                let left = framer.buffered() as u64;
                if left > 0 {
                    ctx.counts
                        .incomplete_bytes
                        .fetch_add(left, Ordering::Relaxed);
                    tracing::debug!(%peer, bytes = left, "syslog: partial message at shutdown not stored");
                }
                ctx.flush(&mut batch, &mut bytes, true).await;
                return;
            }
            Some(Ok(Ok(0))) => true,
            Some(Ok(Ok(n))) => {
                framer.push(&buf[..n]);
                false
            }
            Some(Ok(Err(e))) => {
                tracing::debug!(%peer, error = %e, "syslog connection error");
                true
            }
            Some(Err(_)) => {
                if !ctx.flush(&mut batch, &mut bytes, true).await {
                    return;
                }
                continue;
            }
        };
        while let Some(frame) = framer.next_frame() {
            match frame {
                Ok(f) => {
                    bytes += f.len() as u64;
                    batch.extend(ctx.event(&f, peer));
                }
                Err(e) => {
                    ctx.counts.invalid.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, error = %e, "syslog frame skipped");
                }
            }
        }
        if eof {
            if let Some(Ok(f)) = framer.finish() {
                bytes += f.len() as u64;
                batch.extend(ctx.event(&f, peer));
            }
            ctx.flush(&mut batch, &mut bytes, true).await;
            return;
        }
        if batch.len() >= BATCH && !ctx.flush(&mut batch, &mut bytes, true).await {
            return;
        }
    }
}
