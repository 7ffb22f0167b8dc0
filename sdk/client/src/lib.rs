//! A typed async client for idfed's HTTP API, on the wire types of [`idfed_api`] (re-exported here as
//! [`api`]): what the server writes is what this crate reads, field by field.
//!
//! A [`Client`] talks to one server as one caller: a person's session (from [`Client::login`]), a
//! system-scope API key, or a CI job's OIDC ID token ([`ClientBuilder::bearer_file`] reads it again for
//! every call, so a rotated token is picked up). Every call answers a typed value or an [`Error`], whose
//! [`Error::Api`] carries idfed's stable [`ErrorCode`].
//!
//! ```no_run
//! use idfed_client::{Client, CredentialsRequest, ErrorCode};
//!
//! # async fn run() -> Result<(), idfed_client::Error> {
//! // A task runner with a system-scope API key.
//! let client = Client::builder("https://idfed.example.com")
//!     .bearer(std::env::var("IDFED_API_KEY").unwrap_or_default())
//!     .build()?;
//! match client.credentials("deploy-prod", &CredentialsRequest::default()).await {
//!     Ok(credentials) => println!("{} until {}", credentials.access_key_id, credentials.expiration),
//!     Err(e) if e.code() == Some(&ErrorCode::PluginDenied) => eprintln!("a policy said no: {e}"),
//!     Err(e) => return Err(e),
//! }
//!
//! // A person: log in, then call as them.
//! let session = Client::new("https://idfed.example.com")?.login("alice", "s3cret").await?;
//! for connector in session.connectors().await? {
//!     println!("{} ({:?})", connector.name, connector.principal_type);
//! }
//! # Ok(()) }
//! ```
//!
//! A vend a policy wants approved first fails with [`Error::ApprovalPending`] (the server's `202`): once a
//! member of its group approved it ([`Client::approval`] polls it; [`Client::approve`] is the approver's
//! side), the same request again succeeds once.
//!
//! Secrets in answers (credentials, tokens, API keys) are zeroed when dropped and have no `Debug`; so is
//! the token a client holds.

mod admin;
mod error;

use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::{Zeroize, Zeroizing};

pub use admin::{Admin, Written};
pub use error::Error;
/// The wire types, as the server defines them.
pub use idfed_api as api;
pub use idfed_api::{
    CallerIdentityBody, CodeArtifactToken, ConnectorBody, ConsoleRequest, ConsoleUrlBody,
    ContainerCredentials, CredentialsBody, CredentialsRequest, EcrLogin, ErrorCode, Format,
    IdentityBody, LoginResponse, PrincipalType, ServiceTokenRequest,
};

/// What a [`Client`] waits for an answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything but RFC 3986's unreserved characters is encoded in a path segment or a query value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a connector's name, an id or a query value for a URL.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Text that holds a secret (credentials in `env`, `ini` or `credential_process` form): zeroed when
/// dropped; no `Debug`, no `Display`.
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    /// The text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Who the calls are made as.
#[derive(Clone)]
enum Bearer {
    None,
    Token(Zeroizing<String>),
    /// Read again for every call (a CI job's token file is rewritten as the token rotates).
    File(PathBuf),
}

/// Sets up a [`Client`].
pub struct ClientBuilder {
    server: String,
    bearer: Bearer,
    ca_pem: Vec<Vec<u8>>,
    ca_files: Vec<PathBuf>,
    timeout: Duration,
    user_agent: String,
}

impl ClientBuilder {
    /// Calls as the holder of `token`: a session token, a system-scope API key or a workload's OIDC ID
    /// token (all go as `Authorization: Bearer`). An empty token means no caller.
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        let token = Zeroizing::new(token.into());
        self.bearer = if token.trim().is_empty() {
            Bearer::None
        } else {
            Bearer::Token(Zeroizing::new(token.trim().to_owned()))
        };
        self
    }

    /// Calls as the holder of the token in `file`, read again for every call.
    pub fn bearer_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.bearer = Bearer::File(file.into());
        self
    }

    /// Trusts the CA certificates in this PEM text for the server, besides the system's.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem.push(pem.into());
        self
    }

    /// Trusts the CA certificates in this PEM file for the server, besides the system's.
    pub fn ca_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.ca_files.push(file.into());
        self
    }

    /// How long a call may take in all ([`DEFAULT_TIMEOUT`] if not set).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `User-Agent` (shown in idfed's audit log); `idfed-client/<version>` if not set.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client, Error> {
        let server = self.server.trim().trim_end_matches('/').to_owned();
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(Error::Config(format!(
                "the server must be an http:// or https:// URL, not {server:?}"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(self.user_agent);
        let mut pems = self.ca_pem;
        for file in &self.ca_files {
            pems.push(
                std::fs::read(file)
                    .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?,
            );
        }
        for pem in pems {
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Config(format!("not PEM certificates: {e}")))?;
            if certificates.is_empty() {
                return Err(Error::Config("no PEM certificate in the CA file".into()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(Client {
            http,
            server,
            bearer: self.bearer,
        })
    }
}

/// A connection to one idfed server, as one caller. Cheap to clone (clones share their connections).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    bearer: Bearer,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// A request body.
enum Body<'a> {
    None,
    Json(Vec<u8>),
    Bytes(&'static str, &'a [u8]),
}

/// An answer that was not an error.
struct Answer {
    status: u16,
    body: Zeroizing<Vec<u8>>,
}

impl Client {
    /// A client of `server` (its base URL, e.g. `https://idfed.example.com`) with no caller yet: for
    /// [`Client::login`] and the health checks.
    pub fn new(server: &str) -> Result<Client, Error> {
        Client::builder(server).build()
    }

    /// Sets up a client of `server`.
    pub fn builder(server: &str) -> ClientBuilder {
        ClientBuilder {
            server: server.to_owned(),
            bearer: Bearer::None,
            ca_pem: Vec::new(),
            ca_files: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            user_agent: concat!("idfed-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// The same server and settings, calling as the holder of `token`.
    pub fn with_bearer(&self, token: impl Into<String>) -> Client {
        let token = Zeroizing::new(token.into());
        let bearer = if token.trim().is_empty() {
            Bearer::None
        } else {
            Bearer::Token(Zeroizing::new(token.trim().to_owned()))
        };
        Client {
            http: self.http.clone(),
            server: self.server.clone(),
            bearer,
        }
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The administrator's calls (`/admin/…`): the caller must be an administrator.
    pub fn admin(&self) -> Admin<'_> {
        Admin::new(self)
    }

    fn token(&self) -> Result<Option<Zeroizing<String>>, Error> {
        match &self.bearer {
            Bearer::None => Ok(None),
            Bearer::Token(token) => Ok(Some(token.clone())),
            Bearer::File(file) => {
                let mut text = std::fs::read_to_string(file).map_err(|e| {
                    Error::Config(format!("the token file {}: {e}", file.display()))
                })?;
                let token = Zeroizing::new(text.trim().to_owned());
                text.zeroize();
                if token.is_empty() {
                    return Err(Error::Config(format!(
                        "the token file {} is empty",
                        file.display()
                    )));
                }
                Ok(Some(token))
            }
        }
    }

    /// Sends a request to `path` (under `/api/v1` unless it starts with `//`, e.g. `//healthz`; its
    /// segments already encoded), with the caller's token in `Authorization` (`Bearer` unless `raw`).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
        headers: &[(&str, &str)],
        raw: bool,
    ) -> Result<Answer, Error> {
        let url = match path.strip_prefix("//") {
            Some(root) => format!("{}/{root}", self.server),
            None => format!("{}/api/v1{path}", self.server),
        };
        let mut request = self.http.request(method, url);
        if let Some(token) = self.token()? {
            request = if raw {
                request.header(reqwest::header::AUTHORIZATION, token.as_str())
            } else {
                request.bearer_auth(token.as_str())
            };
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request = match body {
            Body::None => request,
            Body::Json(bytes) => request
                .header("content-type", "application/json")
                .body(bytes),
            Body::Bytes(content_type, bytes) => request
                .header("content-type", content_type)
                .body(bytes.to_vec()),
        };
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = Zeroizing::new(
            response
                .bytes()
                .await
                .map_err(|e| self.unreachable(e))?
                .to_vec(),
        );
        if status >= 400 {
            return Err(Error::from_answer(&self.server, status, retry_after, &body));
        }
        if status == 202 {
            let pending: api::ApprovalPending =
                serde_json::from_slice(&body).map_err(|e| Error::Decode {
                    server: self.server.clone(),
                    message: format!("a 202 that is not an approval request: {e}"),
                })?;
            return Err(Error::ApprovalPending(Box::new(pending.approval)));
        }
        Ok(Answer { status, body })
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        // reqwest's message may carry the URL, never a token (tokens travel in headers).
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::Unreachable {
            server: self.server.clone(),
            message,
        }
    }

    fn decode<T: DeserializeOwned>(&self, answer: &Answer) -> Result<T, Error> {
        serde_json::from_slice(&answer.body).map_err(|e| Error::Decode {
            server: self.server.clone(),
            message: e.to_string(),
        })
    }

    fn json<B: Serialize + ?Sized>(body: &B) -> Body<'static> {
        Body::Json(serde_json::to_vec(body).expect("wire types serialize"))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let answer = self.send(Method::GET, path, Body::None, &[], false).await?;
        self.decode(&answer)
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let answer = self
            .send(Method::POST, path, Self::json(body), &[], false)
            .await?;
        self.decode(&answer)
    }

    async fn delete(&self, path: &str) -> Result<(), Error> {
        self.send(Method::DELETE, path, Body::None, &[], false)
            .await?;
        Ok(())
    }

    /// `GET /healthz`: whether the server is up.
    pub async fn health(&self) -> Result<api::Health, Error> {
        self.get("//healthz").await
    }

    /// `GET /readyz`: whether the server can serve (its store can be read).
    pub async fn ready(&self) -> Result<api::Readiness, Error> {
        self.get("//readyz").await
    }

    /// `POST /login`: logs a directory user in; the same server and settings, calling as the new
    /// session. To keep the session's token between runs, use [`Client::login_response`].
    pub async fn login(&self, username: &str, password: &str) -> Result<Client, Error> {
        let answer = self.login_response(username, password).await?;
        Ok(self.with_bearer(answer.token.clone()))
    }

    /// `POST /login`: the new session as the server answers it (its token, to keep, and its expiry).
    pub async fn login_response(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LoginResponse, Error> {
        let request = api::LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.post("/login", &request).await
    }

    /// `POST /logout`: ends the caller's session (an API key or a workload token has none to end:
    /// `invalid_request`).
    pub async fn logout(&self) -> Result<(), Error> {
        self.send(Method::POST, "/logout", Body::None, &[], false)
            .await?;
        Ok(())
    }

    /// `GET /me`: who the caller is.
    pub async fn me(&self) -> Result<IdentityBody, Error> {
        self.get("/me").await
    }

    /// `GET /connectors`: the connectors the caller may use.
    pub async fn connectors(&self) -> Result<Vec<ConnectorBody>, Error> {
        Ok(self
            .get::<api::ConnectorList>("/connectors")
            .await?
            .connectors)
    }

    /// `GET /connectors/{c}`: a connector the caller may use, by id or name.
    pub async fn connector(&self, connector: &str) -> Result<ConnectorBody, Error> {
        self.get(&format!("/connectors/{}", encode(connector)))
            .await
    }

    /// `POST /connectors/{c}/credentials`: vends credentials, in idfed's JSON (the request's `format` is
    /// ignored: see [`Client::credentials_text`] for the others).
    pub async fn credentials(
        &self,
        connector: &str,
        request: &CredentialsRequest,
    ) -> Result<CredentialsBody, Error> {
        let request = CredentialsRequest {
            format: Format::Json,
            ..request.clone()
        };
        self.post(
            &format!("/connectors/{}/credentials", encode(connector)),
            &request,
        )
        .await
    }

    /// `POST /connectors/{c}/credentials`: vends credentials written in the request's `format` (`env`,
    /// `ini`, `credential_process`, `json`), as the server wrote them, ready to print or to write to a file.
    pub async fn credentials_text(
        &self,
        connector: &str,
        request: &CredentialsRequest,
    ) -> Result<SecretText, Error> {
        let answer = self
            .send(
                Method::POST,
                &format!("/connectors/{}/credentials", encode(connector)),
                Self::json(request),
                &[],
                false,
            )
            .await?;
        let text = std::str::from_utf8(&answer.body).map_err(|e| Error::Decode {
            server: self.server.clone(),
            message: e.to_string(),
        })?;
        Ok(SecretText(Zeroizing::new(text.to_owned())))
    }

    /// `GET /connectors/{c}/caller-identity`: STS's `GetCallerIdentity` with credentials vended now.
    pub async fn caller_identity(&self, connector: &str) -> Result<CallerIdentityBody, Error> {
        self.get(&format!(
            "/connectors/{}/caller-identity",
            encode(connector)
        ))
        .await
    }

    /// `POST /connectors/{c}/console-url`: an AWS console sign-in URL.
    pub async fn console_url(
        &self,
        connector: &str,
        request: &ConsoleRequest,
    ) -> Result<ConsoleUrlBody, Error> {
        self.post(
            &format!("/connectors/{}/console-url", encode(connector)),
            request,
        )
        .await
    }

    /// `POST /connectors/{c}/ecr-login`: a registry login for `docker login`, made with credentials
    /// vended now.
    pub async fn ecr_login(
        &self,
        connector: &str,
        request: &ServiceTokenRequest,
    ) -> Result<EcrLogin, Error> {
        self.post(
            &format!("/connectors/{}/ecr-login", encode(connector)),
            request,
        )
        .await
    }

    /// `POST /connectors/{c}/codeartifact-token`: a CodeArtifact token for `domain` (owned by
    /// `domain_owner`, else the credentials' account), made with credentials vended now.
    pub async fn codeartifact_token(
        &self,
        connector: &str,
        domain: &str,
        domain_owner: Option<&str>,
        request: &ServiceTokenRequest,
    ) -> Result<CodeArtifactToken, Error> {
        let mut path = format!(
            "/connectors/{}/codeartifact-token?domain={}",
            encode(connector),
            encode(domain)
        );
        if let Some(owner) = domain_owner {
            path.push_str("&domain-owner=");
            path.push_str(&encode(owner));
        }
        self.post(&path, request).await
    }

    /// `GET /approvals`: the approval requests the caller may decide, and their own (pending first).
    pub async fn approvals(&self) -> Result<Vec<api::ApprovalRequestBody>, Error> {
        Ok(self.get::<api::ApprovalList>("/approvals").await?.approvals)
    }

    /// `GET /approvals/{id}`: one approval request.
    pub async fn approval(&self, id: &str) -> Result<api::ApprovalRequestBody, Error> {
        self.get(&format!("/approvals/{}", encode(id))).await
    }

    /// `POST /approvals/{id}/approve`: approves a request of someone else's, as a member of its group.
    pub async fn approve(
        &self,
        id: &str,
        comment: Option<&str>,
    ) -> Result<api::ApprovalRequestBody, Error> {
        self.decide(id, "approve", comment).await
    }

    /// `POST /approvals/{id}/deny`: denies a request of someone else's, as a member of its group.
    pub async fn deny(
        &self,
        id: &str,
        comment: Option<&str>,
    ) -> Result<api::ApprovalRequestBody, Error> {
        self.decide(id, "deny", comment).await
    }

    async fn decide(
        &self,
        id: &str,
        verb: &str,
        comment: Option<&str>,
    ) -> Result<api::ApprovalRequestBody, Error> {
        let decision = api::ApprovalDecision {
            comment: comment.map(str::to_owned),
        };
        self.post(&format!("/approvals/{}/{verb}", encode(id)), &decision)
            .await
    }

    /// `GET /container-credentials/{c}`: credentials in the ECS container endpoint's shape, as the AWS
    /// SDKs read them (the token goes in `Authorization` as it is, not as `Bearer`).
    pub async fn container_credentials(
        &self,
        connector: &str,
    ) -> Result<ContainerCredentials, Error> {
        let answer = self
            .send(
                Method::GET,
                &format!("/container-credentials/{}", encode(connector)),
                Body::None,
                &[],
                true,
            )
            .await?;
        self.decode(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readmes_add_on_is_the_example_the_tests_build() {
        let readme = include_str!("../../../README.md");
        let example = include_str!("../examples/vend.rs");
        assert!(
            readme.contains(&format!("```rust\n{example}```")),
            "README.md's add-on is not sdk/client/examples/vend.rs"
        );
        assert!(example.lines().count() <= 12);
    }

    #[test]
    fn names_and_values_are_encoded_for_a_url() {
        assert_eq!(encode("prod-1.a_b~c"), "prod-1.a_b~c");
        assert_eq!(encode("a/b?c d&é"), "a%2Fb%3Fc%20d%26%C3%A9");
    }

    #[test]
    fn a_server_must_be_an_http_url_and_a_ca_file_must_hold_certificates() {
        assert!(matches!(
            Client::new("idfed.example.com"),
            Err(Error::Config(_))
        ));
        let client = Client::new("https://idfed.example.com/").unwrap();
        assert_eq!(client.server(), "https://idfed.example.com");
        assert!(matches!(
            Client::builder("https://idfed").ca_pem("not pem").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder("https://idfed")
                .ca_file("/nonexistent/ca.pem")
                .build(),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn a_token_file_is_read_for_every_call_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("idfed-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "first\n").unwrap();
        let client = Client::builder("https://idfed")
            .bearer_file(&file)
            .build()
            .unwrap();
        assert_eq!(client.token().unwrap().unwrap().as_str(), "first");
        std::fs::write(&file, "second").unwrap();
        assert_eq!(client.token().unwrap().unwrap().as_str(), "second");
        std::fs::write(&file, "  \n").unwrap();
        assert!(matches!(client.token(), Err(Error::Config(_))));
        let shown = format!("{client:?}");
        assert!(!shown.contains("second") && shown.contains("https://idfed"));
        std::fs::remove_dir_all(&dir).unwrap();
        let blank = Client::builder("https://idfed")
            .bearer(" ")
            .build()
            .unwrap();
        assert!(blank.token().unwrap().is_none());
    }
}
