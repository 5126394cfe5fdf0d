//! A real browser on the stream: headless Chromium (driven by node + playwright-core) opens a
//! page served by the test from another origin; the page logs in and gets a ticket with
//! `fetch` (through CORS), opens the WebSocket with `?ticket=` and the `vigil.v1`
//! subprotocol, subscribes, and must receive an alert created after it connected.
//!
//! Needs `node`, Chromium (`VIGIL_TEST_CHROMIUM`, default `/usr/bin/chromium`) and
//! playwright-core (`VIGIL_TEST_NODE_MODULES`, default `<workspace>/.ci/node/node_modules`):
//! skipped with a message when one is missing, failed when `CI=true`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{ADMIN_PW, id_of, spawn_app_with};

/// The browser's part, driven by playwright-core: prints `READY` once the page's stream is
/// subscribed, then `FRAME <json>` with the first alert frame (or `ERROR ...`).
const DRIVER: &str = r#"
const { chromium } = require(require('path').join(process.env.NODE_MODULES_DIR, 'playwright-core'));
(async () => {
  const ctx = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
    executablePath: process.env.CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    await page.goto(process.env.PAGE_URL);
    await page.waitForFunction(() => window.vigil.ready || window.vigil.error, null, { timeout: 90000 });
    const err = await page.evaluate(() => window.vigil.error);
    if (err) { console.log('ERROR ' + err); process.exitCode = 1; return; }
    console.log('READY');
    await page.waitForFunction(() => window.vigil.frames.length > 0 || window.vigil.error || window.vigil.closed,
      null, { timeout: 90000 });
    console.log('FRAME ' + JSON.stringify(await page.evaluate(() => window.vigil.frames[0] || window.vigil)));
  } finally {
    await ctx.close();
  }
})().catch((e) => { console.log('ERROR ' + e); process.exit(1); });
"#;

/// The page: log in, get a ticket, open the socket, subscribe to high and above.
fn page(api: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>Vigil stream</title>
<script>
window.vigil = {{ frames: [], ready: false, error: null, closed: null }};
(async () => {{
  try {{
    const api = {api:?};
    const login = await fetch(api + '/api/v1/auth/login', {{ method: 'POST',
      headers: {{ 'content-type': 'application/json' }},
      body: JSON.stringify({{ username: 'admin', password: {ADMIN_PW:?} }}) }});
    if (!login.ok) throw new Error('login: ' + login.status);
    const token = (await login.json()).access_token;
    const t = await fetch(api + '/api/v1/stream/ticket', {{ method: 'POST',
      headers: {{ authorization: 'Bearer ' + token }} }});
    if (!t.ok) throw new Error('ticket: ' + t.status);
    const {{ ticket }} = await t.json();
    const ws = new WebSocket(api.replace('http:', 'ws:') + '/api/v1/stream?ticket=' + encodeURIComponent(ticket), ['vigil.v1']);
    ws.onopen = () => {{
      if (ws.protocol !== 'vigil.v1') window.vigil.error = 'subprotocol: ' + ws.protocol;
      ws.send(JSON.stringify({{ type: 'subscribe', filter: {{ severity: 'high' }} }}));
    }};
    ws.onmessage = (m) => {{
      const f = JSON.parse(m.data);
      if (f.type === 'ready') window.vigil.ready = true; else window.vigil.frames.push(f);
    }};
    ws.onclose = (e) => {{ window.vigil.closed = e.code || -1; }};
    ws.onerror = () => {{ window.vigil.error = 'WebSocket error'; }};
  }} catch (e) {{ window.vigil.error = String(e); }}
}})();
</script>"#
    )
}

/// Where the browser tools are, or why the test cannot run.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    let modules = std::env::var_os("VIGIL_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/node/node_modules")
        });
    if !modules.join("playwright-core").is_dir() {
        return Err(format!(
            "no playwright-core in {} (npm install --prefix .ci/node, or set VIGIL_TEST_NODE_MODULES)",
            modules.display()
        ));
    }
    let chromium = std::env::var_os("VIGIL_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "no Chromium at {} (set VIGIL_TEST_CHROMIUM)",
            chromium.display()
        ));
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => Ok((modules, chromium)),
        _ => Err("no node on PATH".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_receives_a_live_alert_over_the_websocket() {
    let (modules, chromium) = match tools() {
        Ok(t) => t,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("browser test cannot run under CI=true: {why}")
        }
        Err(why) => {
            eprintln!("skipping the browser stream test: {why}");
            return;
        }
    };
    // The page's own server, on another origin than the API (so fetch goes through CORS).
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!(
        "http://127.0.0.1:{}",
        page_listener.local_addr().unwrap().port()
    );
    let app = spawn_app_with(vigil_store::Backend::Sqlite, |c| {
        c.server.cors_origins = vec![page_origin.clone()];
    })
    .await
    .expect("app");
    let html = page(&app.address);
    let page_server = tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(html) }),
        );
        let _ = axum::serve(page_listener, router).await;
    });

    let dir = std::env::temp_dir().join(format!("vigil-browser-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("driver.js");
    std::fs::write(&script, DRIVER).unwrap();
    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .env("NODE_MODULES_DIR", &modules)
        .env("CHROMIUM", &chromium)
        .env("USER_DATA_DIR", dir.join("profile"))
        .env("PAGE_URL", format!("{page_origin}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("the browser said nothing in time")
            .expect("read node output")
            .expect("node ended without an answer")
    };

    let line = next_line().await;
    assert_eq!(line, "READY", "browser: {line}");
    // Created after the page subscribed; the low one is filtered out by the page's filter.
    let admin = app.admin().await;
    app.alert(&admin.access, "below the page's filter", "low")
        .await;
    let a = app
        .alert(&admin.access, "seen by a browser", "critical")
        .await;
    let line = next_line().await;
    let frame: Value = serde_json::from_str(
        line.strip_prefix("FRAME ")
            .unwrap_or_else(|| panic!("browser: {line}")),
    )
    .expect("frame JSON");
    assert_eq!(frame["type"], "alert", "{frame}");
    assert_eq!(
        frame["event"]["alert"]["id"].as_str(),
        Some(id_of(&a).as_str()),
        "{frame}"
    );
    assert_eq!(frame["event"]["kind"], "alert.created");
    assert_eq!(
        frame["cursor"],
        frame["event"]["seq"].as_i64().unwrap().to_string()
    );

    let status = tokio::time::timeout(Duration::from_secs(60), node.wait())
        .await
        .expect("node did not exit")
        .unwrap();
    assert!(status.success(), "node: {status}");
    page_server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
