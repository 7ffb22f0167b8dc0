//! The HTTP API through `idfed::api::app()` and `tower::ServiceExt::oneshot`: JSON errors with stable codes
//! and the statuses they mean, authentication, body limits, authorization and the metrics, with moto as STS.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use idfed::api::{ApiLimits, AppState, app};
use idfed::auth::lockout::ManualClock;
use idfed::auth::static_dir::{UserEntry, add_user, hash_password};
use idfed::config::Config;
use idfed::model::{AccountInput, AccountSourceInput, Connector, Principal};
use idfed::secret::Secret;
use idfed::service::{Parts, Service};
use idfed::store::Store;
use idfed_tests::moto;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const PASSWORD: &str = "correct-horse-battery";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
}

fn add(path: &std::path::Path, name: &str, groups: &[&str]) {
    let entry = UserEntry {
        name: name.into(),
        display_name: None,
        email: None,
        active: true,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        password_hash: hash_password(&Secret::new(PASSWORD)).unwrap(),
    };
    add_user(path, entry, false).unwrap();
}

impl Fixture {
    fn new() -> Self {
        Self::with_config("")
    }

    /// With `extra` appended to the configuration (sections other than `[server]`, `[data]`, `[auth.*]`).
    fn with_config(extra: &str) -> Self {
        Self::with_parts(extra, |_| {})
    }

    /// With `extra` appended to the configuration, and the service's parts changed by `change` before
    /// the service is built from them.
    fn with_parts(extra: &str, change: impl FnOnce(&mut Parts)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.toml");
        add(&users, "alice", &["devs"]);
        add(&users, "bob", &["ops"]);
        let config = Config::parse(&format!(
            "[server]\nplain_http = true\nbody_limit_bytes = 4096\n[data]\ndir = {:?}\n{}[auth.directory]\ntype = \"static\"\nfile = {:?}\n{extra}",
            dir.path().join("data"),
            idfed_tests::postgres::data_backend_toml(),
            users
        ))
        .unwrap();
        config.check().unwrap();
        let mut parts = Parts::from_config(&config).unwrap();
        change(&mut parts);
        let service = Service::from_parts(parts).unwrap();
        service
            .store
            .put_account(AccountInput {
                name: "main".into(),
                description: String::new(),
                source: AccountSourceInput::IamUser {
                    access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                    secret_access_key: Some(Secret::new(
                        "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",
                    )),
                },
                region: Some("us-east-1".into()),
                sts_endpoint: Some(moto::shared().endpoint()),
            })
            .unwrap();
        service
            .store
            .create_connector(Connector {
                id: Uuid::new_v4(),
                name: "dev-role".into(),
                description: "developers".into(),
                account: "main".into(),
                principal: Principal::AssumedRole {
                    role_arn: "arn:aws:iam::123456789012:role/deploy".into(),
                    external_id: None,
                    session_tags: vec![],
                    source_identity: false,
                },
                policy: None,
                policy_arns: vec![],
                default_duration_seconds: None,
                max_duration_seconds: None,
                groups: vec!["devs".into()],
                system_scope: false,
                enabled: true,
                credential_cache: false,
                bindings: vec![],
            })
            .unwrap();
        let state = AppState::new(Arc::new(service), ApiLimits::from(&config.server));
        Fixture { _dir: dir, state }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, body)
    }

    async fn login(&self, user: &str) -> String {
        let (status, _, body) = self
            .send(json_request(
                "POST",
                "/api/v1/login",
                None,
                json!({"username": user, "password": PASSWORD}).to_string(),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

fn json_request(method: &str, uri: &str, token: Option<&str>, body: String) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::from(body)).unwrap()
}

fn get(uri: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().uri(uri);
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(Body::empty()).unwrap()
}

/// Every error: JSON with a code, and a request id.
fn assert_error(
    status: StatusCode,
    headers: &axum::http::HeaderMap,
    body: &Value,
    want: StatusCode,
    code: &str,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(headers.contains_key("x-request-id"));
}

/// The service is built from its parts: given a clock the test moves, a session ends when that clock
/// passes the session's lifetime, not the system's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_built_from_parts_keeps_the_clock_it_was_given() {
    let clock = Arc::new(ManualClock::new());
    let mut session_ttl = None;
    let f = Fixture::with_parts("", |parts| {
        parts.clock = clock.clone();
        session_ttl = Some(parts.auth.session_ttl);
    });
    let token = f.login("alice").await;
    let bearer = format!("Bearer {token}");
    let (s, _, b) = f.send(get("/api/v1/me", Some(&bearer))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    clock.advance(session_ttl.unwrap() - std::time::Duration::from_secs(1));
    let (s, _, b) = f.send(get("/api/v1/me", Some(&bearer))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    clock.advance(std::time::Duration::from_secs(2));
    let (s, h, b) = f.send(get("/api/v1/me", Some(&bearer))).await;
    assert_error(s, &h, &b, StatusCode::UNAUTHORIZED, "invalid_session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_codes_and_statuses() {
    let f = Fixture::new();

    let (s, h, b) = f.send(get("/api/v1/me", None)).await;
    assert_error(s, &h, &b, StatusCode::UNAUTHORIZED, "missing_credentials");
    let (s, h, b) = f
        .send(get("/api/v1/connectors", Some("Bearer idfs_forged")))
        .await;
    assert_error(s, &h, &b, StatusCode::UNAUTHORIZED, "invalid_session");
    let (s, h, b) = f
        .send(get("/api/v1/connectors", Some("Bearer idfed_nope")))
        .await;
    assert_error(s, &h, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:wrong-password");
    let (s, h, b) = f
        .send(get("/api/v1/me", Some(&format!("Basic {basic}"))))
        .await;
    assert_error(s, &h, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/login",
            None,
            json!({"username": "alice", "password": "nope"}).to_string(),
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::UNAUTHORIZED, "invalid_credentials");

    let token = f.login("alice").await;
    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/connectors/dev-role/credentials",
            Some(&token),
            "{not json".into(),
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_json");
    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/connectors/dev-role/credentials",
            Some(&token),
            r#"{"format":"yaml"}"#.into(),
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_json");
    let (s, h, b) = f
        .send(json_request("POST", "/api/v1/login", None, "[1,2".into()))
        .await;
    assert_error(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_json");
    // An array is not a request, even one serde could read as the struct's fields in order.
    let before = f.state.service.audit.head().unwrap().seq;
    for body in [
        r#"[900, null, "env"]"#,
        r#" ["json"]"#,
        "900",
        r#""env""#,
        "null",
    ] {
        let (s, h, b) = f
            .send(json_request(
                "POST",
                "/api/v1/connectors/dev-role/credentials",
                Some(&token),
                body.into(),
            ))
            .await;
        assert_error(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_json");
        assert!(
            b.to_string().contains("must be a JSON object"),
            "{body}: {b}"
        );
    }
    assert_eq!(
        f.state.service.audit.head().unwrap().seq,
        before,
        "a refused body reaches no vend"
    );
    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/login",
            None,
            json!({"username": "alice", "password": "x", "pasword": "y"}).to_string(),
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_json");
    assert!(b.to_string().contains("pasword"), "{b}");
    let big = json!({"policy": "x".repeat(10_000)}).to_string();
    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/connectors/dev-role/credentials",
            Some(&token),
            big,
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/connectors/dev-role/credentials",
            Some(&token),
            r#"{"duration_seconds": 60}"#.into(),
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::BAD_REQUEST, "invalid_request");

    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/connectors/nope/credentials",
            Some(&token),
            "{}".into(),
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::NOT_FOUND, "connector_not_found");
    let (s, h, b) = f
        .send(get(
            "/api/v1/connectors/nope",
            Some(&format!("Bearer {token}")),
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::NOT_FOUND, "connector_not_found");
    let (s, h, b) = f.send(get("/api/v1/nothing-here", None)).await;
    assert_error(s, &h, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, h, b) = f
        .send(
            Request::builder()
                .method("DELETE")
                .uri("/api/v1/me")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(
        s,
        &h,
        &b,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // bob is not in the connector's groups.
    let bob = f.login("bob").await;
    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/connectors/dev-role/credentials",
            Some(&bob),
            "{}".into(),
        ))
        .await;
    assert_error(s, &h, &b, StatusCode::FORBIDDEN, "forbidden");
    let (s, _, b) = f
        .send(get("/api/v1/connectors", Some(&format!("Bearer {bob}"))))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["connectors"], json!([]));

    // Logout ends the session.
    let (s, _, _) = f
        .send(json_request(
            "POST",
            "/api/v1/logout",
            Some(&bob),
            String::new(),
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, h, b) = f
        .send(get("/api/v1/me", Some(&format!("Bearer {bob}"))))
        .await;
    assert_error(s, &h, &b, StatusCode::UNAUTHORIZED, "invalid_session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vend_is_served_and_counted() {
    let f = Fixture::new();
    let token = f.login("alice").await;
    let (s, _, me) = f
        .send(get("/api/v1/me", Some(&format!("Bearer {token}"))))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["name"], "alice");
    let (s, _, list) = f
        .send(get("/api/v1/connectors", Some(&format!("Bearer {token}"))))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["connectors"][0]["name"], "dev-role");
    assert_eq!(list["connectors"][0]["principal_type"], "assumed-role");

    let (s, h, b) = f
        .send(json_request(
            "POST",
            "/api/v1/connectors/dev-role/credentials",
            Some(&token),
            String::new(),
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(h.contains_key("x-request-id"));
    assert!(
        b["access_key_id"].as_str().unwrap().starts_with("ASIA"),
        "{b}"
    );
    assert!(b["secret_access_key"].as_str().unwrap().len() >= 20);
    assert!(b["expiration"].as_str().unwrap().ends_with('Z'));
    assert_eq!(b["duration_seconds"], 3600);
    assert_eq!(b["connector"], "dev-role");

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let (s, _, who) = f
        .send(get(
            "/api/v1/connectors/dev-role/caller-identity",
            Some(&format!("Basic {basic}")),
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{who}");
    assert_eq!(who["account"], "123456789012");
    assert!(who["arn"].as_str().unwrap().contains("deploy"), "{who}");

    let bob = f.login("bob").await;
    let _ = f
        .send(json_request(
            "POST",
            "/api/v1/connectors/dev-role/credentials",
            Some(&bob),
            "{}".into(),
        ))
        .await;

    let response = app(f.state.clone())
        .oneshot(get("/metrics", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("idfed_vends_total{connector=\"dev-role\",outcome=\"issued\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("idfed_vends_total{connector=\"dev-role\",outcome=\"forbidden\"} 1"),
        "{text}"
    );
    assert!(text.contains("idfed_auth_cache_misses_total"), "{text}");
    assert!(
        text.contains("# TYPE idfed_vend_duration_seconds histogram\n"),
        "{text}"
    );
    // Every vend is timed, by connector and outcome: two issued (the second for caller-identity), one refused.
    for (series, count) in [
        (
            "idfed_vend_duration_seconds_bucket{connector=\"dev-role\",outcome=\"issued\",le=\"+Inf\"}",
            2,
        ),
        (
            "idfed_vend_duration_seconds_count{connector=\"dev-role\",outcome=\"forbidden\"}",
            1,
        ),
        (
            "idfed_sts_request_duration_seconds_count{operation=\"AssumeRole\",outcome=\"ok\"}",
            2,
        ),
        (
            "idfed_sts_request_duration_seconds_count{operation=\"GetCallerIdentity\",outcome=\"ok\"}",
            1,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(count), "{series} in {text}");
    }
    let took = sample_f64(
        &text,
        "idfed_vend_duration_seconds_sum{connector=\"dev-role\",outcome=\"issued\"}",
    );
    assert!(took.is_some_and(|s| s > 0.0), "{text}");
    let sts = sample_f64(
        &text,
        "idfed_sts_request_duration_seconds_sum{operation=\"AssumeRole\",outcome=\"ok\"}",
    );
    assert!(
        sts.is_some_and(|s| s > 0.0 && s <= took.unwrap()),
        "STS time is part of the vends' time: {text}"
    );

    // With a metrics token configured, /metrics is for its holder only.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "prometheus-scrape-token-0123\n").unwrap();
    let server: idfed::config::ServerConfig = idfed::config::Config::parse(&format!(
        "[server]\nplain_http = true\nmetrics_token_file = {token_file:?}\n[auth.directory]\ntype = \"static\"\nfile = \"u\"\n"
    ))
    .unwrap()
    .server;
    let guarded = f
        .state
        .clone()
        .with_metrics_token(server.metrics_token().unwrap());
    let scrape = |authorization: Option<&'static str>| {
        let guarded = guarded.clone();
        async move {
            app(guarded)
                .oneshot(get("/metrics", authorization))
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(scrape(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(Some("Bearer wrong-token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scrape(Some("Bearer prometheus-scrape-token-0123")).await,
        StatusCode::OK
    );
    std::fs::write(&token_file, "short\n").unwrap();
    assert!(server.metrics_token().is_err(), "a short token is refused");

    let (s, _, ready) = f.send(get("/readyz", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ready["directory"], "static");
    assert_eq!(ready["sso"], false, "no SSO with the static directory");
    f.state.service.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_past_its_share_answers_503_plugin_busy_with_retry_after() {
    // The sleeper holds the binding's one slot until its deadline: a long one, so that the second request
    // surely finds the slot taken even on a loaded machine.
    let f = Fixture::with_config(
        "[plugins]\nmax_concurrent_per_binding = 1\nqueue_ms = 1\ndeadline_ms = 2000\n",
    );
    let store = &f.state.service.store;
    let digest = store
        .put_plugin(
            &std::fs::read(idfed_tests::fixtures::SLEEPER).unwrap(),
            None,
        )
        .unwrap();
    let read = store.get_connector("dev-role").unwrap().unwrap();
    let mut bound = read.clone();
    bound.bindings.push(idfed::model::BindingSpec {
        id: Uuid::new_v4().to_string(),
        plugin: digest,
        config: r#"{"sleep_ms": 10000}"#.into(),
        limits: None,
        tag_keys: Vec::new(),
    });
    store.update_connector(bound, &read).unwrap();
    let token = f.login("alice").await;
    let vend = || {
        f.send(json_request(
            "POST",
            "/api/v1/connectors/dev-role/credentials",
            Some(&token),
            "{}".into(),
        ))
    };
    let (first, second) = tokio::join!(vend(), vend());
    let mut answers = [first, second];
    answers.sort_by_key(|(status, _, _)| *status);
    let [
        (timeout_status, _, timeout),
        (busy_status, busy_headers, busy),
    ] = answers;
    assert_eq!(timeout_status, StatusCode::BAD_GATEWAY, "{timeout}");
    assert_eq!(timeout["error"]["code"], "plugin_timeout");
    assert_eq!(busy_status, StatusCode::SERVICE_UNAVAILABLE, "{busy}");
    assert_eq!(busy["error"]["code"], "plugin_busy");
    assert_eq!(busy_headers[header::RETRY_AFTER], "1");
}

/// The value of the sample `series` (its name and labels, as exposed) in a scrape.
fn sample_f64(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The value of a counting sample (a `_count`, a `_bucket`, a counter).
fn sample(text: &str, series: &str) -> Option<u64> {
    sample_f64(text, series).map(|v| v as u64)
}
