//! AWS service tokens made with vended credentials: `POST /connectors/{c}/ecr-login`,
//! `POST /connectors/{c}/codeartifact-token`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The credentials' duration (an empty body is `{}`), for `ecr-login` and `codeartifact-token`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceTokenRequest {
    /// The duration wanted for the credentials behind the token, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
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

/// A registry login. The password is a secret (ECR accepts it for 12 hours): zeroed when dropped; no
/// `Debug`.
#[derive(Serialize, Deserialize, ToSchema, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct EcrLogin {
    /// The user name for `docker login` (always `AWS`).
    pub username: String,
    /// The password for `docker login --password-stdin`.
    pub password: String,
    /// The registry, e.g. `https://123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub registry: String,
    /// Until when ECR accepts the password (RFC 3339).
    pub expires_at: String,
}

/// A CodeArtifact authorization token, for package managers: a secret, zeroed when dropped; no `Debug`.
#[derive(Serialize, Deserialize, ToSchema, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct CodeArtifactToken {
    /// The token: the password for pip, npm, Maven, NuGet….
    pub token: String,
    /// Until when CodeArtifact accepts it (RFC 3339): as long as the credentials it was made with.
    pub expires_at: String,
}
