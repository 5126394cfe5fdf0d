//! The Loki push API (`POST /loki/api/v1/push`) as Promtail, Grafana Alloy, Vector and
//! Fluent Bit send it, so Vigil can stand in for Loki as their destination.
//!
//! Bodies are decoded the way Loki's distributor does (`pkg/loghttp/push`):
//!
//! - `Content-Type: application/json`: `{"streams": [{"stream": {"job": "x"}, "values":
//!   [["<unix ns as a string>", "line"], ["<ns>", "line", {"trace_id": "..."}]]}]}`.
//! - any other or no content type: a `logproto.PushRequest` protobuf, snappy block
//!   compressed (`StreamAdapter{labels = 1, entries = 2}`, `EntryAdapter{timestamp = 1
//!   (google.protobuf.Timestamp), line = 2, structuredMetadata = 3 (LabelPairAdapter{name =
//!   1, value = 2})}`).
//! - `Content-Encoding`: none, `gzip`, `deflate`, or `snappy` (accepted and ignored, as Loki
//!   does: the protobuf is snappy compressed anyway); anything else is an error.
//!
//! Every decompression is bounded by `max_decompressed`; stream label sets must be
//! `{name="value", ...}` with at least one label, as Loki requires.
//!
//! ```
//! use std::collections::BTreeMap;
//! use vigil_parse::loki::{LokiEntry, LokiStream, decode_push, encode_push_protobuf, to_events};
//!
//! let stream = LokiStream {
//!     labels: BTreeMap::from([("host".into(), "web-1".into()), ("job".into(), "nginx".into())]),
//!     entries: vec![LokiEntry {
//!         timestamp: "2026-11-23T10:00:00Z".parse().unwrap(),
//!         line: r#"203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8""#.into(),
//!         structured_metadata: BTreeMap::new(),
//!     }],
//! };
//! let body = encode_push_protobuf(std::slice::from_ref(&stream));
//! let streams = decode_push(&body, Some("application/x-protobuf"), None, 1 << 20)?;
//! assert_eq!(streams, vec![stream]);
//! let event = to_events(&streams[0]).next().unwrap();
//! assert_eq!(event["event"]["dataset"], "network.http");
//! assert_eq!(event["host"]["name"], "web-1");
//! assert_eq!(event["labels"]["job"], "nginx");
//! # Ok::<(), vigil_parse::Error>(())
//! ```

use std::collections::BTreeMap;
use std::io::Read;

use chrono::{DateTime, Utc};
use prost::Message;
use serde_json::Value as Json;
use vigil_core::event;

use crate::{Error, LineContext, Result, parse_line};

/// One stream of a push: its label set and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LokiStream {
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<LokiEntry>,
}

/// One log line of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LokiEntry {
    pub timestamp: DateTime<Utc>,
    pub line: String,
    /// Per-entry labels (Loki 3 structured metadata), empty when there are none.
    pub structured_metadata: BTreeMap<String, String>,
}

mod proto {
    //! `logproto.PushRequest` as Loki's `pkg/push/push.proto` defines it.

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

fn loki(msg: impl Into<String>) -> Error {
    Error::Loki(msg.into())
}

/// The decoded size of an uncompressed push body: for snappy-compressed protobuf the
/// length its header states (read without decompressing), for JSON the body's own length;
/// `None` when the header cannot be read. Lets a server charge memory before decoding.
pub fn decoded_len(body: &[u8], content_type: Option<&str>) -> Option<usize> {
    let json = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Some(body.len())
    } else {
        snap::raw::decompress_len(body).ok()
    }
}

/// Decodes the body of `POST /loki/api/v1/push` (see the module docs for what is accepted).
pub fn decode_push(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    max_decompressed: usize,
) -> Result<Vec<LokiStream>> {
    let encoding = content_encoding.map(str::trim).unwrap_or("");
    let decoded: std::borrow::Cow<[u8]> = match encoding.to_ascii_lowercase().as_str() {
        "" | "identity" | "snappy" => body.into(),
        "gzip" | "x-gzip" => {
            read_bounded(flate2::read::GzDecoder::new(body), max_decompressed, "gzip")?.into()
        }
        "deflate" => read_bounded(
            flate2::read::DeflateDecoder::new(body),
            max_decompressed,
            "deflate",
        )?
        .into(),
        other => {
            return Err(loki(format!(
                "Content-Encoding {other:?} not supported: use gzip, deflate, snappy or none"
            )));
        }
    };
    if decoded.len() > max_decompressed {
        return Err(Error::TooLarge {
            max: max_decompressed,
        });
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/json") => decode_json(&decoded),
        _ => decode_protobuf(&decoded, max_decompressed, media.as_deref()),
    }
}

fn read_bounded(reader: impl Read, max: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| loki(format!("body is not valid {what}: {e}")))?;
    if out.len() > max {
        return Err(Error::TooLarge { max });
    }
    Ok(out)
}

fn decode_protobuf(body: &[u8], max: usize, media: Option<&str>) -> Result<Vec<LokiStream>> {
    let what = || match media {
        Some(m) => format!("content type {m}"),
        None => "no content type".to_owned(),
    };
    let len = snap::raw::decompress_len(body).map_err(|e| {
        loki(format!(
            "body is not snappy-compressed protobuf ({}): {e}",
            what()
        ))
    })?;
    if len > max {
        return Err(Error::TooLarge { max });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| {
            loki(format!(
                "body is not snappy-compressed protobuf ({}): {e}",
                what()
            ))
        })?;
    let request = proto::PushRequest::decode(raw.as_slice())
        .map_err(|e| loki(format!("body is not a logproto.PushRequest: {e}")))?;
    request
        .streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let labels =
                parse_labels(&s.labels).map_err(|e| loki(format!("stream {}: {e}", i + 1)))?;
            let entries = s
                .entries
                .into_iter()
                .enumerate()
                .map(|(j, e)| {
                    let ts = e.timestamp.ok_or_else(|| {
                        loki(format!("stream {} entry {}: no timestamp", i + 1, j + 1))
                    })?;
                    let timestamp = u32::try_from(ts.nanos)
                        .ok()
                        .filter(|n| *n < 1_000_000_000)
                        .and_then(|n| DateTime::from_timestamp(ts.seconds, n))
                        .ok_or_else(|| {
                            loki(format!(
                                "stream {} entry {}: timestamp {}s {}ns out of range",
                                i + 1,
                                j + 1,
                                ts.seconds,
                                ts.nanos
                            ))
                        })?;
                    let mut structured_metadata = BTreeMap::new();
                    for pair in e.structured_metadata {
                        structured_metadata.insert(pair.name, pair.value);
                    }
                    Ok(LokiEntry {
                        timestamp,
                        line: e.line,
                        structured_metadata,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(LokiStream { labels, entries })
        })
        .collect()
}

fn decode_json(body: &[u8]) -> Result<Vec<LokiStream>> {
    let doc: Json =
        serde_json::from_slice(body).map_err(|e| loki(format!("body is not valid JSON: {e}")))?;
    let streams = doc
        .get("streams")
        .and_then(Json::as_array)
        .ok_or_else(|| loki("JSON body has no \"streams\" array"))?;
    streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let at = |what: String| loki(format!("stream {}: {what}", i + 1));
            let labels_obj = s
                .get("stream")
                .and_then(Json::as_object)
                .ok_or_else(|| at("no \"stream\" object of labels".into()))?;
            let mut labels = BTreeMap::new();
            for (k, v) in labels_obj {
                check_label_name(k).map_err(&at)?;
                let v = v
                    .as_str()
                    .ok_or_else(|| at(format!("label {k:?} is not a string")))?;
                labels.insert(k.clone(), v.to_owned());
            }
            if labels.is_empty() {
                return Err(at("at least one label pair is required per stream".into()));
            }
            let values = s
                .get("values")
                .and_then(Json::as_array)
                .ok_or_else(|| at("no \"values\" array".into()))?;
            let entries = values
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let at = |what: &str| loki(format!("stream {} value {}: {what}", i + 1, j + 1));
                    let parts = v
                        .as_array()
                        .filter(|a| a.len() == 2 || a.len() == 3)
                        .ok_or_else(|| {
                            at("expected [\"<unix epoch in nanoseconds>\", \"<line>\"] or with a third object of structured metadata")
                        })?;
                    let ns = parts[0].as_str().ok_or_else(|| {
                        at("the timestamp must be a string of nanoseconds since the epoch")
                    })?;
                    let timestamp = parse_ns(ns).ok_or_else(|| {
                        at(&format!("bad timestamp {ns:?}: expected nanoseconds since the epoch"))
                    })?;
                    let line = parts[1]
                        .as_str()
                        .ok_or_else(|| at("the log line must be a string"))?
                        .to_owned();
                    let mut structured_metadata = BTreeMap::new();
                    if let Some(meta) = parts.get(2) {
                        let meta = meta
                            .as_object()
                            .ok_or_else(|| at("structured metadata must be an object"))?;
                        for (k, v) in meta {
                            let v = v.as_str().ok_or_else(|| {
                                at(&format!("structured metadata {k:?} is not a string"))
                            })?;
                            structured_metadata.insert(k.clone(), v.to_owned());
                        }
                    }
                    Ok(LokiEntry {
                        timestamp,
                        line,
                        structured_metadata,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(LokiStream { labels, entries })
        })
        .collect()
}

fn parse_ns(s: &str) -> Option<DateTime<Utc>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ns: i128 = s.parse().ok()?;
    let secs = i64::try_from(ns / 1_000_000_000).ok()?;
    DateTime::from_timestamp(secs, (ns % 1_000_000_000) as u32)
}

fn check_label_name(name: &str) -> std::result::Result<(), String> {
    let mut bytes = name.bytes();
    let ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"
        ))
    }
}

/// Parses a label set as Loki writes it: `{job="x", host="y"}` (double-quoted values with
/// Go escapes, or back-quoted raw values). At least one label; no duplicates; only `=`.
pub fn parse_labels(selector: &str) -> Result<BTreeMap<String, String>> {
    let bad = |reason: String| Error::Labels {
        selector: selector.chars().take(200).collect(),
        reason,
    };
    let inner = selector
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| bad("expected {name=\"value\", ...}".into()))?;
    let mut out = BTreeMap::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        check_label_name(name).map_err(&bad)?;
        rest = rest[end..].trim_start();
        let op_end = rest
            .find(|c: char| c == '"' || c == '`' || c.is_whitespace())
            .unwrap_or(rest.len());
        let op = &rest[..op_end];
        if op != "=" {
            return Err(bad(format!(
                "label {name:?}: expected `=`, found {op:?} (only name=\"value\" pairs are allowed)"
            )));
        }
        rest = rest[op_end..].trim_start();
        let (value, after) = unquote(rest).map_err(|e| bad(format!("label {name:?}: {e}")))?;
        if out.insert(name.to_owned(), value).is_some() {
            return Err(bad(format!("duplicate label name {name:?}")));
        }
        rest = after.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => {
                return Err(bad(format!(
                    "expected `,` or `}}` after label {name:?}, found {:?}",
                    rest.chars().take(10).collect::<String>()
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(bad("at least one label pair is required".into()));
    }
    Ok(out)
}

/// A Go string literal at the start of `s`: the value and the text after it.
fn unquote(s: &str) -> std::result::Result<(String, &str), String> {
    if let Some(raw) = s.strip_prefix('`') {
        return raw
            .find('`')
            .map(|i| (raw[..i].to_owned(), &raw[i + 1..]))
            .ok_or_else(|| "unterminated `raw` value".to_owned());
    }
    let body = s
        .strip_prefix('"')
        .ok_or_else(|| "value must be a quoted string".to_owned())?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated escape")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '\\' | '"' | '\'' => out.push(e),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = (0..n)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == n)
                            .ok_or_else(|| format!("bad escape \\{e}{hex}"))?;
                        out.push(
                            char::from_u32(code).ok_or_else(|| format!("bad escape \\{e}{hex}"))?,
                        );
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted value".into())
}

/// Writes a label set as Loki and Promtail do: `{a="b", c="d"}`, sorted by name.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Encodes streams as Promtail sends them: a `logproto.PushRequest`, snappy block compressed.
pub fn encode_push_protobuf(streams: &[LokiStream]) -> Vec<u8> {
    let request = proto::PushRequest {
        streams: streams
            .iter()
            .map(|s| proto::StreamAdapter {
                labels: format_labels(&s.labels),
                entries: s
                    .entries
                    .iter()
                    .map(|e| proto::EntryAdapter {
                        timestamp: Some(proto::Timestamp {
                            seconds: e.timestamp.timestamp(),
                            nanos: e.timestamp.timestamp_subsec_nanos() as i32,
                        }),
                        line: e.line.clone(),
                        structured_metadata: e
                            .structured_metadata
                            .iter()
                            .map(|(name, value)| proto::LabelPairAdapter {
                                name: name.clone(),
                                value: value.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    let raw = request.encode_to_vec();
    // Compressing an in-memory buffer cannot fail except for inputs over ~4 GiB.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// The stream's entries as events: each line through [`parse_line`] with the entry time as
/// the receive time; `host`/`hostname` labels become `host.name` (when the line names no
/// host), `filename` becomes `log.file.path`, and every other label and the entry's
/// structured metadata are kept under `labels.*`.
pub fn to_events(stream: &LokiStream) -> impl Iterator<Item = Json> + '_ {
    let host = stream
        .labels
        .get("host")
        .or_else(|| stream.labels.get("hostname"))
        .map(String::as_str);
    let path = stream.labels.get("filename").map(String::as_str);
    stream.entries.iter().map(move |entry| {
        let ctx = LineContext {
            path,
            host,
            received: entry.timestamp,
            format: None,
        };
        let mut ev = parse_line(&entry.line, &ctx);
        let mut labels = serde_json::Map::new();
        for (k, v) in stream.labels.iter().chain(&entry.structured_metadata) {
            if !matches!(k.as_str(), "host" | "hostname" | "filename") {
                labels.insert(k.clone(), Json::from(v.as_str()));
            }
        }
        if !labels.is_empty() && event::get(&ev, "labels").is_none_or(Json::is_object) {
            for (k, v) in labels {
                match ev.get_mut("labels").and_then(Json::as_object_mut) {
                    Some(obj) => {
                        obj.entry(k).or_insert(v);
                    }
                    None => {
                        ev["labels"] = serde_json::json!({ k: v });
                    }
                }
            }
        }
        ev
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn stream() -> LokiStream {
        LokiStream {
            labels: BTreeMap::from([
                ("job".into(), "varlogs".into()),
                ("filename".into(), "/var/log/auth.log".into()),
                ("host".into(), "bastion-1".into()),
            ]),
            entries: vec![
                LokiEntry {
                    timestamp: "2026-11-23T10:00:00.123456789Z".parse().unwrap(),
                    line: "Nov 23 10:00:00 bastion-1 sshd[1]: Failed password for root from 203.0.113.9 port 1 ssh2".into(),
                    structured_metadata: BTreeMap::from([("trace_id".into(), "abc".into())]),
                },
                LokiEntry {
                    timestamp: "2026-11-23T10:00:01Z".parse().unwrap(),
                    line: "a line with \"quotes\" and ünïcode".into(),
                    structured_metadata: BTreeMap::new(),
                },
            ],
        }
    }

    #[test]
    fn protobuf_round_trip_keeps_nanoseconds_and_metadata() {
        let body = encode_push_protobuf(&[stream()]);
        let out = decode_push(&body, Some("application/x-protobuf"), None, 1 << 20).unwrap();
        assert_eq!(out, vec![stream()]);
        // Loki treats a missing content type as protobuf, and `snappy` encoding as a no-op.
        let out = decode_push(&body, None, Some("snappy"), 1 << 20).unwrap();
        assert_eq!(out, vec![stream()]);
    }

    #[test]
    fn json_body_plain_and_gzipped() {
        let body = br#"{"streams":[{"stream":{"job":"app","host":"h1"},"values":[["1700000000123456789","first"],["1700000001000000000","second",{"trace_id":"t1"}]]}]}"#;
        let out =
            decode_push(body, Some("application/json; charset=utf-8"), None, 1 << 20).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels["job"], "app");
        assert_eq!(
            out[0].entries[0].timestamp,
            "2023-11-14T22:13:20.123456789Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
        );
        assert_eq!(out[0].entries[1].structured_metadata["trace_id"], "t1");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decode_push(&gz, Some("application/json"), Some("gzip"), 1 << 20).unwrap(),
            out
        );
    }

    #[test]
    fn decompression_is_bounded() {
        let big = format!(
            r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["1","{}"]]}}]}}"#,
            "x".repeat(100_000)
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(big.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 10_000);
        let err = decode_push(&gz, Some("application/json"), Some("gzip"), 50_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "loki push: body decompresses to more than 50000 bytes"
        );
        let mut s = stream();
        s.entries[0].line = "y".repeat(100_000);
        let body = encode_push_protobuf(&[s]);
        let err = decode_push(&body, None, None, 50_000).unwrap_err();
        assert!(matches!(err, Error::TooLarge { max: 50_000 }));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let e = |body: &[u8], ct: Option<&str>, ce: Option<&str>| {
            decode_push(body, ct, ce, 1 << 20).unwrap_err().to_string()
        };
        assert!(
            e(b"{}", Some("application/json"), Some("br"))
                .contains("Content-Encoding \"br\" not supported")
        );
        assert!(e(b"not json", Some("application/json"), None).contains("not valid JSON"));
        assert!(e(b"{}", Some("application/json"), None).contains("no \"streams\" array"));
        assert!(
            e(
                br#"{"streams":[{"stream":{"job":"a"},"values":[[1,"x"]]}]}"#,
                Some("application/json"),
                None
            )
            .contains("stream 1 value 1: the timestamp must be a string")
        );
        assert!(
            e(
                br#"{"streams":[{"stream":{},"values":[]}]}"#,
                Some("application/json"),
                None
            )
            .contains("at least one label")
        );
        assert!(
            e(
                br#"{"streams":[{"stream":{"a-b":"x"},"values":[]}]}"#,
                Some("application/json"),
                None
            )
            .contains("invalid label name")
        );
        assert!(
            e(b"plain text", Some("text/plain"), None)
                .contains("not snappy-compressed protobuf (content type text/plain)")
        );
        assert!(
            e(b"\x1f\x8b garbage", Some("application/json"), Some("gzip"))
                .contains("not valid gzip")
        );
        let junk = snap::raw::Encoder::new()
            .compress_vec(b"\xff\xff\xff")
            .unwrap();
        assert!(e(&junk, None, None).contains("not a logproto.PushRequest"));
        let mut s = stream();
        s.labels.clear();
        assert!(e(&encode_push_protobuf(&[s]), None, None).contains("stream 1: bad label set"));
    }

    #[test]
    fn labels_parse_like_loki() {
        let l = parse_labels(r#"{job="x", host="y\"z", path=`C:\raw`,}"#).unwrap();
        assert_eq!(l["job"], "x");
        assert_eq!(l["host"], "y\"z");
        assert_eq!(l["path"], r"C:\raw");
        let err = |s: &str| parse_labels(s).unwrap_err().to_string();
        assert!(err(r#"{job=~"x"}"#).contains("expected `=`"));
        assert!(err(r#"{job="x", job="y"}"#).contains("duplicate label name"));
        assert!(err("{}").contains("at least one label"));
        assert!(err(r#"job="x""#).contains("expected {name="));
        assert!(err(r#"{job="x}"#).contains("unterminated"));
        assert!(err(r#"{1a="x"}"#).contains("invalid label name"));
        let m = BTreeMap::from([("a".to_owned(), "q\"\n\\".to_owned())]);
        assert_eq!(parse_labels(&format_labels(&m)).unwrap(), m);
    }

    #[test]
    fn events_carry_labels() {
        let s = stream();
        let events: Vec<Json> = to_events(&s).collect();
        assert_eq!(events[0]["event"]["dataset"], "auth");
        assert_eq!(events[0]["source"]["ip"], "203.0.113.9");
        assert_eq!(events[0]["log"]["file"]["path"], "/var/log/auth.log");
        assert_eq!(events[0]["labels"]["job"], "varlogs");
        assert_eq!(events[0]["labels"]["trace_id"], "abc");
        assert_eq!(events[1]["host"]["name"], "bastion-1");
        assert_eq!(events[1]["@timestamp"], "2026-11-23T10:00:01.000000Z");
        assert_eq!(events[1]["event"]["dataset"], "syslog");
    }
}
