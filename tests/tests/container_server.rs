//! `idfed container-server`: the real binary, logged in to a real idfed server (plain HTTP on 127.0.0.1)
//! with moto as STS, serving a local container-credentials endpoint that boto3 and the AWS CLI read.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use idfed::api::{ApiLimits, AppState, serve};
use idfed::auth::static_dir::{UserEntry, add_user, hash_password};
use idfed::config::Config;
use idfed::model::{AccountInput, AccountSourceInput, Connector, Principal};
use idfed::secret::Secret;
use idfed::service::Service;
use idfed::store::Store;
use idfed_tests::moto;
use serde_json::Value;
use uuid::Uuid;

const PASSWORD: &str = "correct-horse-battery";

fn venv(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/bin")
        .join(tool)
}

/// Kills the child when dropped, also when the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

/// A command with no AWS settings, empty AWS config files of the test's, and the region set.
fn aws_command(dir: &Path, program: &Path) -> Command {
    let config = dir.join("aws-config");
    let credentials = dir.join("aws-credentials");
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
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn issued(metrics: &str, connector: &str) -> u64 {
    let prefix = format!("idfed_vends_total{{connector=\"{connector}\",outcome=\"issued\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_cli_read_the_local_container_server() {
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
                secret_access_key: Some(Secret::new("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")),
            },
            region: Some("us-east-1".into()),
            sts_endpoint: Some(moto::shared().endpoint()),
        })
        .unwrap();
    service
        .store
        .create_connector(Connector {
            id: Uuid::new_v4(),
            name: "deploy".into(),
            description: String::new(),
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
            bindings: vec![],
        })
        .unwrap();
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(service.clone(), ApiLimits::from(&config.server));
    let task = tokio::spawn(serve(listener, None, state, async move {
        let _ = stopped.await;
    }));
    let server_url = format!("http://{addr}");
    let client = reqwest::Client::new();
    let vends = || {
        let client = client.clone();
        let url = format!("{server_url}/metrics");
        async move {
            issued(
                &client.get(url).send().await.unwrap().text().await.unwrap(),
                "deploy",
            )
        }
    };

    // `idfed login` with the real binary, the session kept in a folder of the test's.
    let idfed = idfed_tests::idfed_binary();
    let idfed_config = dir.path().join("idfed-config");
    let out = run(
        Command::new(&idfed)
            .env("IDFED_CONFIG_DIR", &idfed_config)
            .args([
                "login",
                "--server",
                &server_url,
                "--user",
                "alice",
                "--password-stdin",
            ]),
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.contains("logged in"), "{out}");

    // `idfed container-server deploy --port 0`, and its two export lines.
    let mut child = KillOnDrop(
        Command::new(&idfed)
            .env("IDFED_CONFIG_DIR", &idfed_config)
            .args(["container-server", "deploy", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut lines = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            lines.push(line.trim_end().to_owned());
        }
        lines
    });
    let lines = tokio::time::timeout(std::time::Duration::from_secs(60), lines)
        .await
        .expect("container-server printed its exports")
        .unwrap();
    let uri = lines[0]
        .strip_prefix("export AWS_CONTAINER_CREDENTIALS_FULL_URI=")
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_owned();
    let token = lines[1]
        .strip_prefix("export AWS_CONTAINER_AUTHORIZATION_TOKEN=")
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_owned();
    assert!(
        uri.starts_with("http://127.0.0.1:") && uri.ends_with('/'),
        "{uri}"
    );
    assert!(token.len() >= 40, "{token}");
    // It fetched once when it started.
    assert_eq!(vends().await, 1);

    let endpoint = moto::shared().endpoint();
    let out = run(
        aws_command(dir.path(), &venv("python"))
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", &token)
            .arg("-c")
            .arg("import boto3, sys\nprint(boto3.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])")
            .arg(&endpoint),
        None,
    );
    assert!(out.contains(":assumed-role/deploy/alice"), "{out}");

    let out = run(
        aws_command(dir.path(), &venv("aws"))
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
            .contains(":assumed-role/deploy/alice"),
        "{out}"
    );

    // Two requests in a row: the same cached credentials, in the ECS shape, and still one vend.
    let mut keys = Vec::new();
    for _ in 0..2 {
        let response = client
            .get(&uri)
            .header("Authorization", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        for field in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
            assert!(
                body[field].as_str().is_some_and(|v| !v.is_empty()),
                "{body}"
            );
        }
        assert!(humantime::parse_rfc3339(body["Expiration"].as_str().unwrap()).is_ok());
        keys.push(body["AccessKeyId"].as_str().unwrap().to_owned());
    }
    assert_eq!(keys[0], keys[1]);
    assert!(keys[0].starts_with("ASIA"), "{keys:?}");
    assert_eq!(vends().await, 1);

    // A wrong, a Bearer-prefixed or a missing token: 403 with a JSON Message.
    for authorization in [
        Some("wrong".to_owned()),
        Some(format!("Bearer {token}")),
        Some(format!("{token}x")),
        None,
    ] {
        let mut request = client.get(&uri);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert!(body["Message"].is_string(), "{body}");
    }
    assert_eq!(vends().await, 1);

    // A connector the user may not use: the command fails at once, with idfed's one-line error.
    let denied = Command::new(&idfed)
        .env("IDFED_CONFIG_DIR", &idfed_config)
        .args(["container-server", "nope", "--port", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    assert!(denied.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("connector_not_found"),
        "{stderr}"
    );

    drop(child);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    service.shutdown().unwrap();
}
