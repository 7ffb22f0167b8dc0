//! `POST /login`, `POST /logout`, `GET /me`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
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

/// Who the caller is: a directory user, or a system-scope API key.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"kind": "user", "name": "alice", "groups": ["devs"], "is_admin": false}))]
struct IdentityBody {
    /// `user` or `system`.
    kind: String,
    /// The user's name, or the API key's.
    name: String,
    /// The user's groups (users only).
    #[schema(nullable = false)]
    groups: Option<Vec<String>>,
    /// Whether the user is an administrator (users only).
    #[schema(nullable = false)]
    is_admin: Option<bool>,
    /// The API key's id (system only).
    #[schema(nullable = false)]
    key_id: Option<uuid::Uuid>,
    /// The connectors the API key may use (system only).
    #[schema(nullable = false)]
    connectors: Option<Vec<String>>,
}

/// A new session.
#[derive(ToSchema)]
#[allow(dead_code)]
struct LoginResponse {
    /// The session token (`idfs_…`), to send as `Authorization: Bearer`.
    token: String,
    /// When the session ends (RFC 3339).
    expires: String,
    /// Who logged in.
    user: IdentityBody,
}

pub(super) fn identity_json(identity: &Identity) -> Value {
    match identity {
        Identity::User {
            name,
            groups,
            is_admin,
        } => json!({"kind": "user", "name": name, "groups": groups, "is_admin": is_admin}),
        Identity::System {
            key_id,
            key_name,
            connectors,
        } => {
            json!({"kind": "system", "key_id": key_id, "name": key_name, "connectors": connectors})
        }
    }
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
) -> Result<Json<Value>, ApiError> {
    if request.username.is_empty() {
        return Err(ApiError::InvalidRequest("username is empty".into()));
    }
    let auth = &state.service.auth;
    let (token, identity) = auth
        .login(&request.username, &request.password, ip.as_deref())
        .await?;
    let expires = SystemTime::now() + auth.sessions().ttl();
    Ok(Json(json!({
        "token": token.expose(),
        "expires": rfc3339(expires),
        "user": identity_json(&identity),
    })))
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
async fn me(who: Authenticated) -> Json<Value> {
    Json(identity_json(&who.caller.identity))
}
