//! Bytes as a Windows `.evtx` file, the way `vigil hunt` reads one (the `evtx` crate, one
//! thread): a damaged header, chunk or record is an error, never a panic or a hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil_hunt::{InputKind, read_events_from_bytes};

fuzz_target!(|data: &[u8]| {
    let mut events = 0u64;
    let mut errors = Vec::new();
    read_events_from_bytes(
        Path::new("fuzz.evtx"),
        InputKind::Evtx,
        data,
        &mut |_, _| events += 1,
        &mut errors,
    );
    for e in &errors {
        let _ = e.to_string();
    }
});
