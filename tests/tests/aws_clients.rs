//! Real AWS clients against a real idfed server (plain HTTP on 127.0.0.1, a free port) with moto as STS:
//! every credentials format parsed back by a real consumer (a shell, python's configparser, serde), boto3
//! and the AWS CLI through the container-credentials endpoint, and system-scope API keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use idfed::api::{ApiLimits, AppState, serve};
use idfed::auth::static_dir::{UserEntry, add_user, hash_password};
use idfed::config::Config;
use idfed::model::{AccountInput, AccountSourceInput, Connector, Principal};
use idfed::secret::Secret;
use idfed::service::Service;
use idfed::store::Store;
use idfed_tests::moto;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "correct-horse-battery";
const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::data/*"]}]}"#;

fn venv(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/bin")
        .join(tool)
}

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
        bindings: vec![],
    }
}

struct Server {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    api_key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    service: Arc<Service>,
    client: reqwest::Client,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.toml");
        add_user(
            &users,
            UserEntry {
                name: "alice".into(),
                display_name: None,
                email: None,
                active: true,
                groups: vec!["devs".into()],
                password_hash: hash_password(&Secret::new(PASSWORD)).unwrap(),
            },
            false,
        )
        .unwrap();
        let mut config = Config::parse(&format!(
            "[server]\nplain_http = true\nlisten = \"127.0.0.1:0\"\n[data]\ndir = {:?}\n[auth.directory]\ntype = \"static\"\nfile = {:?}\n",
            dir.path().join("data"),
            users
        ))
        .unwrap();
        config.apply_env(|_| None).unwrap();
        config.check().unwrap();
        let service = Arc::new(Service::open(&config).unwrap());
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
        let role = Principal::AssumedRole {
            role_arn: "arn:aws:iam::123456789012:role/deploy".into(),
            external_id: None,
            session_tags: vec![],
            source_identity: false,
        };
        let store = &service.store;
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

        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(service.clone(), ApiLimits::from(&config.server));
        let task = tokio::spawn(serve(listener, None, state, async move {
            let _ = stopped.await;
        }));
        Server {
            dir,
            addr,
            api_key: key.expose().to_owned(),
            stop: Some(stop),
            task: Some(task),
            service,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn login(&self) -> String {
        let response = self
            .client
            .post(self.url("/api/v1/login"))
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
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

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
        self.service.shutdown().unwrap();
    }

    /// A command with no AWS settings but `extra`, and config files that are empty files of the test's.
    fn aws_command(&self, program: &Path) -> Command {
        let config = self.dir.path().join("aws-config");
        let credentials = self.dir.path().join("aws-credentials");
        std::fs::write(&config, "").unwrap();
        std::fs::write(&credentials, "").unwrap();
        let mut command = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command
            .env("AWS_CONFIG_FILE", config)
            .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        command
    }
}

fn run(command: &mut Command, stdin: Option<&str>) -> String {
    use std::io::Write;
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{:?} failed: {}",
        command,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
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

    let out = run(
        server
            .aws_command(&venv("aws"))
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", &token)
            .args([
                "sts",
                "get-caller-identity",
                "--output",
                "json",
                "--endpoint-url",
            ])
            .arg(&endpoint),
        None,
    );
    let identity: Value = serde_json::from_str(&out).unwrap();
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
