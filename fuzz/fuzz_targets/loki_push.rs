//! `loki::decode_push` with each content type and encoding never panics and never returns
//! more than the bound allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_parse::loki::{decode_push, to_events};

fuzz_target!(|data: &[u8]| {
    let max = 1 << 16;
    for (ct, ce) in [
        (Some("application/x-protobuf"), None),
        (None, Some("snappy")),
        (Some("application/json"), None),
        (Some("application/json"), Some("gzip")),
        (Some("application/x-protobuf"), Some("gzip")),
        (Some("application/json"), Some("deflate")),
    ] {
        if let Ok(streams) = decode_push(data, ct, ce, max) {
            let bytes: usize = streams
                .iter()
                .flat_map(|s| &s.entries)
                .map(|e| e.line.len())
                .sum();
            assert!(bytes <= max);
            for s in streams.iter().take(4) {
                for event in to_events(s).take(16) {
                    assert!(event.is_object());
                }
            }
        }
    }
});
