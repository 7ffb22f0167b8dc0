//! `POST /login`, `POST /logout`, `GET /me`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
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

pub use idfed_api::{IdentityBody, LoginRequest, LoginResponse};

/// How `identity` is shown.
pub fn identity_body(identity: &Identity) -> IdentityBody {
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

/// Logs in, answering a session token.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session", body = LoginResponse),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
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
    JsonBody(mut request): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if request.username.is_empty() {
        return Err(ApiError::InvalidRequest("username is empty".into()));
    }
    let auth = &state.service.auth;
    let (token, identity) = auth
        .login(
            &request.username,
            &Secret::new(std::mem::take(&mut request.password)),
            ip.as_deref(),
        )
        .await?;
    let expires = SystemTime::now() + auth.sessions().ttl();
    Ok(Json(LoginResponse {
        token: token.expose().to_owned(),
        expires: rfc3339(expires),
        user: identity_body(&identity),
    }))
}

/// Ends the session whose token is sent as Bearer.
#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "session",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The session is ended"),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
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
    path = "/api/v1/me",
    tag = "session",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The caller's identity", body = IdentityBody),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
    )
)]
async fn me(who: Authenticated) -> Json<IdentityBody> {
    Json(identity_body(&who.caller.identity))
}
