//! AI triage of an alert: a model's suggestions, stored with the alert, each accepted or
//! dismissed by an analyst. Suggestions never change the alert by themselves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An analyst's decision on one suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionStatus {
    Pending,
    Accepted,
    Dismissed,
}

impl SuggestionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SuggestionStatus::Pending => "pending",
            SuggestionStatus::Accepted => "accepted",
            SuggestionStatus::Dismissed => "dismissed",
        }
    }
}

/// One thing the model suggests: a verdict, a severity, an ATT&CK technique, an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TriageSuggestion {
    /// Position in the triage's list; how the API names it.
    pub index: u32,
    /// `verdict`, `severity`, `technique` or `action`.
    pub kind: String,
    pub value: String,
    pub status: SuggestionStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// A stored triage of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertTriage {
    pub id: Uuid,
    pub org_id: Uuid,
    /// The alert's internal id.
    pub alert_id: Uuid,
    /// `ollama` or `openai`.
    pub provider: String,
    pub model: String,
    pub prompt_version: String,
    pub created_at: DateTime<Utc>,
    /// The user who asked, or `auto-triage`.
    pub created_by: String,
    /// The validated analysis (summary, verdict, severity, techniques, entities, actions)
    /// and the safety notes (`injection_suspected`, `verdict_overridden`).
    #[schema(value_type = Object)]
    pub analysis: serde_json::Value,
    pub suggestions: Vec<TriageSuggestion>,
}

/// A triage to store.
#[derive(Debug, Clone)]
pub struct NewTriage {
    pub alert_id: Uuid,
    pub provider: String,
    pub model: String,
    pub prompt_version: String,
    pub created_by: String,
    pub analysis: serde_json::Value,
    pub suggestions: Vec<TriageSuggestion>,
}
