use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vigil_integrations::llm::{
    ChatRequest, Completion, LlmError, LlmHealth, LlmProvider, LlmService, LlmSettings, Verdict,
    build_prompt,
};
use vigil_integrations::ollama::{OllamaClient, OllamaConfig};
use vigil_integrations::openai::{OpenAiClient, OpenAiConfig};

use crate::fakes::{self, Answer, good_analysis};

fn settings() -> LlmSettings {
    LlmSettings {
        max_concurrency: 2,
        retries: 2,
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        cache_ttl: Duration::from_secs(60),
        cache_capacity: 16,
    }
}

fn ollama_service(url: &str, stream: bool) -> LlmService {
    let mut c = OllamaConfig::new(url, "mistral");
    c.stream = stream;
    c.timeout = Duration::from_millis(800);
    LlmService::new(Arc::new(OllamaClient::new(c).unwrap()), settings())
}

fn prompt(text: &str) -> vigil_integrations::llm::Prompt {
    build_prompt("analyse", &serde_json::json!({"n": 1}), &[text.to_string()])
}

#[tokio::test]
async fn a_valid_answer_is_parsed_and_cached_by_content() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    let s = ollama_service(&f.url, true);
    let a = s.analyze(&prompt("line one")).await.unwrap();
    assert_eq!(a.analysis.verdict, Verdict::TruePositive);
    assert!(!a.cached && !a.repaired);
    assert_eq!((a.prompt_tokens, a.completion_tokens), (26, 290));
    assert_eq!(a.prompt_version, "vigil-analysis-v1");
    let b = s.analyze(&prompt("line one")).await.unwrap();
    assert!(b.cached);
    assert_eq!(b.analysis, a.analysis);
    assert_eq!(f.requests().len(), 1, "the second came from the cache");
    s.analyze(&prompt("line two")).await.unwrap();
    assert_eq!(f.requests().len(), 2, "other content asks again");
}

#[tokio::test]
async fn invalid_output_gets_one_repair_retry() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    f.push(Answer::Content(good_analysis("benign")));
    f.push(Answer::Content(good_analysis("false_positive")));
    let s = ollama_service(&f.url, false);
    let a = s.analyze(&prompt("x")).await.unwrap();
    assert!(a.repaired);
    assert_eq!(a.analysis.verdict, Verdict::FalsePositive);
    let reqs = f.requests();
    assert_eq!(reqs.len(), 2);
    let msgs = reqs[1]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[2]["role"], "assistant");
    assert!(msgs[2]["content"].as_str().unwrap().contains("benign"));
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .contains("verdict 'benign'")
    );
}

#[tokio::test]
async fn invalid_twice_is_a_clear_error_and_nothing_is_cached() {
    let f = fakes::openai(&["m"], None).await;
    f.push(Answer::Content("The logs look fine to me!".into()));
    f.push(Answer::Content("{\"summary\": \"still not it\"}".into()));
    let mut c = OpenAiConfig::new(&f.url, "m");
    c.stream = true;
    let s = LlmService::new(Arc::new(OpenAiClient::new(c).unwrap()), settings());
    let e = s.analyze(&prompt("x")).await.unwrap_err();
    assert!(
        matches!(&e, LlmError::InvalidOutput(m) if m.contains("missing field")),
        "{e:?}"
    );
    assert!(e.to_string().contains("after one repair attempt"));
    // Nothing was cached: the next call asks again (and gets the default good answer).
    let a = s.analyze(&prompt("x")).await.unwrap();
    assert!(!a.cached);
    assert_eq!(f.requests().len(), 3);
}

#[tokio::test]
async fn retryable_failures_are_retried_and_others_are_not() {
    let f = fakes::ollama(&["mistral:latest"]).await;
    f.push(Answer::Fail(
        503,
        "server busy, please try again.  maximum pending requests exceeded".into(),
    ));
    f.push(Answer::Truncated(good_analysis("true_positive")));
    let s = ollama_service(&f.url, true);
    let a = s.analyze(&prompt("x")).await.unwrap();
    assert_eq!(a.analysis.verdict, Verdict::TruePositive);
    assert_eq!(f.requests().len(), 3, "503, truncated, then a good answer");

    f.push(Answer::Fail(500, "a".into()));
    f.push(Answer::Fail(500, "b".into()));
    f.push(Answer::Fail(500, "c".into()));
    let e = s.analyze(&prompt("y")).await.unwrap_err();
    assert!(matches!(e, LlmError::Api { status: 500, .. }));
    assert_eq!(f.requests().len(), 6, "1 + 2 retries");

    let bad = fakes::ollama(&["other"]).await;
    let s = ollama_service(&bad.url, false);
    let e = s.analyze(&prompt("x")).await.unwrap_err();
    assert!(matches!(e, LlmError::ModelNotFound { .. }));
    assert_eq!(bad.requests().len(), 1, "a missing model is not retried");
}

/// Counts how many chats run at once.
struct Counting {
    now: AtomicUsize,
    max: AtomicUsize,
}

#[async_trait::async_trait]
impl LlmProvider for Counting {
    fn provider(&self) -> &'static str {
        "counting"
    }
    fn model(&self) -> &str {
        "m"
    }
    async fn health(&self) -> LlmHealth {
        unreachable!()
    }
    async fn chat(&self, _: &ChatRequest) -> vigil_integrations::llm::Result<Completion> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(Completion {
            content: good_analysis("needs_investigation"),
            model: "m".into(),
            prompt_tokens: None,
            completion_tokens: None,
        })
    }
}

#[tokio::test]
async fn concurrency_is_limited() {
    let p = Arc::new(Counting {
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    });
    let mut st = settings();
    st.max_concurrency = 2;
    let s = Arc::new(LlmService::new(p.clone(), st));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.analyze(&prompt(&format!("line {i}"))).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(p.max.load(Ordering::SeqCst), 2);
}
