//! Connectors and what they vend: `GET /connectors`, `POST /connectors/{c}/credentials`,
//! `GET /connectors/{c}/caller-identity`, `POST /connectors/{c}/console-url`, and the
//! container-credentials endpoint's answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a connector obtains credentials from AWS STS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalType {
    /// `GetFederationToken`, named after the caller; takes a session policy.
    FederatedUser,
    /// `GetSessionToken`; takes no session policy and no tags.
    IamUser,
    /// `AssumeRole`; takes a session policy and session tags.
    AssumedRole,
}

/// A connector as its users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectorBody {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// How it obtains credentials.
    pub principal_type: PrincipalType,
    /// The AWS account's name in idfed.
    pub account: String,
    /// The groups whose members may use it.
    pub groups: Vec<String>,
    /// Whether system-scope callers (API keys, workloads) may use it.
    pub system_scope: bool,
    /// Whether it vends.
    pub enabled: bool,
}

/// The connectors the caller may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectorList {
    /// The connectors, by name.
    pub connectors: Vec<ConnectorBody>,
}

/// How vended credentials are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// idfed's JSON ([`CredentialsBody`]).
    #[default]
    Json,
    /// What `credential_process` prints ([`CredentialProcessBody`]).
    CredentialProcess,
    /// Shell `export` lines (`text/plain`).
    Env,
    /// A credentials-file section (`text/plain`).
    Ini,
}

impl Format {
    /// Whether the answer is JSON (else `text/plain`).
    pub fn is_json(self) -> bool {
        matches!(self, Format::Json | Format::CredentialProcess)
    }
}

/// What to vend, and how to write it (an empty body is `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    /// The duration wanted, in seconds (the connector's default if left out; capped at its maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    /// An inline session policy of the caller's own, which may only narrow the connector's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// How to write the answer.
    #[serde(default, skip_serializing_if = "is_json")]
    pub format: Format,
    /// Why the caller needs the access (free text, at most 1,024 bytes; no control characters but line
    /// breaks and tabs): passed to the connector's plugins (contract 0.2) and kept in the audit record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub justification: Option<String>,
    /// A ticket or change reference (e.g. `OPS-1234`, at most 128 bytes): passed to plugins and audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub ticket: Option<String>,
}

fn is_json(format: &Format) -> bool {
    *format == Format::Json
}

/// Vended credentials, in idfed's JSON (`format` `json`). Its strings are zeroed when dropped; no `Debug`.
#[derive(Serialize, Deserialize, ToSchema, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct CredentialsBody {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// When the credentials expire (RFC 3339).
    pub expiration: String,
    /// The duration granted, in seconds (for cached credentials, the whole seconds they have left).
    pub duration_seconds: u32,
    /// Whether the duration asked for was capped.
    #[serde(default)]
    pub capped: bool,
    /// Whether these credentials were issued before, for an identical request (the connector's credential
    /// cache): `expiration` is theirs, `duration_seconds` the whole seconds they have left.
    #[serde(default)]
    pub cached: bool,
    /// The vend's id (in the audit log).
    #[serde(default)]
    pub request_id: String,
    /// The connector's name.
    #[serde(default)]
    pub connector: String,
}

/// Vended credentials as `credential_process` prints them (`format` `credential_process`): zeroed when
/// dropped; no `Debug`.
#[derive(Serialize, Deserialize, ToSchema, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialProcessBody {
    /// Always 1.
    pub version: u32,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// When the credentials expire (RFC 3339).
    pub expiration: String,
}

/// Credentials in the container-credentials endpoint's shape (what the AWS SDKs read from
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI`): zeroed when dropped; no `Debug`.
#[derive(Serialize, Deserialize, ToSchema, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token.
    pub token: String,
    /// When the credentials expire (RFC 3339).
    pub expiration: String,
    /// The role's ARN, for assumed roles.
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// Who AWS says the vended credentials are (STS `GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallerIdentityBody {
    /// The AWS account id.
    pub account: String,
    /// The principal's ARN.
    pub arn: String,
    /// The principal's unique id.
    pub user_id: String,
}

/// The console session's length and the page to open (an empty body is `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleRequest {
    /// The console session's length, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    /// The console page to open (an `https://` URL of the AWS console).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Why the caller needs the access (free text, at most 1,024 bytes; no control characters but line
    /// breaks and tabs): passed to the connector's plugins (contract 0.2) and kept in the audit record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub justification: Option<String>,
    /// A ticket or change reference (e.g. `OPS-1234`, at most 128 bytes): passed to plugins and audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub ticket: Option<String>,
}

/// A sign-in URL for the AWS console. The URL holds a sign-in token, a secret: zeroed when dropped; no
/// `Debug`.
#[derive(Serialize, Deserialize, ToSchema, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct ConsoleUrlBody {
    /// The sign-in URL.
    pub url: String,
    /// Until when AWS accepts it (RFC 3339).
    pub expires: String,
    /// The connector's name.
    #[serde(default)]
    pub connector: String,
    /// The vend's id (in the audit log).
    #[serde(default)]
    pub request_id: String,
}
