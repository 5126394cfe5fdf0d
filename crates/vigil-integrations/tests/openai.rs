use std::time::Duration;

use serde_json::json;
use vigil_integrations::llm::{
    ChatMessage, ChatRequest, ChatRole, LlmError, LlmProvider, analysis_schema,
};
use vigil_integrations::openai::{OpenAiClient, OpenAiConfig, OpenAiError};

use crate::fakes::{self, Answer, good_analysis};

fn client(url: &str, model: &str, stream: bool, key: &str) -> OpenAiClient {
    let mut c = OpenAiConfig::new(url, model);
    c.stream = stream;
    c.api_key = key.into();
    c.timeout = Duration::from_millis(800);
    OpenAiClient::new(c).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(ChatRole::User, "analyse")],
        schema: analysis_schema(),
    }
}

#[tokio::test]
async fn completion_sends_a_strict_json_schema_and_reads_usage() {
    let f = fakes::openai(&["qwen2.5-7b-instruct"], Some("sk-test")).await;
    // The base URL works with and without /v1.
    for base in [f.url.clone(), format!("{}/v1/", f.url)] {
        let c = client(&base, "qwen2.5-7b-instruct", false, "sk-test");
        let r = LlmProvider::chat(&c, &request()).await.unwrap();
        assert_eq!(r.content, good_analysis("true_positive"));
        assert_eq!((r.prompt_tokens, r.completion_tokens), (Some(57), Some(17)));
    }
    let sent = &f.requests()[0];
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        sent["response_format"]["json_schema"]["schema"],
        analysis_schema()
    );
    assert_eq!(sent["stream"], false);
    assert_eq!(
        f.headers()[0]["authorization"].to_str().unwrap(),
        "Bearer sk-test"
    );
}

#[tokio::test]
async fn streaming_reads_sse_deltas_usage_and_done() {
    let f = fakes::openai(&["m"], None).await;
    let r = LlmProvider::chat(&client(&f.url, "m", true, ""), &request())
        .await
        .unwrap();
    assert_eq!(r.content, good_analysis("true_positive"));
    assert_eq!(r.completion_tokens, Some(17), "usage chunk read");
    assert_eq!(
        f.requests()[0]["stream_options"],
        json!({"include_usage": true})
    );
    assert!(
        f.headers()[0].get("authorization").is_none(),
        "no key, no header"
    );
}

#[tokio::test]
async fn errors_carry_type_code_and_message() {
    let f = fakes::openai(&["m"], Some("sk-right")).await;
    let e = client(&f.url, "m", false, "sk-wrong")
        .chat_completion(&request().messages, None)
        .await
        .unwrap_err();
    match &e {
        OpenAiError::Api {
            status: 401,
            code,
            message,
            ..
        } => {
            assert!(code.contains("invalid_api_key") && message.contains("Incorrect API key"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!LlmError::from(e).is_retryable());
    let e = LlmProvider::chat(&client(&f.url, "gpt-9", false, "sk-right"), &request())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        LlmError::ModelNotFound {
            provider: "openai",
            model: "gpt-9".into()
        }
    );
    f.push(Answer::Fail(429, "Rate limit reached for requests".into()));
    f.push(Answer::Fail(503, "The server is overloaded".into()));
    for want in [429u16, 503] {
        let e = LlmProvider::chat(&client(&f.url, "m", false, "sk-right"), &request())
            .await
            .unwrap_err();
        assert!(
            matches!(e, LlmError::Api { status, .. } if status == want),
            "{e:?}"
        );
        assert!(e.is_retryable());
    }
}

#[tokio::test]
async fn slow_truncated_malformed_and_in_stream_errors() {
    let f = fakes::openai(&["m"], None).await;
    f.push(Answer::Slow(
        Duration::from_secs(3),
        good_analysis("true_positive"),
    ));
    let e = client(&f.url, "m", false, "")
        .chat_completion(&request().messages, None)
        .await
        .unwrap_err();
    assert!(matches!(e, OpenAiError::Timeout { .. }), "{e:?}");

    f.push(Answer::Truncated(good_analysis("true_positive")));
    let e = client(&f.url, "m", true, "")
        .chat_completion(&request().messages, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OpenAiError::Protocol(m) if m.contains("[DONE]")),
        "{e:?}"
    );

    for stream in [false, true] {
        f.push(Answer::Malformed);
        let e = client(&f.url, "m", stream, "")
            .chat_completion(&request().messages, None)
            .await
            .unwrap_err();
        assert!(matches!(e, OpenAiError::Protocol(_)), "{e:?}");
    }

    f.push(Answer::StreamError(
        "The server had an error while processing your request.".into(),
    ));
    let e = client(&f.url, "m", true, "")
        .chat_completion(&request().messages, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OpenAiError::Api { message, .. } if message.contains("had an error")),
        "{e:?}"
    );
}

#[tokio::test]
async fn health_lists_models() {
    let f = fakes::openai(&["m", "n"], Some("k")).await;
    let h = client(&f.url, "n", false, "k").health().await;
    assert!(h.reachable && h.model_available, "{h:?}");
    let h = client(&f.url, "x", false, "k").health().await;
    assert!(h.reachable && !h.model_available);
    let h = client(&f.url, "n", false, "bad").health().await;
    assert!(!h.reachable && h.message.unwrap().contains("401"));
}
