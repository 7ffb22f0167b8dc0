//! Who the caller is, and sessions: `POST /login`, `GET /me`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A login: a directory user's name and password. The password is zeroed when dropped; no `Debug`.
#[derive(Serialize, Deserialize, ToSchema, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user name, as the directory spells it.
    pub username: String,
    /// The password.
    #[schema(format = Password)]
    pub password: String,
}

/// Who the caller is: a directory user, a system-scope API key, or a workload (a CI job's OIDC token).
/// What `/me`, `/login` and the web session answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"kind": "user", "name": "alice", "groups": ["devs"], "is_admin": false}))]
pub struct IdentityBody {
    /// `user`, `system` or `workload`.
    pub kind: String,
    /// The user's name, the API key's, or the workload's (`<issuer name>:…`).
    pub name: String,
    /// The user's groups (users only).
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Whether the user is an administrator (users only).
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
    /// The API key's id (system only).
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<uuid::Uuid>,
    /// The connectors (ids) the API key may use (system only).
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connectors: Option<Vec<uuid::Uuid>>,
    /// The configured issuer whose token it is (workloads only).
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The connectors (names) the issuer's claim rules grant the token (workloads only).
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_names: Option<Vec<String>>,
}

/// A new session: what `/login` answers. The token is a secret: zeroed when dropped; no `Debug`.
#[derive(Serialize, Deserialize, ToSchema, zeroize::ZeroizeOnDrop)]
pub struct LoginResponse {
    /// The session token (`idfs_…`), to send as `Authorization: Bearer`.
    pub token: String,
    /// When the session ends (RFC 3339).
    pub expires: String,
    /// Who logged in.
    #[zeroize(skip)]
    pub user: IdentityBody,
}

/// A login from the web UI (`POST /web/session`): a user name and password, or `{"sso": true}` to log in
/// from the directory's SSO cookie. The password is zeroed when dropped; no `Debug`.
#[derive(Default, Serialize, Deserialize, ToSchema, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct WebLogin {
    /// The user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Password)]
    pub password: Option<String>,
    /// Log in from the directory's SSO cookie instead.
    #[serde(default)]
    pub sso: bool,
}

/// The browser's session (`/web/session`): the session itself is in an HTTP-only cookie, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebSessionBody {
    /// Who is logged in (as `GET /me` answers).
    pub user: IdentityBody,
    /// The value to send as `X-CSRF-Token` with every change.
    pub csrf_token: String,
    /// When the session ends (RFC 3339).
    pub expires: String,
}
