//! A Sigma rule file (YAML, possibly multi-document) from anywhere: loading, compiling and
//! evaluating it against a few fixed events must never panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_detect::{CompileOptions, PipelineSet, load_sources};

fn events() -> &'static [serde_json::Value] {
    static E: OnceLock<Vec<serde_json::Value>> = OnceLock::new();
    E.get_or_init(|| {
        vec![
            serde_json::json!({"Event": {"System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational"},
                "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd /c whoami", "ParentImage": "C:\\x.exe"}}}),
            serde_json::json!({"event": {"category": "process"}, "process": {"executable": "/bin/bash", "command_line": "bash -i"},
                "source": {"ip": "10.1.2.3"}, "destination": {"port": 22}, "message": "Failed password for root"}),
        ]
    })
}

fn pipelines() -> &'static PipelineSet {
    static P: OnceLock<PipelineSet> = OnceLock::new();
    P.get_or_init(|| PipelineSet::builtin().expect("built-in pipelines load"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let report = load_sources([(Path::new("fuzz.yml"), text)], &CompileOptions::default());
    let _ = report.correlation_engine();
    let rules = report.into_ruleset_with(pipelines());
    for e in events() {
        let _ = rules.matches(e).count();
    }
});
