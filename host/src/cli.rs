//! The `idfed` command line. Every command prints one clear line on stderr and exits non-zero when it fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::plugins::{
    BindError, Decision, KvStore, Limits, PluginRuntime, PolicyRequest, RuntimeConfig,
};

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
