//! The command line's client side: logging in to an idfed server, keeping the session token in the
//! user's config folder (mode 0600), fetching credentials in the formats AWS tools read, and generic JSON
//! calls to the API ([`get`], [`post`], [`put`], [`delete`], [`post_bytes`]) for the `idfed admin …`
//! commands.
//!
//! Every call goes to the server [`connection`] names: with a system-scope API key (from `IDFED_API_KEY`,
//! or the file [`Settings::api_key_file`] names) or a CI job's OIDC token (`IDFED_WORKLOAD_TOKEN`, or the
//! file [`Settings::workload_token_file`] names) to [`Settings::server`], for software with no person
//! logged in (a CI job, a task runner); else with the session `idfed login` kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// A failure to show the user in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// The session kept between commands.
#[derive(Serialize, Deserialize)]
pub struct SavedSession {
    /// The server's base URL.
    pub server: String,
    /// The session token (kept only in the 0600 session file).
    pub token: String,
    /// Who logged in.
    pub user: String,
    /// A PEM file of CA certificates to trust for this server, if any.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SavedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedSession")
            .field("server", &self.server)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Where the session is kept: `$IDFED_CONFIG_DIR`, else `$XDG_CONFIG_HOME/idfed`, else `~/.config/idfed`.
pub fn config_dir() -> Result<PathBuf, ClientError> {
    if let Some(dir) = std::env::var_os("IDFED_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("idfed"));
    }
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".config").join("idfed"))
        .ok_or_else(|| {
            ClientError("cannot find a config folder: set IDFED_CONFIG_DIR or HOME".into())
        })
}

/// What the command line says about where to connect (its global options and their variables), set once
/// by the command line before any call ([`configure`]).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The server (`--server`, `IDFED_SERVER`): needed with an API key; with a kept session, it must be
    /// that session's server.
    pub server: Option<String>,
    /// A file holding a system-scope API key (`--api-key-file`, `IDFED_API_KEY_FILE`);
    /// `IDFED_API_KEY` holds the key itself and wins.
    pub api_key_file: Option<PathBuf>,
    /// A file holding a workload's OIDC ID token (`--workload-token-file`, `IDFED_WORKLOAD_TOKEN_FILE`),
    /// read for every call; `IDFED_WORKLOAD_TOKEN` holds the token itself and wins.
    pub workload_token_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for the server (`--ca-file`, `IDFED_CA_FILE`).
    pub ca_file: Option<PathBuf>,
}

static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();

/// Sets where the calls of this process go (once; later calls change nothing).
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

fn settings() -> Settings {
    SETTINGS.get().cloned().unwrap_or_default()
}

/// Where calls go, and how they authenticate.
pub struct Connection {
    /// The server's base URL.
    pub server: String,
    /// The bearer token: an API key, a workload token or a session token.
    token: Secret,
    /// CA certificates to trust for the server, if any.
    pub ca_file: Option<PathBuf>,
}

/// The environment variable holding a system-scope API key itself.
pub const API_KEY_VARIABLE: &str = "IDFED_API_KEY";
/// The environment variable holding a workload's OIDC ID token itself.
pub const WORKLOAD_TOKEN_VARIABLE: &str = "IDFED_WORKLOAD_TOKEN";

/// A token from the variable `variable`, else from `file`; `what` names it in errors.
fn token_from(
    variable: &str,
    file: Option<&Path>,
    what: &str,
) -> Result<Option<Secret>, ClientError> {
    if let Ok(token) = std::env::var(variable)
        && !token.trim().is_empty()
    {
        return Ok(Some(Secret::new(token.trim())));
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let text = Secret::new(
        std::fs::read_to_string(file)
            .map_err(|e| ClientError(format!("the {what} file {}: {e}", file.display())))?,
    );
    let token = text.expose().trim();
    if token.is_empty() {
        return Err(ClientError(format!(
            "the {what} file {} is empty",
            file.display()
        )));
    }
    Ok(Some(Secret::new(token)))
}

/// Where calls go: an API key (`IDFED_API_KEY`, or [`Settings::api_key_file`]) or else a workload token
/// (`IDFED_WORKLOAD_TOKEN`, or [`Settings::workload_token_file`]) to [`Settings::server`], else the kept
/// session.
pub fn connection() -> Result<Connection, ClientError> {
    let settings = settings();
    let key = match token_from(
        API_KEY_VARIABLE,
        settings.api_key_file.as_deref(),
        "API key",
    )? {
        Some(key) => Some((key, "an API key")),
        None => token_from(
            WORKLOAD_TOKEN_VARIABLE,
            settings.workload_token_file.as_deref(),
            "workload token",
        )?
        .map(|token| (token, "a workload token")),
    };
    if let Some((token, what)) = key {
        let server = settings.server.ok_or_else(|| {
            ClientError(format!(
                "{what} needs the server: --server URL or IDFED_SERVER=URL"
            ))
        })?;
        return Ok(Connection {
            server: server.trim_end_matches('/').to_owned(),
            token,
            ca_file: settings.ca_file,
        });
    }
    let session = saved_session()?;
    if let Some(server) = &settings.server
        && server.trim_end_matches('/') != session.server
    {
        return Err(ClientError(format!(
            "the kept session is for {}, not {server}: run `idfed login --server {server}`, or \
             give an API key",
            session.server
        )));
    }
    Ok(Connection {
        server: session.server,
        token: Secret::new(session.token),
        ca_file: settings.ca_file.or(session.ca_file),
    })
}

impl Connection {
    /// The typed client of the server, calling with the connection's token.
    pub fn client(&self) -> Result<idfed_client::Client, ClientError> {
        let mut builder = idfed_client::Client::builder(&self.server)
            .bearer(self.token.expose())
            .user_agent(concat!("idfed/", env!("CARGO_PKG_VERSION")));
        if let Some(file) = &self.ca_file {
            builder = builder.ca_file(file);
        }
        Ok(builder.build()?)
    }
}

impl From<idfed_client::Error> for ClientError {
    fn from(e: idfed_client::Error) -> Self {
        ClientError(e.to_string())
    }
}

/// The typed client of the server [`connection`] names.
pub fn client() -> Result<idfed_client::Client, ClientError> {
    connection()?.client()
}

fn session_path() -> Result<PathBuf, ClientError> {
    Ok(config_dir()?.join("session.json"))
}

/// Logs in with a password and keeps the session.
pub async fn login(
    server: &str,
    user: &str,
    password: &Secret,
    ca_file: Option<PathBuf>,
) -> Result<SavedSession, ClientError> {
    let mut builder = idfed_client::Client::builder(server)
        .user_agent(concat!("idfed/", env!("CARGO_PKG_VERSION")));
    if let Some(file) = &ca_file {
        builder = builder.ca_file(file);
    }
    let client = builder.build()?;
    let answer = client.login_response(user, password.expose()).await?;
    let session = SavedSession {
        server: client.server().to_owned(),
        token: answer.token.clone(),
        user: user.to_owned(),
        ca_file,
    };
    save(&session)?;
    Ok(session)
}

/// The kept session.
pub fn saved_session() -> Result<SavedSession, ClientError> {
    let path = session_path()?;
    let text = std::fs::read_to_string(&path).map_err(|_| {
        ClientError(format!(
            "not logged in (no {}): run `idfed login`",
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError(format!("{}: {e}; run `idfed login` again", path.display())))
}

fn save(session: &SavedSession) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = session_path()?;
    let dir = path.parent().expect("the session file is in a folder");
    std::fs::create_dir_all(dir).map_err(|e| ClientError(format!("{}: {e}", dir.display())))?;
    let temporary = dir.join(format!(".session.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(
            serde_json::to_string(session)
                .expect("sessions serialize")
                .as_bytes(),
        )?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        ClientError(format!("{}: {e}", path.display()))
    })
}

/// Ends the kept session on the server (best effort) and removes it here.
pub async fn logout() -> Result<(), ClientError> {
    let session = saved_session()?;
    let client = Connection {
        server: session.server.clone(),
        token: Secret::new(session.token.as_str()),
        ca_file: session.ca_file.clone(),
    }
    .client()?;
    let _ = client.logout().await;
    std::fs::remove_file(session_path()?).map_err(|e| ClientError(e.to_string()))
}

/// Why credentials are asked for (`--reason`, `--ticket`): passed to the connector's policy plugins and
/// kept in the audit record.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Why {
    /// Why you need the access (free text, at most 1,024 bytes): the connector's policy plugins see it, and
    /// the audit log keeps it.
    #[arg(long = "reason", value_name = "TEXT")]
    pub justification: Option<String>,
    /// A ticket or change reference (e.g. OPS-1234), for plugins and the audit log.
    #[arg(long, value_name = "REFERENCE")]
    pub ticket: Option<String>,
}

/// The request for credentials in `format` (`credential_process`, `json`, `env` or `ini`).
pub fn credentials_request(
    format: &str,
    duration_seconds: Option<u32>,
    why: &Why,
) -> Result<idfed_api::CredentialsRequest, ClientError> {
    let format: idfed_api::Format = serde_json::from_value(serde_json::Value::from(format))
        .map_err(|_| {
            ClientError(format!(
                "unknown format {format:?}: json, credential_process, env or ini"
            ))
        })?;
    Ok(idfed_api::CredentialsRequest {
        duration_seconds,
        format,
        justification: why.justification.clone(),
        ticket: why.ticket.clone(),
        ..Default::default()
    })
}

/// Fetches credentials from `connector` in `format` (`credential_process`, `json`, `env` or `ini`); the
/// server's answer as it is, ready to print.
pub async fn credentials(
    connector: &str,
    format: &str,
    duration_seconds: Option<u32>,
    why: &Why,
) -> Result<String, ClientError> {
    let request = credentials_request(format, duration_seconds, why)?;
    let text = client()?.credentials_text(connector, &request).await?;
    Ok(text.expose().to_owned())
}

/// Percent-encodes a name, id or query value for a URL (everything but RFC 3986's unreserved characters).
pub use crate::percent::component as path_segment;
