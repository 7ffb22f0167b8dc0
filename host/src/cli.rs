//! The `idfed` command line. Every command prints one clear line on stderr and exits non-zero when it fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::audit::AuditLog;
use crate::plugins::{
    BindError, Decision, KvStore, Limits, PluginRuntime, PolicyRequest, RuntimeConfig,
};
use crate::store::{KeySource, MasterKey, SledStore, Store};

/// idfed: vend temporary AWS credentials to the people and programs allowed to have them.
#[derive(Debug, Parser)]
#[command(name = "idfed", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Tools for plugin authors.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Maintenance of idfed's data directory (run while the server is stopped).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// Where idfed keeps its state, and the master key that seals its secrets.
#[derive(Debug, clap::Args)]
struct DataDir {
    /// The data directory.
    #[arg(long, env = "IDFED_DATA_DIR", default_value = "idfed-data")]
    data_dir: PathBuf,
    /// The master key file (created 0600 on first start); `IDFED_MASTER_KEY` (base64), when set, wins.
    #[arg(long, env = "IDFED_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

impl DataDir {
    fn key_source(&self) -> KeySource {
        let file = self
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"));
        KeySource::from_env_or_file(file)
    }

    fn open_store(&self) -> Result<SledStore, Failure> {
        SledStore::open(&self.data_dir, self.key_source())
            .map_err(|e| Failure(format!("{}: {e} [{}]", self.data_dir.display(), e.code())))
    }
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Re-seals every stored secret under a new master key.
    RotateKey {
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Checks the audit log's hash chain: an edited, removed or inserted record is reported.
    Verify {
        #[command(flatten)]
        data: DataDir,
    },
    /// Removes records older than the retention, keeping the chain verifiable.
    Prune {
        #[command(flatten)]
        data: DataDir,
        /// Keep this many days.
        #[arg(long)]
        retention_days: u64,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Says whether FILE is a policy plugin of the `idfed:policy@0.1.0` world, and its size.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Evaluates one request with a plugin and prints the decision as JSON, with how long it took.
    Eval {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The request, as JSON (see `sdk/README.md`).
        #[arg(long)]
        request: PathBuf,
        /// The binding's configuration, as JSON; `{}` when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The CPU deadline in milliseconds.
        #[arg(long, default_value_t = 50)]
        deadline_ms: u64,
        /// The memory cap in MiB.
        #[arg(long, default_value_t = 16)]
        memory_mib: usize,
    },
}

/// Something the user should be told in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Plugin(command) => report(command.run().await),
            Command::Admin(command) => report(command.run()),
            Command::Audit(command) => report(command.run()),
        }
    }
}

fn report(result: Result<ExitCode, Failure>) -> ExitCode {
    result.unwrap_or_else(|Failure(message)| {
        eprintln!("error: {message}");
        ExitCode::FAILURE
    })
}

impl PluginCommand {
    async fn run(self) -> Result<ExitCode, Failure> {
        match self {
            PluginCommand::Check { file } => {
                let wasm = read(&file)?;
                let runtime = scratch_runtime()?;
                let plugin = runtime
                    .load(&display_name(&file), &wasm)
                    .map_err(|e| at(&file, e))?;
                println!(
                    "ok: {} is an idfed:policy@0.1.0 policy plugin, {} bytes, sha256 {}",
                    file.display(),
                    plugin.size(),
                    plugin.digest()
                );
                Ok(ExitCode::SUCCESS)
            }
            PluginCommand::Eval {
                file,
                request,
                config,
                deadline_ms,
                memory_mib,
            } => {
                let wasm = read(&file)?;
                let request_text = read_text(&request)?;
                let request: PolicyRequest =
                    serde_json::from_str(&request_text).map_err(|e| at(&request, e))?;
                let config_text = match &config {
                    Some(path) => read_text(path)?,
                    None => "{}".to_owned(),
                };
                let runtime = scratch_runtime()?;
                let plugin = runtime
                    .load(&display_name(&file), &wasm)
                    .map_err(|e| at(&file, e))?;
                let limits = Limits {
                    deadline: Duration::from_millis(deadline_ms),
                    memory_bytes: memory_mib.saturating_mul(1 << 20),
                };
                let binding = runtime
                    .bind("cli", plugin, &config_text, Some(limits))
                    .await
                    .map_err(|e| match e {
                        BindError::ConfigRefused { .. } | BindError::InvalidConfig(_) => {
                            Failure(format!(
                                "{}: {e}",
                                config.as_deref().unwrap_or(Path::new("config")).display()
                            ))
                        }
                        other => Failure(format!("{} [{}]", other, other.code())),
                    })?;
                let started = Instant::now();
                let outcome = runtime.evaluate(&binding, &request).await;
                let elapsed_us = started.elapsed().as_micros() as u64;
                let (json, code) = match outcome {
                    Ok(Decision::Allow { grant }) => (
                        serde_json::json!({"decision": "allow", "grant": grant, "elapsed_us": elapsed_us}),
                        ExitCode::SUCCESS,
                    ),
                    Ok(Decision::Deny { reason }) => (
                        serde_json::json!({"decision": "deny", "reason": reason, "elapsed_us": elapsed_us}),
                        ExitCode::SUCCESS,
                    ),
                    Err(fault) => (
                        serde_json::json!({"decision": "fault", "code": fault.code(), "message": fault.to_string(), "elapsed_us": elapsed_us}),
                        ExitCode::from(3),
                    ),
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).expect("JSON values serialize")
                );
                Ok(code)
            }
        }
    }
}

impl AdminCommand {
    fn run(self) -> Result<ExitCode, Failure> {
        match self {
            AdminCommand::RotateKey { data } => {
                let store = data.open_store()?;
                let key = MasterKey::generate().map_err(|e| Failure(e.to_string()))?;
                let fingerprint = key.fingerprint();
                let from_env = matches!(data.key_source(), KeySource::Env(_));
                // With the key in the environment nothing is written to a key file: the operator must set
                // the new key before the next start, so it is shown, once, here.
                let shown = from_env.then(|| key.to_base64());
                let count = store
                    .rotate_master_key(key)
                    .map_err(|e| Failure(format!("{e} [{}]", e.code())))?;
                println!("re-sealed {count} secret(s) under master key {fingerprint}");
                if let Some(new_key) = shown {
                    eprintln!(
                        "IDFED_MASTER_KEY must now be set to the new key before idfed starts again:"
                    );
                    println!("{}", new_key.expose());
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

impl AuditCommand {
    fn run(self) -> Result<ExitCode, Failure> {
        let open = |data: &DataDir, retention| -> Result<(SledStore, AuditLog), Failure> {
            let store = data.open_store()?;
            let audit = AuditLog::open(store.db(), retention)
                .map_err(|e| Failure(format!("audit log: {e}")))?;
            Ok((store, audit))
        };
        match self {
            AuditCommand::Verify { data } => {
                let (_store, audit) = open(&data, None)?;
                let report = audit
                    .verify()
                    .map_err(|e| Failure(format!("audit log: {e}")))?;
                if report.is_intact() {
                    println!("ok: {} record(s), chain intact", report.records);
                    Ok(ExitCode::SUCCESS)
                } else {
                    for problem in &report.problems {
                        println!("problem: {problem}");
                    }
                    eprintln!(
                        "error: the audit log has been tampered with ({} problem(s))",
                        report.problems.len()
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
            AuditCommand::Prune {
                data,
                retention_days,
            } => {
                let retention = Duration::from_secs(retention_days.saturating_mul(86_400));
                let (_store, audit) = open(&data, Some(retention))?;
                let removed = audit
                    .prune(std::time::SystemTime::now())
                    .map_err(|e| Failure(format!("audit log: {e}")))?;
                audit
                    .flush()
                    .map_err(|e| Failure(format!("audit log: {e}")))?;
                println!("removed {removed} record(s) older than {retention_days} day(s)");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// A runtime for one command: no compiled-component cache, and a throwaway key-value store.
fn scratch_runtime() -> Result<PluginRuntime, Failure> {
    let db = sled::Config::new()
        .temporary(true)
        .open()
        .map_err(|e| Failure(format!("temporary store: {e}")))?;
    let kv = KvStore::new(
        db.open_tree("plugin-kv")
            .map_err(|e| Failure(format!("temporary store: {e}")))?,
    );
    PluginRuntime::new(RuntimeConfig::default(), None, kv)
        .map_err(|e| Failure(format!("plugin runtime: {e:#}")))
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| at(path, e))
}

fn read_text(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| at(path, e))
}

fn at(path: &Path, e: impl std::fmt::Display) -> Failure {
    Failure(format!("{}: {e}", path.display()))
}

fn display_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned())
}
