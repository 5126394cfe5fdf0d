//! Loki push bodies as real senders produce them, byte for byte.

use vigil_parse::loki::{decode_push, encode_push_protobuf, to_events};

/// A Promtail-style push built by hand from the wire format (protobuf field numbers of
/// `logproto.PushRequest`), so the decoder is checked against the format and not only
/// against this crate's own encoder.
#[test]
fn hand_built_protobuf_push_decodes() {
    fn field(tag: u8, wire: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3) | wire];
        if wire == 2 {
            let mut len = payload.len();
            loop {
                let b = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
        }
        out.extend_from_slice(payload);
        out
    }
    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }
    let timestamp = [
        vec![0x08],
        varint(1_700_000_000),
        vec![0x10],
        varint(123_000_000),
    ]
    .concat();
    let meta = [field(1, 2, b"trace_id"), field(2, 2, b"t-1")].concat();
    let entry = [
        field(1, 2, &timestamp),
        field(2, 2, b"hello from promtail"),
        field(3, 2, &meta),
    ]
    .concat();
    let stream = [
        field(1, 2, br#"{host="web-1", job="varlogs"}"#),
        field(2, 2, &entry),
    ]
    .concat();
    let request = field(1, 2, &stream);
    let body = snap::raw::Encoder::new().compress_vec(&request).unwrap();

    let streams = decode_push(&body, Some("application/x-protobuf"), None, 1 << 20).unwrap();
    assert_eq!(streams.len(), 1);
    let s = &streams[0];
    assert_eq!(s.labels["host"], "web-1");
    assert_eq!(s.labels["job"], "varlogs");
    assert_eq!(s.entries[0].line, "hello from promtail");
    assert_eq!(
        s.entries[0].timestamp,
        "2023-11-14T22:13:20.123Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(s.entries[0].structured_metadata["trace_id"], "t-1");
    // Our encoder produces a body the decoder reads back the same.
    let again = decode_push(&encode_push_protobuf(&streams), None, None, 1 << 20).unwrap();
    assert_eq!(again, streams);
    let event = to_events(s).next().unwrap();
    assert_eq!(event["host"]["name"], "web-1");
    assert_eq!(event["message"], "hello from promtail");
    assert_eq!(event["@timestamp"], "2023-11-14T22:13:20.123000Z");
}
