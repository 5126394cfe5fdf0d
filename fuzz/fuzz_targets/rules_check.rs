//! A rule file from anywhere through `vigil rules lint` and `vigil rules test`: metadata
//! lints, duplicate ids, pipeline mapping and the `x-vigil-tests` events and sequences must
//! never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_detect::PipelineSet;
use vigil_hunt::rules::{self, RuleSource};

fn pipelines() -> &'static PipelineSet {
    static P: OnceLock<PipelineSet> = OnceLock::new();
    P.get_or_init(|| PipelineSet::builtin().expect("built-in pipelines load"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sources = vec![RuleSource::new("fuzz.yml", text)];
    let lint = rules::lint(&sources, &[], pipelines());
    for f in &lint.findings {
        let _ = f.to_string();
    }
    let _ = rules::test(&sources, &[], pipelines());
});
