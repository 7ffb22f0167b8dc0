//! Python policy plugins (`plugins/python/`), built with componentize-py from `.venv` (installed by
//! `scripts/setup-test-env`) and compiled by wasmtime — both slow (~20 s and ~16 CPU-seconds a
//! component), so each is done once, not per test:
//!
//! - [`component`] builds a plugin into `target/python-plugins/NAME.wasm` once per test process, and not
//!   at all while its inputs (the plugin's folder, `sdk/python`, the WIT, componentize-py's version) are
//!   unchanged since the last build: a stamp file beside it records them. A file lock keeps concurrent
//!   test processes from building the same plugin twice.
//! - [`runtime`] gives a runtime whose compiled-component cache is `target/python-plugins/` (shared by
//!   tests, the benchmark and `idfed plugin check --cache-dir`), and [`PythonRuntime::load`] compiles each
//!   component into it once per process, the other tests waiting for it rather than compiling it again.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use idfed::plugins::{KvStore, Plugin, PluginRuntime, RuntimeConfig};

/// The example plugin `plugins/python/business-hours`.
pub const BUSINESS_HOURS: &str = "business-hours";
/// `plugins/python/fixtures/endless-loop`: loops forever in `evaluate`.
pub const ENDLESS_LOOP: &str = "fixtures/endless-loop";
/// `plugins/python/fixtures/memory-growth`: allocates without end in `evaluate`.
pub const MEMORY_GROWTH: &str = "fixtures/memory-growth";
/// `plugins/python/fixtures/raise-exception`: raises `RuntimeError` (or, with `{"mode": "plugin_error"}`,
/// the SDK's `PluginError`) in `evaluate`.
pub const RAISE_EXCEPTION: &str = "fixtures/raise-exception";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where the Python components and their compiled forms go: `target/python-plugins/`.
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join("python-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// componentize-py from the tests' virtual environment.
fn componentize_py() -> PathBuf {
    let path = root().join(".venv/bin/componentize-py");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-test-env",
        path.display()
    );
    path
}

fn hash_tree(path: &Path, hasher: &mut impl Hasher) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => return,
    };
    entries.sort();
    for entry in entries {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name == "__pycache__" || name.starts_with('.') {
            continue;
        }
        if entry.is_dir() {
            hash_tree(&entry, hasher);
        } else if name.ends_with(".py") || name.ends_with(".wit") {
            name.hash(hasher);
            std::fs::read(&entry).unwrap().hash(hasher);
        }
    }
}

/// The path of the component built from `plugins/python/NAME` (`business-hours`,
/// `fixtures/endless-loop`, …), built if needed; at most once per process.
pub fn component(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, Arc<OnceLock<PathBuf>>)>> = Mutex::new(Vec::new());
    let cell = {
        let mut built = BUILT.lock().unwrap();
        match built.iter().find(|(n, _)| n == name) {
            Some((_, cell)) => cell.clone(),
            None => {
                let cell = Arc::new(OnceLock::new());
                built.push((name.to_owned(), cell.clone()));
                cell
            }
        }
    };
    cell.get_or_init(|| build(name)).clone()
}

fn build(name: &str) -> PathBuf {
    let root = root();
    let source = root.join("plugins/python").join(name);
    assert!(
        source.join("app.py").is_file(),
        "no {}/app.py",
        source.display()
    );
    let tool = componentize_py();
    let version = Command::new(&tool).arg("--version").output().unwrap();
    let mut hasher = std::hash::DefaultHasher::new();
    version.stdout.hash(&mut hasher);
    for dir in [
        source.clone(),
        root.join("sdk/python/idfed_policy"),
        root.join("wit/since_v0.2.0"),
    ] {
        hash_tree(&dir, &mut hasher);
    }
    let stamp_text = format!("{:016x}\n", hasher.finish());

    let out = out_dir();
    let file_name = name.replace('/', "-");
    let wasm = out.join(format!("{file_name}.wasm"));
    let stamp = out.join(format!("{file_name}.stamp"));
    let lock = std::fs::File::create(out.join(format!("{file_name}.lock"))).unwrap();
    lock.lock().unwrap();
    if wasm.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&stamp_text) {
        return wasm;
    }
    let started = std::time::Instant::now();
    let partial = out.join(format!("{file_name}.wasm.partial"));
    let output = Command::new(&tool)
        .arg("-d")
        .arg(root.join("wit/since_v0.2.0"))
        .args(["-w", "policy-plugin", "componentize", "-p"])
        .arg(&source)
        .arg("-p")
        .arg(root.join("sdk/python"))
        .arg("app")
        .arg("-o")
        .arg(&partial)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running componentize-py");
    assert!(
        output.status.success(),
        "componentize-py failed for {name}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The old component's compiled form (35 MiB) would never be read again: remove it.
    if let Ok(old) = std::fs::read(&wasm) {
        use sha2::Digest;
        let prefix = format!("{}-", hex::encode(sha2::Sha256::digest(&old)));
        for entry in std::fs::read_dir(out.join("component-cache"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    std::fs::rename(&partial, &wasm).unwrap();
    std::fs::write(&stamp, stamp_text).unwrap();
    eprintln!("built {} in {:.1?}", wasm.display(), started.elapsed());
    wasm
}

/// A runtime over a temporary data directory, except for its compiled-component cache: the shared
/// `target/python-plugins/component-cache/`.
pub struct PythonRuntime {
    /// The runtime.
    pub runtime: PluginRuntime,
    /// Keeps the key-value store's directory alive.
    pub dir: Arc<tempfile::TempDir>,
}

/// A runtime with default settings (see [`PythonRuntime`]).
pub fn runtime() -> PythonRuntime {
    runtime_with(RuntimeConfig::default())
}

/// A runtime with `config` (see [`PythonRuntime`]).
pub fn runtime_with(config: RuntimeConfig) -> PythonRuntime {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let db = idfed::store::Db::Sled(idfed::store::open_db(&dir.path().join("db")).unwrap());
    let kv = KvStore::new(db.open_tree("plugin-kv").unwrap());
    let cache =
        cap_std::fs::Dir::open_ambient_dir(out_dir(), cap_std::ambient_authority()).unwrap();
    let runtime = PluginRuntime::new(config, Some(&cache), kv).unwrap();
    PythonRuntime { runtime, dir }
}

impl PythonRuntime {
    /// Loads the Python plugin `name` (built by [`component`]), compiled at most once per process: the
    /// first load of each component compiles it into the shared cache while later ones wait, then read it.
    pub fn load(&self, name: &str) -> Arc<Plugin> {
        static COMPILED: Mutex<Option<HashMap<String, Arc<Mutex<()>>>>> = Mutex::new(None);
        let path = component(name);
        let wasm = std::fs::read(&path).unwrap();
        let gate = COMPILED
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .entry(name.to_owned())
            .or_default()
            .clone();
        let _compiling = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.runtime.load(&name.replace('/', "-"), &wasm).unwrap()
    }
}
