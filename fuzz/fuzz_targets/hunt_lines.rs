//! Bytes as a `.jsonl` and as a text log input of `vigil hunt` (lines through
//! `vigil_parse::parse_line`): bad lines are errors, never panics; events go through the
//! built-in rules.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_detect::{PipelineSet, Ruleset, builtin_rules};
use vigil_hunt::{InputKind, read_events_from_bytes};

fn ruleset() -> &'static Ruleset {
    static R: OnceLock<Ruleset> = OnceLock::new();
    R.get_or_init(|| builtin_rules().into_ruleset_with(&PipelineSet::builtin().expect("pipelines")))
}

fuzz_target!(|data: &[u8]| {
    let rules = ruleset();
    for (name, kind) in [("fuzz.jsonl", InputKind::JsonLines), ("auth.log", InputKind::Text)] {
        let mut errors = Vec::new();
        read_events_from_bytes(
            Path::new(name),
            kind,
            data,
            &mut |_, event| {
                let _ = rules.matches(event.event()).count();
            },
            &mut errors,
        );
    }
});
