//! [`ApiError`]: every error the API answers, as JSON `{"error": {"code": "...", "message": "..."}}` with a
//! stable code and the status it means. Internal details go to the log, never to the caller.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::auth::workload::WorkloadError;
use crate::sts::{StsError, StsErrorKind};
use crate::vend::VendError;

/// An error answered by the API.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed or breaks a rule (400).
    InvalidRequest(String),
    /// The body is not readable JSON of the expected shape (422).
    UnreadableJson(String),
    /// The body is over the limit (413).
    BodyTooLarge,
    /// The connection ended before the body its `Content-Length` announced (400).
    IncompleteBody,
    /// The body stopped arriving for longer than the body timeout (408).
    BodyTimeout,
    /// The body's content type is not JSON (415).
    UnsupportedMediaType,
    /// No credentials were presented (401).
    MissingCredentials,
    /// An API key that is unknown, expired or malformed (401).
    InvalidApiKey,
    /// Authentication failed or the directory cannot be used.
    Auth(AuthError),
    /// A workload (CI) OIDC token was refused.
    Workload(WorkloadError),
    /// A vend failed.
    Vend(VendError),
    /// An STS call (other than the vend's own) failed.
    Sts(StsError),
    /// No such connector (404).
    ConnectorNotFound(String),
    /// The caller may not use this connector (403).
    Forbidden(String),
    /// A browser request authenticated by the session cookie without proof that idfed's own page sent it
    /// (no or a wrong `X-CSRF-Token`, or another site's request) (403).
    CsrfFailed(&'static str),
    /// No such route (404).
    NotFound,
    /// No such resource, said how (404 `not_found`).
    Missing(String),
    /// A change that conflicts with what is stored (409 `conflict`).
    Conflict(String),
    /// The caller may not do this, said why (403 `forbidden`).
    Refused(String),
    /// idfed itself failed (500): the detail is logged, not shown.
    Internal(String),
    /// idfed's store cannot be read now (503): the detail is logged, not shown.
    Unavailable(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Auth(e)
    }
}

impl From<WorkloadError> for ApiError {
    fn from(e: WorkloadError) -> Self {
        ApiError::Workload(e)
    }
}

impl From<VendError> for ApiError {
    fn from(e: VendError) -> Self {
        ApiError::Vend(e)
    }
}

/// An error's parts: status, stable code, message for the caller, and when to retry.
pub struct Parts {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// The message for the caller.
    pub message: String,
    /// `Retry-After`, if any.
    pub retry_after: Option<Duration>,
}

fn sts_parts(e: &StsError) -> (StatusCode, String, Option<Duration>) {
    match &e.kind {
        StsErrorKind::Invalid(_)
        | StsErrorKind::MalformedPolicy
        | StsErrorKind::PackedPolicyTooLarge => (StatusCode::BAD_REQUEST, e.message.clone(), None),
        StsErrorKind::Throttled { retry_after } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "STS is throttling requests; try again later".into(),
            Some(*retry_after),
        ),
        StsErrorKind::BudgetExhausted { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            e.message.clone(),
            Some(*retry_after),
        ),
        StsErrorKind::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "STS is unavailable; try again later".into(),
            None,
        ),
        StsErrorKind::AccessDenied => (
            StatusCode::BAD_GATEWAY,
            "STS refused the request (access denied to the connector's account)".into(),
            None,
        ),
        StsErrorKind::RegionDisabled => (
            StatusCode::BAD_GATEWAY,
            "STS is not enabled in the connector's region".into(),
            None,
        ),
        StsErrorKind::InvalidToken => (
            StatusCode::BAD_GATEWAY,
            "STS did not accept the connector account's credentials".into(),
            None,
        ),
        StsErrorKind::Other => (
            StatusCode::BAD_GATEWAY,
            "STS failed the request".into(),
            None,
        ),
    }
}

impl ApiError {
    /// The error's status, code and message.
    pub fn parts(&self) -> Parts {
        let simple = |status, code, message: &str| Parts {
            status,
            code,
            message: message.to_owned(),
            retry_after: None,
        };
        match self {
            ApiError::InvalidRequest(message) => Parts {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                message: message.clone(),
                retry_after: None,
            },
            ApiError::UnreadableJson(message) => Parts {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_json",
                message: message.clone(),
                retry_after: None,
            },
            ApiError::BodyTooLarge => simple(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is too large",
            ),
            ApiError::IncompleteBody => simple(
                StatusCode::BAD_REQUEST,
                "incomplete_body",
                "the connection ended before the whole body its Content-Length announced",
            ),
            ApiError::BodyTimeout => simple(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body stopped arriving",
            ),
            ApiError::UnsupportedMediaType => simple(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ),
            ApiError::MissingCredentials => simple(
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "authenticate with Authorization: Bearer <session token, API key or workload token>, or Basic",
            ),
            ApiError::InvalidApiKey => simple(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the API key is not valid",
            ),
            ApiError::Auth(e) => {
                let (status, retry_after) = match e {
                    AuthError::InvalidCredentials | AuthError::InvalidSession => {
                        (StatusCode::UNAUTHORIZED, None)
                    }
                    AuthError::TooManyAttempts { retry_after } => {
                        (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after))
                    }
                    AuthError::Unavailable(_) | AuthError::StoreUnavailable(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, None)
                    }
                    AuthError::Unsupported => (StatusCode::BAD_REQUEST, None),
                };
                Parts {
                    status,
                    code: e.code(),
                    // AuthError's Display never holds the operator's details.
                    message: e.to_string(),
                    retry_after,
                }
            }
            ApiError::Workload(e) => {
                let (status, retry_after) = match e {
                    WorkloadError::NoRule(_) => (StatusCode::FORBIDDEN, None),
                    WorkloadError::IssuerUnavailable => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(Duration::from_secs(5)),
                    ),
                    // An unknown key within the refetch gap: the keys may be fetched again after it.
                    _ => (StatusCode::UNAUTHORIZED, e.retry_after()),
                };
                Parts {
                    status,
                    code: e.code(),
                    // WorkloadError's Display never holds the token.
                    message: e.to_string(),
                    retry_after,
                }
            }
            ApiError::Vend(e) => {
                let (status, message, retry_after) = match e {
                    VendError::NotFound(_) => (StatusCode::NOT_FOUND, e.to_string(), None),
                    VendError::Forbidden(_) | VendError::Disabled(_) => {
                        (StatusCode::FORBIDDEN, e.to_string(), None)
                    }
                    VendError::Invalid(_) => (StatusCode::BAD_REQUEST, e.to_string(), None),
                    VendError::PluginDenied { .. } | VendError::ApprovalRequired { .. } => {
                        (StatusCode::FORBIDDEN, e.to_string(), None)
                    }
                    // Where no 202 can be answered (the container endpoint), a pending approval refuses.
                    VendError::ApprovalPending(approval) => (
                        StatusCode::FORBIDDEN,
                        format!(
                            "approval required: a member of group {:?} must approve this request \
                             (approval request {}, status {:?}); the policy says: {}",
                            approval.group, approval.id, approval.status, approval.reason
                        ),
                        None,
                    ),
                    // Busy is the host's capacity, not a broken plugin: come back in a moment.
                    VendError::PluginFault {
                        code: "plugin_busy",
                        ..
                    } => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        e.to_string(),
                        Some(Duration::from_secs(1)),
                    ),
                    VendError::PluginFault { .. } => (StatusCode::BAD_GATEWAY, e.to_string(), None),
                    VendError::Sts(sts) => sts_parts(sts),
                    VendError::Internal(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "idfed could not complete the request".into(),
                        None,
                    ),
                    VendError::StoreUnavailable(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        e.to_string(),
                        Some(Duration::from_secs(1)),
                    ),
                };
                Parts {
                    status,
                    code: e.code(),
                    message,
                    retry_after,
                }
            }
            ApiError::Sts(e) => {
                let (status, message, retry_after) = sts_parts(e);
                Parts {
                    status,
                    code: e.code(),
                    message,
                    retry_after,
                }
            }
            ApiError::ConnectorNotFound(name) => Parts {
                status: StatusCode::NOT_FOUND,
                code: "connector_not_found",
                message: format!("no connector named {name:?}"),
                retry_after: None,
            },
            ApiError::Forbidden(name) => Parts {
                status: StatusCode::FORBIDDEN,
                code: "forbidden",
                message: format!("you may not use connector {name:?}"),
                retry_after: None,
            },
            ApiError::CsrfFailed(why) => simple(StatusCode::FORBIDDEN, "csrf_failed", why),
            ApiError::NotFound => simple(StatusCode::NOT_FOUND, "not_found", "no such resource"),
            ApiError::Missing(message) => Parts {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: message.clone(),
                retry_after: None,
            },
            ApiError::Conflict(message) => Parts {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message: message.clone(),
                retry_after: None,
            },
            ApiError::Refused(message) => Parts {
                status: StatusCode::FORBIDDEN,
                code: "forbidden",
                message: message.clone(),
                retry_after: None,
            },
            ApiError::Internal(_) => simple(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "idfed could not complete the request",
            ),
            ApiError::Unavailable(_) => simple(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "idfed cannot serve this now; try again later",
            ),
        }
    }

    /// Logs what the caller is not told.
    fn log(&self) {
        match self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "unavailable"),
            ApiError::Vend(VendError::Internal(detail)) => {
                tracing::error!(%detail, "vend failed inside idfed")
            }
            ApiError::Vend(VendError::PluginFault {
                binding,
                code,
                detail,
            }) => tracing::warn!(binding, code, %detail, "plugin fault"),
            ApiError::Vend(VendError::Sts(e)) | ApiError::Sts(e) => {
                tracing::warn!(code = e.code(), message = %e.message, "STS error")
            }
            ApiError::Auth(AuthError::Unavailable(detail)) => {
                tracing::warn!(%detail, "directory unavailable")
            }
            ApiError::Auth(AuthError::StoreUnavailable(detail))
            | ApiError::Vend(VendError::StoreUnavailable(detail)) => {
                tracing::warn!(%detail, "store unavailable")
            }
            _ => {}
        }
    }
}

impl ApiError {
    /// Why a request body could not be read: over the limit, cut short by the client, stalled past the
    /// body timeout, or otherwise unreadable.
    pub fn from_body_rejection(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::BodyTooLarge;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(e) = source {
            if e.is::<super::idle_body::BodyStalled>() {
                return ApiError::BodyTimeout;
            }
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::UnexpectedEof)
                || e.downcast_ref::<hyper::Error>()
                    .is_some_and(|e| e.is_incomplete_message())
            {
                return ApiError::IncompleteBody;
            }
            source = e.source();
        }
        ApiError::InvalidRequest("the request body could not be read".into())
    }
}

/// The JSON error body.
pub fn error_body(code: &str, message: &str) -> super::openapi::ErrorBody {
    super::openapi::ErrorBody {
        error: super::openapi::ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
            pointer: None,
        },
    }
}

/// Adds `Retry-After` (whole seconds, at least 1).
pub fn set_retry_after(response: &mut Response, retry_after: Option<Duration>) {
    if let Some(after) = retry_after {
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Not a failure: the request waits for an approval.
        if let ApiError::Vend(VendError::ApprovalPending(approval)) = self {
            return (
                StatusCode::ACCEPTED,
                Json(idfed_api::ApprovalPending {
                    approval: *approval,
                }),
            )
                .into_response();
        }
        self.log();
        let parts = self.parts();
        let mut response =
            (parts.status, Json(error_body(parts.code, &parts.message))).into_response();
        set_retry_after(&mut response, parts.retry_after);
        if parts.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, Basic realm=\"idfed\""),
            );
        }
        response
    }
}
