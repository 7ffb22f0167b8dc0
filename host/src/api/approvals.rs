//! `GET /approvals`, `GET /approvals/{id}`, `POST /approvals/{id}/approve|deny`: the approval requests a
//! caller may decide (those of a group they are in, not their own) and their own. Deciding asks the
//! directory for the approver's groups at that moment (see `crate::approvals`).

use axum::Json;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Authenticated, JsonBody};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::approvals::{ApprovalError, ApprovalRecord};
use crate::model::{Caller, Identity};

pub use idfed_api::approvals::{
    ApprovalDecision, ApprovalList, ApprovalRequestBody, ApprovalStatus,
};

/// The approval routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(approve))
        .routes(routes!(deny))
}

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> Self {
        match e {
            ApprovalError::NotFound(_) => ApiError::Missing(e.to_string()),
            ApprovalError::NotPending { .. } => ApiError::Conflict(e.to_string()),
            ApprovalError::SelfApproval(_) | ApprovalError::NotInGroup(_) => {
                ApiError::Refused(e.to_string())
            }
            ApprovalError::Invalid | ApprovalError::TooMany(_) => {
                ApiError::InvalidRequest(e.to_string())
            }
            ApprovalError::Store(detail) => ApiError::Unavailable(detail),
        }
    }
}

/// Whether `caller` may see `record`: the requester, a member of its group (as the session knows the
/// groups), or an administrator.
fn may_see(caller: &Caller, record: &ApprovalRecord) -> bool {
    if caller.display_name() == record.requester {
        return true;
    }
    match &caller.identity {
        Identity::User {
            groups, is_admin, ..
        } => *is_admin || groups.iter().any(|g| g.eq_ignore_ascii_case(&record.group)),
        _ => false,
    }
}

/// The approval requests the caller may see: their own, and those they may decide (pending ones first).
#[utoipa::path(
    get,
    path = "/api/v1/approvals",
    tag = "approvals",
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The requests, pending first, then newest first", body = ApprovalList),
        (status = 400, description = "A malformed `Authorization` header (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now (`unavailable`)", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    who: Authenticated,
) -> Result<Json<ApprovalList>, ApiError> {
    let now = std::time::SystemTime::now();
    let mut approvals: Vec<ApprovalRequestBody> = state
        .service
        .approvals
        .list()?
        .iter()
        .filter(|r| may_see(&who.caller, r))
        .map(|r| r.body(now))
        .collect();
    approvals.sort_by_key(|a| a.status != ApprovalStatus::Pending);
    approvals.truncate(500);
    Ok(Json(ApprovalList { approvals }))
}

/// One approval request (its requester, a member of its group or an administrator).
#[utoipa::path(
    get,
    path = "/api/v1/approvals/{id}",
    tag = "approvals",
    params(("id" = Uuid, Path, description = "The approval request's id")),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The request", body = ApprovalRequestBody),
        (status = 400, description = "A malformed `Authorization` header or id (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 404, description = "No such request, or not one the caller may see (`not_found`)", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now (`unavailable`)", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ApprovalRequestBody>, ApiError> {
    let id = parse_id(&id)?;
    // Listing marks what expired (and audits it) before one is shown.
    let record = state
        .service
        .approvals
        .list()?
        .into_iter()
        .find(|r| r.id == id)
        .filter(|r| may_see(&who.caller, r))
        .ok_or(ApprovalError::NotFound(id))?;
    Ok(Json(record.body(std::time::SystemTime::now())))
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::InvalidRequest(format!("{id:?} is not an approval request's id")))
}

async fn decide(
    state: &AppState,
    who: &Authenticated,
    id: &str,
    approve: bool,
    decision: ApprovalDecision,
) -> Result<Json<ApprovalRequestBody>, ApiError> {
    let id = parse_id(id)?;
    let Identity::User { name, .. } = &who.caller.identity else {
        return Err(ApiError::Refused(
            "approvals are decided by people, not by API keys or workloads".into(),
        ));
    };
    let approvals = &state.service.approvals;
    let record = approvals.get(id)?.ok_or(ApprovalError::NotFound(id))?;
    let groups = if record.requester == *name {
        Vec::new()
    } else {
        state.service.auth.groups_now(name).await?
    };
    let decided = approvals.decide(id, name, &groups, approve, decision.comment)?;
    Ok(Json(decided.body(std::time::SystemTime::now())))
}

/// Approves a pending request: its requester may then repeat the request once, within the approval
/// window. The approver must be in the request's group now (the directory is asked) and not its
/// requester.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/approve",
    tag = "approvals",
    params(("id" = Uuid, Path, description = "The approval request's id")),
    request_body(content = ApprovalDecision, description = "Optional: an empty body is `{}`"),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The request, approved", body = ApprovalRequestBody),
        (status = 400, description = "A malformed id or comment (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 403, description = "The caller asked for it, is not in its group, or is not a person (`forbidden`), or another site's request (`csrf_failed`)", body = ErrorBody),
        (status = 404, description = "No such request (`not_found`)", body = ErrorBody),
        (status = 409, description = "Decided already, or expired (`conflict`)", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now (`directory_unavailable`, `unavailable`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
    )
)]
async fn approve(
    State(state): State<AppState>,
    who: Authenticated,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<ApprovalDecision>,
) -> Result<Json<ApprovalRequestBody>, ApiError> {
    decide(&state, &who, &id, true, decision).await
}

/// Denies a pending request. The same rules as approving.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/deny",
    tag = "approvals",
    params(("id" = Uuid, Path, description = "The approval request's id")),
    request_body(content = ApprovalDecision, description = "Optional: an empty body is `{}`"),
    security(("bearer" = []), ("basic" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The request, denied", body = ApprovalRequestBody),
        (status = 400, description = "A malformed id or comment (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials (`missing_credentials`, `invalid_credentials`, `invalid_session`, a `workload_…` code)", body = ErrorBody),
        (status = 403, description = "The caller asked for it, is not in its group, or is not a person (`forbidden`), or another site's request (`csrf_failed`)", body = ErrorBody),
        (status = 404, description = "No such request (`not_found`)", body = ErrorBody),
        (status = 409, description = "Decided already, or expired (`conflict`)", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now (`directory_unavailable`, `unavailable`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
    )
)]
async fn deny(
    State(state): State<AppState>,
    who: Authenticated,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<ApprovalDecision>,
) -> Result<Json<ApprovalRequestBody>, ApiError> {
    decide(&state, &who, &id, false, decision).await
}
