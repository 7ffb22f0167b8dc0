//! The `idfed` command line. Every command prints one clear line on stderr and exits non-zero when it fails.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::audit::AuditLog;
use crate::auth::static_dir::{self, AddOutcome, UserEntry};
use crate::plugins::{
    BindError, Decision, KvStore, Limits, PluginRuntime, PolicyRequest, RuntimeConfig,
};
use crate::secret::Secret;
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
    /// Logs in to an idfed server and keeps the session (in the config folder, mode 0600).
    Login {
        /// The server's URL, e.g. https://idfed.example.com
        #[arg(long, env = "IDFED_SERVER")]
        server: String,
        /// Your user name.
        #[arg(long)]
        user: String,
        /// Read the password from standard input (one line) instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// A PEM file of CA certificates to trust for this server.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Ends the kept session.
    Logout,
    /// Prints credentials from a connector, by default in the AWS CLI's `credential_process` format, so that
    /// `credential_process = idfed creds CONNECTOR` works in an AWS config file.
    Creds {
        /// The connector's name or id.
        connector: String,
        /// `credential_process`, `json`, `env` (shell exports) or `ini` (a credentials-file section).
        #[arg(long, default_value = "credential_process", value_parser = ["credential_process", "json", "env", "ini"])]
        format: String,
        /// The duration wanted, in seconds.
        #[arg(long)]
        duration: Option<u32>,
    },
    /// Prints a sign-in URL for the AWS console with a connector's credentials (valid 15 minutes; it
    /// holds a sign-in token, so treat it as a secret).
    Console {
        /// The connector's name or id.
        connector: String,
        /// Where the console opens (default: the console's home).
        #[arg(long)]
        destination: Option<String>,
        /// The duration wanted for the credentials behind the session, in seconds.
        #[arg(long)]
        duration: Option<u32>,
    },
    /// Serves a connector's credentials on 127.0.0.1 as a container-credentials endpoint, as aws-vault and
    /// Weep do: prints `export AWS_CONTAINER_CREDENTIALS_FULL_URI=…` and
    /// `export AWS_CONTAINER_AUTHORIZATION_TOKEN=…` for the shell that runs AWS tools, caches the
    /// credentials and fetches them anew before they expire. Runs until ctrl-c.
    ContainerServer {
        /// The connector's name or id.
        connector: String,
        /// The port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The duration wanted, in seconds.
        #[arg(long)]
        duration: Option<u32>,
    },
    /// Tools for plugin authors.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Maintenance of idfed's data directory (run while the server is stopped).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Users of a static directory file (TOML; see `idfed::auth::static_dir`).
    #[command(subcommand)]
    User(UserCommand),
    /// Runs the HTTP API server.
    Serve {
        /// The configuration file (TOML; see `idfed::config`).
        #[arg(long, env = "IDFED_CONFIG", default_value = "idfed.toml")]
        config: PathBuf,
    },
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

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Adds a user to a static directory file, created (mode 0600) when missing. The password is prompted
    /// for twice, without echo, or read from stdin.
    Add {
        /// The user name.
        name: String,
        /// The users file.
        #[arg(long)]
        file: PathBuf,
        /// Their groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// A name for people (the user name when omitted).
        #[arg(long)]
        display_name: Option<String>,
        /// Their email address.
        #[arg(long)]
        email: Option<String>,
        /// Add the account disabled: it cannot log in.
        #[arg(long)]
        inactive: bool,
        /// Replace a user of the same name.
        #[arg(long)]
        replace: bool,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists the users of a static directory file (never their password hashes).
    List {
        /// The users file.
        #[arg(long)]
        file: PathBuf,
    },
}

/// The shortest password `idfed user add` accepts, in characters.
const MIN_PASSWORD_CHARS: usize = 8;

/// Something the user should be told in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Login {
                server,
                user,
                password_stdin,
                ca_file,
            } => report(login(&server, &user, password_stdin, ca_file).await),
            Command::Logout => report(
                crate::client::logout()
                    .await
                    .map(|()| ExitCode::SUCCESS)
                    .map_err(|e| Failure(e.0)),
            ),
            Command::Creds {
                connector,
                format,
                duration,
            } => report(
                crate::client::credentials(&connector, &format, duration)
                    .await
                    .map(|body| {
                        print!("{body}");
                        if !body.ends_with('\n') {
                            println!();
                        }
                        ExitCode::SUCCESS
                    })
                    .map_err(|e| Failure(e.0)),
            ),
            Command::Console {
                connector,
                destination,
                duration,
            } => report(
                crate::client::console_url(&connector, destination.as_deref(), duration)
                    .await
                    .map(|answer| {
                        println!("{}", answer.url);
                        eprintln!("valid until {}", answer.expires);
                        ExitCode::SUCCESS
                    })
                    .map_err(|e| Failure(e.0)),
            ),
            Command::ContainerServer {
                connector,
                port,
                duration,
            } => report(
                crate::container_server::run(&connector, port, duration)
                    .await
                    .map(|()| ExitCode::SUCCESS)
                    .map_err(|e| Failure(e.0)),
            ),
            Command::Plugin(command) => report(command.run().await),
            Command::Admin(command) => report(command.run()),
            Command::Audit(command) => report(command.run()),
            Command::User(command) => report(command.run()),
            Command::Serve { config } => report(serve(&config).await),
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

impl UserCommand {
    fn run(self) -> Result<ExitCode, Failure> {
        match self {
            UserCommand::Add {
                name,
                file,
                groups,
                display_name,
                email,
                inactive,
                replace,
                password_stdin,
            } => {
                // The file and the name are checked before the password is asked for.
                if file.exists() {
                    let users =
                        static_dir::read_users(&file).map_err(|e| Failure(e.to_string()))?;
                    if !replace && users.iter().any(|u| u.name == name) {
                        return Err(Failure(
                            static_dir::StaticDirError::Exists { path: file, name }.to_string(),
                        ));
                    }
                }
                let password = if password_stdin {
                    password_from_stdin()?
                } else {
                    password_from_prompt(&name)?
                };
                check_password(&password)?;
                let password_hash =
                    static_dir::hash_password(&password).map_err(|e| Failure(e.to_string()))?;
                drop(password);
                let entry = UserEntry {
                    name: name.clone(),
                    display_name,
                    email,
                    active: !inactive,
                    groups: groups
                        .into_iter()
                        .map(|g| g.trim().to_owned())
                        .filter(|g| !g.is_empty())
                        .collect(),
                    password_hash,
                };
                let outcome = static_dir::add_user(&file, entry, replace)
                    .map_err(|e| Failure(e.to_string()))?;
                match outcome {
                    AddOutcome::Added => println!("added user {name} to {}", file.display()),
                    AddOutcome::Replaced => println!("replaced user {name} in {}", file.display()),
                }
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::List { file } => {
                let mut users =
                    static_dir::read_users(&file).map_err(|e| Failure(e.to_string()))?;
                if users.is_empty() {
                    println!("no users in {}", file.display());
                    return Ok(ExitCode::SUCCESS);
                }
                users.sort_by(|a, b| a.name.cmp(&b.name));
                let rows: Vec<[String; 5]> = users
                    .iter()
                    .map(|u| {
                        [
                            u.name.clone(),
                            u.display_name().to_owned(),
                            u.email.clone().unwrap_or_else(|| "-".to_owned()),
                            if u.groups.is_empty() {
                                "-".to_owned()
                            } else {
                                u.groups.join(",")
                            },
                            if u.active { "active" } else { "inactive" }.to_owned(),
                        ]
                    })
                    .collect();
                let header = ["NAME", "DISPLAY NAME", "EMAIL", "GROUPS", "STATUS"];
                let mut widths = header.map(str::len);
                for row in &rows {
                    for (width, cell) in widths.iter_mut().zip(row) {
                        *width = (*width).max(cell.chars().count());
                    }
                }
                let line = |cells: [&str; 5]| {
                    let mut out = String::new();
                    for (i, cell) in cells.iter().enumerate() {
                        if i + 1 == cells.len() {
                            out.push_str(cell);
                        } else {
                            let pad = widths[i] - cell.chars().count();
                            out.push_str(cell);
                            out.push_str(&" ".repeat(pad + 2));
                        }
                    }
                    out
                };
                println!("{}", line(header));
                for row in &rows {
                    println!("{}", line(row.each_ref().map(String::as_str)));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// The first line of stdin, without its line ending.
fn password_from_stdin() -> Result<Secret, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure(format!("cannot read the password from stdin: {e}")))?;
    let mut password = Secret::new(line);
    let trimmed = password.expose().trim_end_matches(['\n', '\r']).len();
    if trimmed != password.expose().len() {
        password = Secret::new(&password.expose()[..trimmed]);
    }
    Ok(password)
}

/// Asks for the password twice, without echo.
fn password_from_prompt(name: &str) -> Result<Secret, Failure> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Secret::new)
            .map_err(|e| {
                Failure(format!(
                    "cannot prompt for the password ({e}); use --password-stdin"
                ))
            })
    };
    let first = ask(&format!("Password for {name}: "))?;
    check_password(&first)?;
    let second = ask(&format!("Password for {name} (again): "))?;
    if first != second {
        return Err(Failure("the passwords do not match".to_owned()));
    }
    Ok(first)
}

fn check_password(password: &Secret) -> Result<(), Failure> {
    if password.is_empty() {
        return Err(Failure("the password is empty".to_owned()));
    }
    let chars = password.expose().chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Failure(format!(
            "the password is too short ({chars} characters): at least {MIN_PASSWORD_CHARS} are required"
        )));
    }
    Ok(())
}

async fn login(
    server: &str,
    user: &str,
    password_stdin: bool,
    ca_file: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure(format!("reading the password: {e}")))?;
        crate::secret::Secret::new(line.trim_end_matches(['\n', '\r']))
    } else {
        crate::secret::Secret::new(
            rpassword::prompt_password(format!("password for {user}: ")).map_err(|e| {
                Failure(format!(
                    "cannot prompt for the password ({e}); use --password-stdin"
                ))
            })?,
        )
    };
    let session = crate::client::login(server, user, &password, ca_file)
        .await
        .map_err(|e| Failure(e.0))?;
    println!("logged in to {} as {}", session.server, session.user);
    Ok(ExitCode::SUCCESS)
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

/// `idfed serve`: reads the configuration, opens the service, binds and serves until ctrl-c or SIGTERM,
/// then finishes the requests in flight and flushes everything.
async fn serve(path: &Path) -> Result<ExitCode, Failure> {
    let config = crate::config::Config::load(path).map_err(|e| Failure(e.to_string()))?;
    crate::api::console::configure(config.console.clone());
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) if !config.server.plain_http => {
            Some(crate::api::load_tls(cert, key).map_err(Failure)?)
        }
        _ => None,
    };
    let service = std::sync::Arc::new(
        crate::service::Service::open(&config).map_err(|e| Failure(e.to_string()))?,
    );
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure(format!("server.listen {listen}: cannot bind: {e}")))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("idfed listening on {scheme}://{listen}");
    tracing::info!(%listen, scheme, "serving");
    let state =
        crate::api::AppState::new(service.clone(), crate::api::ApiLimits::from(&config.server));
    let served = crate::api::serve(listener, tls, state, crate::api::shutdown_signal()).await;
    let flushed = service.shutdown();
    served.map_err(|e| Failure(format!("server: {e}")))?;
    flushed.map_err(|e| Failure(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}
