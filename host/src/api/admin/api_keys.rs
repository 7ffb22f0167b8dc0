//! `GET|POST /admin/api-keys`, `DELETE /admin/api-keys/{id}`: system-scope API keys. A key is shown once,
//! in the answer that creates it; lists never show it nor its hash.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminErrors;
use super::{Admin, AdminError, AdminResult, parse_time};
use crate::api::extract::JsonBody;
use crate::api::openapi::ErrorBody;
use crate::api::{AppState, rfc3339};
use crate::model::{ApiKey, Connector};
use crate::store::Store;

/// The API key routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
}

pub use idfed_api::admin::{ApiKeyBody, ApiKeyInput, ApiKeyList, KeyConnector};

/// How `key` is shown (without its secret), naming its connectors from `connectors`.
pub fn api_key_body(key: &ApiKey, connectors: &[Connector]) -> ApiKeyBody {
    ApiKeyBody {
        id: key.id,
        name: key.name.clone(),
        connectors: key
            .connectors
            .iter()
            .map(|id| KeyConnector {
                id: *id,
                name: connectors
                    .iter()
                    .find(|c| c.id == *id)
                    .map(|c| c.name.clone()),
            })
            .collect(),
        created: rfc3339(key.created),
        expires: key.expires.map(rfc3339),
        expired: key.expires.is_some_and(|at| at <= SystemTime::now()),
        last_used: key.last_used.map(rfc3339),
        key: None,
    }
}

/// The system-scope API keys (never the keys nor their hashes).
#[utoipa::path(
    get,
    path = "/api/v1/admin/api-keys",
    tag = "admin",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The API keys", body = ApiKeyList),
        AdminErrors,
    )
)]
async fn list(State(state): State<AppState>, _admin: Admin) -> AdminResult<Json<ApiKeyList>> {
    let store = &state.service.store;
    let keys = store.list_api_keys()?;
    let connectors = store.list_connectors()?;
    Ok(Json(ApiKeyList {
        api_keys: keys.iter().map(|k| api_key_body(k, &connectors)).collect(),
    }))
}

/// Creates a system-scope API key, shown once in the answer (`key`).
#[utoipa::path(
    post,
    path = "/api/v1/admin/api-keys",
    tag = "admin",
    request_body = ApiKeyInput,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The key, with `key` (shown only now)", body = ApiKeyBody),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(input): JsonBody<ApiKeyInput>,
) -> AdminResult<Response> {
    let store = &state.service.store;
    let mut ids = Vec::new();
    for (i, id_or_name) in input.connectors.iter().enumerate() {
        let connector = store.get_connector(id_or_name)?.ok_or_else(|| {
            AdminError::invalid(format!(
                "connectors[{i}]: no connector {id_or_name:?} (give ids or names)"
            ))
        })?;
        ids.push(connector.id);
    }
    let expires = input
        .expires
        .as_deref()
        .map(|text| parse_time("expires", text))
        .transpose()?;
    let names: Vec<String> = ids
        .iter()
        .filter_map(|id| store.get_connector(&id.to_string()).ok().flatten())
        .map(|c| c.name)
        .collect();
    let event = admin.event(
        "admin.api_key.create",
        None,
        format!(
            "API key {:?} created for connector(s) {}{}",
            input.name,
            names.join(", "),
            expires
                .map(|at| format!(", expiring {}", rfc3339(at)))
                .unwrap_or_default()
        ),
    );
    let (key, secret) =
        store
            .audited(&state.service.audit, event)
            .create_api_key(&input.name, ids, expires)?;
    let connectors = store.list_connectors()?;
    let mut body = api_key_body(&key, &connectors);
    body.key = Some(secret.expose().to_owned());
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

/// Deletes a system-scope API key.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/api-keys/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The API key's id (a UUID)")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The key is deleted"),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> AdminResult<StatusCode> {
    let id = Uuid::try_parse(&id)
        .map_err(|_| AdminError::invalid(format!("{id:?} is not an API key id (a UUID)")))?;
    let store = &state.service.store;
    let name = store
        .list_api_keys()?
        .into_iter()
        .find(|k| k.id == id)
        .map(|k| k.name);
    let event = admin.event(
        "admin.api_key.delete",
        None,
        format!(
            "API key {:?} ({id}) deleted",
            name.as_deref().unwrap_or("?")
        ),
    );
    store
        .audited(&state.service.audit, event)
        .delete_api_key(id)?;
    Ok(StatusCode::NO_CONTENT)
}
