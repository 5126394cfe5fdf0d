//! Integration tests of the clients against fake servers that follow the real APIs
//! (tests/fakes.rs). Run: `cargo test -p vigil-integrations`.

mod fakes;

mod llm;
mod loki;
mod ollama;
mod openai;
