//! Workload identity: a CI job's OIDC ID token as the caller, checked against the issuer stand-in of
//! `tests/src/oidc.rs` (OpenID discovery, a JWKS with RSA and EC keys, rotation) on loopback — with the
//! real `idfed` binary as the CLI (`creds`, `exec` with the AWS CLI as the child) and over HTTP; every
//! way a token can be wrong, each refused with its own code and nothing vended; and how the issuer's keys
//! are fetched: rotation, made-up `kid`s, a slow or failing issuer, redirects, HTTPS.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use idfed::audit::{AuditFilter, Outcome};
use idfed::store::Store;
use idfed_tests::moto;
use idfed_tests::oidc::{KeyKind, OidcIssuer};
use idfed_tests::server::{TestServer, role_connector, user, venv};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://idfed.test";

/// A server trusting `issuer` (by discovery unless `keys` says otherwise) with the rules: `org/app` on
/// `main` may use `deploy-prod` and `not-system`, any `org/*` repository `read-only`; `deploy-prod`,
/// `read-only` and `other` have system scope, `not-system` has not.
async fn server_trusting(issuer: &OidcIssuer, keys: &str) -> TestServer {
    let extra = format!(
        r#"
[[workload.issuers]]
name = "ci"
issuer = "{}"
audience = "{AUDIENCE}"
caller = "{{repository}}@{{ref}}"
{keys}
[[workload.issuers.rules]]
claims = {{ repository = "org/app", ref = "refs/heads/main" }}
connectors = ["deploy-prod", "not-system"]
[[workload.issuers.rules]]
claims = {{ repository = "org/*" }}
connectors = ["read-only"]
"#,
        issuer.issuer()
    );
    let server = TestServer::start(vec![user("alice", &["devs"])], &extra).await;
    for (name, system_scope) in [
        ("deploy-prod", true),
        ("read-only", true),
        ("other", true),
        ("not-system", false),
    ] {
        let mut connector = role_connector(name, "main", &[]);
        connector.system_scope = system_scope;
        server.service.store.create_connector(connector).unwrap();
    }
    server
}

/// The claims of a `main` build of `org/app`, with `extra` merged over them.
fn main_build(issuer: &OidcIssuer, extra: Value) -> Value {
    let mut claims = json!({"repository": "org/app", "ref": "refs/heads/main"});
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    issuer.claims(AUDIENCE, claims)
}

async fn vend(server: &TestServer, token: &str, connector: &str) -> (u16, Value) {
    let answer = server
        .client
        .post(server.url(&format!("/api/v1/connectors/{connector}/credentials")))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

/// A token's signature part: what must never be logged or stored (its header and claims are no secret).
/// An unsigned token has none: then its claims part, which nothing should echo either.
fn signature(token: &str) -> &str {
    let mut parts = token.rsplit('.');
    let signature = parts.next().unwrap();
    if signature.is_empty() {
        parts.next().unwrap()
    } else {
        signature
    }
}

fn output(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn issued(server: &TestServer) -> Vec<idfed::audit::AuditRecord> {
    server
        .service
        .audit
        .query(&AuditFilter::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.event.outcome == Outcome::Issued)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_job_gets_credentials_with_its_oidc_token_from_the_cli_and_exec() {
    let issuer = OidcIssuer::start().await;
    let server = server_trusting(&issuer, "").await;
    let token = issuer.sign(KeyKind::Rsa, &main_build(&issuer, json!({})));

    // Over HTTP: who idfed takes it for, and the credentials.
    let me: Value = server
        .client
        .get(server.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["kind"], json!("workload"));
    assert_eq!(me["name"], json!("ci:org/app@refs/heads/main"));
    assert_eq!(me["issuer"], json!("ci"));
    assert_eq!(
        me["connector_names"],
        json!(["deploy-prod", "not-system", "read-only"])
    );
    let (status, creds) = vend(&server, &token, "deploy-prod").await;
    assert_eq!(status, 200, "{creds}");
    assert!(creds["access_key_id"].as_str().unwrap().starts_with("ASIA"));
    let records = issued(&server);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].event.caller.as_deref(),
        Some("ci:org/app@refs/heads/main")
    );
    assert_eq!(records[0].event.caller_kind.as_deref(), Some("workload"));
    // The token itself is in no record.
    let audit = serde_json::to_string(&records).unwrap();
    assert!(!audit.contains(signature(&token)));

    // An EC-signed token is as good.
    let ec = issuer.sign(KeyKind::Ec, &main_build(&issuer, json!({})));
    let (status, body) = vend(&server, &ec, "read-only").await;
    assert_eq!(status, 200, "{body}");

    // What the rules do not grant: a connector they do not name, one without system scope.
    for connector in ["other", "not-system"] {
        let (status, body) = vend(&server, &token, connector).await;
        assert_eq!(status, 403, "{connector}: {body}");
        assert_eq!(body["error"]["code"], json!("forbidden"));
    }
    // A feature branch gets read-only, not deploy-prod.
    let branch = issuer.sign(
        KeyKind::Rsa,
        &main_build(&issuer, json!({"ref": "refs/heads/feature"})),
    );
    assert_eq!(vend(&server, &branch, "read-only").await.0, 200);
    assert_eq!(vend(&server, &branch, "deploy-prod").await.0, 403);

    // The CLI, with the token in a file and no session kept.
    let idfed = idfed_tests::idfed_binary();
    let token_file = server.dir.path().join("oidc-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let no_session = server.dir.path().join("no-session");
    let cli = |args: &[&str]| {
        let mut command = server.aws_command(&idfed);
        command
            .env("IDFED_CONFIG_DIR", &no_session)
            .env("IDFED_SERVER", server.url(""))
            .env("IDFED_WORKLOAD_TOKEN_FILE", &token_file)
            .args(args);
        command
    };
    let out = output(&mut cli(&["creds", "deploy-prod", "--format", "json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let creds: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(creds["access_key_id"].as_str().unwrap().starts_with("ASIA"));

    // `idfed exec` with the AWS CLI as the child: the role session is named after the workload.
    let out = output(
        cli(&["exec", "deploy-prod", "--"])
            .arg(venv("aws"))
            .args(["sts", "get-caller-identity", "--output", "json"])
            .args(["--endpoint-url", &moto::shared().endpoint()]),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let identity: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn = identity["Arn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:sts::123456789012:assumed-role/deploy-prod/ci"),
        "{arn}"
    );
    assert!(arn.contains("org"), "{arn}");

    // The variable wins over nothing else: a bad token there is refused with its code.
    let out = output(cli(&["creds", "deploy-prod"]).env(
        "IDFED_WORKLOAD_TOKEN",
        issuer.sign(KeyKind::Rsa, &main_build(&issuer, json!({"aud": "other"}))),
    ));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("(workload_audience_mismatch)"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains(signature(&token)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_with_its_own_code_and_nothing_is_vended() {
    let issuer = OidcIssuer::start().await;
    let server = server_trusting(&issuer, &format!("jwks_url = \"{}\"", issuer.jwks_url())).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = main_build(&issuer, json!({}));
    let wrong_issuer = OidcIssuer::start().await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "expired",
            issuer.sign(
                KeyKind::Rsa,
                &main_build(
                    &issuer,
                    json!({"iat": now - 900, "nbf": now - 900, "exp": now - 300}),
                ),
            ),
            401,
            "workload_token_expired",
        ),
        (
            "not yet valid",
            issuer.sign(
                KeyKind::Ec,
                &main_build(&issuer, json!({"nbf": now + 600, "exp": now + 900})),
            ),
            401,
            "workload_token_not_yet_valid",
        ),
        (
            "wrong issuer",
            wrong_issuer.sign(
                KeyKind::Rsa,
                &wrong_issuer.claims(
                    AUDIENCE,
                    json!({"repository": "org/app", "ref": "refs/heads/main"}),
                ),
            ),
            401,
            "workload_issuer_unknown",
        ),
        (
            "wrong audience",
            issuer.sign(
                KeyKind::Rsa,
                &main_build(&issuer, json!({"aud": "https://elsewhere"})),
            ),
            401,
            "workload_audience_mismatch",
        ),
        (
            "unknown kid",
            issuer.sign_with_header(
                KeyKind::Rsa,
                json!({"alg": "RS256", "typ": "JWT", "kid": "not-a-key"}),
                &good,
            ),
            401,
            "workload_key_unknown",
        ),
        (
            "alg none",
            issuer.unsigned(&good),
            401,
            "workload_algorithm_refused",
        ),
        (
            "HMAC keyed with the public key",
            issuer.hmac_with_public_key(&good),
            401,
            "workload_algorithm_refused",
        ),
        (
            "an RSA kid with ES256",
            issuer.sign_with_header(
                KeyKind::Ec,
                json!({"alg": "ES256", "typ": "JWT", "kid": issuer.kid(KeyKind::Rsa)}),
                &good,
            ),
            401,
            "workload_algorithm_refused",
        ),
        (
            "signed by another issuer's key under this one's kid",
            wrong_issuer.sign_with_header(
                KeyKind::Rsa,
                json!({"alg": "RS256", "typ": "JWT", "kid": issuer.kid(KeyKind::Rsa)}),
                &good,
            ),
            401,
            "workload_signature_invalid",
        ),
        (
            "no iat",
            issuer.sign(KeyKind::Rsa, &main_build(&issuer, json!({"iat": null}))),
            401,
            "workload_claim_missing",
        ),
        (
            "exp as a fraction",
            issuer.sign(
                KeyKind::Ec,
                &main_build(&issuer, json!({"exp": (now + 300) as f64 + 0.5})),
            ),
            401,
            "workload_claim_missing",
        ),
        (
            "issued in the future",
            issuer.sign(
                KeyKind::Rsa,
                &main_build(
                    &issuer,
                    json!({"iat": now + 600, "nbf": null, "exp": now + 900}),
                ),
            ),
            401,
            "workload_token_not_yet_valid",
        ),
        (
            "living longer than 6 hours",
            issuer.sign(
                KeyKind::Rsa,
                &main_build(&issuer, json!({"exp": now + 6 * 3600 + 60})),
            ),
            401,
            "workload_token_expired",
        ),
        (
            "aud neither text nor a list",
            issuer.sign(KeyKind::Rsa, &main_build(&issuer, json!({"aud": 7}))),
            401,
            "workload_token_malformed",
        ),
        (
            "a claim no rule matches",
            issuer.sign(
                KeyKind::Rsa,
                &main_build(&issuer, json!({"repository": "evil/app"})),
            ),
            403,
            "workload_not_allowed",
        ),
    ];
    for (case, token, status, code) in &cases {
        let (answered, body) = vend(&server, token, "deploy-prod").await;
        assert_eq!(answered, *status, "{case}: {body}");
        assert_eq!(body["error"]["code"], json!(code), "{case}: {body}");
        assert!(body.get("access_key_id").is_none(), "{case}");
        assert!(!body.to_string().contains(signature(token)), "{case}");
    }
    assert!(issued(&server).is_empty());
    // The refusals were about the tokens: the good one goes through.
    let (status, body) = vend(&server, &issuer.sign(KeyKind::Rsa, &good), "deploy-prod").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(issued(&server).len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_is_seen_at_once_and_retired_keys_are_refused() {
    let issuer = OidcIssuer::start().await;
    // The least gap between fetches (1 s): once it has passed, the first token signed with a new key fetches
    // the keys again at once.
    let server = server_trusting(
        &issuer,
        &format!(
            "jwks_url = \"{}\"\njwks_refresh_min_seconds = 1",
            issuer.jwks_url()
        ),
    )
    .await;
    let claims = main_build(&issuer, json!({}));
    assert_eq!(
        vend(&server, &issuer.sign(KeyKind::Rsa, &claims), "deploy-prod")
            .await
            .0,
        200
    );
    let fetches = issuer.jwks_fetches();
    // Cached: another token costs no fetch.
    assert_eq!(
        vend(&server, &issuer.sign(KeyKind::Ec, &claims), "deploy-prod")
            .await
            .0,
        200
    );
    assert_eq!(issuer.jwks_fetches(), fetches);

    issuer.rotate();
    // Past the gap (not a timing assertion: any time over a second will do).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = vend(&server, &issuer.sign(KeyKind::Rsa, &claims), "deploy-prod").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(issuer.jwks_fetches(), fetches + 1);
    let (status, body) = vend(
        &server,
        &issuer.sign_with_retired(KeyKind::Rsa, &claims),
        "deploy-prod",
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], json!("workload_key_unknown"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_kids_do_not_make_idfed_hammer_the_issuer() {
    let issuer = OidcIssuer::start().await;
    let server = server_trusting(&issuer, &format!("jwks_url = \"{}\"", issuer.jwks_url())).await;
    let claims = main_build(&issuer, json!({}));
    assert_eq!(
        vend(&server, &issuer.sign(KeyKind::Rsa, &claims), "deploy-prod")
            .await
            .0,
        200
    );
    let fetches = issuer.jwks_fetches();
    for n in 0..20 {
        let token = issuer.sign_with_header(
            KeyKind::Rsa,
            json!({"alg": "RS256", "kid": format!("made-up-{n}")}),
            &claims,
        );
        let (status, body) = vend(&server, &token, "deploy-prod").await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], json!("workload_key_unknown"));
        // The message says when the keys may be fetched again.
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("may be fetched again in"), "{message}");
    }
    // And Retry-After says when, too (at most the 30 s gap).
    let token = issuer.sign_with_header(
        KeyKind::Rsa,
        json!({"alg": "RS256", "kid": "made-up-again"}),
        &claims,
    );
    let answer = server
        .client
        .post(server.url("/api/v1/connectors/deploy-prod/credentials"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    let seconds: u64 = answer.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&seconds), "{seconds}");
    // jwks_refresh_min_seconds (30 s by default) since the first fetch: not one more.
    assert_eq!(issuer.jwks_fetches(), fetches);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_whose_keys_cannot_be_had_is_issuer_unavailable_never_an_allow() {
    let issuer = OidcIssuer::start().await;
    let nowhere = format!("http://127.0.0.1:{}/jwks", idfed_tests::free_port());
    let server = server_trusting(&issuer, &format!("jwks_url = \"{nowhere}\"")).await;
    let token = issuer.sign(KeyKind::Rsa, &main_build(&issuer, json!({})));
    let answer = server
        .client
        .post(server.url("/api/v1/connectors/deploy-prod/credentials"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 503);
    assert!(answer.headers().get("retry-after").is_some());
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("workload_issuer_unavailable"));
    assert!(issued(&server).is_empty());
    server.stop().await;
}

/// Waits until `done` holds (at most 10 s).
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_issuer_holds_up_no_token_whose_key_is_cached_and_is_asked_once() {
    let issuer = OidcIssuer::start().await;
    let server = server_trusting(
        &issuer,
        &format!(
            "jwks_url = \"{}\"\njwks_cache_seconds = 1\njwks_refresh_min_seconds = 1",
            issuer.jwks_url()
        ),
    )
    .await;
    let claims = main_build(&issuer, json!({}));
    let token = issuer.sign(KeyKind::Rsa, &claims);
    assert_eq!(vend(&server, &token, "deploy-prod").await.0, 200);
    assert_eq!(issuer.jwks_requests(), 1);

    // The issuer hangs; the cached keys age (jwks_cache_seconds = 1).
    issuer.hold_jwks(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The aged keys still answer, at once, while one refresh hangs in the background. (The bound only
    // keeps a regression from hanging the test: a request held by the fetch would wait 5 s.)
    for _ in 0..5 {
        let (status, body) = tokio::time::timeout(Duration::from_secs(4), async {
            vend(&server, &token, "deploy-prod").await
        })
        .await
        .expect("a token whose key is cached waited for the issuer");
        assert_eq!(status, 200, "{body}");
    }
    until("the background refresh reaches the issuer", || {
        issuer.jwks_requests() == 2
    })
    .await;
    assert_eq!(
        issuer.jwks_requests(),
        2,
        "one refresh, not one per request"
    );

    // A rotation: a token under a new kid waits for the refresh already running, not for one more.
    issuer.rotate();
    let rotated = issuer.sign(KeyKind::Rsa, &claims);
    let waiting = {
        let client = server.client.clone();
        let url = server.url("/api/v1/connectors/deploy-prod/credentials");
        tokio::spawn(async move {
            let answer = client
                .post(url)
                .bearer_auth(&rotated)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            answer.status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    issuer.hold_jwks(false);
    assert_eq!(waiting.await.unwrap(), 200);
    assert_eq!(issuer.jwks_requests(), 2);
    assert_eq!(issuer.jwks_fetches(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_answer_while_the_issuer_fails() {
    let issuer = OidcIssuer::start().await;
    let server = server_trusting(
        &issuer,
        &format!(
            "jwks_url = \"{}\"\njwks_cache_seconds = 1\njwks_refresh_min_seconds = 1",
            issuer.jwks_url()
        ),
    )
    .await;
    let token = issuer.sign(KeyKind::Ec, &main_build(&issuer, json!({})));
    assert_eq!(vend(&server, &token, "deploy-prod").await.0, 200);
    issuer.fail_jwks(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = vend(&server, &token, "deploy-prod").await;
    assert_eq!(status, 200, "{body}");
    until("the refresh is tried", || issuer.jwks_requests() == 2).await;
    // The refresh failed; the keys of the last fetch stay in use (for up to jwks_max_stale_seconds).
    let (status, body) = vend(&server, &token, "deploy-prod").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(issuer.jwks_fetches(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_are_fetched_through_at_most_three_redirects() {
    let three = OidcIssuer::start().await;
    let server = server_trusting(
        &three,
        &format!("jwks_url = \"{}\"", three.jwks_url_via_redirects(3)),
    )
    .await;
    let (status, body) = vend(
        &server,
        &three.sign(KeyKind::Rsa, &main_build(&three, json!({}))),
        "deploy-prod",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;

    let four = OidcIssuer::start().await;
    let server = server_trusting(
        &four,
        &format!("jwks_url = \"{}\"", four.jwks_url_via_redirects(4)),
    )
    .await;
    let (status, body) = vend(
        &server,
        &four.sign(KeyKind::Rsa, &main_build(&four, json!({}))),
        "deploy-prod",
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], json!("workload_issuer_unavailable"));
    assert_eq!(four.jwks_requests(), 0, "the fourth redirect was followed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_issuers_keys_never_come_over_plain_http() {
    let certs = tempfile::tempdir().unwrap();
    // Three issuers over HTTPS (a CA of the test's own): one as it should be; one whose discovery document
    // names a plain-HTTP jwks_uri; one whose JWKS URL redirects to plain HTTP. The plain-HTTP keys are a
    // loopback issuer's, which is never asked.
    let dirs: Vec<_> = (0..3)
        .map(|n| {
            let dir = certs.path().join(n.to_string());
            std::fs::create_dir(&dir).unwrap();
            dir
        })
        .collect();
    let good = OidcIssuer::start_tls(&dirs[0]).await;
    let discovered = OidcIssuer::start_tls(&dirs[1]).await;
    let redirected = OidcIssuer::start_tls(&dirs[2]).await;
    let plain = OidcIssuer::start().await;
    discovered.set_jwks_uri(Some(plain.jwks_url()));
    let mut config = String::new();
    for (name, issuer, keys) in [
        ("good", &good, String::new()),
        ("discovered", &discovered, String::new()),
        (
            "redirected",
            &redirected,
            format!(
                "jwks_url = \"{}\"",
                redirected.redirect_to(&plain.jwks_url())
            ),
        ),
    ] {
        config.push_str(&format!(
            r#"
[[workload.issuers]]
name = "{name}"
issuer = "{}"
audience = "{AUDIENCE}"
ca_file = "{}"
{keys}
[[workload.issuers.rules]]
claims = {{ repository = "org/app" }}
connectors = ["deploy-prod"]
"#,
            issuer.issuer(),
            issuer.ca_file().unwrap().display()
        ));
    }
    let server = TestServer::start(vec![user("alice", &["devs"])], &config).await;
    let mut connector = role_connector("deploy-prod", "main", &[]);
    connector.system_scope = true;
    server.service.store.create_connector(connector).unwrap();

    assert!(good.issuer().starts_with("https://127.0.0.1:"));
    let (status, body) = vend(
        &server,
        &good.sign(KeyKind::Rsa, &main_build(&good, json!({}))),
        "deploy-prod",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(good.jwks_fetches(), 1);

    for issuer in [&discovered, &redirected] {
        let (status, body) = vend(
            &server,
            &issuer.sign(KeyKind::Rsa, &main_build(issuer, json!({}))),
            "deploy-prod",
        )
        .await;
        assert_eq!(status, 503, "{}: {body}", issuer.issuer());
        assert_eq!(body["error"]["code"], json!("workload_issuer_unavailable"));
    }
    assert_eq!(
        plain.jwks_requests(),
        0,
        "keys were fetched over plain HTTP"
    );
    server.stop().await;
}
