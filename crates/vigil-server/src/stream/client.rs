//! One stream client's pump: takes the hub's events, keeps those of the client's
//! organization that match its filter, replays missed ones from the outbox, and hands
//! frames to the transport's writer through a bounded queue. It also watches the session
//! and the shutdown signal and tells the writer when and why to close.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::frame::{ResyncReason, ServerFrame, cursor};
use super::{
    CLOSE_SESSION_ENDED, CLOSE_SHUTDOWN, CLOSE_USER_DISABLED, CloseReason, Encoded, Item,
    StreamFilter,
};
use crate::auth::AuthUser;
use crate::state::AppState;

/// What the writer sends: an event's shared encoded frame, or a frame of this client.
#[derive(Debug)]
pub(crate) enum Out {
    Event(Arc<Encoded>),
    Frame(ServerFrame),
}

impl Out {
    pub(crate) fn text(&self) -> axum::extract::ws::Utf8Bytes {
        match self {
            Out::Event(e) => e.frame.clone(),
            Out::Frame(f) => f.to_text(),
        }
    }
}

/// What the writer asks of the pump.
#[derive(Debug)]
pub(crate) enum Control {
    /// Start or replace the subscription; replay events after `after` first.
    Subscribe {
        filter: StreamFilter,
        after: Option<i64>,
    },
}

/// The writer's ends of a client's channels.
pub(crate) struct ClientChannels {
    pub out: mpsc::Receiver<Out>,
    pub control: mpsc::Sender<Control>,
    /// Fires once when the server ends the stream.
    pub close: oneshot::Receiver<CloseReason>,
}

/// Counts a connected client in `stream_clients{transport}` while it lives.
struct Connected(&'static str);

impl Connected {
    fn new(transport: &'static str) -> Self {
        metrics::gauge!(crate::metrics::STREAM_CLIENTS, "transport" => transport).increment(1.0);
        Self(transport)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::STREAM_CLIENTS, "transport" => self.0).decrement(1.0);
    }
}

/// Starts the pump of an authenticated client; `first` subscribes at once (SSE).
pub(crate) fn spawn_client(
    state: AppState,
    user: AuthUser,
    transport: &'static str,
    first: Option<Control>,
) -> ClientChannels {
    let (out_tx, out) = mpsc::channel(state.config.stream.client_buffer);
    let (control, control_rx) = mpsc::channel(4);
    let (close_tx, close) = oneshot::channel();
    if let Some(c) = first {
        // A fresh channel of capacity 4 has room.
        let _ = control.try_send(c);
    }
    let pump = Pump {
        connected: Connected::new(transport),
        cleared: state.sessions.watch_cleared(),
        shutdown: state.shutdown.clone(),
        state,
        user,
        out: out_tx,
        sub: None,
        skipped: None,
        lagged: false,
    };
    tokio::spawn(pump.run(control_rx, close_tx));
    ClientChannels {
        out,
        control,
        close,
    }
}

struct Subscription {
    filter: StreamFilter,
    rx: broadcast::Receiver<Item>,
    /// Events just replayed from the database, skipped when they also arrive live.
    replayed: HashSet<i64>,
    replayed_max: i64,
}

struct Pump {
    state: AppState,
    user: AuthUser,
    out: mpsc::Sender<Out>,
    sub: Option<Subscription>,
    /// Frames were dropped; a `resync` with this cursor is owed before anything else.
    skipped: Option<i64>,
    /// The broadcast receiver lagged; the next event fixes the resync cursor.
    lagged: bool,
    cleared: watch::Receiver<u64>,
    shutdown: CancellationToken,
    connected: Connected,
}

/// What woke the pump.
enum Wake {
    Check,
    Control(Control),
    Item(Result<Item, broadcast::error::RecvError>),
}

/// Ended by the writer (the queue is closed) or by the server (with a reason).
enum Stop {
    WriterGone,
    Close(CloseReason),
}

impl Pump {
    async fn run(
        mut self,
        mut control: mpsc::Receiver<Control>,
        close: oneshot::Sender<CloseReason>,
    ) {
        let transport = self.connected.0;
        tracing::debug!(user = %self.user.username, org = %self.user.org_id, transport, "stream client connected");
        let stop = self.pump(&mut control).await;
        if let Stop::Close(reason) = stop {
            tracing::info!(user = %self.user.username, transport, code = reason.code, reason = reason.reason, "stream closed by the server");
            let _ = close.send(reason);
        }
    }

    async fn pump(&mut self, control: &mut mpsc::Receiver<Control>) -> Stop {
        let every = Duration::from_secs(self.state.config.stream.auth_check_secs);
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The branches only borrow fields; what needs all of `self` runs after.
            let wake = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Stop::Close(CLOSE_SHUTDOWN),
                _ = self.out.closed() => return Stop::WriterGone,
                _ = check.tick() => Wake::Check,
                Ok(()) = self.cleared.changed() => Wake::Check,
                c = control.recv() => match c {
                    None => return Stop::WriterGone,
                    Some(c) => Wake::Control(c),
                },
                permit = self.out.reserve(), if self.skipped.is_some() => match permit {
                    Ok(p) => {
                        let at = self.skipped.take().unwrap_or_default();
                        p.send(resync(at, ResyncReason::Lagged));
                        continue;
                    }
                    Err(_) => return Stop::WriterGone,
                },
                item = recv(&mut self.sub) => Wake::Item(item),
            };
            match wake {
                Wake::Check => {
                    if let Some(reason) = self.check_access().await {
                        return Stop::Close(reason);
                    }
                }
                Wake::Control(Control::Subscribe { filter, after }) => {
                    let shutdown = self.shutdown.clone();
                    tokio::select! {
                        _ = shutdown.cancelled() => return Stop::Close(CLOSE_SHUTDOWN),
                        r = self.subscribe(filter, after) => if let Err(stop) = r { return stop },
                    }
                }
                Wake::Item(item) => {
                    if let Err(stop) = self.take(item) {
                        return stop;
                    }
                }
            }
        }
    }

    /// (Re)subscribes: joins the hub first, so nothing committed during the replay is
    /// missed, then replays, then says `ready`.
    async fn subscribe(&mut self, filter: StreamFilter, after: Option<i64>) -> Result<(), Stop> {
        let rx = match self.sub.take() {
            Some(s) => s.rx,
            None => self.state.stream.subscribe(),
        };
        let mut sub = Subscription {
            filter,
            rx,
            replayed: HashSet::new(),
            replayed_max: 0,
        };
        let outbox = self.state.store.outbox_store();
        let org = self.user.org_id;
        let at = match after {
            None => match outbox.latest_seq(org).await {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::warn!(error = %e, "stream: reading the latest cursor failed");
                    0
                }
            },
            Some(after) => {
                let limit = self.state.config.stream.replay_limit;
                match outbox.after(org, after, limit.saturating_add(1)).await {
                    Ok(events) if events.len() > limit as usize => {
                        let latest = outbox.latest_seq(org).await.unwrap_or(after);
                        self.send(resync(latest, ResyncReason::ReplayLimit)).await?;
                        latest
                    }
                    Ok(events) => {
                        let mut at = after;
                        for e in events {
                            at = at.max(e.seq);
                            sub.replayed.insert(e.seq);
                            sub.replayed_max = sub.replayed_max.max(e.seq);
                            if sub.filter.matches(&e.alert) {
                                self.send(Out::Event(Arc::new(Encoded::new(Arc::new(e)))))
                                    .await?;
                            }
                        }
                        at
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "stream: replay failed");
                        self.send(resync(after, ResyncReason::ReplayFailed)).await?;
                        after
                    }
                }
            }
        };
        self.sub = Some(sub);
        self.send(Out::Frame(ServerFrame::Ready { cursor: cursor(at) }))
            .await
    }

    /// Waits for room (replies and replays are few and bounded).
    async fn send(&self, out: Out) -> Result<(), Stop> {
        self.out.send(out).await.map_err(|_| Stop::WriterGone)
    }

    fn take(&mut self, item: Result<Item, broadcast::error::RecvError>) -> Result<(), Stop> {
        let Some(sub) = self.sub.as_mut() else {
            return Ok(());
        };
        let encoded = match item {
            Ok(Item::Event(e)) => e,
            Ok(Item::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => {
                self.lagged = true;
                return Ok(());
            }
            Err(broadcast::error::RecvError::Closed) => return Err(Stop::Close(CLOSE_SHUTDOWN)),
        };
        let seq = encoded.event.seq;
        if self.lagged {
            // What was lost came before this event.
            self.lagged = false;
            self.skipped = Some(self.skipped.unwrap_or(0).max(seq - 1));
        }
        if encoded.event.org_id != self.user.org_id {
            return Ok(());
        }
        if !sub.replayed.is_empty() {
            if sub.replayed.remove(&seq) {
                return Ok(());
            }
            if seq > sub.replayed_max {
                sub.replayed = HashSet::new();
            }
        }
        if !sub.filter.matches(&encoded.event.alert) {
            return Ok(());
        }
        self.offer(Out::Event(encoded), seq)
    }

    /// Queues a live frame without waiting: a full queue drops it and owes a `resync`.
    fn offer(&mut self, out: Out, seq: i64) -> Result<(), Stop> {
        if let Some(at) = self.skipped {
            match self.out.try_send(resync(at, ResyncReason::Lagged)) {
                Ok(()) => self.skipped = None,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.skipped = Some(at.max(seq));
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stop::WriterGone),
            }
        }
        match self.out.try_send(out) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.skipped = Some(seq);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stop::WriterGone),
        }
    }

    /// `Some` when the stream must close: the session ended or the user was disabled.
    /// A database error keeps the stream (checked again next time).
    async fn check_access(&self) -> Option<CloseReason> {
        match crate::auth::session_active(&self.state, self.user.session_id).await {
            Ok(true) => None,
            Ok(false) => match self
                .state
                .store
                .get_user(Some(self.user.org_id), self.user.id)
                .await
            {
                Ok(Some(u)) if !u.disabled => Some(CLOSE_SESSION_ENDED),
                Ok(_) => Some(CLOSE_USER_DISABLED),
                Err(_) => Some(CLOSE_SESSION_ENDED),
            },
            Err(e) => {
                tracing::warn!(error = %e.message, "stream: session check failed; kept open");
                None
            }
        }
    }
}

fn resync(at: i64, reason: ResyncReason) -> Out {
    Out::Frame(ServerFrame::Resync {
        cursor: cursor(at),
        reason,
    })
}

/// The next hub item, or never when not subscribed yet.
async fn recv(sub: &mut Option<Subscription>) -> Result<Item, broadcast::error::RecvError> {
    match sub {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}
