//! `GET /container-credentials/{id_or_name}`: the container-credentials endpoint every AWS SDK reads
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`). The `Authorization`
//! header holds the raw token (a session token or an API key, no scheme). Errors are ECS-style
//! `{"Code": "...", "Message": "..."}`; a bad or missing token is 403.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::set_retry_after;
use super::extract::{authenticate_token, caller};
use super::{ApiError, AppState, rfc3339};
use crate::vend::VendOptions;
use idfed_api::{ContainerCredentials, EcsErrorBody};

/// The container-credentials route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(container_credentials))
}

/// An error in the ECS endpoint's shape.
struct EcsError(ApiError);

impl IntoResponse for EcsError {
    fn into_response(self) -> Response {
        let parts = self.0.parts();
        let status = match parts.status {
            StatusCode::UNAUTHORIZED => StatusCode::FORBIDDEN,
            other => other,
        };
        // Log what the caller is not told, as the API's errors do.
        let _ = self.0.into_response();
        let mut response = (
            status,
            Json(EcsErrorBody {
                code: parts.code.into(),
                message: parts.message,
            }),
        )
            .into_response();
        set_retry_after(&mut response, parts.retry_after);
        response
    }
}

/// Vends credentials from a connector for an AWS SDK (`AWS_CONTAINER_CREDENTIALS_FULL_URI`).
#[utoipa::path(
    get,
    path = "/api/v1/container-credentials/{id_or_name}",
    tag = "connectors",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    security(("container_token" = [])),
    responses(
        (status = 200, description = "The credentials", body = ContainerCredentials),
        (status = 400, description = "A request STS refuses", body = EcsErrorBody),
        (status = 403, description = "No or bad token, or the caller may not use the connector", body = EcsErrorBody),
        (status = 404, description = "No such connector", body = EcsErrorBody),
        (status = 429, description = "Too many failed logins, with `Retry-After`", body = EcsErrorBody),
        (status = 500, description = "idfed failed", body = EcsErrorBody),
        (status = 502, description = "STS or a policy plugin failed", body = EcsErrorBody),
        (status = 503, description = "STS, the directory or the store cannot be used now, or a policy plugin is busy", body = EcsErrorBody),
    )
)]
async fn container_credentials(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    parts: Parts,
) -> Result<Response, EcsError> {
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .filter(|v| !v.is_empty())
        .ok_or(EcsError(ApiError::MissingCredentials))?;
    let identity = authenticate_token(&state, token).await.map_err(EcsError)?;
    let caller = caller(&parts, identity);
    let vended = state
        .vend(&caller, &id_or_name, VendOptions::default())
        .await
        .map_err(EcsError)?;
    let c = &vended.credentials;
    let body = ContainerCredentials {
        access_key_id: c.access_key_id.clone(),
        secret_access_key: c.secret_access_key.expose().to_owned(),
        token: c.session_token.expose().to_owned(),
        expiration: rfc3339(c.expiration),
        role_arn: c.principal_arn.clone(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
