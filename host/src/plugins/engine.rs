//! The one wasmtime `Engine` every plugin runs on (pooling allocator, epoch interruption driven by a
//! ticker thread), the `Linker` holding exactly the imports a plugin may use, and the on-disk cache of
//! compiled components.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::time::Duration;

use cap_std::fs::Dir;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{v0_1, v0_2};
use super::fault::LoadError;
use super::runtime::RuntimeConfig;
use super::state::HostState;

/// Builds the engine: pooled instances (a fresh store per call is cheap), epoch interruption for CPU
/// deadlines, and nothing the plugins do not need.
pub(crate) fn engine(config: &RuntimeConfig) -> anyhow::Result<Engine> {
    let instances = config.pool_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memories_per_component(2)
        .max_memory_size(config.max_limits.memory_bytes)
        // Page faults on a fresh instance's memory were most of an evaluation's cost (7 a call, ~2.5 µs
        // each on this VM). Keeping a slot's memory resident and, where the kernel has PAGEMAP_SCAN
        // (Linux 6.7+), resetting only the pages a call dirtied took the median from 38 µs to 23 µs.
        .decommit_batch_size(8)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(16 * 1024)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&wasm)?)
}

/// The linker every plugin is instantiated from: WASI 0.2 (to be given an empty context) and the three
/// `idfed:policy` imports of every contract version (`@0.1.0` and `@0.2.0`), all served by the same
/// implementation. A component importing anything else is refused when it is loaded.
pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    v0_1::PolicyPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
    v0_2::PolicyPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// What a plugin gets from one of the interfaces it imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportNote {
    /// Linked and working.
    Linked,
    /// Linked and working, with something an author should know.
    Note(&'static str),
    /// Linked to an empty context: every call fails, so a plugin relying on it will not work.
    Empty(&'static str),
}

/// What the host gives a plugin for the interface `name` (`wasi:filesystem/types@0.2.6`, …).
pub fn import_note(name: &str) -> ImportNote {
    let interface = name.split('@').next().unwrap_or(name);
    match interface {
        "wasi:filesystem/types" | "wasi:filesystem/preopens" => {
            ImportNote::Empty("no directory is open: every file operation fails")
        }
        i if i.starts_with("wasi:sockets/") => {
            ImportNote::Empty("no network: every socket and name lookup is refused")
        }
        "wasi:cli/environment" => ImportNote::Note("empty: no variables, no arguments"),
        "wasi:cli/stdin" => ImportNote::Note("closed"),
        "wasi:cli/stdout" => ImportNote::Note("discarded; write with the log import"),
        "wasi:cli/stderr" => ImportNote::Note("captured, size-capped; shown when the plugin traps"),
        "wasi:clocks/monotonic-clock" => {
            ImportNote::Note("waiting on it counts against the deadline")
        }
        _ => ImportNote::Linked,
    }
}

/// Advances the engine's epoch every `tick` until the engine is gone.
pub(crate) fn start_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("idfed-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Where a component came from when it was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompileSource {
    /// Compiled now (and written to the cache, if there is one).
    Compiled,
    /// Read back from the compiled-component cache.
    Cached,
}

/// Compiled components on disk, under the data directory, named by the component's SHA-256 and the
/// engine's compatibility hash, so a restart does not recompile and an upgraded engine never loads
/// code compiled by another.
///
/// The directory is the host's own: whoever can write there can run native code in idfed, exactly as
/// whoever can write the idfed binary can. Only names made here (hex digests) are ever opened.
pub(crate) struct ComponentCache {
    dir: Dir,
    engine_hash: String,
}

impl ComponentCache {
    pub fn open(data_dir: &Dir, engine: &Engine) -> std::io::Result<Self> {
        data_dir.create_dir_all("component-cache")?;
        let dir = data_dir.open_dir("component-cache")?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ComponentCache {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
        })
    }

    fn file_name(&self, digest: &str) -> String {
        format!("{digest}-{}.cwasm", self.engine_hash)
    }

    /// The cached component for `digest`, if there is a usable one.
    pub fn get(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let bytes = self.dir.read(self.file_name(digest)).ok()?;
        // SAFETY: the file was written by `put` below from `Component::serialize` for this same engine
        // configuration (the name carries its compatibility hash), in a directory only idfed writes.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(digest, error = %e, "unusable compiled component in the cache; recompiling");
                None
            }
        }
    }

    /// Stores a compiled component; written to a temporary name and renamed, so a crash never leaves a
    /// half-written file under the real name.
    pub fn put(&self, digest: &str, component: &Component) -> Result<(), LoadError> {
        let bytes = component
            .serialize()
            .map_err(|e| LoadError::Cache(e.to_string()))?;
        let name = self.file_name(digest);
        let temporary = format!("{name}.{}.tmp", std::process::id());
        let write = || -> std::io::Result<()> {
            let mut file = self.dir.create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            self.dir.rename(&temporary, &self.dir, &name)
        };
        write().map_err(|e| {
            let _ = self.dir.remove_file(&temporary);
            LoadError::Cache(e.to_string())
        })
    }
}

/// Refuses what is not a component before handing it to the compiler, with a message that says what it is.
pub(crate) fn check_header(wasm: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT: &[u8] = &[0x0d, 0x00, 0x01, 0x00];
    const CORE_MODULE: &[u8] = &[0x01, 0x00, 0x00, 0x00];
    match (wasm.get(..4), wasm.get(4..8)) {
        (Some(MAGIC), Some(COMPONENT)) => Ok(()),
        (Some(MAGIC), Some(CORE_MODULE)) => Err(LoadError::NotAComponent(
            "this is a core WebAssembly module; build the plugin with `--target wasm32-wasip2` to get a component"
                .into(),
        )),
        (Some(MAGIC), _) => Err(LoadError::NotAComponent("unknown WebAssembly version or layer".into())),
        _ => Err(LoadError::NotAComponent("the file does not start with the WebAssembly magic number".into())),
    }
}
