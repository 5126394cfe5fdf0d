//! [`LlmService`]: a provider behind a concurrency limit, retries, schema validation with
//! one repair retry, a cache and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use super::metrics::*;
use super::{
    Analysis, ChatMessage, ChatRequest, ChatRole, Completion, LlmError, LlmHealth, LlmProvider,
    LlmSettings, PROMPT_VERSION, Prompt, Result, TtlCache, analysis_schema, validate_analysis,
};

/// A validated analysis and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisOutcome {
    pub analysis: Analysis,
    pub provider: String,
    pub model: String,
    pub prompt_version: String,
    /// Served from the cache; no model request was made.
    pub cached: bool,
    /// The first answer did not match the schema and the repair retry fixed it.
    pub repaired: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Asks a provider for analyses. Cheap to share behind an `Arc`.
pub struct LlmService {
    provider: Arc<dyn LlmProvider>,
    settings: LlmSettings,
    permits: Semaphore,
    cache: TtlCache<AnalysisOutcome>,
}

impl LlmService {
    pub fn new(provider: Arc<dyn LlmProvider>, settings: LlmSettings) -> Self {
        Self {
            permits: Semaphore::new(settings.max_concurrency.max(1)),
            cache: TtlCache::new(settings.cache_ttl, settings.cache_capacity),
            provider,
            settings,
        }
    }

    pub fn provider(&self) -> &'static str {
        self.provider.provider()
    }

    pub fn model(&self) -> &str {
        self.provider.model()
    }

    pub async fn health(&self) -> LlmHealth {
        self.provider.health().await
    }

    /// Analyses a prompt: from the cache when the same content was analysed within the
    /// TTL, else by asking the model (with retries) and validating the answer; an invalid
    /// answer is sent back once with the violation, and a second invalid answer is
    /// [`LlmError::InvalidOutput`].
    pub async fn analyze(&self, prompt: &Prompt) -> Result<AnalysisOutcome> {
        let key = format!(
            "{}\u{0}{}\u{0}{}",
            self.provider.provider(),
            self.provider.model(),
            prompt.content_hash
        );
        let labels = [
            ("provider", self.provider.provider().to_string()),
            ("model", self.provider.model().to_string()),
        ];
        if let Some(mut hit) = self.cache.get(&key) {
            metrics::counter!(LLM_CACHE_HITS, &labels).increment(1);
            hit.cached = true;
            return Ok(hit);
        }
        metrics::counter!(LLM_CACHE_MISSES, &labels).increment(1);
        let mut messages = vec![
            ChatMessage::new(ChatRole::System, &prompt.system),
            ChatMessage::new(ChatRole::User, &prompt.user),
        ];
        let first = self.chat(&messages).await?;
        let (mut prompt_tokens, mut completion_tokens) = tokens(&first);
        let (analysis, repaired, model) = match validate_analysis(&first.content) {
            Ok(a) => (a, false, first.model),
            Err(violation) => {
                tracing::warn!(provider = self.provider.provider(), error = %violation,
                    "model answer does not match the schema; asking once more");
                messages.push(ChatMessage::new(
                    ChatRole::Assistant,
                    crate::truncate(&first.content, 8000),
                ));
                messages.push(ChatMessage::new(
                    ChatRole::User,
                    format!(
                        "Your answer does not match the required JSON schema: {violation}. \
                         Answer again with only the corrected JSON object, no other text."
                    ),
                ));
                let second = self.chat(&messages).await?;
                let (p, c) = tokens(&second);
                prompt_tokens += p;
                completion_tokens += c;
                match validate_analysis(&second.content) {
                    Ok(a) => (a, true, second.model),
                    Err(v) => {
                        metrics::counter!(
                            LLM_REQUESTS,
                            &[
                                ("provider", labels[0].1.clone()),
                                ("model", labels[1].1.clone()),
                                ("outcome", "invalid_output".to_string()),
                            ]
                        )
                        .increment(1);
                        return Err(LlmError::InvalidOutput(v.0));
                    }
                }
            }
        };
        let outcome = AnalysisOutcome {
            analysis,
            provider: self.provider.provider().to_string(),
            model: if model.is_empty() {
                self.provider.model().to_string()
            } else {
                model
            },
            prompt_version: PROMPT_VERSION.to_string(),
            cached: false,
            repaired,
            prompt_tokens,
            completion_tokens,
        };
        self.cache.insert(key, outcome.clone());
        Ok(outcome)
    }

    /// One exchange, with the concurrency limit, retries and metrics.
    async fn chat(&self, messages: &[ChatMessage]) -> Result<Completion> {
        let request = ChatRequest {
            messages: messages.to_vec(),
            schema: analysis_schema(),
        };
        let provider = self.provider.provider().to_string();
        let model = self.provider.model().to_string();
        let mut attempt = 0u32;
        loop {
            let result = {
                // The semaphore is never closed; a closed one would mean no limit.
                let _permit = self.permits.acquire().await.ok();
                let started = Instant::now();
                let r = self.provider.chat(&request).await;
                metrics::histogram!(LLM_REQUEST_DURATION, "provider" => provider.clone(), "model" => model.clone())
                    .record(started.elapsed().as_secs_f64());
                r
            };
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            metrics::counter!(LLM_REQUESTS, "provider" => provider.clone(), "model" => model.clone(), "outcome" => outcome)
                .increment(1);
            match result {
                Ok(c) => {
                    if let Some(p) = c.prompt_tokens {
                        metrics::counter!(LLM_PROMPT_TOKENS, "provider" => provider.clone(), "model" => model.clone()).increment(p);
                    }
                    if let Some(t) = c.completion_tokens {
                        metrics::counter!(LLM_COMPLETION_TOKENS, "provider" => provider.clone(), "model" => model.clone()).increment(t);
                    }
                    return Ok(c);
                }
                Err(e) if e.is_retryable() && attempt < self.settings.retries => {
                    let wait = backoff(&self.settings, attempt);
                    tracing::warn!(provider = %provider, error = %e, attempt, wait_ms = wait.as_millis() as u64, "model request failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn tokens(c: &Completion) -> (u64, u64) {
    (
        c.prompt_tokens.unwrap_or(0),
        c.completion_tokens.unwrap_or(0),
    )
}

/// Exponential backoff with full jitter: a random time up to `backoff * 2^attempt`.
fn backoff(s: &LlmSettings, attempt: u32) -> Duration {
    let cap = s
        .backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(s.max_backoff);
    let ms = cap.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(ms / 2 + rand::random::<u64>() % (ms / 2 + 1))
}
