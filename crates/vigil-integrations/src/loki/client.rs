use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_parse::loki::{LokiEntry, LokiStream};

use super::{LokiConfig, LokiError};

type Result<T> = std::result::Result<T, LokiError>;
type Labels = BTreeMap<String, String>;

/// Order of log lines in a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LokiDirection {
    Forward,
    Backward,
}

impl LokiDirection {
    fn as_str(self) -> &'static str {
        match self {
            LokiDirection::Forward => "forward",
            LokiDirection::Backward => "backward",
        }
    }
}

/// One series of a metric query (`matrix`).
#[derive(Debug, Clone, PartialEq)]
pub struct LokiSeries {
    pub metric: BTreeMap<String, String>,
    pub values: Vec<(DateTime<Utc>, f64)>,
}

/// One sample of an instant metric query (`vector`).
#[derive(Debug, Clone, PartialEq)]
pub struct LokiSample {
    pub metric: BTreeMap<String, String>,
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// A query's result, by `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum LokiQueryResult {
    Streams(Vec<LokiStream>),
    Matrix(Vec<LokiSeries>),
    Vector(Vec<LokiSample>),
}

impl LokiQueryResult {
    /// Log lines (streams) or samples (matrix, vector) in the result.
    pub fn len(&self) -> usize {
        match self {
            LokiQueryResult::Streams(s) => s.iter().map(|s| s.entries.len()).sum(),
            LokiQueryResult::Matrix(m) => m.iter().map(|s| s.values.len()).sum(),
            LokiQueryResult::Vector(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Value,
}

fn ns_to_time(ns: &str) -> Result<DateTime<Utc>> {
    let n: i64 = ns
        .parse()
        .map_err(|_| LokiError::Protocol(format!("timestamp '{ns}' is not nanoseconds")))?;
    Ok(DateTime::from_timestamp_nanos(n))
}

fn secs_to_time(v: &Value) -> Result<DateTime<Utc>> {
    let f = v
        .as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| LokiError::Protocol(format!("sample time {v} is not a number")))?;
    DateTime::from_timestamp_micros((f * 1e6).round() as i64)
        .ok_or_else(|| LokiError::Protocol(format!("sample time {f} is out of range")))
}

fn sample_value(v: &Value) -> Result<f64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LokiError::Protocol(format!("sample value {v} is not a number string")))
}

fn labels(v: &Value) -> Result<BTreeMap<String, String>> {
    let obj = v
        .as_object()
        .ok_or_else(|| LokiError::Protocol("labels are not an object".into()))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| LokiError::Protocol(format!("label {k} is not a string")))
        })
        .collect()
}

fn parse_result(data: Data) -> Result<LokiQueryResult> {
    let items = data
        .result
        .as_array()
        .ok_or_else(|| LokiError::Protocol("data.result is not an array".into()))?;
    match data.result_type.as_str() {
        "streams" => items
            .iter()
            .map(|s| {
                let stream = labels(s.get("stream").unwrap_or(&Value::Null))?;
                let values = s
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or_else(|| LokiError::Protocol("a stream has no values".into()))?;
                let entries = values
                    .iter()
                    .map(|v| {
                        let pair = v.as_array().filter(|a| a.len() >= 2).ok_or_else(|| {
                            LokiError::Protocol(format!("stream value {v} is not [ns, line]"))
                        })?;
                        let ts = pair[0].as_str().ok_or_else(|| {
                            LokiError::Protocol("timestamp is not a string".into())
                        })?;
                        let line = pair[1]
                            .as_str()
                            .ok_or_else(|| LokiError::Protocol("line is not a string".into()))?;
                        Ok(LokiEntry {
                            timestamp: ns_to_time(ts)?,
                            line: line.to_string(),
                            structured_metadata: match pair.get(2) {
                                Some(m) => labels(m)?,
                                None => BTreeMap::new(),
                            },
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(LokiStream {
                    labels: stream,
                    entries,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(LokiQueryResult::Streams),
        "matrix" => items
            .iter()
            .map(|s| {
                let metric = labels(s.get("metric").unwrap_or(&json!({})))?;
                let values = s
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or_else(|| LokiError::Protocol("a series has no values".into()))?
                    .iter()
                    .map(|p| {
                        let pair = p.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                            LokiError::Protocol(format!("sample {p} is not [time, value]"))
                        })?;
                        Ok((secs_to_time(&pair[0])?, sample_value(&pair[1])?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(LokiSeries { metric, values })
            })
            .collect::<Result<Vec<_>>>()
            .map(LokiQueryResult::Matrix),
        "vector" => items
            .iter()
            .map(|s| {
                let metric = labels(s.get("metric").unwrap_or(&json!({})))?;
                let pair = s
                    .get("value")
                    .and_then(Value::as_array)
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| LokiError::Protocol("a sample has no [time, value]".into()))?;
                Ok(LokiSample {
                    metric,
                    time: secs_to_time(&pair[0])?,
                    value: sample_value(&pair[1])?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(LokiQueryResult::Vector),
        other => Err(LokiError::Protocol(format!(
            "resultType '{other}' is not streams, matrix or vector"
        ))),
    }
}

/// A Loki server.
#[derive(Clone)]
pub struct LokiClient {
    http: reqwest::Client,
    cfg: LokiConfig,
}

impl LokiClient {
    pub fn new(cfg: LokiConfig) -> Result<Self> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(LokiError::Config(format!(
                "url '{}' must start with http:// or https://",
                cfg.url
            )));
        }
        if cfg.split_interval.is_zero() || cfg.limit_per_query == 0 {
            return Err(LokiError::Config(
                "split_interval and limit_per_query must be > 0".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| LokiError::Config(e.to_string()))?;
        Ok(Self { http, cfg })
    }

    pub fn config(&self) -> &LokiConfig {
        &self.cfg
    }

    fn builder(&self, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.cfg.tenant.is_empty() {
            b
        } else {
            b.header("X-Scope-OrgID", &self.cfg.tenant)
        }
    }

    fn send_error(&self, e: reqwest::Error) -> LokiError {
        if e.is_timeout() {
            LokiError::Timeout {
                secs: self.cfg.timeout.as_secs(),
            }
        } else if e.is_connect() || e.is_request() {
            LokiError::Unreachable {
                url: self.cfg.url.clone(),
                message: e.to_string(),
            }
        } else {
            LokiError::Protocol(e.to_string())
        }
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<LokiQueryResult> {
        let resp = self
            .builder(self.http.get(crate::join_url(&self.cfg.url, path)))
            .query(params)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.send_error(e))?;
        if bytes.len() > self.cfg.max_response_bytes {
            return Err(LokiError::Protocol(format!(
                "response larger than {} bytes",
                self.cfg.max_response_bytes
            )));
        }
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&bytes);
            // Loki's errors are plain text; a JSON {"status":"error","error":...} is read too.
            let message = serde_json::from_slice::<Envelope>(&bytes)
                .ok()
                .and_then(|e| e.error)
                .unwrap_or_else(|| crate::truncate(text.trim(), 500));
            return Err(LokiError::Api { status, message });
        }
        let env: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
            LokiError::Protocol(format!(
                "not a Loki query response ({e}): {}",
                crate::truncate(&String::from_utf8_lossy(&bytes), 200)
            ))
        })?;
        if env.status != "success" {
            return Err(LokiError::Api {
                status,
                message: env
                    .error
                    .unwrap_or_else(|| format!("status '{}'", env.status)),
            });
        }
        parse_result(
            env.data
                .ok_or_else(|| LokiError::Protocol("a success without data".into()))?,
        )
    }

    /// One `GET /loki/api/v1/query_range` over `[start, end)`.
    pub async fn query_range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: u32,
        direction: LokiDirection,
        step: Option<std::time::Duration>,
    ) -> Result<LokiQueryResult> {
        let mut params = vec![
            ("query", query.to_string()),
            ("start", nanos(start).to_string()),
            ("end", nanos(end).to_string()),
            ("limit", limit.to_string()),
            ("direction", direction.as_str().to_string()),
        ];
        if let Some(step) = step {
            params.push(("step", format!("{}s", step.as_secs().max(1))));
        }
        self.get("/loki/api/v1/query_range", &params).await
    }

    /// `query_range` over a long range as several requests of at most `split_interval`,
    /// oldest first, stopping once `max_entries` lines (or samples) were collected. A piece
    /// that fills `limit_per_query` is continued from just after its newest line (lines
    /// sharing that exact nanosecond beyond the limit are lost, as with Loki's own paging).
    /// Streams with the same labels from different pieces are joined.
    pub async fn query_range_split(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        max_entries: usize,
        step: Option<std::time::Duration>,
    ) -> Result<LokiQueryResult> {
        let step_len = chrono::Duration::from_std(self.cfg.split_interval)
            .map_err(|e| LokiError::Config(e.to_string()))?;
        let mut streams: BTreeMap<BTreeMap<String, String>, Vec<LokiEntry>> = BTreeMap::new();
        let mut series: BTreeMap<Labels, Vec<(DateTime<Utc>, f64)>> = BTreeMap::new();
        let mut kind = None;
        let mut got = 0usize;
        let mut from = start;
        while from < end && got < max_entries {
            let to = (from + step_len).min(end);
            let limit = (max_entries - got).min(self.cfg.limit_per_query as usize) as u32;
            let r = self
                .query_range(query, from, to, limit, LokiDirection::Forward, step)
                .await?;
            let n = r.len();
            got += n;
            // A piece that filled its limit has more lines: continue after its newest one
            // instead of skipping the rest of the piece.
            let mut resume = None;
            match r {
                LokiQueryResult::Streams(s) => {
                    kind = Some("streams");
                    if n >= limit as usize {
                        resume = s
                            .iter()
                            .flat_map(|st| st.entries.iter().map(|e| e.timestamp))
                            .max()
                            .map(|t| t + chrono::Duration::nanoseconds(1))
                            .filter(|t| *t > from && *t < to);
                    }
                    for st in s {
                        streams.entry(st.labels).or_default().extend(st.entries);
                    }
                }
                LokiQueryResult::Matrix(m) => {
                    kind = Some("matrix");
                    for s in m {
                        series.entry(s.metric).or_default().extend(s.values);
                    }
                }
                LokiQueryResult::Vector(_) => {
                    return Err(LokiError::Protocol(
                        "query_range answered with a vector".into(),
                    ));
                }
            }
            from = resume.unwrap_or(to);
        }
        Ok(if kind == Some("matrix") {
            LokiQueryResult::Matrix(
                series
                    .into_iter()
                    .map(|(metric, values)| LokiSeries { metric, values })
                    .collect(),
            )
        } else {
            LokiQueryResult::Streams(
                streams
                    .into_iter()
                    .map(|(labels, entries)| LokiStream { labels, entries })
                    .collect(),
            )
        })
    }

    /// `GET /loki/api/v1/query`: an instant query at `time`.
    pub async fn query(
        &self,
        query: &str,
        time: DateTime<Utc>,
        limit: u32,
    ) -> Result<LokiQueryResult> {
        self.get(
            "/loki/api/v1/query",
            &[
                ("query", query.to_string()),
                ("time", nanos(time).to_string()),
                ("limit", limit.to_string()),
            ],
        )
        .await
    }

    /// `POST /loki/api/v1/push` (snappy protobuf, as Promtail sends).
    pub async fn push(&self, streams: &[LokiStream]) -> Result<()> {
        if streams.is_empty() {
            return Ok(());
        }
        let body = vigil_parse::loki::encode_push_protobuf(streams);
        let resp = self
            .builder(
                self.http
                    .post(crate::join_url(&self.cfg.url, "/loki/api/v1/push")),
            )
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            return Err(LokiError::Api {
                status,
                message: crate::truncate(text.trim(), 500),
            });
        }
        Ok(())
    }
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A result as Vigil events: each log line through `vigil_parse` (labels kept under
/// `labels.*`, `event.original` the line), each metric sample as a `loki.metric` event.
pub fn result_to_events(result: &LokiQueryResult) -> Vec<Value> {
    let sample = |metric: &BTreeMap<String, String>, t: DateTime<Utc>, v: f64| {
        json!({
            "@timestamp": vigil_core::event::format_timestamp(t),
            "event": {"dataset": "loki.metric", "kind": "metric"},
            "labels": metric,
            "metric": {"value": v},
            "host": metric.get("host").map(|h| json!({"name": h})).unwrap_or(Value::Null),
        })
    };
    match result {
        LokiQueryResult::Streams(streams) => streams
            .iter()
            .flat_map(vigil_parse::loki::to_events)
            .collect(),
        LokiQueryResult::Matrix(m) => m
            .iter()
            .flat_map(|s| s.values.iter().map(move |(t, v)| sample(&s.metric, *t, *v)))
            .collect(),
        LokiQueryResult::Vector(v) => v
            .iter()
            .map(|s| sample(&s.metric, s.time, s.value))
            .collect(),
    }
}

/// Groups events into push streams labelled `job="vigil"`, `host`, `dataset` and
/// `channel`; the line is `event.original`, else the message, else the event's JSON.
pub fn events_to_streams<'a>(
    events: impl IntoIterator<Item = (DateTime<Utc>, &'a str, &'a Value)>,
) -> Vec<LokiStream> {
    let mut by_labels: BTreeMap<BTreeMap<String, String>, Vec<LokiEntry>> = BTreeMap::new();
    for (ts, channel, doc) in events {
        let mut l = BTreeMap::from([
            ("job".to_string(), "vigil".to_string()),
            ("channel".to_string(), channel.to_string()),
        ]);
        for (label, path) in [("host", "host.name"), ("dataset", "event.dataset")] {
            if let Some(v) = vigil_core::event::get_str(doc, path) {
                l.insert(label.to_string(), v.to_string());
            }
        }
        let line = vigil_core::event::get_str(doc, "event.original")
            .or_else(|| vigil_core::event::get_str(doc, "message"))
            .map(str::to_string)
            .unwrap_or_else(|| doc.to_string());
        by_labels.entry(l).or_default().push(LokiEntry {
            timestamp: ts,
            line,
            structured_metadata: BTreeMap::new(),
        });
    }
    by_labels
        .into_iter()
        .map(|(labels, mut entries)| {
            entries.sort_by_key(|e| e.timestamp);
            LokiStream { labels, entries }
        })
        .collect()
}
