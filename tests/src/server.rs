//! A real idfed server for end-to-end tests: `idfed serve`'s service on 127.0.0.1 (a free port, plain
//! HTTP), a static users file (or the Crowd test server), and, from [`TestServer::start`], an account
//! `main` whose STS is moto. Each test adds its connectors through `service.store`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use idfed::api::{ApiLimits, AppState, serve};
use idfed::auth::static_dir::{UserEntry, add_user, hash_password};
use idfed::config::{Config, WebConfig};
use idfed::model::{AccountInput, AccountSourceInput};
use idfed::secret::Secret;
use idfed::service::Service;
use idfed::store::Store;

use crate::crowd::CrowdServer;
use crate::moto;

/// Every test user's password.
pub const PASSWORD: &str = "correct-horse-battery";
/// The account's secret access key: tests look for it where it must never be.
pub const ACCOUNT_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETzz";

/// An IAM-user account `name` (keys with [`ACCOUNT_SECRET`]) whose STS is at `sts_endpoint`, in us-east-1.
pub fn iam_account(name: &str, sts_endpoint: &str) -> AccountInput {
    AccountInput {
        name: name.into(),
        description: String::new(),
        source: AccountSourceInput::IamUser {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Some(Secret::new(ACCOUNT_SECRET)),
        },
        region: Some("us-east-1".into()),
        sts_endpoint: Some(sts_endpoint.to_owned()),
    }
}

/// An assumed-role connector `name` over `account` (role `arn:aws:iam::123456789012:role/<name>`), for
/// `groups`, enabled, without plugins or caching.
pub fn role_connector(name: &str, account: &str, groups: &[&str]) -> idfed::model::Connector {
    idfed::model::Connector {
        id: uuid::Uuid::new_v4(),
        name: name.into(),
        description: String::new(),
        account: account.into(),
        principal: idfed::model::Principal::AssumedRole {
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
        system_scope: false,
        enabled: true,
        credential_cache: false,
        bindings: vec![],
    }
}

/// A user with [`PASSWORD`], active, in `groups`.
pub fn user(name: &str, groups: &[&str]) -> UserEntry {
    UserEntry {
        name: name.into(),
        display_name: None,
        email: None,
        active: true,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        password_hash: hash_password(&Secret::new(PASSWORD)).unwrap(),
    }
}

/// A running server.
pub struct TestServer {
    /// The data directory, users file and whatever else the test writes.
    pub dir: tempfile::TempDir,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The service behind it.
    pub service: Arc<Service>,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// Its `[web]` settings.
    pub web: WebConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Directories that must outlive the server (replicas' shared files).
    keep: Vec<tempfile::TempDir>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with these users and the account `main` (moto's STS); `extra_config` is appended
    /// to its TOML (e.g. an `[auth]` section).
    pub async fn start(users: Vec<UserEntry>, extra_config: &str) -> TestServer {
        let server = Self::start_empty(users, extra_config).await;
        server
            .service
            .store
            .put_account(iam_account("main", &moto::shared().endpoint()))
            .unwrap();
        server
    }

    /// Starts a server with these users and nothing stored.
    pub async fn start_empty(users: Vec<UserEntry>, extra_config: &str) -> TestServer {
        Self::start_with_server(users, "", extra_config).await
    }

    /// [`TestServer::start_empty`] with `server_config` added to its `[server]` section.
    pub async fn start_with_server(
        users: Vec<UserEntry>,
        server_config: &str,
        extra_config: &str,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let users_file = dir.path().join("users.toml");
        for entry in users {
            add_user(&users_file, entry, false).unwrap();
        }
        let directory = format!("type = \"static\"\nfile = {users_file:?}\n");
        Self::launch(dir, server_config, &directory, extra_config).await
    }

    /// Starts `count` replicas on one PostgreSQL database (`database_url`), as a load balancer would
    /// have them: the same users file and master key, each its own data directory (its compiled-plugin
    /// cache) and port; the account `main` (moto's STS) stored once.
    pub async fn start_replicas(
        count: usize,
        database_url: &str,
        users: Vec<UserEntry>,
        extra_config: &str,
    ) -> Vec<TestServer> {
        let shared = tempfile::tempdir().unwrap();
        let users_file = shared.path().join("users.toml");
        for entry in users {
            add_user(&users_file, entry, false).unwrap();
        }
        let directory = format!("type = \"static\"\nfile = {users_file:?}\n");
        let data = format!(
            "master_key_file = {:?}\nbackend = \"postgres\"\n[data.postgres]\nurl = {database_url:?}\n",
            shared.path().join("master.key")
        );
        let mut replicas = Vec::new();
        for _ in 0..count {
            let dir = tempfile::tempdir().unwrap();
            replicas.push(Self::launch_with(dir, "", &data, &directory, extra_config).await);
        }
        replicas[0]
            .service
            .store
            .put_account(iam_account("main", &moto::shared().endpoint()))
            .unwrap();
        // The shared files live as long as the first replica.
        replicas[0].keep.push(shared);
        replicas
    }

    /// Starts a server whose directory is `crowd`, with nothing stored.
    pub async fn start_with_crowd(crowd: &CrowdServer, extra_config: &str) -> TestServer {
        let directory = format!(
            "type = \"crowd\"\nurl = {:?}\napplication_name = {:?}\napplication_password = {:?}\n",
            crowd.base_url(),
            crowd.application_name(),
            crowd.application_password(),
        );
        Self::launch(tempfile::tempdir().unwrap(), "", &directory, extra_config).await
    }

    /// Serves on a free loopback port with its data in `dir`, `server_config` in `[server]` and
    /// `directory` as `[auth.directory]`.
    async fn launch(
        dir: tempfile::TempDir,
        server_config: &str,
        directory: &str,
        extra_config: &str,
    ) -> TestServer {
        let data = crate::postgres::data_backend_toml();
        let server = Self::launch_with(dir, server_config, &data, directory, extra_config).await;
        let engine = if crate::postgres::servers_on_postgres() {
            "postgres"
        } else {
            "sled"
        };
        assert_eq!(
            server.service.store.db().engine(),
            engine,
            "the backend asked for"
        );
        server
    }

    /// [`TestServer::launch`] with `data` in the `[data]` section after its `dir`.
    async fn launch_with(
        dir: tempfile::TempDir,
        server_config: &str,
        data: &str,
        directory: &str,
        extra_config: &str,
    ) -> TestServer {
        let mut config = Config::parse(&format!(
            "[server]\nplain_http = true\nlisten = \"127.0.0.1:0\"\n{server_config}[data]\ndir = {:?}\n{data}[auth.directory]\n{directory}{extra_config}",
            dir.path().join("data"),
        ))
        .unwrap();
        config.apply_env(|_| None).unwrap();
        config.check().unwrap();
        let service = Arc::new(Service::open(&config).unwrap());
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(service.clone(), ApiLimits::from(&config.server))
            .with_web(config.web.clone())
            .with_trusted_proxies(config.server.trusted_proxies.clone())
            .with_service_endpoints(&config.endpoints, config.sts.region.clone());
        let task = tokio::spawn(serve(listener, None, state, async move {
            let _ = stopped.await;
        }));
        TestServer {
            dir,
            addr,
            service,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            web: config.web,
            keep: Vec::new(),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The audit log's records of `connector`, newest first, as the server stores them.
    pub fn records_of(&self, connector: &str) -> Vec<idfed::audit::AuditRecord> {
        self.service
            .audit
            .query(&idfed::audit::AuditFilter {
                connector: Some(connector.into()),
                ..idfed::audit::AuditFilter::default()
            })
            .unwrap()
    }

    /// Binds the plugin component in the file `plugin` with `config` as `connector`'s only plugin.
    pub fn bind_only(&self, connector: &str, plugin: &str, config: &str) {
        let store = &self.service.store;
        let current = store.get_connector(connector).unwrap().unwrap();
        let digest = store
            .put_plugin(&std::fs::read(plugin).unwrap(), None)
            .unwrap();
        let mut bound = current.clone();
        bound.bindings = vec![idfed::model::BindingSpec {
            id: uuid::Uuid::new_v4().to_string(),
            plugin: digest,
            config: config.into(),
            limits: None,
            tag_keys: vec![],
        }];
        store.update_connector(bound, &current).unwrap();
    }

    /// Logs `user` in with [`PASSWORD`]; the session token.
    pub async fn login(&self, user: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/v1/login"))
            .json(&serde_json::json!({"username": user, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Logs `user` in with the real `idfed` binary (`idfed login --password-stdin`); the folder its session
    /// is kept in, for `IDFED_CONFIG_DIR`.
    pub fn cli_login(&self, user: &str) -> PathBuf {
        let config_dir = self.dir.path().join(format!("idfed-config-{user}"));
        let out = run(
            Command::new(crate::idfed_binary())
                .env("IDFED_CONFIG_DIR", &config_dir)
                .args(["login", "--server", &self.url(""), "--user", user])
                .arg("--password-stdin"),
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(out.contains("logged in"), "{out}");
        config_dir
    }

    /// Stops serving after requests in flight, and flushes the service.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
        self.service.shutdown().unwrap();
    }

    /// An AWS tool with no AWS settings of the machine's: empty config files of the test's, the region set.
    pub fn aws_command(&self, program: &Path) -> Command {
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
    /// `aws sts get-caller-identity` (the AWS CLI from `.venv`, see [`TestServer::aws_command`]) with these
    /// environment variables, against the STS at `endpoint`: who AWS says the credentials are.
    pub fn aws_caller_identity<K, V>(
        &self,
        env: impl IntoIterator<Item = (K, V)>,
        endpoint: &str,
    ) -> serde_json::Value
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let out = run(
            self.aws_command(&venv("aws"))
                .envs(env)
                .args(["sts", "get-caller-identity", "--output", "json"])
                .args(["--endpoint-url", endpoint]),
            None,
        );
        serde_json::from_str(&out).unwrap()
    }
}

/// A tool from the tests' `.venv` (`scripts/setup-test-env`): `aws`, `python`.
pub fn venv(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/bin")
        .join(tool)
}

/// Runs `command` (feeding `stdin`), asserts it succeeded, and returns its stdout.
pub fn run(command: &mut Command, stdin: Option<&str>) -> String {
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
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
