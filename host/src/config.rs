//! idfed's configuration file, `idfed.toml`, with `IDFED_*` environment overrides.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8443"            # IDFED_LISTEN
//! tls_cert = "/etc/idfed/cert.pem"     # IDFED_TLS_CERT (PEM chain)
//! tls_key = "/etc/idfed/key.pem"       # IDFED_TLS_KEY (PEM private key)
//! # plain_http = true                  # IDFED_PLAIN_HTTP: only behind a TLS-terminating proxy or on loopback
//! body_limit_bytes = 65536
//! request_timeout_seconds = 30
//! body_timeout_seconds = 10            # a request body pausing longer is refused (408 body_timeout)
//! max_tls_handshakes = 256             # TLS handshakes at once; more wait their turn
//! trusted_proxies = ["10.0.0.0/8"]     # only from these, the client is read from Forwarded / X-Forwarded-For
//!
//! [data]
//! dir = "/var/lib/idfed"               # IDFED_DATA_DIR
//! master_key_file = "/etc/idfed/master.key"   # IDFED_MASTER_KEY_FILE; IDFED_MASTER_KEY (base64) wins
//! backend = "sled"                     # IDFED_DATA_BACKEND: "sled" (embedded) or "postgres" (replicas)
//! [data.postgres]                      # with backend = "postgres"
//! url_file = "/etc/idfed/database-url" # or url = "postgres://…"; IDFED_DATABASE_URL wins
//! pool_size = 16                       # connections per replica
//! timeout_seconds = 5                  # past it the database counts as down: 503 store_unavailable
//! ca_file = "/etc/idfed/db-ca.pem"     # trusted for the database's TLS (sslmode in the URL)
//!
//! [auth]                               # see crate::auth::config
//! admin_groups = ["idfed-admins"]
//! [auth.directory]
//! type = "static"
//! file = "/etc/idfed/users.toml"
//!
//! [sts]
//! region = "us-east-1"                 # IDFED_STS_REGION: for accounts that name none
//! endpoint = "https://sts.eu-west-1.amazonaws.com"   # IDFED_STS_ENDPOINT: for accounts that name none
//! connect_timeout_seconds = 3
//! operation_timeout_seconds = 10
//! max_attempts = 3
//! budget_per_second = 300              # STS calls per account and Region (STS allows 600); 0: no budget
//! budget_wait_ms = 500                 # a call over budget waits this long, then sts_budget_exhausted (429)
//! budget_per_caller_per_second = 150   # one caller's share (default half the budget; 0: none)
//!
//! [credential_cache]                   # for connectors with credential_cache on
//! min_remaining_seconds = 900          # hand out cached credentials only with this much life left…
//! min_remaining_fraction = 0.5         # …and this share of the duration asked for
//! max_entries = 10000
//! max_entries_per_caller = 1000        # past it, a caller's own soonest-expiring entry goes
//!
//! [audit]
//! durable = true                       # every vend's record fsynced (group commit) before its answer
//!
//! [plugins]
//! deadline_ms = 50                     # CPU time and wall-clock time (waiting counts) of one call
//! memory_mib = 16
//! max_concurrent_per_binding = 16      # a binding's share of the 128-instance pool
//! queue_ms = 100                       # wait for a free slot, then plugin_busy (503, Retry-After)
//!
//! [[workload.issuers]]                  # CI jobs' OIDC tokens as callers: see crate::auth::workload
//! name = "ci"
//! issuer = "https://token.actions.githubusercontent.com"
//! audience = "https://idfed.example.com"
//! caller = "{repository}@{ref}"
//! [[workload.issuers.rules]]
//! claims = { repository = "org/app", ref = "refs/heads/main" }
//! connectors = ["deploy-prod"]
//!
//! [console]                            # console sign-in URLs
//! federation_endpoint = "https://signin.aws.amazon.com/federation"
//! issuer = "idfed"
//! default_destination = "https://console.aws.amazon.com/"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::config::AuthSettings;
use crate::auth::workload::WorkloadSettings;
use crate::plugins::{Limits, RuntimeConfig};
use crate::store::KeySource;
use crate::sts::IssuerSettings;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where and how to listen.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[data]`: the data directory and master key.
    #[serde(default)]
    pub data: DataConfig,
    /// `[auth]`: the directory and sessions.
    pub auth: AuthSettings,
    /// `[sts]`: how to reach STS.
    #[serde(default)]
    pub sts: StsConfig,
    /// `[plugins]`: the plugins' default limits.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// `[console]`: AWS console sign-in URLs.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// `[endpoints]`: other AWS services' endpoints than AWS's own (ECR).
    #[serde(default)]
    pub endpoints: EndpointsConfig,
    /// `[web]`: the web UI.
    #[serde(default)]
    pub web: WebConfig,
    /// `[credential_cache]`: when cached credentials are handed out again.
    #[serde(default)]
    pub credential_cache: CredentialCacheConfig,
    /// `[audit]`: the audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[workload]`: the OIDC issuers (CI systems) whose ID tokens are callers.
    #[serde(default)]
    pub workload: WorkloadSettings,
    /// `[approvals]`: how long approval requests and approvals last, and the webhook announcing them.
    #[serde(default)]
    pub approvals: crate::approvals::ApprovalSettings,
}

/// `[credential_cache]`: for connectors with `credential_cache` on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialCacheConfig {
    /// The least life, in seconds, cached credentials must have left to be handed out (default 900).
    pub min_remaining_seconds: u64,
    /// The least share of the duration asked for they must have left (default 0.5; 0 to 1).
    pub min_remaining_fraction: f64,
    /// The most credential sets kept (default 10,000).
    pub max_entries: usize,
    /// The most one caller may have (default 1,000).
    pub max_entries_per_caller: usize,
}

impl Default for CredentialCacheConfig {
    fn default() -> Self {
        let d = crate::vend::CacheSettings::default();
        CredentialCacheConfig {
            min_remaining_seconds: d.min_remaining.as_secs(),
            min_remaining_fraction: d.min_remaining_fraction,
            max_entries: d.max_entries,
            max_entries_per_caller: d.max_entries_per_caller,
        }
    }
}

impl CredentialCacheConfig {
    /// The cache's settings.
    pub fn settings(&self) -> crate::vend::CacheSettings {
        crate::vend::CacheSettings {
            min_remaining: Duration::from_secs(self.min_remaining_seconds),
            min_remaining_fraction: self.min_remaining_fraction,
            max_entries: self.max_entries,
            max_entries_per_caller: self.max_entries_per_caller,
        }
    }
}

/// `[audit]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Whether every vend's and admin change's record is on disk (fsynced, shared by concurrent requests)
    /// before the answer is sent (default true). Off, a crash can lose the last half second's records.
    pub durable: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { durable: true }
    }
}

/// `[web]`: the web UI served at `/`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the web UI (default true). The API is served either way.
    pub enabled: bool,
    /// The directory's SSO cookie: with Crowd, a browser that brings a valid one is logged in without a
    /// password (default `crowd.token_key`, Crowd's own; an empty name turns SSO off).
    pub sso_cookie: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            sso_cookie: "crowd.token_key".into(),
        }
    }
}

/// `[console]`: how console sign-in URLs are made (`POST /api/v1/connectors/{id}/console-url`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// The AWS federation endpoint (default `https://signin.aws.amazon.com/federation`).
    pub federation_endpoint: String,
    /// The `Issuer` shown by AWS when the console session ends (default `idfed`).
    pub issuer: String,
    /// Where the console opens when the caller names no destination
    /// (default `https://console.aws.amazon.com/`).
    pub default_destination: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            federation_endpoint: "https://signin.aws.amazon.com/federation".into(),
            issuer: "idfed".into(),
            default_destination: "https://console.aws.amazon.com/".into(),
        }
    }
}

/// `[endpoints]`: where idfed reaches AWS services other than STS with vended credentials, when not at
/// AWS's own regional endpoints (a VPC endpoint, a test server).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointsConfig {
    /// Amazon ECR's endpoint (`POST /connectors/{c}/ecr-login`), for every account.
    pub ecr: Option<String>,
    /// AWS CodeArtifact's endpoint (`POST /connectors/{c}/codeartifact-token`), for every account.
    pub codeartifact: Option<String>,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The address to listen on (default `127.0.0.1:8443`).
    pub listen: SocketAddr,
    /// The certificate chain, PEM.
    pub tls_cert: Option<PathBuf>,
    /// The private key, PEM.
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (only when set to true: behind a TLS-terminating proxy or on loopback).
    pub plain_http: bool,
    /// The largest request body accepted (default 64 KiB).
    pub body_limit_bytes: usize,
    /// How long a request may take (default 30 s).
    pub request_timeout_seconds: u64,
    /// How long a request body may pause between two reads before the request is refused with 408
    /// `body_timeout` (default 10 s): a client that stops sending is answered long before the request
    /// timeout.
    pub body_timeout_seconds: u64,
    /// How many TLS handshakes run at once (default 256); connections beyond wait their turn, each
    /// handshake having at most 10 s.
    pub max_tls_handshakes: usize,
    /// The proxies (CIDR networks) whose `Forwarded` or `X-Forwarded-For` names the client: from a peer
    /// in one of them, the client is the right-most forwarded address not itself in one. Empty (the
    /// default): the connection's peer is the client, whatever the headers say.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A file holding the token `/metrics` then asks for (`Authorization: Bearer <token>`, as Prometheus'
    /// `authorization.credentials_file` sends it); without one, `/metrics` is open.
    pub metrics_token_file: Option<PathBuf>,
}

/// CIDR networks; a bare address is its own network (`/32`, `/128`).
fn networks<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a network (e.g. \"10.0.0.0/8\") or an address"
                    ))
                })
        })
        .collect()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls_cert: None,
            tls_key: None,
            plain_http: false,
            body_limit_bytes: 64 << 10,
            request_timeout_seconds: 30,
            body_timeout_seconds: 10,
            max_tls_handshakes: 256,
            trusted_proxies: Vec::new(),
            metrics_token_file: None,
        }
    }
}

impl ServerConfig {
    /// The `/metrics` token from [`ServerConfig::metrics_token_file`] (trailing newline ignored), if set.
    pub fn metrics_token(&self) -> Result<Option<crate::secret::Secret>, ConfigError> {
        let Some(path) = &self.metrics_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                "server.metrics_token_file",
                format!("{}: {e}", path.display()),
            )
        })?;
        let token = text.trim_end_matches(['\r', '\n']);
        if token.len() < 16 {
            return Err(invalid(
                "server.metrics_token_file",
                "the token must be at least 16 characters",
            ));
        }
        Ok(Some(crate::secret::Secret::new(token)))
    }
}

/// `[data]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The data directory (default `idfed-data`).
    pub dir: PathBuf,
    /// The master key file (default `<dir>/master.key`); `IDFED_MASTER_KEY`, when set, wins.
    pub master_key_file: Option<PathBuf>,
    /// Where the state is kept.
    pub backend: Backend,
    /// `[data.postgres]`, for `backend = "postgres"`.
    pub postgres: PostgresSection,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: PathBuf::from("idfed-data"),
            master_key_file: None,
            backend: Backend::Sled,
            postgres: PostgresSection::default(),
        }
    }
}

/// `[data] backend`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// sled, embedded in the data directory: one replica.
    #[default]
    Sled,
    /// PostgreSQL, shared by any number of replicas.
    Postgres,
}

/// `[data.postgres]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSection {
    /// The connection string (`postgres://user:password@host:port/db?sslmode=require`). Better in
    /// `url_file` or `IDFED_DATABASE_URL`: it may hold a password.
    pub url: Option<String>,
    /// A file holding the connection string.
    pub url_file: Option<PathBuf>,
    /// Connections each replica keeps at most (at least 2).
    pub pool_size: usize,
    /// How long a statement, a connection or a wait for one may take before the database counts as
    /// unavailable.
    pub timeout_seconds: u64,
    /// A CA certificate (PEM) trusted for the database's TLS, besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for PostgresSection {
    fn default() -> Self {
        PostgresSection {
            url: None,
            url_file: None,
            pool_size: 16,
            timeout_seconds: 5,
            ca_file: None,
        }
    }
}

impl std::fmt::Debug for PostgresSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSection")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The environment variable that gives the database's connection string (wins over the file's).
pub const DATABASE_URL_ENV: &str = "IDFED_DATABASE_URL";

impl PostgresSection {
    /// The client configuration: the connection string from `IDFED_DATABASE_URL`, else `url_file`,
    /// else `url`.
    pub fn client_config(&self) -> Result<crate::store::db::postgres::PostgresConfig, ConfigError> {
        let url = match std::env::var(DATABASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => match (&self.url_file, &self.url) {
                (Some(file), _) => std::fs::read_to_string(file).map_err(|e| {
                    invalid(
                        "data.postgres.url_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?,
                (None, Some(url)) => url.clone(),
                (None, None) => {
                    return Err(invalid(
                        "data.postgres",
                        format!(
                            "backend = \"postgres\" needs the database: set {DATABASE_URL_ENV}, \
                             url_file or url"
                        ),
                    ));
                }
            },
        };
        let mut config = crate::store::db::postgres::PostgresConfig::new(
            crate::secret::Secret::new(url.trim().to_owned()),
        );
        config.pool_size = self.pool_size;
        config.timeout = std::time::Duration::from_secs(self.timeout_seconds);
        config.ca_file = self.ca_file.clone();
        Ok(config)
    }
}

impl DataConfig {
    /// Where the master key comes from.
    pub fn key_source(&self) -> KeySource {
        let file = self
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.dir.join("master.key"));
        KeySource::from_env_or_file(file)
    }
}

/// `[sts]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StsConfig {
    /// The region for accounts that name none (default `us-east-1`).
    pub region: String,
    /// The STS endpoint for accounts that name none (default: AWS's).
    pub endpoint: Option<String>,
    /// TCP/TLS connect timeout (default 3 s).
    pub connect_timeout_seconds: u64,
    /// Timeout of a whole operation, retries included (default 10 s).
    pub operation_timeout_seconds: u64,
    /// Attempts per operation (default 3).
    pub max_attempts: u32,
    /// STS calls per second per account and Region idfed may make (default 300, half of STS's quota;
    /// 0: no budget).
    pub budget_per_second: u32,
    /// How long a call over budget waits for its turn before `sts_budget_exhausted` (default 500 ms).
    pub budget_wait_ms: u64,
    /// STS calls per second one caller may make of an account's budget (default half of it; 0: no
    /// share of its own), so that no one caller spends everyone's.
    pub budget_per_caller_per_second: Option<u32>,
}

impl Default for StsConfig {
    fn default() -> Self {
        let d = IssuerSettings::default();
        StsConfig {
            region: d.default_region,
            endpoint: None,
            connect_timeout_seconds: d.connect_timeout.as_secs(),
            operation_timeout_seconds: d.operation_timeout.as_secs(),
            max_attempts: d.max_attempts,
            budget_per_second: crate::sts::BudgetSettings::default().per_second,
            budget_wait_ms: crate::sts::BudgetSettings::default().max_wait.as_millis() as u64,
            budget_per_caller_per_second: None,
        }
    }
}

impl StsConfig {
    /// The issuer's settings.
    pub fn issuer_settings(&self) -> IssuerSettings {
        IssuerSettings {
            connect_timeout: Duration::from_secs(self.connect_timeout_seconds),
            operation_timeout: Duration::from_secs(self.operation_timeout_seconds),
            max_attempts: self.max_attempts,
            default_region: self.region.clone(),
        }
    }

    /// The STS budget's settings.
    pub fn budget_settings(&self) -> crate::sts::BudgetSettings {
        crate::sts::BudgetSettings {
            per_second: self.budget_per_second,
            per_caller_per_second: self
                .budget_per_caller_per_second
                .unwrap_or(self.budget_per_second / 2),
            max_wait: Duration::from_millis(self.budget_wait_ms),
        }
    }
}

/// `[plugins]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// CPU deadline of one evaluation, for bindings that set none (default 50 ms).
    pub deadline_ms: u64,
    /// Memory cap of one evaluation, for bindings that set none (default 16 MiB).
    pub memory_mib: usize,
    /// How many evaluations of one binding may run at once (default 16 of the pool's 128 instances), so
    /// that a slow or sleeping plugin cannot take the instances every other binding needs.
    pub max_concurrent_per_binding: u32,
    /// How long an evaluation waits for a free slot before `plugin_busy` (default 100 ms).
    pub queue_ms: u64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            deadline_ms: 50,
            memory_mib: 16,
            max_concurrent_per_binding: 16,
            queue_ms: 100,
        }
    }
}

impl PluginsConfig {
    /// The runtime's configuration.
    pub fn runtime_config(&self) -> RuntimeConfig {
        let mut config = RuntimeConfig {
            default_limits: Limits {
                deadline: Duration::from_millis(self.deadline_ms),
                memory_bytes: self.memory_mib.saturating_mul(1 << 20),
            },
            max_concurrent_per_binding: self.max_concurrent_per_binding,
            queue_wait: Duration::from_millis(self.queue_ms),
            ..RuntimeConfig::default()
        };
        config.max_limits.deadline = config
            .max_limits
            .deadline
            .max(config.default_limits.deadline);
        config.max_limits.memory_bytes = config
            .max_limits
            .memory_bytes
            .max(config.default_limits.memory_bytes);
        config
    }
}

/// What is wrong with the configuration; the message names the file or the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a field has the wrong type or is unknown.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What toml said (it names the field and the line).
        message: String,
    },
    /// A field's value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as `section.name` (or the environment variable).
        field: String,
        /// Why.
        message: String,
    },
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl Config {
    /// Reads `path`, applies the `IDFED_*` environment overrides and checks the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        Ok(config)
    }

    /// Parses TOML (no environment, no checks).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "idfed.toml".into(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Applies overrides from `IDFED_LISTEN`, `IDFED_PLAIN_HTTP`, `IDFED_TLS_CERT`, `IDFED_TLS_KEY`,
    /// `IDFED_DATA_DIR`, `IDFED_MASTER_KEY_FILE`, `IDFED_STS_REGION`, `IDFED_STS_ENDPOINT`, read with `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(listen) = var("IDFED_LISTEN") {
            self.server.listen = listen.trim().parse().map_err(|e| {
                invalid(
                    "IDFED_LISTEN",
                    format!("{listen:?} is not an address:port ({e})"),
                )
            })?;
        }
        if let Some(plain) = var("IDFED_PLAIN_HTTP") {
            self.server.plain_http = match plain.trim() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                other => {
                    return Err(invalid(
                        "IDFED_PLAIN_HTTP",
                        format!("{other:?} is not true or false"),
                    ));
                }
            };
        }
        if let Some(cert) = var("IDFED_TLS_CERT") {
            self.server.tls_cert = Some(cert.into());
        }
        if let Some(key) = var("IDFED_TLS_KEY") {
            self.server.tls_key = Some(key.into());
        }
        if let Some(dir) = var("IDFED_DATA_DIR") {
            self.data.dir = dir.into();
        }
        if let Some(file) = var("IDFED_MASTER_KEY_FILE") {
            self.data.master_key_file = Some(file.into());
        }
        if let Some(backend) = var("IDFED_DATA_BACKEND") {
            self.data.backend = match backend.trim() {
                "sled" => Backend::Sled,
                "postgres" => Backend::Postgres,
                other => {
                    return Err(invalid(
                        "IDFED_DATA_BACKEND",
                        format!("{other:?} is not sled or postgres"),
                    ));
                }
            };
        }
        if let Some(region) = var("IDFED_STS_REGION") {
            self.sts.region = region;
        }
        if let Some(endpoint) = var("IDFED_STS_ENDPOINT") {
            self.sts.endpoint = Some(endpoint);
        }
        Ok(())
    }

    /// Checks the values (not the files: those are read when the service starts).
    pub fn check(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.plain_http {
            if s.tls_cert.is_some() || s.tls_key.is_some() {
                return Err(invalid(
                    "server.plain_http",
                    "plain_http = true and tls_cert/tls_key are both set: choose one",
                ));
            }
        } else {
            if s.tls_cert.is_none() {
                return Err(invalid(
                    "server.tls_cert",
                    "missing: give tls_cert and tls_key (PEM files), or set plain_http = true behind a TLS proxy or on loopback",
                ));
            }
            if s.tls_key.is_none() {
                return Err(invalid(
                    "server.tls_key",
                    "missing: give tls_cert and tls_key (PEM files), or set plain_http = true behind a TLS proxy or on loopback",
                ));
            }
        }
        if s.body_limit_bytes == 0 {
            return Err(invalid("server.body_limit_bytes", "must be at least 1"));
        }
        s.metrics_token()?;
        if s.request_timeout_seconds == 0 {
            return Err(invalid(
                "server.request_timeout_seconds",
                "must be at least 1",
            ));
        }
        if s.body_timeout_seconds == 0 {
            return Err(invalid("server.body_timeout_seconds", "must be at least 1"));
        }
        if s.max_tls_handshakes == 0 {
            return Err(invalid("server.max_tls_handshakes", "must be at least 1"));
        }
        if self.data.dir.as_os_str().is_empty() {
            return Err(invalid("data.dir", "must not be empty"));
        }
        if self.data.postgres.pool_size < 2 {
            return Err(invalid(
                "data.postgres.pool_size",
                "must be at least 2 (a write holds one connection for its lock and uses another)",
            ));
        }
        if self.data.postgres.timeout_seconds == 0 {
            return Err(invalid(
                "data.postgres.timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.sts.region.trim().is_empty() {
            return Err(invalid("sts.region", "must not be empty"));
        }
        for (name, endpoint) in [
            ("endpoints.ecr", &self.endpoints.ecr),
            ("endpoints.codeartifact", &self.endpoints.codeartifact),
        ] {
            if let Some(endpoint) = endpoint
                && let Err(e) = crate::sts::validate::check_endpoint(endpoint)
            {
                return Err(invalid(name, format!("{endpoint:?} {}", e.rule)));
            }
        }
        if let Some(endpoint) = &self.sts.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return Err(invalid(
                "sts.endpoint",
                format!("{endpoint:?} is not an http(s) URL"),
            ));
        }
        for (field, url) in [
            (
                "console.federation_endpoint",
                &self.console.federation_endpoint,
            ),
            (
                "console.default_destination",
                &self.console.default_destination,
            ),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid(field, format!("{url:?} is not an http(s) URL")));
            }
        }
        if self.sts.connect_timeout_seconds == 0 {
            return Err(invalid("sts.connect_timeout_seconds", "must be at least 1"));
        }
        if self.sts.operation_timeout_seconds == 0 {
            return Err(invalid(
                "sts.operation_timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.sts.budget_wait_ms > 60_000 {
            return Err(invalid(
                "sts.budget_wait_ms",
                "must be at most 60000 (a minute): past that, a refusal with Retry-After serves callers better",
            ));
        }
        let cache = &self.credential_cache;
        if !(0.0..=1.0).contains(&cache.min_remaining_fraction) {
            return Err(invalid(
                "credential_cache.min_remaining_fraction",
                "must be between 0 and 1",
            ));
        }
        if cache.max_entries == 0 {
            return Err(invalid(
                "credential_cache.max_entries",
                "must be at least 1",
            ));
        }
        if cache.max_entries_per_caller == 0 {
            return Err(invalid(
                "credential_cache.max_entries_per_caller",
                "must be at least 1",
            ));
        }
        if self.sts.max_attempts == 0 {
            return Err(invalid("sts.max_attempts", "must be at least 1"));
        }
        let max = RuntimeConfig::default().max_limits;
        if self.plugins.deadline_ms == 0
            || self.plugins.deadline_ms > max.deadline.as_millis() as u64
        {
            return Err(invalid(
                "plugins.deadline_ms",
                format!("must be between 1 and {}", max.deadline.as_millis()),
            ));
        }
        let pool = RuntimeConfig::default().pool_instances;
        if self.plugins.max_concurrent_per_binding == 0
            || self.plugins.max_concurrent_per_binding > pool
        {
            return Err(invalid(
                "plugins.max_concurrent_per_binding",
                format!("must be between 1 and {pool} (the instance pool's size)"),
            ));
        }
        if self.plugins.queue_ms > 10_000 {
            return Err(invalid("plugins.queue_ms", "must be at most 10000"));
        }
        if self.plugins.memory_mib == 0 || self.plugins.memory_mib > max.memory_bytes >> 20 {
            return Err(invalid(
                "plugins.memory_mib",
                format!("must be between 1 and {}", max.memory_bytes >> 20),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[auth.directory]\ntype = \"static\"\nfile = \"users.toml\"\n";

    #[test]
    fn trusted_proxies_are_networks_or_addresses() {
        let config = Config::parse(&format!(
            "{MINIMAL}[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\n"
        ))
        .unwrap();
        let shown: Vec<String> = config
            .server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let err = Config::parse(&format!(
            "{MINIMAL}[server]\ntrusted_proxies = [\"proxy\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"proxy\" is not a network"), "{err}");
    }

    #[test]
    fn service_endpoints_are_checked_urls() {
        let with = |endpoints: &str| {
            Config::parse(&format!(
                "{MINIMAL}[server]\nplain_http = true\n[endpoints]\n{endpoints}\n"
            ))
            .unwrap()
        };
        let config = with("ecr = \"http://127.0.0.1:5000\"\ncodeartifact = \"https://ca.example\"");
        config.check().unwrap();
        assert_eq!(
            config.endpoints.ecr.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        for (line, field) in [
            ("ecr = \"ftp://example\"", "endpoints.ecr"),
            ("codeartifact = \"https://a b\"", "endpoints.codeartifact"),
        ] {
            let err = with(line).check().unwrap_err().to_string();
            assert!(err.contains(field), "{line}: {err}");
        }
        let err = Config::parse(&format!("{MINIMAL}[endpoints]\nsqs = \"https://x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sqs"), "{err}");
    }

    #[test]
    fn defaults_env_and_named_errors() {
        let mut config = Config::parse(MINIMAL).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(config.server.body_limit_bytes, 65536);
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("server.tls_cert"), "{err}");

        let env = |name: &str| match name {
            "IDFED_LISTEN" => Some("127.0.0.1:9000".to_owned()),
            "IDFED_PLAIN_HTTP" => Some("true".to_owned()),
            "IDFED_DATA_DIR" => Some("/tmp/x".to_owned()),
            "IDFED_STS_ENDPOINT" => Some("http://127.0.0.1:5000".to_owned()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        config.check().unwrap();
        assert_eq!(config.server.listen.port(), 9000);
        assert_eq!(config.data.dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            config.sts.endpoint.as_deref(),
            Some("http://127.0.0.1:5000")
        );

        let err = config
            .apply_env(|n| (n == "IDFED_LISTEN").then(|| "nowhere".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("IDFED_LISTEN"), "{err}");

        let err = Config::parse(&format!("{MINIMAL}[server]\nlisten = 5\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        let err = Config::parse(&format!("{MINIMAL}[server]\nlistn = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        let mut config = Config::parse(&format!(
            "{MINIMAL}[server]\nplain_http = true\n[plugins]\nmemory_mib = 0\n"
        ))
        .unwrap();
        config.apply_env(|_| None).unwrap();
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("plugins.memory_mib"), "{err}");
    }
}
