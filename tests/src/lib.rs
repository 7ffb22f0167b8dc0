//! Shared pieces of idfed's end-to-end tests: the plugin components built from `plugins/` by `build.rs`,
//! and helpers to make runtimes and requests.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use idfed::plugins::{
    Caller, ConnectorInfo, KvStore, Plugin, PluginRuntime, PolicyRequest, PrincipalType, Purpose,
    RuntimeConfig,
};

/// Running the web UI's browser test scripts (playwright-core in Debian's Chromium).
pub mod browser;

/// Python policy plugins (`plugins/python/`): built with componentize-py and compiled once per test run.
pub mod python;

/// An AWS CodeArtifact stand-in (`GetAuthorizationToken`; moto has no CodeArtifact).
pub mod codeartifact;

/// A Crowd REST API test server (Atlassian Crowd cannot run here).
pub mod crowd;

/// An OpenID Connect issuer stand-in (a CI system's ID tokens: discovery, JWKS, RS256/ES256 signing).
pub mod oidc;

/// A real idfed server on a loopback port, for end-to-end tests.
pub mod server;

/// Starts and stops moto, the third-party STS the tests run against.
pub mod moto;

/// Throw-away PostgreSQL clusters (Debian's package, `initdb` in a temporary directory, a loopback port).
pub mod postgres;

/// An AWS STS stand-in (Query API, counted calls, delay and throttling), in process or as the `sts-standin` binary.
pub mod sts_standin;

/// Paths of the components built from `plugins/`, one constant per crate (`RATE_LIMIT`, `ENDLESS_LOOP`…).
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

/// A loopback port free right now (a server that binds it later may find it taken: retry).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("cannot bind a loopback port")
        .port()
}

/// A runtime over a data directory of its own, and that directory.
pub struct TestRuntime {
    /// The runtime.
    pub runtime: PluginRuntime,
    /// The database behind its key-value store.
    pub db: idfed::store::Db,
    /// Keeps the data directory alive.
    pub dir: Arc<tempfile::TempDir>,
}

impl TestRuntime {
    /// A runtime with default settings in a new temporary data directory.
    pub fn new() -> Self {
        Self::with_config(RuntimeConfig::default())
    }

    /// A runtime with `config` in a new temporary data directory.
    pub fn with_config(config: RuntimeConfig) -> Self {
        Self::open(Arc::new(tempfile::tempdir().unwrap()), config)
    }

    /// A runtime over an existing data directory (as after a restart).
    pub fn open(dir: Arc<tempfile::TempDir>, config: RuntimeConfig) -> Self {
        let db = idfed::store::Db::Sled(idfed::store::open_db(&dir.path().join("db")).unwrap());
        let kv = KvStore::new(db.open_tree("plugin-kv").unwrap());
        let data = cap_std_dir(dir.path());
        let runtime = PluginRuntime::new(config, Some(&data), kv).unwrap();
        TestRuntime { runtime, db, dir }
    }

    /// Loads a fixture by path.
    pub fn load(&self, path: &str) -> Arc<Plugin> {
        let wasm = std::fs::read(path).unwrap();
        let name = std::path::Path::new(path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        self.runtime.load(&name, &wasm).unwrap()
    }
}

impl Default for TestRuntime {
    fn default() -> Self {
        Self::new()
    }
}

fn cap_std_dir(path: &std::path::Path) -> cap_std::fs::Dir {
    cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority()).unwrap()
}

/// A request from `user` in `groups` to a connector of `principal_type`, for one hour, at `time`.
pub fn request(
    user: &str,
    groups: &[&str],
    principal_type: PrincipalType,
    policy: Option<&str>,
) -> PolicyRequest {
    PolicyRequest {
        request_id: "test-request".into(),
        caller: Caller {
            user_name: Some(user.into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            is_admin: false,
            is_system_scope: false,
            source_ip: Some("127.0.0.1".into()),
            user_agent: Some("idfed-tests".into()),
            workload: None,
        },
        connector: ConnectorInfo {
            name: "dev".into(),
            principal_type,
            account_name: "main".into(),
            role_arn: (principal_type == PrincipalType::AssumedRole)
                .then(|| "arn:aws:iam::123456789012:role/dev".into()),
            default_duration_seconds: None,
            max_duration_seconds: None,
        },
        requested_duration_seconds: Some(3600),
        duration_seconds: 3600,
        policy: policy.map(str::to_owned),
        policy_arns: vec![],
        tags: vec![],
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_030_100), // Mon 2026-11-30 09:15 UTC
        justification: None,
        ticket: None,
        purpose: Purpose::Credentials,
        approval: None,
    }
}

/// An S3 read-only policy for `data`.
pub const S3_READ_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::data","arn:aws:s3:::data/*"]}]}"#;

/// The `idfed` binary of this build (`target/<profile>/idfed`), for tests that run it as a user would.
/// `cargo test --workspace` builds it (the `idfed` package has integration tests of its own).
pub fn idfed_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary> → target/<profile>/idfed
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("idfed");
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build -p idfed` or run the tests with `cargo test --workspace`",
        binary.display()
    );
    binary
}

/// The benchmarks' setup: account `main` (an IAM user's keys; STS is the benchmark's stand-in) and two
/// assumed-role connectors for `group`, `plain` (no plugin) and `chained` (policy-guard, duration-cap and
/// session-tags).
pub fn add_benchmark_connectors(store: &dyn idfed::store::Store, group: &str) {
    use idfed::model::{AccountInput, AccountSourceInput, BindingSpec, Connector, Principal};
    const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::data","arn:aws:s3:::data/*"]}]}"#;
    store
        .put_account(AccountInput {
            name: "main".into(),
            description: String::new(),
            source: AccountSourceInput::IamUser {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: Some(idfed::secret::Secret::new("x".repeat(40))),
            },
            region: None,
            sts_endpoint: None,
        })
        .unwrap();
    let connector = |name: &str, bindings: Vec<BindingSpec>| Connector {
        id: uuid::Uuid::new_v4(),
        name: name.into(),
        description: String::new(),
        account: "main".into(),
        principal: Principal::AssumedRole {
            role_arn: "arn:aws:iam::123456789012:role/dev".into(),
            external_id: None,
            session_tags: vec![],
            source_identity: false,
        },
        policy: Some(S3_READ.into()),
        policy_arns: vec![],
        default_duration_seconds: None,
        max_duration_seconds: None,
        groups: vec![group.into()],
        system_scope: false,
        enabled: true,
        credential_cache: false,
        bindings,
    };
    let bind = |path: &str, config: &str, tag_keys: &[&str]| BindingSpec {
        id: uuid::Uuid::new_v4().to_string(),
        plugin: store
            .put_plugin(&std::fs::read(path).unwrap(), None)
            .unwrap(),
        config: config.into(),
        limits: None,
        tag_keys: tag_keys.iter().map(|k| k.to_string()).collect(),
    };
    store.create_connector(connector("plain", vec![])).unwrap();
    store
        .create_connector(connector(
            "chained",
            vec![
                bind(
                    fixtures::POLICY_GUARD,
                    r#"{"mode": "deny", "actions": ["iam:*", "organizations:*"]}"#,
                    &[],
                ),
                bind(
                    fixtures::DURATION_CAP,
                    r#"{"default_max_duration_seconds": 3600}"#,
                    &[],
                ),
                bind(
                    fixtures::SESSION_TAGS,
                    r#"{"user_tag": "idfed-user", "team_tag": "team", "team_group_pattern": "team-*"}"#,
                    &["idfed-user", "team"],
                ),
            ],
        ))
        .unwrap();
}

/// An STS stand-in that answers at once with fixed credentials, for benchmarks of idfed's own cost (moto,
/// at ~3 ms a call, would hide it).
pub struct InstantSts;

impl idfed::sts::CredentialIssuer for InstantSts {
    fn issue<'a>(
        &'a self,
        request: &'a idfed::sts::IssueRequest,
    ) -> idfed::sts::BoxFuture<'a, Result<idfed::sts::IssuedCredentials, idfed::sts::StsError>>
    {
        let duration = Duration::from_secs(request.duration_seconds.into());
        Box::pin(async move {
            Ok(idfed::sts::IssuedCredentials {
                access_key_id: "ASIABENCHMARKEXAMPLE".into(),
                secret_access_key: idfed::secret::Secret::new("benchmark-secret"),
                session_token: idfed::secret::Secret::new("benchmark-token"),
                expiration: SystemTime::now() + duration,
                principal_arn: None,
                packed_policy_size: None,
            })
        })
    }

    fn caller_identity<'a>(
        &'a self,
        _: &'a idfed::sts::AccountAccess,
        _: &'a idfed::sts::IssuedCredentials,
    ) -> idfed::sts::BoxFuture<'a, Result<idfed::sts::CallerIdentity, idfed::sts::StsError>> {
        Box::pin(async {
            Err(idfed::sts::StsError::new(
                idfed::sts::StsErrorKind::Other,
                "the benchmark STS stand-in has no GetCallerIdentity",
            ))
        })
    }
}
