//! JSON events parsed for detection without building a `serde_json::Value`: one flat table of
//! nodes in document order, strings borrowed from the text (those with escapes unescaped into
//! one buffer per document), so parsing an event costs two allocations instead of one per
//! key, string and map node, and dropping it frees two buffers.
//!
//! The engine evaluates `serde_json::Value` events through the same table (built from the
//! `Value` by a walk that borrows its strings), so field resolution has one implementation and
//! does not depend on how `serde_json` orders its maps (`preserve_order`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value as Json};

use crate::event::{Event, FieldValue};

/// A JSON event parsed from its text for detection; implements [`Event`] with the same field
/// resolution as `serde_json::Value` (Windows events included), borrowing from the text.
///
/// ```
/// use vigil_detect::{Event, FieldValue, JsonEvent};
///
/// let text = r#"{"Event":{"System":{"EventID":1},"EventData":{"Image":"C:\\x.exe"}}}"#;
/// let event = JsonEvent::parse(text)?;
/// assert_eq!(event.field("Image"), Some(FieldValue::Str("C:\\x.exe".into())));
/// assert_eq!(event.field("EventID"), Some(FieldValue::Int(1)));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// A key written twice in one object: lookups see its last value, as in a `serde_json::Value`;
/// keyword searches (searches without field names) see both values.
#[derive(Debug, Clone, Default)]
pub struct JsonEvent<'a> {
    nodes: Vec<Node<'a>>,
    /// Strings that had escapes in the text, unescaped.
    arena: String,
}

#[derive(Debug, Clone)]
struct Node<'a> {
    /// The member name in its object (empty for the root and array elements).
    key: Text<'a>,
    value: Val<'a>,
    /// Index one past this node's last descendant (its next sibling's index).
    end: usize,
}

#[derive(Debug, Clone, Copy)]
enum Text<'a> {
    Borrowed(&'a str),
    /// `arena[start..start + len]`.
    Arena(usize, usize),
}

const EMPTY: Text<'static> = Text::Borrowed("");

#[derive(Debug, Clone)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Text<'a>),
    Arr,
    Obj,
}

impl<'a> JsonEvent<'a> {
    /// Parses one JSON document (any JSON value; trailing text other than whitespace is an
    /// error). Nesting deeper than `serde_json`'s limit (128) is an error.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        let mut doc = JsonEvent {
            nodes: Vec::with_capacity(text.len() / 24 + 4),
            arena: String::new(),
        };
        let mut de = serde_json::Deserializer::from_str(text);
        Seed {
            doc: &mut doc,
            key: EMPTY,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(doc)
    }

    /// The same table for a document already parsed into a `serde_json::Value` (strings
    /// borrowed from it).
    pub fn from_value(value: &'a Json) -> Self {
        let mut doc = JsonEvent::default();
        doc.push_value(EMPTY, value);
        doc
    }

    fn push_value(&mut self, key: Text<'a>, v: &'a Json) {
        let value = match v {
            Json::Null => Val::Null,
            Json::Bool(b) => Val::Bool(*b),
            Json::Number(n) => Val::Num(n.clone()),
            Json::String(s) => Val::Str(Text::Borrowed(s)),
            Json::Array(items) => {
                let i = self.open(key, Val::Arr);
                for item in items {
                    self.push_value(EMPTY, item);
                }
                return self.close(i);
            }
            Json::Object(map) => {
                let i = self.open(key, Val::Obj);
                for (k, item) in map {
                    self.push_value(Text::Borrowed(k), item);
                }
                return self.close(i);
            }
        };
        self.open(key, value);
    }

    fn open(&mut self, key: Text<'a>, value: Val<'a>) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            key,
            value,
            end: i + 1,
        });
        i
    }

    fn close(&mut self, i: usize) {
        let end = self.nodes.len();
        self.nodes[i].end = end;
    }

    fn arena_text(&mut self, s: &str) -> Text<'a> {
        let start = self.arena.len();
        self.arena.push_str(s);
        Text::Arena(start, s.len())
    }

    fn text(&self, t: Text<'a>) -> &str {
        match t {
            Text::Borrowed(s) => s,
            Text::Arena(start, len) => self.arena.get(start..start + len).unwrap_or_default(),
        }
    }

    /// The root node (none for an empty table).
    pub(crate) fn root(&self) -> Option<usize> {
        (!self.nodes.is_empty()).then_some(0)
    }

    pub(crate) fn key(&self, i: usize) -> &str {
        self.text(self.nodes[i].key)
    }

    pub(crate) fn is_object(&self, i: usize) -> bool {
        matches!(self.nodes[i].value, Val::Obj)
    }

    /// The node's string, when it is one.
    pub(crate) fn as_str(&self, i: usize) -> Option<&str> {
        match self.nodes[i].value {
            Val::Str(t) => Some(self.text(t)),
            _ => None,
        }
    }

    /// The children of an array or object node (none for scalars), in document order.
    pub(crate) fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.nodes[i].end;
        let mut next = i + 1;
        std::iter::from_fn(move || {
            (next < end).then(|| {
                let c = next;
                next = self.nodes[c].end;
                c
            })
        })
    }

    /// Member `key` of object node `i` (the last one when the key is written twice).
    pub(crate) fn get(&self, i: usize, key: &str) -> Option<usize> {
        if !self.is_object(i) {
            return None;
        }
        self.children(i).filter(|&c| self.key(c) == key).last()
    }

    /// `{"Event": {"System": .., ..}}`: the `Event` node.
    pub(crate) fn windows_event(&self) -> Option<usize> {
        let event = self.get(self.root()?, "Event")?;
        self.get(event, "System").is_some().then_some(event)
    }

    /// A field of a Windows event, as [`Event::field`] resolves it for a `Value`.
    fn windows_field(&self, event: usize, name: &str) -> Option<usize> {
        if let Some(data) = self.get(event, "EventData").filter(|&d| self.is_object(d)) {
            if let Some(v) = self.get(data, name) {
                return Some(v);
            }
            let unspaced = self.children(data).find(|&c| {
                let k = self.key(c);
                k.contains(' ') && k.chars().filter(|c| *c != ' ').eq(name.chars())
            });
            if unspaced.is_some() {
                return unspaced;
            }
        }
        if let Some(user) = self.get(event, "UserData").filter(|&u| self.is_object(u))
            && let Some(v) = self.children(user).find_map(|inner| self.get(inner, name))
        {
            return Some(v);
        }
        let system = self.get(event, "System")?;
        if let Some(v) = self.get(system, name) {
            return Some(v);
        }
        self.system_attribute(system, name)
    }

    /// `Element_Attribute` of a Windows event's System: `Element.#attributes.Attribute`.
    pub(crate) fn system_attribute(&self, system: usize, name: &str) -> Option<usize> {
        let (element, attribute) = name.split_once('_')?;
        let element = self.get(system, element)?;
        self.get(self.get(element, "#attributes")?, attribute)
    }

    /// `name` under node `i`: as a whole key, then as a dotted path (array elements by index).
    pub(crate) fn lookup(&self, i: usize, name: &str) -> Option<usize> {
        if let Some(found) = self.get(i, name) {
            return Some(found);
        }
        let mut cur = i;
        for part in name.split('.') {
            cur = match self.nodes[cur].value {
                Val::Obj => self.get(cur, part)?,
                Val::Arr => self.children(cur).nth(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The engine's view of node `i`'s value.
    pub(crate) fn field_value(&self, i: usize) -> FieldValue<'_> {
        match &self.nodes[i].value {
            Val::Str(t) => FieldValue::Str(Cow::Borrowed(self.text(*t))),
            Val::Num(n) => match n.as_i64() {
                Some(i) => FieldValue::Int(i),
                None => n
                    .as_f64()
                    .map(FieldValue::Float)
                    .unwrap_or_else(|| FieldValue::Str(Cow::Owned(n.to_string()))),
            },
            Val::Bool(b) => FieldValue::Bool(*b),
            Val::Null => FieldValue::Null,
            Val::Arr => FieldValue::List(self.children(i).map(|c| self.field_value(c)).collect()),
            Val::Obj => match self.get(i, "#text") {
                Some(text) => self.field_value(text),
                None => FieldValue::Str(Cow::Owned(self.to_value(i).to_string())),
            },
        }
    }

    /// Node `i` as a `serde_json::Value` (for objects compared as text: rare).
    fn to_value(&self, i: usize) -> Json {
        match &self.nodes[i].value {
            Val::Null => Json::Null,
            Val::Bool(b) => Json::Bool(*b),
            Val::Num(n) => Json::Number(n.clone()),
            Val::Str(t) => Json::String(self.text(*t).to_string()),
            Val::Arr => Json::Array(self.children(i).map(|c| self.to_value(c)).collect()),
            Val::Obj => Json::Object(
                self.children(i)
                    .map(|c| (self.key(c).to_string(), self.to_value(c)))
                    .collect(),
            ),
        }
    }

    /// Calls `f` with each string a keyword search looks at (see [`Event::any_keyword`] for
    /// `Value`), until it returns `true`.
    pub(crate) fn keywords<'s>(&'s self, f: &mut dyn FnMut(Cow<'s, str>) -> bool) -> bool {
        let Some(root) = self.root() else {
            return false;
        };
        match self.windows_event() {
            Some(event) => self
                .children(event)
                .filter(|&c| matches!(self.key(c), "EventData" | "UserData"))
                .any(|c| self.walk(c, f)),
            None => match self
                .get(root, "event")
                .and_then(|e| self.get(e, "original"))
            {
                // A normalized event parsed from a text line (docs/EVENTS.md): the line as
                // written and its message, not what was added to it.
                Some(original) if self.as_str(original).is_some() => {
                    let message = self.get(root, "message").and_then(|m| self.as_str(m));
                    message.is_some_and(|m| f(Cow::Borrowed(m)))
                        || self.as_str(original).is_some_and(|o| f(Cow::Borrowed(o)))
                }
                _ => self.walk(root, f),
            },
        }
    }

    fn walk<'s>(&'s self, i: usize, f: &mut dyn FnMut(Cow<'s, str>) -> bool) -> bool {
        match &self.nodes[i].value {
            Val::Str(t) => f(Cow::Borrowed(self.text(*t))),
            Val::Num(n) => f(Cow::Owned(n.to_string())),
            // Every descendant, in document order (containers themselves have no text).
            Val::Arr | Val::Obj => (i + 1..self.nodes[i].end).any(|d| match &self.nodes[d].value {
                Val::Str(t) => f(Cow::Borrowed(self.text(*t))),
                Val::Num(n) => f(Cow::Owned(n.to_string())),
                _ => false,
            }),
            Val::Bool(_) | Val::Null => false,
        }
    }
}

impl Event for JsonEvent<'_> {
    fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        let found = match self.windows_event() {
            Some(event) => self.windows_field(event, name),
            None => None,
        };
        found
            .or_else(|| self.lookup(self.root()?, name))
            .map(|i| self.field_value(i))
    }

    fn any_keyword(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.keywords(&mut |s| f(&s))
    }

    fn as_json_event(&self) -> Option<&JsonEvent<'_>> {
        Some(self)
    }
}

/// Deserializes one value into the table.
struct Seed<'d, 'a> {
    doc: &'d mut JsonEvent<'a>,
    key: Text<'a>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.doc.open(self.key, Val::Bool(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.doc.open(self.key, Val::Num(v.into()));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.doc.open(self.key, Val::Num(v.into()));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // As `serde_json::Value`: a number that is not finite reads as null.
        let value = Number::from_f64(v).map_or(Val::Null, Val::Num);
        self.doc.open(self.key, value);
        Ok(())
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.doc.open(self.key, Val::Str(Text::Borrowed(v)));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        let t = self.doc.arena_text(v);
        self.doc.open(self.key, Val::Str(t));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.doc.open(self.key, Val::Null);
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.doc.open(self.key, Val::Null);
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let i = self.doc.open(self.key, Val::Arr);
        while seq
            .next_element_seed(Seed {
                doc: &mut *self.doc,
                key: EMPTY,
            })?
            .is_some()
        {}
        self.doc.close(i);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let i = self.doc.open(self.key, Val::Obj);
        while let Some(key) = map.next_key_seed(KeySeed {
            doc: &mut *self.doc,
        })? {
            map.next_value_seed(Seed {
                doc: &mut *self.doc,
                key,
            })?;
        }
        self.doc.close(i);
        Ok(())
    }
}

/// Deserializes a member name: borrowed from the text, or unescaped into the arena.
struct KeySeed<'d, 'a> {
    doc: &'d mut JsonEvent<'a>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, 'de> {
    type Value = Text<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, 'de> {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(self.doc.arena_text(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Field names and keyword texts agree with the `Value` implementation.
    fn same_as_value(v: &Json, names: &[&str]) {
        let text = v.to_string();
        let parsed = JsonEvent::parse(&text).unwrap();
        let walked = JsonEvent::from_value(v);
        for name in names {
            let want = v.field(name);
            assert_eq!(parsed.field(name), want, "{name} parsed");
            assert_eq!(walked.field(name), want, "{name} from value");
        }
        let collect = |e: &dyn Event| {
            let mut out = Vec::new();
            e.any_keyword(&mut |s| {
                out.push(s.to_string());
                false
            });
            out.sort();
            out
        };
        assert_eq!(collect(&parsed), collect(v));
        assert_eq!(collect(&walked), collect(v));
    }

    #[test]
    fn fields_and_keywords_agree_with_value() {
        let windows = json!({"Event": {
            "System": {
                "EventID": {"#text": "4688", "#attributes": {"Qualifiers": 0}},
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "Channel": "Security",
                "Computer": "host",
                "Level": 4
            },
            "EventData": {"NewProcessName": "C:\\x.exe \"quoted\" \u{e9}", "Computer": "data wins",
                "Source Name": "RTP", "List": [1, "two", null, 2.5, {"a": true}], "Obj": {"k": "v"},
                "Big": 18446744073709551615u64, "Neg": -3}
        }});
        same_as_value(
            &windows,
            &[
                "EventID",
                "Channel",
                "Computer",
                "Provider_Name",
                "SourceName",
                "Source Name",
                "List",
                "Obj",
                "Big",
                "Neg",
                "Level",
                "Missing",
                "Provider_Missing",
                "Event.System.Channel",
            ],
        );
        let user = json!({"Event": {"System": {"EventID": 1}, "UserData": {"X": {"Param": "p"}}}});
        same_as_value(&user, &["Param", "EventID"]);
        let plain =
            json!({"process": {"name": "cmd.exe", "pid": 4, "args": ["a", "b"]}, "a.b": true});
        same_as_value(
            &plain,
            &[
                "process.name",
                "process.pid",
                "process.args.1",
                "a.b",
                "process.nope",
                "process",
            ],
        );
        let line =
            json!({"event": {"original": "raw line"}, "message": "msg", "host": {"name": "h"}});
        same_as_value(&line, &["host.name", "message"]);
        same_as_value(&json!("just a string"), &["x"]);
        same_as_value(&json!([1, {"a": "b"}]), &["0", "1.a"]);
    }

    #[test]
    fn escaped_strings_and_keys_are_unescaped() {
        let text = r#"{"Event":{"System":{"EventID":1},"EventData":{"Im\u0061ge":"C:\\Windows\\x.exe","Tab":"a\tb"}}}"#;
        let e = JsonEvent::parse(text).unwrap();
        assert_eq!(
            e.field("Image"),
            Some(FieldValue::Str("C:\\Windows\\x.exe".into()))
        );
        assert_eq!(e.field("Tab"), Some(FieldValue::Str("a\tb".into())));
    }

    #[test]
    fn duplicate_keys_read_as_their_last_value() {
        let e = JsonEvent::parse(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(e.field("a"), Some(FieldValue::Int(3)));
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        for bad in ["", "{", "{\"a\":}", "[1,]", "{} x", "\"\\ud800\"", "nul"] {
            assert!(JsonEvent::parse(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(JsonEvent::parse(&deep).is_err());
    }
}
