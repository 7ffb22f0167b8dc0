//! `POST /login`, `POST /logout`, `GET /me`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, ClientIp, JsonBody};
use super::openapi::ErrorBody;
use super::{ApiError, AppState, rfc3339};
use crate::model::Identity;
use crate::secret::Secret;

/// The session routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// A login: a directory user's name and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: Secret,
}

/// Who the caller is: a directory user, a system-scope API key, or a workload (a CI job's OIDC token). The one definition `/me`, `/login`
/// and the web session write, the OpenAPI document describes and clients read.
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

impl IdentityBody {
    /// How `identity` is shown.
    pub fn of(identity: &Identity) -> Self {
        match identity {
            Identity::User {
                name,
                groups,
                is_admin,
            } => IdentityBody {
                kind: "user".into(),
                name: name.clone(),
                groups: Some(groups.clone()),
                is_admin: Some(*is_admin),
                key_id: None,
                connectors: None,
                issuer: None,
                connector_names: None,
            },
            Identity::System {
                key_id,
                key_name,
                connectors,
            } => IdentityBody {
                kind: "system".into(),
                name: key_name.clone(),
                groups: None,
                is_admin: None,
                key_id: Some(*key_id),
                connectors: Some(connectors.clone()),
                issuer: None,
                connector_names: None,
            },
            Identity::Workload(workload) => IdentityBody {
                kind: "workload".into(),
                name: workload.name.clone(),
                groups: None,
                is_admin: None,
                key_id: None,
                connectors: None,
                issuer: Some(workload.issuer.clone()),
                connector_names: Some(workload.connectors.clone()),
            },
        }
    }
}

/// A new session: what `/login` answers and `idfed login` reads. The token is a secret; no `Debug`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The session token (`idfs_…`), to send as `Authorization: Bearer`.
    pub token: String,
    /// When the session ends (RFC 3339).
    pub expires: String,
    /// Who logged in.
    pub user: IdentityBody,
}

/// Logs in, answering a session token.
#[utoipa::path(
    post,
    path = "/login",
    tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session", body = LoginResponse),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`unauthenticated`, `invalid_api_key`…)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if request.username.is_empty() {
        return Err(ApiError::InvalidRequest("username is empty".into()));
    }
    let auth = &state.service.auth;
    let (token, identity) = auth
        .login(&request.username, &request.password, ip.as_deref())
        .await?;
    let expires = SystemTime::now() + auth.sessions().ttl();
    Ok(Json(LoginResponse {
        token: token.expose().to_owned(),
        expires: rfc3339(expires),
        user: IdentityBody::of(&identity),
    }))
}

/// Ends the session whose token is sent as Bearer.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "session",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The session is ended"),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`unauthenticated`, `invalid_api_key`…)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
    )
)]
async fn logout(State(state): State<AppState>, who: Authenticated) -> Result<StatusCode, ApiError> {
    let token = who.session_token.ok_or_else(|| {
        ApiError::InvalidRequest("logout ends a session: send its token as Bearer".into())
    })?;
    state.service.auth.logout(&token)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the caller is.
#[utoipa::path(
    get,
    path = "/me",
    tag = "session",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The caller's identity", body = IdentityBody),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`unauthenticated`, `invalid_api_key`…)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
    )
)]
async fn me(who: Authenticated) -> Json<IdentityBody> {
    Json(IdentityBody::of(&who.caller.identity))
}
