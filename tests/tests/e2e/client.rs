//! `idfed-client`, the typed async client (`sdk/client`), against a real idfed server (plain HTTP on
//! 127.0.0.1, moto as STS): a person's session, system-scope API keys, a CI job's OIDC token read from a
//! file for every call, the admin API, the container-credentials endpoint, and every failure typed — idfed's
//! refusals by their stable code and status, a server that is not there, one that is not idfed.

use std::collections::HashMap;
use std::time::Duration;

use idfed::store::Store;
use idfed_client::api::admin::{
    AccountBody, AccountSource, ApiKeyInput, BindingInput, ConnectorDetail, Principal, REDACTED,
};
use idfed_client::api::audit::{AuditQuery, Outcome};
use idfed_client::api::{CredentialProcessBody, CredentialsBody};
use idfed_client::{
    Client, ConsoleRequest, CredentialsRequest, Error, ErrorCode, Format, PrincipalType, Written,
};
use idfed_tests::fixtures;
use idfed_tests::moto;
use idfed_tests::oidc::{KeyKind, OidcIssuer};
use idfed_tests::server::{PASSWORD, TestServer, role_connector, user};
use serde_json::{Value, json};

/// Members of `idfed-admins` are administrators.
const ADMINS: &str = "[auth]\nadmin_groups = [\"idfed-admins\"]\n";

/// A server with `alice` (devs), `bob` (ops) and `root` (idfed-admins), and two connectors on `main`:
/// `deploy` for devs and `ops-only` for ops.
async fn start() -> TestServer {
    start_with(ADMINS).await
}

/// [`start`] with `config` as the extra configuration (it must make `idfed-admins` administrators if
/// the test needs one).
async fn start_with(config: &str) -> TestServer {
    let server = TestServer::start(
        vec![
            user("alice", &["devs"]),
            user("bob", &["ops"]),
            user("root", &["idfed-admins"]),
        ],
        config,
    )
    .await;
    for connector in [
        role_connector("deploy", "main", &["devs"]),
        role_connector("ops-only", "main", &["ops"]),
    ] {
        server.service.store.create_connector(connector).unwrap();
    }
    server
}

/// A client of `server` logged in as `name` (with [`PASSWORD`]).
async fn login(server: &TestServer, name: &str) -> Client {
    Client::new(&server.url(""))
        .unwrap()
        .login(name, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("{name} logs in: {e}"))
}

/// The error of `result`, which must be idfed's refusal with `code` and `status`.
#[track_caller]
fn refused<T>(result: Result<T, Error>, code: ErrorCode, status: u16) -> Error {
    let error = match result {
        Ok(_) => panic!("expected {code} ({status}), got an answer"),
        Err(error) => error,
    };
    match &error {
        Error::Api {
            status: got_status,
            code: got_code,
            message,
            ..
        } => {
            assert_eq!(
                (got_code, *got_status),
                (&code, status),
                "{error} ({error:?})"
            );
            assert!(!message.is_empty() && !message.contains('\n'), "{error:?}");
            assert_eq!(error.code(), Some(&code));
            assert_eq!(error.status(), Some(status));
            assert!(error.to_string().ends_with(&format!("({code})")), "{error}");
        }
        other => panic!("expected {code} ({status}), got {other:?}"),
    }
    error
}

/// The variables of `env`-format credentials: `export NAME='value'` lines.
fn env_vars(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(|line| {
            let assignment = line
                .strip_prefix("export ")
                .unwrap_or_else(|| panic!("not an export line: {line:?}"));
            let (name, value) = assignment.split_once('=').unwrap();
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or_else(|| panic!("{name} is not single-quoted"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

fn assert_rfc3339(text: &str) {
    humantime::parse_rfc3339_weak(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_lists_vends_in_every_format_and_logs_out() {
    let server = start().await;
    let anonymous = Client::builder(&server.url("/"))
        .user_agent("client-e2e/1.0")
        .build()
        .unwrap();
    assert_eq!(anonymous.server(), server.url(""));

    // The login's own answer: a session token, its expiry and who logged in.
    let session = anonymous.login_response("alice", PASSWORD).await.unwrap();
    assert!(session.token.starts_with("idfs_"));
    assert_rfc3339(&session.expires);
    assert_eq!(session.user.name, "alice");
    let alice = anonymous.login("alice", PASSWORD).await.unwrap();

    // Who the caller is.
    let me = alice.me().await.unwrap();
    assert_eq!(me.kind, "user");
    assert_eq!(me.name, "alice");
    assert_eq!(me.groups, Some(vec!["devs".to_owned()]));
    assert_eq!(me.is_admin, Some(false));
    assert_eq!((me.key_id, me.issuer), (None, None));

    // The connectors she may use, and only those.
    let connectors = alice.connectors().await.unwrap();
    let names: Vec<&str> = connectors.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["deploy"]);
    let deploy = &connectors[0];
    assert_eq!(deploy.principal_type, PrincipalType::AssumedRole);
    assert_eq!(deploy.account, "main");
    assert_eq!(deploy.groups, ["devs"]);
    assert!(deploy.enabled && !deploy.system_scope);
    assert_eq!(&alice.connector("deploy").await.unwrap(), deploy);
    assert_eq!(
        &alice.connector(&deploy.id.to_string()).await.unwrap(),
        deploy
    );
    refused(alice.connector("ops-only").await, ErrorCode::Forbidden, 403);
    // An administrator sees every connector.
    let root = login(&server, "root").await;
    let mut all: Vec<String> = root
        .connectors()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    all.sort();
    assert_eq!(all, ["deploy", "ops-only"]);

    // Credentials in idfed's JSON, audited with their access key id and the client's User-Agent.
    let creds = alice
        .credentials(
            "deploy",
            &CredentialsRequest {
                duration_seconds: Some(900),
                ..CredentialsRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(
        creds.access_key_id.starts_with("ASIA"),
        "{}",
        creds.access_key_id
    );
    assert!(!creds.secret_access_key.is_empty() && !creds.session_token.is_empty());
    assert_eq!(creds.duration_seconds, 900);
    assert!(!creds.capped && !creds.cached);
    assert_eq!(creds.connector, "deploy");
    assert_rfc3339(&creds.expiration);
    let records = server.records_of("deploy");
    let record = &records[0].event;
    assert_eq!(record.outcome, idfed::audit::Outcome::Issued);
    assert_eq!(
        record.access_key_id.as_deref(),
        Some(creds.access_key_id.as_str())
    );
    assert_eq!(record.request_id, creds.request_id);
    assert_eq!(record.caller.as_deref(), Some("alice"));
    assert_eq!(record.duration_seconds, Some(900));
    assert_eq!(record.user_agent.as_deref(), Some("client-e2e/1.0"));

    // `credentials` always asks for JSON, whatever format the request names.
    let json_anyway = alice
        .credentials(
            "deploy",
            &CredentialsRequest {
                format: Format::Env,
                ..CredentialsRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(json_anyway.access_key_id.starts_with("ASIA"));

    // Who AWS says they are.
    let identity = alice.caller_identity("deploy").await.unwrap();
    assert_eq!(identity.account, "123456789012");
    assert!(
        identity.arn.contains(":assumed-role/deploy/alice"),
        "{}",
        identity.arn
    );

    // `env`: shell export lines the AWS CLI takes as they are.
    let env = alice
        .credentials_text(
            "deploy",
            &CredentialsRequest {
                duration_seconds: Some(900),
                format: Format::Env,
                ..CredentialsRequest::default()
            },
        )
        .await
        .unwrap();
    let vars = env_vars(env.expose());
    let mut names: Vec<&str> = vars.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "AWS_ACCESS_KEY_ID",
            "AWS_CREDENTIAL_EXPIRATION",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN"
        ]
    );
    assert!(vars["AWS_ACCESS_KEY_ID"].starts_with("ASIA"));
    assert_ne!(vars["AWS_ACCESS_KEY_ID"], creds.access_key_id, "a new vend");
    assert_rfc3339(&vars["AWS_CREDENTIAL_EXPIRATION"]);
    assert_eq!(
        server.records_of("deploy")[0]
            .event
            .access_key_id
            .as_deref(),
        Some(vars["AWS_ACCESS_KEY_ID"].as_str())
    );
    let aws = server.aws_caller_identity(
        vars.iter()
            .filter(|(name, _)| name.as_str() != "AWS_CREDENTIAL_EXPIRATION"),
        &moto::shared().endpoint(),
    );
    assert!(
        aws["Arn"]
            .as_str()
            .unwrap()
            .contains(":assumed-role/deploy/alice"),
        "{aws}"
    );

    // `credential_process`: JSON with Version 1, in PascalCase.
    let process = alice
        .credentials_text(
            "deploy",
            &CredentialsRequest {
                format: Format::CredentialProcess,
                ..CredentialsRequest::default()
            },
        )
        .await
        .unwrap();
    let raw: Value = serde_json::from_str(process.expose()).unwrap();
    assert_eq!(raw["Version"], json!(1));
    let parsed: CredentialProcessBody = serde_json::from_str(process.expose()).unwrap();
    assert_eq!(parsed.version, 1);
    assert!(parsed.access_key_id.starts_with("ASIA"));
    assert!(!parsed.secret_access_key.is_empty() && !parsed.session_token.is_empty());
    assert_rfc3339(&parsed.expiration);
    assert_eq!(
        server.records_of("deploy")[0]
            .event
            .access_key_id
            .as_deref(),
        Some(parsed.access_key_id.as_str())
    );

    // `ini`: a credentials-file section named after the connector; `json`: idfed's JSON as text.
    let ini = alice
        .credentials_text(
            "deploy",
            &CredentialsRequest {
                format: Format::Ini,
                ..CredentialsRequest::default()
            },
        )
        .await
        .unwrap();
    let lines: Vec<&str> = ini.expose().lines().collect();
    assert_eq!(lines[0], "[deploy]");
    assert!(
        lines[1].starts_with("aws_access_key_id = ASIA"),
        "{}",
        lines[1]
    );
    let text = alice
        .credentials_text("deploy", &CredentialsRequest::default())
        .await
        .unwrap();
    let body: CredentialsBody = serde_json::from_str(text.expose()).unwrap();
    assert_eq!(body.connector, "deploy");

    // Every vend above is in the audit log, issued to alice.
    let issued = server
        .records_of("deploy")
        .into_iter()
        .filter(|r| r.event.outcome == idfed::audit::Outcome::Issued)
        .count();
    assert_eq!(
        issued, 7,
        "json, json, caller identity, env, process, ini, text"
    );

    // The session ends: the same client is now refused, as is a vend.
    alice.logout().await.unwrap();
    let error = refused(alice.me().await, ErrorCode::InvalidSession, 401);
    assert!(!error.is_transient());
    refused(
        alice
            .credentials("deploy", &CredentialsRequest::default())
            .await,
        ErrorCode::InvalidSession,
        401,
    );
    // Another session of hers is not ended with it.
    let again = login(&server, "alice").await;
    assert_eq!(again.me().await.unwrap().name, "alice");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_with_their_code_status_and_retry_after() {
    // carol is locked out by her second failure.
    let server = TestServer::start(
        vec![user("alice", &["devs"]), user("carol", &["devs"])],
        "[auth]\nmax_failures = 2\nlockout_seconds = 300\n",
    )
    .await;
    server
        .service
        .store
        .create_connector(role_connector("deploy", "main", &["devs"]))
        .unwrap();
    let anonymous = Client::new(&server.url("")).unwrap();

    // A wrong password.
    let error = refused(
        anonymous.login("alice", "not-her-password").await,
        ErrorCode::InvalidCredentials,
        401,
    );
    assert!(!error.is_transient());
    // No caller at all.
    refused(anonymous.me().await, ErrorCode::MissingCredentials, 401);
    // A token that is no session, and an API key that is no key.
    refused(
        anonymous.with_bearer("idfs_forged").me().await,
        ErrorCode::InvalidSession,
        401,
    );
    refused(
        anonymous.with_bearer("idfed_forged").connectors().await,
        ErrorCode::InvalidCredentials,
        401,
    );

    let alice = login(&server, "alice").await;
    // No such connector, by name or by id.
    let error = refused(
        alice
            .credentials("no-such-connector", &CredentialsRequest::default())
            .await,
        ErrorCode::ConnectorNotFound,
        404,
    );
    assert!(!error.is_transient());
    refused(
        alice.connector(&uuid::Uuid::new_v4().to_string()).await,
        ErrorCode::ConnectorNotFound,
        404,
    );
    // A name is one path segment, whatever it holds: it cannot reach another route.
    refused(
        alice.connector("deploy/credentials").await,
        ErrorCode::ConnectorNotFound,
        404,
    );
    refused(
        alice.connector("a b?c=d&e#f").await,
        ErrorCode::ConnectorNotFound,
        404,
    );
    // A duration STS would refuse.
    refused(
        alice
            .credentials(
                "deploy",
                &CredentialsRequest {
                    duration_seconds: Some(60),
                    ..CredentialsRequest::default()
                },
            )
            .await,
        ErrorCode::InvalidRequest,
        400,
    );
    // Not an administrator.
    let error = refused(alice.admin().accounts().await, ErrorCode::AdminOnly, 403);
    assert!(!error.is_transient());
    refused(
        alice.admin().audit(&AuditQuery::default()).await,
        ErrorCode::AdminOnly,
        403,
    );

    // A lockout: 429 with Retry-After, which the error carries, and which is worth retrying later.
    for password in ["wrong-1", "wrong-2"] {
        refused(
            anonymous.login("carol", password).await,
            ErrorCode::InvalidCredentials,
            401,
        );
    }
    for password in ["wrong-3", PASSWORD] {
        let error = refused(
            anonymous.login("carol", password).await,
            ErrorCode::TooManyAttempts,
            429,
        );
        assert!(error.is_transient());
        let Error::Api { retry_after, .. } = error else {
            unreachable!()
        };
        let retry_after = retry_after.expect("Retry-After");
        assert!(
            retry_after > Duration::ZERO && retry_after <= Duration::from_secs(300),
            "{retry_after:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_or_not_idfed_is_told_apart() {
    // Nobody listens on the port.
    let nowhere = format!("http://127.0.0.1:{}", idfed_tests::free_port());
    let client = Client::new(&nowhere).unwrap();
    for error in [
        client.health().await.unwrap_err(),
        client.login("alice", PASSWORD).await.unwrap_err(),
        client
            .credentials("deploy", &CredentialsRequest::default())
            .await
            .err()
            .unwrap(),
    ] {
        match &error {
            Error::Unreachable { server, message } => {
                assert_eq!(server, &nowhere);
                assert!(!message.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(error.is_transient());
        assert_eq!((error.code(), error.status()), (None, None));
        assert!(!error.to_string().contains(PASSWORD));
    }

    // A server that accepts the connection and never answers: the client's timeout ends the call.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let impatient = Client::builder(&silent_url)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = impatient.health().await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert!(error.is_transient());
    held.abort();

    // A server that is not idfed: its error pages are HTTP errors, its other answers undecodable.
    use axum::http::StatusCode;
    let app = axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(|| async { "fine, thanks (not JSON)" }),
        )
        .route(
            "/api/v1/me",
            axum::routing::get(|| async { (StatusCode::NOT_FOUND, "<html>no such page</html>") }),
        )
        .fallback(|| async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let proxy = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::builder(&proxy_url)
        .bearer("idfs_x")
        .build()
        .unwrap();
    let error = client.ready().await.unwrap_err();
    assert!(
        matches!(&error, Error::Http { status: 502, server } if server == &proxy_url),
        "{error:?}"
    );
    assert!(error.is_transient() && error.code().is_none());
    assert_eq!(error.status(), Some(502));
    let error = client.me().await.unwrap_err();
    assert!(
        matches!(error, Error::Http { status: 404, .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
    let error = client.health().await.unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
    assert!(!error.is_transient());
    proxy.abort();

    // What is not a server URL, a CA file that is not there, a token file that is not there.
    assert!(matches!(
        Client::new("127.0.0.1:8443"),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Client::builder("https://idfed.test")
            .ca_file("/nonexistent/ca.pem")
            .build(),
        Err(Error::Config(_))
    ));
    let error = Client::builder(&nowhere)
        .bearer_file("/nonexistent/token")
        .build()
        .unwrap()
        .me()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(!error.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let server = start().await;
    let client = Client::new(&server.url("")).unwrap();
    assert_eq!(client.health().await.unwrap().status, "ok");
    let ready = client.ready().await.unwrap();
    assert_eq!(ready.status, "ready");
    assert_eq!(ready.directory, "static");
    assert!(!ready.sso);
    // With a caller too (the checks need none, and a bad one does not stop them).
    let alice = login(&server, "alice").await;
    assert_eq!(alice.health().await.unwrap().status, "ok");
    assert_eq!(
        client
            .with_bearer("idfs_forged")
            .ready()
            .await
            .unwrap()
            .status,
        "ready"
    );
    server.stop().await;
}

/// An account body for `PUT /admin/accounts/{name}`: an IAM user's keys, STS at moto.
fn account_body(description: &str, secret: Option<&str>) -> AccountBody {
    AccountBody {
        name: String::new(),
        description: description.into(),
        source: AccountSource::IamUser {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: secret.map(str::to_owned),
        },
        region: Some("us-east-1".into()),
        sts_endpoint: Some(moto::shared().endpoint()),
    }
}

/// A new assumed-role connector `name` on `account`, as an administrator writes it.
fn connector_detail(
    name: &str,
    account: &str,
    groups: &[&str],
    system_scope: bool,
) -> ConnectorDetail {
    ConnectorDetail {
        id: None,
        name: name.into(),
        description: String::new(),
        account: account.into(),
        principal_type: None,
        principal: Principal::AssumedRole {
            role_arn: format!("arn:aws:iam::123456789012:role/{name}"),
            external_id: None,
            session_tags: vec![],
            source_identity: false,
        },
        policy: None,
        policy_arns: vec![],
        default_duration_seconds: None,
        max_duration_seconds: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        system_scope,
        enabled: true,
        credential_cache: false,
        bindings: None,
        revision: None,
    }
}

fn secret_of(account: &AccountBody) -> Option<&str> {
    match &account.source {
        AccountSource::IamUser {
            secret_access_key, ..
        } => secret_access_key.as_deref(),
        AccountSource::HostCredentials => None,
    }
}

const STAGING_SECRET: &str = "staging/SECRET/K7MDENG/bPxRfiCYzzzzzzzzzz";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_manages_accounts_and_connectors_with_revisions() {
    let server = start().await;
    let root = login(&server, "root").await;
    assert_eq!(root.me().await.unwrap().is_admin, Some(true));
    let admin = root.admin();

    // An account: created, then replaced; its secret is never shown, and sent back as shown it is kept.
    let (answer, written) = admin
        .put_account("staging", &account_body("staging", Some(STAGING_SECRET)))
        .await
        .unwrap();
    assert_eq!(written, Written::Created);
    assert_eq!(answer.name, "staging");
    assert_eq!(secret_of(&answer), Some(REDACTED));
    let (answer, written) = admin
        .put_account("staging", &account_body("renamed", Some(REDACTED)))
        .await
        .unwrap();
    assert_eq!(written, Written::Replaced);
    assert_eq!(answer.description, "renamed");
    assert_eq!(secret_of(&answer), Some(REDACTED));
    match server.service.store.account_credentials("staging").unwrap() {
        Some(idfed::model::AccountCredentials::Static {
            secret_access_key, ..
        }) => assert_eq!(secret_access_key.expose(), STAGING_SECRET),
        _ => panic!("staging has no static credentials"),
    }
    let accounts = admin.accounts().await.unwrap();
    let mut names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["main", "staging"]);
    assert!(accounts.iter().all(|a| secret_of(a) == Some(REDACTED)));
    let staging = admin.account("staging").await.unwrap();
    assert_eq!(staging.description, "renamed");
    assert_eq!(staging.sts_endpoint, Some(moto::shared().endpoint()));
    refused(admin.account("nope").await, ErrorCode::NotFound, 404);

    // A connector: the server's id, principal type, revision, no bindings; read back the same.
    let created = admin
        .create_connector(&connector_detail("ci", "staging", &["devs"], false))
        .await
        .unwrap();
    assert!(created.id.is_some());
    assert_eq!(created.principal_type, Some(PrincipalType::AssumedRole));
    assert_eq!(created.bindings, Some(vec![]));
    let first_revision = created.revision.clone().expect("a revision");
    let read = admin.connector("ci").await.unwrap();
    assert_eq!(read, created);
    assert_eq!(
        admin
            .connector(&created.id.unwrap().to_string())
            .await
            .unwrap(),
        created
    );
    assert!(
        admin
            .connectors()
            .await
            .unwrap()
            .iter()
            .any(|c| c.name == "ci" && c.account == "staging")
    );
    refused(
        admin
            .create_connector(&connector_detail("ci", "main", &[], false))
            .await,
        ErrorCode::Conflict,
        409,
    );
    refused(
        admin
            .create_connector(&connector_detail("x", "no-such-account", &[], false))
            .await,
        ErrorCode::InvalidRequest,
        400,
    );

    // Replaced with the revision read: accepted, with a new revision.
    let edited = ConnectorDetail {
        description: "first edit".into(),
        ..read.clone()
    };
    let replaced = admin
        .replace_connector("ci", &edited, Some(&first_revision))
        .await
        .unwrap();
    assert_eq!(replaced.description, "first edit");
    let second_revision = replaced.revision.clone().unwrap();
    assert_ne!(second_revision, first_revision);
    // Another edit based on the first read: refused, and nothing changed.
    let stale = ConnectorDetail {
        description: "stale edit".into(),
        ..read.clone()
    };
    let error = refused(
        admin
            .replace_connector("ci", &stale, Some(&first_revision))
            .await,
        ErrorCode::PreconditionFailed,
        412,
    );
    assert!(!error.is_transient());
    let now = admin.connector("ci").await.unwrap();
    assert_eq!(now.description, "first edit");
    assert_eq!(now.revision.as_deref(), Some(second_revision.as_str()));
    // Without If-Match an edit is taken.
    let last = admin
        .replace_connector(
            "ci",
            &ConnectorDetail {
                description: "unconditional".into(),
                ..read.clone()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(last.description, "unconditional");

    // alice (devs) now sees and uses it, on the new account.
    let alice = login(&server, "alice").await;
    let creds = alice
        .credentials("ci", &CredentialsRequest::default())
        .await
        .unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"));

    // The directory's groups and the policy examples.
    let groups = admin.groups().await.unwrap();
    for group in ["devs", "ops", "idfed-admins"] {
        assert!(
            groups.groups.iter().any(|g| g == group),
            "{group}: {groups:?}"
        );
    }
    assert_eq!(groups.admin_groups, ["idfed-admins"]);
    assert!(!groups.truncated);
    let examples = admin.policy_examples().await.unwrap();
    assert!(!examples.is_empty());
    for example in &examples {
        assert!(!example.name.is_empty() && !example.description.is_empty());
        let policy: Value = serde_json::from_str(&example.policy)
            .unwrap_or_else(|e| panic!("{}: {e}", example.name));
        assert_eq!(policy["Version"], json!("2012-10-17"), "{}", example.name);
    }

    // Deleting: not an account in use; then the connector, then the account.
    refused(
        admin.delete_account("staging").await,
        ErrorCode::Conflict,
        409,
    );
    admin.delete_connector("ci").await.unwrap();
    refused(
        admin.connector("ci").await,
        ErrorCode::ConnectorNotFound,
        404,
    );
    refused(
        alice
            .credentials("ci", &CredentialsRequest::default())
            .await,
        ErrorCode::ConnectorNotFound,
        404,
    );
    admin.delete_account("staging").await.unwrap();
    refused(admin.account("staging").await, ErrorCode::NotFound, 404);

    // Every change is in the audit log, as the administrator's.
    let changes = admin
        .audit(&AuditQuery {
            user: Some("root".into()),
            outcome: Some(Outcome::Changed),
            limit: Some(100),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = changes.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "admin.account.delete",
            "admin.connector.delete",
            "admin.connector.update",
            "admin.connector.update",
            "admin.connector.create",
            "admin.account.update",
            "admin.account.create",
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_uploads_binds_and_unbinds_a_plugin() {
    let server = start().await;
    let root = login(&server, "root").await;
    let admin = root.admin();
    let wasm = std::fs::read(fixtures::DURATION_CAP).unwrap();

    // Stored by digest: the same component again is no new plugin.
    let (plugin, written) = admin
        .upload_plugin(&wasm, Some("duration-cap"))
        .await
        .unwrap();
    assert_eq!(written, Written::Created);
    assert_eq!(plugin.digest.len(), 64);
    assert!(plugin.digest.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(plugin.size, wasm.len() as u64);
    assert_eq!(plugin.name.as_deref(), Some("duration-cap"));
    let (again, written) = admin
        .upload_plugin(&wasm, Some("duration-cap"))
        .await
        .unwrap();
    assert_eq!(written, Written::Replaced);
    assert_eq!(again.digest, plugin.digest);
    refused(
        admin.upload_plugin(b"not a component", None).await,
        ErrorCode::PluginNotAComponent,
        422,
    );

    // A configuration the plugin refuses: the error says where.
    let error = refused(
        admin
            .bind(
                "deploy",
                &BindingInput {
                    plugin: plugin.digest.clone(),
                    config: Some(json!({"default_max_duration_seconds": 60})),
                    ..BindingInput::default()
                },
            )
            .await,
        ErrorCode::PluginConfigRefused,
        422,
    );
    let Error::Api { pointer, .. } = &error else {
        unreachable!()
    };
    assert_eq!(pointer.as_deref(), Some("/default_max_duration_seconds"));
    assert!(admin.bindings("deploy").await.unwrap().bindings.is_empty());

    // Bound: the chain shows it, the plugin list says where, and it caps alice's vends.
    let binding = admin
        .bind(
            "deploy",
            &BindingInput {
                plugin: plugin.digest.clone(),
                config: Some(json!({"default_max_duration_seconds": 900})),
                ..BindingInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(binding.position, Some(0));
    assert_eq!(binding.plugin, plugin.digest);
    let chain = admin.bindings("deploy").await.unwrap();
    assert_eq!(chain.connector, "deploy");
    assert_eq!(chain.bindings.len(), 1);
    assert_eq!(chain.bindings[0].id, binding.id);
    assert_eq!(
        chain.bindings[0].config["default_max_duration_seconds"],
        json!(900)
    );
    let listed = admin.plugins().await.unwrap();
    let stored = listed.iter().find(|p| p.digest == plugin.digest).unwrap();
    let uses = stored.bindings.as_ref().unwrap();
    assert_eq!(uses.len(), 1);
    assert_eq!(
        (uses[0].connector.as_str(), uses[0].binding.as_str()),
        ("deploy", binding.id.as_str())
    );
    refused(
        admin.delete_plugin(&plugin.digest).await,
        ErrorCode::Conflict,
        409,
    );
    let alice = login(&server, "alice").await;
    let long = CredentialsRequest {
        duration_seconds: Some(1800),
        ..CredentialsRequest::default()
    };
    assert_eq!(
        alice
            .credentials("deploy", &long)
            .await
            .unwrap()
            .duration_seconds,
        900
    );

    // Unbound: the chain is empty, the cap is gone, and the plugin can go.
    admin.unbind("deploy", &binding.id).await.unwrap();
    assert!(admin.bindings("deploy").await.unwrap().bindings.is_empty());
    refused(
        admin.unbind("deploy", &binding.id).await,
        ErrorCode::NotFound,
        404,
    );
    assert_eq!(
        alice
            .credentials("deploy", &long)
            .await
            .unwrap()
            .duration_seconds,
        1800
    );
    admin.delete_plugin(&plugin.digest).await.unwrap();
    assert!(
        admin
            .plugins()
            .await
            .unwrap()
            .iter()
            .all(|p| p.digest != plugin.digest)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_vends_from_its_connector_is_audited_and_revoked() {
    let server = start().await;
    let root = login(&server, "root").await;
    let admin = root.admin();
    let ci = admin
        .create_connector(&connector_detail("ci", "main", &[], true))
        .await
        .unwrap();

    // Created: the key, once.
    let created = admin
        .create_api_key(&ApiKeyInput {
            name: "ci-deploy".into(),
            connectors: vec!["ci".into()],
            expires: None,
        })
        .await
        .unwrap();
    let key = created.key.clone().expect("the key, once");
    assert!(key.starts_with("idfed_"));
    assert_eq!(created.name, "ci-deploy");
    assert_eq!(created.connectors.len(), 1);
    assert_eq!(created.connectors[0].id, ci.id.unwrap());
    assert_eq!(created.connectors[0].name.as_deref(), Some("ci"));
    assert!(!created.expired && created.expires.is_none());
    // Listed: never the key.
    let keys = admin.api_keys().await.unwrap();
    let listed = keys.iter().find(|k| k.id == created.id).unwrap();
    assert_eq!(listed.name, "ci-deploy");
    assert!(keys.iter().all(|k| k.key.is_none()));
    // A connector that is not system-scope cannot be given to a key.
    refused(
        admin
            .create_api_key(&ApiKeyInput {
                name: "nope".into(),
                connectors: vec!["deploy".into()],
                expires: None,
            })
            .await,
        ErrorCode::InvalidRequest,
        400,
    );

    // The key as a caller: who it is, and what it vends.
    let task = Client::builder(&server.url(""))
        .bearer(format!("  {key}\n"))
        .build()
        .unwrap();
    let me = task.me().await.unwrap();
    assert_eq!(
        (me.kind.as_str(), me.name.as_str()),
        ("system", "ci-deploy")
    );
    assert_eq!(me.key_id, Some(created.id));
    assert_eq!(me.connectors, Some(vec![ci.id.unwrap()]));
    // A key has no session to end.
    refused(task.logout().await, ErrorCode::InvalidRequest, 400);
    let names: Vec<String> = task
        .connectors()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["ci"]);
    let mut vended = Vec::new();
    for _ in 0..2 {
        let creds = task
            .credentials(
                "ci",
                &CredentialsRequest {
                    duration_seconds: Some(900),
                    ..CredentialsRequest::default()
                },
            )
            .await
            .unwrap();
        assert!(creds.access_key_id.starts_with("ASIA"));
        vended.push((creds.access_key_id.clone(), creds.request_id.clone()));
    }
    // A connector the key does not name.
    refused(
        task.credentials("deploy", &CredentialsRequest::default())
            .await,
        ErrorCode::Forbidden,
        403,
    );
    // Admin routes are not a key's.
    refused(task.admin().api_keys().await, ErrorCode::AdminOnly, 403);

    // The audit log: the connector's records, newest first, at most the limit asked for.
    let records = admin
        .audit(&AuditQuery {
            connector: Some("ci".into()),
            limit: Some(10),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(!records.is_empty() && records.len() <= 10);
    assert!(
        records.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    let vends: Vec<_> = records
        .iter()
        .filter(|r| r.event.action == "vend" && r.event.outcome == Outcome::Issued)
        .collect();
    let issued: Vec<(String, String)> = vends
        .iter()
        .map(|r| {
            assert_eq!(r.event.caller.as_deref(), Some("system:ci-deploy"));
            assert_eq!(r.event.caller_kind.as_deref(), Some("system"));
            assert_eq!(r.event.connector.as_deref(), Some("ci"));
            assert_eq!(r.event.duration_seconds, Some(900));
            (
                r.event.access_key_id.clone().unwrap(),
                r.event.request_id.clone(),
            )
        })
        .collect();
    let mut newest_first = vended.clone();
    newest_first.reverse();
    assert_eq!(issued, newest_first);
    assert!(
        records
            .iter()
            .any(|r| r.event.action == "admin.connector.create")
    );
    // Each record is the chain's: linked to the one before it.
    let all = admin
        .audit(&AuditQuery {
            limit: Some(1000),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    for pair in all.windows(2) {
        assert_eq!(pair[0].seq, pair[1].seq + 1);
        assert_eq!(pair[0].prev_hash, pair[1].hash);
    }
    // Narrowed by outcome, caller and time (a `+` offset survives the query string).
    let limited = admin
        .audit(&AuditQuery {
            connector: Some("ci".into()),
            limit: Some(1),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].seq, records[0].seq);
    let by_caller = admin
        .audit(&AuditQuery {
            user: Some("system:ci-deploy".into()),
            outcome: Some(Outcome::Issued),
            since: Some("2000-01-01T01:00:00+01:00".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_caller.len(), 2);
    let before_2000 = admin
        .audit(&AuditQuery {
            connector: Some("ci".into()),
            until: Some("2000-01-01T01:00:00+01:00".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(before_2000.is_empty());
    refused(
        admin
            .audit(&AuditQuery {
                limit: Some(0),
                ..AuditQuery::default()
            })
            .await,
        ErrorCode::InvalidRequest,
        400,
    );

    // The cache flush (the connector caches nothing).
    let flushed = admin.flush_cache("ci").await.unwrap();
    assert_eq!((flushed.connector.as_str(), flushed.flushed), ("ci", 0));

    // Revoked: the key is refused at once, and no longer listed.
    admin.revoke_api_key(&created.id.to_string()).await.unwrap();
    let error = refused(
        task.credentials("ci", &CredentialsRequest::default()).await,
        ErrorCode::InvalidCredentials,
        401,
    );
    assert!(!error.is_transient());
    refused(task.me().await, ErrorCode::InvalidCredentials, 401);
    assert!(
        admin
            .api_keys()
            .await
            .unwrap()
            .iter()
            .all(|k| k.id != created.id)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_credentials_take_a_session_or_an_api_key() {
    let server = start().await;
    let root = login(&server, "root").await;
    let mut system = role_connector("ci", "main", &[]);
    system.system_scope = true;
    server.service.store.create_connector(system).unwrap();

    // A person's session token.
    let alice = login(&server, "alice").await;
    let creds = alice.container_credentials("deploy").await.unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"));
    assert!(!creds.secret_access_key.is_empty() && !creds.token.is_empty());
    assert_rfc3339(&creds.expiration);
    let role_arn = creds.role_arn.clone().expect("an assumed role's ARN");
    assert!(
        role_arn.contains(":assumed-role/deploy/alice"),
        "{role_arn}"
    );
    let records = server.records_of("deploy");
    assert_eq!(
        records[0].event.access_key_id.as_deref(),
        Some(creds.access_key_id.as_str())
    );
    assert_eq!(records[0].event.caller.as_deref(), Some("alice"));
    // Its errors come in the ECS shape and are read as idfed's.
    refused(
        alice.container_credentials("ops-only").await,
        ErrorCode::Forbidden,
        403,
    );
    refused(
        alice.container_credentials("no-such-connector").await,
        ErrorCode::ConnectorNotFound,
        404,
    );
    // A bad token is 403 there (not 401), with the code saying why.
    refused(
        alice
            .with_bearer("idfs_forged")
            .container_credentials("deploy")
            .await,
        ErrorCode::InvalidSession,
        403,
    );
    refused(
        Client::new(&server.url(""))
            .unwrap()
            .container_credentials("deploy")
            .await,
        ErrorCode::MissingCredentials,
        403,
    );

    // A system-scope API key.
    let key = root
        .admin()
        .create_api_key(&ApiKeyInput {
            name: "ecs-task".into(),
            connectors: vec!["ci".into()],
            expires: None,
        })
        .await
        .unwrap();
    let task = alice.with_bearer(key.key.clone().unwrap());
    let creds = task.container_credentials("ci").await.unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"));
    assert!(
        creds
            .role_arn
            .as_deref()
            .is_some_and(|arn| arn.contains(":assumed-role/ci/")),
        "{:?}",
        creds.role_arn
    );
    let records = server.records_of("ci");
    assert_eq!(
        records[0].event.access_key_id.as_deref(),
        Some(creds.access_key_id.as_str())
    );
    assert_eq!(records[0].event.caller.as_deref(), Some("system:ecs-task"));
    refused(
        task.container_credentials("deploy").await,
        ErrorCode::Forbidden,
        403,
    );
    root.admin()
        .revoke_api_key(&key.id.to_string())
        .await
        .unwrap();
    refused(
        task.container_credentials("ci").await,
        ErrorCode::InvalidCredentials,
        403,
    );
    server.stop().await;
}

const AUDIENCE: &str = "https://idfed.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_token_file_is_read_again_for_every_call() {
    let issuer = OidcIssuer::start().await;
    let config = format!(
        r#"
[[workload.issuers]]
name = "ci"
issuer = "{}"
audience = "{AUDIENCE}"
caller = "{{repository}}@{{ref}}"
[[workload.issuers.rules]]
claims = {{ repository = "org/app", ref = "refs/heads/main" }}
connectors = ["deploy-prod"]
"#,
        issuer.issuer()
    );
    let server = start_with(&config).await;
    let mut deploy_prod = role_connector("deploy-prod", "main", &[]);
    deploy_prod.system_scope = true;
    server.service.store.create_connector(deploy_prod).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let main_build = |extra: Value| {
        let mut claims = json!({"repository": "org/app", "ref": "refs/heads/main"});
        for (key, value) in extra.as_object().unwrap() {
            claims[key] = value.clone();
        }
        issuer.sign(KeyKind::Rsa, &issuer.claims(AUDIENCE, claims))
    };
    let token_file = server.dir.path().join("oidc-token");
    std::fs::write(&token_file, format!("{}\n", main_build(json!({})))).unwrap();
    let job = Client::builder(&server.url(""))
        .bearer_file(&token_file)
        .build()
        .unwrap();

    // Who idfed takes the token for, and what it vends, from the body and the container endpoint.
    let me = job.me().await.unwrap();
    assert_eq!(me.kind, "workload");
    assert_eq!(me.name, "ci:org/app@refs/heads/main");
    assert_eq!(me.issuer.as_deref(), Some("ci"));
    assert_eq!(me.connector_names, Some(vec!["deploy-prod".to_owned()]));
    let creds = job
        .credentials("deploy-prod", &CredentialsRequest::default())
        .await
        .unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"));
    let container = job.container_credentials("deploy-prod").await.unwrap();
    assert!(container.access_key_id.starts_with("ASIA"));
    refused(
        job.credentials("deploy", &CredentialsRequest::default())
            .await,
        ErrorCode::Forbidden,
        403,
    );

    // The file now holds an expired token: the next call reads it, and is refused for it.
    std::fs::write(
        &token_file,
        main_build(json!({"iat": now - 900, "nbf": now - 900, "exp": now - 300})),
    )
    .unwrap();
    let error = refused(
        job.credentials("deploy-prod", &CredentialsRequest::default())
            .await,
        ErrorCode::WorkloadTokenExpired,
        401,
    );
    assert!(!error.is_transient());
    refused(job.me().await, ErrorCode::WorkloadTokenExpired, 401);
    refused(
        job.container_credentials("deploy-prod").await,
        ErrorCode::WorkloadTokenExpired,
        403,
    );
    // A token for a branch the rules do not grant this connector.
    std::fs::write(
        &token_file,
        main_build(json!({"ref": "refs/heads/feature"})),
    )
    .unwrap();
    refused(
        job.credentials("deploy-prod", &CredentialsRequest::default())
            .await,
        ErrorCode::WorkloadNotAllowed,
        403,
    );
    // A fresh token again: the same client vends again.
    std::fs::write(&token_file, main_build(json!({}))).unwrap();
    let again = job
        .credentials("deploy-prod", &CredentialsRequest::default())
        .await
        .unwrap();
    assert_ne!(again.access_key_id, creds.access_key_id);

    // The audit log: three issues to the workload, each with its access key id.
    let issued: Vec<String> = server
        .records_of("deploy-prod")
        .into_iter()
        .filter(|r| r.event.outcome == idfed::audit::Outcome::Issued)
        .map(|r| {
            assert_eq!(
                r.event.caller.as_deref(),
                Some("ci:org/app@refs/heads/main")
            );
            assert_eq!(r.event.caller_kind.as_deref(), Some("workload"));
            r.event.access_key_id.unwrap()
        })
        .collect();
    assert_eq!(
        issued,
        [
            again.access_key_id.clone(),
            container.access_key_id.clone(),
            creds.access_key_id.clone()
        ]
    );

    // The file gone, or empty: the client says so before sending anything.
    std::fs::write(&token_file, "  \n").unwrap();
    assert!(matches!(job.me().await, Err(Error::Config(_))));
    std::fs::remove_file(&token_file).unwrap();
    let error = job.me().await.unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(!error.is_transient());
    server.stop().await;
}

/// The console sign-in URL's federation endpoint is set per process (`console.rs` sets a stand-in), so
/// only what does not reach it is checked here: a refusal before anything is vended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_url_is_refused_like_a_vend() {
    let server = start().await;
    let alice = login(&server, "alice").await;
    refused(
        alice
            .console_url("ops-only", &ConsoleRequest::default())
            .await,
        ErrorCode::Forbidden,
        403,
    );
    refused(
        alice
            .console_url("no-such-connector", &ConsoleRequest::default())
            .await,
        ErrorCode::ConnectorNotFound,
        404,
    );
    server.stop().await;
}
