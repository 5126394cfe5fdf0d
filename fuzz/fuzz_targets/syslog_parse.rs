//! Syslog datagrams and TCP streams: `syslog::parse`, `to_event` and the RFC 6587 framer
//! never panic, whatever the bytes; frames never exceed the framer's limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_parse::syslog::{self, Framer};

fuzz_target!(|data: &[u8]| {
    let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    if let Ok(msg) = syslog::parse(data, received) {
        let _ = syslog::to_event(&msg);
    }
    // The same bytes as a TCP stream, pushed in uneven pieces.
    let max = 64;
    let mut framer = Framer::new(max);
    for chunk in data.chunks(7) {
        framer.push(chunk);
        while let Some(frame) = framer.next_frame() {
            if let Ok(frame) = frame {
                assert!(frame.len() <= max);
                let _ = syslog::parse(&frame, received);
            }
        }
    }
    while let Some(frame) = framer.finish() {
        if let Ok(frame) = frame {
            assert!(frame.len() <= max);
        }
    }
});
