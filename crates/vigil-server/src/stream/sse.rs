//! The Server-Sent Events writer: the same frames as the WebSocket, one SSE event each
//! (`event: <type>`, `data: <frame JSON>`, `id: <cursor>` on alert frames so `Last-Event-ID`
//! resumes), keep-alive comments every `stream.ping_secs`, and a last `close` event when the
//! server ends the stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use super::client::{ClientChannels, Control, Out, spawn_client};
use super::frame::{ServerFrame, cursor};
use super::{CLOSE_INTERNAL, StreamFilter};
use crate::auth::AuthUser;
use crate::state::AppState;

/// The response for an authenticated SSE client, subscribed at once.
pub(crate) fn respond(
    state: AppState,
    user: AuthUser,
    filter: StreamFilter,
    after: Option<i64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ping = Duration::from_secs(state.config.stream.ping_secs);
    let channels = spawn_client(
        state,
        user,
        "sse",
        Some(Control::Subscribe { filter, after }),
    );
    let events = futures_util::stream::unfold(Some(channels), |channels| async move {
        let mut c: ClientChannels = channels?;
        tokio::select! {
            biased;
            reason = &mut c.close => {
                let r = reason.unwrap_or(CLOSE_INTERNAL);
                let last = ServerFrame::Close { code: r.code, reason: r.reason };
                Some((Ok(event(&Out::Frame(last))), None))
            }
            out = c.out.recv() => out.map(|o| (Ok(event(&o)), Some(c))),
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(ping).text("ping"))
}

fn event(out: &Out) -> Event {
    // Every frame that says where the stream stands sets the id, so a reconnecting
    // EventSource resumes from there.
    let (name, id) = match out {
        Out::Event(e) => ("alert", Some(cursor(e.event.seq))),
        Out::Frame(f @ (ServerFrame::Ready { cursor } | ServerFrame::Resync { cursor, .. })) => {
            (f.name(), Some(cursor.clone()))
        }
        Out::Frame(f) => (f.name(), None),
    };
    let e = Event::default().event(name).data(out.text().as_str());
    match id {
        Some(id) => e.id(id),
        None => e,
    }
}
