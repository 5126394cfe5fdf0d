//! The provider-neutral AI layer: [`LlmProvider`] (implemented by
//! [`crate::ollama::OllamaClient`] and [`crate::openai::OpenAiClient`]), the [`Analysis`]
//! schema and its validation, prompts that treat log text as data ([`prompt`]), and
//! [`LlmService`], which adds a concurrency limit, retries with backoff, one repair retry
//! for output that does not match the schema, a content-hash TTL cache and metrics.
//!
//! Model output is only ever returned as an [`Analysis`] that passed
//! [`validate_analysis`]; anything else is an [`LlmError`], never text passed on as fact.

mod cache;
mod client;
mod config;
mod error;
pub mod metrics;
pub mod prompt;
mod schema;

pub use cache::TtlCache;
pub use client::{AnalysisOutcome, LlmService};
pub use config::LlmSettings;
pub use error::{LlmError, Result};
pub use prompt::{PROMPT_VERSION, Prompt, build_prompt, looks_like_injection};
pub use schema::{
    Analysis, ENTITY_KINDS, Entity, SchemaViolation, Verdict, analysis_schema, validate_analysis,
};

use serde::Serialize;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

/// One chat message, as both Ollama and OpenAI take it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A chat request for structured output: the reply must match `schema`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub schema: serde_json::Value,
}

/// A model's complete reply (a streamed reply is assembled first).
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub content: String,
    /// The model that answered, as the server names it.
    pub model: String,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmHealth {
    pub provider: String,
    pub model: String,
    /// The server answered.
    pub reachable: bool,
    /// The server lists the configured model.
    pub model_available: bool,
    /// Why not, when either is false.
    pub message: Option<String>,
}

/// A model server Vigil can ask.
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    /// `ollama` or `openai` (metric label, stored with results).
    fn provider(&self) -> &'static str;
    /// The configured model name.
    fn model(&self) -> &str;
    /// Whether the server answers and has the model.
    async fn health(&self) -> LlmHealth;
    /// One chat exchange with structured output.
    async fn chat(&self, request: &ChatRequest) -> Result<Completion>;
}
