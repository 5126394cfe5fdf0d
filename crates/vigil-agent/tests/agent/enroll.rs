use std::os::unix::fs::PermissionsExt;

use vigil_agent::{Agent, Error, Secret};

use crate::helpers::*;

#[tokio::test]
async fn registration_stores_a_0600_credential_and_reuses_it() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("enroll");
    let state = dir.path().join("state");
    let cfg = config(&server, &state, &[]);

    let agent = Agent::build(cfg.clone()).await.unwrap();
    drop(agent);
    let cred = state.join("credential");
    let mode = std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credential must be private");
    let stored = std::fs::read_to_string(&cred).unwrap();
    assert!(server.fake.lock().credentials.contains(stored.trim()));
    {
        let r = server.fake.lock();
        assert_eq!(r.registrations.len(), 1);
        assert_eq!(r.registrations[0].hostname, "test-host");
    }

    // Second start: the token is no longer needed (even a wrong one is not used).
    let mut again = cfg.clone();
    again.enrollment_token = Secret::new("");
    let handle = Agent::build(again).await.unwrap().spawn();
    let path = dir.path().join("a.log");
    append(&path, numbered("x", 0..1));
    handle.shutdown().await.unwrap();
    assert_eq!(
        server.fake.lock().registrations.len(),
        1,
        "no second registration"
    );
}

#[tokio::test]
async fn a_bad_token_is_a_clear_error() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("badtoken");
    let mut cfg = config(&server, dir.path(), &[]);
    cfg.enrollment_token = Secret::new("wrong");
    let err = Agent::build(cfg.clone()).await.err().expect("must fail");
    assert!(matches!(err, Error::Enroll(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("invalid_token"),
        "{text}"
    );
    assert!(!dir.path().join("credential").exists());

    cfg.enrollment_token = Secret::new("");
    let err = Agent::build(cfg).await.err().expect("must fail");
    assert!(err.to_string().contains("enrollment_token"), "{err}");
}
