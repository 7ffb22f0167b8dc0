//! AWS service tokens: `POST /connectors/{c}/ecr-login` / `idfed ecr-login` and
//! `POST /connectors/{c}/codeartifact-token` / `idfed codeartifact-token`: credentials vended through the
//! whole pipeline (authorization, the plugin chain, the audit log), then exchanged at ECR (moto's) or
//! CodeArtifact (the stand-in in `tests/src/codeartifact.rs`: moto has none), on loopback.

use std::process::Command;

use idfed::audit::Outcome;
use idfed::model::BindingSpec;
use idfed::store::Store;
use idfed_tests::fixtures;
use idfed_tests::moto;
use idfed_tests::server::{TestServer, role_connector, run, user};
use serde_json::{Value, json};
use uuid::Uuid;

/// The audit records of `connector`, newest first.
async fn ecr_login(server: &TestServer, token: &str, connector: &str) -> (u16, Value) {
    let answer = server
        .client
        .post(server.url(&format!("/api/v1/connectors/{connector}/ecr-login")))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecr_login_goes_through_the_pipeline_and_ecr() {
    let extra = format!("[endpoints]\necr = {:?}\n", moto::shared().endpoint());
    let server = TestServer::start(
        vec![user("alice", &["devs"]), user("bob", &["ops"])],
        &extra,
    )
    .await;
    let store = &server.service.store;
    store
        .create_connector(role_connector("push", "main", &["devs"]))
        .unwrap();
    let alice = server.login("alice").await;

    let (status, login) = ecr_login(&server, &alice, "push").await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["username"], json!("AWS"));
    // moto's password names the account the vended credentials belong to.
    assert_eq!(login["password"], json!("123456789012-auth-token"));
    assert_eq!(
        login["registry"],
        json!("https://123456789012.dkr.ecr.us-east-1.amazonaws.com")
    );
    humantime::parse_rfc3339(login["expires_at"].as_str().unwrap()).unwrap();
    // Audited like any vend.
    let records = server.records_of("push");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event.outcome, Outcome::Issued);
    assert_eq!(records[0].event.caller.as_deref(), Some("alice"));

    // Authorization: bob may not use the connector.
    let bob = server.login("bob").await;
    let (status, body) = ecr_login(&server, &bob, "push").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], json!("forbidden"));

    // The plugin chain: a rate limit of one request denies the second login.
    let connector = store.get_connector("push").unwrap().unwrap();
    let digest = store
        .put_plugin(&std::fs::read(fixtures::RATE_LIMIT).unwrap(), None)
        .unwrap();
    let mut bound = connector.clone();
    bound.bindings.push(BindingSpec {
        id: Uuid::new_v4().to_string(),
        plugin: digest,
        config: r#"{"max_requests": 1, "window_seconds": 3600}"#.into(),
        limits: None,
        tag_keys: vec![],
    });
    store.update_connector(bound, &connector).unwrap();
    let (status, _) = ecr_login(&server, &alice, "push").await;
    assert_eq!(status, 200);
    let (status, body) = ecr_login(&server, &alice, "push").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], json!("plugin_denied"));
    assert!(!body.to_string().contains("auth-token"));

    // The CLI prints the password alone, for `docker login --password-stdin`.
    store
        .create_connector(role_connector("push-cli", "main", &["devs"]))
        .unwrap();
    let idfed = idfed_tests::idfed_binary();
    let config_dir = server.cli_login("alice");
    let out = run(
        Command::new(&idfed)
            .env("IDFED_CONFIG_DIR", &config_dir)
            .args(["ecr-login", "push-cli"]),
        None,
    );
    assert_eq!(out, "123456789012-auth-token\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_refusing_is_ecr_failed() {
    // ECR "at" an address where nothing listens: the vend succeeds, the exchange fails.
    let extra = format!(
        "[endpoints]\necr = \"http://127.0.0.1:{}\"\n",
        idfed_tests::free_port()
    );
    let server = TestServer::start(vec![user("alice", &["devs"])], &extra).await;
    server
        .service
        .store
        .create_connector(role_connector("push", "main", &["devs"]))
        .unwrap();
    let alice = server.login("alice").await;
    let (status, body) = ecr_login(&server, &alice, "push").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], json!("ecr_failed"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codeartifact_token_is_made_with_the_vended_credentials() {
    let codeartifact = idfed_tests::codeartifact::CodeArtifact::start().await;
    let extra = format!(
        "[endpoints]\ncodeartifact = {:?}\n",
        codeartifact.endpoint()
    );
    let server = TestServer::start(
        vec![user("alice", &["devs"]), user("bob", &["ops"])],
        &extra,
    )
    .await;
    server
        .service
        .store
        .create_connector(role_connector("packages", "main", &["devs"]))
        .unwrap();
    let alice = server.login("alice").await;
    let token_request = |token: &str, query: &str| {
        server
            .client
            .post(server.url(&format!(
                "/api/v1/connectors/packages/codeartifact-token?{query}"
            )))
            .bearer_auth(token.to_owned())
            .json(&json!({}))
            .send()
    };

    let answer = token_request(&alice, "domain=my-domain&domain-owner=123456789012")
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    let calls = codeartifact.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(body["token"], json!(calls[0].token));
    humantime::parse_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    // Signed with the credentials just vended (the audit record's key), in the account's region.
    let records = server.records_of("packages");
    assert_eq!(
        records[0].event.access_key_id.as_deref(),
        Some(calls[0].access_key_id.as_str())
    );
    assert!(calls[0].session_token);
    assert_eq!(calls[0].region, "us-east-1");
    assert_eq!(calls[0].domain, "my-domain");
    assert_eq!(calls[0].domain_owner.as_deref(), Some("123456789012"));

    // A bad domain or owner is refused before anything is vended or sent.
    for query in [
        "domain=My_Domain",
        "domain=ok-domain&domain-owner=12345",
        "domain=a",
    ] {
        let answer = token_request(&alice, query).await.unwrap();
        assert_eq!(answer.status(), 400, "{query}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], json!("invalid_request"), "{query}");
    }
    assert_eq!(codeartifact.calls().len(), 1);
    // No domain at all.
    let answer = token_request(&alice, "").await.unwrap();
    assert_eq!(answer.status(), 400);
    // Authorization as for any vend.
    let bob = server.login("bob").await;
    let answer = token_request(&bob, "domain=my-domain").await.unwrap();
    assert_eq!(answer.status(), 403);
    assert_eq!(codeartifact.calls().len(), 1);
    let audited = server.records_of("packages");
    assert_eq!(audited.len(), 2, "one issued, one refused");

    // The CLI prints the token alone.
    let idfed = idfed_tests::idfed_binary();
    let config_dir = server.cli_login("alice");
    let out = run(
        Command::new(&idfed)
            .env("IDFED_CONFIG_DIR", &config_dir)
            .args(["codeartifact-token", "packages", "--domain", "other-domain"]),
        None,
    );
    let last = codeartifact.calls().pop().unwrap();
    assert_eq!(last.domain, "other-domain");
    assert_eq!(out, format!("{}\n", last.token));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_see_an_ecr_login_s_purpose_and_needs_approval_files_an_approval_request() {
    let extra = format!("[endpoints]\necr = {:?}\n", moto::shared().endpoint());
    let server = TestServer::start(vec![user("alice", &["devs"])], &extra).await;
    server
        .service
        .store
        .create_connector(role_connector("push", "main", &["devs"]))
        .unwrap();
    let alice = server.login("alice").await;

    // A 0.2.0 plugin sees what the credentials are for.
    server.bind_only("push", fixtures::CONTRACT_PROBE, r#"{"mode": "echo"}"#);
    let (status, body) = ecr_login(&server, &alice, "push").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], json!("plugin_denied"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(r#""purpose":"service-token:ecr""#),
        "{body}"
    );

    // needs-approval: nothing vended, an approval request for the ECR login (202).
    server.bind_only(
        "push",
        fixtures::CONTRACT_PROBE,
        r#"{"mode": "approval", "group": "release-managers", "reason": "pushes need a release manager"}"#,
    );
    let (status, body) = ecr_login(&server, &alice, "push").await;
    assert_eq!(status, 202, "{body}");
    let approval = &body["approval"];
    assert_eq!(approval["group"], json!("release-managers"));
    assert_eq!(approval["reason"], json!("pushes need a release manager"));
    assert_eq!(approval["purpose"], json!("service-token:ecr"));
    assert!(!body.to_string().contains("auth-token"));
    let records = server.records_of("push");
    let vend = records.iter().find(|r| r.event.action == "vend").unwrap();
    assert_eq!(vend.event.outcome, Outcome::Refused);
    assert_eq!(vend.event.code.as_deref(), Some("approval_pending"));
    assert!(records.iter().all(|r| r.event.access_key_id.is_none()));
}
