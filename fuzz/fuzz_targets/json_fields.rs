//! A field-by-field differential check of vigil-detect's JSON parser (stronger than
//! `json_event`'s acceptance and rule matches): every field name derivable from the document
//! (whole keys, dotted paths, array indexes, Windows names such as `Element_Attribute` and
//! names with their spaces dropped) must resolve to the same value through
//! `JsonEvent::parse` as through a `serde_json::Value` (when no key is written twice, where a
//! `Value` keeps one), also on a second parse that reuses the first's buffers and through
//! `JsonEvent::from_value`; keyword strings must agree (a superset with duplicate keys).
#![no_main]

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use vigil_detect::{Event, JsonEvent};

/// Deserializes any JSON, failing on a duplicate key in any object.
struct NoDup;
impl<'de> Deserialize<'de> for NoDup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NoDup;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result { f.write_str("json") }
            fn visit_bool<E>(self, _: bool) -> Result<NoDup, E> { Ok(NoDup) }
            fn visit_i64<E>(self, _: i64) -> Result<NoDup, E> { Ok(NoDup) }
            fn visit_u64<E>(self, _: u64) -> Result<NoDup, E> { Ok(NoDup) }
            fn visit_f64<E>(self, _: f64) -> Result<NoDup, E> { Ok(NoDup) }
            fn visit_str<E>(self, _: &str) -> Result<NoDup, E> { Ok(NoDup) }
            fn visit_unit<E>(self) -> Result<NoDup, E> { Ok(NoDup) }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<NoDup, A::Error> {
                while a.next_element::<NoDup>()?.is_some() {}
                Ok(NoDup)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<NoDup, A::Error> {
                let mut seen = HashSet::new();
                while let Some(k) = a.next_key::<String>()? {
                    if !seen.insert(k) { return Err(de::Error::custom("dup")); }
                    a.next_value::<NoDup>()?;
                }
                Ok(NoDup)
            }
        }
        d.deserialize_any(V)
    }
}

fn names(v: &Value, prefix: &str, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 6 || out.len() > 400 { return; }
    match v {
        Value::Object(m) => for (k, c) in m {
            out.insert(k.clone());
            out.insert(k.replace(' ', ""));
            let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            out.insert(p.clone());
            if let Value::Object(cm) = c {
                if let Some(Value::Object(attrs)) = cm.get("#attributes") {
                    for a in attrs.keys() { out.insert(format!("{k}_{a}")); }
                }
            }
            names(c, &p, out, depth + 1);
        },
        Value::Array(items) => for (i, c) in items.iter().enumerate().take(20) {
            let p = if prefix.is_empty() { i.to_string() } else { format!("{prefix}.{i}") };
            out.insert(p.clone());
            names(c, &p, out, depth + 1);
        },
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // serde_json's `raw_value` feature (on through axum and sqlx) reads this key as a private
    // marker, not as JSON: no parser of JSON should imitate that.
    if text.contains("$serde_json::private::") {
        return;
    }
    let ours = JsonEvent::parse(text);
    let theirs = serde_json::from_str::<Value>(text);
    assert_eq!(ours.is_ok(), theirs.is_ok(), "acceptance differs for {text:?}: {:?} vs {:?}", ours.as_ref().err(), theirs.as_ref().err());
    let (Ok(ours), Ok(value)) = (ours, theirs) else { return };
    // A second parse while the first is alive, and one from the value (spare-buffer reuse).
    let again = JsonEvent::parse(text).expect("parses twice");
    let walked = JsonEvent::from_value(&value);
    let nodup = serde_json::from_str::<NoDup>(text).is_ok();
    // With a key written twice a `Value` holds one of its values, the table both.
    let strict = nodup;
    let mut set = BTreeSet::new();
    names(&value, "", &mut set, 0);
    for extra in ["", ".", "0", "Event", "EventID", "Provider_Name", "Image", "message", "event.original", "X", "SourceName"] {
        set.insert(extra.to_string());
    }
    for name in &set {
        let want = value.field(name);
        let got = ours.field(name);
        if strict {
            assert_eq!(got, want, "field {name:?} differs for {text:?}");
        }
        assert_eq!(again.field(name), got, "second parse differs for field {name:?}");
        if strict {
            assert_eq!(walked.field(name), want, "from_value field {name:?} differs for {text:?}");
        }
    }
    let collect = |e: &dyn Event| {
        let mut v = Vec::new();
        e.any_keyword(&mut |s| { v.push(s.to_string()); false });
        v
    };
    let mut a = collect(&ours);
    let mut b = collect(&value);
    a.sort();
    b.sort();
    if nodup {
        assert_eq!(a, b, "keywords differ for {text:?}");
    } else {
        for s in &b { assert!(a.contains(s), "keyword {s:?} missing for {text:?}"); }
    }
});
