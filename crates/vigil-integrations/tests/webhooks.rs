//! The webhook client against real receivers on 127.0.0.1: what is sent, how answers are
//! classified, timeouts, redirects, and the SSRF guard refusing loopback at send time.

use std::time::Duration;

use vigil_integrations::webhooks::{
    WebhookClient, WebhookConfig, WebhookOutcome, WebhookRequest, WebhookSecret,
};

use crate::fakes::{Reply, WebhookReceiver};

fn client(allow_private: bool) -> WebhookClient {
    WebhookClient::new(WebhookConfig {
        allow_private_destinations: allow_private,
        ..Default::default()
    })
    .unwrap()
}

async fn send(
    c: &WebhookClient,
    url: &str,
    secret: &WebhookSecret,
    timeout: Duration,
) -> vigil_integrations::webhooks::WebhookAttempt {
    let headers = vec![
        ("X-Team".to_string(), "secops".to_string()),
        // Never wins over the signature's own header.
        ("webhook-id".to_string(), "forged".to_string()),
    ];
    c.send(&WebhookRequest {
        url,
        secret,
        id: "msg_1",
        timestamp: 1_765_108_800,
        body: br#"{"schema":1}"#,
        headers: &headers,
        timeout,
    })
    .await
}

#[tokio::test]
async fn a_2xx_is_delivered_with_the_signature_headers() {
    let rx = WebhookReceiver::start(|_| Reply::Status(202)).await;
    let secret = WebhookSecret::generate();
    let a = send(&client(true), &rx.url, &secret, Duration::from_secs(5)).await;
    assert_eq!(
        (a.outcome, a.status, a.error.as_deref()),
        (WebhookOutcome::Delivered, Some(202), None)
    );
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.header("webhook-id"), Some("msg_1"));
    assert_eq!(r.header("webhook-timestamp"), Some("1765108800"));
    assert_eq!(r.header("x-team"), Some("secops"));
    assert_eq!(
        r.headers.iter().filter(|(n, _)| n == "webhook-id").count(),
        1
    );
    assert_eq!(
        r.header("webhook-signature"),
        Some(
            secret
                .sign("msg_1", 1_765_108_800, br#"{"schema":1}"#)
                .as_str()
        )
    );
    assert_eq!(r.body, br#"{"schema":1}"#);
}

#[tokio::test]
async fn answers_are_classified() {
    let secret = WebhookSecret::generate();
    let c = client(true);
    for (reply, outcome, retry_after) in [
        (Reply::Status(410), WebhookOutcome::Gone, None),
        (Reply::Status(500), WebhookOutcome::Failed, None),
        (Reply::Status(404), WebhookOutcome::Failed, None),
        // A redirect is not followed: a failure.
        (Reply::Status(307), WebhookOutcome::Failed, None),
        (
            Reply::RetryAfter(429, "7".into()),
            WebhookOutcome::Failed,
            Some(Duration::from_secs(7)),
        ),
        (
            Reply::RetryAfter(503, "Thu, 01 Jan 1970 00:00:00 GMT".into()),
            WebhookOutcome::Failed,
            Some(Duration::ZERO),
        ),
    ] {
        let rx = WebhookReceiver::start(move |_| reply.clone()).await;
        let a = send(&c, &rx.url, &secret, Duration::from_secs(5)).await;
        assert_eq!(a.outcome, outcome, "{a:?}");
        assert_eq!(a.retry_after, retry_after, "{a:?}");
        assert!(a.error.as_deref().unwrap().starts_with("HTTP "), "{a:?}");
        assert_eq!(rx.received().len(), 1);
    }
}

#[tokio::test]
async fn timeouts_and_refused_connections_fail() {
    let secret = WebhookSecret::generate();
    let c = client(true);
    let rx = WebhookReceiver::start(|_| Reply::Hang).await;
    let a = send(&c, &rx.url, &secret, Duration::from_millis(300)).await;
    assert_eq!((a.outcome, a.status), (WebhookOutcome::Failed, None));
    assert!(a.error.unwrap().contains("no answer within 300 ms"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = send(
        &c,
        &format!("http://127.0.0.1:{port}/"),
        &secret,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        (a.outcome, a.status),
        (WebhookOutcome::Failed, None),
        "{a:?}"
    );
}

#[tokio::test]
async fn the_guard_refuses_loopback_before_anything_is_sent() {
    let rx = WebhookReceiver::start(|_| Reply::Status(200)).await;
    let secret = WebhookSecret::generate();
    let c = client(false);
    let port = rx.url.rsplit(':').next().unwrap().trim_end_matches("/hook");
    for url in [
        rx.url.clone(),
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let a = send(&c, &url, &secret, Duration::from_secs(5)).await;
        assert_eq!(a.outcome, WebhookOutcome::Refused, "{url}: {a:?}");
        assert!(a.error.unwrap().contains("refused"));
        assert!(c.check_destination(&url).await.is_err());
    }
    assert!(rx.received().is_empty());
}
