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
/// sender set (host, agent, file path) wins over what the line says.
fn parse_raw(doc: &mut Json, received: DateTime<Utc>, origin: &Origin) {
    let line = event::get_str(doc, fields::ORIGINAL)
        .or_else(|| event::get_str(doc, fields::MESSAGE))
        .map(str::to_owned);
    let Some(line) = line else { return };
    let path = event::get_str(doc, fields::LOG_FILE_PATH).map(str::to_owned);
    let host = event::get_str(doc, fields::HOST_NAME)
        .map(str::to_owned)
        .or_else(|| origin.host.clone());
    // When the sender read the line (the agent's @timestamp) is the best guess for lines
    // without a time of their own, and the year of RFC 3164 times.
    let read_at = event::timestamp(doc).unwrap_or(received);
    let mut parsed = parse_line(&line, path.as_deref(), host.as_deref(), read_at);
    for key in [fields::MESSAGE, fields::TIMESTAMP] {
        if let Some(v) = parsed.as_object_mut().and_then(|o| o.remove(key)) {
            event::set(doc, key, v);
        }
    }
    merge_missing(doc, parsed);
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

/// Copies every field of `from` that `into` lacks (recursively).
fn merge_missing(into: &mut Json, from: Json) {
    let (Some(into), Json::Object(from)) = (into.as_object_mut(), from) else {
        return;
    };
    for (k, v) in from {
        match into.get_mut(&k) {
            None => {
                into.insert(k, v);
            }
            Some(existing) if existing.is_object() && v.is_object() => merge_missing(existing, v),
            Some(_) => {}
        }
    }
}

/// Normalizes one received event. `Err` says why it is refused.
pub fn normalize(doc: Json, received: DateTime<Utc>, origin: &Origin) -> Result<Json, String> {
    if !doc.is_object() {
        return Err("an event must be a JSON object".into());
    }
    let mut doc = nest(doc);
    if event::get(&doc, fields::DATASET).is_none() {
        parse_raw(&mut doc, received, origin);
    }
    if event::timestamp(&doc).is_none() {
        if let Some(bad) = event::get(&doc, fields::TIMESTAMP).cloned() {
            event::set(&mut doc, "event.created_raw", bad);
        }
        event::set(
            &mut doc,
            fields::TIMESTAMP,
            json!(event::format_timestamp(received)),
        );
    }
    event::set(
        &mut doc,
        fields::INGESTED,
        json!(event::format_timestamp(received)),
    );
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
            t,
            &origin,
        )
        .unwrap();
        assert_eq!(doc["agent"]["id"], "A1");
        assert_eq!(doc["host"]["name"], "web-1");
        assert_eq!(event::timestamp(&doc), Some(t));
        assert_eq!(doc["event"]["created_raw"], "bad");
        assert!(normalize(json!([1]), t, &origin).is_err());
    }

    #[test]
    fn raw_lines_are_parsed_and_the_sender_keeps_its_fields() {
        let t = vigil_core::now();
        let line = "Nov 23 10:00:00 bastion sshd[42]: Failed password for root from 203.0.113.9 port 50000 ssh2";
        let doc = normalize(
            json!({"message": line, "log": {"file": {"path": "/var/log/auth.log"}}, "host": {"name": "bastion-1"}}),
            t,
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
