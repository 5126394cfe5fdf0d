//! Any bytes as an event's JSON text through vigil-detect's own JSON parser (`JsonEvent`):
//! it must accept exactly what serde_json accepts, never panic, and an accepted event must
//! meet the built-in rules (with the built-in pipelines) exactly as its `serde_json::Value`
//! does.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_detect::{JsonEvent, PipelineSet, Ruleset, builtin_rules};

fn rules() -> &'static Ruleset {
    static R: OnceLock<Ruleset> = OnceLock::new();
    R.get_or_init(|| builtin_rules().into_ruleset_with(&PipelineSet::builtin().expect("built-in pipelines load")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // serde_json's `raw_value` feature (on through axum and sqlx) reads this key as a private
    // marker, not as JSON: no parser of JSON should imitate that.
    if text.contains("$serde_json::private::") {
        return;
    }
    let ours = JsonEvent::parse(text);
    let theirs = serde_json::from_str::<serde_json::Value>(text);
    assert_eq!(ours.is_ok(), theirs.is_ok(), "acceptance differs for {text:?}");
    if let (Ok(ours), Ok(value)) = (ours, theirs) {
        let a: Vec<String> = rules().matches(&ours).map(|r| r.rule().name()).collect();
        let b: Vec<String> = rules().matches(&value).map(|r| r.rule().name()).collect();
        assert_eq!(a, b, "matches differ for {text:?}");
    }
});
