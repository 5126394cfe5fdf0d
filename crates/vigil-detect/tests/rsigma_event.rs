//! Our events as rsigma-eval sees them, for the differential test and the benchmark.
//!
//! rsigma-eval's `JsonEvent` only looks fields up by (dotted) path, while ours also resolves
//! Windows events (`Event.EventData`, `Event.System`, `#text`, attributes). Neither engine has
//! logsource pipelines here, so rsigma-eval is given our field resolution through this adapter:
//! both engines then see exactly the same field values, and any disagreement is about matching.

use std::borrow::Cow;

use rsigma_eval::event::{Event as RsEvent, EventValue};
use serde_json::Value;
use vigil_detect::{Event, FieldValue};

/// A JSON event exposed to rsigma-eval through [`vigil_detect::Event`].
pub struct Shared<'a>(pub &'a Value);

fn convert(v: FieldValue<'_>) -> EventValue<'_> {
    match v {
        FieldValue::Str(s) => EventValue::Str(s),
        FieldValue::Int(i) => EventValue::Int(i),
        FieldValue::Float(f) => EventValue::Float(f),
        FieldValue::Bool(b) => EventValue::Bool(b),
        FieldValue::Null => EventValue::Null,
        FieldValue::List(items) => EventValue::Array(items.into_iter().map(convert).collect()),
    }
}

impl RsEvent for Shared<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.0.field(path).map(convert)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.0.any_keyword(&mut |s| pred(s))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.0.any_keyword(&mut |s| {
            out.push(Cow::Owned(s.to_string()));
            false
        });
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.0.any_keyword(&mut |s| {
            visit(s);
            false
        });
    }

    fn to_json(&self) -> Value {
        self.0.clone()
    }
}
