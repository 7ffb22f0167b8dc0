//! `GET /admin/accounts`, `GET|PUT|DELETE /admin/accounts/{name}`. The secret access key is write-only:
//! answers show `"***"` in its place.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminErrors;
use super::{Admin, AdminError, AdminResult};
use crate::api::AppState;
use crate::api::extract::JsonBody;
use crate::api::openapi::ErrorBody;
use crate::model::{Account, AccountInput, AccountSource, AccountSourceInput};
use crate::store::Store;

/// What answers show in place of a secret.
pub const REDACTED: &str = "***";

/// The account routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, put, delete))
}

/// An account as answers show it: never its secret.
pub fn account_json(account: &Account) -> Value {
    let source = match &account.source {
        AccountSource::IamUser { access_key_id, .. } => json!({
            "type": "iam-user",
            "access_key_id": access_key_id,
            "secret_access_key": REDACTED,
        }),
        AccountSource::HostCredentials => json!({"type": "host-credentials"}),
    };
    json!({
        "name": account.name,
        "description": account.description,
        "source": source,
        "region": account.region,
        "sts_endpoint": account.sts_endpoint,
    })
}

/// The AWS accounts (secrets shown as `***`).
#[utoipa::path(
    get,
    path = "/admin/accounts",
    tag = "admin",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "`{\"accounts\": [...]}`", body = serde_json::Value),
        AdminErrors,
    )
)]
async fn list(State(state): State<AppState>, _admin: Admin) -> AdminResult<Json<Value>> {
    let accounts = state.service.store.list_accounts()?;
    let accounts: Vec<Value> = accounts.iter().map(account_json).collect();
    Ok(Json(json!({ "accounts": accounts })))
}

/// An AWS account (its secret shown as `***`).
#[utoipa::path(
    get,
    path = "/admin/accounts/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The account's name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The account", body = serde_json::Value),
        AdminErrors,
        (status = 404, description = "No such account (`not_found`)", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> AdminResult<Json<Value>> {
    let account = state
        .service
        .store
        .get_account(&name)?
        .ok_or_else(|| AdminError::not_found(format!("no account named {name:?}")))?;
    Ok(Json(account_json(&account)))
}

/// Creates or replaces an AWS account (a `secret_access_key` of `***` keeps the stored one).
#[utoipa::path(
    put,
    path = "/admin/accounts/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The account's name")),
    request_body(content = Object, description = "The account: `name` (optional, the path's), `description`, `source` (`{\"type\": \"iam-user\", \"access_key_id\", \"secret_access_key\"}` or `{\"type\": \"host-credentials\"}`), `region`, `sts_endpoint`"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The account, replaced", body = serde_json::Value),
        (status = 201, description = "The account, created", body = serde_json::Value),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
    )
)]
async fn put(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    JsonBody(mut body): JsonBody<Value>,
) -> AdminResult<(StatusCode, Json<Value>)> {
    let Some(object) = body.as_object_mut() else {
        return Err(AdminError::invalid("the body must be a JSON object"));
    };
    match object.get("name") {
        None => {
            object.insert("name".into(), Value::String(name.clone()));
        }
        Some(Value::String(given)) if *given == name => {}
        Some(_) => {
            return Err(AdminError::invalid(format!(
                "name: the body's name must be the path's ({name:?}), or be left out"
            )));
        }
    }
    let mut input: AccountInput = serde_json::from_value(body).map_err(|e| {
        AdminError::Api(crate::api::ApiError::UnreadableJson(format!(
            "the body is not a valid account: {e}"
        )))
    })?;
    // The redaction sent back as it was shown means "keep the stored secret".
    if let AccountSourceInput::IamUser {
        secret_access_key, ..
    } = &mut input.source
        && secret_access_key
            .as_ref()
            .is_some_and(|s| s.expose() == REDACTED)
    {
        *secret_access_key = None;
    }
    let store = &state.service.store;
    let existed = store.get_account(&name)?.is_some();
    let kind = match input.source {
        AccountSourceInput::IamUser { .. } => "iam-user",
        AccountSourceInput::HostCredentials => "host-credentials",
    };
    let (verb, status) = if existed {
        ("update", StatusCode::OK)
    } else {
        ("create", StatusCode::CREATED)
    };
    let event = admin.event(
        &format!("admin.account.{verb}"),
        None,
        format!("account {name:?} {verb}d ({kind})"),
    );
    let account = store
        .audited(&state.service.audit, event)
        .put_account(input)?;
    state.service.vendor.cache().flush_account(&account.name);
    Ok((status, Json(account_json(&account))))
}

/// Deletes an AWS account.
#[utoipa::path(
    delete,
    path = "/admin/accounts/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The account's name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The account is deleted"),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
    )
)]
async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> AdminResult<StatusCode> {
    let event = admin.event(
        "admin.account.delete",
        None,
        format!("account {name:?} deleted"),
    );
    state
        .service
        .store
        .audited(&state.service.audit, event)
        .delete_account(&name)?;
    state.service.vendor.cache().flush_account(&name);
    Ok(StatusCode::NO_CONTENT)
}
