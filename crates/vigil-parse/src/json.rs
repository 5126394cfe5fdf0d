//! JSON lines: an object is kept as it is; `@timestamp` is added from the first of
//! `@timestamp`, `timestamp`, `time`, `ts` that holds a time (RFC 3339, `YYYY-MM-DD
//! HH:MM:SS`, or seconds / milliseconds / microseconds / nanoseconds since the epoch),
//! else the receive time.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value as Json;
use vigil_core::event;

use crate::{LineContext, epoch_time};

/// The keys a time is looked for under, in order.
pub(crate) const TIME_KEYS: [&str; 4] = ["@timestamp", "timestamp", "time", "ts"];

/// A JSON object line with `@timestamp` set; None when the line is not a JSON object.
pub(crate) fn parse(line: &str, ctx: &LineContext) -> Option<Json> {
    let value: Json = serde_json::from_str(line.trim()).ok()?;
    value
        .is_object()
        .then(|| with_timestamp(value, ctx.received))
}

/// Sets `@timestamp` (normalized) from the object's own time keys, or `received`.
pub(crate) fn with_timestamp(mut value: Json, received: DateTime<Utc>) -> Json {
    if !value.is_object() {
        return value;
    }
    let found = TIME_KEYS
        .iter()
        .find_map(|k| event::get(&value, k).and_then(time_of));
    match found {
        Some(t) => value["@timestamp"] = event::format_timestamp(t).into(),
        None if event::get(&value, "@timestamp").is_none() => {
            value["@timestamp"] = event::format_timestamp(received).into();
        }
        // An `@timestamp` that is no time is the sender's business: keep it.
        None => {}
    }
    value
}

/// A JSON value as a time.
pub(crate) fn time_of(v: &Json) -> Option<DateTime<Utc>> {
    match v {
        Json::String(s) => {
            let s = s.trim();
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                        .iter()
                        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                        .map(|n| n.and_utc())
                })
                .or_else(|| s.parse::<i64>().ok().and_then(epoch_int))
                .or_else(|| s.parse::<f64>().ok().and_then(epoch))
        }
        Json::Number(n) => n
            .as_i64()
            .map_or_else(|| n.as_f64().and_then(epoch), epoch_int),
        _ => None,
    }
}

/// Whole seconds, milliseconds, microseconds or nanoseconds since the epoch, by magnitude.
fn epoch_int(n: i64) -> Option<DateTime<Utc>> {
    if n < 0 {
        return None;
    }
    let (unit, per_sec) = if n >= 100_000_000_000_000_000 {
        (1, 1_000_000_000)
    } else if n >= 100_000_000_000_000 {
        (1_000, 1_000_000)
    } else if n >= 100_000_000_000 {
        (1_000_000, 1_000)
    } else {
        (1_000_000_000, 1)
    };
    epoch_time(n / per_sec, ((n % per_sec) * unit) as u32)
}

/// Seconds, milliseconds, microseconds or nanoseconds since the epoch, by magnitude.
fn epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = if n >= 1e17 {
        n / 1e9
    } else if n >= 1e14 {
        n / 1e6
    } else if n >= 1e11 {
        n / 1e3
    } else {
        n
    };
    let whole = secs.trunc();
    epoch_time(
        whole as i64,
        ((secs - whole) * 1e9).round().min(999_999_999.0) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_line;
    use serde_json::json;

    fn p(s: &str) -> Json {
        parse_line(
            s,
            &LineContext::new("2026-11-23T12:00:00Z".parse().unwrap()),
        )
    }

    #[test]
    fn objects_are_kept_with_a_timestamp() {
        let e =
            p(r#"{"event":{"dataset":"app"},"message":"hi","time":"2026-11-20T08:00:00+01:00"}"#);
        assert_eq!(e["@timestamp"], "2026-11-20T07:00:00.000000Z");
        assert_eq!(e["time"], "2026-11-20T08:00:00+01:00");
        assert_eq!(e["event"]["dataset"], "app");
        assert!(e["event"].get("original").is_none());
        let e = p(r#"{"ts": 1700000000.5}"#);
        assert_eq!(e["@timestamp"], "2023-11-14T22:13:20.500000Z");
        let e = p(r#"{"timestamp": 1700000000123}"#);
        assert_eq!(e["@timestamp"], "2023-11-14T22:13:20.123000Z");
        let e = p(r#"{"a": 1}"#);
        assert_eq!(e["@timestamp"], "2026-11-23T12:00:00.000000Z");
        assert_eq!(e["a"], 1);
        let e = p(r#"{"timestamp": "2026-01-02 03:04:05"}"#);
        assert_eq!(e["@timestamp"], "2026-01-02T03:04:05.000000Z");
    }

    #[test]
    fn non_objects_and_broken_json_are_raw_text() {
        let e = p("[1,2]");
        assert_eq!(e["event"]["dataset"], "raw");
        let e = p(r#"{"broken": "#);
        assert_eq!(e["event"]["dataset"], "raw");
        assert_eq!(e["message"], r#"{"broken": "#);
        assert_eq!(with_timestamp(json!(3), Utc::now()), json!(3));
    }
}
