//! `POST /connectors/{id_or_name}/console-url`: a sign-in URL for the AWS console.
//!
//! The caller's credentials are vended as for `/credentials` (same pipeline, same audit record), then
//! exchanged at the AWS federation endpoint (`Action=getSigninToken` with the session JSON
//! `{"sessionId", "sessionKey", "sessionToken"}`) for a sign-in token, and the answer is
//! `{"url": "<endpoint>?Action=login&Issuer=…&Destination=…&SigninToken=…", "expires": "<RFC 3339>"}`:
//! AWS accepts the URL for 15 minutes. Credentials from `GetSessionToken` (iam-user connectors) cannot
//! sign in to the console, so such connectors are refused before anything is vended.
//!
//! The endpoint, the issuer and the default destination come from the `[console]` section of the
//! configuration ([`configure`], called by `idfed serve`).

use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use idfed_api::{ConsoleRequest, ConsoleUrlBody};

use super::extract::{Authenticated, JsonBody};
use super::openapi::ErrorBody;
use super::{ApiError, AppState, error_body, rfc3339};
use crate::config::ConsoleConfig;
use crate::model::Principal;
use crate::plugins::Purpose;
use crate::store::Store;
use crate::vend::{VendOptions, Vendor};

/// How long AWS accepts a sign-in URL.
pub const SIGNIN_URL_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// The longest destination URL accepted, in bytes.
const MAX_DESTINATION_BYTES: usize = 2048;

fn settings() -> &'static RwLock<Arc<ConsoleConfig>> {
    static SETTINGS: OnceLock<RwLock<Arc<ConsoleConfig>>> = OnceLock::new();
    SETTINGS.get_or_init(|| RwLock::new(Arc::new(ConsoleConfig::default())))
}

/// Sets the `[console]` settings used from now on by every server in this process.
pub fn configure(config: ConsoleConfig) {
    *settings().write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
}

fn current() -> Arc<ConsoleConfig> {
    settings().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The console route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(console_url))
}

/// An API error, or a failure of the federation endpoint (502 `federation_failed`).
enum ConsoleError {
    Api(ApiError),
    Federation(String),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::Api(e) => e.into_response(),
            ConsoleError::Federation(detail) => {
                tracing::warn!(%detail, "AWS federation endpoint failed");
                (
                    StatusCode::BAD_GATEWAY,
                    Json(error_body(
                        "federation_failed",
                        &format!(
                            "the AWS federation endpoint did not give a sign-in token: {detail}"
                        ),
                    )),
                )
                    .into_response()
            }
        }
    }
}

fn http_client() -> Result<&'static reqwest::Client, ConsoleError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ConsoleError::Api(ApiError::Internal(format!("HTTP client: {e}"))))?;
    Ok(CLIENT.get_or_init(|| client))
}

fn check_destination(destination: &str) -> Result<(), ApiError> {
    let ok = destination.len() <= MAX_DESTINATION_BYTES
        && reqwest::Url::parse(destination)
            .is_ok_and(|url| url.scheme() == "https" || url.scheme() == "http");
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "destination must be an http(s) URL of at most {MAX_DESTINATION_BYTES} bytes"
        )))
    }
}

/// Vends credentials from a connector and exchanges them for an AWS console sign-in URL.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{id_or_name}/console-url",
    tag = "connectors",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    request_body(content = ConsoleRequest, description = "Optional: an empty body is `{}`"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 202, description = "A policy plugin wants an approval first: the approval request (a new one, or the one already pending for this same request); repeat the request once it is approved", body = idfed_api::ApprovalPending),
        (status = 200, description = "The sign-in URL", body = ConsoleUrlBody),
        (status = 400, description = "A bad destination or request, or a connector that cannot sign in", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), or idfed's STS budget for the account is spent (`sts_budget_exhausted`); with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now, or a policy plugin is busy (`plugin_busy`, with `Retry-After`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
        (status = 403, description = "The caller may not use the connector (`forbidden`), it is disabled (`connector_disabled`), a plugin denied the request (`plugin_denied`), or a plugin asked for an approval idfed cannot take yet (`approval_required`)", body = ErrorBody),
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
        (status = 502, description = "STS, a policy plugin or the federation endpoint (`federation_failed`) failed", body = ErrorBody),
        (status = 500, description = "idfed failed (`internal_error`)", body = ErrorBody),
    )
)]
async fn console_url(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    who: Authenticated,
    JsonBody(request): JsonBody<ConsoleRequest>,
) -> Result<Response, ConsoleError> {
    let settings = current();
    let destination = request
        .destination
        .unwrap_or_else(|| settings.default_destination.clone());
    check_destination(&destination)?;

    // GetSessionToken credentials cannot sign in to the console: say so before vending (to those who
    // may use the connector; the vend answers everyone else as it always does).
    let connector = state
        .service
        .store
        .get_connector(&id_or_name)
        .map_err(|e| ApiError::Unavailable(format!("reading a connector: {e}")))?;
    if let Some(connector) = &connector
        && Vendor::may_use(&who.caller, connector)
        && matches!(connector.principal, Principal::IamUser)
    {
        return Err(ApiError::InvalidRequest(format!(
            "connector {:?} vends GetSessionToken credentials, which AWS does not accept for console sign-in",
            connector.name
        ))
        .into());
    }

    let vended = state
        .vend(
            &who.caller,
            &id_or_name,
            VendOptions {
                duration_seconds: request.duration_seconds,
                purpose: Purpose::ConsoleSignIn,
                justification: request.justification.clone(),
                ticket: request.ticket.clone(),
                ..VendOptions::default()
            },
        )
        .await?;
    let c = &vended.credentials;
    let session = json!({
        "sessionId": c.access_key_id,
        "sessionKey": c.secret_access_key.expose(),
        "sessionToken": c.session_token.expose(),
    })
    .to_string();

    let endpoint = &settings.federation_endpoint;
    let token_url = reqwest::Url::parse_with_params(
        endpoint,
        [("Action", "getSigninToken"), ("Session", session.as_str())],
    )
    .map_err(|e| {
        ApiError::Internal(format!(
            "console.federation_endpoint {endpoint:?} is not a URL: {e}"
        ))
    })?;
    let response = http_client()?
        .get(token_url)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| ConsoleError::Federation(format!("cannot reach it ({})", e.without_url())))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ConsoleError::Federation(format!("it answered {status}")));
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "SigninToken")]
        signin_token: String,
    }
    let body = response.text().await.map_err(|e| {
        ConsoleError::Federation(format!("reading its answer: {}", e.without_url()))
    })?;
    let answer: Answer = serde_json::from_str(&body)
        .ok()
        .filter(|a: &Answer| !a.signin_token.is_empty())
        .ok_or_else(|| ConsoleError::Federation("its answer holds no SigninToken".into()))?;

    let url = reqwest::Url::parse_with_params(
        endpoint,
        [
            ("Action", "login"),
            ("Issuer", settings.issuer.as_str()),
            ("Destination", destination.as_str()),
            ("SigninToken", answer.signin_token.as_str()),
        ],
    )
    .map_err(|e| ApiError::Internal(format!("building the sign-in URL: {e}")))?;
    let expires = (SystemTime::now() + SIGNIN_URL_VALIDITY).min(c.expiration);
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(ConsoleUrlBody {
            url: url.into(),
            expires: rfc3339(expires),
            connector: vended.connector_name.clone(),
            request_id: vended.request_id.clone(),
        }),
    )
        .into_response())
}
