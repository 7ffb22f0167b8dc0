//! Behind a TLS-terminating proxy every connection comes from the proxy: with `[server] trusted_proxies`
//! the client is read from `X-Forwarded-For` (or `Forwarded`), so lockout locks out only the client that
//! failed and the audit log records who it was; without it, the headers are not believed.

use idfed_tests::server::{PASSWORD, TestServer, user};
use serde_json::json;

const AUTH: &str = "[auth]\nmax_failures_per_address = 3\n";

async fn login(server: &TestServer, user: &str, password: &str, client: &str) -> (u16, String) {
    let response = server
        .client
        .post(server.url("/api/v1/login"))
        .header("x-forwarded-for", format!("{client}, 127.0.0.1"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// Three failed logins (as three unknown users, so only the address counts) from `client`.
async fn fail_three_times(server: &TestServer, client: &str) {
    for i in 0..3 {
        let (status, code) = login(server, &format!("nobody{i}"), "wrong-password", client).await;
        // The failure that reaches the limit is answered as the lockout it starts.
        let expected = if i < 2 {
            (401, "invalid_credentials")
        } else {
            (429, "too_many_attempts")
        };
        assert_eq!((status, code.as_str()), expected);
    }
}

#[tokio::test]
async fn a_proxied_client_locked_out_locks_out_only_itself() {
    let server = TestServer::start_with_server(
        vec![user("alice", &["dev"])],
        "trusted_proxies = [\"127.0.0.0/8\"]\n",
        AUTH,
    )
    .await;
    fail_three_times(&server, "203.0.113.5").await;
    let (status, code) = login(&server, "alice", PASSWORD, "203.0.113.5").await;
    assert_eq!((status, code.as_str()), (429, "too_many_attempts"));
    // Another client behind the same proxy is not locked out.
    let (status, _) = login(&server, "alice", PASSWORD, "198.51.100.6").await;
    assert_eq!(status, 200);

    // The audit log names the client, not the proxy.
    let response = server
        .client
        .post(server.url("/api/v1/connectors/no-such-connector/credentials"))
        .basic_auth("alice", Some(PASSWORD))
        .header("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let records = server.service.audit.query(&Default::default()).unwrap();
    let record = records
        .iter()
        .find(|r| r.event.connector.as_deref() == Some("no-such-connector"))
        .unwrap_or_else(|| panic!("no audit record: {records:?}"));
    assert_eq!(record.event.source_ip.as_deref(), Some("2001:db8::7"));
    server.stop().await;
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_are_not_believed() {
    let server = TestServer::start_with_server(vec![user("alice", &["dev"])], "", AUTH).await;
    fail_three_times(&server, "203.0.113.5").await;
    // Claiming another address does not escape the lockout of the connection's own.
    let (status, code) = login(&server, "alice", PASSWORD, "198.51.100.6").await;
    assert_eq!((status, code.as_str()), (429, "too_many_attempts"));
    server.stop().await;
}
