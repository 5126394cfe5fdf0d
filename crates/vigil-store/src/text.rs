//! Stored text that holds control characters: the search text derived from it, and how
//! PostgreSQL keeps U+0000.
//!
//! * Search (`q`) compares against a *search text*: the stored text with every run of
//!   control characters replaced by one space. SQLite's `LIKE` stops at a NUL in either
//!   operand (a title `"x\0mimikatz"` was not found by `mimikatz`, and a pattern with a
//!   NUL matched everything), so the search text has none. It is stored in its own
//!   column only for the texts that need it (see [`search_text`]); every other row is
//!   searched on the text itself, so ordinary events cost nothing extra.
//! * PostgreSQL's `text` and `jsonb` cannot hold U+0000 at all (the row, and with it a
//!   whole ingest batch, was refused). There the stored text is escaped reversibly with
//!   the private-use character U+E000: `U+E000` → `U+E000 U+E000`, `U+0000` →
//!   `U+E000 '0'`. Reads decode it, so the API returns the text exactly as it was sent
//!   on both backends. SQLite stores the text as it is.

use std::borrow::Cow;

/// The escape character of PostgreSQL's NUL encoding.
pub(crate) const ESC: char = '\u{E000}';

/// The search text of `s` when it differs from `s`'s stored form: `s` with each run of
/// control characters (C0, DEL, C1) replaced by one space. `None` when `s` has no control
/// character and no U+E000 (which PostgreSQL's stored form doubles): then `s` itself, as
/// stored, is searched.
pub(crate) fn search_text(s: &str) -> Option<String> {
    if !s.chars().any(|c| c.is_control() || c == ESC) {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c.is_control() {
            if !in_run {
                out.push(' ');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    Some(out)
}

/// `s` in PostgreSQL's stored form (U+0000 and U+E000 escaped).
pub(crate) fn encode_nul(s: &str) -> Cow<'_, str> {
    if !s.contains(['\0', ESC]) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0' => {
                out.push(ESC);
                out.push('0');
            }
            ESC => {
                out.push(ESC);
                out.push(ESC);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text [`encode_nul`] was given.
pub(crate) fn decode_nul(s: String) -> String {
    if !s.contains(ESC) {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != ESC {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(ESC) => out.push(ESC),
            // Not written by `encode_nul`; kept as it is.
            Some(other) => {
                out.push(ESC);
                out.push(other);
            }
            None => out.push(ESC),
        }
    }
    out
}

/// A JSON document's text with the strings in it (keys and values) in PostgreSQL's
/// stored form. Works on the text: in valid JSON a backslash only starts an escape inside a
/// string and U+E000 only occurs inside strings, so escapes are read as units and nothing
/// else needs to be understood.
pub(crate) fn encode_json_nul(json: &str) -> Cow<'_, str> {
    if !json.contains('\\') && !json.contains(ESC) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    let mut rest = json;
    while let Some(i) = rest.find(['\\', ESC]) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix(ESC) {
            out.push(ESC);
            out.push(ESC);
            rest = after;
            continue;
        }
        // A backslash escape: `\uXXXX` (six bytes) or a two-byte one.
        let unit = if rest.as_bytes().get(1) == Some(&b'u') {
            6
        } else {
            2
        };
        let unit = rest.get(..unit).unwrap_or(rest);
        match unit.get(2..).map(|h| u32::from_str_radix(h, 16)) {
            Some(Ok(0)) if unit.len() == 6 => {
                out.push(ESC);
                out.push('0');
            }
            Some(Ok(0xE000)) if unit.len() == 6 => {
                out.push(ESC);
                out.push(ESC);
            }
            _ => out.push_str(unit),
        }
        rest = &rest[unit.len()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Decodes every string (keys and values) of a document read from PostgreSQL.
pub(crate) fn decode_json_nul(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) if s.contains(ESC) => *s = decode_nul(std::mem::take(s)),
        Value::Array(items) => items.iter_mut().for_each(decode_json_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains(ESC)) {
                let old = std::mem::take(map);
                for (k, mut item) in old {
                    decode_json_nul(&mut item);
                    map.insert(decode_nul(k), item);
                }
            } else {
                map.values_mut().for_each(decode_json_nul);
            }
        }
        _ => {}
    }
}

/// Encodes every string (keys and values) of a document to write to PostgreSQL.
pub(crate) fn encode_json_value_nul(v: &serde_json::Value) -> Cow<'_, serde_json::Value> {
    fn needs(v: &serde_json::Value) -> bool {
        use serde_json::Value;
        match v {
            Value::String(s) => s.contains(['\0', ESC]),
            Value::Array(items) => items.iter().any(needs),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains(['\0', ESC]) || needs(v)),
            _ => false,
        }
    }
    fn encode(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(encode_nul(s).into_owned()),
            Value::Array(items) => Value::Array(items.iter().map(encode).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (encode_nul(k).into_owned(), encode(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if needs(v) {
        Cow::Owned(encode(v))
    } else {
        Cow::Borrowed(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_text_turns_control_runs_into_one_space() {
        assert_eq!(search_text("plain text"), None);
        assert_eq!(
            search_text("x\0mimikatz dump").as_deref(),
            Some("x mimikatz dump")
        );
        assert_eq!(
            search_text("a\r\nb\u{1}\u{1b}[0mc\u{85}").as_deref(),
            Some("a b [0mc ")
        );
        assert_eq!(search_text("p\u{E000}q").as_deref(), Some("p\u{E000}q"));
    }

    #[test]
    fn nul_encoding_round_trips() {
        for s in [
            "",
            "plain",
            "\0",
            "a\0b",
            "\u{E000}",
            "\u{E000}0",
            "\0\u{E000}\0",
            "é\u{E000}\u{E000}0\0",
        ] {
            let enc = encode_nul(s);
            assert!(!enc.contains('\0'), "{s:?} -> {enc:?}");
            assert_eq!(decode_nul(enc.into_owned()), s);
        }
        assert!(matches!(encode_nul("plain"), Cow::Borrowed(_)));
    }

    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }

    #[test]
    fn json_text_encoding_matches_the_value_encoding() {
        for v in [
            json!({"message": "x\u{0}mimikatz", "k\u{0}": ["\u{E000}", "\\u0000", "a\\\u{0}"]}),
            json!({"plain": "text \\ with \" escapes \n", "n": 1}),
            json!(["\u{E000}0", "\u{1}", {"\u{E000}": null}]),
        ] {
            let text = serde_json::to_string(&v).unwrap();
            let encoded = encode_json_nul(&text);
            // The same as encoding the strings one by one, so no NUL is left in any.
            let mut back: serde_json::Value = serde_json::from_str(&encoded).unwrap();
            assert_eq!(back, *encode_json_value_nul(&v));
            assert!(!has_nul(&back), "{encoded}");
            decode_json_nul(&mut back);
            assert_eq!(back, v);
        }
        // Escapes written by other producers are read too.
        let mut v: serde_json::Value =
            serde_json::from_str(&encode_json_nul(r#"["a\u0000b","\uE000","\ue000"]"#)).unwrap();
        decode_json_nul(&mut v);
        assert_eq!(v, json!(["a\u{0}b", "\u{E000}", "\u{E000}"]));
    }
}
