//! Integration tests of the clients against fake servers that follow the real APIs
//! (tests/fakes.rs). Run: `cargo test -p vigil-integrations`.

pub(crate) use vigil_integrations::testing as fakes;

mod llm;
mod loki;
mod ollama;
mod openai;
mod webhooks;
