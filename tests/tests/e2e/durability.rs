//! No credentials without a durable audit record: the real `idfed serve` (plain HTTP on 127.0.0.1, moto as
//! STS) is killed with SIGKILL while clients vend as fast as they can; afterwards every vend a client saw
//! answered 200 has its `issued` record in the audit log, and `idfed audit verify` passes.
//!
//! What a SIGKILL can show: that the record left idfed's memory before the answer (sled keeps writes in
//! memory until a flush, so without durability the last moments' records are lost: this test then fails).
//! That the flush's fsync also survives a power cut cannot be shown by a test on this machine.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idfed::audit::{AuditFilter, AuditLog, Outcome};
use idfed::auth::static_dir::add_user;
use idfed::config::Config;
use idfed::model::{Connector, Principal};
use idfed::service::Service;
use idfed::store::{DataStore, Store};
use idfed_tests::moto;
use idfed_tests::server::{PASSWORD, iam_account, user};
use serde_json::{Value, json};
use uuid::Uuid;

/// Client tasks vending at once.
const CLIENTS: usize = 16;
/// How long the load runs before the kill, at least…
const LOAD: Duration = Duration::from_millis(1500);
/// …and how many vends must have succeeded by then.
const MIN_VENDS: usize = 50;
/// Generous bounds for what should take a moment (a slow, busy machine): startup, reaching `MIN_VENDS`,
/// the tasks noticing the kill.
const TIMEOUT: Duration = Duration::from_secs(120);
/// The connector the clients vend from.
const CONNECTOR: &str = "durable";

/// A loopback port free right now (`idfed serve` binds it a moment later; see [`start_server`]).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("cannot bind a loopback port")
        .port()
}

/// The configuration file's text: plain HTTP on `port`, the data in `data_dir`, users in `users_file`.
fn config_text(port: u16, data_dir: &Path, users_file: &Path) -> String {
    format!(
        "[server]\nplain_http = true\nlisten = \"127.0.0.1:{port}\"\n\
         [data]\ndir = {data_dir:?}\n\
         [auth.directory]\ntype = \"static\"\nfile = {users_file:?}\n"
    )
}

/// Parses `text` as `idfed serve` would, but without the environment's `IDFED_*` overrides.
fn parse_config(text: &str) -> Config {
    let mut config = Config::parse(text).unwrap();
    config.apply_env(|_| None).unwrap();
    config.check().unwrap();
    config
}

/// The real binary with no `IDFED_*` or `AWS_*` settings of the machine's.
fn idfed_command() -> Command {
    let mut command = Command::new(idfed_tests::idfed_binary());
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("IDFED_") || name_text.starts_with("AWS_") {
            command.env_remove(&name);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// `idfed serve`, killed (SIGKILL) and reaped when dropped, also when the test fails.
struct Server {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Server {
    /// Its output so far, for failure messages.
    fn output(&self) -> String {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        format!(
            "--- idfed serve stdout ---\n{}\n--- idfed serve stderr ---\n{}",
            read(&self.stdout),
            read(&self.stderr)
        )
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps it.
    fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("cannot kill idfed serve");
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prepares `data_dir` in process: the account `main` (IAM user keys, moto's STS) and the assumed-role
/// connector [`CONNECTOR`] for `devs`; then closes everything, so that sled's lock on the directory is free.
fn prepare_data(config: &Config) {
    prepare_service(Service::open(config).unwrap());
}

fn prepare_service(service: Service) {
    service
        .store
        .put_account(iam_account("main", &moto::shared().endpoint()))
        .unwrap();
    service
        .store
        .create_connector(Connector {
            id: Uuid::new_v4(),
            name: CONNECTOR.into(),
            description: String::new(),
            account: "main".into(),
            principal: Principal::AssumedRole {
                role_arn: "arn:aws:iam::123456789012:role/dev".into(),
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
            // Every vend its own STS call, with access key ids of its own.
            credential_cache: false,
            bindings: vec![],
        })
        .unwrap();
    service.shutdown().unwrap();
}

/// Starts `idfed serve --config …` on a free loopback port (trying a few, since another process may take
/// the port between [`free_port`] and the bind) and waits until `GET /healthz` answers; the server and its
/// base URL.
async fn start_server(
    dir: &Path,
    data_dir: &Path,
    users_file: &Path,
    client: &reqwest::Client,
) -> (Server, String) {
    start_server_with(dir, client, |port| config_text(port, data_dir, users_file)).await
}

/// [`start_server`] with the configuration `config` gives for a port.
async fn start_server_with(
    dir: &Path,
    client: &reqwest::Client,
    config: impl Fn(u16) -> String,
) -> (Server, String) {
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        let port = free_port();
        let config_file = dir.join("idfed.toml");
        std::fs::write(&config_file, config(port)).unwrap();
        let stdout = dir.join(format!("serve-{attempt}.stdout"));
        let stderr = dir.join(format!("serve-{attempt}.stderr"));
        let child = idfed_command()
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("cannot run idfed serve");
        let mut server = Server {
            child,
            stdout,
            stderr,
        };
        let base = format!("http://{}", SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                failures.push(format!(
                    "attempt {attempt} (port {port}): idfed serve exited ({status})\n{}",
                    server.output()
                ));
                break;
            }
            let healthy = client
                .get(format!("{base}/healthz"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if healthy {
                return (server, base);
            }
            assert!(
                Instant::now() < deadline,
                "idfed serve did not answer /healthz within {TIMEOUT:?}\n{}",
                server.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("idfed serve did not start:\n{}", failures.join("\n"));
}

/// One vend; its access key id when the answer was 200, else the status or error.
async fn vend(client: &reqwest::Client, base: &str, token: &str) -> Result<String, String> {
    let response = client
        .post(format!("{base}/api/v1/connectors/{CONNECTOR}/credentials"))
        .bearer_auth(token)
        .json(&json!({"format": "json"}))
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    // A 200 counts only once its whole body is in: what the client could use.
    let body = response
        .text()
        .await
        .map_err(|e| format!("{status}, body unread: {e}"))?;
    if status != 200 {
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        return Err(format!("{status} {}", body["code"].as_str().unwrap_or("?")));
    }
    let body: Value =
        serde_json::from_str(&body).map_err(|e| format!("200 but not JSON ({e}): {body}"))?;
    body["access_key_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("200 without an access_key_id: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vend_answered_survives_a_sigkill_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let users_file = dir.path().join("users.toml");
    add_user(&users_file, user("alice", &["devs"]), false).unwrap();
    // The port of this configuration is never used: the one `idfed serve` gets is chosen at its start.
    prepare_data(&parse_config(&config_text(
        free_port(),
        &data_dir,
        &users_file,
    )));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (mut server, base) = start_server(dir.path(), &data_dir, &users_file, &client).await;

    // alice logs in, and one vend works.
    let response = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login\n{}", server.output());
    let login: Value = response.json().await.unwrap();
    let token: Arc<str> = login["token"].as_str().unwrap().into();
    let first = vend(&client, &base, &token)
        .await
        .unwrap_or_else(|e| panic!("the first vend: {e}\n{}", server.output()));
    assert!(first.starts_with("ASIA"), "{first}");

    // CLIENTS tasks vend in a loop, keeping every access key id answered 200.
    let answered = Arc::new(Mutex::new(vec![first]));
    let refusals = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    // `killing`: set just before the kill, from when failures are expected; `stop`: set after it.
    let killing = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            let (answered, refusals) = (answered.clone(), refusals.clone());
            let (killing, stop) = (killing.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    match vend(&client, &base, &token).await {
                        Ok(id) => answered.lock().unwrap().push(id),
                        // Before the kill, a refusal (say the STS budget) is counted; after it, failures
                        // are expected.
                        Err(e) if !killing.load(Ordering::Acquire) => {
                            *refusals.lock().unwrap().entry(e).or_default() += 1;
                        }
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();

    // The load runs for LOAD and at least MIN_VENDS vends, then SIGKILL while the tasks still send.
    let started = Instant::now();
    loop {
        let vends = answered.lock().unwrap().len();
        if started.elapsed() >= LOAD && vends >= MIN_VENDS {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "only {vends} vend(s) answered 200 in {TIMEOUT:?}; other answers: {:?}\n{}",
            refusals.lock().unwrap(),
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killing.store(true, Ordering::Release);
    let at_kill = answered.lock().unwrap().len();
    let status = server.kill();
    // The server is gone: whatever the tasks record from now on was answered before it died.
    stop.store(true, Ordering::Release);
    for task in tasks {
        tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("a client task did not stop after the kill")
            .unwrap();
    }
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    let refusals = std::mem::take(&mut *refusals.lock().unwrap());
    println!(
        "idfed serve killed ({status}) after {:?}: {} vend(s) answered 200 ({at_kill} when the kill was sent), \
         other answers before the kill: {refusals:?}",
        started.elapsed(),
        answered.len()
    );

    // The chain holds after the crash.
    let output = idfed_command()
        .args(["audit", "verify", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let verify_out = String::from_utf8_lossy(&output.stdout);
    let verify_err = String::from_utf8_lossy(&output.stderr);
    println!("idfed audit verify: {}{verify_err}", verify_out.trim_end());
    assert!(
        output.status.success(),
        "idfed audit verify failed ({}):\n{verify_out}{verify_err}",
        output.status
    );

    // Every access key id answered has its `issued` record.
    let config = parse_config(&config_text(free_port(), &data_dir, &users_file));
    let store = DataStore::open(&data_dir, config.data.key_source()).unwrap();
    let audit = AuditLog::open(store.db(), None).unwrap();
    let records = audit
        .query(&AuditFilter {
            limit: 0,
            ..AuditFilter::default()
        })
        .unwrap();
    let issued: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.event.outcome == Outcome::Issued)
        .filter(|r| r.event.connector.as_deref() == Some(CONNECTOR))
        .filter_map(|r| r.event.access_key_id.as_deref())
        .collect();
    let distinct: BTreeSet<&str> = answered.iter().map(String::as_str).collect();
    assert_eq!(
        distinct.len(),
        answered.len(),
        "an access key id was answered twice (is the connector's credential cache off?)"
    );
    let missing: Vec<&str> = distinct.difference(&issued).copied().collect();
    println!(
        "{} vend(s) answered 200; the audit log has {} record(s), {} of them `issued` from {CONNECTOR}; \
         {} answered vend(s) without a record",
        answered.len(),
        records.len(),
        issued.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} of {} vend(s) answered 200 have no `issued` audit record after the SIGKILL \
         (credentials handed out without a durable record): {missing:?}",
        missing.len(),
        answered.len()
    );
}

/// A replica's configuration: its own data directory, the shared master key and database.
fn replica_config(port: u16, data_dir: &Path, shared: &Path, url: &str) -> String {
    format!(
        "[server]\nplain_http = true\nlisten = \"127.0.0.1:{port}\"\n\
         [data]\ndir = {data_dir:?}\nmaster_key_file = {:?}\nbackend = \"postgres\"\n\
         [data.postgres]\nurl = {url:?}\n\
         [auth.directory]\ntype = \"static\"\nfile = {:?}\n",
        shared.join("master.key"),
        shared.join("users.toml"),
    )
}

/// Three `idfed serve` replicas on one PostgreSQL database, clients spreading vends over them and trying
/// the next replica when one does not answer; one replica is killed with SIGKILL under load. The clients'
/// requests go on succeeding on the other two, and every vend any replica answered 200 has its `issued`
/// record in the one audit chain, which verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_answered_vend_and_the_others_carry_on() {
    let cluster = idfed_tests::postgres::PgCluster::start();
    cluster.create_database("replicas");
    let url = cluster.url("replicas");
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    add_user(&shared.join("users.toml"), user("alice", &["devs"]), false).unwrap();
    let data_dir = |i: usize| dir.path().join(format!("replica-{i}"));
    prepare_service(
        Service::open(&parse_config(&replica_config(
            free_port(),
            &data_dir(9),
            &shared,
            &url,
        )))
        .unwrap(),
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for i in 0..3 {
        let home = dir.path().join(format!("home-{i}"));
        std::fs::create_dir_all(&home).unwrap();
        let data = data_dir(i);
        let (server, base) = start_server_with(&home, &client, |port| {
            replica_config(port, &data, &shared, &url)
        })
        .await;
        servers.push(server);
        bases.push(base);
    }
    let response = client
        .post(format!("{}/api/v1/login", bases[1]))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let login: Value = response.json().await.unwrap();
    let token: Arc<str> = login["token"].as_str().unwrap().into();
    let bases: Arc<Vec<String>> = Arc::new(bases);

    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let after_kill = Arc::new(Mutex::new(0usize));
    let refusals = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|task| {
            let (client, bases, token) = (client.clone(), bases.clone(), token.clone());
            let (answered, after_kill, refusals) =
                (answered.clone(), after_kill.clone(), refusals.clone());
            let (killed, stop) = (killed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut next = task;
                while !stop.load(Ordering::Acquire) {
                    // Round-robin; a replica that does not answer is tried no more than once a turn.
                    let base = &bases[next % bases.len()];
                    next += 1;
                    let was_killed = killed.load(Ordering::Acquire);
                    match vend(&client, base, &token).await {
                        Ok(id) => {
                            answered.lock().unwrap().push(id);
                            if was_killed {
                                *after_kill.lock().unwrap() += 1;
                            }
                        }
                        Err(e) if e.starts_with("request failed") => {}
                        Err(e) => *refusals.lock().unwrap().entry(e).or_default() += 1,
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    while answered.lock().unwrap().len() < MIN_VENDS || started.elapsed() < LOAD {
        assert!(
            started.elapsed() < TIMEOUT,
            "too few vends: {:?}\n{}",
            refusals.lock().unwrap(),
            servers[0].output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killed.store(true, Ordering::Release);
    let status = servers[0].kill();
    // The others carry on: more vends succeed after the kill.
    let resumed = Instant::now();
    while *after_kill.lock().unwrap() < MIN_VENDS {
        assert!(
            resumed.elapsed() < TIMEOUT,
            "the remaining replicas did not carry on: {:?}\n{}",
            refusals.lock().unwrap(),
            servers[1].output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Release);
    for task in tasks {
        tokio::time::timeout(TIMEOUT, task).await.unwrap().unwrap();
    }
    drop(servers);
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    let refusals = std::mem::take(&mut *refusals.lock().unwrap());
    assert!(
        refusals.is_empty(),
        "answers other than 200 and a dead replica: {refusals:?}"
    );
    println!(
        "replica 0 killed ({status}); {} vend(s) answered 200 over three replicas, {} after the kill",
        answered.len(),
        *after_kill.lock().unwrap()
    );

    let output = idfed_command()
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir(1))
        .args(["--master-key-file"])
        .arg(shared.join("master.key"))
        .args(["--database-url", &url])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "idfed audit verify: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let pg = idfed::store::db::postgres::Postgres::connect(
        &idfed::store::db::postgres::PostgresConfig::new(idfed::secret::Secret::new(url.clone())),
    )
    .unwrap();
    let store = DataStore::open_postgres(
        pg,
        &data_dir(1),
        idfed::store::KeySource::File(shared.join("master.key")),
    )
    .unwrap();
    let records = AuditLog::open(store.db(), None)
        .unwrap()
        .query(&AuditFilter {
            limit: 0,
            ..AuditFilter::default()
        })
        .unwrap();
    let issued: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.event.outcome == Outcome::Issued)
        .filter_map(|r| r.event.access_key_id.as_deref())
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !issued.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered vend(s) have no issued record: {missing:?}",
        missing.len(),
        answered.len()
    );
}
