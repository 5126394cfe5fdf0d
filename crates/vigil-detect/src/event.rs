//! What the engine needs from an event, and the implementation for JSON documents.

use std::borrow::Cow;

use serde_json::Value as Json;

/// One field's value as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    /// A multi-valued field: a selection matches when any element matches.
    List(Vec<FieldValue<'a>>),
}

impl FieldValue<'_> {
    /// The text Sigma's string comparisons see: numbers and booleans as written in JSON,
    /// so `EventID: 4688` in a rule matches both `4688` and `"4688"` in an event.
    /// `None` for null and lists.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            FieldValue::Str(s) => Some(Cow::Borrowed(s)),
            FieldValue::Int(i) => Some(Cow::Owned(i.to_string())),
            FieldValue::Float(f) => Some(Cow::Owned(f.to_string())),
            FieldValue::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            FieldValue::Null | FieldValue::List(_) => None,
        }
    }

    /// The value as a number, for `lt`/`lte`/`gt`/`gte` (numeric strings count).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::Float(f) => Some(*f),
            FieldValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// An event rules can be evaluated against.
pub trait Event {
    /// The value of a field, `None` when the event has no such field.
    fn field(&self, name: &str) -> Option<FieldValue<'_>>;

    /// Calls `f` with each string a keyword search (a search without field names) looks at,
    /// stopping and returning `true` as soon as `f` does.
    fn any_keyword(&self, f: &mut dyn FnMut(&str) -> bool) -> bool;
}

/// JSON events. Field names are looked up as a whole key first, then as a dotted path
/// (`process.parent.name`). Windows events shaped `{"Event":{"System":{..},"EventData":{..}}}`
/// (as converted from EVTX) are looked up in `EventData` (where `SourceName` also finds a
/// `"Source Name"` key, as Windows Defender writes them), then `UserData`'s single child, then
/// `System`; System values written as `{"#text": ..}` read as their text, and an attribute
/// is reached as `Element_Attribute` (`Provider_Name` is `Provider.#attributes.Name`).
impl Event for Json {
    fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        if let Some(v) = windows_event(self).and_then(|event| windows_field(event, name)) {
            return Some(v);
        }
        lookup(self, name).map(to_field_value)
    }

    fn any_keyword(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        fn walk(v: &Json, f: &mut dyn FnMut(&str) -> bool) -> bool {
            match v {
                Json::String(s) => f(s),
                Json::Number(n) => f(&n.to_string()),
                Json::Array(items) => items.iter().any(|i| walk(i, f)),
                Json::Object(map) => map.values().any(|i| walk(i, f)),
                Json::Bool(_) | Json::Null => false,
            }
        }
        match windows_event(self) {
            Some(event) => ["EventData", "UserData"]
                .iter()
                .filter_map(|k| event.get(*k))
                .any(|v| walk(v, f)),
            None => walk(self, f),
        }
    }
}

fn windows_event(v: &Json) -> Option<&Json> {
    let event = v.get("Event")?;
    event.get("System").is_some().then_some(event)
}

fn windows_field<'a>(event: &'a Json, name: &str) -> Option<FieldValue<'a>> {
    if let Some(Json::Object(data)) = event.get("EventData") {
        if let Some(v) = data.get(name) {
            return Some(to_field_value(v));
        }
        // Some providers (Windows Defender) name their data with spaces ("Source Name");
        // Sigma rules write those names without them ("SourceName").
        let unspaced = data
            .iter()
            .find(|(k, _)| k.contains(' ') && k.chars().filter(|c| *c != ' ').eq(name.chars()));
        if let Some((_, v)) = unspaced {
            return Some(to_field_value(v));
        }
    }
    if let Some(Json::Object(user)) = event.get("UserData") {
        // UserData wraps its fields in one provider-specific element.
        if let Some(v) = user.values().find_map(|inner| inner.get(name)) {
            return Some(to_field_value(v));
        }
    }
    let system = event.get("System")?;
    if let Some(v) = system.get(name) {
        return Some(to_field_value(v));
    }
    let (element, attribute) = name.split_once('_')?;
    system
        .get(element)?
        .get("#attributes")?
        .get(attribute)
        .map(to_field_value)
}

fn lookup<'a>(v: &'a Json, name: &str) -> Option<&'a Json> {
    if let Some(found) = v.get(name) {
        return Some(found);
    }
    let mut cur = v;
    for part in name.split('.') {
        cur = match cur {
            Json::Object(map) => map.get(part)?,
            Json::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn to_field_value(v: &Json) -> FieldValue<'_> {
    match v {
        Json::String(s) => FieldValue::Str(Cow::Borrowed(s)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::Int(i),
            None => n
                .as_f64()
                .map(FieldValue::Float)
                .unwrap_or_else(|| FieldValue::Str(Cow::Owned(n.to_string()))),
        },
        Json::Bool(b) => FieldValue::Bool(*b),
        Json::Null => FieldValue::Null,
        Json::Array(items) => FieldValue::List(items.iter().map(to_field_value).collect()),
        Json::Object(map) => match map.get("#text") {
            Some(text) => to_field_value(text),
            None => FieldValue::Str(Cow::Owned(v.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn windows_events_look_in_event_data_then_system() {
        let e = json!({"Event": {
            "System": {
                "EventID": {"#text": "4688", "#attributes": {"Qualifiers": 0}},
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "Channel": "Security",
                "Computer": "host"
            },
            "EventData": {"NewProcessName": "C:\\x.exe", "Computer": "data wins", "Source Name": "RTP"}
        }});
        assert_eq!(e.field("EventID"), Some(FieldValue::Str("4688".into())));
        assert_eq!(e.field("Channel"), Some(FieldValue::Str("Security".into())));
        assert_eq!(
            e.field("Computer"),
            Some(FieldValue::Str("data wins".into()))
        );
        assert_eq!(
            e.field("Provider_Name"),
            Some(FieldValue::Str(
                "Microsoft-Windows-Security-Auditing".into()
            ))
        );
        assert_eq!(e.field("SourceName"), Some(FieldValue::Str("RTP".into())));
        assert_eq!(e.field("Missing"), None);
        assert!(e.any_keyword(&mut |s| s == "C:\\x.exe"));
        assert!(!e.any_keyword(&mut |s| s == "Security"));
    }

    #[test]
    fn plain_json_supports_dotted_paths_and_literal_dotted_keys() {
        let e = json!({"process": {"name": "cmd.exe", "pid": 4, "args": ["a", "b"]}, "a.b": true});
        assert_eq!(
            e.field("process.name"),
            Some(FieldValue::Str("cmd.exe".into()))
        );
        assert_eq!(e.field("process.pid"), Some(FieldValue::Int(4)));
        assert_eq!(e.field("process.args.1"), Some(FieldValue::Str("b".into())));
        assert_eq!(e.field("a.b"), Some(FieldValue::Bool(true)));
        assert_eq!(e.field("process.nope"), None);
        assert_eq!(FieldValue::Int(4688).as_text().as_deref(), Some("4688"));
        assert_eq!(FieldValue::Str(" 12 ".into()).as_f64(), Some(12.0));
    }
}
