//! Normalized events (see `docs/EVENTS.md`) and the wire types agents and the server share.
//!
//! An event is a JSON object with ECS-like names. The canonical form nests objects
//! (`{"event": {"dataset": "auth"}}`); readers here also accept a flat dotted key
//! (`{"event.dataset": "auth"}`), which is what hand-written test events tend to use.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use utoipa::ToSchema;
use uuid::Uuid;

/// Field names used across crates (ECS-like). Not exhaustive: `docs/EVENTS.md` lists them all.
pub mod fields {
    pub const TIMESTAMP: &str = "@timestamp";
    pub const MESSAGE: &str = "message";
    pub const ORIGINAL: &str = "event.original";
    pub const DATASET: &str = "event.dataset";
    pub const CATEGORY: &str = "event.category";
    pub const TYPE: &str = "event.type";
    pub const ACTION: &str = "event.action";
    pub const OUTCOME: &str = "event.outcome";
    pub const INGESTED: &str = "event.ingested";
    pub const HOST_NAME: &str = "host.name";
    pub const HOST_OS_TYPE: &str = "host.os.type";
    pub const AGENT_ID: &str = "agent.id";
    pub const AGENT_NAME: &str = "agent.name";
    pub const LOG_FILE_PATH: &str = "log.file.path";
    pub const USER_NAME: &str = "user.name";
    pub const SOURCE_IP: &str = "source.ip";
    pub const SOURCE_PORT: &str = "source.port";
    pub const DESTINATION_IP: &str = "destination.ip";
    pub const DESTINATION_PORT: &str = "destination.port";
    pub const PROCESS_NAME: &str = "process.name";
    pub const PROCESS_PID: &str = "process.pid";
    pub const PROCESS_EXECUTABLE: &str = "process.executable";
    pub const PROCESS_COMMAND_LINE: &str = "process.command_line";
}

/// The value at a dotted path: a literal dotted key first, then nested objects.
pub fn get<'a>(doc: &'a Json, path: &str) -> Option<&'a Json> {
    let obj = doc.as_object()?;
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    let mut cur = doc;
    for part in path.split('.') {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

/// The first `max` characters of `s` (all of it, without scanning, when it is short): how
/// stored event text is capped, on a character boundary.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// The string at a dotted path, if it is a string.
pub fn get_str<'a>(doc: &'a Json, path: &str) -> Option<&'a str> {
    get(doc, path)?.as_str()
}

/// Sets a dotted path in nested form, creating objects on the way; replaces non-objects
/// in the way. Does nothing when `doc` is not an object.
pub fn set(doc: &mut Json, path: &str, value: Json) {
    let Some(mut obj) = doc.as_object_mut() else {
        return;
    };
    // Keys are allocated only when they are added: parsers set many fields under the
    // same few parents (`event.*`, `source.*`).
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            match obj.get_mut(part) {
                Some(slot) => *slot = value,
                None => {
                    obj.insert(part.to_owned(), value);
                }
            }
            return;
        }
        if !obj.get(part).is_some_and(Json::is_object) {
            obj.insert(part.to_owned(), Json::Object(Map::new()));
        }
        obj = obj
            .get_mut(part)
            .and_then(Json::as_object_mut)
            .expect("just made an object");
    }
}

/// Sets a dotted path only when the event has no value there yet.
pub fn set_default(doc: &mut Json, path: &str, value: Json) {
    if get(doc, path).is_none() {
        set(doc, path, value);
    }
}

/// The event's `@timestamp`, when present and RFC 3339.
pub fn timestamp(doc: &Json) -> Option<DateTime<Utc>> {
    let text = get_str(doc, fields::TIMESTAMP)?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a time the way `@timestamp` is written: RFC 3339, UTC, microseconds, `Z`.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A batch of events from an agent: `POST /api/v1/ingest/events`.
///
/// `batch_id` is chosen by the sender and kept when the batch is re-sent, so the server
/// stores a batch once however often it arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestBatch {
    pub batch_id: Uuid,
    /// Normalized events (`docs/EVENTS.md`), each a JSON object.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Json>,
}

/// The server's answer to an ingest batch (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestReceipt {
    pub batch_id: Uuid,
    /// Events accepted into the pipeline from this request (0 for a duplicate batch).
    pub accepted: usize,
    /// Events refused (not objects, too large); each has an entry in `errors`.
    pub rejected: usize,
    /// True when this batch id had been received before: nothing was stored again.
    pub duplicate: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// `POST /api/v1/agents/register-agent`: trades a one-time enrollment token for a
/// per-agent credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisterAgentRequest {
    pub enrollment_token: String,
    pub hostname: String,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
}

/// The answer to a registration: the credential is shown this once, the server keeps
/// only its hash. Agents send it as `Authorization: Bearer <credential>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisterAgentResponse {
    pub agent_id: Uuid,
    pub org_id: Uuid,
    pub credential: String,
}

/// `POST /api/v1/agents/heartbeat` (agent credential): liveness plus the latest metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    /// The agent's latest system metrics snapshot (free-form JSON, see `docs/EVENTS.md`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metrics: Option<Json>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_reads_nested_and_dotted_keys() {
        let doc = json!({"event": {"dataset": "auth"}, "host.name": "h1"});
        assert_eq!(get_str(&doc, "event.dataset"), Some("auth"));
        assert_eq!(get_str(&doc, "host.name"), Some("h1"));
        assert_eq!(get(&doc, "event.missing"), None);
        assert_eq!(get(&json!("text"), "a"), None);
    }

    #[test]
    fn set_builds_nested_objects_and_default_keeps_existing() {
        let mut doc = json!({"event": "scalar"});
        set(&mut doc, "event.dataset", json!("auth"));
        set(&mut doc, "source.ip", json!("10.0.0.1"));
        set_default(&mut doc, "source.ip", json!("10.0.0.2"));
        assert_eq!(
            doc,
            json!({"event": {"dataset": "auth"}, "source": {"ip": "10.0.0.1"}})
        );
    }

    #[test]
    fn timestamps_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let doc = json!({"@timestamp": format_timestamp(t)});
        assert_eq!(timestamp(&doc), Some(t));
        assert_eq!(timestamp(&json!({"@timestamp": "yesterday"})), None);
    }
}
