use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{OpenAiConfig, OpenAiError};
use crate::llm::{ChatMessage, ChatRequest, Completion, LlmHealth, LlmProvider};

type Result<T> = std::result::Result<T, OpenAiError>;

/// A complete chat completion (a stream assembled).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiChatResponse {
    pub model: String,
    pub content: String,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Msg {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Msg>,
    #[serde(default)]
    delta: Option<Msg>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct CompletionBody {
    #[serde(default)]
    model: String,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

/// An OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    cfg: OpenAiConfig,
}

impl OpenAiClient {
    pub fn new(cfg: OpenAiConfig) -> Result<Self> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(OpenAiError::Config(format!(
                "url '{}' must start with http:// or https://",
                cfg.url
            )));
        }
        if cfg.model.trim().is_empty() {
            return Err(OpenAiError::Config("a model name is required".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .build()
            .map_err(|e| OpenAiError::Config(e.to_string()))?;
        Ok(Self { http, cfg })
    }

    /// `{base}/v1/{path}`, whether or not the base already ends in `/v1`.
    fn url(&self, path: &str) -> String {
        let base = self.cfg.url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        crate::join_url(base, &format!("v1/{path}"))
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.cfg.api_key.is_empty() {
            builder
        } else {
            builder.bearer_auth(&self.cfg.api_key)
        }
    }

    fn send_error(&self, e: reqwest::Error) -> OpenAiError {
        if e.is_timeout() {
            OpenAiError::Timeout {
                secs: self.cfg.timeout.as_secs(),
            }
        } else if e.is_connect() || e.is_request() {
            OpenAiError::Unreachable {
                url: self.cfg.url.clone(),
                message: e.to_string(),
            }
        } else {
            OpenAiError::Protocol(e.to_string())
        }
    }

    fn api_error(status: u16, v: &Value) -> OpenAiError {
        let err = v.get("error").unwrap_or(v);
        let s = |k: &str| match err.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let code = s("code");
        OpenAiError::Api {
            status,
            kind: s("type"),
            code: if code.is_empty() {
                code
            } else {
                format!(", {code}")
            },
            message: match err {
                Value::String(m) => m.clone(),
                _ => s("message"),
            },
        }
    }

    async fn error_for(resp: reqwest::Response) -> OpenAiError {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.get("error").is_some() => Self::api_error(status, &v),
            _ => OpenAiError::Api {
                status,
                kind: String::new(),
                code: String::new(),
                message: crate::truncate(text.trim(), 300),
            },
        }
    }

    /// `POST /v1/chat/completions` with the configured model; `schema` becomes a strict
    /// `json_schema` response format.
    pub async fn chat_completion(
        &self,
        messages: &[ChatMessage],
        schema: Option<&Value>,
    ) -> Result<OpenAiChatResponse> {
        let mut body = json!({
            "model": self.cfg.model,
            "messages": messages,
            "temperature": self.cfg.temperature,
            "stream": self.cfg.stream,
        });
        if let Some(schema) = schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "vigil_analysis", "strict": true, "schema": schema}
            });
        }
        if self.cfg.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        let resp = self
            .request(self.http.post(self.url("chat/completions")))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        if !resp.status().is_success() {
            return Err(Self::error_for(resp).await);
        }
        if self.cfg.stream {
            self.read_sse(resp).await
        } else {
            let bytes = resp.bytes().await.map_err(|e| self.send_error(e))?;
            if bytes.len() > self.cfg.max_response_bytes {
                return Err(OpenAiError::Protocol("response too large".into()));
            }
            let c: CompletionBody = serde_json::from_slice(&bytes).map_err(|e| {
                OpenAiError::Protocol(format!(
                    "not a chat.completion object ({e}): {}",
                    crate::truncate(&String::from_utf8_lossy(&bytes), 200)
                ))
            })?;
            let choice = c
                .choices
                .into_iter()
                .next()
                .ok_or_else(|| OpenAiError::Protocol("no choices in the reply".into()))?;
            let msg = choice.message.unwrap_or_default();
            if let Some(r) = msg.refusal.filter(|r| !r.is_empty()) {
                return Err(OpenAiError::Protocol(format!("the model refused: {r}")));
            }
            let usage = c.usage.unwrap_or_default();
            Ok(OpenAiChatResponse {
                model: c.model,
                content: msg.content.unwrap_or_default(),
                finish_reason: choice.finish_reason,
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            })
        }
    }

    /// Reads `data:` events until `data: [DONE]`.
    async fn read_sse(&self, resp: reqwest::Response) -> Result<OpenAiChatResponse> {
        let mut out = OpenAiChatResponse {
            model: String::new(),
            content: String::new(),
            finish_reason: None,
            prompt_tokens: None,
            completion_tokens: None,
        };
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut total = 0usize;
        loop {
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(raw.trim_ascii()).into_owned();
                // Blank lines end an event; `:` lines are comments (keep-alives).
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    return Ok(out);
                }
                let chunk: CompletionBody = serde_json::from_str(data).map_err(|e| {
                    match serde_json::from_str::<Value>(data) {
                        Ok(v) if v.get("error").is_some() => Self::api_error(200, &v),
                        _ => OpenAiError::Protocol(format!(
                            "stream event is not a chunk ({e}): {}",
                            crate::truncate(data, 200)
                        )),
                    }
                })?;
                if let Some(e) = &chunk.error {
                    return Err(Self::api_error(200, &json!({"error": e})));
                }
                if !chunk.model.is_empty() {
                    out.model = chunk.model;
                }
                for choice in chunk.choices {
                    if let Some(d) = choice.delta.and_then(|d| d.content) {
                        out.content.push_str(&d);
                    }
                    if choice.finish_reason.is_some() {
                        out.finish_reason = choice.finish_reason;
                    }
                }
                if let Some(u) = chunk.usage {
                    out.prompt_tokens = u.prompt_tokens;
                    out.completion_tokens = u.completion_tokens;
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    total += chunk.len();
                    if total > self.cfg.max_response_bytes {
                        return Err(OpenAiError::Protocol("response too large".into()));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(self.send_error(e)),
                None if !buf.trim_ascii().is_empty() => buf.push(b'\n'),
                None => {
                    return Err(OpenAiError::Protocol(
                        "stream ended before data: [DONE] (truncated)".into(),
                    ));
                }
            }
        }
    }

    /// `GET /v1/models`: the model ids the server offers.
    pub async fn models(&self) -> Result<Vec<String>> {
        let resp = self
            .request(self.http.get(self.url("models")))
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        if !resp.status().is_success() {
            return Err(Self::error_for(resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| self.send_error(e))?;
        let list: ModelList = serde_json::from_slice(&bytes)
            .map_err(|e| OpenAiError::Protocol(format!("/v1/models: {e}")))?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }
}

#[async_trait::async_trait]
impl LlmProvider for OpenAiClient {
    fn provider(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.cfg.model
    }

    async fn health(&self) -> LlmHealth {
        let mut h = LlmHealth {
            provider: "openai".into(),
            model: self.cfg.model.clone(),
            reachable: false,
            model_available: false,
            message: None,
        };
        match self.models().await {
            Ok(ids) => {
                h.reachable = true;
                h.model_available = ids.contains(&self.cfg.model);
                if !h.model_available {
                    h.message = Some(format!(
                        "the server does not list model '{}' (it has: {})",
                        self.cfg.model,
                        ids.join(", ")
                    ));
                }
            }
            Err(e) => h.message = Some(e.to_string()),
        }
        h
    }

    async fn chat(&self, request: &ChatRequest) -> crate::llm::Result<Completion> {
        let r = self
            .chat_completion(&request.messages, Some(&request.schema))
            .await
            .map_err(|e| match e {
                OpenAiError::Api { status: 404, .. } => crate::llm::LlmError::ModelNotFound {
                    provider: "openai",
                    model: self.cfg.model.clone(),
                },
                OpenAiError::Api { ref code, .. } if code.contains("model_not_found") => {
                    crate::llm::LlmError::ModelNotFound {
                        provider: "openai",
                        model: self.cfg.model.clone(),
                    }
                }
                e => e.into(),
            })?;
        Ok(Completion {
            content: r.content,
            model: r.model,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
        })
    }
}
