//! Real AWS clients against a real idfed server (plain HTTP on 127.0.0.1, a free port) with moto as STS:
//! every credentials format parsed back by a real consumer (a shell, python's configparser, serde), boto3
//! and the AWS CLI through the container-credentials endpoint, and system-scope API keys.

use std::process::Command;

use idfed::model::{Connector, Principal};
use idfed::store::Store;
use idfed_tests::moto;
use idfed_tests::server::{PASSWORD, TestServer, run, user, venv};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::data/*"]}]}"#;

fn connector(name: &str, principal: Principal, groups: &[&str], system_scope: bool) -> Connector {
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
        system_scope,
        enabled: true,
        credential_cache: false,
        bindings: vec![],
    }
}

/// The shared test server, with alice in `devs`, an assumed-role connector `deploy` for `devs`, two
/// system-scope connectors and an API key for `ci`.
struct Server {
    inner: TestServer,
    api_key: String,
}

impl std::ops::Deref for Server {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.inner
    }
}

impl Server {
    async fn start() -> Server {
        let inner = TestServer::start(vec![user("alice", &["devs"])], "").await;
        let role = Principal::AssumedRole {
            role_arn: "arn:aws:iam::123456789012:role/deploy".into(),
            external_id: None,
            session_tags: vec![],
            source_identity: false,
        };
        let store = &inner.service.store;
        store
            .create_connector(connector("deploy", role.clone(), &["devs"], false))
            .unwrap();
        let ci = store
            .create_connector(Connector {
                policy: Some(S3_READ.into()),
                ..connector("ci", Principal::FederatedUser, &[], true)
            })
            .unwrap();
        store
            .create_connector(connector("ci-other", role, &[], true))
            .unwrap();
        let (_, key) = store
            .create_api_key("ci-runner", vec![ci.id], None)
            .unwrap();
        Server {
            inner,
            api_key: key.expose().to_owned(),
        }
    }

    async fn login(&self) -> String {
        self.inner.login("alice").await
    }

    async fn vend(&self, token: &str, connector: &str, format: &str) -> (u16, String) {
        let response = self
            .client
            .post(self.url(&format!("/api/v1/connectors/{connector}/credentials")))
            .bearer_auth(token)
            .json(&json!({"format": format}))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn stop(self) {
        self.inner.stop().await;
    }
}

#[derive(Deserialize)]
struct Json {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    duration_seconds: u32,
    capped: bool,
    request_id: String,
    connector: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialProcess {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_reads_back_with_a_real_consumer() {
    let server = Server::start().await;
    let token = server.login().await;

    let (status, body) = server.vend(&token, "deploy", "json").await;
    assert_eq!(status, 200, "{body}");
    let json: Json = serde_json::from_str(&body).unwrap();
    assert!(json.access_key_id.starts_with("ASIA"));
    assert!(!json.secret_access_key.is_empty() && !json.session_token.is_empty());
    assert!(
        humantime::parse_rfc3339(&json.expiration).is_ok(),
        "{}",
        json.expiration
    );
    assert_eq!((json.duration_seconds, json.capped), (3600, false));
    assert!(!json.request_id.is_empty());
    assert_eq!(json.connector, "deploy");

    let (status, body) = server.vend(&token, "deploy", "credential_process").await;
    assert_eq!(status, 200, "{body}");
    let process: CredentialProcess = serde_json::from_str(&body).unwrap();
    assert_eq!(process.version, 1);
    assert!(process.access_key_id.starts_with("ASIA"));
    assert!(!process.secret_access_key.is_empty() && !process.session_token.is_empty());
    assert!(humantime::parse_rfc3339(&process.expiration).is_ok());

    let (status, body) = server.vend(&token, "deploy", "env").await;
    assert_eq!(status, 200, "{body}");
    let script = format!(
        "{body}\nprintf '%s|%s|%s|%s' \"$AWS_ACCESS_KEY_ID\" \"$AWS_SECRET_ACCESS_KEY\" \"$AWS_SESSION_TOKEN\" \"$AWS_CREDENTIAL_EXPIRATION\""
    );
    let out = run(Command::new("sh").arg("-c").arg(script), None);
    let fields: Vec<&str> = out.split('|').collect();
    assert_eq!(fields.len(), 4, "{out}");
    assert!(fields[0].starts_with("ASIA"), "{out}");
    assert!(body.contains(fields[1]) && body.contains(fields[2]));
    assert!(humantime::parse_rfc3339(fields[3]).is_ok(), "{out}");

    let (status, body) = server.vend(&token, "deploy", "ini").await;
    assert_eq!(status, 200, "{body}");
    let out = run(
        Command::new(venv("python")).arg("-c").arg(
            "import configparser, sys\nc = configparser.ConfigParser()\nc.read_string(sys.stdin.read())\ns = c['deploy']\nprint(s['aws_access_key_id'], len(s['aws_secret_access_key']) > 0, len(s['aws_session_token']) > 0)",
        ),
        Some(&body),
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    assert!(words[0].starts_with("ASIA"), "{out}");
    assert_eq!(&words[1..], ["True", "True"]);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_cli_read_the_container_endpoint() {
    let server = Server::start().await;
    let token = server.login().await;
    let uri = server.url("/api/v1/container-credentials/deploy");
    let endpoint = moto::shared().endpoint();

    let out = run(
        server
            .aws_command(&venv("python"))
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", &token)
            .arg("-c")
            .arg("import boto3, sys\nprint(boto3.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])")
            .arg(&endpoint),
        None,
    );
    assert!(out.contains(":assumed-role/deploy/"), "{out}");

    let identity = server.aws_caller_identity(
        [
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", token.as_str()),
        ],
        &endpoint,
    );
    assert!(
        identity["Arn"]
            .as_str()
            .unwrap()
            .contains(":assumed-role/deploy/"),
        "{out}"
    );

    // A bad or missing token: 403 with a JSON Message.
    for authorization in [Some("idfs_not-a-session"), Some("garbage"), None] {
        let mut request = server.client.get(&uri);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert!(body["Message"].is_string(), "{body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_scope_key_vends_only_from_its_connectors() {
    let server = Server::start().await;
    let key = server.api_key.clone();

    let (status, body) = server.vend(&key, "ci", "json").await;
    assert_eq!(status, 200, "{body}");
    let json: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(json.connector, "ci");

    let response = server
        .client
        .get(server.url("/api/v1/container-credentials/ci"))
        .header("Authorization", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ecs: Value = response.json().await.unwrap();
    assert!(
        ecs["Token"].is_string() && ecs["Expiration"].is_string(),
        "{ecs}"
    );

    for other in ["ci-other", "deploy"] {
        let (status, body) = server.vend(&key, other, "json").await;
        assert_eq!(status, 403, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "forbidden");
        let response = server
            .client
            .get(server.url(&format!("/api/v1/container-credentials/{other}")))
            .header("Authorization", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_reads_idfed_creds_as_its_credential_process() {
    let server = Server::start().await;
    let idfed = idfed_tests::idfed_binary();
    let idfed_config = server.dir.path().join("idfed-config");
    // `idfed login`, as a user would; the session is kept in IDFED_CONFIG_DIR, mode 0600.
    let out = run(
        Command::new(&idfed)
            .env("IDFED_CONFIG_DIR", &idfed_config)
            .args([
                "login",
                "--server",
                &server.url(""),
                "--user",
                "alice",
                "--password-stdin",
            ]),
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.contains("logged in"), "{out}");
    let session_file = idfed_config.join("session.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&session_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let mut aws = server.aws_command(&venv("aws"));
    let aws_config = server.dir.path().join("aws-config-with-profile");
    std::fs::write(
        &aws_config,
        format!(
            "[profile dev]\ncredential_process = {} creds deploy\n",
            idfed.display()
        ),
    )
    .unwrap();
    let out = run(
        aws.env("AWS_CONFIG_FILE", &aws_config)
            .env("IDFED_CONFIG_DIR", &idfed_config)
            .args([
                "sts",
                "get-caller-identity",
                "--profile",
                "dev",
                "--output",
                "json",
                "--endpoint-url",
            ])
            .arg(moto::shared().endpoint()),
        None,
    );
    let identity: Value = serde_json::from_str(&out).unwrap();
    assert!(
        identity["Arn"]
            .as_str()
            .unwrap()
            .contains(":assumed-role/deploy/alice"),
        "{out}"
    );

    // A connector the user may not use: the CLI shows idfed's one-line error and fails.
    let denied = Command::new(&idfed)
        .env("IDFED_CONFIG_DIR", &idfed_config)
        .args(["creds", "ci"])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("forbidden")
            && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
    server.stop().await;
}
