//! OpenAI-compatible chat completions (`POST /v1/chat/completions`, as served by llama.cpp's
//! server, vLLM, LM Studio and OpenAI itself). Structured output through `response_format:
//! {"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`; replies either as
//! one `chat.completion` object or as server-sent events (`data: {chunk}` lines, each with a
//! `choices[0].delta.content` piece, a final usage chunk when `stream_options.include_usage`
//! is set, then `data: [DONE]`). Errors are `{"error": {"message", "type", "code"}}`.
//! `GET /v1/models` is the health check.

mod client;
mod config;
mod error;

pub use client::{OpenAiChatResponse, OpenAiClient};
pub use config::OpenAiConfig;
pub use error::OpenAiError;
