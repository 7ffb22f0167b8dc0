//! The admin API under `/api/v1/admin`: accounts, connectors, plugins and their bindings, system-scope API
//! keys, the audit log, the directory's groups and IAM policy examples. Administrators only (`Identity::User { is_admin: true }`);
//! anyone else gets 403 `admin_only`, system-scope API keys always. Every change is audited
//! (`admin.<resource>.<verb>`, outcome `changed`), never with a secret.
//!
//! Errors are the API's JSON errors; store errors map to `not_found` (404), `conflict` (409) and
//! `invalid_request` (400), plugin load and bind errors keep their own codes (422, with the plugin's JSON
//! pointer when it gave one).

mod accounts;
mod api_keys;
mod audit;
mod bindings;
mod connectors;
mod groups;
mod plugins;
mod policy_examples;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;

use super::extract::Authenticated;
use super::openapi::ErrorBody;
use super::{ApiError, AppState, REQUEST_ID, error_body};
use crate::audit::{AuditEvent, Outcome};
use crate::model::{Caller, Connector, Identity};
use crate::plugins::{BindError, LoadError};
use crate::store::{Store, StoreError};

/// The admin routes (relative to `/api/v1`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::router())
        .merge(connectors::router())
        .merge(plugins::router())
        .merge(bindings::router())
        .merge(api_keys::router())
        .merge(audit::router())
        .merge(groups::router())
        .merge(policy_examples::router())
}

/// The errors every admin route may answer, for the OpenAPI document (`responses(…, AdminErrors)`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// A bad request (`invalid_request`)
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No or bad credentials
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The caller is not an administrator (`admin_only`)
    #[response(status = 403)]
    AdminOnly(ErrorBody),
    /// Too many failed logins, with `Retry-After`
    #[response(status = 429)]
    TooManyAttempts(ErrorBody),
    /// The directory, the store or the audit log cannot be used now
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// An admin route's error: one of the API's, or one with a code of its own.
#[derive(Debug)]
pub enum AdminError {
    /// One of the API's errors.
    Api(ApiError),
    /// An error with its own status and code (and, for plugin configurations, a JSON pointer).
    Coded {
        /// The status.
        status: StatusCode,
        /// The stable code.
        code: &'static str,
        /// The message for the caller.
        message: String,
        /// Where in the plugin configuration the problem is, when the plugin said.
        pointer: Option<String>,
    },
}

impl AdminError {
    fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AdminError::Coded {
            status,
            code,
            message: message.into(),
            pointer: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        AdminError::Api(ApiError::InvalidRequest(message.into()))
    }

    /// 404 `not_found`, naming what.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::coded(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500, the detail logged.
    pub fn internal(detail: impl Into<String>) -> Self {
        AdminError::Api(ApiError::Internal(detail.into()))
    }

    /// The status (for tests).
    #[cfg(test)]
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Api(e) => e.parts().status,
            AdminError::Coded { status, .. } => *status,
        }
    }
}

impl From<ApiError> for AdminError {
    fn from(e: ApiError) -> Self {
        AdminError::Api(e)
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::not_found(format!("not found: {m}")),
            StoreError::Conflict(m) => Self::coded(StatusCode::CONFLICT, "conflict", m),
            StoreError::Invalid(m) => Self::invalid(m),
            StoreError::Sealing(m) => Self::internal(format!("sealing: {m}")),
            StoreError::Io(m) => AdminError::Api(ApiError::Unavailable(format!("store: {m}"))),
            StoreError::Unavailable(m) => AdminError::coded(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the database cannot be used now: {m}"),
            ),
        }
    }
}

impl From<LoadError> for AdminError {
    fn from(e: LoadError) -> Self {
        match &e {
            LoadError::TooLarge { .. } => {
                Self::coded(StatusCode::PAYLOAD_TOO_LARGE, e.code(), e.to_string())
            }
            LoadError::NotAComponent(_) | LoadError::Incompatible(_) => {
                Self::coded(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
            }
            LoadError::Cache(_) => Self::internal(format!("loading a plugin: {e}")),
        }
    }
}

impl From<BindError> for AdminError {
    fn from(e: BindError) -> Self {
        let pointer = match &e {
            BindError::ConfigRefused { pointer, .. } => pointer.clone(),
            _ => None,
        };
        AdminError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: e.code(),
            message: e.to_string(),
            pointer,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Api(e) => e.into_response(),
            AdminError::Coded {
                status,
                code,
                message,
                pointer,
            } => {
                let mut body = error_body(code, &message);
                body.error.pointer = pointer;
                (status, Json(body)).into_response()
            }
        }
    }
}

/// The result of an admin handler.
pub type AdminResult<T> = Result<T, AdminError>;

/// An authenticated administrator, with the request's id for the audit log.
#[derive(Debug)]
pub struct Admin {
    /// Who, from where.
    pub caller: Caller,
    /// The request's id.
    pub request_id: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AdminError> {
        let who = Authenticated::from_request_parts(parts, state).await?;
        if !matches!(who.caller.identity, Identity::User { is_admin: true, .. }) {
            return Err(AdminError::coded(
                StatusCode::FORBIDDEN,
                "admin_only",
                "only administrators may use the admin API",
            ));
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            // Nothing is changed that could not be audited.
            state
                .service
                .audit
                .head()
                .map_err(|e| ApiError::Unavailable(format!("audit log: {e}")))?;
        }
        let request_id = parts
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Admin {
            caller: who.caller,
            request_id,
        })
    }
}

impl Admin {
    /// The audit event of a change: `action` (`admin.<resource>.<verb>`), the connector concerned if any,
    /// and a short description (never a secret). Commit it with the change through
    /// [`crate::store::DataStore::audited`], so that both are stored or neither.
    pub fn event(
        &self,
        action: &str,
        connector: Option<&Connector>,
        reason: impl Into<String>,
    ) -> AuditEvent {
        let reason = reason.into();
        tracing::info!(
            action,
            caller = %self.caller.display_name(),
            reason = %reason,
            "admin change"
        );
        AuditEvent {
            request_id: self.request_id.clone(),
            action: action.to_owned(),
            caller: Some(self.caller.display_name()),
            caller_kind: Some("admin".into()),
            source_ip: self.caller.source_ip.clone(),
            user_agent: self.caller.user_agent.clone(),
            connector_id: connector.map(|c| c.id.to_string()),
            connector: connector.map(|c| c.name.clone()),
            outcome: Outcome::Changed,
            reason: Some(reason),
            ..AuditEvent::default()
        }
    }
}

/// A connector by id or name: 404 `connector_not_found` when there is none.
pub fn find_connector(state: &AppState, id_or_name: &str) -> AdminResult<Connector> {
    state
        .service
        .store
        .get_connector(id_or_name)?
        .ok_or_else(|| ApiError::ConnectorNotFound(id_or_name.to_owned()).into())
}

/// Runs blocking work (compiling a plugin, writing files) off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> AdminResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AdminError::internal(format!("a blocking task failed: {e}")))
}

/// Parses an RFC 3339 time (`2026-01-31T12:00:00Z`, fractions and `+01:00`-style offsets allowed).
pub fn parse_time(field: &str, text: &str) -> AdminResult<std::time::SystemTime> {
    let bad = || {
        AdminError::invalid(format!(
            "{field}: {text:?} is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)"
        ))
    };
    let text = text.trim();
    if text.len() < 20 || !text.is_ascii() {
        return Err(bad());
    }
    let (base, offset_seconds) = if text.ends_with('Z') || text.ends_with('z') {
        (&text[..text.len() - 1], 0i64)
    } else {
        let (base, offset) = text.split_at(text.len() - 6);
        let sign = match offset.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(bad()),
        };
        let (h, m) = offset[1..].split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        (base, sign * (h * 3600 + m * 60))
    };
    let utc = humantime::parse_rfc3339_weak(&format!("{base}Z")).map_err(|_| bad())?;
    let shifted = if offset_seconds >= 0 {
        utc.checked_sub(std::time::Duration::from_secs(offset_seconds as u64))
    } else {
        utc.checked_add(std::time::Duration::from_secs((-offset_seconds) as u64))
    };
    shifted.ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn times() {
        let t = |s| parse_time("since", s);
        let base = UNIX_EPOCH + Duration::from_secs(1_769_860_800); // 2026-01-31T12:00:00Z
        assert_eq!(t("2026-01-31T12:00:00Z").unwrap(), base);
        assert_eq!(t("2026-01-31T13:00:00+01:00").unwrap(), base);
        assert_eq!(t("2026-01-31T10:30:00-01:30").unwrap(), base);
        assert_eq!(
            t("2026-01-31T12:00:00.5Z").unwrap(),
            base + Duration::from_millis(500)
        );
        for bad in [
            "",
            "yesterday",
            "2026-01-31",
            "2026-01-31T12:00:00+25:00",
            "é",
        ] {
            let e = t(bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn store_errors_map_to_statuses() {
        for (e, status) in [
            (StoreError::NotFound("x".into()), StatusCode::NOT_FOUND),
            (StoreError::Conflict("x".into()), StatusCode::CONFLICT),
            (StoreError::Invalid("x".into()), StatusCode::BAD_REQUEST),
            (StoreError::Io("x".into()), StatusCode::SERVICE_UNAVAILABLE),
        ] {
            assert_eq!(AdminError::from(e).status(), status);
        }
    }
}
