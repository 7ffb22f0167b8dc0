//! `POST /connectors/{id_or_name}/ecr-login`: a login for a connector's Amazon ECR registry.
//!
//! The caller's credentials are vended as for `/credentials` (same authorization, plugin chain and audit
//! record), then given to ECR's `GetAuthorizationToken` in the account's region (at `[endpoints] ecr`
//! when set). The answer is what `docker login` takes: `{"username": "AWS", "password": "…", "registry":
//! "https://ACCOUNT.dkr.ecr.REGION.amazonaws.com", "expires_at": "<RFC 3339>"}` (ECR's passwords last 12
//! hours, whatever the credentials' duration). `idfed ecr-login CONNECTOR` prints the password for
//! `docker login --username AWS --password-stdin REGISTRY`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_ecr::config::timeout::TimeoutConfig;
use aws_sdk_ecr::config::{BehaviorVersion, Region};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, JsonBody};
use super::openapi::ErrorBody;
use super::{ApiError, AppState, error_body, rfc3339};
use crate::store::Store;
use crate::vend::VendOptions;

/// How ECR is reached, and its clients (one per region: its HTTP connections are kept).
#[derive(Default)]
pub struct EcrSettings {
    endpoint: Option<String>,
    default_region: String,
    clients: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
}

impl EcrSettings {
    /// ECR at `endpoint` (AWS's regional endpoints when `None`), in `default_region` for accounts that
    /// name none.
    pub fn new(endpoint: Option<String>, default_region: String) -> Self {
        EcrSettings {
            endpoint,
            default_region,
            clients: Mutex::default(),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_ecr::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut config = aws_sdk_ecr::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new(region.to_owned()))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(3))
                            .operation_timeout(Duration::from_secs(10))
                            .build(),
                    );
                if let Some(endpoint) = &self.endpoint {
                    config = config.endpoint_url(endpoint);
                }
                aws_sdk_ecr::Client::from_conf(config.build())
            })
            .clone()
    }
}

/// The route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ecr_login))
}

/// The credentials' duration (an empty body is `{}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EcrLoginRequest {
    /// The duration wanted for the credentials behind the token, in seconds.
    #[serde(default)]
    pub duration_seconds: Option<u32>,
}

/// A registry login (the password is a secret: ECR accepts it for 12 hours).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

/// An API error, or ECR's failure (502 `ecr_failed`).
pub enum EcrError {
    /// Anything the vend or the request refused.
    Api(ApiError),
    /// ECR refused or failed.
    Ecr(String),
}

impl From<ApiError> for EcrError {
    fn from(e: ApiError) -> Self {
        EcrError::Api(e)
    }
}

impl IntoResponse for EcrError {
    fn into_response(self) -> Response {
        match self {
            EcrError::Api(e) => e.into_response(),
            EcrError::Ecr(detail) => {
                tracing::warn!(%detail, "ECR GetAuthorizationToken failed");
                (
                    StatusCode::BAD_GATEWAY,
                    Json(error_body(
                        "ecr_failed",
                        &format!("ECR gave no authorization token: {detail}"),
                    )),
                )
                    .into_response()
            }
        }
    }
}

/// Vends credentials from a connector and exchanges them at ECR for a registry login.
#[utoipa::path(
    post,
    path = "/connectors/{id_or_name}/ecr-login",
    tag = "connectors",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    request_body(content = EcrLoginRequest, description = "Optional: an empty body is `{}`"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The registry login", body = EcrLogin),
        (status = 400, description = "A bad request (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`)", body = ErrorBody),
        (status = 403, description = "The caller may not use the connector, it is disabled, or a plugin denied the request", body = ErrorBody),
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), or idfed's STS budget for the account is spent (`sts_budget_exhausted`); with `Retry-After`", body = ErrorBody),
        (status = 502, description = "STS, a policy plugin or ECR (`ecr_failed`) failed", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now, or a policy plugin is busy (`plugin_busy`, with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "idfed failed (`internal_error`)", body = ErrorBody),
    )
)]
async fn ecr_login(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    who: Authenticated,
    JsonBody(request): JsonBody<EcrLoginRequest>,
) -> Result<Response, EcrError> {
    let vended = state
        .vend(
            &who.caller,
            &id_or_name,
            VendOptions {
                duration_seconds: request.duration_seconds,
                policy: None,
            },
        )
        .await?;
    // The region of the account the credentials came from.
    let store = &state.service.store;
    let account = store
        .get_connector(&vended.connector_id.to_string())
        .map_err(|e| ApiError::Unavailable(format!("reading a connector: {e}")))?
        .and_then(|connector| store.get_account(&connector.account).ok().flatten());
    let region = account
        .and_then(|a| a.region)
        .unwrap_or_else(|| state.ecr.default_region.clone());

    let c = &vended.credentials;
    let credentials = Credentials::new(
        &c.access_key_id,
        c.secret_access_key.expose(),
        Some(c.session_token.expose().to_owned()),
        None,
        "idfed-vended",
    );
    let answer = state
        .ecr
        .client(&region)
        .get_authorization_token()
        .customize()
        .config_override(aws_sdk_ecr::Config::builder().credentials_provider(credentials))
        .send()
        .await
        .map_err(|e| {
            let e = aws_sdk_ecr::error::DisplayErrorContext(e).to_string();
            // Never a secret in a message: the SDK's text holds none, but be sure.
            EcrError::Ecr(
                e.replace(c.secret_access_key.expose(), "***")
                    .replace(c.session_token.expose(), "***")
                    .chars()
                    .take(300)
                    .collect(),
            )
        })?;
    let data = answer
        .authorization_data
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| EcrError::Ecr("no authorization data".into()))?;
    let token = data
        .authorization_token
        .ok_or_else(|| EcrError::Ecr("no authorization token".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| EcrError::Ecr("the token is not base64 of text".into()))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| EcrError::Ecr("the token is not USER:PASSWORD".into()))?;
    let registry = data
        .proxy_endpoint
        .ok_or_else(|| EcrError::Ecr("no registry endpoint".into()))?;
    let expires_at = data
        .expires_at
        .and_then(|t| std::time::SystemTime::try_from(t).ok())
        .map(rfc3339)
        .ok_or_else(|| EcrError::Ecr("no expiry".into()))?;
    let login = EcrLogin {
        username: username.to_owned(),
        password: password.to_owned(),
        registry,
        expires_at,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(login)).into_response())
}
