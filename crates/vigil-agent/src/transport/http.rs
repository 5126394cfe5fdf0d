//! The HTTP transport (reqwest, rustls) and enrollment.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use vigil_core::event::{Heartbeat, IngestReceipt, RegisterAgentRequest, RegisterAgentResponse};

use super::{EncodedBatch, SendOutcome, Transport};
use crate::config::Secret;
use crate::error::{Error, Result};

const INGEST_PATH: &str = "/api/v1/ingest/events";
const HEARTBEAT_PATH: &str = "/api/v1/agents/heartbeat";
const REGISTER_PATH: &str = "/api/v1/agents/register-agent";

/// Sends to a Vigil server over HTTP(S) with the agent's Bearer credential.
pub struct HttpTransport {
    client: reqwest::Client,
    base: String,
    credential: Secret,
}

impl HttpTransport {
    /// A transport for `server_url` with the given credential and per-request timeout.
    pub fn new(server_url: &str, credential: Secret, timeout: Duration) -> Result<Self> {
        Ok(HttpTransport {
            client: client(timeout)?,
            base: server_url.trim_end_matches('/').to_owned(),
            credential,
        })
    }
}

fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("vigil-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Transport(format!("building the HTTP client: {e}")))
}

/// Trades an enrollment token for a credential (`POST /api/v1/agents/register-agent`).
pub async fn register(
    server_url: &str,
    request: &RegisterAgentRequest,
    timeout: Duration,
) -> Result<RegisterAgentResponse> {
    let url = format!("{}{REGISTER_PATH}", server_url.trim_end_matches('/'));
    let resp = client(timeout)?
        .post(&url)
        .json(request)
        .send()
        .await
        .map_err(|e| Error::Enroll(format!("POST {url}: {e}")))?;
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    if !status.is_success() {
        return Err(Error::Enroll(format!(
            "POST {url}: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::Enroll(format!("POST {url}: unexpected answer: {e}")))
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

async fn classify(result: reqwest::Result<reqwest::Response>) -> SendOutcome {
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            return SendOutcome::Retry {
                after: None,
                reason: format!("request failed: {e}"),
            };
        }
    };
    let status = resp.status();
    let after = retry_after(&resp);
    let body = resp.bytes().await.unwrap_or_default();
    let text = || String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
    match status {
        s if s.is_success() => {
            SendOutcome::Accepted(serde_json::from_slice::<IngestReceipt>(&body).ok())
        }
        StatusCode::UNAUTHORIZED => SendOutcome::Unauthorized(text()),
        StatusCode::PAYLOAD_TOO_LARGE => SendOutcome::TooLarge,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => SendOutcome::Retry {
            after,
            reason: format!("HTTP {status}"),
        },
        s if s.is_server_error() => SendOutcome::Retry {
            after,
            reason: format!("HTTP {status}: {}", text()),
        },
        s => SendOutcome::Rejected {
            status: s.as_u16(),
            message: text(),
        },
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send_batch(&self, batch: &EncodedBatch) -> SendOutcome {
        let req = self
            .client
            .post(format!("{}{INGEST_PATH}", self.base))
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.credential.expose()),
            )
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "gzip")
            .body(batch.gzip_body.clone());
        classify(req.send().await).await
    }

    async fn heartbeat(&self, heartbeat: &Heartbeat) -> SendOutcome {
        let req = self
            .client
            .post(format!("{}{HEARTBEAT_PATH}", self.base))
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.credential.expose()),
            )
            .json(heartbeat);
        classify(req.send().await).await
    }
}
