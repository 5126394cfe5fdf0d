//! vigil-detect integration tests: one binary, one module per area.

mod builtin;
mod conditions;
mod correlation;
mod differential;
mod filters;
mod loading;
mod modifiers;
mod pipelines;
mod rsigma_event;
mod shared_data;

use serde_json::Value;
use vigil_detect::{CompileOptions, CompiledRule};

/// Compiles a rule whose detection is `detection` (YAML, indented by 4).
pub fn rule(detection: &str) -> CompiledRule {
    try_rule(detection).unwrap_or_else(|e| panic!("rule does not compile: {e}"))
}

pub fn try_rule(detection: &str) -> vigil_detect::Result<CompiledRule> {
    try_rule_with(detection, &CompileOptions::default())
}

pub fn try_rule_with(detection: &str, opts: &CompileOptions) -> vigil_detect::Result<CompiledRule> {
    let text = format!(
        "title: Test rule\nid: 00000000-0000-4000-8000-000000000000\nlogsource:\n    product: test\ndetection:\n{detection}"
    );
    CompiledRule::from_yaml(&text, opts)
}

/// Asserts the rule matches each of `positives` and none of `negatives`.
pub fn check(rule: &CompiledRule, positives: &[Value], negatives: &[Value]) {
    for e in positives {
        assert!(rule.is_match(e), "should match: {e}");
    }
    for e in negatives {
        assert!(!rule.is_match(e), "should not match: {e}");
    }
}
