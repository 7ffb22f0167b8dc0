//! `idfed container-server`: the real binary, logged in to a real idfed server (plain HTTP on 127.0.0.1)
//! with moto as STS, serving a local container-credentials endpoint that boto3 and the AWS CLI read.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use idfed::store::Store;
use idfed_tests::moto;
use idfed_tests::server::{PASSWORD, TestServer, role_connector, run, user, venv};
use serde_json::Value;

/// Kills the child when dropped, also when the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let server = TestServer::start(vec![user("alice", &["devs"])], "").await;
    server
        .service
        .store
        .create_connector(role_connector("deploy", "main", &["devs"]))
        .unwrap();
    let dir = &server.dir;
    let server_url = server.url("");
    let client = server.client.clone();
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
        server.aws_command(&venv("python"))
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", &token)
            .arg("-c")
            .arg("import boto3, sys\nprint(boto3.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])")
            .arg(&endpoint),
        None,
    );
    assert!(out.contains(":assumed-role/deploy/alice"), "{out}");

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
    server.stop().await;
}
