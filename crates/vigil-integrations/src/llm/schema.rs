//! The analysis a model must return, its JSON schema (sent as Ollama's `format` and
//! OpenAI's `response_format`), and validation that parses the model's text into it.

use serde::{Deserialize, Serialize};
use vigil_core::{AttackTechniqueId, Severity};

/// The model's judgement of what the events or the alert show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    TruePositive,
    FalsePositive,
    NeedsInvestigation,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::TruePositive => "true_positive",
            Verdict::FalsePositive => "false_positive",
            Verdict::NeedsInvestigation => "needs_investigation",
        }
    }
}

/// Kinds of entity an analysis may name.
pub const ENTITY_KINDS: &[&str] = &[
    "host", "user", "ip", "process", "file", "domain", "url", "hash", "other",
];

/// Something the analysis names: a host, a user, an address...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    /// One of [`ENTITY_KINDS`].
    pub kind: String,
    pub value: String,
}

/// A validated analysis. Every value went through [`validate_analysis`]: an `Analysis`
/// cannot hold an unknown verdict, severity or ATT&CK id, or an over-long text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub summary: String,
    pub verdict: Verdict,
    pub suggested_severity: Severity,
    pub attack_techniques: Vec<AttackTechniqueId>,
    pub entities: Vec<Entity>,
    pub recommended_actions: Vec<String>,
    /// The model's confidence, 0 to 1.
    pub confidence: f64,
}

/// Limits on what a model may return.
pub const MAX_SUMMARY: usize = 4000;
pub const MAX_ITEMS: usize = 32;
pub const MAX_ITEM_TEXT: usize = 500;

/// The shape the model's text must parse as before it is checked further.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnalysis {
    summary: String,
    verdict: String,
    suggested_severity: String,
    attack_techniques: Vec<String>,
    entities: Vec<Entity>,
    recommended_actions: Vec<String>,
    confidence: f64,
}

/// The JSON schema of [`Analysis`], as the providers' structured-output options take it.
pub fn analysis_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "What the events show, in two to five sentences."},
            "verdict": {"type": "string", "enum": ["true_positive", "false_positive", "needs_investigation"]},
            "suggested_severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
            "attack_techniques": {"type": "array", "items": {"type": "string", "pattern": "^T[0-9]{4}(\\.[0-9]{3})?$"}},
            "entities": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": ENTITY_KINDS},
                    "value": {"type": "string"}
                },
                "required": ["kind", "value"],
                "additionalProperties": false
            }},
            "recommended_actions": {"type": "array", "items": {"type": "string"}},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        },
        "required": ["summary", "verdict", "suggested_severity", "attack_techniques", "entities", "recommended_actions", "confidence"],
        "additionalProperties": false
    })
}

/// Why a model's text is not a valid analysis (sent back to the model in the repair retry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaViolation(pub String);

fn check_text(field: &str, s: &str, max: usize) -> Result<String, SchemaViolation> {
    let t = s.trim();
    if t.is_empty() {
        return Err(SchemaViolation(format!("{field} must not be empty")));
    }
    if t.len() > max {
        return Err(SchemaViolation(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    Ok(crate::llm::prompt::strip_controls(t))
}

/// Parses a model's text as an [`Analysis`]. Tolerates a Markdown code fence around the
/// JSON (small models add one even when told not to); everything else must match the
/// schema exactly.
pub fn validate_analysis(text: &str) -> Result<Analysis, SchemaViolation> {
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        t = rest.trim().strip_suffix("```").unwrap_or(rest).trim();
    }
    let raw: RawAnalysis = serde_json::from_str(t)
        .map_err(|e| SchemaViolation(format!("not a JSON object of the schema: {e}")))?;
    let verdict = match raw.verdict.as_str() {
        "true_positive" => Verdict::TruePositive,
        "false_positive" => Verdict::FalsePositive,
        "needs_investigation" => Verdict::NeedsInvestigation,
        other => {
            return Err(SchemaViolation(format!(
                "verdict '{other}' must be true_positive, false_positive or needs_investigation"
            )));
        }
    };
    let suggested_severity: Severity = raw.suggested_severity.parse().map_err(|_| {
        SchemaViolation(format!(
            "suggested_severity '{}' must be low, medium, high or critical",
            raw.suggested_severity
        ))
    })?;
    if raw.attack_techniques.len() > MAX_ITEMS
        || raw.entities.len() > MAX_ITEMS
        || raw.recommended_actions.len() > MAX_ITEMS
    {
        return Err(SchemaViolation(format!(
            "lists may have at most {MAX_ITEMS} items"
        )));
    }
    let attack_techniques = raw
        .attack_techniques
        .iter()
        .map(|t| {
            AttackTechniqueId::parse(t.trim()).map_err(|_| {
                SchemaViolation(format!(
                    "'{t}' is not an ATT&CK technique id like T1110 or T1110.001"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let entities = raw
        .entities
        .iter()
        .map(|e| {
            if !ENTITY_KINDS.contains(&e.kind.as_str()) {
                return Err(SchemaViolation(format!(
                    "entity kind '{}' must be one of {}",
                    e.kind,
                    ENTITY_KINDS.join(", ")
                )));
            }
            Ok(Entity {
                kind: e.kind.clone(),
                value: check_text("entity value", &e.value, MAX_ITEM_TEXT)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let recommended_actions = raw
        .recommended_actions
        .iter()
        .map(|a| check_text("recommended action", a, MAX_ITEM_TEXT))
        .collect::<Result<Vec<_>, _>>()?;
    if !(0.0..=1.0).contains(&raw.confidence) {
        return Err(SchemaViolation(format!(
            "confidence {} must be between 0 and 1",
            raw.confidence
        )));
    }
    Ok(Analysis {
        summary: check_text("summary", &raw.summary, MAX_SUMMARY)?,
        verdict,
        suggested_severity,
        attack_techniques,
        entities,
        recommended_actions,
        confidence: raw.confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"summary":"s","verdict":"needs_investigation","suggested_severity":"medium",
        "attack_techniques":["T1110"],"entities":[],"recommended_actions":["look"],"confidence":0.5}"#;

    #[test]
    fn good_output_and_a_code_fence_pass() {
        assert_eq!(
            validate_analysis(GOOD).unwrap().verdict,
            Verdict::NeedsInvestigation
        );
        let fenced = format!("```json\n{GOOD}\n```");
        assert!(validate_analysis(&fenced).is_ok());
    }

    #[test]
    fn each_violation_is_named() {
        let cases = [
            ("not json", "not a JSON object"),
            (
                &GOOD.replace("needs_investigation", "benign"),
                "verdict 'benign'",
            ),
            (&GOOD.replace("medium", "urgent"), "suggested_severity"),
            (&GOOD.replace("T1110", "TA0001"), "ATT&CK"),
            (&GOOD.replace("0.5", "7"), "confidence"),
            (&GOOD.replace("\"s\"", "\"  \""), "summary"),
            (&GOOD.replace("\"look\"", "\"\""), "recommended action"),
            (
                &GOOD.replace(
                    "\"entities\":[]",
                    "\"entities\":[{\"kind\":\"planet\",\"value\":\"x\"}]",
                ),
                "entity kind",
            ),
            (
                &GOOD.replace("\"confidence\"", "\"extra\":1,\"confidence\""),
                "unknown field",
            ),
        ];
        for (text, want) in cases {
            let e = validate_analysis(text).unwrap_err().0;
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
