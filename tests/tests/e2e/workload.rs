//! Workload identity: a CI job's OIDC ID token as the caller, checked against the issuer stand-in of
//! `tests/src/oidc.rs` (OpenID discovery, a JWKS with RSA and EC keys, rotation) on loopback — with the
//! real `idfed` binary as the CLI (`creds`, `exec` with the AWS CLI as the child) and over HTTP; and every
//! way a token can be wrong, each refused with its own code and nothing vended.

use std::process::{Command, Output, Stdio};

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
    assert!(!audit.contains(&token[token.len() - 40..]));

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
    assert!(!text(&out.stderr).contains(&token[token.len() - 40..]));
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
        assert!(!body.to_string().contains(token.as_str()), "{case}");
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
    // No gap between fetches: the first token signed with a new key fetches the keys again at once.
    let server = server_trusting(
        &issuer,
        &format!(
            "jwks_url = \"{}\"\njwks_refresh_min_seconds = 0",
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
    }
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
