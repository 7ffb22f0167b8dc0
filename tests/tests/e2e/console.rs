//! Console sign-in URLs: a real idfed server (plain HTTP on 127.0.0.1) with moto as STS, and a loopback
//! stand-in for the AWS federation endpoint that checks the session it is given carries the vended
//! credentials.
//!
//! The `[console]` settings are per process (`idfed::api::console::configure`), so every case runs in one
//! test, in order.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use idfed::audit::{AuditFilter, Outcome};
use idfed::config::ConsoleConfig;
use idfed::model::{Connector, Principal};
use idfed::store::Store;
use idfed_tests::server::{PASSWORD, TestServer, user};
use serde_json::{Value, json};
use uuid::Uuid;

/// What the stand-in federation endpoint saw, and whether it should fail.
#[derive(Default)]
struct Federation {
    sessions: Mutex<Vec<Value>>,
    fail: AtomicBool,
}

async fn federation(
    State(fed): State<Arc<Federation>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if fed.fail.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    if query.get("Action").map(String::as_str) != Some("getSigninToken") {
        return (StatusCode::BAD_REQUEST, "no Action=getSigninToken").into_response();
    }
    let Some(session) = query
        .get("Session")
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return (StatusCode::BAD_REQUEST, "no Session JSON").into_response();
    };
    let fields_ok = ["sessionId", "sessionKey", "sessionToken"]
        .iter()
        .all(|k| session[k].as_str().is_some_and(|v| !v.is_empty()));
    if !fields_ok || session.as_object().unwrap().len() != 3 {
        return (StatusCode::BAD_REQUEST, "bad Session fields").into_response();
    }
    let token = format!("signin-{}", session["sessionId"].as_str().unwrap());
    fed.sessions.lock().unwrap().push(session);
    axum::Json(json!({"SigninToken": token})).into_response()
}

async fn start_federation() -> (SocketAddr, Arc<Federation>) {
    let fed = Arc::new(Federation::default());
    let app = axum::Router::new()
        .route("/federation", axum::routing::get(federation))
        .with_state(fed.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, fed)
}

fn connector(name: &str, principal: Principal, groups: &[&str]) -> Connector {
    Connector {
        id: Uuid::new_v4(),
        name: name.into(),
        description: String::new(),
        account: "main".into(),
        principal,
        policy: None,
        policy_arns: vec![],
        default_duration_seconds: None,
        max_duration_seconds: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        system_scope: false,
        enabled: true,
        credential_cache: false,
        bindings: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_urls() {
    let (fed_addr, fed) = start_federation().await;
    let endpoint = format!("http://{fed_addr}/federation");
    idfed::api::console::configure(ConsoleConfig {
        federation_endpoint: endpoint.clone(),
        issuer: "idfed-test".into(),
        ..ConsoleConfig::default()
    });

    let server =
        TestServer::start(vec![user("alice", &["devs"]), user("bob", &["others"])], "").await;
    let service = server.service.clone();
    let role = Principal::AssumedRole {
        role_arn: "arn:aws:iam::123456789012:role/deploy".into(),
        external_id: None,
        session_tags: vec![],
        source_identity: false,
    };
    service
        .store
        .create_connector(connector("deploy", role, &["devs"]))
        .unwrap();
    service
        .store
        .create_connector(connector("keys", Principal::IamUser, &["devs"]))
        .unwrap();

    let client = server.client.clone();
    let url = |path: &str| server.url(path);
    let login = |name: &'static str| {
        let client = client.clone();
        let login_url = url("/api/v1/login");
        async move {
            let response = client
                .post(login_url)
                .json(&json!({"username": name, "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let console = |token: String, connector: &'static str, body: Value| {
        let client = client.clone();
        let target = url(&format!("/api/v1/connectors/{connector}/console-url"));
        async move {
            let response = client
                .post(target)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let alice = login("alice").await;

    // The default destination.
    let before = std::time::SystemTime::now();
    let (status, body) = console(alice.clone(), "deploy", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let signin = reqwest::Url::parse(body["url"].as_str().unwrap()).unwrap();
    assert_eq!(
        format!("{}://{}{}", signin.scheme(), fed_addr, signin.path()),
        endpoint
    );
    let pairs: std::collections::HashMap<String, String> =
        signin.query_pairs().into_owned().collect();
    assert_eq!(pairs.len(), 4, "{signin}");
    assert_eq!(pairs["Action"], "login");
    assert_eq!(pairs["Issuer"], "idfed-test");
    assert_eq!(pairs["Destination"], "https://console.aws.amazon.com/");
    let sessions = fed.sessions.lock().unwrap().clone();
    assert_eq!(sessions.len(), 1);
    let key_id = sessions[0]["sessionId"].as_str().unwrap().to_owned();
    assert!(key_id.starts_with("ASIA"), "{key_id}");
    assert_eq!(pairs["SigninToken"], format!("signin-{key_id}"));
    let expires = humantime::parse_rfc3339(body["expires"].as_str().unwrap()).unwrap();
    let validity = expires.duration_since(before).unwrap().as_secs();
    assert!((890..=901).contains(&validity), "{validity}");
    // The session sent is the vend's, as the audit log recorded it.
    let issued = service
        .audit
        .query(&AuditFilter {
            outcome: Some(Outcome::Issued),
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0].event.access_key_id.as_deref(),
        Some(key_id.as_str())
    );
    assert_eq!(issued[0].event.caller.as_deref(), Some("alice"));

    // A destination of the caller's, and a duration.
    let destination = "https://us-east-1.console.aws.amazon.com/s3/home?region=us-east-1&x=a b";
    let (status, body) = console(
        alice.clone(),
        "deploy",
        json!({"destination": destination, "duration_seconds": 1800}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let signin = reqwest::Url::parse(body["url"].as_str().unwrap()).unwrap();
    let pairs: std::collections::HashMap<String, String> =
        signin.query_pairs().into_owned().collect();
    assert_eq!(pairs["Destination"], destination);
    assert_eq!(fed.sessions.lock().unwrap().len(), 2);

    // Not a URL, and an iam-user connector: 400, nothing sent.
    for (connector, request) in [
        ("deploy", json!({"destination": "javascript:alert(1)"})),
        ("keys", json!({})),
    ] {
        let (status, body) = console(alice.clone(), connector, request).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }
    assert_eq!(fed.sessions.lock().unwrap().len(), 2);

    // A user outside the connector's groups: 403, audited as refused.
    let bob = login("bob").await;
    for connector in ["deploy", "keys"] {
        let (status, body) = console(bob.clone(), connector, json!({})).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
    }
    let refused = service
        .audit
        .query(&AuditFilter {
            outcome: Some(Outcome::Refused),
            caller: Some("bob".into()),
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(refused.len(), 2);
    // No credentials at all: 401.
    let response = client
        .post(url("/api/v1/connectors/deploy/console-url"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // The federation endpoint fails, then cannot be reached: a clear 502.
    fed.fail.store(true, Ordering::SeqCst);
    let (status, body) = console(alice.clone(), "deploy", json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "federation_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("500"), "{message}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    idfed::api::console::configure(ConsoleConfig {
        federation_endpoint: format!("http://127.0.0.1:{closed_port}/federation"),
        ..ConsoleConfig::default()
    });
    let (status, body) = console(alice.clone(), "deploy", json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "federation_failed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{body}"
    );
    // Nothing secret in the error.
    assert!(!body.to_string().contains("ASIA"), "{body}");

    drop(service);
    server.stop().await;
}
