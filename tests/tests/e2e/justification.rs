//! A caller's justification and ticket (`justification`, `ticket` in the API; `--reason`, `--ticket` on
//! the command line): checked before anything else, passed to the connector's 0.2 plugins with what the
//! credentials are for, and kept in the audit record of the request they came with.

use std::process::Command;

use idfed::audit::Outcome;
use idfed::store::Store;
use idfed_tests::fixtures;
use idfed_tests::server::{TestServer, role_connector, user};
use serde_json::{Value, json};

async fn start() -> TestServer {
    let server = TestServer::start(vec![user("alice", &["devs"])], "").await;
    server
        .service
        .store
        .create_connector(role_connector("deploy", "main", &["devs"]))
        .unwrap();
    server
}

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    let answer = server
        .client
        .post(server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// What the probe plugin (mode `echo`) saw, from its denial's reason.
fn seen(body: &Value) -> Value {
    assert_eq!(body["error"]["code"], json!("plugin_denied"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    let start = message.find('{').expect("the probe's JSON");
    serde_json::from_str(&message[start..]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_see_the_reason_and_ticket_of_each_kind_of_request_and_the_audit_log_keeps_them() {
    let server = start().await;
    let alice = server.login("alice").await;
    server.bind_only("deploy", fixtures::CONTRACT_PROBE, r#"{"mode": "echo"}"#);

    let (status, body) = post(
        &server,
        &alice,
        "/api/v1/connectors/deploy/credentials",
        json!({"justification": "  hotfix for\nINC-7\t ", "ticket": " INC-7 "}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let saw = seen(&body);
    assert_eq!(saw["justification"], json!("hotfix for\nINC-7"));
    assert_eq!(saw["ticket"], json!("INC-7"));
    assert_eq!(saw["purpose"], json!("credentials"));
    let record = &server.records_of("deploy")[0].event;
    assert_eq!(record.outcome, Outcome::PluginDenied);
    assert_eq!(record.justification.as_deref(), Some("hotfix for\nINC-7"));
    assert_eq!(record.ticket.as_deref(), Some("INC-7"));

    let (status, body) = post(
        &server,
        &alice,
        "/api/v1/connectors/deploy/console-url",
        json!({"justification": "look at the logs"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let saw = seen(&body);
    assert_eq!(saw["justification"], json!("look at the logs"));
    assert_eq!(saw["ticket"], Value::Null);
    assert_eq!(saw["purpose"], json!("console-sign-in"));

    // Blank is none.
    let (_, body) = post(
        &server,
        &alice,
        "/api/v1/connectors/deploy/credentials",
        json!({"justification": " \n ", "ticket": ""}),
    )
    .await;
    let saw = seen(&body);
    assert_eq!(saw["justification"], Value::Null);
    assert_eq!(saw["ticket"], Value::Null);
    assert!(server.records_of("deploy")[0].event.justification.is_none());

    // Without the plugin, the credentials' own record keeps them.
    let current = server
        .service
        .store
        .get_connector("deploy")
        .unwrap()
        .unwrap();
    let mut unbound = current.clone();
    unbound.bindings.clear();
    server
        .service
        .store
        .update_connector(unbound, &current)
        .unwrap();
    let (status, body) = post(
        &server,
        &alice,
        "/api/v1/connectors/deploy/credentials",
        json!({"justification": "release 4.2", "ticket": "CHG-9"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let record = &server.records_of("deploy")[0].event;
    assert_eq!(record.outcome, Outcome::Issued);
    assert_eq!(
        record.access_key_id.as_deref(),
        body["access_key_id"].as_str()
    );
    assert_eq!(record.justification.as_deref(), Some("release 4.2"));
    assert_eq!(record.ticket.as_deref(), Some("CHG-9"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_too_long_or_with_control_characters_is_refused_before_any_plugin() {
    let server = start().await;
    let alice = server.login("alice").await;
    server.bind_only("deploy", fixtures::CONTRACT_PROBE, r#"{"mode": "echo"}"#);
    for (body, field) in [
        (json!({"justification": "x".repeat(1025)}), "justification"),
        (json!({"justification": "a\u{7}b"}), "justification"),
        (json!({"ticket": "t".repeat(129)}), "ticket"),
        (json!({"ticket": "OPS-1\nOPS-2"}), "ticket"),
    ] {
        let (status, answer) = post(
            &server,
            &alice,
            "/api/v1/connectors/deploy/credentials",
            body,
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], json!("invalid_request"));
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
        // Refused before the plugin ran: no denial, and nothing the caller sent is in the record.
        let record = &server.records_of("deploy")[0].event;
        assert_eq!(record.outcome, Outcome::Refused);
        assert_eq!(record.code.as_deref(), Some("invalid_request"));
        assert!(record.binding.is_none() && record.justification.is_none());
    }
    // The limits themselves are allowed (the probe answers their lengths).
    server.bind_only("deploy", fixtures::CONTRACT_PROBE, r#"{"mode": "lengths"}"#);
    let (status, body) = post(
        &server,
        &alice,
        "/api/v1/connectors/deploy/credentials",
        json!({"justification": "é".repeat(512), "ticket": "t".repeat(128)}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let saw = seen(&body);
    assert_eq!(saw["justification_bytes"], json!(1024));
    assert_eq!(saw["ticket_bytes"], json!(128));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_sends_reason_and_ticket_with_creds_and_exec() {
    let server = start().await;
    server.bind_only("deploy", fixtures::CONTRACT_PROBE, r#"{"mode": "echo"}"#);
    let config_dir = server.cli_login("alice");
    let idfed = |args: &[&str]| {
        Command::new(idfed_tests::idfed_binary())
            .env("IDFED_CONFIG_DIR", &config_dir)
            .env_remove("IDFED_SERVER")
            .args(args)
            .output()
            .unwrap()
    };
    let out = idfed(&[
        "creds",
        "deploy",
        "--reason",
        "rotate keys",
        "--ticket",
        "OPS-5",
    ]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains(r#""justification":"rotate keys""#) && error.contains(r#""ticket":"OPS-5""#),
        "{error}"
    );
    let out = idfed(&[
        "exec", "deploy", "--reason", "migrate", "--ticket", "OPS-6", "--", "true",
    ]);
    assert!(!out.status.success());
    let record = &server.records_of("deploy")[0].event;
    assert_eq!(record.justification.as_deref(), Some("migrate"));
    assert_eq!(record.ticket.as_deref(), Some("OPS-6"));
    server.stop().await;
}
