use std::time::Duration;

use serde_json::json;
use vigil_integrations::llm::{
    ChatMessage, ChatRequest, ChatRole, LlmError, LlmProvider, analysis_schema,
};
use vigil_integrations::ollama::{OllamaClient, OllamaConfig, OllamaError};

use crate::fakes::{self, Answer, good_analysis};

fn client(url: &str, model: &str, stream: bool) -> OllamaClient {
    let mut c = OllamaConfig::new(url, model);
    c.stream = stream;
    c.timeout = Duration::from_millis(800);
    OllamaClient::new(c).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(ChatRole::System, "sys"),
            ChatMessage::new(ChatRole::User, "analyse"),
        ],
        schema: analysis_schema(),
    }
}

#[tokio::test]
async fn chat_non_streaming_sends_the_schema_and_reads_the_counts() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    let c = client(&f.url, "mistral", false);
    let r = LlmProvider::chat(&c, &request()).await.unwrap();
    assert_eq!(r.content, good_analysis("true_positive"));
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens),
        (Some(26), Some(290))
    );
    let sent = &f.requests()[0];
    assert_eq!(sent["model"], "mistral");
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["format"], analysis_schema());
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "sys"})
    );
    assert_eq!(sent["options"]["temperature"], 0.0);
}

#[tokio::test]
async fn chat_streaming_assembles_ndjson_pieces() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    let c = client(&f.url, "mistral", true);
    let r = LlmProvider::chat(&c, &request()).await.unwrap();
    assert_eq!(r.content, good_analysis("true_positive"));
    assert_eq!(r.completion_tokens, Some(290));
    assert_eq!(f.requests()[0]["stream"], true);
}

#[tokio::test]
async fn generate_streaming_and_not() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    f.push(Answer::Content("{\"a\":1}".into()));
    f.push(Answer::Content("{\"b\":2}".into()));
    let schema = json!({"type": "object"});
    let r = client(&f.url, "mistral", false)
        .generate("why?", Some("be brief"), Some(&schema))
        .await
        .unwrap();
    assert_eq!(r.response, "{\"a\":1}");
    assert_eq!(r.done_reason.as_deref(), Some("stop"));
    let r = client(&f.url, "mistral", true)
        .generate("why?", None, None)
        .await
        .unwrap();
    assert_eq!(r.response, "{\"b\":2}");
    let sent = f.requests();
    assert_eq!(sent[0]["prompt"], "why?");
    assert_eq!(sent[0]["system"], "be brief");
    assert_eq!(sent[0]["format"], schema);
    assert!(sent[1].get("format").is_none());
}

#[tokio::test]
async fn tags_and_health_report_the_model() {
    let f = fakes::ollama(&["mistral:latest", "llama3.1:8b"]).await;
    let models = client(&f.url, "mistral", false).tags().await.unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[1].name, "llama3.1:8b");
    let h = client(&f.url, "mistral", false).health().await;
    assert!(h.reachable && h.model_available, "{h:?}");
    let h = client(&f.url, "phi3", false).health().await;
    assert!(h.reachable && !h.model_available);
    assert!(h.message.unwrap().contains("ollama pull phi3"));
    // Nothing listens on port 9 of loopback.
    let h = client("http://127.0.0.1:9", "mistral", false)
        .health()
        .await;
    assert!(!h.reachable && h.message.unwrap().contains("cannot be reached"));
}

#[tokio::test]
async fn unknown_model_is_a_404_model_not_found() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    let e = client(&f.url, "phi3", false)
        .chat(&request().messages, None)
        .await
        .unwrap_err();
    match &e {
        OllamaError::ModelNotFound { model, message } => {
            assert_eq!(model, "phi3");
            assert_eq!(message, "model 'phi3' not found");
        }
        other => panic!("{other:?}"),
    }
    let e: LlmError = e.into();
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn server_errors_keep_ollamas_message() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    f.push(Answer::Fail(
        500,
        "llama runner process has terminated: signal: killed".into(),
    ));
    let e = client(&f.url, "mistral", false)
        .chat(&request().messages, None)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        OllamaError::Api {
            status: 500,
            message: "llama runner process has terminated: signal: killed".into()
        }
    );
    assert!(LlmError::from(e).is_retryable());
}

#[tokio::test]
async fn slow_answers_time_out() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    f.push(Answer::Slow(
        Duration::from_secs(3),
        good_analysis("true_positive"),
    ));
    let e = client(&f.url, "mistral", false)
        .chat(&request().messages, None)
        .await
        .unwrap_err();
    assert!(matches!(e, OllamaError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn truncated_and_malformed_responses_are_errors() {
    for stream in [false, true] {
        let f = fakes::ollama(&["mistral:latest"]).await;
        f.push(Answer::Truncated(good_analysis("true_positive")));
        f.push(Answer::Malformed);
        let c = client(&f.url, "mistral", stream);
        let e = c.chat(&request().messages, None).await.unwrap_err();
        match &e {
            OllamaError::Protocol(m) if stream => assert!(m.contains("truncated"), "{m}"),
            OllamaError::Protocol(m) => assert!(m.contains("not the expected JSON"), "{m}"),
            other => panic!("{other:?}"),
        }
        let e = c.chat(&request().messages, None).await.unwrap_err();
        assert!(matches!(e, OllamaError::Protocol(_)), "{e:?}");
    }
}

#[tokio::test]
async fn an_error_line_in_the_stream_is_an_error() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    f.push(Answer::StreamError(
        "an error was encountered while running the model: CUDA out of memory".into(),
    ));
    let e = client(&f.url, "mistral", true)
        .chat(&request().messages, None)
        .await
        .unwrap_err();
    match e {
        OllamaError::Api { message, .. } => assert!(message.contains("CUDA out of memory")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_configuration_is_refused() {
    assert!(OllamaClient::new(OllamaConfig::new("127.0.0.1:11434", "m")).is_err());
    assert!(OllamaClient::new(OllamaConfig::new("http://127.0.0.1:11434", " ")).is_err());
}
