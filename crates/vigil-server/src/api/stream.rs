//! `/api/v1/stream`: live alerts over a WebSocket, or Server-Sent Events for curl
//! (`Accept: text/event-stream`), and `/api/v1/stream/ticket`, the one-time ticket a browser
//! opens the WebSocket with (it cannot set an Authorization header, and a JWT in the URL
//! ends up in access logs). The stream itself is `crate::stream`; the protocol for clients
//! is `docs/STREAM.md`.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_store::NewStreamTicket;

use crate::auth::{AuthUser, random_token, session_ended, token_hash};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::stream::frame::parse_cursor;
use crate::stream::{ServerFrame, StreamFilter};

/// The subprotocol a WebSocket client must offer (the server selects it).
pub const PROTOCOL: &str = "vigil.v1";
/// Prefix of the subprotocol that carries an access token: `vigil.bearer.<JWT>`.
pub const BEARER_PROTOCOL_PREFIX: &str = "vigil.bearer.";
/// Prefix of every ticket.
const TICKET_PREFIX: &str = "vst_";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_ticket))
        .routes(routes!(stream))
}

/// A one-time ticket for `GET /api/v1/stream?ticket=...`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTicketResponse {
    /// Opens one stream, of your organization, until `expires_at`.
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

/// Get a one-time ticket to open the live stream (any role).
///
/// The ticket opens one stream (`GET /api/v1/stream?ticket=...`) within
/// `stream.ticket_ttl_secs` (30 s); the stream belongs to this session: it closes when the
/// session ends. Tickets are kept hashed in the database, so any replica accepts them.
#[utoipa::path(post, path = "/stream/ticket", tag = "stream", security(("bearer" = [])),
    responses((status = 200, body = StreamTicketResponse), (status = 401, body = ErrorBody)))]
async fn create_ticket(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<StreamTicketResponse>> {
    let ticket = format!("{TICKET_PREFIX}{}", random_token());
    let now = vigil_core::now();
    let ttl = i64::try_from(state.config.stream.ticket_ttl_secs).unwrap_or(i64::MAX / 1000);
    let expires_at = now + chrono::Duration::seconds(ttl);
    state
        .store
        .stream_store()
        .create_ticket(NewStreamTicket {
            token_hash: token_hash(&ticket),
            user_id: user.id,
            session_id: user.session_id,
            org_id: user.org_id,
            created_at: now,
            expires_at,
        })
        .await?;
    Ok(axum::Json(StreamTicketResponse { ticket, expires_at }))
}

/// What the query string of `GET /stream` holds.
#[derive(Default)]
struct StreamQuery {
    ticket: Option<String>,
    after: Option<i64>,
    filter: StreamFilter,
}

fn parse_query(raw: Option<&str>) -> Result<StreamQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let mut q = StreamQuery::default();
    for (k, v) in &pairs {
        match k.as_str() {
            "ticket" => q.ticket = Some(v.clone()),
            "after" => {
                q.after =
                    Some(parse_cursor(v).map_err(|m| ApiError::bad_request("invalid_query", m))?)
            }
            _ => {
                if !q.filter.set_query_param(k, v)? {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!(
                            "unknown parameter '{}'; expected ticket, after, severity, source, status, tag",
                            k.chars().take(64).collect::<String>()
                        ),
                    ));
                }
            }
        }
    }
    Ok(q)
}

/// Live alerts of your organization: WebSocket, or Server-Sent Events (any role).
///
/// **WebSocket** (`101`): authenticate with `?ticket=` (from `POST /api/v1/stream/ticket`,
/// one use) or the subprotocols `Sec-WebSocket-Protocol: vigil.v1, vigil.bearer.<access
/// token>` (the server selects `vigil.v1`; a client offering subprotocols must offer
/// `vigil.v1`). Then send `{"type":"subscribe","filter":{"severity":"high","source":[...],
/// "status":[...],"tag":[...]},"after":"<cursor>"}` (every field optional); the server
/// replays what was missed after the cursor (at most `stream.replay_limit`, else a `resync`
/// frame), sends `{"type":"ready","cursor":...}`, then `{"type":"alert","cursor":...,
/// "event":<AlertEvent>}` frames (the webhook document), `resync` frames when the client
/// fell behind (`stream.client_buffer`), WebSocket pings every `stream.ping_secs`. Schemas:
/// `ServerFrame`, `ClientMessage`.
///
/// **SSE** (`200`, `Accept: text/event-stream`): `Authorization: Bearer <token>` (or
/// `?ticket=`), the filter as query parameters, resume with `Last-Event-ID` or `?after=`.
/// Each frame is one event: `event: <type>`, `data: <frame>`, `id: <cursor>`.
///
/// The stream closes when the session ends (WebSocket close code 4001 `session ended`), the
/// user is disabled (4003 `user disabled`) or the server stops (1001 `server shutting
/// down`); over SSE the last event is `close` with the same code and reason.
#[utoipa::path(get, path = "/stream", tag = "stream", security((), ("bearer" = [])),
    params(
        ("ticket" = Option<String>, Query, description = "One-time ticket from POST /api/v1/stream/ticket"),
        ("after" = Option<String>, Query, description = "Replay the events after this cursor first (SSE: also Last-Event-ID)"),
        ("severity" = Option<vigil_core::Severity>, Query, description = "SSE filter: minimum severity"),
        ("source" = Option<String>, Query, description = "SSE filter: sources, comma-separated or repeated"),
        ("status" = Option<String>, Query, description = "SSE filter: statuses, comma-separated or repeated"),
        ("tag" = Option<String>, Query, description = "SSE filter: tags (any of), comma-separated or repeated"),
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "vigil.v1, vigil.bearer.<access token>"),
        ("Last-Event-ID" = Option<String>, Header, description = "SSE: resume after this cursor"),
    ),
    responses(
        (status = 101, description = "WebSocket: frames are ServerFrame JSON text messages; the client sends ClientMessage"),
        (status = 200, description = "Server-Sent Events: one ServerFrame per event", content_type = "text/event-stream", body = ServerFrame),
        (status = 400, description = "Bad query, handshake or subprotocols", body = ErrorBody),
        (status = 401, description = "No or bad ticket or token, or the session ended", body = ErrorBody),
        (status = 426, description = "Neither a WebSocket upgrade nor Accept: text/event-stream", body = ErrorBody),
    ))]
async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let query = parse_query(raw.as_deref())?;
    let protocols = offered_protocols(&headers);
    match ws {
        Ok(ws) => {
            if !protocols.is_empty() && !protocols.contains(&PROTOCOL) {
                return Err(ApiError::bad_request(
                    "unsupported_subprotocol",
                    format!(
                        "offer the subprotocol {PROTOCOL} (with {BEARER_PROTOCOL_PREFIX}<token> to authenticate)"
                    ),
                ));
            }
            if !query.filter.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "a WebSocket client sends its filter in a subscribe message",
                ));
            }
            let bearer = protocols
                .iter()
                .find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX));
            let user = authenticate(&state, &headers, query.ticket.as_deref(), bearer).await?;
            let after = query.after;
            Ok(ws
                .protocols([PROTOCOL])
                .max_message_size(crate::stream::ws::MAX_CLIENT_MESSAGE)
                // Clients send a few small messages; the 128 KiB default read buffer was
                // most of a connection's memory (`vigil bench stream`). Every frame is
                // flushed by itself, so the write buffer need not hold more than one.
                .read_buffer_size(crate::stream::ws::READ_BUFFER)
                .write_buffer_size(0)
                .on_failed_upgrade(
                    |e| tracing::info!(error = %e, "stream: WebSocket upgrade failed"),
                )
                .on_upgrade(move |socket| crate::stream::ws::serve(socket, state, user, after))
                .into_response())
        }
        Err(rejection) if wants_upgrade(&headers) => Err(ApiError::bad_request(
            "invalid_websocket_handshake",
            rejection.body_text(),
        )),
        Err(_) if accepts_event_stream(&headers) => {
            let user = authenticate(&state, &headers, query.ticket.as_deref(), None).await?;
            let after = match headers.get("last-event-id") {
                Some(v) => Some(
                    v.to_str()
                        .map_err(|_| "Last-Event-ID is not text".to_string())
                        .and_then(parse_cursor)
                        .map_err(|m| ApiError::bad_request("invalid_last_event_id", m))?,
                ),
                None => query.after,
            };
            Ok(crate::stream::sse::respond(state, user, query.filter, after).into_response())
        }
        Err(_) => Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "open this path as a WebSocket, or send Accept: text/event-stream for Server-Sent Events",
        )),
    }
}

/// The caller: by one-time ticket, by the token of the `vigil.bearer.` subprotocol, or by
/// the Authorization header, in that order.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    ticket: Option<&str>,
    bearer_protocol: Option<&str>,
) -> Result<AuthUser, ApiError> {
    if let Some(ticket) = ticket {
        return redeem(state, ticket).await;
    }
    if let Some(token) = bearer_protocol {
        return crate::auth::authenticate(state, token).await;
    }
    let token = crate::auth::bearer_token(headers).ok_or_else(|| {
        ApiError::unauthorized(format!(
            "authenticate with ?ticket= (POST /api/v1/stream/ticket), the subprotocols \
             '{PROTOCOL}, {BEARER_PROTOCOL_PREFIX}<token>', or Authorization: Bearer <token>"
        ))
    })?;
    crate::auth::authenticate(state, token).await
}

/// Uses a ticket up and returns whom it was issued to, with their current role.
async fn redeem(state: &AppState, ticket: &str) -> Result<AuthUser, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_ticket",
            "the ticket is unknown, used or expired; get a new one from POST /api/v1/stream/ticket",
        )
    };
    if !ticket.starts_with(TICKET_PREFIX) || ticket.len() > 128 {
        return Err(invalid());
    }
    let t = state
        .store
        .stream_store()
        .redeem_ticket(&token_hash(ticket), vigil_core::now())
        .await?
        .ok_or_else(invalid)?;
    if !crate::auth::session_active(state, t.session_id).await? {
        return Err(session_ended());
    }
    let user = state
        .store
        .get_user(Some(t.org_id), t.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(session_ended)?;
    Ok(AuthUser {
        id: user.id,
        org_id: user.org_id,
        role: user.role,
        username: user.username,
        session_id: t.session_id,
    })
}

/// Every subprotocol the client offered, in order.
fn offered_protocols(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}
