//! Alert triage: the model's view of one alert, stored with the alert as suggestions an
//! analyst accepts or dismisses. The alert itself is never changed here.

use serde_json::json;
use uuid::Uuid;
use vigil_core::{Alert, AlertTriage, NewTriage, SuggestionStatus, TriageSuggestion};
use vigil_integrations::llm::{Analysis, build_prompt, looks_like_injection};
use vigil_store::DynStore;

use super::{Ai, AiError, apply_safety};

/// The alert as the model sees it (all of it data, sanitized by `build_prompt`).
fn context(a: &Alert) -> serde_json::Value {
    let mut metadata = a.metadata.to_string();
    if metadata.len() > 3000 {
        metadata = vigil_integrations::llm::prompt::sanitize(&metadata, 3000);
    }
    json!({
        "title": a.title,
        "description": a.description,
        "severity": a.severity,
        "status": a.status,
        "source": a.source,
        "event_type": a.event_type,
        "timestamp": a.timestamp,
        "attack_technique_id": a.attack_technique_id,
        "tags": a.tags,
        "observables": a.observables,
        "event_count": a.event_count,
        "metadata": metadata,
    })
}

/// Whether anything in the alert tries to instruct a model.
fn alert_injection(a: &Alert) -> bool {
    looks_like_injection(&a.title)
        || looks_like_injection(&a.description)
        || looks_like_injection(&a.metadata.to_string())
        || a.observables.iter().any(|o| looks_like_injection(&o.value))
}

/// The suggestions of an analysis, in a fixed order: verdict, severity, techniques, actions.
pub fn suggestions(a: &Analysis) -> Vec<TriageSuggestion> {
    let mut items: Vec<(&str, String)> = vec![
        ("verdict", a.verdict.as_str().to_string()),
        ("severity", a.suggested_severity.as_str().to_string()),
    ];
    items.extend(
        a.attack_techniques
            .iter()
            .map(|t| ("technique", t.as_str().to_string())),
    );
    items.extend(a.recommended_actions.iter().map(|x| ("action", x.clone())));
    items
        .into_iter()
        .enumerate()
        .map(|(i, (kind, value))| TriageSuggestion {
            index: i as u32,
            kind: kind.into(),
            value,
            status: SuggestionStatus::Pending,
            decided_by: None,
            decided_at: None,
        })
        .collect()
}

/// Asks the model about alert `id` and stores the result. `NotFound` (as a store error)
/// when the alert is not this organization's.
pub async fn triage_alert(
    ai: &Ai,
    store: &DynStore,
    org: Uuid,
    id: Uuid,
    actor: &str,
) -> Result<AlertTriage, AiError> {
    let alert = store
        .get_alert(org, id)
        .await?
        .ok_or(AiError::Store(vigil_store::Error::NotFound))?;
    let llm = ai.llm.as_ref().ok_or(AiError::NoModel)?;
    let injection = alert_injection(&alert);
    let prompt = build_prompt(
        "Triage this security alert: is it a true positive, a false positive, or does it need \
         investigation? Suggest a severity, the ATT&CK techniques, the entities involved and \
         the next steps for the analyst.",
        &context(&alert),
        &[],
    );
    let mut out = llm.analyze(&prompt).await?;
    let model_verdict = out.analysis.verdict;
    let note = apply_safety(&mut out.analysis, injection);
    let mut analysis = serde_json::to_value(&out.analysis).unwrap_or_default();
    if let Some(o) = analysis.as_object_mut() {
        o.insert("injection_suspected".into(), injection.into());
        o.insert("verdict_overridden".into(), note.is_some().into());
        o.insert("model_verdict".into(), model_verdict.as_str().into());
        o.insert("note".into(), note.into());
        o.insert("cached".into(), out.cached.into());
        o.insert("repaired".into(), out.repaired.into());
        o.insert("prompt_tokens".into(), out.prompt_tokens.into());
        o.insert("completion_tokens".into(), out.completion_tokens.into());
    }
    let t = store
        .create_triage(
            org,
            NewTriage {
                alert_id: alert.id,
                provider: out.provider,
                model: out.model,
                prompt_version: out.prompt_version,
                created_by: actor.into(),
                suggestions: suggestions(&out.analysis),
                analysis,
            },
        )
        .await?;
    Ok(t)
}
