//! Property tests of the codecs: the framer and the Loki push encoding.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vigil_parse::loki::{
    LokiEntry, LokiStream, decode_push, encode_push_protobuf, format_labels, parse_labels,
};
use vigil_parse::syslog::Framer;
use vigil_parse::{Format, LineContext, parse_line};

use crate::auth_templates::{FRAGMENTS, TEMPLATES, check, line};

/// Attacker text: pieces imitating the formats' fixed parts between plain words.
fn attacker_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => "[a-z0-9 .:]{0,6}",
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

fn frame() -> impl Strategy<Value = Vec<u8>> {
    // A syslog frame: starts with `<`, no LF inside (LF framing could not carry it).
    proptest::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..80)
        .prop_map(|body| [b"<13>".to_vec(), body].concat())
        .prop_filter("no trailing CR", |f| f.last() != Some(&b'\r'))
}

proptest! {
    #[test]
    fn framer_output_does_not_depend_on_how_the_stream_is_cut(
        frames in proptest::collection::vec((frame(), any::<bool>()), 0..12),
        cut in 1usize..40,
    ) {
        let mut stream = Vec::new();
        for (f, counted) in &frames {
            if *counted {
                stream.extend_from_slice(format!("{} ", f.len()).as_bytes());
                stream.extend_from_slice(f);
            } else {
                stream.extend_from_slice(f);
                stream.push(b'\n');
            }
        }
        let mut framer = Framer::new(1024);
        let mut out = Vec::new();
        for chunk in stream.chunks(cut) {
            framer.push(chunk);
            while let Some(f) = framer.next_frame() {
                out.push(f.unwrap());
            }
        }
        while let Some(f) = framer.finish() {
            out.push(f.unwrap());
        }
        let want: Vec<Vec<u8>> = frames.into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(out, want);
    }

    #[test]
    fn loki_protobuf_round_trips(
        labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", ".{0,12}", 1..4),
        entries in proptest::collection::vec(
            (0i64..4_000_000_000, 0u32..1_000_000_000, ".{0,40}",
             proptest::collection::btree_map("[a-z_]{1,6}", ".{0,6}", 0..3)),
            0..5,
        ),
    ) {
        let stream = LokiStream {
            labels,
            entries: entries
                .into_iter()
                .map(|(s, n, line, structured_metadata)| LokiEntry {
                    timestamp: chrono::DateTime::from_timestamp(s, n).unwrap(),
                    line,
                    structured_metadata,
                })
                .collect(),
        };
        let body = encode_push_protobuf(std::slice::from_ref(&stream));
        let back = decode_push(&body, Some("application/x-protobuf"), None, 1 << 20).unwrap();
        prop_assert_eq!(back, vec![stream]);
    }

    #[test]
    fn label_sets_round_trip_through_their_text(
        labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", any::<String>(), 1..4),
    ) {
        let text = format_labels(&labels);
        prop_assert_eq!(parse_labels(&text).unwrap(), labels);
    }

    #[test]
    fn attacker_text_in_an_auth_format_never_supplies_the_address(
        template in proptest::sample::select(TEMPLATES),
        slots in proptest::collection::vec(attacker_text(), 3),
    ) {
        let (program, message) = template;
        let text = line(program, message, &slots);
        let ctx = LineContext::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap())
            .with_format(Format::Auth);
        let event = parse_line(&text, &ctx);
        if let Err(why) = check(&event) {
            prop_assert!(false, "{why} from {text}");
        }
    }

    #[test]
    fn any_line_becomes_an_event_with_a_time(line in any::<String>()) {
        let ctx = LineContext::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let event = parse_line(&line, &ctx);
        prop_assert!(event.is_object());
        prop_assert!(event.get("@timestamp").and_then(|t| t.as_str()).is_some());
    }
}

#[test]
fn labels_are_sorted_and_quoted_like_promtail() {
    let labels = BTreeMap::from([
        ("job".to_owned(), "varlogs".to_owned()),
        ("host".to_owned(), "a \"b\"".to_owned()),
    ]);
    assert_eq!(format_labels(&labels), r#"{host="a \"b\"", job="varlogs"}"#);
}
