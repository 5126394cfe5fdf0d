//! Turning what arrives into normalized events (`docs/EVENTS.md`): raw lines are parsed,
//! flat dotted keys nested, the time checked, and the sender's identity added. Whatever a
//! sender claims about itself in `agent.*` is overwritten by what its credential says.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};
use vigil_core::event::{self, fields};

/// Largest accepted event, serialized.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Who sent an event, as its credential says.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    /// `host.name` for events without one.
    pub host: Option<String>,
}

/// Nests flat dotted keys (`{"event.dataset": x}` -> `{"event": {"dataset": x}}`), at
/// every level; a nested value wins over a flat one for the same path. A document without
/// dotted keys (the usual case) is returned as it is, not rebuilt.
pub fn nest(doc: Json) -> Json {
    if !has_dotted_key(&doc) {
        return doc;
    }
    match doc {
        Json::Object(map) => {
            let mut out = Json::Object(Map::new());
            let mut dotted = Vec::new();
            for (k, v) in map {
                if is_dotted(&k) {
                    dotted.push((k, v));
                } else if let Some(o) = out.as_object_mut() {
                    o.insert(k, nest(v));
                }
            }
            for (k, v) in dotted {
                event::set_default(&mut out, &k, nest(v));
            }
            out
        }
        other => other,
    }
}

fn is_dotted(key: &str) -> bool {
    key.contains('.') && !key.starts_with('.') && !key.ends_with('.')
}

/// Whether `nest` would change anything: a dotted key in some object (not inside arrays).
fn has_dotted_key(v: &Json) -> bool {
    match v {
        Json::Object(map) => map.iter().any(|(k, v)| is_dotted(k) || has_dotted_key(v)),
        _ => false,
    }
}

/// Parses a raw text event (one with `message` or `event.original` and no dataset). The
/// parsed message and the line's own time replace the raw ones; every other field the
/// sender set (host, agent, file path) wins over what the line says. The sender's few
/// fields are laid over the parsed event (not the parsed event's many fields copied into
/// the sender's document).
fn parse_raw(doc: Json, received: DateTime<Utc>, origin: &Origin) -> Json {
    let Some(line) =
        event::get_str(&doc, fields::ORIGINAL).or_else(|| event::get_str(&doc, fields::MESSAGE))
    else {
        return doc;
    };
    let path = event::get_str(&doc, fields::LOG_FILE_PATH);
    let host = event::get_str(&doc, fields::HOST_NAME).or(origin.host.as_deref());
    // When the sender read the line (the agent's @timestamp) is the best guess for lines
    // without a time of their own, and the year of RFC 3164 times.
    let read_at = event::timestamp(&doc).unwrap_or(received);
    let mut parsed = parse_line(line, path, host, read_at);
    let Some(fields_parsed) = parsed.as_object() else {
        return doc;
    };
    let mut sender = doc;
    if let Some(own) = sender.as_object_mut() {
        for key in [fields::MESSAGE, fields::TIMESTAMP] {
            if fields_parsed.contains_key(key) {
                own.remove(key);
            }
        }
    }
    overlay(&mut parsed, sender);
    parsed
}

fn parse_line(line: &str, path: Option<&str>, host: Option<&str>, received: DateTime<Utc>) -> Json {
    let ctx = vigil_parse::LineContext {
        path,
        host,
        received,
        format: None,
    };
    vigil_parse::parse_line(line, &ctx)
}

/// Puts every field of `from` into `into` (recursively): `from`'s values win, objects on
/// both sides are merged.
fn overlay(into: &mut Json, from: Json) {
    let (Some(into), Json::Object(from)) = (into.as_object_mut(), from) else {
        return;
    };
    for (k, v) in from {
        match into.get_mut(&k) {
            Some(existing) if existing.is_object() && v.is_object() => overlay(existing, v),
            Some(existing) => *existing = v,
            None => {
                into.insert(k, v);
            }
        }
    }
}

/// Default of `[ingest] max_future_skew_secs`: how far ahead of the server's clock an
/// event's or alert's own time may be.
pub const DEFAULT_MAX_FUTURE_SKEW_SECS: u64 = 300;

/// Tag (ECS `tags`, as Logstash's `_dateparsefailure`) of an event whose own time was too
/// far in the future: its `@timestamp` is the receive time, the claimed time is kept in
/// `event.created_raw`.
pub const FUTURE_TIMESTAMP_TAG: &str = "_timestamp_in_future";

/// When a batch arrived, with its `@timestamp` text: the events of a batch share it, so it
/// is formatted once per batch, not per event.
pub struct Received {
    time: DateTime<Utc>,
    text: String,
    /// The latest own time an event may claim.
    latest: DateTime<Utc>,
}

impl Received {
    /// Received at `time`, with the default future skew (syslog and the local agent).
    pub fn new(time: DateTime<Utc>) -> Self {
        Self {
            time,
            text: event::format_timestamp(time),
            latest: skew_limit(time, DEFAULT_MAX_FUTURE_SKEW_SECS),
        }
    }

    /// With `[ingest] max_future_skew_secs`.
    pub fn with_max_future_skew(mut self, secs: u64) -> Self {
        self.latest = skew_limit(self.time, secs);
        self
    }
}

/// `secs` after `time` (a huge skew means no limit).
pub fn skew_limit(time: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| time.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Marks `doc` as carrying a time too far in the future (see [`FUTURE_TIMESTAMP_TAG`]).
fn flag_future_time(doc: &mut Json) {
    let tag = json!(FUTURE_TIMESTAMP_TAG);
    match doc.get_mut("tags") {
        Some(Json::Array(tags)) => tags.push(tag),
        Some(other) => *other = json!([other.take(), tag]),
        None => event::set(doc, "tags", json!([tag])),
    }
}

/// Normalizes one received event. `Err` says why it is refused.
pub fn normalize(doc: Json, received: &Received, origin: &Origin) -> Result<Json, String> {
    if !doc.is_object() {
        return Err("an event must be a JSON object".into());
    }
    let mut doc = nest(doc);
    if event::get(&doc, fields::DATASET).is_none() {
        doc = parse_raw(doc, received.time, origin);
    }
    // An event is kept whatever its own time says; an unreadable time or one too far in
    // the future (a wrong clock, or a sender hiding its events from time-ordered views) is
    // replaced by the receive time and the claimed text kept in `event.created_raw`.
    let own_time = event::timestamp(&doc);
    if own_time.is_none_or(|t| t > received.latest) {
        if let Some(bad) = event::get(&doc, fields::TIMESTAMP).cloned() {
            event::set(&mut doc, "event.created_raw", bad);
        }
        if own_time.is_some() {
            flag_future_time(&mut doc);
        }
        event::set(&mut doc, fields::TIMESTAMP, json!(received.text));
    }
    event::set(&mut doc, fields::INGESTED, json!(received.text));
    if let Some(id) = &origin.agent_id {
        event::set(&mut doc, fields::AGENT_ID, json!(id));
    }
    if let Some(name) = &origin.agent_name {
        event::set(&mut doc, fields::AGENT_NAME, json!(name));
    }
    if let Some(host) = &origin.host {
        event::set_default(&mut doc, fields::HOST_NAME, json!(host));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_without_dotted_keys_are_kept_as_they_are() {
        let doc = json!({"message": "a.b", "log": {"file": {"path": "/x.log"}}, ".x": 1, "y.": [{"a.b": 1}]});
        assert_eq!(nest(doc.clone()), doc);
        assert_eq!(
            nest(json!({"log": {"file.path": "/x.log"}})),
            json!({"log": {"file": {"path": "/x.log"}}})
        );
    }

    #[test]
    fn flat_keys_nest_and_nested_values_win() {
        let doc =
            nest(json!({"event.dataset": "flat", "event": {"dataset": "nested"}, "a.b.c": 1}));
        assert_eq!(
            doc,
            json!({"event": {"dataset": "nested"}, "a": {"b": {"c": 1}}})
        );
    }

    #[test]
    fn identity_comes_from_the_credential() {
        let origin = Origin {
            agent_id: Some("A1".into()),
            agent_name: Some("web-1".into()),
            host: Some("web-1".into()),
        };
        let t = vigil_core::now();
        let doc = normalize(
            json!({"agent": {"id": "forged"}, "event": {"dataset": "x"}, "@timestamp": "bad"}),
            &Received::new(t),
            &origin,
        )
        .unwrap();
        assert_eq!(doc["agent"]["id"], "A1");
        assert_eq!(doc["host"]["name"], "web-1");
        assert_eq!(event::timestamp(&doc), Some(t));
        assert_eq!(doc["event"]["created_raw"], "bad");
        assert!(normalize(json!([1]), &Received::new(t), &origin).is_err());
    }

    #[test]
    fn a_time_too_far_in_the_future_is_replaced_by_the_receive_time_and_flagged() {
        let t = vigil_core::now();
        let received = Received::new(t).with_max_future_skew(60);
        let at = |ts: String, tags: Json| {
            normalize(
                json!({"event": {"dataset": "x"}, "@timestamp": ts, "tags": tags}),
                &received,
                &Origin::default(),
            )
            .unwrap()
        };
        let doc = at("9999-12-31T23:59:59Z".into(), json!(["mine"]));
        assert_eq!(event::timestamp(&doc), Some(t));
        assert_eq!(doc["event"]["created_raw"], "9999-12-31T23:59:59Z");
        assert_eq!(doc["tags"], json!(["mine", FUTURE_TIMESTAMP_TAG]));
        let doc = at("9999-12-31T23:59:59Z".into(), json!("one"));
        assert_eq!(doc["tags"], json!(["one", FUTURE_TIMESTAMP_TAG]));
        // Within the skew: the event's own time is kept.
        let soon = t + chrono::Duration::seconds(30);
        let doc = at(event::format_timestamp(soon), json!([]));
        assert_eq!(event::timestamp(&doc), Some(soon));
        assert_eq!(doc["tags"], json!([]));
        assert!(doc["event"].get("created_raw").is_none());
    }

    #[test]
    fn the_senders_fields_win_over_the_parsed_ones_except_message_and_time() {
        let t = vigil_core::now();
        let line = "Nov 23 10:00:00 bastion sshd[42]: Failed password for root from 203.0.113.9 port 50000 ssh2";
        let doc = normalize(
            json!({"message": line, "@timestamp": "2026-11-24T00:00:00Z", "process": "custom",
                   "source": {"port": 1}, "labels": {"team": "a"}}),
            &Received::new(t),
            &Origin::default(),
        )
        .unwrap();
        assert_eq!(
            doc["process"], "custom",
            "a sender's value wins whatever its shape"
        );
        assert_eq!(doc["source"]["port"], 1);
        assert_eq!(
            doc["source"]["ip"], "203.0.113.9",
            "objects on both sides are merged"
        );
        assert_eq!(doc["labels"]["team"], "a");
        assert_eq!(doc["event"]["dataset"], "auth");
        assert!(
            doc["message"]
                .as_str()
                .unwrap()
                .starts_with("Failed password")
        );
        assert_eq!(doc["@timestamp"], "2026-11-23T10:00:00.000000Z");
        assert_eq!(doc["event"]["ingested"], event::format_timestamp(t));
    }

    #[test]
    fn raw_lines_are_parsed_and_the_sender_keeps_its_fields() {
        let t = vigil_core::now();
        let line = "Nov 23 10:00:00 bastion sshd[42]: Failed password for root from 203.0.113.9 port 50000 ssh2";
        let doc = normalize(
            json!({"message": line, "log": {"file": {"path": "/var/log/auth.log"}}, "host": {"name": "bastion-1"}}),
            &Received::new(t),
            &Origin::default(),
        )
        .unwrap();
        assert_eq!(doc["event"]["dataset"], "auth");
        assert_eq!(doc["source"]["ip"], "203.0.113.9");
        assert_eq!(
            doc["host"]["name"], "bastion-1",
            "the sender's host wins over the line's"
        );
        assert_eq!(doc["log"]["file"]["path"], "/var/log/auth.log");
        assert_eq!(
            doc["message"],
            "Failed password for root from 203.0.113.9 port 50000 ssh2"
        );
        assert_eq!(doc["event"]["original"], line);
        assert!(
            doc["@timestamp"]
                .as_str()
                .unwrap()
                .ends_with("-11-23T10:00:00.000000Z")
        );
    }
}
