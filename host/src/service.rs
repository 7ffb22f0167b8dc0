//! The running service: the vend pipeline and the authenticator, built on [`Parts`] — the store, the
//! audit log, the plugin runtime, the STS issuer, the directory and the clock — which
//! [`Parts::from_config`] makes from the configuration. One sled database holds the state.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::approvals::{ApprovalSettings, Approvals};
use crate::audit::AuditLog;
use crate::auth::Directory;
use crate::auth::authenticator::{AuthConfig, Authenticator};
use crate::auth::lockout::{Clock, SystemClock};
use crate::auth::workload::{WorkloadSettings, WorkloadVerifier};
use crate::config::Backend;
use crate::config::Config;
use crate::metrics::{Metrics, PartStats};
use crate::plugins::{KvStore, PluginRuntime};
use crate::store::db::Db;
use crate::store::db::postgres::Postgres;
use crate::store::{DataStore, Store};
use crate::sts::{
    AccountAccess, AwsIssuer, BoxFuture, Budgeted, CallerIdentity, CredentialIssuer, IssueRequest,
    IssuedCredentials, StsBudget, StsError,
};
use crate::vend::flushes::Flushes;
use crate::vend::{CacheSettings, Vendor};

/// The plugins' key-value store's tree.
pub const PLUGIN_KV_TREE: &str = "plugin-kv";

/// Why the service could not start; the message names the part and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

/// Everything the API serves from.
pub struct Service {
    /// The store (its sled database is shared by the others).
    pub store: Arc<DataStore>,
    /// The audit log.
    pub audit: AuditLog,
    /// The plugin runtime.
    pub plugins: PluginRuntime,
    /// The STS client (with the configured default endpoint), paying from `budget`.
    pub issuer: Arc<dyn CredentialIssuer>,
    /// The STS budget every STS call draws from.
    pub budget: Arc<StsBudget>,
    /// The vend pipeline.
    pub vendor: Vendor,
    /// Logins, sessions, password checks.
    pub auth: Arc<Authenticator>,
    /// Workloads' OIDC tokens (CI jobs).
    pub workload: Arc<WorkloadVerifier>,
    /// Approval requests, approvals and their webhook.
    pub approvals: Arc<Approvals>,
    /// What the parts count and time (vends, plugin evaluations, STS requests).
    pub metrics: Arc<Metrics>,
    /// What `/metrics` shows: [`Service::metrics`] and the counters the parts keep themselves.
    pub registry: Registry,
    /// Administrators' flushes of the credential cache, made on every replica.
    pub flushes: Arc<Flushes>,
    /// Follows other replicas' flushes (PostgreSQL), while the service lives.
    _follower: Option<AbortOnDrop>,
}

/// A task aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// What a [`Service`] is built from: its store and audit log, its plugin runtime, its STS issuer (paying
/// from `budget`), its directory, its clock, and the settings of the parts it builds itself (the
/// authenticator, the vend pipeline's credential cache). [`Parts::from_config`] makes them as `idfed serve`
/// does; a test or a benchmark takes those and replaces what it needs (a clock it moves by hand, an issuer
/// of its own) before [`Service::from_parts`].
pub struct Parts {
    /// The store; the audit log, sessions and the plugins' key-value store live in its database.
    pub store: Arc<DataStore>,
    /// The audit log.
    pub audit: AuditLog,
    /// The plugin runtime.
    pub plugins: PluginRuntime,
    /// The STS client every vend calls.
    pub issuer: Arc<dyn CredentialIssuer>,
    /// The STS budget `issuer` pays from (its state is shown in `/metrics`).
    pub budget: Arc<StsBudget>,
    /// Where people and their groups are looked up.
    pub directory: Arc<dyn Directory>,
    /// The time, for sessions, caches and lockouts.
    pub clock: Arc<dyn Clock>,
    /// Sessions, caching and lockout.
    pub auth: AuthConfig,
    /// The OIDC issuers whose tokens are workloads (CI jobs), their keys and claim rules.
    pub workload: WorkloadSettings,
    /// How long approval requests and approvals last, and the webhook announcing requests.
    pub approvals: ApprovalSettings,
    /// The vend pipeline's credential cache.
    pub credential_cache: CacheSettings,
    /// What the parts count and time; `issuer` and `plugins` already report to it.
    pub metrics: Arc<Metrics>,
    /// Where `metrics` is registered.
    pub registry: Registry,
}

impl Parts {
    /// The parts the configuration describes: the data directory opened, the STS client paying from the
    /// budget, the directory built, the system clock.
    pub fn from_config(config: &Config) -> Result<Parts, ServiceError> {
        let dir = &config.data.dir;
        let store = match config.data.backend {
            Backend::Sled => DataStore::open(dir, config.data.key_source()).map_err(|e| {
                ServiceError(format!("data.dir {}: {e} [{}]", dir.display(), e.code()))
            })?,
            Backend::Postgres => {
                let client = config
                    .data
                    .postgres
                    .client_config()
                    .map_err(|e| ServiceError(e.to_string()))?;
                let pg = Postgres::connect(&client)
                    .map_err(|e| ServiceError(format!("data.postgres: {e}")))?;
                DataStore::open_postgres(pg, dir, config.data.key_source())
                    .map_err(|e| ServiceError(format!("data.postgres: {e} [{}]", e.code())))?
            }
        };
        let store = Arc::new(store);
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::new(&mut registry));
        let audit = AuditLog::open(store.db(), None)
            .map_err(|e| ServiceError(format!("audit log: {e}")))?;
        audit.set_durable(config.audit.durable);
        let kv = KvStore::new(
            store
                .db()
                .open_tree(PLUGIN_KV_TREE)
                .map_err(|e| ServiceError(format!("plugin key-value store: {e}")))?,
        );
        let plugins =
            PluginRuntime::new(config.plugins.runtime_config(), Some(store.data_dir()), kv)
                .map_err(|e| ServiceError(format!("plugin runtime: {e:#}")))?
                .with_metrics(metrics.clone());
        let budget = Arc::new(StsBudget::new(config.sts.budget_settings()));
        let issuer: Arc<dyn CredentialIssuer> = Arc::new(
            Budgeted::new(
                DefaultEndpoint {
                    inner: AwsIssuer::new(config.sts.issuer_settings()),
                    endpoint: config.sts.endpoint.clone(),
                },
                budget.clone(),
                config.sts.region.clone(),
                config.sts.max_attempts,
            )
            .with_metrics(metrics.clone()),
        );
        let directory = config
            .auth
            .directory
            .build()
            .map_err(|e| ServiceError(format!("auth.directory: {e}")))?;
        Ok(Parts {
            store,
            audit,
            plugins,
            issuer,
            budget,
            directory,
            clock: Arc::new(SystemClock),
            auth: config.auth.auth_config(),
            workload: config.workload.clone(),
            approvals: config.approvals.clone(),
            credential_cache: config.credential_cache.settings(),
            metrics,
            registry,
        })
    }
}

impl Service {
    /// Opens the data directory and builds every part: [`Parts::from_config`], then
    /// [`Service::from_parts`].
    pub fn open(config: &Config) -> Result<Service, ServiceError> {
        Service::from_parts(Parts::from_config(config)?)
    }

    /// The service over `parts`: the vend pipeline and the authenticator are built on them.
    pub fn from_parts(parts: Parts) -> Result<Service, ServiceError> {
        let Parts {
            store,
            audit,
            plugins,
            issuer,
            budget,
            directory,
            clock,
            auth,
            workload,
            approvals,
            credential_cache,
            metrics,
            mut registry,
        } = parts;
        let approvals = Arc::new(
            Approvals::open(store.db(), audit.clone(), clock.clone(), approvals)
                .map_err(|e| ServiceError(format!("approvals: {e}")))?,
        );
        let vendor = Vendor::new(
            store.clone() as Arc<dyn Store>,
            issuer.clone(),
            plugins.clone(),
            audit.clone(),
        )
        .with_cache(credential_cache)
        .with_approvals(approvals.clone());
        let flushes = Arc::new(
            Flushes::open(store.db(), vendor.cache().clone())
                .map_err(|e| ServiceError(format!("credential cache flushes: {e}")))?,
        );
        let follower = match (store.db(), tokio::runtime::Handle::try_current()) {
            (Db::Postgres(pg), Ok(runtime)) => Some(AbortOnDrop(
                runtime.spawn(flushes.clone().follow(pg.subscribe())),
            )),
            _ => None,
        };
        let workload =
            Arc::new(WorkloadVerifier::new(&workload, clock.clone()).map_err(ServiceError)?);
        let auth = Authenticator::with_clock(directory, store.db(), auth, clock)
            .map_err(|e| ServiceError(format!("sessions: {e}")))?;
        let auth = Arc::new(auth);
        registry.register_collector(Box::new(PartStats {
            auth: auth.clone(),
            credential_cache: vendor.cache().clone(),
            budget: budget.clone(),
            audit: audit.clone(),
        }));
        Ok(Service {
            store,
            audit,
            plugins,
            issuer,
            budget,
            vendor,
            auth,
            workload,
            approvals,
            metrics,
            registry,
            flushes,
            _follower: follower,
        })
    }

    /// Makes everything written durable: the store, the audit log and the plugins' key-value store.
    pub fn shutdown(&self) -> Result<(), ServiceError> {
        let mut problems = Vec::new();
        if let Err(e) = self.store.flush() {
            problems.push(format!("store: {e}"));
        }
        if let Err(e) = self.audit.flush() {
            problems.push(format!("audit log: {e}"));
        }
        if let Err(e) = self.plugins.kv().flush() {
            problems.push(format!("plugin key-value store: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ServiceError(format!(
                "flushing failed: {}",
                problems.join("; ")
            )))
        }
    }
}

/// An issuer that sends accounts naming no STS endpoint to the configured one.
struct DefaultEndpoint {
    inner: AwsIssuer,
    endpoint: Option<String>,
}

impl DefaultEndpoint {
    fn access(&self, access: &AccountAccess) -> Option<AccountAccess> {
        match (&access.endpoint, &self.endpoint) {
            (None, Some(endpoint)) => Some(AccountAccess {
                endpoint: Some(endpoint.clone()),
                ..access.clone()
            }),
            _ => None,
        }
    }
}

impl CredentialIssuer for DefaultEndpoint {
    fn issue<'a>(
        &'a self,
        request: &'a IssueRequest,
    ) -> BoxFuture<'a, Result<IssuedCredentials, StsError>> {
        match self.access(&request.access) {
            None => self.inner.issue(request),
            Some(access) => {
                let request = IssueRequest {
                    access,
                    ..request.clone()
                };
                Box::pin(async move { self.inner.issue(&request).await })
            }
        }
    }

    fn caller_identity<'a>(
        &'a self,
        access: &'a AccountAccess,
        credentials: &'a IssuedCredentials,
    ) -> BoxFuture<'a, Result<CallerIdentity, StsError>> {
        match self.access(access) {
            None => self.inner.caller_identity(access, credentials),
            Some(access) => {
                Box::pin(async move { self.inner.caller_identity(&access, credentials).await })
            }
        }
    }
}
