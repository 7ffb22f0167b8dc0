//! Just-in-time approvals: a vend whose plugin chain answers *needs approval* is answered `202` with an
//! [`ApprovalPending`]; members of the named group (never the requester) approve or deny it
//! (`/approvals`); the requester then repeats the request, which the chain sees approved.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where an approval request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for an approver.
    Pending,
    /// Approved: the requester may repeat the request once, until `expires`.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Nobody decided in time, or the approval was not used in time.
    Expired,
    /// Approved and used by a vend.
    Used,
}

/// An approval request: what is asked, why, who may approve, and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalRequestBody {
    /// The request's id.
    pub id: Uuid,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Who asked (as the audit log names callers).
    pub requester: String,
    /// The connector asked for.
    pub connector: String,
    /// The connector's id.
    pub connector_id: Uuid,
    /// What the credentials are for: `credentials`, `console-sign-in` or `service-token:<service>`.
    pub purpose: String,
    /// The duration asked for, in seconds, if the requester asked for one.
    pub duration_seconds: Option<u32>,
    /// The requester's justification.
    pub justification: Option<String>,
    /// The requester's ticket reference.
    pub ticket: Option<String>,
    /// The group whose members may approve (the requester never may).
    pub group: String,
    /// Why the policy asks for an approval (shown to both sides).
    pub reason: String,
    /// The longest duration an approval grants, in seconds, when the policy caps it.
    pub max_duration_seconds: Option<u32>,
    /// When it was asked (RFC 3339).
    pub created: String,
    /// Pending: until when it may be decided; approved: until when it may be used (RFC 3339).
    pub expires: String,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// When (RFC 3339).
    pub decided_at: Option<String>,
    /// The approver's comment.
    pub comment: Option<String>,
}

/// The answer (`202 Accepted`) to a vend that needs an approval first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalPending {
    /// The approval request (a new one, or the one already pending for the same request).
    pub approval: ApprovalRequestBody,
}

/// Approval requests: those the caller may decide, and the caller's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalList {
    /// Newest first.
    pub approvals: Vec<ApprovalRequestBody>,
}

/// An approver's decision (`POST /approvals/{id}/approve` or `/deny`; an empty body is `{}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    /// A comment for the requester (at most 1,024 bytes), kept in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}
