//! Ollama (<https://github.com/ollama/ollama/blob/main/docs/api.md>): `POST /api/chat`,
//! `POST /api/generate` and `GET /api/tags`. Structured output through `format` (a JSON
//! schema); replies either as one JSON object (`"stream": false`) or as NDJSON, one object
//! per line with a piece of the text, the last with `"done": true` and the token counts
//! (`prompt_eval_count`, `eval_count`). Errors are `{"error": "..."}` with a status (404
//! for an unknown model), or an `{"error": ...}` line in the middle of a stream.

mod client;
mod config;
mod error;

pub use client::{OllamaChatResponse, OllamaClient, OllamaGenerateResponse, OllamaModel};
pub use config::OllamaConfig;
pub use error::OllamaError;
