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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
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

    /// Starts one task per listener.
    pub fn spawn(
        self,
        pipeline: Pipeline,
        org: Uuid,
        max_len: usize,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(s) = self.udp {
            tasks.push(tokio::spawn(serve_udp(s, pipeline.clone(), org, max_len)));
        }
        if let Some(l) = self.tcp {
            let p = pipeline.clone();
            tasks.push(tokio::spawn(async move {
                accept_loop(l, None, p, org, max_len).await;
            }));
        }
        if let Some((l, acceptor)) = self.tls {
            tasks.push(tokio::spawn(async move {
                accept_loop(l, Some(acceptor), pipeline, org, max_len).await;
            }));
        }
        tasks
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
fn to_event(bytes: &[u8], peer: SocketAddr) -> Option<Json> {
    let now = vigil_core::now();
    match vigil_parse::syslog::parse(bytes, now) {
        Ok(msg) => {
            let mut doc = vigil_parse::syslog::to_event(&msg);
            vigil_core::event::set_default(&mut doc, "host.ip", Json::from(peer.ip().to_string()));
            normalize(doc, &Received::new(now), &Origin::default()).ok()
        }
        Err(e) => {
            metrics::counter!(crate::metrics::SECURITY_EVENTS, "source" => "syslog", "outcome" => "failed").increment(1);
            tracing::debug!(%peer, error = %e, "not a syslog message");
            None
        }
    }
}

async fn serve_udp(socket: UdpSocket, pipeline: Pipeline, org: Uuid, max_len: usize) {
    let mut buf = vec![0u8; max_len.max(512)];
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    loop {
        let got = tokio::time::timeout(FLUSH, socket.recv_from(&mut buf)).await;
        match got {
            Ok(Ok((n, peer))) => {
                if let Some(doc) = to_event(&buf[..n], peer) {
                    batch.push(doc);
                    bytes += n as u64;
                }
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
        if !batch.is_empty() {
            let events = std::mem::take(&mut batch);
            let n = events.len();
            let cost = batch_cost(n, std::mem::take(&mut bytes) as usize);
            let Ok(reservation) = pipeline.budget().try_reserve(cost) else {
                metrics::counter!(crate::metrics::SECURITY_EVENTS, "source" => "syslog", "outcome" => "refused")
                    .increment(n as u64);
                tracing::warn!(
                    events = n,
                    "ingest memory budget full: syslog UDP messages refused"
                );
                continue;
            };
            let job = Job {
                org,
                batch: None,
                channel: "syslog",
                events,
                reply: None,
                reservation: Some(reservation),
            };
            if pipeline.try_submit(job).is_err() {
                tracing::warn!(
                    events = n,
                    "ingestion overloaded: syslog UDP messages refused"
                );
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    pipeline: Pipeline,
    org: Uuid,
    max_len: usize,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "syslog accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let pipeline = pipeline.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => serve_stream(s, peer, pipeline, org, max_len).await,
                    Err(e) => tracing::info!(%peer, error = %e, "syslog TLS handshake failed"),
                },
                None => serve_stream(stream, peer, pipeline, org, max_len).await,
            }
        });
    }
}

/// Queues the batch, waiting for room in the memory budget and the queue; `bytes` is the
/// size of its messages.
async fn flush(pipeline: &Pipeline, org: Uuid, batch: &mut Vec<Json>, bytes: &mut u64) -> bool {
    if batch.is_empty() {
        return true;
    }
    let events = std::mem::take(batch);
    let reservation = pipeline
        .budget()
        .reserve(batch_cost(events.len(), std::mem::take(bytes) as usize))
        .await;
    let job = Job {
        org,
        batch: None,
        channel: "syslog",
        events,
        reply: None,
        reservation: Some(reservation),
    };
    pipeline.submit(job).await.is_ok()
}

async fn serve_stream(
    mut stream: impl AsyncRead + Unpin,
    peer: SocketAddr,
    pipeline: Pipeline,
    org: Uuid,
    max_len: usize,
) {
    let mut framer = vigil_parse::syslog::Framer::new(max_len);
    let mut buf = vec![0u8; 64 * 1024];
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    loop {
        let read = tokio::time::timeout(FLUSH, stream.read(&mut buf)).await;
        let eof = match read {
            Ok(Ok(0)) => true,
            Ok(Ok(n)) => {
                framer.push(&buf[..n]);
                false
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "syslog connection error");
                true
            }
            Err(_) => {
                if !flush(&pipeline, org, &mut batch, &mut bytes).await {
                    return;
                }
                continue;
            }
        };
        while let Some(frame) = framer.next_frame() {
            match frame {
                Ok(f) => {
                    bytes += f.len() as u64;
                    batch.extend(to_event(&f, peer));
                }
                Err(e) => tracing::info!(%peer, error = %e, "syslog frame skipped"),
            }
        }
        if eof {
            if let Some(Ok(f)) = framer.finish() {
                bytes += f.len() as u64;
                batch.extend(to_event(&f, peer));
            }
            flush(&pipeline, org, &mut batch, &mut bytes).await;
            return;
        }
        if batch.len() >= BATCH && !flush(&pipeline, org, &mut batch, &mut bytes).await {
            return;
        }
    }
}
