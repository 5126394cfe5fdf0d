//! The live stream: `POST /api/v1/stream/ticket` and `GET /api/v1/stream` over a real
//! WebSocket client (tokio-tungstenite) and over SSE, against a real server. Alerts are
//! created through the API (or the store, for volume) and must arrive as frames carrying the
//! webhook document; tickets are one-time, the stream is per organization, a slow client
//! gets `resync`, and a socket closes when its session ends or its user is disabled.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use vigil_core::Role;

use crate::helpers::{ADMIN_PW, TestApp, both, id_of, spawn_app_with};

/// How long a test waits for one frame (debug builds on a loaded 2-core machine).
const FRAME_WAIT: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<TcpStream>;

both!(
    ticket_opens_one_stream_only,
    bearer_subprotocol_is_selected,
    no_credentials_is_401_json_before_upgrade,
    alert_arrives_as_frame_with_webhook_document,
    filters_select_frames,
    reconnect_with_after_replays_missed_events,
    org_never_receives_another_orgs_frames,
    socket_closes_when_session_or_user_ends,
    sse_streams_frames_and_resumes,
);
both!(@backend replay_beyond_limit_is_resync, expired_ticket_is_refused);

/// A ticket for the session of `token`.
async fn ticket(app: &TestApp, token: &str) -> String {
    let r = app
        .send(Method::POST, "/api/v1/stream/ticket", Some(token), None)
        .await;
    let b = r.ok(200);
    assert!(b["expires_at"].as_str().is_some(), "{b}");
    b["ticket"].as_str().expect("ticket").to_string()
}

fn ws_url(app: &TestApp, query: &str) -> String {
    format!("ws://127.0.0.1:{}/api/v1/stream{query}", app.port)
}

/// Opens a WebSocket; `protocols` is the `Sec-WebSocket-Protocol` header, if any.
async fn open(
    app: &TestApp,
    query: &str,
    protocols: Option<&str>,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    WsError,
> {
    open_on(
        TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connect"),
        app,
        query,
        protocols,
    )
    .await
}

async fn open_on(
    tcp: TcpStream,
    app: &TestApp,
    query: &str,
    protocols: Option<&str>,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    WsError,
> {
    let mut req = ws_url(app, query).into_client_request().expect("request");
    if let Some(p) = protocols {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(p).expect("header"),
        );
    }
    tokio_tungstenite::client_async(req, tcp).await
}

/// A WebSocket opened with a fresh ticket of `token`'s session.
async fn connect(app: &TestApp, token: &str, query: &str) -> Ws {
    let t = ticket(app, token).await;
    let sep = if query.is_empty() { "?" } else { "&" };
    let q = format!("{query}{sep}ticket={t}");
    open(app, &q, None)
        .await
        .map(|(ws, _)| ws)
        .expect("WebSocket handshake")
}

/// The next JSON frame (pings are skipped); panics on close or after [`FRAME_WAIT`].
async fn frame(ws: &mut Ws) -> Value {
    match next_message(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("frame is JSON"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next message that is not a ping or pong.
async fn next_message(ws: &mut Ws) -> Message {
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                Some(Err(e)) => panic!("WebSocket error: {e}"),
                None => panic!("WebSocket ended without a close frame"),
            }
        }
    };
    tokio::time::timeout(FRAME_WAIT, read)
        .await
        .expect("no frame in time")
}

/// The next frame of type `alert`, skipping `ready`.
async fn alert_frame(ws: &mut Ws) -> Value {
    loop {
        let f = frame(ws).await;
        match f["type"].as_str() {
            Some("alert") => return f,
            Some("ready") => continue,
            _ => panic!("expected an alert frame, got {f}"),
        }
    }
}

/// The next alert frame, which must be about `alert`.
async fn expect_alert(ws: &mut Ws, alert: &Value) -> Value {
    let f = alert_frame(ws).await;
    assert_eq!(
        f["event"]["alert"]["id"].as_str(),
        Some(id_of(alert).as_str()),
        "{f}"
    );
    f
}

/// Sends a subscribe message; returns the frames before `ready` and ready's cursor.
async fn subscribe(ws: &mut Ws, msg: Value) -> (Vec<Value>, String) {
    ws.send(Message::text(msg.to_string())).await.expect("send");
    let mut before = Vec::new();
    loop {
        let f = frame(ws).await;
        if f["type"] == "ready" {
            return (before, f["cursor"].as_str().expect("cursor").to_string());
        }
        before.push(f);
    }
}

async fn subscribe_all(ws: &mut Ws) -> String {
    let (before, cursor) = subscribe(ws, json!({"type": "subscribe"})).await;
    assert!(before.is_empty(), "{before:?}");
    cursor
}

/// The close frame's code and reason, reading past anything queued before it.
async fn close_frame(ws: &mut Ws) -> (u16, String) {
    loop {
        match next_message(ws).await {
            Message::Close(Some(c)) => return (u16::from(c.code), c.reason.to_string()),
            Message::Close(None) => panic!("close frame without a code"),
            _ => continue,
        }
    }
}

/// The status and JSON body of a handshake the server refused.
fn refused(r: Result<(Ws, impl std::fmt::Debug), WsError>) -> (u16, Value) {
    match r {
        Err(WsError::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(ct.starts_with("application/json"), "content-type {ct}");
            let v: Value = serde_json::from_slice(&body).expect("JSON error body");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{v}"
            );
            (resp.status().as_u16(), v)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok((_, resp)) => panic!("handshake succeeded: {resp:?}"),
    }
}

/// The session id (`sid`) inside an access token.
fn session_id(access: &str) -> uuid::Uuid {
    use base64::Engine;
    let payload = access.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["sid"].as_str().expect("sid").parse().expect("uuid")
}

async fn ticket_opens_one_stream_only(app: &TestApp) {
    let admin = app.admin().await;
    let t = ticket(app, &admin.access).await;
    assert!(t.starts_with("vst_"), "{t}");
    let (mut ws, _) = open(app, &format!("?ticket={t}"), None)
        .await
        .expect("first use");
    subscribe_all(&mut ws).await;
    let (status, body) = refused(open(app, &format!("?ticket={t}"), None).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_ticket"))
    );
    let (status, body) = refused(open(app, "?ticket=vst_made-up", None).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_ticket"))
    );

    // Two connections racing with one ticket: exactly one opens.
    let t = ticket(app, &admin.access).await;
    let q = format!("?ticket={t}");
    let (a, b) = tokio::join!(open(app, &q, None), open(app, &q, None));
    let opened = [a.is_ok(), b.is_ok()];
    assert_eq!(opened.iter().filter(|o| **o).count(), 1, "{opened:?}");
    let (status, body) = refused(if a.is_ok() { b } else { a });
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_ticket"))
    );

    // A ticket of a session that ended since does not open a stream.
    let viewer = app.user_session(&admin.access, "tina", "viewer").await;
    let t = ticket(app, &viewer.access).await;
    app.send(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&viewer.access),
        None,
    )
    .await
    .ok(204);
    let (status, body) = refused(open(app, &format!("?ticket={t}"), None).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("session_revoked"))
    );
}

async fn expired_ticket_is_refused(backend: vigil_store::Backend) {
    let Some(app) = spawn_app_with(backend, |_| {}).await else {
        return;
    };
    let admin = app.admin().await;
    // Stored as issued a minute ago with a 30 s lifetime: expired, never used.
    let text = "vst_expired-ticket-for-the-test";
    let now = vigil_core::now();
    let me = app
        .get("/api/v1/auth/me", &admin.access)
        .await
        .ok(200)
        .clone();
    app.store
        .stream_store()
        .create_ticket(vigil_store::NewStreamTicket {
            token_hash: vigil_server::auth::token_hash(text),
            user_id: id_of(&me).parse().unwrap(),
            session_id: session_id(&admin.access),
            org_id: me["org_id"].as_str().unwrap().parse().unwrap(),
            created_at: now - chrono::Duration::seconds(60),
            expires_at: now - chrono::Duration::seconds(30),
        })
        .await
        .unwrap();
    let (status, body) = refused(open(&app, &format!("?ticket={text}"), None).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_ticket"))
    );
}

async fn bearer_subprotocol_is_selected(app: &TestApp) {
    let admin = app.admin().await;
    let offer = format!("vigil.v1, vigil.bearer.{}", admin.access);
    let (mut ws, resp) = open(app, "", Some(&offer)).await.expect("handshake");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("vigil.v1")
    );
    subscribe_all(&mut ws).await;
    // The token must be good, and vigil.v1 offered.
    let (status, body) = refused(open(app, "", Some("vigil.v1, vigil.bearer.not-a-jwt")).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let only = format!("vigil.bearer.{}", admin.access);
    let (status, body) = refused(open(app, "", Some(&only)).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unsupported_subprotocol"))
    );
}

async fn no_credentials_is_401_json_before_upgrade(app: &TestApp) {
    let (status, body) = refused(open(app, "", None).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = refused(open(app, "", Some("vigil.v1")).await);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // Neither WebSocket nor SSE, and SSE without a token.
    let admin = app.admin().await;
    app.get("/api/v1/stream", &admin.access)
        .await
        .err(426, "upgrade_required");
    let r = TestApp::finish(
        app.client
            .get(app.url("/api/v1/stream"))
            .header("accept", "text/event-stream"),
    )
    .await;
    r.err(401, "unauthorized");
    // A bad query is refused before anything else.
    let r = TestApp::finish(
        app.client
            .get(app.url("/api/v1/stream?severity=urgent"))
            .bearer_auth(&admin.access)
            .header("accept", "text/event-stream"),
    )
    .await;
    r.err(400, "invalid_query");
}

async fn alert_arrives_as_frame_with_webhook_document(app: &TestApp) {
    let admin = app.admin().await;
    let viewer = app.user_session(&admin.access, "vera", "viewer").await;
    let mut ws = connect(app, &viewer.access, "").await;
    subscribe_all(&mut ws).await;
    let a = app.alert(&admin.access, "Live one", "high").await;
    let f = alert_frame(&mut ws).await;
    let event = &f["event"];
    assert_eq!(
        f["cursor"],
        event["seq"].as_i64().expect("seq").to_string(),
        "{f}"
    );
    // The webhook document, schema 1: it parses as the shared type, with the alert as created.
    let doc: vigil_core::AlertEvent = serde_json::from_value(event.clone()).expect("AlertEvent");
    assert_eq!(doc.schema, 1);
    assert_eq!(doc.kind, vigil_core::AlertEventKind::Created);
    assert_eq!(doc.alert.id.to_string(), id_of(&a));
    assert_eq!(doc.alert.title, "Live one");
    assert_eq!(doc.org_id.to_string(), a["org_id"].as_str().unwrap());
    assert_eq!(event["kind"], "alert.created");
    assert!(doc.changes.is_empty());

    // A status change is the next frame, with what changed.
    app.patch(
        &format!("/api/v1/alerts/{}/status", id_of(&a)),
        &admin.access,
        &json!({ "status": "in_progress" }),
    )
    .await
    .ok(200);
    let f = alert_frame(&mut ws).await;
    assert_eq!(f["event"]["kind"], "alert.status_changed", "{f}");
    assert_eq!(f["event"]["alert"]["status"], "in_progress");
    assert!(
        f["event"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"] == "status" && c["new"] == "in_progress"),
        "{f}"
    );
    assert_ne!(f["event"]["id"], event["id"]);
    let (c1, c2): (i64, i64) = (
        event["seq"].as_i64().unwrap(),
        f["event"]["seq"].as_i64().unwrap(),
    );
    assert!(c2 > c1, "cursors increase: {c1} then {c2}");

    // The gauge counts connected clients.
    let m = app.metrics().await;
    assert!(m.contains("stream_clients{transport=\"websocket\"}"), "{m}");
    // A client ping is answered.
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(frame(&mut ws).await["type"], "pong");
}

async fn filters_select_frames(app: &TestApp) {
    let admin = app.admin().await;
    let mut ws = connect(app, &admin.access, "").await;
    let (_, _) = subscribe(
        &mut ws,
        json!({"type": "subscribe", "filter": {"severity": "high", "tag": ["vip", "prod"], "source": ["user"], "status": ["open"]}}),
    )
    .await;
    app.create_alert(
        &admin.access,
        json!({"title": "low vip", "severity": "low", "tags": ["vip"]}),
    )
    .await;
    app.create_alert(
        &admin.access,
        json!({"title": "high other", "severity": "high", "tags": ["x"]}),
    )
    .await;
    app.create_alert(
        &admin.access,
        json!({"title": "critical untagged", "severity": "critical"}),
    )
    .await;
    let hit = app
        .create_alert(
            &admin.access,
            json!({"title": "critical prod", "severity": "critical", "tags": ["prod"]}),
        )
        .await;
    expect_alert(&mut ws, &hit).await;

    // A bad filter is answered with an error frame; the subscription stays.
    ws.send(Message::text(
        r#"{"type":"subscribe","filter":{"severity":"urgent"}}"#,
    ))
    .await
    .unwrap();
    let e = frame(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("invalid_filter")),
        "{e}"
    );
    ws.send(Message::text("not json")).await.unwrap();
    assert_eq!(frame(&mut ws).await["code"], "invalid_message");
    let hit2 = app
        .create_alert(
            &admin.access,
            json!({"title": "high vip", "severity": "high", "tags": ["vip"]}),
        )
        .await;
    expect_alert(&mut ws, &hit2).await;

    // A new subscription replaces the filter.
    subscribe(
        &mut ws,
        json!({"type": "subscribe", "filter": {"severity": "low"}}),
    )
    .await;
    let low = app.alert(&admin.access, "now low counts", "low").await;
    expect_alert(&mut ws, &low).await;
}

async fn reconnect_with_after_replays_missed_events(app: &TestApp) {
    let admin = app.admin().await;
    let mut ws = connect(app, &admin.access, "").await;
    subscribe_all(&mut ws).await;
    app.alert(&admin.access, "seen", "low").await;
    let seen = alert_frame(&mut ws).await;
    let cursor = seen["cursor"].as_str().unwrap().to_string();
    ws.close(None).await.unwrap();
    drop(ws);

    let missed: Vec<String> = {
        let mut v = Vec::new();
        for t in ["missed 1", "missed 2", "missed 3"] {
            v.push(id_of(&app.alert(&admin.access, t, "medium").await));
        }
        v
    };
    // On the URL...
    let mut ws = connect(app, &admin.access, &format!("?after={cursor}")).await;
    let (replayed, ready) = subscribe(&mut ws, json!({"type": "subscribe"})).await;
    let ids: Vec<&str> = replayed
        .iter()
        .map(|f| f["event"]["alert"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, missed, "{replayed:?}");
    assert_eq!(ready, replayed[2]["cursor"].as_str().unwrap());
    // ...and then live, with no repeat of the replayed ones.
    let live = app.alert(&admin.access, "live after replay", "low").await;
    expect_alert(&mut ws, &live).await;

    // In the subscribe message, with a filter applied to the replay too.
    let mut ws = connect(app, &admin.access, "").await;
    let (replayed, _) = subscribe(
        &mut ws,
        json!({"type": "subscribe", "after": cursor, "filter": {"severity": "medium"}}),
    )
    .await;
    assert_eq!(replayed.len(), 3, "{replayed:?}");
    ws.send(Message::text(r#"{"type":"subscribe","after":"-4"}"#))
        .await
        .unwrap();
    assert_eq!(frame(&mut ws).await["code"], "invalid_message");
}

async fn replay_beyond_limit_is_resync(backend: vigil_store::Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.stream.replay_limit = 2).await else {
        return;
    };
    let admin = app.admin().await;
    let mut ws = connect(&app, &admin.access, "").await;
    let start = subscribe_all(&mut ws).await;
    drop(ws);
    for i in 0..3 {
        app.alert(&admin.access, &format!("missed {i}"), "low")
            .await;
    }
    let mut ws = connect(&app, &admin.access, &format!("?after={start}")).await;
    let (before, ready) = subscribe(&mut ws, json!({"type": "subscribe"})).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["type"], "resync");
    assert_eq!(before[0]["reason"], "replay_limit");
    assert_eq!(before[0]["cursor"].as_str(), Some(ready.as_str()));
    assert!(ready.parse::<i64>().unwrap() > start.parse::<i64>().unwrap());
}

async fn org_never_receives_another_orgs_frames(app: &TestApp) {
    let admin = app.admin().await;
    let other = app.other_org_user("olga", Role::Admin).await;
    let mut mine = connect(app, &admin.access, "").await;
    subscribe_all(&mut mine).await;
    let mut theirs = connect(app, &other.access, "").await;
    subscribe_all(&mut theirs).await;
    // Each org's alert is created after the other's: a leak would arrive first.
    let a1 = app.alert(&admin.access, "default org 1", "critical").await;
    let b1 = app.alert(&other.access, "other org 1", "critical").await;
    let a2 = app.alert(&admin.access, "default org 2", "critical").await;
    expect_alert(&mut theirs, &b1).await;
    expect_alert(&mut mine, &a1).await;
    expect_alert(&mut mine, &a2).await;
    let b2 = app.alert(&other.access, "other org 2", "critical").await;
    expect_alert(&mut theirs, &b2).await;
    // Nor by replay: org B replaying from 0 sees only its own.
    let mut ws = connect(app, &other.access, "?after=0").await;
    let (replayed, _) = subscribe(&mut ws, json!({"type": "subscribe"})).await;
    let orgs: Vec<&Value> = replayed.iter().map(|f| &f["event"]["org_id"]).collect();
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert!(orgs.iter().all(|o| **o == b1["org_id"]), "{orgs:?}");
}

async fn socket_closes_when_session_or_user_ends(app: &TestApp) {
    let admin = app.admin().await;
    // Logout.
    let viewer = app.user_session(&admin.access, "val", "viewer").await;
    let mut ws = connect(app, &viewer.access, "").await;
    subscribe_all(&mut ws).await;
    app.send(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&viewer.access),
        None,
    )
    .await
    .ok(204);
    assert_eq!(
        close_frame(&mut ws).await,
        (4001, "session ended".to_string())
    );

    // An admin resets the password (every session ends); the socket was opened by bearer.
    let (vid, _) = app.create_user(&admin.access, "vic", "viewer").await;
    let vic = app.login_ok("vic", "vic-password-1234").await;
    let (mut ws, _) = open(
        app,
        "",
        Some(&format!("vigil.v1, vigil.bearer.{}", vic.access)),
    )
    .await
    .expect("handshake");
    subscribe_all(&mut ws).await;
    app.post(
        &format!("/api/v1/users/{vid}/password"),
        &admin.access,
        &json!({ "password": "a-brand-new-password-99" }),
    )
    .await
    .ok(204);
    assert_eq!(
        close_frame(&mut ws).await,
        (4001, "session ended".to_string())
    );

    // Disabled.
    let (did, _) = app.create_user(&admin.access, "dora", "viewer").await;
    let dora = app.login_ok("dora", "dora-password-1234").await;
    let mut ws = connect(app, &dora.access, "").await;
    subscribe_all(&mut ws).await;
    app.patch(
        &format!("/api/v1/users/{did}"),
        &admin.access,
        &json!({ "disabled": true }),
    )
    .await
    .ok(200);
    assert_eq!(
        close_frame(&mut ws).await,
        (4003, "user disabled".to_string())
    );

    // Ended elsewhere (another replica, the CLI): noticed at the next check.
    let admin2 = app.login_ok("admin", ADMIN_PW).await;
    let mut ws = connect(app, &admin2.access, "").await;
    subscribe_all(&mut ws).await;
    app.store
        .revoke_session(session_id(&admin2.access), vigil_core::now())
        .await
        .unwrap();
    assert_eq!(
        close_frame(&mut ws).await,
        (4001, "session ended".to_string())
    );
}

/// Reads SSE events (`event`, `id`, `data` as JSON) from a streaming response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    async fn open(app: &TestApp, token: &str, query: &str, last_event_id: Option<&str>) -> Self {
        let mut rb = app
            .client
            .get(app.url(&format!("/api/v1/stream{query}")))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        let resp = rb.send().await.expect("SSE request");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// The next event that is not a keep-alive comment: (event, id, data); `None` at end.
    async fn next(&mut self) -> Option<(String, Option<String>, Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if event.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return Some((
                    event,
                    id,
                    serde_json::from_str(&data).expect("data is JSON"),
                ));
            }
            let chunk = tokio::time::timeout(FRAME_WAIT, self.resp.chunk())
                .await
                .expect("no SSE data in time")
                .expect("SSE read")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

async fn sse_streams_frames_and_resumes(app: &TestApp) {
    let admin = app.admin().await;
    let mut sse = SseReader::open(app, &admin.access, "?severity=medium", None).await;
    let (event, _, ready) = sse.next().await.unwrap();
    assert_eq!(
        (event.as_str(), ready["type"].as_str()),
        ("ready", Some("ready"))
    );
    app.alert(&admin.access, "filtered out", "low").await;
    let a = app.alert(&admin.access, "over SSE", "high").await;
    let (event, id, data) = sse.next().await.unwrap();
    assert_eq!(event, "alert", "{data}");
    assert_eq!(
        data["event"]["alert"]["id"].as_str(),
        Some(id_of(&a).as_str())
    );
    assert_eq!(id.as_deref(), data["cursor"].as_str());
    drop(sse);

    let missed = app
        .alert(&admin.access, "missed over SSE", "critical")
        .await;
    let mut sse = SseReader::open(app, &admin.access, "?severity=medium", id.as_deref()).await;
    let (event, _, data) = sse.next().await.unwrap();
    assert_eq!(event, "alert", "{data}");
    assert_eq!(
        data["event"]["alert"]["id"].as_str(),
        Some(id_of(&missed).as_str())
    );
    assert_eq!(sse.next().await.unwrap().0, "ready");

    // The session ends: a last `close` event, then the end of the response.
    app.send(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&admin.access),
        None,
    )
    .await
    .ok(204);
    let (event, _, data) = sse.next().await.unwrap();
    assert_eq!(event, "close");
    assert_eq!(
        data,
        json!({"type": "close", "code": 4001, "reason": "session ended"})
    );
    assert!(sse.next().await.is_none());
}

/// A client that stops reading gets a `resync` frame, not a server buffering without bound,
/// and the stream goes on live after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_gets_resync() {
    let app = spawn_app_with(vigil_store::Backend::Sqlite, |c| c.stream.client_buffer = 4)
        .await
        .expect("app");
    let admin = app.admin().await;
    let t = ticket(&app, &admin.access).await;
    // A tiny receive window, so the server's writes block soon.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock
        .connect(([127, 0, 0, 1], app.port).into())
        .await
        .unwrap();
    let (mut ws, _) = open_on(tcp, &app, &format!("?ticket={t}"), None)
        .await
        .expect("handshake");
    subscribe_all(&mut ws).await;
    const N: usize = 3000;
    let org = app
        .store
        .get_org_by_name("default")
        .await
        .unwrap()
        .unwrap()
        .id;
    let alerts: Vec<vigil_core::NewAlert> = (0..N)
        .map(|i| {
            vigil_core::NewAlert::parse(
                serde_json::from_value(json!({
                    "title": format!("burst {i}"),
                    "severity": "low",
                    "description": "x".repeat(512),
                }))
                .unwrap(),
                vigil_core::now(),
            )
            .unwrap()
        })
        .collect();
    app.store.insert_alerts_bulk(org, alerts).await.unwrap();
    // Not reading until every event has left the outbox for the hub.
    let outbox = app.store.outbox_store();
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    while outbox.pending().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox not dispatched"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut alerts_seen = 0;
    let resync = loop {
        let f = frame(&mut ws).await;
        match f["type"].as_str() {
            Some("alert") => alerts_seen += 1,
            Some("resync") => break f,
            _ => panic!("unexpected {f}"),
        }
    };
    assert_eq!(resync["reason"], "lagged", "{resync}");
    assert!(alerts_seen < N, "all {N} frames were buffered");
    // Live again after the resync: a new alert arrives once the client has caught up. While
    // it is still draining the burst, the new alert may be skipped too, which a resync
    // whose cursor reaches it says: then try again.
    for attempt in 0.. {
        assert!(attempt < 20, "no live alert got through after the resync");
        let live = app
            .alert(
                &admin.access,
                &format!("after the resync {attempt}"),
                "high",
            )
            .await;
        let seq = outbox.latest_seq(org).await.unwrap();
        let got = loop {
            let f = frame(&mut ws).await;
            match f["type"].as_str() {
                Some("alert")
                    if f["event"]["alert"]["id"].as_str() == Some(id_of(&live).as_str()) =>
                {
                    break true;
                }
                Some("alert") => {}
                Some("resync") if f["cursor"].as_str().unwrap().parse::<i64>().unwrap() >= seq => {
                    break false;
                }
                Some("resync") => {}
                _ => panic!("unexpected {f}"),
            }
        };
        if got {
            break;
        }
    }
}

/// Shutdown closes open sockets with 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_with_going_away() {
    let mut app = spawn_app_with(vigil_store::Backend::Sqlite, |_| {})
        .await
        .expect("app");
    let admin = app.admin().await;
    let mut ws = connect(&app, &admin.access, "").await;
    subscribe_all(&mut ws).await;
    let closed = tokio::spawn(async move { close_frame(&mut ws).await });
    app.shutdown().await.expect("clean shutdown");
    assert_eq!(
        closed.await.unwrap(),
        (1001, "server shutting down".to_string())
    );
}

/// The OpenAPI document describes both routes and the frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_stream() {
    let app = spawn_app_with(vigil_store::Backend::Sqlite, |_| {})
        .await
        .expect("app");
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = &doc["paths"]["/stream/ticket"]["post"];
    assert!(ticket["responses"]["200"].is_object(), "{ticket}");
    let stream = &doc["paths"]["/stream"]["get"];
    for status in ["101", "200", "401"] {
        assert!(
            stream["responses"][status].is_object(),
            "{status}: {stream}"
        );
    }
    let params: Vec<&str> = stream["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in ["ticket", "after", "severity", "source", "status", "tag"] {
        assert!(params.contains(&p), "{p}: {params:?}");
    }
    for s in [
        "ServerFrame",
        "ClientMessage",
        "StreamFilter",
        "AlertEvent",
        "StreamTicketResponse",
    ] {
        assert!(doc["components"]["schemas"][s].is_object(), "schema {s}");
    }
}
