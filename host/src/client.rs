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
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        Ok(client(self.ca_file.as_deref())?
            .request(method, format!("{}/api/v1{path}", self.server))
            .bearer_auth(self.token.expose()))
    }
}

fn session_path() -> Result<PathBuf, ClientError> {
    Ok(config_dir()?.join("session.json"))
}

fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
    if let Some(file) = ca_file {
        let pem =
            std::fs::read(file).map_err(|e| ClientError(format!("{}: {e}", file.display())))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| ClientError(format!("{}: not a PEM certificate: {e}", file.display())))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|e| ClientError(format!("cannot set up HTTPS: {e}")))
}

/// Turns an idfed error answer (`{"error": {"code", "message"}}`) into one line.
async fn failure(response: reqwest::Response) -> ClientError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    match serde_json::from_str::<crate::api::openapi::ErrorBody>(&body) {
        Ok(crate::api::openapi::ErrorBody { error }) => {
            // One line, whatever the message holds.
            let message = error
                .message
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            ClientError(format!("{message} ({})", error.code))
        }
        Err(_) => ClientError(format!("the server answered {status}")),
    }
}

fn unreachable(server: &str, e: reqwest::Error) -> ClientError {
    // reqwest's message can carry the URL, never a token (tokens travel in headers).
    ClientError(format!("cannot reach {server}: {}", e.without_url()))
}

/// Logs in with a password and keeps the session.
pub async fn login(
    server: &str,
    user: &str,
    password: &Secret,
    ca_file: Option<PathBuf>,
) -> Result<SavedSession, ClientError> {
    let server = server.trim_end_matches('/').to_owned();
    let body = serde_json::json!({"username": user, "password": password.expose()}).to_string();
    let response = client(ca_file.as_deref())?
        .post(format!("{server}/api/v1/login"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| unreachable(&server, e))?;
    if !response.status().is_success() {
        return Err(failure(response).await);
    }
    let answer: crate::api::LoginResponse =
        serde_json::from_str(&response.text().await.map_err(|e| unreachable(&server, e))?)
            .map_err(|e| ClientError(format!("unexpected answer from {server}: {e}")))?;
    let session = SavedSession {
        server,
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

/// Ends the kept session on the server and removes it here.
pub async fn logout() -> Result<(), ClientError> {
    let session = saved_session()?;
    let _ = client(session.ca_file.as_deref())?
        .post(format!("{}/api/v1/logout", session.server))
        .bearer_auth(&session.token)
        .send()
        .await;
    std::fs::remove_file(session_path()?).map_err(|e| ClientError(e.to_string()))
}

/// Fetches credentials from `connector` in `format` (`credential_process`, `json`, `env` or `ini`); the
/// server's answer as it is, ready to print.
pub async fn credentials(
    connector: &str,
    format: &str,
    duration_seconds: Option<u32>,
) -> Result<String, ClientError> {
    let session = connection()?;
    let mut body = serde_json::json!({"format": format});
    if let Some(seconds) = duration_seconds {
        body["duration_seconds"] = seconds.into();
    }
    let response = session
        .request(
            reqwest::Method::POST,
            &format!("/connectors/{}/credentials", path_segment(connector)),
        )?
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| unreachable(&session.server, e))?;
    if !response.status().is_success() {
        return Err(failure(response).await);
    }
    response
        .text()
        .await
        .map_err(|e| unreachable(&session.server, e))
}

/// Percent-encodes a name, id or query value for a URL (everything but RFC 3986's unreserved characters).
pub use crate::percent::component as path_segment;

/// A console sign-in URL and when AWS stops accepting it.
pub use crate::api::console::ConsoleUrlBody as ConsoleUrl;

/// Asks the server for an AWS console sign-in URL for `connector`, opening at `destination` (the server's
/// default when `None`).
pub async fn console_url(
    connector: &str,
    destination: Option<&str>,
    duration_seconds: Option<u32>,
) -> Result<ConsoleUrl, ClientError> {
    let session = connection()?;
    let mut body = serde_json::json!({});
    if let Some(destination) = destination {
        body["destination"] = destination.into();
    }
    if let Some(seconds) = duration_seconds {
        body["duration_seconds"] = seconds.into();
    }
    let response = session
        .request(
            reqwest::Method::POST,
            &format!("/connectors/{}/console-url", path_segment(connector)),
        )?
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| unreachable(&session.server, e))?;
    if !response.status().is_success() {
        return Err(failure(response).await);
    }
    let text = response
        .text()
        .await
        .map_err(|e| unreachable(&session.server, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError(format!("unexpected answer from {}: {e}", session.server)))
}

/// Asks the server for an ECR registry login with `connector`'s credentials.
pub async fn ecr_login(
    connector: &str,
    duration_seconds: Option<u32>,
) -> Result<crate::api::service_tokens::EcrLogin, ClientError> {
    let mut body = serde_json::json!({});
    if let Some(seconds) = duration_seconds {
        body["duration_seconds"] = seconds.into();
    }
    let answer = post(
        &format!("/connectors/{}/ecr-login", path_segment(connector)),
        body,
    )
    .await?;
    serde_json::from_value(answer)
        .map_err(|e| ClientError(format!("unexpected answer to ecr-login: {e}")))
}

/// Asks the server for a CodeArtifact token for `domain` (owned by `domain_owner`, else the credentials'
/// account) with `connector`'s credentials.
pub async fn codeartifact_token(
    connector: &str,
    domain: &str,
    domain_owner: Option<&str>,
    duration_seconds: Option<u32>,
) -> Result<crate::api::service_tokens::CodeArtifactToken, ClientError> {
    let mut body = serde_json::json!({});
    if let Some(seconds) = duration_seconds {
        body["duration_seconds"] = seconds.into();
    }
    let mut path = format!(
        "/connectors/{}/codeartifact-token?domain={}",
        path_segment(connector),
        path_segment(domain)
    );
    if let Some(owner) = domain_owner {
        path.push_str(&format!("&domain-owner={}", path_segment(owner)));
    }
    let answer = post(&path, body).await?;
    serde_json::from_value(answer)
        .map_err(|e| ClientError(format!("unexpected answer to codeartifact-token: {e}")))
}

/// A request body for [`call`].
#[derive(Debug)]
pub enum Body {
    /// A JSON document.
    Json(serde_json::Value),
    /// Raw bytes of a content type (a plugin component: `application/wasm`).
    Bytes {
        /// The `Content-Type`.
        content_type: &'static str,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// Calls `path` (relative to `/api/v1`, its segments already encoded with [`path_segment`]) on the
/// [`connection`]'s server with its bearer token. The answer's JSON, `Null` when there is none (204); a failure
/// is the server's error in one line.
pub async fn call(
    method: reqwest::Method,
    path: &str,
    body: Option<Body>,
) -> Result<serde_json::Value, ClientError> {
    let session = connection()?;
    let mut request = session.request(method, path)?;
    match body {
        None => {}
        Some(Body::Json(value)) => {
            request = request
                .header("content-type", "application/json")
                .body(value.to_string());
        }
        Some(Body::Bytes {
            content_type,
            bytes,
        }) => {
            request = request.header("content-type", content_type).body(bytes);
        }
    }
    let response = request
        .send()
        .await
        .map_err(|e| unreachable(&session.server, e))?;
    if !response.status().is_success() {
        return Err(failure(response).await);
    }
    let text = response
        .text()
        .await
        .map_err(|e| unreachable(&session.server, e))?;
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(&text)
        .map_err(|e| ClientError(format!("unexpected answer from {}: {e}", session.server)))
}

/// `GET path` (see [`call`]).
pub async fn get(path: &str) -> Result<serde_json::Value, ClientError> {
    call(reqwest::Method::GET, path, None).await
}

/// `POST path` with a JSON body (see [`call`]).
pub async fn post(path: &str, body: serde_json::Value) -> Result<serde_json::Value, ClientError> {
    call(reqwest::Method::POST, path, Some(Body::Json(body))).await
}

/// `POST path` with raw bytes (see [`call`]).
pub async fn post_bytes(
    path: &str,
    content_type: &'static str,
    bytes: Vec<u8>,
) -> Result<serde_json::Value, ClientError> {
    call(
        reqwest::Method::POST,
        path,
        Some(Body::Bytes {
            content_type,
            bytes,
        }),
    )
    .await
}

/// `PUT path` with a JSON body (see [`call`]).
pub async fn put(path: &str, body: serde_json::Value) -> Result<serde_json::Value, ClientError> {
    call(reqwest::Method::PUT, path, Some(Body::Json(body))).await
}

/// `DELETE path` (see [`call`]).
pub async fn delete(path: &str) -> Result<serde_json::Value, ClientError> {
    call(reqwest::Method::DELETE, path, None).await
}
