//! `GET /metrics`: the service's registry ([`crate::metrics`]) in the Prometheus text exposition format
//! (version 0.0.4), by prometheus-client.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::secret::secrets_equal;

/// `GET /metrics`: open, or with `[server] metrics_token_file` set, for `Authorization: Bearer <token>`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus counters and histograms (text exposition format 0.0.4)", body = String,
         content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = "A metrics token is configured and was not sent (`missing_credentials`, `invalid_credentials`)", body = ErrorBody),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &state.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::MissingCredentials)?;
        if !secrets_equal(presented.trim().as_bytes(), token.expose().as_bytes()) {
            return Err(ApiError::Auth(crate::auth::AuthError::InvalidCredentials));
        }
    }
    let body = crate::metrics::encode(&state.service.registry)
        .map_err(|e| ApiError::Unavailable(format!("encoding the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body))
}
