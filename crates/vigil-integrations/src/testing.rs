//! Fake Ollama, OpenAI-compatible and Loki servers (axum on 127.0.0.1:0) that follow the
//! published APIs: request and response shapes, streaming framing, error bodies. Each
//! takes a script of answers and records the requests it got.
#![allow(clippy::type_complexity, clippy::result_large_err, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What the fake model does with the next request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Answer with this text (the model's content), in the requested framing.
    Content(String),
    /// Wait, then answer.
    Slow(Duration, String),
    /// A status with the product's error body.
    Fail(u16, String),
    /// Start a stream (or a body) and stop in the middle: no final message.
    Truncated(String),
    /// A body that is not the protocol's JSON.
    Malformed,
    /// Ollama: an `{"error": ...}` line in the middle of a stream.
    StreamError(String),
}

pub fn good_analysis(verdict: &str) -> String {
    json!({
        "summary": "Repeated failed SSH logins from 203.0.113.9 followed by a success.",
        "verdict": verdict,
        "suggested_severity": "high",
        "attack_techniques": ["T1110.001"],
        "entities": [{"kind": "ip", "value": "203.0.113.9"}, {"kind": "user", "value": "root"}],
        "recommended_actions": ["Block 203.0.113.9 at the firewall", "Reset the root password"],
        "confidence": 0.8
    })
    .to_string()
}

#[derive(Clone)]
struct Shared {
    models: Vec<String>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Shared {
    fn next(&self) -> Answer {
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Answer::Content(good_analysis("true_positive")))
    }
    fn record(&self, h: &HeaderMap, v: Value) {
        self.requests.lock().unwrap().push((h.clone(), v));
    }
}

/// A running fake; dropping it leaves the task running until the test ends.
pub struct Fake {
    pub url: String,
    script: Arc<Mutex<VecDeque<Answer>>>,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Fake {
    pub fn push(&self, a: Answer) -> &Self {
        self.script.lock().unwrap().push_back(a);
        self
    }
    /// Request bodies (JSON, or `{"query": {...}}` for GETs), oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.ok();
    });
    format!("http://{addr}")
}

fn shared(models: &[&str]) -> Shared {
    Shared {
        models: models.iter().map(|s| s.to_string()).collect(),
        script: Default::default(),
        requests: Default::default(),
    }
}

fn fake(s: &Shared, url: String) -> Fake {
    Fake {
        url,
        script: s.script.clone(),
        requests: s.requests.clone(),
    }
}

/// A body sent in pieces with a pause between them, so the client really streams.
fn chunked(pieces: Vec<String>, content_type: &'static str) -> Response {
    let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        Some((Ok::<_, std::io::Error>(Bytes::from(next)), it))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap()
}

fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(chars.len().div_ceil(n).max(1))
        .map(|c| c.iter().collect())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Ollama

pub async fn ollama(models: &[&str]) -> Fake {
    let s = shared(models);
    let router = Router::new()
        .route("/api/tags", get(ollama_tags))
        .route("/api/chat", post(|st, h, b| ollama_gen(st, h, b, true)))
        .route(
            "/api/generate",
            post(|st, h, b| ollama_gen(st, h, b, false)),
        )
        .with_state(s.clone());
    let url = serve(router).await;
    fake(&s, url)
}

async fn ollama_tags(State(s): State<Shared>) -> impl IntoResponse {
    let models: Vec<Value> = s
        .models
        .iter()
        .map(|m| {
            json!({"name": m, "model": m, "modified_at": "2026-11-01T10:00:00Z",
            "size": 4_109_865_159u64, "digest": "f974a74358d6", "details": {"format": "gguf",
            "family": "llama", "parameter_size": "7.2B", "quantization_level": "Q4_0"}})
        })
        .collect();
    axum::Json(json!({ "models": models }))
}

fn ollama_error(status: u16, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({ "error": msg })),
    )
        .into_response()
}

async fn ollama_gen(State(s): State<Shared>, h: HeaderMap, body: Bytes, chat: bool) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return ollama_error(400, "invalid character 'x' looking for beginning of value");
    };
    s.record(&h, req.clone());
    let model = req["model"].as_str().unwrap_or_default().to_string();
    let known = s
        .models
        .iter()
        .any(|m| *m == model || m.strip_suffix(":latest") == Some(model.as_str()));
    if !known {
        return ollama_error(404, &format!("model '{model}' not found"));
    }
    // `stream` defaults to true in Ollama.
    let stream = req["stream"].as_bool().unwrap_or(true);
    let piece = |text: &str, done: bool| {
        let mut v = if chat {
            json!({"model": model, "created_at": "2026-12-01T10:00:00.000Z",
                "message": {"role": "assistant", "content": text}, "done": done})
        } else {
            json!({"model": model, "created_at": "2026-12-01T10:00:00.000Z", "response": text, "done": done})
        };
        if done {
            v["done_reason"] = json!("stop");
            v["total_duration"] = json!(5_043_500_667u64);
            v["load_duration"] = json!(5_025_959u64);
            v["prompt_eval_count"] = json!(26);
            v["prompt_eval_duration"] = json!(325_953_000u64);
            v["eval_count"] = json!(290);
            v["eval_duration"] = json!(4_709_213_000u64);
        }
        v
    };
    let reply = |text: String| -> Response {
        if stream {
            let mut lines: Vec<String> = pieces(&text, 5)
                .iter()
                .map(|p| format!("{}\n", piece(p, false)))
                .collect();
            lines.push(format!("{}\n", piece("", true)));
            chunked(lines, "application/x-ndjson")
        } else {
            axum::Json(piece(&text, true)).into_response()
        }
    };
    match s.next() {
        Answer::Content(t) => reply(t),
        Answer::Slow(d, t) => {
            tokio::time::sleep(d).await;
            reply(t)
        }
        Answer::Fail(status, msg) => ollama_error(status, &msg),
        Answer::Truncated(t) => {
            if stream {
                let lines = pieces(&t, 5)
                    .iter()
                    .take(2)
                    .map(|p| format!("{}\n", piece(p, false)))
                    .collect();
                chunked(lines, "application/x-ndjson")
            } else {
                let full = piece(&t, true).to_string();
                let cut = full[..full.len() / 2].to_string();
                chunked(vec![cut], "application/json")
            }
        }
        Answer::Malformed => chunked(
            vec!["{\"model\": \"x\", \"message\": <html>oops\n".into()],
            if stream {
                "application/x-ndjson"
            } else {
                "application/json"
            },
        ),
        Answer::StreamError(msg) => chunked(
            vec![
                format!("{}\n", piece("{\"summ", false)),
                format!("{}\n", json!({ "error": msg })),
            ],
            "application/x-ndjson",
        ),
    }
}

// ---------------------------------------------------------------------------------------
// OpenAI-compatible

/// `api_key`: when set, requests without `Authorization: Bearer <key>` get a 401.
pub async fn openai(models: &[&str], api_key: Option<&str>) -> Fake {
    let s = shared(models);
    let key = api_key.map(str::to_string);
    let k1 = key.clone();
    let router = Router::new()
        .route(
            "/v1/models",
            get(move |st, h| openai_models(st, h, k1.clone())),
        )
        .route(
            "/v1/chat/completions",
            post(move |st, h, b| openai_chat(st, h, b, key.clone())),
        )
        .with_state(s.clone());
    let url = serve(router).await;
    fake(&s, url)
}

fn openai_error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        ),
    )
        .into_response()
}

fn authorized(h: &HeaderMap, key: &Option<String>) -> bool {
    match key {
        None => true,
        Some(k) => {
            h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
                == Some(format!("Bearer {k}").as_str())
        }
    }
}

fn bad_key() -> Response {
    openai_error(
        401,
        "Incorrect API key provided: sk-wrong. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        Some("invalid_api_key"),
    )
}

async fn openai_models(State(s): State<Shared>, h: HeaderMap, key: Option<String>) -> Response {
    if !authorized(&h, &key) {
        return bad_key();
    }
    let data: Vec<Value> = s
        .models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "llamacpp"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn openai_chat(
    State(s): State<Shared>,
    h: HeaderMap,
    body: Bytes,
    key: Option<String>,
) -> Response {
    if !authorized(&h, &key) {
        return bad_key();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return openai_error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
    };
    s.record(&h, req.clone());
    let model = req["model"].as_str().unwrap_or_default().to_string();
    if !s.models.contains(&model) {
        return openai_error(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            Some("model_not_found"),
        );
    }
    let stream = req["stream"].as_bool().unwrap_or(false);
    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1_733_000_000,
                "model": model, "system_fingerprint": "fp_44709d6fcb",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        )
    };
    let usage = json!({"prompt_tokens": 57, "completion_tokens": 17, "total_tokens": 74});
    let reply = |text: String| -> Response {
        if stream {
            let mut events = vec![chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )];
            events.push(": keep-alive\n\n".into());
            for p in pieces(&text, 5) {
                events.push(chunk(json!({ "content": p }), Value::Null));
            }
            events.push(chunk(json!({}), json!("stop")));
            if include_usage {
                events.push(format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1_733_000_000,
                        "model": model, "choices": [], "usage": usage})
                ));
            }
            events.push("data: [DONE]\n\n".into());
            chunked(events, "text/event-stream")
        } else {
            axum::Json(json!({"id": "chatcmpl-123", "object": "chat.completion", "created": 1_733_000_000,
                "model": model, "system_fingerprint": "fp_44709d6fcb",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                    "logprobs": null, "finish_reason": "stop"}],
                "usage": usage}))
            .into_response()
        }
    };
    match s.next() {
        Answer::Content(t) => reply(t),
        Answer::Slow(d, t) => {
            tokio::time::sleep(d).await;
            reply(t)
        }
        Answer::Fail(status, msg) => {
            let (kind, code) = match status {
                429 => ("requests", Some("rate_limit_exceeded")),
                500..=599 => ("server_error", None),
                _ => ("invalid_request_error", None),
            };
            openai_error(status, &msg, kind, code)
        }
        Answer::Truncated(t) => {
            let mut events = vec![chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )];
            for p in pieces(&t, 5).into_iter().take(2) {
                events.push(chunk(json!({ "content": p }), Value::Null));
            }
            chunked(
                events,
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
        }
        Answer::Malformed => chunked(
            vec![if stream {
                "data: {\"id\": oops}\n\n".into()
            } else {
                "<html>502 Bad Gateway</html>".into()
            }],
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        ),
        Answer::StreamError(msg) => chunked(
            vec![format!(
                "data: {}\n\n",
                json!({"error": {"message": msg, "type": "server_error", "code": null}})
            )],
            "text/event-stream",
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Loki

/// Stored streams answer `query_range` / `query`; pushes are decoded and kept.
pub struct FakeLoki {
    pub url: String,
    pub state: LokiState,
}

#[derive(Clone, Default)]
pub struct LokiState {
    /// Log lines by labels: (labels, [(ns, line)]).
    pub streams: Arc<Mutex<Vec<(serde_json::Map<String, Value>, Vec<(i64, String)>)>>>,
    /// Every query's parameters and X-Scope-OrgID.
    pub queries: Arc<Mutex<Vec<(Option<String>, std::collections::HashMap<String, String>)>>>,
    /// Decoded pushes.
    pub pushed: Arc<Mutex<Vec<vigil_parse::loki::LokiStream>>>,
    /// Required tenant; requests without it get Loki's 401 "no org id".
    pub tenant: Option<String>,
    /// Longest range accepted per query, seconds (Loki's max_query_length).
    pub max_query_secs: i64,
    /// Delay every answer.
    pub delay: Arc<Mutex<Duration>>,
}

pub async fn loki(tenant: Option<&str>) -> FakeLoki {
    let state = LokiState {
        tenant: tenant.map(str::to_string),
        max_query_secs: 3 * 3600,
        ..Default::default()
    };
    let router = Router::new()
        .route("/loki/api/v1/query_range", get(loki_query_range))
        .route("/loki/api/v1/query", get(loki_query))
        .route("/loki/api/v1/push", post(loki_push))
        .with_state(state.clone());
    FakeLoki {
        url: serve(router).await,
        state,
    }
}

fn plain(status: u16, text: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

fn tenant_ok(st: &LokiState, h: &HeaderMap) -> Result<Option<String>, Response> {
    let got = h
        .get("X-Scope-OrgID")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match &st.tenant {
        Some(t) if got.as_deref() != Some(t) => Err(plain(401, "no org id")),
        _ => Ok(got),
    }
}

/// The selector `{k="v", ...}` of a query, as pairs (the fake understands only `=` matchers
/// and, for metric queries, `count_over_time({...}[1m])`).
fn selector(q: &str) -> Result<Vec<(String, String)>, Response> {
    let start = q.find('{').ok_or_else(|| {
        plain(
            400,
            "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER",
        )
    })?;
    let end = q[start..].find('}').ok_or_else(|| {
        plain(
            400,
            "parse error at line 1, col 2: syntax error: unexpected $end",
        )
    })?;
    let inner = &q[start + 1..start + end];
    let mut out = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| plain(400, "parse error: syntax error: unexpected IDENTIFIER"))?;
        out.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
    }
    if out.is_empty() {
        return Err(plain(
            400,
            "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will",
        ));
    }
    Ok(out)
}

fn matches(labels: &serde_json::Map<String, Value>, sel: &[(String, String)]) -> bool {
    sel.iter()
        .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v))
}

async fn loki_query_range(
    State(st): State<LokiState>,
    h: HeaderMap,
    Query(p): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let tenant = match tenant_ok(&st, &h) {
        Ok(t) => t,
        Err(r) => return r,
    };
    st.queries.lock().unwrap().push((tenant, p.clone()));
    let delay = *st.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let q = p.get("query").cloned().unwrap_or_default();
    let sel = match selector(&q) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let num = |k: &str| p.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(start), Some(end)) = (num("start"), num("end")) else {
        return plain(400, "invalid parameter: start and end are required");
    };
    if end < start {
        return plain(
            400,
            "end timestamp must not be before or equal to start time",
        );
    }
    let len = (end - start) / 1_000_000_000;
    if len > st.max_query_secs {
        return plain(
            400,
            &format!(
                "the query time range exceeds the limit (query length: {}h0m0s, limit: {}h0m0s)",
                len / 3600,
                st.max_query_secs / 3600
            ),
        );
    }
    let limit = num("limit").unwrap_or(100) as usize;
    let forward = p.get("direction").map(String::as_str) == Some("forward");
    let streams = st.streams.lock().unwrap().clone();
    if q.trim_start().starts_with("count_over_time") {
        // One sample per stream per minute with lines in it.
        let result: Vec<Value> = streams
            .iter()
            .filter(|(l, _)| matches(l, &sel))
            .map(|(l, lines)| {
                let mut per_min = std::collections::BTreeMap::<i64, u64>::new();
                for (ns, _) in lines.iter().filter(|(ns, _)| *ns >= start && *ns < end) {
                    *per_min.entry(ns / 60_000_000_000 * 60).or_default() += 1;
                }
                let values: Vec<Value> = per_min
                    .iter()
                    .map(|(t, n)| json!([*t as f64, n.to_string()]))
                    .collect();
                json!({"metric": l, "values": values})
            })
            .collect();
        return axum::Json(
            json!({"status": "success", "data": {"resultType": "matrix", "result": result,
            "stats": {"summary": {"execTime": 0.001}}}}),
        )
        .into_response();
    }
    // Like Loki: the `limit` oldest (forward) or newest (backward) lines over all matching
    // streams, grouped back into their streams.
    let mut all: Vec<(usize, i64, &String)> = Vec::new();
    for (si, (labels, lines)) in streams.iter().enumerate() {
        if matches(labels, &sel) {
            all.extend(
                lines
                    .iter()
                    .filter(|(ns, _)| *ns >= start && *ns < end)
                    .map(|(ns, line)| (si, *ns, line)),
            );
        }
    }
    all.sort_by_key(|(si, ns, _)| if forward { (*ns, *si) } else { (-*ns, *si) });
    all.truncate(limit);
    let mut grouped: std::collections::BTreeMap<usize, Vec<Value>> = Default::default();
    for (si, ns, line) in all {
        grouped
            .entry(si)
            .or_default()
            .push(json!([ns.to_string(), line]));
    }
    let result: Vec<Value> = grouped
        .into_iter()
        .map(|(si, values)| json!({"stream": streams[si].0, "values": values}))
        .collect();
    axum::Json(
        json!({"status": "success", "data": {"resultType": "streams", "result": result,
        "stats": {"summary": {"execTime": 0.001}}}}),
    )
    .into_response()
}

async fn loki_query(
    State(st): State<LokiState>,
    h: HeaderMap,
    Query(p): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let tenant = match tenant_ok(&st, &h) {
        Ok(t) => t,
        Err(r) => return r,
    };
    st.queries.lock().unwrap().push((tenant, p.clone()));
    let q = p.get("query").cloned().unwrap_or_default();
    let sel = match selector(&q) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let t: i64 = p.get("time").and_then(|v| v.parse().ok()).unwrap_or(0);
    let streams = st.streams.lock().unwrap().clone();
    if let Some(rest) = q.trim_start().strip_prefix("count_over_time(") {
        // count_over_time({...}[Nm]): a vector of lines in (t - N minutes, t].
        let mins: i64 = rest
            .rsplit_once('[')
            .and_then(|(_, r)| r.split_once("m]"))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(5);
        let result: Vec<Value> = streams
            .iter()
            .filter(|(l, _)| matches(l, &sel))
            .map(|(l, lines)| {
                let n = lines
                    .iter()
                    .filter(|(ns, _)| *ns <= t && *ns > t - mins * 60_000_000_000)
                    .count();
                json!({"metric": l, "value": [t as f64 / 1e9, n.to_string()]})
            })
            .collect();
        return axum::Json(
            json!({"status": "success", "data": {"resultType": "vector", "result": result}}),
        )
        .into_response();
    }
    // A log query at an instant: the newest lines at or before `time`.
    let limit = p
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100usize);
    let result: Vec<Value> = streams
        .iter()
        .filter(|(l, _)| matches(l, &sel))
        .map(|(l, lines)| {
            let mut v: Vec<&(i64, String)> = lines.iter().filter(|(ns, _)| *ns <= t).collect();
            v.sort_by_key(|(ns, _)| -*ns);
            let values: Vec<Value> = v
                .into_iter()
                .take(limit)
                .map(|(ns, line)| json!([ns.to_string(), line]))
                .collect();
            json!({"stream": l, "values": values})
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "streams", "result": result}}))
        .into_response()
}

async fn loki_push(State(st): State<LokiState>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = tenant_ok(&st, &h) {
        return r;
    }
    let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match vigil_parse::loki::decode_push(&body, ct, None, 16 << 20) {
        Ok(streams) => {
            st.pushed.lock().unwrap().extend(streams);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => plain(400, &format!("loghttp.ParseRequest: {e}")),
    }
}

/// One request a [`WebhookReceiver`] got.
#[derive(Debug, Clone)]
pub struct ReceivedWebhook {
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Order of arrival, from 0.
    pub index: usize,
}

impl ReceivedWebhook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How a [`WebhookReceiver`] answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// The status with a `Retry-After` header of this text.
    RetryAfter(u16, String),
    /// Never answers (the sender's timeout ends it).
    Hang,
}

/// A webhook receiver on 127.0.0.1:0 that records every request (also those it fails) and
/// answers as `respond` says.
pub struct WebhookReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<ReceivedWebhook>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookReceiver {
    pub async fn start(
        respond: impl Fn(&ReceivedWebhook) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let received: Arc<Mutex<Vec<ReceivedWebhook>>> = Arc::default();
        let respond: Arc<dyn Fn(&ReceivedWebhook) -> Reply + Send + Sync> = Arc::new(respond);
        let rec = received.clone();
        let router = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let rec = rec.clone();
            let respond = respond.clone();
            async move {
                let got = {
                    let mut all = rec.lock().unwrap();
                    let got = ReceivedWebhook {
                        headers: headers
                            .iter()
                            .map(|(n, v)| {
                                (n.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                        body: body.to_vec(),
                        index: all.len(),
                    };
                    all.push(got.clone());
                    got
                };
                match respond(&got) {
                    Reply::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
                    Reply::RetryAfter(s, v) => (
                        StatusCode::from_u16(s).unwrap(),
                        [(header::RETRY_AFTER, v)],
                        "slow down",
                    )
                        .into_response(),
                    Reply::Hang => {
                        std::future::pending::<()>().await;
                        StatusCode::OK.into_response()
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.ok();
        });
        Self {
            url: format!("http://{addr}/hook"),
            received,
            task,
        }
    }

    /// Everything received so far, in order of arrival.
    pub fn received(&self) -> Vec<ReceivedWebhook> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `ok` holds for what was received, or panics after `limit`.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        ok: impl Fn(&[ReceivedWebhook]) -> bool,
    ) -> Vec<ReceivedWebhook> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.received();
            if ok(&got) {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "webhook receiver: {what} not within {limit:?}; got {} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The Python with the `standardwebhooks` package: `$VIGIL_TEST_PYTHON`, else
/// `<workspace>/.ci/venv/bin/python`. `None` (with a message) when neither exists, unless
/// `CI=true`, where it panics.
pub fn test_python() -> Option<std::path::PathBuf> {
    let p = std::env::var_os("VIGIL_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/python")
        });
    if p.exists() {
        return Some(p);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "CI=true and no Python venv at {} (VIGIL_TEST_PYTHON)",
        p.display()
    );
    eprintln!(
        "skipped: no Python with standardwebhooks at {}; set VIGIL_TEST_PYTHON",
        p.display()
    );
    None
}

/// Verifies each request with the reference `standardwebhooks` Python package
/// (`Webhook(secret).verify(body, headers)`): `Ok` or the package's error, per request.
pub fn verify_with_standardwebhooks(
    python: &std::path::Path,
    secret: &str,
    requests: &[ReceivedWebhook],
) -> Vec<Result<(), String>> {
    let items: Vec<Value> = requests
        .iter()
        .map(|r| {
            json!({
                "headers": r.headers.iter().cloned().collect::<std::collections::HashMap<_, _>>(),
                "body": String::from_utf8_lossy(&r.body),
            })
        })
        .collect();
    let script = r#"
import json, sys
from standardwebhooks import Webhook
wh = Webhook(sys.argv[1])
for item in json.load(sys.stdin):
    try:
        wh.verify(item["body"].encode(), item["headers"])
        print("ok")
    except Exception as e:
        print("error: %s: %s" % (type(e).__name__, e))
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(&items).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            if l == "ok" {
                Ok(())
            } else {
                Err(l.to_string())
            }
        })
        .collect()
}
