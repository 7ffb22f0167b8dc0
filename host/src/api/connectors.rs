//! `GET /connectors`, `GET /connectors/{id_or_name}`, `POST /connectors/{id_or_name}/credentials`,
//! `GET /connectors/{id_or_name}/caller-identity`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, JsonBody};
use super::openapi::ErrorBody;
use super::{ApiError, AppState, rfc3339};
use crate::model::Connector;
use crate::store::Store;
use crate::vend::{VendOptions, Vended, Vendor};

/// The connector routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(credentials))
        .routes(routes!(caller_identity))
}

pub use idfed_api::{
    CallerIdentityBody, ConnectorBody, ConnectorList, CredentialProcessBody, CredentialsBody,
    CredentialsRequest, Format,
};

/// How `c` is shown to its users.
pub fn connector_body(c: &Connector) -> ConnectorBody {
    ConnectorBody {
        id: c.id,
        name: c.name.clone(),
        description: c.description.clone(),
        principal_type: c.principal.principal_type(),
        account: c.account.clone(),
        groups: c.groups.clone(),
        system_scope: c.system_scope,
        enabled: c.enabled,
    }
}

/// The answer of a vend in idfed's JSON.
fn credentials_body(vended: &Vended, expiration: String) -> CredentialsBody {
    let c = &vended.credentials;
    CredentialsBody {
        access_key_id: c.access_key_id.clone(),
        secret_access_key: c.secret_access_key.expose().to_owned(),
        session_token: c.session_token.expose().to_owned(),
        expiration,
        duration_seconds: vended.duration_seconds,
        capped: vended.capped,
        cached: vended.cached,
        request_id: vended.request_id.clone(),
        connector: vended.connector_name.clone(),
    }
}

/// The connectors the caller may use.
#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "connectors",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The connectors the caller may use", body = ConnectorList),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    who: Authenticated,
) -> Result<Json<ConnectorList>, ApiError> {
    let connectors = state
        .service
        .store
        .list_connectors()
        .map_err(|e| ApiError::Unavailable(format!("listing connectors: {e}")))?;
    let visible: Vec<ConnectorBody> = connectors
        .iter()
        .filter(|c| Vendor::may_use(&who.caller, c))
        .map(connector_body)
        .collect();
    Ok(Json(ConnectorList {
        connectors: visible,
    }))
}

/// A connector the caller may use.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id_or_name}",
    tag = "connectors",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The connector", body = ConnectorBody),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
        (status = 403, description = "The caller may not use the connector (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    who: Authenticated,
) -> Result<Json<ConnectorBody>, ApiError> {
    let connector = state
        .service
        .store
        .get_connector(&id_or_name)
        .map_err(|e| ApiError::Unavailable(format!("reading a connector: {e}")))?
        .ok_or_else(|| ApiError::ConnectorNotFound(id_or_name.clone()))?;
    if !Vendor::may_use(&who.caller, &connector) {
        return Err(ApiError::Forbidden(connector.name));
    }
    Ok(Json(connector_body(&connector)))
}

/// Quotes `value` for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn text(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The vended credentials in `format`.
pub fn render(vended: &Vended, format: Format) -> Response {
    let c = &vended.credentials;
    let expiration = rfc3339(c.expiration);
    match format {
        Format::Json => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(credentials_body(vended, expiration)),
        )
            .into_response(),
        Format::CredentialProcess => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(CredentialProcessBody {
                version: 1,
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.expose().to_owned(),
                session_token: c.session_token.expose().to_owned(),
                expiration,
            }),
        )
            .into_response(),
        Format::Env => text(format!(
            "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nexport AWS_SESSION_TOKEN={}\nexport AWS_CREDENTIAL_EXPIRATION={}\n",
            shell_quote(&c.access_key_id),
            shell_quote(c.secret_access_key.expose()),
            shell_quote(c.session_token.expose()),
            shell_quote(&expiration),
        )),
        Format::Ini => text(format!(
            "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            vended.connector_name,
            c.access_key_id,
            c.secret_access_key.expose(),
            c.session_token.expose(),
        )),
    }
}

/// Vends temporary AWS credentials from a connector.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{id_or_name}/credentials",
    tag = "connectors",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    request_body(content = CredentialsRequest, description = "Optional: an empty body is `{}`"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 202, description = "A policy plugin wants an approval first: the approval request (a new one, or the one already pending for this same request); repeat the request once it is approved", body = idfed_api::ApprovalPending),
        (status = 200, description = "The credentials: JSON for `format` `json` (below) or `credential_process`, \
                                      text for `env` and `ini`",
         content(
            (CredentialsBody = "application/json"),
            (String = "text/plain"),
         )),
        (status = 400, description = "A bad request (`invalid_request`), or a request STS refuses", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), or idfed's STS budget for the account is spent (`sts_budget_exhausted`); with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now, or a policy plugin is busy (`plugin_busy`, with `Retry-After`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
        (status = 403, description = "The caller may not use the connector (`forbidden`), it is disabled (`connector_disabled`), a plugin denied the request (`plugin_denied`), or a plugin asked for an approval idfed cannot take yet (`approval_required`)", body = ErrorBody),
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
        (status = 502, description = "STS or a policy plugin failed", body = ErrorBody),
        (status = 500, description = "idfed failed (`internal_error`)", body = ErrorBody),
    )
)]
async fn credentials(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    who: Authenticated,
    JsonBody(request): JsonBody<CredentialsRequest>,
) -> Result<Response, ApiError> {
    let options = VendOptions {
        duration_seconds: request.duration_seconds,
        policy: request.policy,
        justification: request.justification,
        ticket: request.ticket,
        ..VendOptions::default()
    };
    let vended = state.vend(&who.caller, &id_or_name, options).await?;
    Ok(render(&vended, request.format))
}

/// Vends credentials from a connector and asks STS who they are (to check a connector works).
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id_or_name}/caller-identity",
    tag = "connectors",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 202, description = "A policy plugin wants an approval first: the approval request (a new one, or the one already pending for this same request); repeat the request once it is approved", body = idfed_api::ApprovalPending),
        (status = 200, description = "Who AWS says the vended credentials are", body = CallerIdentityBody),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), or idfed's STS budget for the account is spent (`sts_budget_exhausted`); with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now, or a policy plugin is busy (`plugin_busy`, with `Retry-After`)", body = ErrorBody),
        (status = 403, description = "The caller may not use the connector (`forbidden`), it is disabled (`connector_disabled`), a plugin denied the request (`plugin_denied`), or a plugin asked for an approval idfed cannot take yet (`approval_required`)", body = ErrorBody),
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
        (status = 502, description = "STS or a policy plugin failed", body = ErrorBody),
        (status = 500, description = "idfed failed (`internal_error`)", body = ErrorBody),
    )
)]
async fn caller_identity(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    who: Authenticated,
) -> Result<Json<CallerIdentityBody>, ApiError> {
    let vended = state
        .vend(&who.caller, &id_or_name, VendOptions::default())
        .await?;
    let connector = state
        .service
        .store
        .get_connector(&vended.connector_id.to_string())
        .map_err(|e| ApiError::Unavailable(format!("reading a connector: {e}")))?
        .ok_or_else(|| ApiError::ConnectorNotFound(id_or_name.clone()))?;
    let access = state.service.vendor.account_access(&connector.account)?;
    let identity = state
        .service
        .issuer
        .caller_identity(&access, &vended.credentials)
        .await
        .map_err(|e| {
            state.service.metrics.sts_error(e.code());
            ApiError::Sts(e)
        })?;
    Ok(Json(CallerIdentityBody {
        account: identity.account,
        arn: identity.arn,
        user_id: identity.user_id,
    }))
}
