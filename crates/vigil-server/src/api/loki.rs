//! `POST /loki/api/v1/push`: the Grafana Loki push API, so Promtail, Grafana Alloy,
//! winston-loki or python-logging-loki can ship to Vigil unchanged. Protobuf (snappy) and
//! JSON bodies, optionally gzip-compressed; authenticated like every ingest route (bearer
//! API key or agent credential, or the API key as the basic-auth password).
//!
//! `X-Scope-OrgID`, when sent, must name the caller's organization (its name or id).
//! Loki answers 204; so do we, once the entries are stored. A body that is re-sent as it
//! was (a client retry) is recognised by its hash and stored once. An entry over the
//! per-event limit of every ingest route is refused as Loki refuses a line over its
//! `max_line_size`: the rest is stored and the push answers 400 `entry_too_large`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::ingest::{
    Accepted, MAX_DECOMPRESSED, accept, charge_events, charge_parsed, content_encoding,
    event_too_large, inflate, origin_of, submit_and_wait,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ingest::Job;
use crate::ingest::normalize::{MAX_EVENT_BYTES, Received, normalize};
use crate::state::AppState;

fn header(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Loki push API (Promtail, Alloy): protobuf with snappy (`application/x-protobuf`) or
/// JSON, optionally gzip-compressed. Bearer API key or agent credential, or the API key as
/// the basic-auth password. 204 once the entries are stored.
#[utoipa::path(post, path = "/loki/api/v1/push", tag = "ingest", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/x-protobuf",
        description = "Loki PushRequest: snappy protobuf, or the JSON form"),
    responses((status = 204, description = "stored"), (status = 400, body = ErrorBody,
            description = "not a push, or entries over the per-event limit (the others are stored)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "this credential's rate limit: retry after Retry-After seconds"),
        (status = 503, body = ErrorBody,
            description = "overloaded (memory budget or queue full): retry after Retry-After seconds")))]
pub async fn push(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let Accepted {
        caller,
        headers,
        body,
        mut reservation,
    } = match accept(&state, req, "loki").await {
        Ok(a) => a,
        Err(resp) => return Ok(resp),
    };
    let org = caller.org_id();
    if let Some(scope) = header(&headers, "x-scope-orgid")
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let named = match Uuid::parse_str(scope) {
            Ok(id) => id == org,
            Err(_) => state
                .store
                .get_org_by_name(scope)
                .await?
                .is_some_and(|o| o.id == org),
        };
        if !named {
            return Err(ApiError::forbidden(format!(
                "X-Scope-OrgID '{scope}' is not the organization of this credential"
            )));
        }
    }
    // gzip and deflate are undone here, so their expansion is reserved as it happens;
    // snappy-compressed protobuf states its decoded length, charged before it is decoded.
    let encoding = content_encoding(&headers);
    let (decoded, encoding) = match encoding.as_deref() {
        Some("gzip" | "x-gzip") => (
            inflate(
                flate2::read::MultiGzDecoder::new(&body[..]),
                "gzip",
                &mut reservation,
            )?,
            None,
        ),
        Some("deflate") => (
            inflate(
                flate2::read::DeflateDecoder::new(&body[..]),
                "deflate",
                &mut reservation,
            )?,
            None,
        ),
        _ => (body.clone(), header(&headers, header::CONTENT_ENCODING)),
    };
    let content_type = header(&headers, header::CONTENT_TYPE);
    let plain_len = vigil_parse::loki::decoded_len(&decoded, content_type)
        .unwrap_or(decoded.len())
        .min(MAX_DECOMPRESSED);
    charge_parsed(&state, &mut reservation, plain_len)?;
    let streams =
        vigil_parse::loki::decode_push(&decoded, content_type, encoding, MAX_DECOMPRESSED)
            .map_err(|e| match e {
                vigil_parse::Error::TooLarge { .. } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    e.to_string(),
                ),
                e => ApiError::bad_request("invalid_push", e.to_string()),
            })?;
    let total: usize = streams.iter().map(|s| s.entries.len()).sum();
    let max = state.config.ingest.max_batch_events;
    if total > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("a push holds at most {max} entries; this one has {total}"),
        ));
    }
    if total == 0 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    charge_events(&state, &mut reservation, total, plain_len)?;
    // A retry sends the same bytes: the same batch id, stored once.
    let digest = Sha256::new()
        .chain_update(org.as_bytes())
        .chain_update(&body)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    let batch = uuid::Builder::from_random_bytes(id).into_uuid();
    if state.events.batch_seen(org, batch).await? {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let origin = origin_of(&caller);
    let received = Received::new(vigil_core::now())
        .with_max_future_skew(state.config.ingest.max_future_skew_secs);
    let mut too_large = 0;
    let events: Vec<_> = streams
        .iter()
        .flat_map(vigil_parse::loki::to_events)
        .filter(|doc| {
            let over = event_too_large(doc);
            too_large += usize::from(over);
            !over
        })
        .filter_map(|doc| normalize(doc, &received, &origin).ok())
        .collect();
    let job = Job {
        org,
        batch: Some(batch),
        channel: "loki",
        events,
        reply: None,
        reservation: Some(reservation),
    };
    match submit_and_wait(&state, job).await {
        // As Loki does with lines over its `max_line_size`: the others are stored, the
        // push answers 400 naming them (so the shipper logs it and does not retry).
        Ok(Ok(_)) if too_large > 0 => Err(ApiError::bad_request(
            "entry_too_large",
            format!(
                "{too_large} of {total} entries are larger than {MAX_EVENT_BYTES} bytes and were \
                 refused; the others are stored"
            ),
        )),
        Ok(Ok(_)) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(Err(e)) => Err(ApiError::storage_unavailable(format!("{e}; retry later"))),
        Err(resp) => Ok(resp),
    }
}
