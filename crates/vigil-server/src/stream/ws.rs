//! The WebSocket writer: sends the pump's frames as text messages, pings, reads the
//! client's `subscribe` / `ping` messages, and closes with the pump's reason.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};

use super::client::{Control, spawn_client};
use super::frame::{ClientMessage, ServerFrame, parse_cursor};
use super::{CLOSE_INTERNAL, CloseReason};
use crate::auth::AuthUser;
use crate::state::AppState;

/// Largest client message read; a subscribe message is far smaller.
pub(crate) const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Read buffer of a connection (grows for a larger message, up to the maximum).
pub(crate) const READ_BUFFER: usize = 4 * 1024;

/// Serves one upgraded connection until either side ends it. `after`: the URL's
/// `?after=`, used by the first `subscribe` that names none.
pub(crate) async fn serve(
    mut socket: WebSocket,
    state: AppState,
    user: AuthUser,
    mut after: Option<i64>,
) {
    let ping_every = Duration::from_secs(state.config.stream.ping_secs);
    // A client that takes this long to accept one frame is gone (or never reads).
    let write_limit = (ping_every * 2).max(Duration::from_secs(10));
    let mut channels = spawn_client(state, user, "websocket", None);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let close = loop {
        let outgoing = tokio::select! {
            biased;
            reason = &mut channels.close => break Some(reason.unwrap_or(CLOSE_INTERNAL)),
            out = channels.out.recv() => match out {
                Some(out) => Message::Text(out.text()),
                None => break None,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => match handle(&text, &mut after) {
                    // Never waits: the pump may itself be waiting for this writer (a replay
                    // filling the queue), so a full control queue refuses the message.
                    Ok(Some(control)) => match channels.control.try_send(control) {
                        Ok(()) => continue,
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => Message::Text(
                            refused("busy", "wait for ready before subscribing again".into())
                                .to_text(),
                        ),
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break None,
                    },
                    Ok(None) => Message::Text(ServerFrame::Pong.to_text()),
                    Err(frame) => Message::Text(frame.to_text()),
                },
                Some(Ok(Message::Binary(_))) => Message::Text(
                    refused("invalid_message", "send JSON text messages".into()).to_text(),
                ),
                // Pongs, and pings (answered by the library on the next write).
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        match tokio::time::timeout(write_limit, socket.send(outgoing)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break None,
        }
    };
    if let Some(CloseReason { code, reason }) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(write_limit, socket.send(Message::Close(Some(frame)))).await;
    }
    // Dropping the channels stops the pump.
}

/// A client message: a subscription to hand to the pump, `None` for a ping, or the error
/// frame to answer.
fn handle(text: &str, after: &mut Option<i64>) -> Result<Option<Control>, ServerFrame> {
    let msg: ClientMessage = serde_json::from_str(text).map_err(|e| {
        let code = if text.contains("\"filter\"") {
            "invalid_filter"
        } else {
            "invalid_message"
        };
        refused(
            code,
            format!("{e}; expected {{\"type\":\"subscribe\",\"filter\":{{\"severity\":\"high\",\"source\":[],\"status\":[],\"tag\":[]}}}} or {{\"type\":\"ping\"}}"),
        )
    })?;
    match msg {
        ClientMessage::Ping => Ok(None),
        ClientMessage::Subscribe {
            filter,
            after: from,
        } => {
            filter.check().map_err(|m| refused("invalid_filter", m))?;
            let from = match from {
                Some(c) => Some(parse_cursor(&c).map_err(|m| refused("invalid_message", m))?),
                // The URL's cursor serves the first subscription only.
                None => after.take(),
            };
            *after = None;
            Ok(Some(Control::Subscribe {
                filter,
                after: from,
            }))
        }
    }
}

fn refused(code: &'static str, message: String) -> ServerFrame {
    ServerFrame::Error { code, message }
}
