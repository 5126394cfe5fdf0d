//! The test harness: a real server on a free port over a throwaway database, and request
//! helpers that return status, headers and the JSON body.

use std::path::PathBuf;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;
use vigil_server::config::{Config, Secret};
use vigil_store::testing::TestDb;
use vigil_store::{Backend, DynStore, NewUser};

/// Password of the bootstrap `admin` of org `default`.
pub const ADMIN_PW: &str = "admin-password-for-tests";

/// Generates `NAME::sqlite` and `NAME::postgres` test functions.
///
/// * `both!(a, b)` for `async fn a(app: &TestApp)`: each gets a fresh default server;
/// * `both!(#[ignore = "bug: ..."] a)` and `both!(@backend #[ignore = "bug: ..."] a)`: one
///   test of either form, ignored (a known bug, listed in the report);
/// * `both!(@backend a, b)` for `async fn a(backend: Backend)`: the test starts its own
///   server(s) with [`spawn_app_with`] and returns early when PostgreSQL is unavailable.
macro_rules! both {
    (@backend #[ignore = $reason:literal] $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $reason]
            async fn sqlite() {
                super::$name(vigil_store::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $reason]
            async fn postgres() {
                super::$name(vigil_store::Backend::Postgres).await;
            }
        }
    };
    (@backend $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(vigil_store::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(vigil_store::Backend::Postgres).await;
            }
        }
    )*};
    (#[ignore = $reason:literal] $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $reason]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app(vigil_store::Backend::Sqlite)
                    .await
                    .expect("sqlite test app");
                super::$name(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $reason]
            async fn postgres() {
                let Some(app) = $crate::helpers::spawn_app(vigil_store::Backend::Postgres).await
                else {
                    return;
                };
                super::$name(&app).await;
            }
        }
    };
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app(vigil_store::Backend::Sqlite)
                    .await
                    .expect("sqlite test app");
                super::$name(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = $crate::helpers::spawn_app(vigil_store::Backend::Postgres).await
                else {
                    return;
                };
                super::$name(&app).await;
            }
        }
    )*};
}
pub(crate) use both;

/// A running server. Dropping it stops the server, removes the data directory and drops
/// the database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub store: DynStore,
    pub backend: Backend,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    pub syslog: vigil_server::app::SyslogAddrs,
    /// The hub the server's outbox dispatcher delivers alert events into.
    pub hub: std::sync::Arc<vigil_server::outbox::LiveHub>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    // Last: dropped after the server was told to stop.
    _db: TestDb,
}

/// A server with the test defaults (rate limiting off).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// A server whose configuration `configure` adjusts after the test defaults are set.
pub async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    let db = TestDb::new(backend).await?;
    let data_dir = std::env::temp_dir().join(format!("vigil-api-test-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir).expect("create data dir");
    let mut config = Config {
        data_dir: data_dir.clone(),
        ..Config::default()
    };
    config.database.url = Secret::new(db.url.clone());
    config.database.max_connections = 4;
    config.server.port = 0;
    config.server.host = "127.0.0.1".into();
    config.server.shutdown_grace_secs = 5;
    config.rate_limit.enabled = false;
    config.ingest.local_agent = false;
    configure(&mut config);
    let app = vigil_server::Application::build(config, Some(Secret::new(ADMIN_PW)))
        .await
        .expect("build application");
    let port = app.port();
    let store = app.store();
    let syslog = app.syslog_addrs();
    let hub = app.hub();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    Some(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        store,
        backend,
        data_dir,
        client,
        syslog,
        hub,
        shutdown: Some(tx),
        server: Some(server),
        _db: db,
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A response: status, headers, raw text and the body parsed as JSON (`Null` when it is
/// not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        &self.body
    }

    /// Asserts status and that the body is exactly the error shape with this code; returns
    /// the `error` object.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_error_shape(self);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.text);
        &self.body["error"]
    }
}

/// Asserts `{"error":{"code":"...","message":"..."(,"details":...)}}` with JSON content type.
#[track_caller]
pub fn assert_error_shape(r: &Resp) {
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "content-type {ct:?}; body: {}",
        r.text
    );
    let obj = r
        .body
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {:?}", r.text));
    assert_eq!(obj.len(), 1, "extra top-level keys: {}", r.text);
    let e = obj["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {}", r.text));
    assert!(
        e["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{}",
        r.text
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.text
    );
    for k in e.keys() {
        assert!(
            ["code", "message", "details"].contains(&k.as_str()),
            "unexpected key {k}: {}",
            r.text
        );
    }
}

/// Tokens of one login.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl Session {
    pub fn from_body(b: &Value) -> Self {
        Self {
            access: b["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
            refresh: b["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_string(),
            user_id: b["user"]["id"].as_str().expect("user.id").to_string(),
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends a request with an optional bearer token and optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        Self::finish(rb).await
    }

    /// Sends a prepared request and reads the whole response.
    pub async fn finish(rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.expect("request failed");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("read body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// `POST /api/v1/auth/login` with JSON.
    pub async fn login(&self, username: &str, password: &str) -> Resp {
        self.send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({ "username": username, "password": password })),
        )
        .await
    }

    /// Logs in and returns the tokens; panics unless it succeeds.
    pub async fn login_ok(&self, username: &str, password: &str) -> Session {
        let r = self.login(username, password).await;
        Session::from_body(r.ok(200))
    }

    pub async fn admin(&self) -> Session {
        self.login_ok("admin", ADMIN_PW).await
    }

    /// Creates a user in the admin's organization; returns `(id, password)`.
    pub async fn create_user(
        &self,
        admin_token: &str,
        username: &str,
        role: &str,
    ) -> (String, String) {
        let password = format!("{username}-password-1234");
        let r = self
            .post(
                "/api/v1/users",
                admin_token,
                &json!({ "username": username, "password": password, "role": role }),
            )
            .await;
        let id = r.ok(201)["id"].as_str().expect("user id").to_string();
        (id, password)
    }

    /// Creates a user and logs them in.
    pub async fn user_session(&self, admin_token: &str, username: &str, role: &str) -> Session {
        let (_, pw) = self.create_user(admin_token, username, role).await;
        self.login_ok(username, &pw).await
    }

    /// Creates organization `other` with user `username` (through the store) and logs in.
    pub async fn other_org_user(&self, username: &str, role: vigil_core::Role) -> Session {
        let org = match self.store.get_org_by_name("other").await.unwrap() {
            Some(o) => o,
            None => self.store.create_org("other").await.unwrap(),
        };
        let pw = format!("{username}-password-1234");
        self.store
            .create_user(NewUser {
                org_id: org.id,
                username: username.into(),
                email: None,
                password_hash: vigil_server::auth::hash_password(pw.clone()).await.unwrap(),
                role,
            })
            .await
            .unwrap();
        self.login_ok(username, &pw).await
    }

    /// Creates an alert from `body` and returns it; panics unless 201.
    pub async fn create_alert(&self, token: &str, body: Value) -> Value {
        self.post("/api/v1/alerts", token, &body)
            .await
            .ok(201)
            .clone()
    }

    /// A minimal alert with this title and severity.
    pub async fn alert(&self, token: &str, title: &str, severity: &str) -> Value {
        self.create_alert(token, json!({ "title": title, "severity": severity }))
            .await
    }

    /// `total` of `GET /api/v1/alerts`.
    pub async fn alert_total(&self, token: &str) -> u64 {
        self.get("/api/v1/alerts", token).await.ok(200)["total"]
            .as_u64()
            .expect("total")
    }

    /// Stops the server and returns what `run_until_stopped` returned.
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let h = self.server.take().expect("server still running");
        h.await.expect("server task panicked")
    }

    /// The JWT secret the server generated in its data directory.
    pub fn jwt_secret(&self) -> Vec<u8> {
        std::fs::read_to_string(self.data_dir.join("jwt-secret"))
            .expect("jwt-secret file")
            .trim()
            .as_bytes()
            .to_vec()
    }
}

/// Sends all requests at once and returns the responses in the same order.
pub async fn concurrently(requests: Vec<reqwest::RequestBuilder>) -> Vec<Resp> {
    let handles: Vec<_> = requests
        .into_iter()
        .map(|rb| tokio::spawn(TestApp::finish(rb)))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

/// The `id` field of a JSON object as a string.
#[track_caller]
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// One HTTP/1.1 keep-alive connection to the app that never reconnects (unlike a pooled
/// client): once the server has closed it, the next request fails. How a test sees that a
/// response left the connection usable.
pub struct OneConnection {
    send: hyper::client::conn::http1::SendRequest<axum::body::Body>,
    authority: String,
}

impl OneConnection {
    pub async fn open(app: &TestApp) -> Self {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connect");
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        Self {
            send,
            authority: format!("127.0.0.1:{}", app.port),
        }
    }

    /// POSTs `body` with a bearer token and a content type; `Err` when the connection is
    /// gone (closed by the server after an earlier response).
    pub async fn post(
        &mut self,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Resp, String> {
        self.send
            .ready()
            .await
            .map_err(|e| format!("connection gone: {e}"))?;
        let req = axum::http::Request::post(path)
            .header("host", &self.authority)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", content_type)
            .body(axum::body::Body::from(body))
            .expect("request");
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| format!("connection gone: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), usize::MAX)
            .await
            .map_err(|e| format!("reading the response: {e}"))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            headers,
            text,
            body,
        })
    }
}

/// Reads `name` (a sample without labels) from `/metrics`.
pub async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let r = app.send(Method::GET, "/metrics", None, None).await;
    r.text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}
