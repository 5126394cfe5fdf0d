//! Event ingestion over HTTP: `POST /api/v1/ingest/events` (agents and API keys, batched
//! JSON with a batch id). Bodies may be gzip-compressed (`Content-Encoding: gzip`).

use std::io::Read;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_core::event::{IngestBatch, IngestReceipt};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::RawBody;
use crate::ingest::auth::IngestCaller;
use crate::ingest::normalize::{MAX_EVENT_BYTES, Origin, Received, normalize};
use crate::ingest::{Job, JobResult};
use crate::state::AppState;

/// Largest ingest body after decompression.
pub const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;
/// Largest ingest body on the wire.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long a sender waits for its batch to be stored before it is told to retry.
const STORE_WAIT: Duration = Duration::from_secs(30);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest_events))
}

/// The body, decompressed per `Content-Encoding` (gzip or none), bounded.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::new();
            let mut reader =
                flate2::read::MultiGzDecoder::new(body).take(MAX_DECOMPRESSED as u64 + 1);
            reader.read_to_end(&mut out).map_err(|e| {
                ApiError::bad_request("invalid_encoding", format!("body is not valid gzip: {e}"))
            })?;
            if out.len() > MAX_DECOMPRESSED {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("decompressed body exceeds {MAX_DECOMPRESSED} bytes"),
                ));
            }
            Ok(out)
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding '{other}' is not supported; use gzip or none"),
        )),
    }
}

/// 503 with Retry-After: the pipeline is full.
pub fn overloaded() -> Response {
    let mut r = ApiError::unavailable("ingestion is overloaded; retry later").into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Hands normalized events to the pipeline and waits until they are stored.
pub async fn submit_and_wait(state: &AppState, job: Job) -> Result<JobResult, Response> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        reply: Some(tx),
        ..job
    };
    if state.pipeline.try_submit(job).is_err() {
        return Err(overloaded());
    }
    match tokio::time::timeout(STORE_WAIT, rx).await {
        Ok(Ok(result)) => Ok(result),
        _ => Err(overloaded()),
    }
}

pub fn origin_of(caller: &IngestCaller) -> Origin {
    match caller {
        IngestCaller::Agent(a) => Origin {
            agent_id: Some(a.id.to_string()),
            agent_name: Some(a.hostname.clone()),
            host: Some(a.hostname.clone()),
        },
        IngestCaller::Key(_) => Origin::default(),
    }
}

/// Send a batch of events (agents: their credential; others: an API key with the ingest
/// scope). Answers once the batch is stored; a batch id seen before is acknowledged
/// without storing anything again.
#[utoipa::path(post, path = "/ingest/events", tag = "ingest", security(("bearer" = [])), request_body = IngestBatch,
    responses((status = 202, body = IngestReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody, description = "overloaded: retry after Retry-After seconds")))]
async fn ingest_events(
    State(state): State<AppState>,
    caller: IngestCaller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let raw = decode_body(&headers, &body)?;
    let batch: IngestBatch = serde_json::from_slice(&raw).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request("malformed_json", format!("body is not valid JSON: {e}"))
        } else {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("body is not an ingest batch: {e}"),
            )
        }
    })?;
    let max = state.config.ingest.max_batch_events;
    if batch.events.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a batch holds at most {max} events; this one has {}",
                batch.events.len()
            ),
        ));
    }
    let org = caller.org_id();
    if state.events.batch_seen(org, batch.batch_id).await? {
        return Ok(receipt(IngestReceipt {
            batch_id: batch.batch_id,
            accepted: 0,
            rejected: 0,
            duplicate: true,
            errors: Vec::new(),
        }));
    }
    let origin = origin_of(&caller);
    let received = Received::new(vigil_core::now())
        .with_max_future_skew(state.config.ingest.max_future_skew_secs);
    let mut errors = Vec::new();
    let mut events: Vec<Json> = Vec::with_capacity(batch.events.len());
    for (i, doc) in batch.events.into_iter().enumerate() {
        if event_too_large(&doc) {
            errors.push(format!("event {i}: larger than {MAX_EVENT_BYTES} bytes"));
            continue;
        }
        match normalize(doc, &received, &origin) {
            Ok(doc) => events.push(doc),
            Err(e) => errors.push(format!("event {i}: {e}")),
        }
    }
    let rejected = errors.len();
    let channel = match caller {
        IngestCaller::Agent(_) => "agent",
        IngestCaller::Key(_) => "api",
    };
    let job = Job {
        org,
        batch: Some(batch.batch_id),
        channel,
        events,
        reply: None,
    };
    let outcome = match submit_and_wait(&state, job).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(ApiError::storage_unavailable(format!("{e}; retry later"))),
        Err(resp) => return Ok(resp),
    };
    errors.truncate(100);
    Ok(receipt(IngestReceipt {
        batch_id: batch.batch_id,
        accepted: outcome.stored,
        rejected,
        duplicate: outcome.duplicate,
        errors,
    }))
}

/// Whether an event is over the per-event limit ([`MAX_EVENT_BYTES`], serialized), on every
/// ingest route. The estimate is an upper bound: only an event it puts over the limit is
/// measured.
pub fn event_too_large(doc: &Json) -> bool {
    json_size_exceeds(doc, MAX_EVENT_BYTES)
        && serde_json::to_vec(doc).map_or(true, |v| v.len() > MAX_EVENT_BYTES)
}

/// Whether a JSON value's text would be longer than `max` bytes (an upper-bound estimate
/// that stops early; cheaper than serializing every event to measure it).
pub fn json_size_exceeds(v: &Json, max: usize) -> bool {
    fn walk(v: &Json, budget: &mut isize) -> bool {
        *budget -= match v {
            Json::Null | Json::Bool(_) => 5,
            Json::Number(_) => 24,
            Json::String(s) => s.len() as isize + 2,
            Json::Array(a) => {
                *budget -= 2 + a.len() as isize;
                return *budget < 0 || a.iter().any(|x| walk(x, budget));
            }
            Json::Object(o) => {
                *budget -= 2;
                for (k, x) in o {
                    *budget -= k.len() as isize + 4;
                    if *budget < 0 || walk(x, budget) {
                        return true;
                    }
                }
                0
            }
        };
        *budget < 0
    }
    let mut budget = isize::try_from(max).unwrap_or(isize::MAX);
    walk(v, &mut budget)
}

fn receipt(r: IngestReceipt) -> Response {
    (StatusCode::ACCEPTED, axum::Json(r)).into_response()
}
