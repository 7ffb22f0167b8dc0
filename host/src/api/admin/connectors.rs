//! `GET|POST /admin/connectors`, `GET|PUT|DELETE /admin/connectors/{id_or_name}`. Connectors are checked
//! by the store (`check_connector`: STS's rules, the field and the rule named in the message). Answers carry
//! the connector's `revision` (and `GET` an `ETag`); a `PUT` with `If-Match` is refused (412) if the
//! connector changed since, and any `PUT` is refused (409) if it changes while being checked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminErrors;
use super::bindings::{binding_body, binding_spec, check_binding};
use super::{Admin, AdminError, AdminResult, find_connector};
use crate::api::extract::JsonBody;
use crate::api::openapi::ErrorBody;
use crate::api::{ApiError, AppState};
use crate::model::{BindingSpec, Connector};
use crate::store::Store;

/// The connector routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, delete))
        .routes(routes!(flush_cache))
}

pub use idfed_api::admin::{ConnectorDetail, ConnectorDetailList, FlushedBody};

/// The connector an administrator wrote, with its id and (as stored) bindings.
fn connector_of(input: ConnectorDetail, id: Uuid, bindings: Vec<BindingSpec>) -> Connector {
    Connector {
        id,
        name: input.name,
        description: input.description,
        account: input.account,
        principal: input.principal,
        policy: input.policy,
        policy_arns: input.policy_arns,
        default_duration_seconds: input.default_duration_seconds,
        max_duration_seconds: input.max_duration_seconds,
        groups: input.groups,
        system_scope: input.system_scope,
        enabled: input.enabled,
        credential_cache: input.credential_cache,
        bindings,
    }
}

/// A connector as admin answers show it: everything (a connector holds no secret).
pub fn connector_detail(c: &Connector) -> ConnectorDetail {
    ConnectorDetail {
        id: Some(c.id),
        name: c.name.clone(),
        description: c.description.clone(),
        account: c.account.clone(),
        principal_type: Some(c.principal.principal_type()),
        principal: c.principal.clone(),
        policy: c.policy.clone(),
        policy_arns: c.policy_arns.clone(),
        default_duration_seconds: c.default_duration_seconds,
        max_duration_seconds: c.max_duration_seconds,
        groups: c.groups.clone(),
        system_scope: c.system_scope,
        enabled: c.enabled,
        credential_cache: c.credential_cache,
        bindings: Some(c.bindings.iter().map(binding_body).collect()),
        revision: Some(c.revision()),
    }
}

/// Refuses an edit whose `If-Match` (a connector's `revision`, quoted or not; `*` for any) is not the
/// connector's revision now: 412 `precondition_failed`. No `If-Match`, no check.
fn check_if_match(headers: &HeaderMap, connector: &Connector) -> AdminResult<()> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let revision = connector.revision();
    let matches = value.to_str().is_ok_and(|tags| {
        tags.split(',')
            .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
            .any(|t| t == revision || t == "*")
    });
    if matches {
        Ok(())
    } else {
        Err(AdminError::Coded {
            status: StatusCode::PRECONDITION_FAILED,
            code: "precondition_failed",
            message: format!(
                "connector {:?} was changed since you read it (If-Match): read it again",
                connector.name
            ),
            pointer: None,
        })
    }
}

/// Every connector, in full.
#[utoipa::path(
    get,
    path = "/api/v1/admin/connectors",
    tag = "admin",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The connectors", body = ConnectorDetailList),
        AdminErrors,
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> AdminResult<Json<ConnectorDetailList>> {
    let connectors = state.service.store.list_connectors()?;
    Ok(Json(ConnectorDetailList {
        connectors: connectors.iter().map(connector_detail).collect(),
    }))
}

/// A connector, in full.
#[utoipa::path(
    get,
    path = "/api/v1/admin/connectors/{id_or_name}",
    tag = "admin",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The connector", body = ConnectorDetail),
        AdminErrors,
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id_or_name): Path<String>,
) -> AdminResult<Response> {
    let connector = find_connector(&state, &id_or_name)?;
    let etag = format!("\"{}\"", connector.revision());
    Ok(([(header::ETAG, etag)], Json(connector_detail(&connector))).into_response())
}

/// Creates a connector (the server assigns its id; bind plugins through `/bindings`).
#[utoipa::path(
    post,
    path = "/api/v1/admin/connectors",
    tag = "admin",
    request_body = ConnectorDetail,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The connector", body = ConnectorDetail),
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
    JsonBody(input): JsonBody<ConnectorDetail>,
) -> AdminResult<(StatusCode, Json<ConnectorDetail>)> {
    if input.id.is_some() {
        return Err(AdminError::invalid(
            "id: the server assigns a new connector's id; leave it out",
        ));
    }
    if input.bindings.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(AdminError::invalid(
            "bindings: bind plugins with POST /api/v1/admin/connectors/{connector}/bindings",
        ));
    }
    let connector = connector_of(input, Uuid::new_v4(), Vec::new());
    let event = admin.event(
        "admin.connector.create",
        Some(&connector),
        format!(
            "connector {:?} created ({:?}, account {:?})",
            connector.name,
            connector.principal.principal_type(),
            connector.account
        ),
    );
    let connector = state
        .service
        .store
        .audited(&state.service.audit, event)
        .create_connector(connector)?;
    Ok((StatusCode::CREATED, Json(connector_detail(&connector))))
}

/// Replaces a connector (its bindings kept unless given). With `If-Match: "<revision>"` (from a read), only
/// if nobody changed it since.
#[utoipa::path(
    put,
    path = "/api/v1/admin/connectors/{id_or_name}",
    tag = "admin",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    request_body = ConnectorDetail,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The connector", body = ConnectorDetail),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`), or a change by someone else meanwhile", body = ErrorBody),
        (status = 412, description = "`If-Match` is not the connector's revision now (`precondition_failed`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`), or a binding a plugin refuses", body = ErrorBody),
    )
)]
async fn replace(
    State(state): State<AppState>,
    admin: Admin,
    Path(id_or_name): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ConnectorDetail>,
) -> AdminResult<Json<ConnectorDetail>> {
    let existing = find_connector(&state, &id_or_name)?;
    check_if_match(&headers, &existing)?;
    if input.id.is_some_and(|id| id != existing.id) {
        return Err(AdminError::invalid(format!(
            "id: a connector's id cannot change (this one is {})",
            existing.id
        )));
    }
    let mut input = input;
    let bindings = match input.bindings.take() {
        None => existing.bindings.clone(),
        Some(given) => {
            let given: Vec<BindingSpec> =
                given.into_iter().map(|b| binding_spec(&state, b)).collect();
            // New or changed bindings are checked by their plugin's validate-config now.
            for spec in &given {
                if !existing.bindings.contains(spec) {
                    check_binding(&state, spec).await?;
                }
            }
            given
        }
    };
    let connector = connector_of(input, existing.id, bindings);
    let event = admin.event(
        "admin.connector.update",
        Some(&connector),
        if existing.name == connector.name {
            format!("connector {:?} replaced", connector.name)
        } else {
            format!(
                "connector {:?} replaced, renamed from {:?}",
                connector.name, existing.name
            )
        },
    );
    let connector = state
        .service
        .store
        .audited(&state.service.audit, event)
        .update_connector(connector, &existing)?;
    state.service.vendor.cache().flush_connector(connector.id);
    for dropped in existing
        .bindings
        .iter()
        .filter(|old| !connector.bindings.iter().any(|b| b.id == old.id))
    {
        if let Err(e) = state.service.plugins.kv().remove_binding(&dropped.id) {
            tracing::warn!(binding = %dropped.id, error = %e, "could not remove a binding's state");
        }
    }
    Ok(Json(connector_detail(&connector)))
}

/// Deletes a connector and its bindings.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/connectors/{id_or_name}",
    tag = "admin",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The connector is deleted"),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
    )
)]
async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id_or_name): Path<String>,
) -> AdminResult<StatusCode> {
    let connector = find_connector(&state, &id_or_name)?;
    let event = admin.event(
        "admin.connector.delete",
        Some(&connector),
        format!("connector {:?} deleted", connector.name),
    );
    state
        .service
        .store
        .audited(&state.service.audit, event)
        .delete_connector(connector.id)?;
    state.service.vendor.cache().flush_connector(connector.id);
    for binding in &connector.bindings {
        if let Err(e) = state.service.plugins.kv().remove_binding(&binding.id) {
            tracing::warn!(binding = %binding.id, error = %e, "could not remove a binding's state");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every credential set cached for a connector: the next vend of each caller goes to STS. Credentials
/// already handed out stay valid until they expire (STS cannot take them back; revoke the role's sessions
/// in IAM for that).
#[utoipa::path(
    post,
    path = "/api/v1/admin/connectors/{id_or_name}/cache/flush",
    tag = "admin",
    params(("id_or_name" = String, Path, description = "The connector's id or name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The entries were ended", body = FlushedBody),
        AdminErrors,
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
    )
)]
async fn flush_cache(
    State(state): State<AppState>,
    admin: Admin,
    Path(id_or_name): Path<String>,
) -> AdminResult<Json<FlushedBody>> {
    let connector = find_connector(&state, &id_or_name)?;
    // Audited first: a flush that cannot be audited is not made.
    let event = admin.event(
        "admin.connector.cache.flush",
        Some(&connector),
        format!("credential cache of connector {:?} flushed", connector.name),
    );
    state
        .service
        .audit
        .append_durable(event)
        .await
        .map_err(|e| ApiError::Unavailable(format!("audit log: {e}")))?;
    // Here and on every other replica.
    let flushed = state.service.flushes.flush_connector(connector.id)?;
    Ok(Json(FlushedBody {
        connector: connector.name,
        flushed,
    }))
}
