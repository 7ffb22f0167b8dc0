//! The plugin runtime: loads components, binds them to connectors with a checked configuration, and
//! evaluates requests — one binding or a connector's whole chain — each in a fresh, limited store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::{ContractVersion, v0_1, v0_2};
use super::engine::{self, CompileSource, ComponentCache};
use super::fault::{BindError, LoadError, PluginFault};
use super::kv::KvStore;
use super::lift::{self, EvaluateResult, EvaluateResultV0_1, ValidateResult};
use super::log::{self, LogBuckets, LogLimits, LogSink};
use super::narrowing;
use super::request::{Decision, Grant, PolicyRequest};
use super::state::HostState;
use crate::metrics::Metrics;

/// The resources one binding may use per evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// How long one call may take, counted twice: in CPU time (epoch ticks while the plugin runs) and in
    /// wall-clock time from the start of instantiation (plus [`RuntimeConfig::wall_clock_grace`]), so that
    /// time spent waiting (sleeping, polling) counts as well.
    #[serde(with = "millis", rename = "deadline_ms")]
    pub deadline: Duration,
    /// The most linear memory the plugin may grow to, in bytes.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(50),
            memory_bytes: 16 << 20,
        }
    }
}

/// How the runtime is set up.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Limits of a binding that sets none.
    pub default_limits: Limits,
    /// The largest limits a binding may set.
    pub max_limits: Limits,
    /// The largest plugin file accepted, in bytes.
    pub max_plugin_bytes: usize,
    /// The largest binding configuration accepted, in bytes.
    pub max_config_bytes: usize,
    /// How many plugin instances may be alive at once (the instance pool's size).
    pub pool_instances: u32,
    /// How often the epoch ticks; deadlines are counted in ticks of this length.
    pub epoch_tick: Duration,
    /// Limits on plugin log output.
    pub log: LogLimits,
    /// How much of a plugin's stderr is kept to explain a trap, in bytes.
    pub stderr_bytes: usize,
    /// The longest denial reason passed to a caller, in bytes.
    pub max_reason_bytes: usize,
    /// How many evaluations of one binding may run at once; the rest of the pool stays free for others.
    pub max_concurrent_per_binding: u32,
    /// How long a call waits for a free slot (its binding's, then the pool's) before `plugin_busy`.
    pub queue_wait: Duration,
    /// What the wall-clock deadline adds to a binding's deadline (the CPU deadline overshoots by up to an
    /// epoch tick; this keeps the two from racing on an ordinary CPU-bound timeout).
    pub wall_clock_grace: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            default_limits: Limits::default(),
            max_limits: Limits {
                deadline: Duration::from_secs(5),
                memory_bytes: 256 << 20,
            },
            max_plugin_bytes: 32 << 20,
            max_config_bytes: 64 << 10,
            pool_instances: 128,
            epoch_tick: Duration::from_millis(2),
            log: LogLimits::default(),
            stderr_bytes: 4096,
            max_reason_bytes: 1024,
            max_concurrent_per_binding: 16,
            queue_wait: Duration::from_millis(100),
            wall_clock_grace: Duration::from_millis(5),
        }
    }
}

/// A loaded plugin: a compiled component checked against the `policy-plugin` world, ready to instantiate.
pub struct Plugin {
    name: Arc<str>,
    digest: String,
    size: usize,
    source: CompileSource,
    pre: InstancePre<HostState>,
    contract: ContractVersion,
    evaluate: ComponentExportIndex,
    validate_config: ComponentExportIndex,
    imports: Vec<String>,
}

impl Plugin {
    /// The name it was loaded under (for logs).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The SHA-256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// The component's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
    /// Whether it was compiled now or read from the cache.
    pub fn source(&self) -> CompileSource {
        self.source
    }
    /// The interfaces the component imports (`wasi:cli/stderr@0.2.6`, `idfed:policy/log@0.1.0`, …).
    pub fn imports(&self) -> &[String] {
        &self.imports
    }
    /// The version of the plugin contract it targets (the `idfed:policy/policy` it exports).
    pub fn contract(&self) -> ContractVersion {
        self.contract
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("contract", &self.contract)
            .finish_non_exhaustive()
    }
}

/// A plugin bound to a connector with a configuration its `validate-config` accepted.
#[derive(Clone, Debug)]
pub struct Binding {
    id: Arc<str>,
    plugin: Arc<Plugin>,
    config: Arc<str>,
    limits: Limits,
    tag_keys: Arc<[String]>,
    slots: Arc<Semaphore>,
}

/// How a plugin is bound, beyond its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// Limits other than the runtime's defaults.
    pub limits: Option<Limits>,
    /// The session tag keys the plugin may add to a request (compared ignoring case); any other tag it adds
    /// is `plugin_widened_grant`. Tags are what ABAC policies grant on, so adding them is a privilege.
    pub tag_keys: Vec<String>,
}

impl Binding {
    /// The binding's id: it names the binding in faults and logs and keys its private store.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The bound plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
    /// The binding's configuration (JSON).
    pub fn config(&self) -> &str {
        &self.config
    }
    /// The binding's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }
    /// The session tag keys its plugin may add.
    pub fn tag_keys(&self) -> &[String] {
        &self.tag_keys
    }
}

/// How a connector's chain of plugins decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainOutcome {
    /// Every plugin allowed; this is the final grant.
    Allow(Grant),
    /// A plugin refused.
    Deny {
        /// The binding that refused.
        binding: String,
        /// Its reason, for the caller.
        reason: String,
    },
    /// A plugin answered that the request needs an approval (contract 0.2.0); the chain stopped there.
    NeedsApproval {
        /// The binding that asked for it.
        binding: String,
        /// The group whose members may approve.
        group: String,
        /// Why, for the requester and the approvers.
        reason: String,
        /// The longest duration an approval may grant, in seconds.
        max_duration_seconds: Option<u32>,
    },
    /// A plugin malfunctioned: the request is denied.
    Fault {
        /// The binding that failed.
        binding: String,
        /// What went wrong.
        fault: PluginFault,
    },
}

/// The plugin runtime. Cheap to clone; one per process.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<Inner>,
    /// Where [`PluginRuntime::run_chain`] times each evaluation.
    metrics: Arc<Metrics>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    kv: KvStore,
    config: RuntimeConfig,
    log_limits: Arc<LogLimits>,
    log_buckets: LogBuckets,
    /// One permit per instance the pool can hold: a call waits here instead of failing to instantiate.
    pool_slots: Arc<Semaphore>,
    /// Each binding's slots, by binding id, so a chain rebuilt while calls run shares them.
    binding_slots: Mutex<HashMap<Arc<str>, Weak<Semaphore>>>,
}

impl PluginRuntime {
    /// Builds the engine and linker and starts the epoch ticker. With `data_dir`, compiled components are
    /// cached under its `component-cache/`.
    pub fn new(config: RuntimeConfig, data_dir: Option<&Dir>, kv: KvStore) -> anyhow::Result<Self> {
        let engine = engine::engine(&config)?;
        let linker = engine::linker(&engine)?;
        let cache = data_dir
            .map(|dir| ComponentCache::open(dir, &engine))
            .transpose()?;
        engine::start_ticker(&engine, config.epoch_tick);
        let log_limits = Arc::new(config.log.clone());
        let pool_slots = Arc::new(Semaphore::new(config.pool_instances as usize));
        Ok(PluginRuntime {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                kv,
                config,
                log_limits,
                log_buckets: LogBuckets::default(),
                pool_slots,
                binding_slots: Mutex::default(),
            }),
            metrics: Arc::default(),
        })
    }

    /// The same runtime timing its chains' evaluations into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The key-value store plugins write to.
    pub fn kv(&self) -> &KvStore {
        &self.inner.kv
    }

    /// Loads a plugin: checks it is a component of the `policy-plugin` world of a contract version the
    /// host supports (`idfed:policy@0.1.0` or `@0.2.0`, told by the policy interface it exports) and
    /// compiles it, or reads it from the cache.
    ///
    /// Compiling takes from 100 ms to a second of CPU: from async code, call it in `spawn_blocking`.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let inner = &self.inner;
        if wasm.len() > inner.config.max_plugin_bytes {
            return Err(LoadError::TooLarge {
                size: wasm.len(),
                max: inner.config.max_plugin_bytes,
            });
        }
        engine::check_header(wasm)?;
        let digest = hex::encode(Sha256::digest(wasm));
        let cached = inner
            .cache
            .as_ref()
            .and_then(|cache| cache.get(&inner.engine, &digest));
        let (component, source) = match cached {
            Some(component) => (component, CompileSource::Cached),
            None => {
                let component = Component::new(&inner.engine, wasm)
                    .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
                (component, CompileSource::Compiled)
            }
        };
        let instance_pre = inner.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::Incompatible(format!(
                "{e:#} (a policy plugin may import only WASI 0.2 and {})",
                ContractVersion::all_packages()
            ))
        })?;
        let contract = ContractVersion::of(&component, &inner.engine).ok_or_else(|| {
            LoadError::Incompatible(format!(
                "it exports no policy interface this host knows ({})",
                ContractVersion::all_policy_exports()
            ))
        })?;
        let policy_export = contract.policy_export();
        // The generated bindings of its version check every export's type; calls then go through the
        // export indices, with the plugin's answers lifted by `lift` rather than by the bindings.
        let typed = match contract {
            ContractVersion::V0_1 => v0_1::PolicyPluginPre::new(instance_pre.clone()).map(drop),
            ContractVersion::V0_2 => v0_2::PolicyPluginPre::new(instance_pre.clone()).map(drop),
        };
        typed.map_err(|e| {
            LoadError::Incompatible(format!(
                "its `{policy_export}` does not match {contract}: {e:#}"
            ))
        })?;
        let export = |name: &str| {
            component
                .get_export_index(None, policy_export)
                .and_then(|policy| component.get_export_index(Some(&policy), name))
                .ok_or_else(|| {
                    LoadError::Incompatible(format!("it does not export `{policy_export}#{name}`"))
                })
        };
        let (evaluate, validate_config) = (export("evaluate")?, export("validate-config")?);
        let imports = component
            .component_type()
            .imports(&inner.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if source == CompileSource::Compiled
            && let Some(cache) = &inner.cache
            && let Err(e) = cache.put(&digest, &component)
        {
            tracing::warn!(plugin = name, error = %e, "could not cache the compiled plugin");
        }
        Ok(Arc::new(Plugin {
            name: name.into(),
            digest,
            size: wasm.len(),
            source,
            pre: instance_pre,
            contract,
            evaluate,
            validate_config,
            imports,
        }))
    }

    /// Binds a plugin with a configuration, after its `validate-config` accepted it. `id` names the
    /// binding and keys its private store. The plugin may add no session tag: see [`bind_with`](Self::bind_with).
    pub async fn bind(
        &self,
        id: &str,
        plugin: Arc<Plugin>,
        config: &str,
        limits: Option<Limits>,
    ) -> Result<Binding, BindError> {
        let options = BindOptions {
            limits,
            tag_keys: Vec::new(),
        };
        self.bind_with(id, plugin, config, &options).await
    }

    /// Binds a plugin with a configuration and options, after its `validate-config` accepted it.
    pub async fn bind_with(
        &self,
        id: &str,
        plugin: Arc<Plugin>,
        config: &str,
        options: &BindOptions,
    ) -> Result<Binding, BindError> {
        let settings = &self.inner.config;
        let limits = options.limits.unwrap_or(settings.default_limits);
        if limits.deadline < settings.epoch_tick || limits.deadline > settings.max_limits.deadline {
            return Err(BindError::InvalidLimits(format!(
                "the deadline must be between {} ms and {} ms",
                settings.epoch_tick.as_millis(),
                settings.max_limits.deadline.as_millis()
            )));
        }
        if limits.memory_bytes < 1 << 20 || limits.memory_bytes > settings.max_limits.memory_bytes {
            return Err(BindError::InvalidLimits(format!(
                "the memory limit must be between 1 MiB and {} MiB",
                settings.max_limits.memory_bytes >> 20
            )));
        }
        if id.is_empty() || id.len() > 128 {
            return Err(BindError::InvalidConfig(
                "the binding id must be 1-128 bytes".into(),
            ));
        }
        narrowing::check_tag_keys(&options.tag_keys).map_err(BindError::InvalidTagKeys)?;
        let config = if config.trim().is_empty() {
            "{}"
        } else {
            config
        };
        if config.len() > settings.max_config_bytes {
            return Err(BindError::InvalidConfig(format!(
                "{} bytes, more than the maximum of {} bytes",
                config.len(),
                settings.max_config_bytes
            )));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(config)
            .map_err(|e| BindError::InvalidConfig(format!("not JSON: {e}")))?;
        let binding = Binding {
            id: id.into(),
            plugin,
            config: config.into(),
            limits,
            tag_keys: options.tag_keys.clone().into(),
            slots: self.binding_slots(id),
        };
        let _slots = self.admit(&binding).await?;
        let mut store = self.store(&binding, "", "validate-config");
        let call = async {
            let instance = binding.plugin.pre.instantiate_async(&mut store).await;
            let instance = instance.map_err(|e| (e, Stage::Instantiate))?;
            let func = instance
                .get_typed_func::<(&str,), (ValidateResult,)>(
                    &mut store,
                    &binding.plugin.validate_config,
                )
                .map_err(|e| (e, Stage::Instantiate))?;
            let (result,) = func
                .call_async(&mut store, (&binding.config,))
                .await
                .map_err(|e| (e, Stage::Call))?;
            Ok(result)
        };
        let result = self.within_deadline(&binding, call).await;
        store.data_mut().log.finish();
        match result {
            Ok(Ok(())) => Ok(binding),
            Ok(Err(refused)) => {
                let (message, pointer) = lift::config_error(refused, settings.max_reason_bytes);
                Err(BindError::ConfigRefused { message, pointer })
            }
            Err(Failed::Wasm(e, stage)) => Err(classify(e, store.data(), &binding, stage).into()),
            Err(Failed::Fault(fault)) => Err(fault.into()),
        }
    }

    /// Evaluates one request with one binding. A grant is checked against the request: one that widens
    /// it is a fault.
    pub async fn evaluate(
        &self,
        binding: &Binding,
        request: &PolicyRequest,
    ) -> Result<Decision, PluginFault> {
        // Declared before the store, so the slots are given back only once the store (and its pooled
        // instance) is gone.
        let _slots = self.admit(binding).await?;
        let mut store = self.store(binding, &request.connector.name, &request.request_id);
        let plugin = &binding.plugin;
        // Each version's request is lowered by its own bindings; both versions' answers are lifted,
        // bounded, into 0.2.0's decision (of which 0.1.0's is a subset).
        let wit_request = match plugin.contract {
            ContractVersion::V0_1 => WitRequest::V0_1(request.into()),
            ContractVersion::V0_2 => WitRequest::V0_2(request.into()),
        };
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await;
            let instance = instance.map_err(|e| (e, Stage::Instantiate))?;
            let result: EvaluateResult = match &wit_request {
                WitRequest::V0_1(wit_request) => {
                    let func = instance
                        .get_typed_func::<(&str, &v0_1::types::Request), (EvaluateResultV0_1,)>(
                            &mut store,
                            &plugin.evaluate,
                        )
                        .map_err(|e| (e, Stage::Instantiate))?;
                    let (result,) = func
                        .call_async(&mut store, (&binding.config, wit_request))
                        .await
                        .map_err(|e| (e, Stage::Call))?;
                    result.map(Into::into)
                }
                WitRequest::V0_2(wit_request) => {
                    let func = instance
                        .get_typed_func::<(&str, &v0_2::types::Request), (EvaluateResult,)>(
                            &mut store,
                            &plugin.evaluate,
                        )
                        .map_err(|e| (e, Stage::Instantiate))?;
                    let (result,) = func
                        .call_async(&mut store, (&binding.config, wit_request))
                        .await
                        .map_err(|e| (e, Stage::Call))?;
                    result
                }
            };
            Ok(result)
        };
        let result = self.within_deadline(binding, call).await;
        store.data_mut().log.finish();
        let decision = match result {
            Ok(Ok(raw)) => lift::decision(raw, self.inner.config.max_reason_bytes)?,
            Ok(Err(error)) => return Err(lift::plugin_error(error)),
            Err(Failed::Wasm(e, stage)) => return Err(classify(e, store.data(), binding, stage)),
            Err(Failed::Fault(fault)) => return Err(fault),
        };
        if let Decision::Allow { grant } = &decision {
            narrowing::check_grant(request, grant, &binding.tag_keys)?;
        }
        Ok(decision)
    }

    /// Runs a plugin call under the binding's wall-clock deadline: however the time went (computing,
    /// sleeping, polling), a call still running at the deadline plus the grace is dropped — and its store
    /// with it — and is a timeout.
    async fn within_deadline<T>(
        &self,
        binding: &Binding,
        call: impl Future<Output = Result<T, (wasmtime::Error, Stage)>>,
    ) -> Result<T, Failed> {
        let wall = binding.limits.deadline + self.inner.config.wall_clock_grace;
        match tokio::time::timeout(wall, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err((error, stage))) => Err(Failed::Wasm(error, stage)),
            Err(_) => Err(Failed::Fault(PluginFault::Timeout {
                deadline: binding.limits.deadline,
                waiting: true,
            })),
        }
    }

    /// Takes a slot of the binding's and one of the pool's, waiting at most `queue_wait` for both.
    async fn admit(
        &self,
        binding: &Binding,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), PluginFault> {
        let settings = &self.inner.config;
        let until = tokio::time::Instant::now() + settings.queue_wait;
        let slot = |slots: &Arc<Semaphore>, message: String| {
            let acquire = slots.clone().acquire_owned();
            async move {
                match tokio::time::timeout_at(until, acquire).await {
                    Ok(Ok(permit)) => Ok(permit),
                    _ => Err(PluginFault::Busy { message }),
                }
            }
        };
        let own = slot(
            &binding.slots,
            format!(
                "this binding already runs {} evaluations at once (its share of the instance pool)",
                settings.max_concurrent_per_binding
            ),
        )
        .await?;
        let pool = slot(
            &self.inner.pool_slots,
            format!(
                "all {} plugin instances are in use",
                settings.pool_instances
            ),
        )
        .await?;
        Ok((own, pool))
    }

    /// The slots of binding `id`: shared with any live binding of that id.
    fn binding_slots(&self, id: &str) -> Arc<Semaphore> {
        let mut slots = self.inner.binding_slots.lock().unwrap();
        if let Some(live) = slots.get(id).and_then(Weak::upgrade) {
            return live;
        }
        slots.retain(|_, slot| slot.strong_count() > 0);
        let fresh = Arc::new(Semaphore::new(
            self.inner.config.max_concurrent_per_binding.max(1) as usize,
        ));
        slots.insert(id.into(), Arc::downgrade(&fresh));
        fresh
    }

    /// Runs a connector's chain in order, each plugin seeing the previous one's grant; stops at the first
    /// deny or fault.
    pub async fn run_chain(&self, chain: &[Binding], request: &PolicyRequest) -> ChainOutcome {
        let mut current = request.clone();
        for binding in chain {
            let started = Instant::now();
            let outcome = self.evaluate(binding, &current).await;
            let took = started.elapsed();
            let micros = took.as_micros() as u64;
            let decided = match &outcome {
                Ok(Decision::Allow { .. }) => "allow",
                Ok(Decision::Deny { .. }) => "deny",
                Ok(Decision::NeedsApproval { .. }) => "needs_approval",
                Err(fault) => fault.code(),
            };
            self.metrics
                .plugin_evaluation(binding.id(), binding.plugin.name(), decided, took);
            match outcome {
                Ok(Decision::Allow { grant }) => {
                    tracing::debug!(binding = binding.id(), micros, "plugin allowed");
                    current = current.with_grant(&grant);
                }
                Ok(Decision::Deny { reason }) => {
                    tracing::info!(binding = binding.id(), request_id = %request.request_id, micros, %reason, "plugin denied");
                    return ChainOutcome::Deny {
                        binding: binding.id().to_owned(),
                        reason,
                    };
                }
                Ok(Decision::NeedsApproval {
                    group,
                    reason,
                    max_duration_seconds,
                }) => {
                    tracing::info!(binding = binding.id(), request_id = %request.request_id, micros, %group, %reason,
                        "plugin answered that the request needs an approval");
                    return ChainOutcome::NeedsApproval {
                        binding: binding.id().to_owned(),
                        group,
                        reason,
                        max_duration_seconds,
                    };
                }
                Err(fault) => {
                    tracing::warn!(binding = binding.id(), plugin = binding.plugin.name(), request_id = %request.request_id,
                        code = fault.code(), %fault, "plugin fault; request denied");
                    return ChainOutcome::Fault {
                        binding: binding.id().to_owned(),
                        fault,
                    };
                }
            }
        }
        ChainOutcome::Allow(current.unchanged_grant())
    }

    fn store(&self, binding: &Binding, connector: &str, request_id: &str) -> Store<HostState> {
        let inner = &self.inner;
        let tick = inner.config.epoch_tick.as_nanos().max(1);
        let ticks = binding.limits.deadline.as_nanos().div_ceil(tick) as u64;
        let log = LogSink::new(
            binding.plugin.name.clone(),
            binding.id.clone(),
            connector.into(),
            request_id.into(),
            inner.log_limits.clone(),
            inner.log_buckets.clone(),
        );
        let state = HostState::new(
            binding.limits.memory_bytes,
            log,
            inner.kv.binding(&binding.id),
            inner.config.stderr_bytes,
            ticks,
        );
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        // Each epoch boundary the plugin runs into costs it one tick. Past its first ticks it yields to the
        // executor at each, so a busy plugin never holds a worker thread for long; an ordinary call that
        // merely straddles a tick does not yield, since a yield sends it behind every other queued task.
        store.epoch_deadline_callback(move |mut context| {
            let state = context.data_mut();
            if state.ticks_left == 0 {
                state.timed_out = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            state.ticks_left -= 1;
            if ticks - state.ticks_left <= UNYIELDING_TICKS {
                Ok(UpdateDeadline::Continue(1))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

/// A request in the types of the plugin's contract version.
// One lives for one call: boxing the larger variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum WitRequest {
    V0_1(v0_1::types::Request),
    V0_2(v0_2::types::Request),
}

/// Epoch ticks a call may run through before it starts yielding to the executor at each tick.
const UNYIELDING_TICKS: u64 = 2;

#[derive(Clone, Copy)]
enum Stage {
    Instantiate,
    Call,
}

/// How a plugin call ended other than with an answer.
enum Failed {
    /// wasmtime stopped it (a trap, the CPU deadline, the memory cap…): see [`classify`].
    Wasm(wasmtime::Error, Stage),
    /// The host stopped it.
    Fault(PluginFault),
}

/// Names the fault behind a wasmtime error, from what the store saw.
fn classify(
    error: wasmtime::Error,
    state: &HostState,
    binding: &Binding,
    stage: Stage,
) -> PluginFault {
    if state.limiter.exceeded {
        return PluginFault::MemoryLimit {
            limit_bytes: state.limiter.limit,
        };
    }
    let trap = error.downcast_ref::<Trap>().copied();
    if state.timed_out || trap == Some(Trap::Interrupt) {
        return PluginFault::Timeout {
            deadline: binding.limits.deadline,
            waiting: false,
        };
    }
    let message = match trap {
        Some(trap) => trap.to_string(),
        None if matches!(stage, Stage::Instantiate) => {
            return PluginFault::Instantiate(format!("{error:#}"));
        }
        None => format!("{error:#}"),
    };
    let stderr = state.stderr.contents();
    PluginFault::Trap {
        message: match explain_stderr(&stderr) {
            Some(explained) => format!("{message}; {explained}"),
            None => message,
        },
    }
}

/// What a trapped plugin's stderr says, with its panic message (Rust's `thread '…' panicked at …`, the
/// last one written) told apart from whatever the plugin wrote before it.
fn explain_stderr(stderr: &str) -> Option<String> {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        return None;
    }
    let panic_at = stderr.rfind(" panicked at ").map(|at| {
        // From the start of that line (`thread '<unnamed>' panicked at src/lib.rs:3:5:`).
        stderr[..at].rfind('\n').map_or(0, |newline| newline + 1)
    });
    let tail = |text: &str, max: usize| {
        let text = text.trim();
        let from = text.floor_char_boundary(text.len().saturating_sub(max));
        let cut = if from > 0 { "…" } else { "" };
        format!("{cut}{}", log::sanitize(&text[from..], max))
    };
    Some(match panic_at {
        Some(at) => {
            let (before, panic) = stderr.split_at(at);
            let panic = log::sanitize(panic.trim(), 512);
            if before.trim().is_empty() {
                format!("panic: {panic}")
            } else {
                format!(
                    "panic: {panic} [the plugin's earlier stderr, not part of the panic: {}]",
                    tail(before, 256)
                )
            }
        }
        None => format!(
            "no panic message; the end of the plugin's stderr: {}",
            tail(stderr, 512)
        ),
    })
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Compile-time check: evaluations can run on any tokio worker (axum handlers need `Send` futures).
#[allow(unused)]
fn _assert_send(runtime: &PluginRuntime, binding: &Binding, request: &PolicyRequest) {
    fn is_send<T: Send>(_: T) {}
    is_send(runtime.evaluate(binding, request));
    is_send(runtime.run_chain(std::slice::from_ref(binding), request));
}

#[cfg(test)]
mod tests {
    use super::explain_stderr;

    #[test]
    fn a_panic_is_told_apart_from_the_plugin_s_earlier_output() {
        let stderr = "loading rules\nrule 3 looks odd\nthread '<unnamed>' panicked at src/lib.rs:9:5:\nboom\n";
        let explained = explain_stderr(stderr).unwrap();
        assert!(
            explained.starts_with("panic: thread '<unnamed>' panicked at src/lib.rs:9:5:\\nboom"),
            "{explained}"
        );
        assert!(
            explained.contains("[the plugin's earlier stderr, not part of the panic: loading rules\\nrule 3 looks odd]"),
            "{explained}"
        );
        let only = explain_stderr("thread 'main' panicked at a.rs:1:1:\nno\n").unwrap();
        assert_eq!(only, "panic: thread 'main' panicked at a.rs:1:1:\\nno");
        let plain = explain_stderr("just some output\n").unwrap();
        assert_eq!(
            plain,
            "no panic message; the end of the plugin's stderr: just some output"
        );
        assert_eq!(explain_stderr("  \n"), None);
    }
}
