//! `idfed exec`: the real binary, logged in to a real idfed server (plain HTTP on 127.0.0.1), running
//! commands — the AWS CLI among them — with a connector's credentials in their environment or, with
//! `--refresh`, from a private endpoint that renews them; exit statuses and signals passed through.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use idfed::store::Store;
use idfed_tests::moto;
use idfed_tests::server::{TestServer, iam_account, role_connector, user, venv};
use idfed_tests::sts_standin::{StandInOptions, StsStandIn};

/// How long the stand-in's credentials live: long enough for one AWS CLI call on a slow machine.
const SHORT_LIFETIME: Duration = Duration::from_secs(10);

struct Fixture {
    server: TestServer,
    /// STS for the `short` connector: its credentials end after [`SHORT_LIFETIME`].
    standin: StsStandIn,
    idfed: PathBuf,
    config_dir: PathBuf,
}

impl Fixture {
    /// A server with `deploy` (moto) and `short` (the stand-in, credentials ending soon), and alice
    /// logged in with the real binary.
    async fn start() -> Fixture {
        let server = TestServer::start(vec![user("alice", &["devs"])], "").await;
        let standin = StsStandIn::start(StandInOptions {
            lifetime: Some(SHORT_LIFETIME),
            ..StandInOptions::default()
        })
        .await;
        let store = &server.service.store;
        store
            .put_account(iam_account("short", &standin.endpoint()))
            .unwrap();
        store
            .create_connector(role_connector("deploy", "main", &["devs"]))
            .unwrap();
        store
            .create_connector(role_connector("short", "short", &["devs"]))
            .unwrap();
        let idfed = idfed_tests::idfed_binary();
        let config_dir = server.cli_login("alice");
        Fixture {
            server,
            standin,
            idfed,
            config_dir,
        }
    }

    /// `idfed exec ARGS…` with no AWS settings of the machine's (see `TestServer::aws_command`).
    fn exec(&self, args: &[&str]) -> Command {
        let mut command = self.server.aws_command(&self.idfed);
        command
            .env("IDFED_CONFIG_DIR", &self.config_dir)
            .arg("exec")
            .args(args);
        command
    }
}

fn output(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_gets_the_credentials_and_idfed_exits_as_it_did() {
    let f = Fixture::start().await;
    // Variables that would pick other credentials are not passed on.
    let out = output(
        f.exec(&["deploy", "--", "sh", "-c"])
            .arg(
                "echo \"$AWS_ACCESS_KEY_ID|$AWS_SECRET_ACCESS_KEY|$AWS_SESSION_TOKEN|\
                 $AWS_CREDENTIAL_EXPIRATION|${AWS_PROFILE-none}|\
                 ${AWS_CONTAINER_CREDENTIALS_FULL_URI-none}\"; exit 7",
            )
            .env("AWS_PROFILE", "someone-else")
            .env("AWS_ACCESS_KEY_ID", "AKIAOUTSIDE")
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/"),
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let fields: Vec<&str> = line.trim().split('|').collect();
    assert_eq!(fields.len(), 6, "{line}");
    assert!(fields[0].starts_with("ASIA"), "{line}");
    assert!(!fields[1].is_empty() && !fields[2].is_empty(), "{line}");
    let expiration = humantime::parse_rfc3339(fields[3]).unwrap();
    assert!(expiration > SystemTime::now() + Duration::from_secs(600));
    assert_eq!(fields[4..], ["none", "none"]);
    // The secret appears nowhere but in the command's environment.
    assert!(!text(&out.stderr).contains(fields[1]));

    // The AWS CLI as the command.
    let out = output(f.exec(&["deploy", "--"]).arg(venv("aws")).args([
        "sts",
        "get-caller-identity",
        "--output",
        "json",
        "--endpoint-url",
        &moto::shared().endpoint(),
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let identity: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn = identity["Arn"].as_str().unwrap();
    assert!(arn.contains(":assumed-role/deploy/alice"), "{arn}");

    // A command that cannot start, and a connector alice may not use: idfed's own errors.
    let out = output(&mut f.exec(&["deploy", "--", "/nonexistent/tool"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot run /nonexistent/tool"));
    let out = output(&mut f.exec(&["nope", "--", "true"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("connector_not_found"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_refresh_a_long_command_never_holds_expired_credentials() {
    let f = Fixture::start().await;
    let endpoint = f.standin.endpoint();
    let aws = venv("aws");
    // Two calls, the second after the first credentials have ended.
    let script = format!(
        "{aws} sts get-caller-identity --endpoint-url {endpoint} --output text --query Arn && \
         sleep {} && \
         {aws} sts get-caller-identity --endpoint-url {endpoint} --output text --query Arn",
        SHORT_LIFETIME.as_secs() + 2,
        aws = aws.display(),
    );
    let mut plain = f.exec(&["short", "--", "sh", "-c", &script]);
    let mut refreshed = f.exec(&["short", "--refresh", "--", "sh", "-c", &script]);
    let (plain, refreshed) = std::thread::scope(|s| {
        let plain = s.spawn(|| output(&mut plain));
        let refreshed = s.spawn(|| output(&mut refreshed));
        (plain.join().unwrap(), refreshed.join().unwrap())
    });

    // From the environment, the second call has only expired credentials.
    assert!(!plain.status.success(), "{}", text(&plain.stdout));
    assert_eq!(
        text(&plain.stdout).lines().count(),
        1,
        "{}",
        text(&plain.stdout)
    );
    assert!(
        text(&plain.stderr).to_lowercase().contains("expired"),
        "{}",
        text(&plain.stderr)
    );
    // From the private endpoint, both calls succeed: the second got new credentials.
    assert!(refreshed.status.success(), "{}", text(&refreshed.stderr));
    let arns: Vec<String> = text(&refreshed.stdout).lines().map(str::to_owned).collect();
    assert_eq!(arns.len(), 2, "{arns:?}");
    assert!(
        arns.iter()
            .all(|arn| arn.contains(":assumed-role/short/alice")),
        "{arns:?}"
    );
    // Each `aws` fetched its own: at least the two calls' worth of AssumeRole (plus the plain run's one).
    assert!(f.standin.calls("AssumeRole") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_the_command_and_its_status_is_idfeds() {
    let f = Fixture::start().await;
    let mut child = f
        .exec(&["deploy", "--", "sh", "-c"])
        .arg("sleep 30 & pid=$!; trap 'kill $pid; exit 42' TERM; echo ready; wait $pid")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    // SIGTERM to idfed (bash's own kill: a fresh machine may have no procps).
    let killed = Command::new("bash")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(42), "{status:?}");
}

/// The CLI for machines: a system-scope API key and the server, from options or variables, with no
/// session kept; `creds` and `exec` work, what the key may not do is refused clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_with_an_api_key_and_no_session() {
    let f = Fixture::start().await;
    let mut ci = role_connector("ci-deploy", "main", &[]);
    ci.system_scope = true;
    ci.groups = vec![];
    let ci = f.server.service.store.create_connector(ci).unwrap();
    let (_, key) = f
        .server
        .service
        .store
        .create_api_key("ci-runner", vec![ci.id], None)
        .unwrap();
    let no_session = f.server.dir.path().join("no-session");
    let with_key = |args: &[&str]| {
        let mut command = f.server.aws_command(&f.idfed);
        command
            .env("IDFED_CONFIG_DIR", &no_session)
            .env("IDFED_API_KEY", key.expose())
            .env("IDFED_SERVER", f.server.url(""))
            .args(args);
        command
    };

    // `creds` from the variables.
    let out = output(&mut with_key(&["creds", "ci-deploy", "--format", "json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let creds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(creds["access_key_id"].as_str().unwrap().starts_with("ASIA"));

    // `exec` with the key in a file and the server as an option.
    let key_file = f.server.dir.path().join("ci.key");
    std::fs::write(&key_file, format!("{}\n", key.expose())).unwrap();
    let mut command = f.server.aws_command(&f.idfed);
    command
        .env("IDFED_CONFIG_DIR", &no_session)
        .args(["--server", &f.server.url(""), "--api-key-file"])
        .arg(&key_file)
        .args([
            "exec",
            "ci-deploy",
            "--",
            "sh",
            "-c",
            "echo $AWS_ACCESS_KEY_ID",
        ]);
    let out = output(&mut command);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).trim().starts_with("ASIA"));

    // A connector the key does not name, and the admin API: refused with their codes.
    let out = output(&mut with_key(&["creds", "deploy"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("(forbidden)"),
        "{}",
        text(&out.stderr)
    );
    let out = output(&mut with_key(&["admin", "connectors", "list"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("(admin_only)"),
        "{}",
        text(&out.stderr)
    );

    // A key without a server, and a kept session for another server than the one named.
    let out = output(
        f.server
            .aws_command(&f.idfed)
            .env("IDFED_CONFIG_DIR", &no_session)
            .env("IDFED_API_KEY", key.expose())
            .args(["creds", "ci-deploy"]),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("an API key needs the server"));
    let out = output(
        f.server
            .aws_command(&f.idfed)
            .env("IDFED_CONFIG_DIR", &f.config_dir)
            .args(["--server", "http://127.0.0.1:9", "creds", "deploy"]),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the kept session is for"),
        "{}",
        text(&out.stderr)
    );
    // The key is in no message.
    assert!(!text(&out.stderr).contains(key.expose()));
}
