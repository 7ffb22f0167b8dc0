//! Tokens of AWS services other than STS, made with a connector's credentials: the caller's credentials are
//! vended as for `/credentials` (same authorization, plugin chain and audit record), then given to the
//! service, in the account's region (at `[endpoints] ecr` / `codeartifact` when set).
//!
//! - `POST /connectors/{id_or_name}/ecr-login`: ECR's `GetAuthorizationToken`, answered as what `docker
//!   login` takes: `{"username": "AWS", "password": "…", "registry": "https://ACCOUNT.dkr.ecr.REGION.
//!   amazonaws.com", "expires_at": "<RFC 3339>"}` (ECR's passwords last 12 hours, whatever the credentials'
//!   duration). `idfed ecr-login CONNECTOR` prints the password for `docker login --password-stdin`.
//! - `POST /connectors/{id_or_name}/codeartifact-token?domain=D&domain-owner=O`: CodeArtifact's
//!   `GetAuthorizationToken` for the domain, lasting as long as the vended credentials (its `duration=0`),
//!   answered as `{"token": "…", "expires_at": "<RFC 3339>"}`; the domain and owner are checked by
//!   CodeArtifact's published rules before anything is vended. `idfed codeartifact-token CONNECTOR
//!   --domain D` prints the token (for pip, npm, Maven…).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_credential_types::Credentials;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use idfed_api::{CodeArtifactToken, EcrLogin, ServiceTokenRequest};

use super::extract::{Authenticated, JsonBody};
use super::openapi::ErrorBody;
use super::{ApiError, AppState, error_body, rfc3339};
use crate::config::EndpointsConfig;
use crate::plugins::Purpose;
use crate::store::Store;
use crate::vend::{VendOptions, Vended};

/// Where the services are reached, and their clients (one per service and region: their HTTP connections
/// are kept).
#[derive(Default)]
pub struct ServiceEndpoints {
    ecr: Option<String>,
    codeartifact: Option<String>,
    default_region: String,
    ecr_clients: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
    codeartifact_clients: Mutex<HashMap<String, aws_sdk_codeartifact::Client>>,
}

/// A client's timeouts: as STS's.
fn timeouts() -> aws_smithy_types::timeout::TimeoutConfig {
    aws_smithy_types::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

impl ServiceEndpoints {
    /// The services at `config`'s endpoints (AWS's regional ones where it names none), in
    /// `default_region` for accounts that name none.
    pub fn new(config: &EndpointsConfig, default_region: String) -> Self {
        ServiceEndpoints {
            ecr: config.ecr.clone(),
            codeartifact: config.codeartifact.clone(),
            default_region,
            ..ServiceEndpoints::default()
        }
    }

    fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        let mut clients = self.ecr_clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut config = aws_sdk_ecr::Config::builder()
                    .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
                    .region(aws_sdk_ecr::config::Region::new(region.to_owned()))
                    .timeout_config(timeouts());
                if let Some(endpoint) = &self.ecr {
                    config = config.endpoint_url(endpoint);
                }
                aws_sdk_ecr::Client::from_conf(config.build())
            })
            .clone()
    }

    fn codeartifact(&self, region: &str) -> aws_sdk_codeartifact::Client {
        let mut clients = self
            .codeartifact_clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut config = aws_sdk_codeartifact::Config::builder()
                    .behavior_version(aws_sdk_codeartifact::config::BehaviorVersion::latest())
                    .region(aws_sdk_codeartifact::config::Region::new(region.to_owned()))
                    .timeout_config(timeouts());
                if let Some(endpoint) = &self.codeartifact {
                    config = config.endpoint_url(endpoint);
                }
                aws_sdk_codeartifact::Client::from_conf(config.build())
            })
            .clone()
    }
}

/// The route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ecr_login))
        .routes(routes!(codeartifact_token))
}

/// An API error, or the service's failure (502 `ecr_failed`, `codeartifact_failed`).
pub enum ServiceError {
    /// Anything the vend or the request refused.
    Api(ApiError),
    /// The service refused or failed: its code, and what it said.
    Service(&'static str, String),
}

impl From<ApiError> for ServiceError {
    fn from(e: ApiError) -> Self {
        ServiceError::Api(e)
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        match self {
            ServiceError::Api(e) => e.into_response(),
            ServiceError::Service(code, detail) => {
                tracing::warn!(code, %detail, "an AWS service refused vended credentials");
                (
                    StatusCode::BAD_GATEWAY,
                    Json(error_body(code, &format!("no token: {detail}"))),
                )
                    .into_response()
            }
        }
    }
}

/// Credentials vended to `who` from `id_or_name` for the token of `service` (`ecr`, `codeartifact`: what
/// plugins see as the request's purpose), and the account's region.
async fn vend_for_service(
    state: &AppState,
    who: &Authenticated,
    id_or_name: &str,
    service: &str,
    request: ServiceTokenRequest,
) -> Result<(Vended, String), ServiceError> {
    let vended = state
        .vend(
            &who.caller,
            id_or_name,
            VendOptions {
                duration_seconds: request.duration_seconds,
                purpose: Purpose::ServiceToken(service.to_owned()),
                justification: request.justification,
                ticket: request.ticket,
                ..VendOptions::default()
            },
        )
        .await?;
    let store = &state.service.store;
    let account = store
        .get_connector(&vended.connector_id.to_string())
        .map_err(|e| ApiError::Unavailable(format!("reading a connector: {e}")))?
        .and_then(|connector| store.get_account(&connector.account).ok().flatten());
    let region = account
        .and_then(|a| a.region)
        .unwrap_or_else(|| state.services.default_region.clone());
    Ok((vended, region))
}

/// The vended credentials as the AWS SDK takes them.
fn sdk_credentials(vended: &Vended) -> Credentials {
    let c = &vended.credentials;
    Credentials::new(
        &c.access_key_id,
        c.secret_access_key.expose(),
        Some(c.session_token.expose().to_owned()),
        None,
        "idfed-vended",
    )
}

/// The SDK's error, one line, cut short, with no secret of `vended` in it (the SDK's text holds none, but
/// be sure).
fn service_failure(
    code: &'static str,
    vended: &Vended,
    error: impl std::error::Error + Send + Sync + 'static,
) -> ServiceError {
    let c = &vended.credentials;
    let text = aws_smithy_types::error::display::DisplayErrorContext(error).to_string();
    ServiceError::Service(
        code,
        text.replace(c.secret_access_key.expose(), "***")
            .replace(c.session_token.expose(), "***")
            .chars()
            .take(300)
            .collect(),
    )
}

/// Vends credentials from a connector and exchanges them at ECR for a registry login.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{id_or_name}/ecr-login",
    tag = "connectors",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    request_body(content = ServiceTokenRequest, description = "Optional: an empty body is `{}`"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 202, description = "A policy plugin wants an approval first: the approval request (a new one, or the one already pending for this same request); repeat the request once it is approved", body = idfed_api::ApprovalPending),
        (status = 200, description = "The registry login", body = EcrLogin),
        (status = 400, description = "A bad request (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`)", body = ErrorBody),
        (status = 403, description = "The caller may not use the connector (`forbidden`), it is disabled (`connector_disabled`), a plugin denied the request (`plugin_denied`), or a plugin asked for an approval idfed cannot take yet (`approval_required`)", body = ErrorBody),
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
    JsonBody(request): JsonBody<ServiceTokenRequest>,
) -> Result<Response, ServiceError> {
    let (vended, region) = vend_for_service(&state, &who, &id_or_name, "ecr", request).await?;
    let failed = |detail: &str| ServiceError::Service("ecr_failed", detail.to_owned());
    let answer = state
        .services
        .ecr(&region)
        .get_authorization_token()
        .customize()
        .config_override(
            aws_sdk_ecr::Config::builder().credentials_provider(sdk_credentials(&vended)),
        )
        .send()
        .await
        .map_err(|e| service_failure("ecr_failed", &vended, e))?;
    let data = answer
        .authorization_data
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| failed("no authorization data"))?;
    let token = data
        .authorization_token
        .ok_or_else(|| failed("no authorization token"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| failed("the token is not base64 of text"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| failed("the token is not USER:PASSWORD"))?;
    let registry = data
        .proxy_endpoint
        .ok_or_else(|| failed("no registry endpoint"))?;
    let expires_at = data
        .expires_at
        .and_then(|t| std::time::SystemTime::try_from(t).ok())
        .map(rfc3339)
        .ok_or_else(|| failed("no expiry"))?;
    let login = EcrLogin {
        username: username.to_owned(),
        password: password.to_owned(),
        registry,
        expires_at,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(login)).into_response())
}

/// The domain a CodeArtifact token is for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CodeArtifactQuery {
    /// The domain: 2–50 characters, `[a-z][a-z0-9-]{0,48}[a-z0-9]`.
    pub domain: String,
    /// The 12-digit account that owns the domain (default: the credentials' own).
    #[serde(rename = "domain-owner")]
    #[param(rename = "domain-owner")]
    pub domain_owner: Option<String>,
}

/// CodeArtifact's published rules for a domain name and its owner.
fn check_domain(query: &CodeArtifactQuery) -> Result<(), ApiError> {
    let domain = query.domain.as_bytes();
    let domain_ok = (2..=50).contains(&domain.len())
        && domain[0].is_ascii_lowercase()
        && domain
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && domain[domain.len() - 1] != b'-';
    if !domain_ok {
        return Err(ApiError::InvalidRequest(
            "domain must be 2-50 characters: a lowercase letter, then lowercase letters, digits or \
             '-', not ending in '-'"
                .into(),
        ));
    }
    if let Some(owner) = &query.domain_owner
        && !(owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::InvalidRequest(
            "domain-owner must be a 12-digit AWS account id".into(),
        ));
    }
    Ok(())
}

/// Vends credentials from a connector and exchanges them at CodeArtifact for a domain's token.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{id_or_name}/codeartifact-token",
    tag = "connectors",
    params(
        ("id_or_name" = String, Path, description = "The connector's id or name"),
        CodeArtifactQuery,
    ),
    request_body(content = ServiceTokenRequest, description = "Optional: an empty body is `{}`"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 202, description = "A policy plugin wants an approval first: the approval request (a new one, or the one already pending for this same request); repeat the request once it is approved", body = idfed_api::ApprovalPending),
        (status = 200, description = "The token", body = CodeArtifactToken),
        (status = 400, description = "A bad domain, owner or request (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`)", body = ErrorBody),
        (status = 403, description = "The caller may not use the connector (`forbidden`), it is disabled (`connector_disabled`), a plugin denied the request (`plugin_denied`), or a plugin asked for an approval idfed cannot take yet (`approval_required`)", body = ErrorBody),
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), or idfed's STS budget for the account is spent (`sts_budget_exhausted`); with `Retry-After`", body = ErrorBody),
        (status = 502, description = "STS, a policy plugin or CodeArtifact (`codeartifact_failed`) failed", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now, or a policy plugin is busy (`plugin_busy`, with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "idfed failed (`internal_error`)", body = ErrorBody),
    )
)]
async fn codeartifact_token(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    Query(query): Query<CodeArtifactQuery>,
    who: Authenticated,
    JsonBody(request): JsonBody<ServiceTokenRequest>,
) -> Result<Response, ServiceError> {
    check_domain(&query)?;
    let (vended, region) =
        vend_for_service(&state, &who, &id_or_name, "codeartifact", request).await?;
    let answer = state
        .services
        .codeartifact(&region)
        .get_authorization_token()
        .domain(&query.domain)
        .set_domain_owner(query.domain_owner.clone())
        // 0: the token ends with the credentials it is made with.
        .duration_seconds(0)
        .customize()
        .config_override(
            aws_sdk_codeartifact::Config::builder().credentials_provider(sdk_credentials(&vended)),
        )
        .send()
        .await
        .map_err(|e| service_failure("codeartifact_failed", &vended, e))?;
    let failed = |detail: &str| ServiceError::Service("codeartifact_failed", detail.to_owned());
    let token = CodeArtifactToken {
        token: answer
            .authorization_token
            .ok_or_else(|| failed("no authorization token"))?,
        expires_at: answer
            .expiration
            .and_then(|t| std::time::SystemTime::try_from(t).ok())
            .map(rfc3339)
            .ok_or_else(|| failed("no expiry"))?,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(token)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_owners_follow_codeartifacts_rules() {
        let query = |domain: &str, owner: Option<&str>| CodeArtifactQuery {
            domain: domain.into(),
            domain_owner: owner.map(str::to_owned),
        };
        for ok in ["ab", "my-domain", "a1", &format!("a{}", "b".repeat(49))] {
            assert!(check_domain(&query(ok, None)).is_ok(), "{ok}");
        }
        assert!(check_domain(&query("my-domain", Some("123456789012"))).is_ok());
        for bad in [
            "a",
            "1abc",
            "Abc",
            "ab-",
            "a_b",
            "",
            &"a".repeat(51),
            "a\u{e9}b",
        ] {
            assert!(check_domain(&query(bad, None)).is_err(), "{bad}");
        }
        for owner in ["12345678901", "1234567890123", "12345678901x", ""] {
            assert!(check_domain(&query("ok", Some(owner))).is_err(), "{owner}");
        }
    }
}
