//! Just-in-time approvals end to end: a 0.2 plugin (the contract-probe fixture in `approval` mode) wants
//! an approval by `release-managers`; the requester gets `202` with the request, another member approves
//! it (the requester cannot, nor can a non-member, nor a member dropped from the group before deciding),
//! the repeated request is vended once, and everything is audited. Also: denial, expiry, the duration cap,
//! `idfed creds --wait` with `idfed approvals approve`, and the webhook with its HMAC signature.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idfed::audit::{AuditFilter, Outcome};
use idfed::auth::static_dir::add_user;
use idfed::store::Store;
use idfed_tests::fixtures;
use idfed_tests::server::{TestServer, role_connector, user};
use serde_json::{Value, json};

const GROUP: &str = "release-managers";

/// What the webhook receiver got: the signature header and the body.
type Announcement = (Option<String>, Vec<u8>);

async fn start(extra: &str) -> TestServer {
    let server = TestServer::start(
        vec![
            user("alice", &["devs"]),
            user("bob", &["devs", GROUP]),
            user("carol", &[GROUP]),
            user("dave", &["devs"]),
        ],
        extra,
    )
    .await;
    server
        .service
        .store
        .create_connector(role_connector("prod", "main", &["devs"]))
        .unwrap();
    server.bind_only(
        "prod",
        fixtures::CONTRACT_PROBE,
        &json!({"mode": "approval", "group": GROUP, "reason": "prod needs a release manager",
                "max_duration_seconds": 900})
        .to_string(),
    );
    server
}

async fn call(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let request = match method {
        "GET" => server.client.get(server.url(path)),
        _ => server.client.post(server.url(path)).json(&body),
    };
    let answer = request.bearer_auth(token).send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn vend(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    call(
        server,
        token,
        "POST",
        "/api/v1/connectors/prod/credentials",
        body,
    )
    .await
}

fn actions(server: &TestServer) -> Vec<(String, Outcome)> {
    let mut records = server
        .service
        .audit
        .query(&AuditFilter {
            connector: Some("prod".into()),
            ..AuditFilter::default()
        })
        .unwrap();
    records.reverse();
    records
        .into_iter()
        .map(|r| (r.event.action, r.event.outcome))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_approved_by_another_member_is_vended_once() {
    let server = start("").await;
    let (alice, bob, carol, dave) = (
        server.login("alice").await,
        server.login("bob").await,
        server.login("carol").await,
        server.login("dave").await,
    );
    let asked = json!({"duration_seconds": 3600, "justification": "hotfix", "ticket": "INC-1"});
    let (status, body) = vend(&server, &alice, asked.clone()).await;
    assert_eq!(status, 202, "{body}");
    let approval = &body["approval"];
    assert_eq!(approval["status"], "pending");
    assert_eq!(approval["requester"], "alice");
    assert_eq!(approval["group"], GROUP);
    assert_eq!(approval["reason"], "prod needs a release manager");
    assert_eq!(approval["justification"], "hotfix");
    assert_eq!(approval["max_duration_seconds"], 900);
    let id = approval["id"].as_str().unwrap().to_owned();
    // The same request again is the same pending request.
    let (status, again) = vend(&server, &alice, asked.clone()).await;
    assert_eq!(status, 202);
    assert_eq!(again["approval"]["id"], id.as_str());

    // Who sees it: the requester and the group, not dave.
    let listed = |token: String| {
        let server = &server;
        async move {
            let (_, body) = call(server, &token, "GET", "/api/v1/approvals", Value::Null).await;
            body["approvals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(alice.clone()).await, std::slice::from_ref(&id));
    assert_eq!(listed(carol.clone()).await, std::slice::from_ref(&id));
    assert!(listed(dave.clone()).await.is_empty());

    let approve = |token: String, comment: &str| {
        let (server, id, body) = (&server, id.clone(), json!({"comment": comment}));
        async move {
            call(
                server,
                &token,
                "POST",
                &format!("/api/v1/approvals/{id}/approve"),
                body,
            )
            .await
        }
    };
    // Not the requester, not a non-member.
    let (status, body) = approve(alice.clone(), "me").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );
    let (status, body) = approve(dave.clone(), "me too").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );
    // Not approved yet: still 202.
    assert_eq!(vend(&server, &alice, asked.clone()).await.0, 202);

    let (status, body) = approve(bob.clone(), "go ahead").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["decided_by"], "bob");
    assert_eq!(body["comment"], "go ahead");
    // Decided once.
    let (status, body) = approve(carol.clone(), "late").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );

    // Another request (other justification) is not approved by it.
    let (status, _) = vend(
        &server,
        &alice,
        json!({"duration_seconds": 3600, "justification": "something else", "ticket": "INC-1"}),
    )
    .await;
    assert_eq!(status, 202);
    // The approved request: vended, capped at the approval's 900 s.
    let (status, creds) = vend(&server, &alice, asked.clone()).await;
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["duration_seconds"], 900);
    let (_, shown) = call(
        &server,
        &alice,
        "GET",
        &format!("/api/v1/approvals/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(shown["status"], "used");
    // Once only: the next identical request asks again.
    let (status, body) = vend(&server, &alice, asked.clone()).await;
    assert_eq!(status, 202);
    assert_ne!(body["approval"]["id"], id.as_str());

    let trail: Vec<String> = actions(&server).into_iter().map(|(a, _)| a).collect();
    let position = |action: &str| {
        trail
            .iter()
            .position(|a| a == action)
            .unwrap_or_else(|| panic!("{action} not in {trail:?}"))
    };
    assert!(position("approval.request") < position("approval.approve"));
    assert!(position("approval.approve") < position("approval.use"));
    let issued = actions(&server)
        .into_iter()
        .filter(|(a, o)| a == "vend" && *o == Outcome::Issued)
        .count();
    assert_eq!(issued, 1, "{trail:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_expired_and_dropped_approvers_vend_nothing() {
    let server = start("[approvals]\nrequest_ttl_seconds = 2\nwindow_seconds = 2\n").await;
    let (alice, bob, carol) = (
        server.login("alice").await,
        server.login("bob").await,
        server.login("carol").await,
    );
    // Denied.
    let (_, body) = vend(&server, &alice, json!({"justification": "one"})).await;
    let id = body["approval"]["id"].as_str().unwrap().to_owned();
    let (status, denied) = call(
        &server,
        &carol,
        "POST",
        &format!("/api/v1/approvals/{id}/deny"),
        json!({"comment": "not now"}),
    )
    .await;
    assert_eq!(status, 200, "{denied}");
    assert_eq!(denied["status"], "denied");
    let (status, body) = vend(&server, &alice, json!({"justification": "one"})).await;
    assert_eq!(status, 202);
    assert_ne!(body["approval"]["id"], id.as_str());

    // A pending request nobody decided in time: expired, cannot be approved.
    let (_, body) = vend(&server, &alice, json!({"justification": "two"})).await;
    let stale = body["approval"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = call(
        &server,
        &bob,
        "POST",
        &format!("/api/v1/approvals/{stale}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("conflict")),
        "{body}"
    );
    let (_, shown) = call(
        &server,
        &alice,
        "GET",
        &format!("/api/v1/approvals/{stale}"),
        Value::Null,
    )
    .await;
    assert_eq!(shown["status"], "expired");

    // An approval not used in time is spent.
    let (_, body) = vend(&server, &alice, json!({"justification": "three"})).await;
    let unused = body["approval"]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &server,
        &bob,
        "POST",
        &format!("/api/v1/approvals/{unused}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _) = vend(&server, &alice, json!({"justification": "three"})).await;
    assert_eq!(status, 202);

    // An approver dropped from the group before deciding: the directory is asked at that moment.
    let (_, body) = vend(&server, &alice, json!({"justification": "four"})).await;
    let late = body["approval"]["id"].as_str().unwrap().to_owned();
    add_user(
        &server.dir.path().join("users.toml"),
        user("bob", &["devs"]),
        true,
    )
    .unwrap();
    // The static directory looks at its file at most every 2 s.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = call(
        &server,
        &bob,
        "POST",
        &format!("/api/v1/approvals/{late}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );

    let trail = actions(&server);
    assert!(trail.iter().any(|(a, _)| a == "approval.deny"));
    assert!(trail.iter().any(|(a, _)| a == "approval.expire"));
    assert!(
        !trail
            .iter()
            .any(|(a, o)| a == "vend" && *o == Outcome::Issued)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creds_wait_gets_the_credentials_once_approvals_approve_runs() {
    let server = start("").await;
    let alice = server.cli_login("alice");
    let bob = server.cli_login("bob");
    let idfed = |config: &std::path::Path| {
        let mut command = Command::new(idfed_tests::idfed_binary());
        command
            .env("IDFED_CONFIG_DIR", config)
            .env_remove("IDFED_SERVER");
        command
    };
    // Without --wait: says so, fails.
    let out = idfed(&alice)
        .args(["creds", "prod", "--reason", "deploy"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("approval pending") && error.contains("--wait"),
        "{error}"
    );
    // With --wait: waits for bob.
    let waiting = idfed(&alice)
        .args([
            "creds", "prod", "--reason", "deploy", "--format", "json", "--wait",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = loop {
        let out = idfed(&bob)
            .args(["approvals", "list", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        if let Some(pending) = list["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["status"] == "pending")
        {
            break pending["id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = idfed(&bob)
        .args(["approvals", "approve", &id, "--comment", "ok"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = tokio::task::spawn_blocking(move || waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let creds: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(creds["access_key_id"].as_str().unwrap().starts_with("ASIA"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("approved by bob: ok"));
    // The requester cannot approve from the command line either.
    let out = idfed(&alice)
        .args(["creds", "prod", "--reason", "again"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let list: Value = serde_json::from_slice(
        &idfed(&alice)
            .args(["approvals", "list", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mine = list["approvals"][0]["id"].as_str().unwrap().to_owned();
    let out = idfed(&alice)
        .args(["approvals", "approve", &mine])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_announces_new_requests_signed() {
    let received: Arc<Mutex<Vec<Announcement>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let signature = headers
                        .get("x-idfed-signature")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    sink.lock().unwrap().push((signature, body.to_vec()));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let secret_dir = tempfile::tempdir().unwrap();
    let secret_file = secret_dir.path().join("secret");
    std::fs::write(&secret_file, "hook-secret\n").unwrap();
    let server = start(&format!(
        "[approvals]\nwebhook_url = \"http://127.0.0.1:{port}/hook\"\nwebhook_secret_file = {secret_file:?}\n"
    ))
    .await;
    let alice = server.login("alice").await;
    let (status, body) = vend(&server, &alice, json!({"justification": "hook"})).await;
    assert_eq!(status, 202);
    // Asked again: the same request, not announced twice.
    assert_eq!(
        vend(&server, &alice, json!({"justification": "hook"}))
            .await
            .0,
        202
    );
    let (signature, payload) = loop {
        if let Some(first) = received.lock().unwrap().first().cloned() {
            break first;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let announced: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(announced["event"], "approval.requested");
    assert_eq!(announced["approval"]["id"], body["approval"]["id"]);
    assert_eq!(announced["approval"]["group"], GROUP);
    assert_eq!(
        signature.as_deref(),
        Some(idfed::approvals::signature(b"hook-secret", &payload).as_str())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 1);
    server.stop().await;
}
