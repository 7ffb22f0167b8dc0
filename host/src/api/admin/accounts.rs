//! `GET /admin/accounts`, `GET|PUT|DELETE /admin/accounts/{name}`. The secret access key is write-only:
//! answers show `"***"` in its place.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminErrors;
use super::{Admin, AdminError, AdminResult};
use crate::api::AppState;
use crate::api::extract::JsonBody;
use crate::api::openapi::ErrorBody;
use crate::model::{Account, AccountInput, AccountSource, AccountSourceInput};
use crate::secret::Secret;
use crate::store::Store;
use idfed_api::admin as api;

pub use idfed_api::admin::{AccountBody, AccountList, REDACTED};

/// The account routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, put, delete))
}

/// An account as answers show it: never its secret.
pub fn account_body(account: &Account) -> AccountBody {
    let source = match &account.source {
        AccountSource::IamUser { access_key_id, .. } => api::AccountSource::IamUser {
            access_key_id: access_key_id.clone(),
            secret_access_key: Some(REDACTED.to_owned()),
        },
        AccountSource::HostCredentials => api::AccountSource::HostCredentials,
    };
    AccountBody {
        name: account.name.clone(),
        description: account.description.clone(),
        source,
        region: account.region.clone(),
        sts_endpoint: account.sts_endpoint.clone(),
    }
}

/// What an administrator wrote, as the store takes it: the redaction sent back as it was shown (or no
/// secret at all) keeps the stored secret.
fn account_input(mut body: AccountBody) -> AccountInput {
    let source = match &mut body.source {
        api::AccountSource::IamUser {
            access_key_id,
            secret_access_key,
        } => AccountSourceInput::IamUser {
            access_key_id: std::mem::take(access_key_id),
            secret_access_key: secret_access_key
                .as_mut()
                .filter(|s| s.as_str() != REDACTED)
                .map(|s| Secret::new(std::mem::take(s))),
        },
        api::AccountSource::HostCredentials => AccountSourceInput::HostCredentials,
    };
    AccountInput {
        name: std::mem::take(&mut body.name),
        description: std::mem::take(&mut body.description),
        source,
        region: body.region.take(),
        sts_endpoint: body.sts_endpoint.take(),
    }
}

/// The AWS accounts (secrets shown as `***`).
#[utoipa::path(
    get,
    path = "/api/v1/admin/accounts",
    tag = "admin",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The accounts", body = AccountList),
        AdminErrors,
    )
)]
async fn list(State(state): State<AppState>, _admin: Admin) -> AdminResult<Json<AccountList>> {
    let accounts = state.service.store.list_accounts()?;
    Ok(Json(AccountList {
        accounts: accounts.iter().map(account_body).collect(),
    }))
}

/// An AWS account (its secret shown as `***`).
#[utoipa::path(
    get,
    path = "/api/v1/admin/accounts/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The account's name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The account", body = AccountBody),
        AdminErrors,
        (status = 404, description = "No such account (`not_found`)", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> AdminResult<Json<AccountBody>> {
    let account = state
        .service
        .store
        .get_account(&name)?
        .ok_or_else(|| AdminError::not_found(format!("no account named {name:?}")))?;
    Ok(Json(account_body(&account)))
}

/// Creates or replaces an AWS account (a `secret_access_key` of `***` keeps the stored one).
#[utoipa::path(
    put,
    path = "/api/v1/admin/accounts/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The account's name")),
    request_body(content = AccountBody, description = "The account (`name` may be left out: the path's)"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The account, replaced", body = AccountBody),
        (status = 201, description = "The account, created", body = AccountBody),
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
    JsonBody(body): JsonBody<AccountBody>,
) -> AdminResult<(StatusCode, Json<AccountBody>)> {
    if !body.name.is_empty() && body.name != name {
        return Err(AdminError::invalid(format!(
            "name: the body's name must be the path's ({name:?}), or be left out"
        )));
    }
    let mut input = account_input(body);
    input.name = name.clone();
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
    Ok((status, Json(account_body(&account))))
}

/// Deletes an AWS account.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/accounts/{name}",
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
