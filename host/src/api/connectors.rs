//! `GET /connectors`, `GET /connectors/{id_or_name}`, `POST /connectors/{id_or_name}/credentials`,
//! `GET /connectors/{id_or_name}/caller-identity`.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Authenticated, JsonBody};
use super::{ApiError, AppState, rfc3339};
use crate::model::Connector;
use crate::store::Store;
use crate::vend::{VendOptions, Vended, Vendor};

/// The connector routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connectors", get(list))
        .route("/connectors/{id_or_name}", get(show))
        .route("/connectors/{id_or_name}/credentials", post(credentials))
        .route(
            "/connectors/{id_or_name}/caller-identity",
            get(caller_identity),
        )
}

fn connector_json(c: &Connector) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "principal_type": c.principal.principal_type(),
        "account": c.account,
        "groups": c.groups,
        "system_scope": c.system_scope,
        "enabled": c.enabled,
    })
}

async fn list(State(state): State<AppState>, who: Authenticated) -> Result<Json<Value>, ApiError> {
    let connectors = state
        .service
        .store
        .list_connectors()
        .map_err(|e| ApiError::Unavailable(format!("listing connectors: {e}")))?;
    let visible: Vec<Value> = connectors
        .iter()
        .filter(|c| Vendor::may_use(&who.caller, c))
        .map(connector_json)
        .collect();
    Ok(Json(json!({ "connectors": visible })))
}

async fn show(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    who: Authenticated,
) -> Result<Json<Value>, ApiError> {
    let connector = state
        .service
        .store
        .get_connector(&id_or_name)
        .map_err(|e| ApiError::Unavailable(format!("reading a connector: {e}")))?
        .ok_or_else(|| ApiError::ConnectorNotFound(id_or_name.clone()))?;
    if !Vendor::may_use(&who.caller, &connector) {
        return Err(ApiError::Forbidden(connector.name));
    }
    Ok(Json(connector_json(&connector)))
}

/// How vended credentials are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// idfed's JSON.
    #[default]
    Json,
    /// What `credential_process` prints.
    CredentialProcess,
    /// Shell `export` lines.
    Env,
    /// A credentials-file section.
    Ini,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsRequest {
    #[serde(default)]
    duration_seconds: Option<u32>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    format: Format,
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
            Json(json!({
                "access_key_id": c.access_key_id,
                "secret_access_key": c.secret_access_key.expose(),
                "session_token": c.session_token.expose(),
                "expiration": expiration,
                "duration_seconds": vended.duration_seconds,
                "capped": vended.capped,
                "request_id": vended.request_id,
                "connector": vended.connector_name,
            })),
        )
            .into_response(),
        Format::CredentialProcess => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "Version": 1,
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key.expose(),
                "SessionToken": c.session_token.expose(),
                "Expiration": expiration,
            })),
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

async fn credentials(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    who: Authenticated,
    JsonBody(request): JsonBody<CredentialsRequest>,
) -> Result<Response, ApiError> {
    let options = VendOptions {
        duration_seconds: request.duration_seconds,
        policy: request.policy,
    };
    let vended = state.vend(&who.caller, &id_or_name, options).await?;
    Ok(render(&vended, request.format))
}

async fn caller_identity(
    State(state): State<AppState>,
    Path(id_or_name): Path<String>,
    who: Authenticated,
) -> Result<Json<Value>, ApiError> {
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
            state.metrics.sts_error(e.code());
            ApiError::Sts(e)
        })?;
    Ok(Json(json!({
        "account": identity.account,
        "arn": identity.arn,
        "user_id": identity.user_id,
    })))
}
