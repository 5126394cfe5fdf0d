use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{OllamaConfig, OllamaError};
use crate::llm::{ChatMessage, ChatRequest, Completion, LlmHealth, LlmProvider};

type Result<T> = std::result::Result<T, OllamaError>;

/// A model `GET /api/tags` lists.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OllamaModel {
    pub name: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub digest: String,
}

#[derive(Deserialize)]
struct TagsResponse {
    models: Vec<OllamaModel>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: String,
}

/// One `/api/chat` object (the whole reply, or one line of a stream).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct ChatChunk {
    #[serde(default)]
    message: WireMessage,
    #[serde(flatten)]
    tail: ChunkTail,
}

/// One `/api/generate` object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct GenerateChunk {
    #[serde(default)]
    response: String,
    #[serde(flatten)]
    tail: ChunkTail,
}

/// What every chat and generate object carries besides its text.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct ChunkTail {
    #[serde(default)]
    model: String,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<Value>,
}

/// A chat or generate reply as read, before it is named for its endpoint.
#[derive(Default)]
struct Reply {
    model: String,
    text: String,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
}

/// A complete `/api/chat` reply (a stream assembled).
#[derive(Debug, Clone, PartialEq)]
pub struct OllamaChatResponse {
    pub model: String,
    pub content: String,
    pub done_reason: Option<String>,
    pub prompt_eval_count: Option<u64>,
    pub eval_count: Option<u64>,
}

/// A complete `/api/generate` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct OllamaGenerateResponse {
    pub model: String,
    pub response: String,
    pub done_reason: Option<String>,
    pub prompt_eval_count: Option<u64>,
    pub eval_count: Option<u64>,
}

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a Value>,
    options: Value,
}

#[derive(Serialize)]
struct GenerateBody<'a> {
    model: &'a str,
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a Value>,
    options: Value,
}

/// An Ollama server.
#[derive(Clone)]
pub struct OllamaClient {
    http: reqwest::Client,
    cfg: OllamaConfig,
}

impl OllamaClient {
    pub fn new(cfg: OllamaConfig) -> Result<Self> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(OllamaError::Config(format!(
                "url '{}' must start with http:// or https://",
                cfg.url
            )));
        }
        if cfg.model.trim().is_empty() {
            return Err(OllamaError::Config("a model name is required".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .build()
            .map_err(|e| OllamaError::Config(e.to_string()))?;
        Ok(Self { http, cfg })
    }

    pub fn config(&self) -> &OllamaConfig {
        &self.cfg
    }

    fn url(&self, path: &str) -> String {
        crate::join_url(&self.cfg.url, path)
    }

    fn send_error(&self, e: reqwest::Error) -> OllamaError {
        if e.is_timeout() {
            OllamaError::Timeout {
                secs: self.cfg.timeout.as_secs(),
            }
        } else if e.is_connect() || e.is_request() {
            OllamaError::Unreachable {
                url: self.cfg.url.clone(),
                message: e.to_string(),
            }
        } else {
            OllamaError::Protocol(e.to_string())
        }
    }

    /// Turns a non-2xx response into the error its `{"error": "..."}` body names.
    async fn error_for(&self, resp: reqwest::Response) -> OllamaError {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| crate::truncate(text.trim(), 300));
        if status == 404 {
            OllamaError::ModelNotFound {
                model: self.cfg.model.clone(),
                message,
            }
        } else {
            OllamaError::Api { status, message }
        }
    }

    async fn post(&self, path: &str, body: &impl Serialize) -> Result<reqwest::Response> {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        if !resp.status().is_success() {
            return Err(self.error_for(resp).await);
        }
        Ok(resp)
    }

    /// Reads a reply: one JSON object, or NDJSON lines until `done: true`.
    async fn read_objects<T: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
        stream: bool,
        mut on: impl FnMut(T) -> Result<bool>,
    ) -> Result<()> {
        let max = self.cfg.max_response_bytes;
        if !stream {
            let bytes = resp.bytes().await.map_err(|e| self.send_error(e))?;
            if bytes.len() > max {
                return Err(OllamaError::Protocol(format!(
                    "response larger than {max} bytes"
                )));
            }
            let v: T = serde_json::from_slice(&bytes).map_err(|e| {
                OllamaError::Protocol(format!(
                    "response is not the expected JSON ({e}): {}",
                    crate::truncate(&String::from_utf8_lossy(&bytes), 200)
                ))
            })?;
            return if on(v)? {
                Ok(())
            } else {
                Err(OllamaError::Protocol("reply has \"done\": false".into()))
            };
        }
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut total = 0usize;
        loop {
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                let v: T = serde_json::from_slice(line).map_err(|e| {
                    OllamaError::Protocol(format!(
                        "stream line is not JSON ({e}): {}",
                        crate::truncate(&String::from_utf8_lossy(line), 200)
                    ))
                })?;
                if on(v)? {
                    return Ok(());
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    total += chunk.len();
                    if total > max {
                        return Err(OllamaError::Protocol(format!(
                            "response larger than {max} bytes"
                        )));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(self.send_error(e)),
                None => {
                    // A last line without a newline still counts.
                    if !buf.trim_ascii().is_empty() {
                        buf.push(b'\n');
                        continue;
                    }
                    return Err(OllamaError::Protocol(
                        "stream ended before the final \"done\": true message (truncated)".into(),
                    ));
                }
            }
        }
    }

    fn stream_error(e: &Value) -> OllamaError {
        OllamaError::Api {
            status: 200,
            message: e
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        }
    }

    /// `POST /api/chat` with the configured model; `format` is a JSON schema (or `"json"`).
    pub async fn chat(
        &self,
        messages: &[ChatMessage],
        format: Option<&Value>,
    ) -> Result<OllamaChatResponse> {
        let body = ChatBody {
            model: &self.cfg.model,
            messages,
            stream: self.cfg.stream,
            format,
            options: json!({"temperature": self.cfg.temperature}),
        };
        let resp = self.post("/api/chat", &body).await?;
        let r = self
            .read_reply(resp, |c: ChatChunk| (c.message.content, c.tail))
            .await?;
        Ok(OllamaChatResponse {
            model: r.model,
            content: r.text,
            done_reason: r.done_reason,
            prompt_eval_count: r.prompt_eval_count,
            eval_count: r.eval_count,
        })
    }

    /// `POST /api/generate` with the configured model.
    pub async fn generate(
        &self,
        prompt: &str,
        system: Option<&str>,
        format: Option<&Value>,
    ) -> Result<OllamaGenerateResponse> {
        let body = GenerateBody {
            model: &self.cfg.model,
            prompt,
            system,
            stream: self.cfg.stream,
            format,
            options: json!({"temperature": self.cfg.temperature}),
        };
        let resp = self.post("/api/generate", &body).await?;
        let r = self
            .read_reply(resp, |c: GenerateChunk| (c.response, c.tail))
            .await?;
        Ok(OllamaGenerateResponse {
            model: r.model,
            response: r.text,
            done_reason: r.done_reason,
            prompt_eval_count: r.prompt_eval_count,
            eval_count: r.eval_count,
        })
    }

    /// Reads a chat or generate reply (one object or a stream): the text pieces joined, the
    /// counts from the final (`done`) object; an `error` object is an error.
    async fn read_reply<C: serde::de::DeserializeOwned>(
        &self,
        resp: reqwest::Response,
        split: impl Fn(C) -> (String, ChunkTail),
    ) -> Result<Reply> {
        let mut out = Reply::default();
        self.read_objects(resp, self.cfg.stream, |c: C| {
            let (text, tail) = split(c);
            if let Some(e) = &tail.error {
                return Err(Self::stream_error(e));
            }
            out.model = tail.model;
            out.text.push_str(&text);
            if tail.done {
                out.done_reason = tail.done_reason;
                out.prompt_eval_count = tail.prompt_eval_count;
                out.eval_count = tail.eval_count;
            }
            Ok(tail.done)
        })
        .await?;
        Ok(out)
    }

    /// `GET /api/tags`: the models the server has.
    pub async fn tags(&self) -> Result<Vec<OllamaModel>> {
        let resp = self
            .http
            .get(self.url("/api/tags"))
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        if !resp.status().is_success() {
            return Err(self.error_for(resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| self.send_error(e))?;
        let tags: TagsResponse = serde_json::from_slice(&bytes)
            .map_err(|e| OllamaError::Protocol(format!("/api/tags: {e}")))?;
        Ok(tags.models)
    }

    /// Whether `name` is the configured model (`mistral` is `mistral:latest`).
    fn is_configured(&self, name: &str) -> bool {
        let want = &self.cfg.model;
        name == want || name.strip_suffix(":latest") == Some(want.as_str())
    }
}

#[async_trait::async_trait]
impl LlmProvider for OllamaClient {
    fn provider(&self) -> &'static str {
        "ollama"
    }

    fn model(&self) -> &str {
        &self.cfg.model
    }

    async fn health(&self) -> LlmHealth {
        let mut h = LlmHealth {
            provider: "ollama".into(),
            model: self.cfg.model.clone(),
            reachable: false,
            model_available: false,
            message: None,
        };
        match self.tags().await {
            Ok(models) => {
                h.reachable = true;
                h.model_available = models
                    .iter()
                    .any(|m| self.is_configured(&m.name) || self.is_configured(&m.model));
                if !h.model_available {
                    h.message = Some(format!(
                        "model '{}' is not pulled (ollama pull {})",
                        self.cfg.model, self.cfg.model
                    ));
                }
            }
            Err(e) => h.message = Some(e.to_string()),
        }
        h
    }

    async fn chat(&self, request: &ChatRequest) -> crate::llm::Result<Completion> {
        let r = OllamaClient::chat(self, &request.messages, Some(&request.schema)).await?;
        Ok(Completion {
            content: r.content,
            model: r.model,
            prompt_tokens: r.prompt_eval_count,
            completion_tokens: r.eval_count,
        })
    }
}
