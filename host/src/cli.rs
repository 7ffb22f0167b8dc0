//! The `idfed` command line. Every command prints one clear line on stderr and exits non-zero when it fails.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::audit::AuditLog;
use crate::auth::static_dir::{self, AddOutcome, UserEntry};
use crate::plugins::{
    BindError, BindOptions, Decision, ImportNote, KvStore, Limits, PluginFault, PluginRuntime,
    PolicyRequest, RuntimeConfig, import_note,
};
use crate::secret::Secret;
use crate::store::{DataStore, KeySource, MasterKey, Store};

/// idfed: vend temporary AWS credentials to the people and programs allowed to have them.
#[derive(Debug, Parser)]
#[command(name = "idfed", version, about)]
pub struct Cli {
    /// The idfed server, e.g. https://idfed.example.com: where `login` logs in, and where commands go with an
    /// API key (with a kept session, it must be that session's server).
    #[arg(long, global = true, env = "IDFED_SERVER")]
    server: Option<String>,
    /// A file holding a system-scope API key to call the server with instead of a kept session (for CI
    /// jobs and task runners); `IDFED_API_KEY` may hold the key itself.
    #[arg(long, global = true, env = "IDFED_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// A file holding a CI job's OIDC ID token (workload identity) to call the server with, read afresh
    /// for every call so a refreshed token is used; `IDFED_WORKLOAD_TOKEN` may hold the token itself.
    #[arg(long, global = true, env = "IDFED_WORKLOAD_TOKEN_FILE")]
    workload_token_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for the server.
    #[arg(long, global = true, env = "IDFED_CA_FILE")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Logs in to an idfed server and keeps the session (in the config folder, mode 0600).
    Login {
        /// Your user name.
        #[arg(long)]
        user: String,
        /// Read the password from standard input (one line) instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Ends the kept session.
    Logout,
    /// Shows who the server takes you for: the kept session's user, or the API key or workload token
    /// given (with the connectors a workload's claim rules grant).
    Whoami {
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
    },
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
        #[command(flatten)]
        why: crate::client::Why,
        /// When a policy wants an approval first, wait for it (until the request expires), then print the
        /// credentials; without, say so and fail.
        #[arg(long)]
        wait: bool,
    },
    /// Approval requests: list those you may decide (and your own), show, approve or deny one.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
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
        #[command(flatten)]
        why: crate::client::Why,
    },
    /// Prints a password for a connector's Amazon ECR registry, for
    /// `idfed ecr-login CONNECTOR | docker login --username AWS --password-stdin REGISTRY`; with `--json`,
    /// the user name, password, registry and expiry as JSON. The password is a secret (12 hours).
    EcrLogin {
        /// The connector's name or id.
        connector: String,
        /// The duration wanted for the credentials behind it, in seconds.
        #[arg(long)]
        duration: Option<u32>,
        #[command(flatten)]
        why: crate::client::Why,
        /// Print `{"username", "password", "registry", "expires_at"}` instead of the password alone.
        #[arg(long)]
        json: bool,
    },
    /// Prints an AWS CodeArtifact token for a domain, made with a connector's credentials (lasting as
    /// long as they do): the password for pip, npm, Maven…. With `--json`, the token and its expiry.
    CodeartifactToken {
        /// The connector's name or id.
        connector: String,
        /// The CodeArtifact domain.
        #[arg(long)]
        domain: String,
        /// The 12-digit account that owns the domain (default: the credentials' own).
        #[arg(long)]
        domain_owner: Option<String>,
        /// The duration wanted for the credentials behind it, in seconds.
        #[arg(long)]
        duration: Option<u32>,
        #[command(flatten)]
        why: crate::client::Why,
        /// Print `{"token", "expires_at"}` instead of the token alone.
        #[arg(long)]
        json: bool,
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
        #[command(flatten)]
        why: crate::client::Why,
    },
    /// Runs a command with a connector's credentials, as `aws-vault exec` does: in its environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_CREDENTIAL_EXPIRATION`), or,
    /// with `--refresh`, from a private container-credentials endpoint on 127.0.0.1 that fetches new ones
    /// before they end, for as long as the command runs. Exits as the command did; signals are passed on.
    Exec {
        /// The connector's name or id.
        connector: String,
        /// The duration wanted, in seconds.
        #[arg(long)]
        duration: Option<u32>,
        #[command(flatten)]
        why: crate::client::Why,
        /// Serve the credentials from a private endpoint that renews them, rather than the environment.
        #[arg(long)]
        refresh: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Tools for plugin authors.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Administration: a running server's admin API, with the kept session of an administrator
    /// (`idfed login`), and `rotate-key`, maintenance of the data directory (run while the server is stopped).
    Admin(AdminArgs),
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
    /// The PostgreSQL database of a deployment on PostgreSQL (`postgres://…`), instead of sled in the data
    /// directory.
    #[arg(long, env = "IDFED_DATABASE_URL", hide_env_values = true, value_parser = secret_arg)]
    database_url: Option<Secret>,
}

/// A command-line value that may hold a password (a database URL): never shown by `Debug`.
fn secret_arg(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

impl DataDir {
    fn key_source(&self) -> KeySource {
        let file = self
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"));
        KeySource::from_env_or_file(file)
    }

    fn open_store(&self) -> Result<DataStore, Failure> {
        match &self.database_url {
            None => DataStore::open(&self.data_dir, self.key_source())
                .map_err(|e| Failure(format!("{}: {e} [{}]", self.data_dir.display(), e.code()))),
            Some(url) => {
                let config = crate::store::db::postgres::PostgresConfig::new(url.clone());
                let pg = crate::store::db::postgres::Postgres::connect(&config)
                    .map_err(|e| Failure(format!("the database: {e}")))?;
                DataStore::open_postgres(pg, &self.data_dir, self.key_source())
                    .map_err(|e| Failure(format!("the database: {e} [{}]", e.code())))
            }
        }
    }
}

#[derive(Debug, clap::Args)]
struct AdminArgs {
    /// Print the server's answer as JSON instead of a readable summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Re-seals every stored secret under a new master key (run while the server is stopped).
    RotateKey {
        #[command(flatten)]
        data: DataDir,
    },
    /// Copies a sled data directory whole into an empty PostgreSQL database (run while the server is
    /// stopped): secrets stay sealed under the same master key, the audit chain is verified afterwards.
    MigrateStore {
        /// The sled deployment's data directory.
        #[arg(long, value_name = "DIR")]
        from_data_dir: PathBuf,
        /// The master key file of that deployment (default `<DIR>/master.key`); `IDFED_MASTER_KEY`, when
        /// set, wins.
        #[arg(long, env = "IDFED_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
        /// The PostgreSQL database (`postgres://user:password@host/db?sslmode=require`), empty.
        #[arg(
            long,
            value_name = "URL",
            env = "IDFED_DATABASE_URL",
            hide_env_values = true,
            value_parser = secret_arg
        )]
        to: Secret,
    },
    /// AWS accounts: the credentials connectors vend from.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Connectors.
    #[command(subcommand)]
    Connectors(ConnectorsCommand),
    /// Policy plugin components.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// A connector's plugin chain.
    #[command(subcommand)]
    Bindings(BindingsCommand),
    /// System-scope API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Lists audit records, newest first.
    Audit {
        /// Only this caller's (exact name, e.g. `alice` or `system:ci`).
        #[arg(long)]
        user: Option<String>,
        /// Only this connector's (id or name).
        #[arg(long)]
        connector: Option<String>,
        /// Only those that ended so: issued, refused, plugin_denied, plugin_fault, failed or changed.
        #[arg(long)]
        outcome: Option<String>,
        /// Only those at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only those before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many (1 to 1000; the server's default when omitted).
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Lists the accounts (never their secrets).
    List,
    /// Shows an account (never its secret).
    Show {
        /// The account's name.
        name: String,
    },
    /// Creates or replaces an account. The secret access key is read from stdin, never from an argument.
    Put {
        /// The account's name.
        name: String,
        /// An IAM user's access key id.
        #[arg(
            long,
            conflicts_with = "host_credentials",
            required_unless_present = "host_credentials"
        )]
        access_key_id: Option<String>,
        /// Read the secret access key from stdin (without it, an existing account keeps its stored secret).
        #[arg(long, requires = "access_key_id")]
        secret_stdin: bool,
        /// Use the host's own credential chain instead of an access key.
        #[arg(long)]
        host_credentials: bool,
        /// The STS region.
        #[arg(long)]
        region: Option<String>,
        /// The STS endpoint URL.
        #[arg(long)]
        sts_endpoint: Option<String>,
        /// A description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Deletes an account.
    Delete {
        /// The account's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConnectorsCommand {
    /// Lists the connectors.
    List,
    /// Shows a connector.
    Show {
        /// The connector's name or id.
        connector: String,
    },
    /// Creates a connector from a JSON file, the body as `POST /api/v1/admin/connectors` takes it.
    Create {
        /// The connector, as JSON.
        #[arg(long)]
        file: PathBuf,
    },
    /// Replaces a connector with a JSON file, the body as `PUT /api/v1/admin/connectors/{c}` takes it.
    Update {
        /// The connector's name or id.
        connector: String,
        /// The connector, as JSON.
        #[arg(long)]
        file: PathBuf,
    },
    /// Deletes a connector.
    Delete {
        /// The connector's name or id.
        connector: String,
    },
    /// Ends the credentials cached for a connector (those with `credential_cache` on): each caller's next
    /// vend goes to STS.
    FlushCache {
        /// The connector's name or id.
        connector: String,
    },
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Uploads a plugin component (checked by the server before it is stored).
    Upload {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The plugin's name (A-Za-z0-9._-): uploads of one name are its versions.
        #[arg(long)]
        name: Option<String>,
    },
    /// Lists the stored plugins and where they are bound.
    List,
    /// Deletes a stored plugin.
    Delete {
        /// The plugin's SHA-256 digest.
        digest: String,
    },
}

#[derive(Debug, Subcommand)]
enum BindingsCommand {
    /// Lists a connector's plugin chain, in order.
    List {
        /// The connector's name or id.
        connector: String,
    },
    /// Binds a stored plugin to a connector (its configuration checked by the plugin).
    Add {
        /// The connector's name or id.
        connector: String,
        /// The plugin's SHA-256 digest.
        #[arg(long)]
        plugin: String,
        /// The binding's configuration, a JSON file (`{}` when omitted).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where in the chain, from 0 (the end when omitted).
        #[arg(long)]
        position: Option<usize>,
        /// A session tag key the plugin may add (repeat for more; none when omitted).
        #[arg(long = "tag-key", value_name = "KEY")]
        tag_keys: Vec<String>,
    },
    /// Removes a binding from a connector.
    Remove {
        /// The connector's name or id.
        connector: String,
        /// The binding's id.
        binding_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Creates a system-scope API key and prints it, once.
    Create {
        /// The key's name.
        name: String,
        /// A system-scope connector the key may use (name or id); repeat for several.
        #[arg(long = "connector", required = true)]
        connectors: Vec<String>,
        /// When the key expires (RFC 3339).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Lists the API keys (never the keys themselves).
    List,
    /// Deletes an API key.
    Delete {
        /// The key's id.
        id: String,
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
    /// Says whether FILE is a policy plugin, of which version of the `idfed:policy` contract (0.1.0 or
    /// 0.2.0), and its size.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
        #[command(flatten)]
        cache: CompileCacheArgs,
    },
    /// Evaluates one request with a plugin and prints the decision as JSON, with how long it took.
    Eval {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The request, as JSON (see `sdk/plugin/README.md`).
        #[arg(long)]
        request: PathBuf,
        /// The binding's configuration, as JSON; `{}` when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The deadline in milliseconds, counted in CPU time and in wall-clock time (waiting counts).
        #[arg(long, default_value_t = 50)]
        deadline_ms: u64,
        /// The memory cap in MiB.
        #[arg(long, default_value_t = 16)]
        memory_mib: usize,
        /// A session tag key the plugin may add, as a binding's `tag_keys` lists it (repeat for more).
        #[arg(long = "allow-tag", value_name = "KEY")]
        allow_tags: Vec<String>,
        #[command(flatten)]
        cache: CompileCacheArgs,
    },
    /// Writes a ready plugin project into NAME/ (or --dir): a manifest, one source file, a test and a
    /// README; it builds and passes `plugin check` with no edit.
    New {
        /// The plugin's name (a-z, 0-9, - and _, starting with a letter).
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: crate::plugins::new_project::Lang,
        /// Where to write it (must not exist, or be empty); NAME/ when omitted.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Rust SDK's folder (idfed's `sdk/plugin`), for `--lang rust`; by default the one of the
        /// source tree this idfed was built from, if it is still there.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Where `plugin check` and `plugin eval` keep compiled components, so that a large plugin (a Python one
/// takes ~16 CPU-seconds to compile) is compiled once, not on every run.
#[derive(Debug, clap::Args)]
struct CompileCacheArgs {
    /// The compiled-component cache (components are compiled into its `component-cache/`); default
    /// `$XDG_CACHE_HOME/idfed`, else `~/.cache/idfed`.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile from scratch and cache nothing.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CompileCacheArgs {
    /// The cache directory, created if needed; none with `--no-cache`, or when the default one cannot be
    /// made (no home, a read-only one: the command then compiles from scratch, as with `--no-cache`).
    fn open(&self) -> Result<Option<cap_std::fs::Dir>, Failure> {
        if self.no_cache {
            return Ok(None);
        }
        let open = |path: &Path| {
            std::fs::create_dir_all(path)?;
            cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
        };
        if let Some(path) = &self.cache_dir {
            return open(path).map(Some).map_err(|e| at(path, e));
        }
        let default = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(base) => PathBuf::from(base).join("idfed"),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(home) => PathBuf::from(home).join(".cache").join("idfed"),
                None => return Ok(None),
            },
        };
        Ok(open(&default).ok())
    }
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
        crate::client::configure(crate::client::Settings {
            server: self.server.clone(),
            api_key_file: self.api_key_file.clone(),
            workload_token_file: self.workload_token_file.clone(),
            ca_file: self.ca_file.clone(),
        });
        match self.command {
            Command::Login {
                user,
                password_stdin,
            } => report(match &self.server {
                Some(server) => login(server, &user, password_stdin, self.ca_file).await,
                None => Err(Failure(
                    "login needs the server: --server URL or IDFED_SERVER=URL".into(),
                )),
            }),
            Command::Whoami { json } => report(whoami(json).await),
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
                why,
                wait,
            } => report(creds(&connector, &format, duration, &why, wait).await),
            Command::Approvals(command) => report(command.run().await),
            Command::Console {
                connector,
                destination,
                duration,
                why,
            } => report(
                console_url(&connector, destination, duration, why)
                    .await
                    .map(|answer| {
                        println!("{}", answer.url);
                        eprintln!("valid until {}", answer.expires);
                        ExitCode::SUCCESS
                    }),
            ),
            Command::ContainerServer {
                connector,
                port,
                duration,
                why,
            } => report(
                crate::container_server::run(&connector, port, duration, why)
                    .await
                    .map(|()| ExitCode::SUCCESS)
                    .map_err(|e| Failure(e.0)),
            ),
            Command::EcrLogin {
                connector,
                duration,
                why,
                json,
            } => report(ecr_login(&connector, duration, why).await.map(|login| {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&login).expect("logins serialize")
                    );
                } else {
                    println!("{}", login.password);
                    eprintln!(
                        "idfed: the password for {} (user {}), until {}",
                        login.registry, login.username, login.expires_at
                    );
                }
                ExitCode::SUCCESS
            })),
            Command::CodeartifactToken {
                connector,
                domain,
                domain_owner,
                duration,
                why,
                json,
            } => report(
                codeartifact_token(&connector, &domain, domain_owner.as_deref(), duration, why)
                    .await
                    .map(|token| {
                        if json {
                            println!(
                                "{}",
                                serde_json::to_string_pretty(&token).expect("tokens serialize")
                            );
                        } else {
                            println!("{}", token.token);
                        }
                        ExitCode::SUCCESS
                    }),
            ),
            Command::Exec {
                connector,
                duration,
                why,
                refresh,
                command,
            } => report(
                crate::exec::run(&connector, duration, why, refresh, &command)
                    .await
                    .map_err(|e| Failure(e.0)),
            ),
            Command::Plugin(command) => report(command.run().await),
            Command::Admin(AdminArgs { json, command }) => report(command.run(json).await),
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
            PluginCommand::New {
                name,
                lang,
                dir,
                sdk,
            } => {
                use crate::plugins::new_project;
                let sdk = match sdk {
                    Some(path) => Some(std::fs::canonicalize(&path).map_err(|e| at(&path, e))?),
                    None => new_project::default_rust_sdk(),
                };
                let files = new_project::files(&name, lang, sdk.as_deref()).map_err(Failure)?;
                let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
                new_project::write(&dir, &files).map_err(Failure)?;
                let build = match lang {
                    new_project::Lang::Python => format!(
                        "componentize-py -d wit -w policy-plugin componentize -p . app -o {name}.wasm"
                    ),
                    new_project::Lang::Rust => {
                        "cargo build --release --target wasm32-wasip2".to_owned()
                    }
                };
                println!(
                    "wrote {} ({} files); build it with `cd {} && {build}`",
                    dir.display(),
                    files.len(),
                    dir.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            PluginCommand::Check { file, cache } => {
                let wasm = read(&file)?;
                let runtime = scratch_runtime(cache.open()?.as_ref())?;
                let plugin = runtime
                    .load(&display_name(&file), &wasm)
                    .map_err(|e| at(&file, e))?;
                println!(
                    "ok: {} is an {} policy plugin, {} bytes, sha256 {}",
                    file.display(),
                    plugin.contract().package(),
                    plugin.size(),
                    plugin.digest()
                );
                println!("imports:");
                let mut warnings = 0;
                for name in plugin.imports() {
                    match import_note(name) {
                        ImportNote::Linked => println!("  {name}"),
                        ImportNote::Note(note) => println!("  {name}  ({note})"),
                        ImportNote::Empty(why) => {
                            warnings += 1;
                            println!("  {name}  warning: {why}");
                        }
                    }
                }
                if warnings > 0 {
                    eprintln!(
                        "warning: {warnings} import(s) are linked empty by the host: calls to them fail at run time"
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            PluginCommand::Eval {
                file,
                request,
                config,
                deadline_ms,
                memory_mib,
                allow_tags,
                cache,
            } => {
                let wasm = read(&file)?;
                let request_text = read_text(&request)?;
                let request: PolicyRequest =
                    serde_json::from_str(&request_text).map_err(|e| at(&request, e))?;
                let config_text = match &config {
                    Some(path) => read_text(path)?,
                    None => "{}".to_owned(),
                };
                let runtime = scratch_runtime(cache.open()?.as_ref())?;
                let plugin = runtime
                    .load(&display_name(&file), &wasm)
                    .map_err(|e| at(&file, e))?;
                let limits = Limits {
                    deadline: Duration::from_millis(deadline_ms),
                    memory_bytes: memory_mib.saturating_mul(1 << 20),
                };
                let options = BindOptions {
                    limits: Some(limits),
                    tag_keys: allow_tags,
                };
                let started = Instant::now();
                let binding = match runtime
                    .bind_with("cli", plugin, &config_text, &options)
                    .await
                {
                    Ok(binding) => binding,
                    // A plugin fault in validate-config is a fault like any other: exit status 3.
                    Err(BindError::Fault(fault)) => {
                        return print_fault("validate-config", &fault, started.elapsed());
                    }
                    Err(e @ (BindError::ConfigRefused { .. } | BindError::InvalidConfig(_))) => {
                        return Err(Failure(format!(
                            "{}: {e}",
                            config.as_deref().unwrap_or(Path::new("config")).display()
                        )));
                    }
                    Err(other) => return Err(Failure(format!("{} [{}]", other, other.code()))),
                };
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
                    Ok(Decision::NeedsApproval {
                        group,
                        reason,
                        max_duration_seconds,
                    }) => (
                        serde_json::json!({"decision": "needs_approval", "group": group, "reason": reason,
                            "max_duration_seconds": max_duration_seconds, "elapsed_us": elapsed_us}),
                        ExitCode::SUCCESS,
                    ),
                    Err(fault) => return print_fault("evaluate", &fault, started.elapsed()),
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
    async fn run(self, json: bool) -> Result<ExitCode, Failure> {
        match self {
            AdminCommand::Accounts(command) => command.run(json).await,
            AdminCommand::Connectors(command) => command.run(json).await,
            AdminCommand::Plugins(command) => command.run(json).await,
            AdminCommand::Bindings(command) => command.run(json).await,
            AdminCommand::Keys(command) => command.run(json).await,
            AdminCommand::Audit {
                user,
                connector,
                outcome,
                since,
                until,
                limit,
            } => {
                let outcome = outcome
                    .map(|o| {
                        serde_json::from_value::<idfed_api::audit::Outcome>(o.clone().into())
                            .map_err(|_| {
                                Failure(format!(
                                    "unknown outcome {o:?}: issued, refused, plugin_denied, \
                                     plugin_fault, failed or changed"
                                ))
                            })
                    })
                    .transpose()?;
                let query = idfed_api::audit::AuditQuery {
                    user,
                    connector,
                    outcome,
                    since,
                    until,
                    limit: limit.map(|n| n as usize),
                    ..Default::default()
                };
                let records = api(client()?.admin().audit(&query).await)?;
                if json {
                    return print_json(&idfed_api::audit::AuditRecords { records });
                }
                if records.is_empty() {
                    println!("no audit records");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = records
                    .iter()
                    .map(|r| {
                        let e = &r.event;
                        let detail = match (&e.code, &e.reason) {
                            (None, reason) => dash(reason.as_deref()),
                            (Some(code), None) => code.clone(),
                            (Some(code), Some(reason)) => format!("{code}: {reason}"),
                        };
                        vec![
                            idfed_api::audit::rfc3339::format(r.time),
                            snake(&e.outcome),
                            dash(Some(&e.action)),
                            dash(e.caller.as_deref()),
                            dash(e.connector.as_deref()),
                            one_line(&detail),
                        ]
                    })
                    .collect::<Vec<_>>();
                print_table(
                    &["TIME", "OUTCOME", "ACTION", "CALLER", "CONNECTOR", "DETAIL"],
                    &rows,
                );
                Ok(ExitCode::SUCCESS)
            }
            AdminCommand::MigrateStore {
                from_data_dir,
                master_key_file,
                to,
            } => {
                let source = DataDir {
                    data_dir: from_data_dir,
                    master_key_file,
                    database_url: None,
                };
                let target = DataDir {
                    data_dir: source.data_dir.clone(),
                    master_key_file: source.master_key_file.clone(),
                    database_url: Some(to.clone()),
                };
                let store = source.open_store()?;
                let config = crate::store::db::postgres::PostgresConfig::new(to);
                let pg = crate::store::db::postgres::Postgres::connect(&config)
                    .map_err(|e| Failure(format!("the target database: {e}")))?;
                let copied = crate::store::migrate::copy_store(
                    &store,
                    &crate::store::Db::Postgres(pg),
                    || {
                        target
                            .open_store()
                            .map_err(|e| crate::store::StoreError::Io(e.0))
                    },
                )
                .map_err(|e| Failure(format!("{e} [{}]", e.code())))?;
                for (tree, count) in &copied.trees {
                    println!("{tree}: {count} record(s)");
                }
                println!(
                    "copied: {} plugin component(s); the audit chain verifies ({} record(s)); point \
                     [data] backend = \"postgres\" at the database",
                    copied.plugins, copied.audit_records
                );
                Ok(ExitCode::SUCCESS)
            }
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

/// The typed client of the server the global options (or the kept session) name.
fn client() -> Result<idfed_client::Client, Failure> {
    crate::client::client().map_err(|e| Failure(e.0))
}

/// Approval requests.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// The requests you may decide (pending first) and your own.
    List {
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One request.
    Show {
        /// The request's id.
        id: String,
        /// Print the server's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approves someone else's request, as a member of its group: they may then repeat it once.
    Approve {
        /// The request's id.
        id: String,
        /// A comment for the requester and the audit log.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Denies someone else's request, as a member of its group.
    Deny {
        /// The request's id.
        id: String,
        /// A comment for the requester and the audit log.
        #[arg(long)]
        comment: Option<String>,
    },
}

fn print_approval(a: &idfed_api::ApprovalRequestBody) {
    let mut fields = vec![
        ("id", a.id.to_string()),
        ("status", snake(&a.status)),
        ("requester", a.requester.clone()),
        ("connector", a.connector.clone()),
        ("purpose", a.purpose.clone()),
        (
            "duration",
            dash(a.duration_seconds.map(|d| d.to_string()).as_deref()),
        ),
        ("justification", one_line(&dash(a.justification.as_deref()))),
        ("ticket", dash(a.ticket.as_deref())),
        ("approvers", a.group.clone()),
        ("reason", one_line(&a.reason)),
        ("created", a.created.clone()),
        ("expires", a.expires.clone()),
    ];
    if let Some(by) = &a.decided_by {
        fields.push(("decided by", by.clone()));
        fields.push(("decided at", dash(a.decided_at.as_deref())));
        fields.push(("comment", one_line(&dash(a.comment.as_deref()))));
    }
    print_fields(&fields);
}

impl ApprovalsCommand {
    async fn run(self) -> Result<ExitCode, Failure> {
        let client = client()?;
        match self {
            ApprovalsCommand::List { json } => {
                let approvals = api(client.approvals().await)?;
                if json {
                    return print_json(&idfed_api::ApprovalList { approvals });
                }
                if approvals.is_empty() {
                    println!("no approval requests");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = approvals
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.to_string(),
                            snake(&a.status),
                            a.requester.clone(),
                            a.connector.clone(),
                            a.group.clone(),
                            a.expires.clone(),
                            one_line(&dash(a.justification.as_deref())),
                        ]
                    })
                    .collect::<Vec<_>>();
                print_table(
                    &[
                        "ID",
                        "STATUS",
                        "REQUESTER",
                        "CONNECTOR",
                        "APPROVERS",
                        "EXPIRES",
                        "JUSTIFICATION",
                    ],
                    &rows,
                );
                Ok(ExitCode::SUCCESS)
            }
            ApprovalsCommand::Show { id, json } => {
                let approval = api(client.approval(&id).await)?;
                if json {
                    return print_json(&approval);
                }
                print_approval(&approval);
                Ok(ExitCode::SUCCESS)
            }
            ApprovalsCommand::Approve { id, comment } => {
                let approval = api(client.approve(&id, comment.as_deref()).await)?;
                println!(
                    "approved {}'s request {} (until {})",
                    approval.requester, approval.id, approval.expires
                );
                Ok(ExitCode::SUCCESS)
            }
            ApprovalsCommand::Deny { id, comment } => {
                let approval = api(client.deny(&id, comment.as_deref()).await)?;
                println!("denied {}'s request {}", approval.requester, approval.id);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// How often `creds --wait` asks whether the approval came.
const APPROVAL_POLL: Duration = Duration::from_secs(2);

/// `idfed creds`: prints the credentials; when a policy wants an approval, says so, and with `wait`
/// waits for it and asks again.
async fn creds(
    connector: &str,
    format: &str,
    duration: Option<u32>,
    why: &crate::client::Why,
    wait: bool,
) -> Result<ExitCode, Failure> {
    let request =
        crate::client::credentials_request(format, duration, why).map_err(|e| Failure(e.0))?;
    let client = client()?;
    loop {
        match client.credentials_text(connector, &request).await {
            Ok(text) => {
                let body = text.expose();
                print!("{body}");
                if !body.ends_with('\n') {
                    println!();
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(idfed_client::Error::ApprovalPending(approval)) => {
                eprintln!(
                    "idfed: a member of {:?} must approve this request first ({}): request {}, \
                     `idfed approvals approve {}`",
                    approval.group, approval.reason, approval.id, approval.id
                );
                if !wait {
                    return Err(Failure(format!(
                        "approval pending (request {}): run this again once it is approved, or add --wait",
                        approval.id
                    )));
                }
                wait_for_approval(&client, &approval.id.to_string()).await?;
            }
            Err(e) => return Err(Failure(e.to_string())),
        }
    }
}

/// Waits until the approval request `id` is decided; fails unless it was approved.
async fn wait_for_approval(client: &idfed_client::Client, id: &str) -> Result<(), Failure> {
    use idfed_api::ApprovalStatus;
    loop {
        tokio::time::sleep(APPROVAL_POLL).await;
        let approval = match client.approval(id).await {
            Ok(approval) => approval,
            // A moment's trouble reaching the server is waited out.
            Err(e) if e.is_transient() => continue,
            Err(e) => return Err(Failure(e.to_string())),
        };
        match approval.status {
            ApprovalStatus::Pending => continue,
            ApprovalStatus::Approved => {
                eprintln!(
                    "idfed: approved by {}{}",
                    dash(approval.decided_by.as_deref()),
                    approval
                        .comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                );
                return Ok(());
            }
            other => {
                return Err(Failure(format!(
                    "approval request {id} was {}{}",
                    snake(&other),
                    approval
                        .comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                )));
            }
        }
    }
}

/// `idfed whoami`.
async fn whoami(json: bool) -> Result<ExitCode, Failure> {
    let me = api(client()?.me().await)?;
    if json {
        return print_json(&me);
    }
    let mut fields = vec![("name", me.name.clone()), ("kind", me.kind.clone())];
    if let Some(groups) = &me.groups {
        fields.push(("groups", joined(groups)));
    }
    if let Some(admin) = me.is_admin {
        fields.push(("administrator", yes_no(admin)));
    }
    if let Some(id) = me.key_id {
        fields.push(("api key id", id.to_string()));
    }
    if let Some(issuer) = &me.issuer {
        fields.push(("issuer", issuer.clone()));
    }
    if let Some(connectors) = &me.connector_names {
        fields.push(("connectors", joined(connectors)));
    } else if let Some(connectors) = &me.connectors {
        let ids: Vec<String> = connectors.iter().map(ToString::to_string).collect();
        fields.push(("connectors", joined(&ids)));
    }
    print_fields(&fields);
    Ok(ExitCode::SUCCESS)
}

/// The client's answer, its failure as one line.
fn api<T>(result: Result<T, idfed_client::Error>) -> Result<T, Failure> {
    result.map_err(|e| Failure(e.to_string()))
}

async fn console_url(
    connector: &str,
    destination: Option<String>,
    duration_seconds: Option<u32>,
    why: crate::client::Why,
) -> Result<idfed_api::ConsoleUrlBody, Failure> {
    let request = idfed_api::ConsoleRequest {
        duration_seconds,
        destination,
        justification: why.justification,
        ticket: why.ticket,
    };
    api(client()?.console_url(connector, &request).await)
}

fn service_token_request(
    duration_seconds: Option<u32>,
    why: crate::client::Why,
) -> idfed_api::ServiceTokenRequest {
    idfed_api::ServiceTokenRequest {
        duration_seconds,
        justification: why.justification,
        ticket: why.ticket,
    }
}

async fn ecr_login(
    connector: &str,
    duration_seconds: Option<u32>,
    why: crate::client::Why,
) -> Result<idfed_api::EcrLogin, Failure> {
    let request = service_token_request(duration_seconds, why);
    api(client()?.ecr_login(connector, &request).await)
}

async fn codeartifact_token(
    connector: &str,
    domain: &str,
    domain_owner: Option<&str>,
    duration_seconds: Option<u32>,
    why: crate::client::Why,
) -> Result<idfed_api::CodeArtifactToken, Failure> {
    let request = service_token_request(duration_seconds, why);
    api(client()?
        .codeartifact_token(connector, domain, domain_owner, &request)
        .await)
}

/// Prints the server's answer as JSON.
fn print_json<T: serde::Serialize>(answer: &T) -> Result<ExitCode, Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(answer).expect("answers serialize")
    );
    Ok(ExitCode::SUCCESS)
}

/// A cell or a field: the text, `-` when there is none.
fn dash(text: Option<&str>) -> String {
    match text {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => "-".to_owned(),
    }
}

/// A list for a cell: comma-separated, `-` when empty.
fn joined(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// A unit enum as the API spells it (`plugin_denied`, `assumed-role`…).
fn snake<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => "-".to_owned(),
    }
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints `rows` under `header`, columns aligned (the last one unpadded).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        let cells: Vec<&str> = cells.collect();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out
    };
    println!("{}", line(&mut header.iter().copied()));
    for row in rows {
        println!("{}", line(&mut row.iter().map(String::as_str)));
    }
}

/// Prints `key: value` lines, keys aligned.
fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in fields {
        println!(
            "{key:width$}  {value}",
            key = format!("{key}:"),
            width = width + 1
        );
    }
}

/// A JSON file's document, as `T`.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Failure> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| at(path, format!("not valid: {e}")))
}

/// All of stdin, without its trailing line ending.
fn secret_from_stdin(what: &str) -> Result<Secret, Failure> {
    use std::io::Read;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Failure(format!("cannot read the {what} from stdin: {e}")))?;
    let secret = Secret::new(text.trim_end_matches(['\n', '\r']));
    drop(text);
    if secret.is_empty() {
        return Err(Failure(format!("the {what} read from stdin is empty")));
    }
    Ok(secret)
}

fn account_source(a: &idfed_api::admin::AccountBody) -> (&'static str, Option<&str>) {
    match &a.source {
        idfed_api::admin::AccountSource::IamUser { access_key_id, .. } => {
            ("iam-user", Some(access_key_id))
        }
        idfed_api::admin::AccountSource::HostCredentials => ("host-credentials", None),
    }
}

fn account_fields(a: &idfed_api::admin::AccountBody) -> Vec<(&'static str, String)> {
    let (source, access_key_id) = account_source(a);
    let mut fields = vec![
        ("name", dash(Some(&a.name))),
        ("description", dash(Some(&a.description))),
        ("source", source.to_owned()),
    ];
    if let Some(access_key_id) = access_key_id {
        fields.push(("access key id", access_key_id.to_owned()));
        // The server shows the secret as `***`; it is write-only.
        fields.push(("secret access key", "*** (write-only)".to_owned()));
    }
    fields.push(("region", dash(a.region.as_deref())));
    fields.push(("sts endpoint", dash(a.sts_endpoint.as_deref())));
    fields
}

impl AccountsCommand {
    async fn run(self, json: bool) -> Result<ExitCode, Failure> {
        let client = client()?;
        let admin = client.admin();
        match self {
            AccountsCommand::List => {
                let accounts = api(admin.accounts().await)?;
                if json {
                    return print_json(&idfed_api::admin::AccountList { accounts });
                }
                if accounts.is_empty() {
                    println!("no accounts");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = accounts
                    .iter()
                    .map(|a| {
                        let (source, access_key_id) = account_source(a);
                        vec![
                            a.name.clone(),
                            source.to_owned(),
                            dash(access_key_id),
                            dash(a.region.as_deref()),
                            dash(a.sts_endpoint.as_deref()),
                            one_line(&dash(Some(&a.description))),
                        ]
                    })
                    .collect::<Vec<_>>();
                print_table(
                    &[
                        "NAME",
                        "SOURCE",
                        "ACCESS KEY ID",
                        "REGION",
                        "STS ENDPOINT",
                        "DESCRIPTION",
                    ],
                    &rows,
                );
                Ok(ExitCode::SUCCESS)
            }
            AccountsCommand::Show { name } => {
                let account = api(admin.account(&name).await)?;
                if json {
                    return print_json(&account);
                }
                print_fields(&account_fields(&account));
                Ok(ExitCode::SUCCESS)
            }
            AccountsCommand::Put {
                name,
                access_key_id,
                secret_stdin,
                host_credentials,
                region,
                sts_endpoint,
                description,
            } => {
                let source = if host_credentials {
                    idfed_api::admin::AccountSource::HostCredentials
                } else {
                    let Some(access_key_id) = access_key_id else {
                        return Err(Failure(
                            "give --access-key-id (with --secret-stdin) or --host-credentials"
                                .into(),
                        ));
                    };
                    let secret_access_key = if secret_stdin {
                        Some(secret_from_stdin("secret access key")?.expose().to_owned())
                    } else {
                        None
                    };
                    idfed_api::admin::AccountSource::IamUser {
                        access_key_id,
                        secret_access_key,
                    }
                };
                let body = idfed_api::admin::AccountBody {
                    name: name.clone(),
                    description: description.unwrap_or_default(),
                    source,
                    region,
                    sts_endpoint,
                };
                let (account, _) = api(admin.put_account(&name, &body).await)?;
                if json {
                    return print_json(&account);
                }
                println!("saved account {}", account.name);
                print_fields(&account_fields(&account));
                Ok(ExitCode::SUCCESS)
            }
            AccountsCommand::Delete { name } => {
                api(admin.delete_account(&name).await)?;
                if !json {
                    println!("deleted account {name}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn print_connector(c: &idfed_api::admin::ConnectorDetail) {
    let mut fields = vec![
        ("name", c.name.clone()),
        (
            "id",
            c.id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
        ),
        ("description", dash(Some(&c.description))),
        ("account", c.account.clone()),
        ("principal", snake(&c.principal.principal_type())),
    ];
    if let Some(arn) = c.principal.role_arn() {
        fields.push(("role arn", arn.to_owned()));
    }
    let bindings = c.bindings.as_deref().unwrap_or_default();
    fields.extend([
        ("groups", joined(&c.groups)),
        ("system scope", c.system_scope.to_string()),
        ("enabled", c.enabled.to_string()),
        ("credential cache", c.credential_cache.to_string()),
        (
            "default duration",
            dash(c.default_duration_seconds.map(|s| s.to_string()).as_deref()),
        ),
        (
            "max duration",
            dash(c.max_duration_seconds.map(|s| s.to_string()).as_deref()),
        ),
        ("policy arns", joined(&c.policy_arns)),
        ("policy", one_line(&dash(c.policy.as_deref()))),
        (
            "bindings",
            joined(
                &bindings
                    .iter()
                    .map(|b| format!("{} (plugin {})", b.id, b.plugin))
                    .collect::<Vec<_>>(),
            ),
        ),
    ]);
    print_fields(&fields);
}

impl ConnectorsCommand {
    async fn run(self, json: bool) -> Result<ExitCode, Failure> {
        let client = client()?;
        let admin = client.admin();
        let (connector, done) = match self {
            ConnectorsCommand::List => {
                let connectors = api(admin.connectors().await)?;
                if json {
                    return print_json(&idfed_api::admin::ConnectorDetailList { connectors });
                }
                if connectors.is_empty() {
                    println!("no connectors");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = connectors
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            snake(&c.principal.principal_type()),
                            c.account.clone(),
                            joined(&c.groups),
                            yes_no(c.system_scope),
                            yes_no(c.enabled),
                            yes_no(c.credential_cache),
                            c.bindings.as_ref().map_or(0, Vec::len).to_string(),
                            c.id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
                        ]
                    })
                    .collect::<Vec<_>>();
                print_table(
                    &[
                        "NAME",
                        "PRINCIPAL",
                        "ACCOUNT",
                        "GROUPS",
                        "SYSTEM",
                        "ENABLED",
                        "CACHED",
                        "BINDINGS",
                        "ID",
                    ],
                    &rows,
                );
                return Ok(ExitCode::SUCCESS);
            }
            ConnectorsCommand::Show { connector } => {
                (api(admin.connector(&connector).await)?, None)
            }
            ConnectorsCommand::Create { file } => {
                let body = read_json(&file)?;
                (api(admin.create_connector(&body).await)?, Some("created"))
            }
            ConnectorsCommand::Update { connector, file } => {
                let body = read_json(&file)?;
                (
                    api(admin.replace_connector(&connector, &body, None).await)?,
                    Some("updated"),
                )
            }
            ConnectorsCommand::Delete { connector } => {
                api(admin.delete_connector(&connector).await)?;
                if !json {
                    println!("deleted connector {connector}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            ConnectorsCommand::FlushCache { connector } => {
                let flushed = api(admin.flush_cache(&connector).await)?;
                if json {
                    return print_json(&flushed);
                }
                println!(
                    "flushed the credential cache of connector {}: {} credential set(s) ended",
                    flushed.connector, flushed.flushed
                );
                return Ok(ExitCode::SUCCESS);
            }
        };
        if json {
            return print_json(&connector);
        }
        if let Some(done) = done {
            println!(
                "{done} connector {} ({})",
                connector.name,
                connector
                    .id
                    .map_or_else(|| "-".to_owned(), |id| id.to_string())
            );
        }
        print_connector(&connector);
        Ok(ExitCode::SUCCESS)
    }
}

impl PluginsCommand {
    async fn run(self, json: bool) -> Result<ExitCode, Failure> {
        let client = client()?;
        let admin = client.admin();
        match self {
            PluginsCommand::Upload { file, name } => {
                if let Some(name) = &name {
                    crate::store::check_name("plugin", name).map_err(|e| Failure(e.to_string()))?;
                }
                let wasm = read(&file)?;
                let (plugin, _) = api(admin.upload_plugin(&wasm, name.as_deref()).await)?;
                if json {
                    return print_json(&plugin);
                }
                println!(
                    "uploaded {}: plugin {} ({} bytes)",
                    file.display(),
                    plugin.digest,
                    plugin.size
                );
                Ok(ExitCode::SUCCESS)
            }
            PluginsCommand::List => {
                let plugins = api(admin.plugins().await)?;
                if json {
                    return print_json(&idfed_api::admin::PluginList { plugins });
                }
                if plugins.is_empty() {
                    println!("no plugins");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = plugins
                    .iter()
                    .map(|p| {
                        let bound = p
                            .bindings
                            .iter()
                            .flatten()
                            .map(|b| format!("{}/{}", b.connector, b.binding))
                            .collect::<Vec<_>>();
                        vec![
                            dash(p.name.as_deref()),
                            p.digest.clone(),
                            p.size.to_string(),
                            dash(p.stored.as_deref()),
                            if bound.is_empty() {
                                "-".to_owned()
                            } else {
                                bound.join(", ")
                            },
                        ]
                    })
                    .collect::<Vec<_>>();
                print_table(&["NAME", "DIGEST", "SIZE", "STORED", "BOUND TO"], &rows);
                Ok(ExitCode::SUCCESS)
            }
            PluginsCommand::Delete { digest } => {
                api(admin.delete_plugin(&digest).await)?;
                if !json {
                    println!("deleted plugin {digest}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

impl BindingsCommand {
    async fn run(self, json: bool) -> Result<ExitCode, Failure> {
        let client = client()?;
        let admin = client.admin();
        match self {
            BindingsCommand::List { connector } => {
                let list = api(admin.bindings(&connector).await)?;
                if json {
                    return print_json(&list);
                }
                if list.bindings.is_empty() {
                    println!("connector {} has no bindings", list.connector);
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = list
                    .bindings
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        vec![
                            i.to_string(),
                            b.id.clone(),
                            b.plugin.clone(),
                            b.limits.map_or_else(
                                || "-".to_owned(),
                                |l| serde_json::to_string(&l).expect("limits serialize"),
                            ),
                            serde_json::to_string(&b.tag_keys).expect("keys serialize"),
                            b.config.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                print_table(
                    &["POSITION", "ID", "PLUGIN", "LIMITS", "TAG KEYS", "CONFIG"],
                    &rows,
                );
                Ok(ExitCode::SUCCESS)
            }
            BindingsCommand::Add {
                connector,
                plugin,
                config,
                position,
                tag_keys,
            } => {
                let binding = idfed_api::admin::BindingInput {
                    plugin,
                    config: config.as_deref().map(read_json).transpose()?,
                    position,
                    limits: None,
                    tag_keys,
                };
                let bound = api(admin.bind(&connector, &binding).await)?;
                if json {
                    return print_json(&bound);
                }
                println!(
                    "bound plugin {} to connector {connector} at position {} as binding {}",
                    bound.plugin,
                    dash(bound.position.map(|p| p.to_string()).as_deref()),
                    bound.id
                );
                Ok(ExitCode::SUCCESS)
            }
            BindingsCommand::Remove {
                connector,
                binding_id,
            } => {
                api(admin.unbind(&connector, &binding_id).await)?;
                if !json {
                    println!("removed binding {binding_id} from connector {connector}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn key_connectors(key: &idfed_api::admin::ApiKeyBody) -> String {
    let names: Vec<String> = key
        .connectors
        .iter()
        .map(|c| c.name.clone().unwrap_or_else(|| c.id.to_string()))
        .collect();
    joined(&names)
}

impl KeysCommand {
    async fn run(self, json: bool) -> Result<ExitCode, Failure> {
        let client = client()?;
        let admin = client.admin();
        match self {
            KeysCommand::Create {
                name,
                connectors,
                expires,
            } => {
                let input = idfed_api::admin::ApiKeyInput {
                    name,
                    connectors,
                    expires,
                };
                let key = api(admin.create_api_key(&input).await)?;
                if json {
                    return print_json(&key);
                }
                eprintln!(
                    "created API key {} ({}) for connector(s) {}{}; the key is shown only now:",
                    key.name,
                    key.id,
                    key_connectors(&key),
                    key.expires
                        .as_deref()
                        .map(|at| format!(", expiring {at}"))
                        .unwrap_or_default()
                );
                println!("{}", dash(key.key.as_deref()));
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::List => {
                let keys = api(admin.api_keys().await)?;
                if json {
                    return print_json(&idfed_api::admin::ApiKeyList { api_keys: keys });
                }
                if keys.is_empty() {
                    println!("no API keys");
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = keys
                    .iter()
                    .map(|k| {
                        let expires = dash(k.expires.as_deref());
                        vec![
                            k.id.to_string(),
                            k.name.clone(),
                            key_connectors(k),
                            k.created.clone(),
                            if k.expired {
                                format!("{expires} (expired)")
                            } else {
                                expires
                            },
                            dash(k.last_used.as_deref()),
                        ]
                    })
                    .collect::<Vec<_>>();
                print_table(
                    &[
                        "ID",
                        "NAME",
                        "CONNECTORS",
                        "CREATED",
                        "EXPIRES",
                        "LAST USED",
                    ],
                    &rows,
                );
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Delete { id } => {
                api(admin.revoke_api_key(&id).await)?;
                if !json {
                    println!("deleted API key {id}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

impl AuditCommand {
    fn run(self) -> Result<ExitCode, Failure> {
        let open = |data: &DataDir, retention| -> Result<(DataStore, AuditLog), Failure> {
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

/// Prints a plugin fault as `plugin eval` reports it; exit status 3.
fn print_fault(stage: &str, fault: &PluginFault, elapsed: Duration) -> Result<ExitCode, Failure> {
    let json = serde_json::json!({
        "decision": "fault",
        "stage": stage,
        "code": fault.code(),
        "message": fault.to_string(),
        "elapsed_us": elapsed.as_micros() as u64,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&json).expect("JSON values serialize")
    );
    Ok(ExitCode::from(3))
}

/// A runtime for one command, compiling into `cache` (see [`CompileCacheArgs`]) when given, with a
/// throwaway key-value store.
fn scratch_runtime(cache: Option<&cap_std::fs::Dir>) -> Result<PluginRuntime, Failure> {
    let db = crate::store::Db::Sled(
        sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| Failure(format!("temporary store: {e}")))?,
    );
    let kv = KvStore::new(
        db.open_tree("plugin-kv")
            .map_err(|e| Failure(format!("temporary store: {e}")))?,
    );
    PluginRuntime::new(RuntimeConfig::default(), cache, kv)
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
        crate::api::AppState::new(service.clone(), crate::api::ApiLimits::from(&config.server))
            .with_web(config.web.clone())
            .with_trusted_proxies(config.server.trusted_proxies.clone())
            .with_service_endpoints(&config.endpoints, config.sts.region.clone())
            .with_metrics_token(
                config
                    .server
                    .metrics_token()
                    .map_err(|e| Failure(e.to_string()))?,
            );
    // Cached credentials too old to be handed out are dropped (and zeroed) once a minute.
    let sweeper = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                service.vendor.cache().sweep(std::time::SystemTime::now());
            }
        })
    };
    let served = crate::api::serve(listener, tls, state, crate::api::shutdown_signal()).await;
    sweeper.abort();
    service.vendor.cache().flush_all();
    let flushed = service.shutdown();
    served.map_err(|e| Failure(format!("server: {e}")))?;
    flushed.map_err(|e| Failure(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn a_database_url_given_on_the_command_line_is_not_shown_by_debug() {
        for args in [
            &[
                "idfed",
                "audit",
                "verify",
                "--database-url",
                "postgres://idfed:hunter2@db/idfed",
            ][..],
            &[
                "idfed",
                "admin",
                "migrate-store",
                "--from-data-dir",
                "/tmp/x",
                "--to",
                "postgres://idfed:hunter2@db/idfed",
            ][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let shown = format!("{cli:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("Secret(***)"), "{shown}");
        }
    }
}
