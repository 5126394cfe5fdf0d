//! Bytes as a `.json` input of `vigil hunt`: one event, a streamed array of events, or values
//! back to back. Deep nesting, truncation and garbage are errors, never panics; every event
//! read is run through the built-in rules.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_detect::{PipelineSet, Ruleset, builtin_rules};
use vigil_hunt::{InputKind, parse_event_time, read_events_from_bytes};

fn ruleset() -> &'static Ruleset {
    static R: OnceLock<Ruleset> = OnceLock::new();
    R.get_or_init(|| builtin_rules().into_ruleset_with(&PipelineSet::builtin().expect("pipelines")))
}

fuzz_target!(|data: &[u8]| {
    let rules = ruleset();
    let mut errors = Vec::new();
    read_events_from_bytes(
        Path::new("fuzz.json"),
        InputKind::Json,
        data,
        &mut |_, event| {
            let _ = rules.matches(event.event()).count();
            let _ = event.time().as_deref().and_then(parse_event_time);
            let _ = event.one_line();
        },
        &mut errors,
    );
});
