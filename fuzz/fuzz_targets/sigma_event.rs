//! An event from the network (any JSON) against the built-in rule pack with the built-in
//! pipelines: field lookup and matching must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_detect::{PipelineSet, Ruleset, builtin_rules};

fn rules() -> &'static Ruleset {
    static R: OnceLock<Ruleset> = OnceLock::new();
    R.get_or_init(|| builtin_rules().into_ruleset_with(&PipelineSet::builtin().expect("built-in pipelines load")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = rules().matches(&event).count();
});
