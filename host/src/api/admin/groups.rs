//! `GET /admin/groups`: the directory's groups, for choosing who may use a connector.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, AdminResult};
use crate::api::openapi::ErrorBody;
use crate::api::{ApiError, AppState};

/// The most groups one answer lists.
pub const MAX_GROUPS: usize = 5000;

pub use idfed_api::admin::GroupList;

/// The groups route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// The directory's groups (sorted, at most 5,000) and the administrators' groups.
#[utoipa::path(
    get,
    path = "/api/v1/admin/groups",
    tag = "admin",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The directory's groups", body = GroupList),
        (status = 400, description = "The directory cannot list its groups (`unsupported`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "The caller is not an administrator (`admin_only`)", body = ErrorBody),
        (status = 429, description = "Too many failed logins, with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory cannot be used now", body = ErrorBody),
    )
)]
async fn list(State(state): State<AppState>, _admin: Admin) -> AdminResult<Json<GroupList>> {
    let auth = &state.service.auth;
    let groups = auth
        .list_groups(MAX_GROUPS + 1)
        .await
        .map_err(ApiError::from)?;
    let truncated = groups.len() > MAX_GROUPS;
    let groups = &groups[..groups.len().min(MAX_GROUPS)];
    Ok(Json(GroupList {
        groups: groups.to_vec(),
        admin_groups: auth.admin_groups().to_vec(),
        truncated,
    }))
}
