//! Event ingestion over HTTP: `POST /api/v1/ingest/events` (agents and API keys, batched
//! JSON with a batch id). Bodies may be gzip-compressed (`Content-Encoding: gzip`).
//!
//! [`accept`] is the front door shared with the Loki push: authentication, the
//! credential's rate limit, then the body read within the ingest memory budget
//! (`ingest/budget.rs`). Whatever it refuses early, it refuses after reading the rest of
//! the body, so the client's keep-alive connection stays usable.

use std::io::Read;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_core::event::{IngestBatch, IngestReceipt};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ingest::auth::{IngestCaller, check_rate};
use crate::ingest::budget::{PARSED_PER_BYTE, Reservation, batch_cost};
use crate::ingest::normalize::{MAX_EVENT_BYTES, Origin, Received, normalize};
use crate::ingest::{Job, JobResult};
use crate::middleware::drain;
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

/// The `Content-Encoding` header, lower-cased.
pub fn content_encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase())
}

/// The body, decompressed per `Content-Encoding` (gzip or none), bounded; a compressed
/// body's expansion is reserved from the budget as it is decompressed.
pub fn decode_body(
    headers: &HeaderMap,
    body: Bytes,
    reservation: &mut Reservation,
) -> Result<Bytes, ApiError> {
    match content_encoding(headers).as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") | Some("x-gzip") => inflate(
            flate2::read::MultiGzDecoder::new(&body[..]),
            "gzip",
            reservation,
        ),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding '{other}' is not supported; use gzip or none"),
        )),
    }
}

/// Decompresses `reader` (at most [`MAX_DECOMPRESSED`] bytes), growing `reservation` by
/// each piece before it is kept: a small body that expands past the budget is refused
/// (503) before the memory is taken.
pub fn inflate(
    mut reader: impl Read,
    what: &str,
    reservation: &mut Reservation,
) -> Result<Bytes, ApiError> {
    const STEP: usize = 256 * 1024;
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() > MAX_DECOMPRESSED {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("decompressed body exceeds {MAX_DECOMPRESSED} bytes"),
            ));
        }
        reservation
            .try_grow(STEP as u64)
            .map_err(|_| overloaded_error())?;
        let start = out.len();
        out.resize(start + STEP, 0);
        let mut filled = start;
        while filled < out.len() {
            match reader.read(&mut out[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ApiError::bad_request(
                        "invalid_encoding",
                        format!("body is not valid {what}: {e}"),
                    ));
                }
            }
        }
        out.truncate(filled);
        if filled < start + STEP {
            return Ok(Bytes::from(out));
        }
    }
}

/// 503 `overloaded` with Retry-After: the ingest memory budget or the pipeline queue is
/// full.
fn overloaded_error() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "ingestion is overloaded; retry later",
    );
    e.retry_after = Some(1);
    e
}

/// 503 with Retry-After: the pipeline is full.
pub fn overloaded() -> Response {
    overloaded_error().into_response()
}

fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request body exceeds {MAX_BODY} bytes"),
    )
}

/// An authenticated ingest request, its body read within the memory budget.
pub struct Accepted {
    pub caller: IngestCaller,
    pub headers: HeaderMap,
    /// As sent (still compressed, if it was).
    pub body: Bytes,
    /// Holds the body's bytes; [`charge_parsed`] grows it before parsing.
    pub reservation: Reservation,
}

/// The front door of every ingest route: authentication (failures counted per client IP),
/// the credential's rate limit, then the body, reserved from the memory budget before it
/// is buffered (its `Content-Length`, or each piece as it arrives). Refusals are JSON:
/// 401/403, 429 and 503 with Retry-After, 413.
pub async fn accept(
    state: &AppState,
    req: Request,
    route: &'static str,
) -> Result<Accepted, Response> {
    let (mut parts, body) = req.into_parts();
    let caller = match IngestCaller::from_request_parts(&mut parts, state).await {
        Ok(c) => c,
        Err(resp) => {
            drain(body, MAX_BODY).await;
            return Err(resp);
        }
    };
    if let Err(e) = check_rate(state, caller.credential_id(), route) {
        drain(body, MAX_BODY).await;
        return Err(e.into_response());
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        // Read (and drop) a body somewhat over the limit, so the client that is still
        // writing it gets the JSON 413 instead of a broken pipe; a far larger one is cut off.
        drain(body, 2 * MAX_BODY).await;
        return Err(body_too_large().into_response());
    }
    let budget = state.pipeline.budget();
    let Ok(mut reservation) = budget.try_reserve(declared.unwrap_or(0)) else {
        drain(body, MAX_BODY).await;
        return Err(overloaded());
    };
    let body = read_body(body, declared.unwrap_or(0), &mut reservation)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Accepted {
        caller,
        headers: parts.headers,
        body,
        reservation,
    })
}

/// Buffers the body, growing `reservation` past `declared` bytes as pieces arrive.
async fn read_body(
    mut body: Body,
    declared: u64,
    reservation: &mut Reservation,
) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(declared as usize);
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if out.len() + data.len() > MAX_BODY {
            return Err(body_too_large());
        }
        let beyond = (out.len() + data.len()) as u64;
        if beyond > reservation.bytes()
            && reservation.try_grow(beyond - reservation.bytes()).is_err()
        {
            drain(body, MAX_BODY).await;
            return Err(overloaded_error());
        }
        out.extend_from_slice(data);
    }
    Ok(Bytes::from(out))
}

/// Before `decoded` bytes are parsed: holds what parsing them takes ([`PARSED_PER_BYTE`]),
/// giving back what the wire body held beyond it.
pub fn charge_parsed(
    state: &AppState,
    reservation: &mut Reservation,
    decoded: usize,
) -> Result<(), ApiError> {
    charge(state, reservation, decoded as u64 * PARSED_PER_BYTE)
}

/// Once the batch is parsed: holds what its `events` cost until they are stored, when
/// that is more than is held.
pub fn charge_events(
    state: &AppState,
    reservation: &mut Reservation,
    events: usize,
    decoded: usize,
) -> Result<(), ApiError> {
    let cost = batch_cost(events, decoded).max(reservation.bytes());
    charge(state, reservation, cost)
}

/// Holds `cost` bytes. A batch that could never fit in the budget is 413 (send smaller
/// batches); one that does not fit now is 503 with Retry-After.
fn charge(state: &AppState, reservation: &mut Reservation, cost: u64) -> Result<(), ApiError> {
    let budget = state.pipeline.budget();
    if !budget.could_fit(cost) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "this batch needs about {cost} bytes of memory once parsed, more than the \
                 ingest memory budget ({} bytes); send smaller batches",
                budget.total_bytes()
            ),
        ));
    }
    reservation.try_resize(cost).map_err(|_| overloaded_error())
}

/// Hands normalized events to the pipeline and waits until they are stored.
pub async fn submit_and_wait(state: &AppState, job: Job) -> Result<JobResult, Response> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        reply: Some(tx),
        ..job
    };
    // A job that failed to queue gives its reservation back when it is dropped here.
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
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "this credential's rate limit (`ingest.rate_limit_per_credential`): retry after Retry-After seconds"),
        (status = 503, body = ErrorBody, description = "overloaded (memory budget or queue full): retry after Retry-After seconds")))]
async fn ingest_events(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let Accepted {
        caller,
        headers,
        body,
        mut reservation,
    } = match accept(&state, req, "ingest").await {
        Ok(a) => a,
        Err(resp) => return Ok(resp),
    };
    let raw = decode_body(&headers, body, &mut reservation)?;
    charge_parsed(&state, &mut reservation, raw.len())?;
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
    let decoded = raw.len();
    drop(raw);
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
    charge_events(&state, &mut reservation, batch.events.len(), decoded)?;
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
        reservation: Some(reservation),
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
