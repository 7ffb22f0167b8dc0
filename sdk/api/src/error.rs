//! Errors: every error answer is `{"error": {"code", "message"}}` with a stable [`ErrorCode`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error the API answers (except the container-credentials endpoint's, [`EcsErrorBody`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "connector_not_found", "message": "no connector \"prod\""}}))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable code (the README's "Error codes"; [`ErrorCode`] names each): `invalid_request`,
    /// `invalid_json`, `body_too_large`, `incomplete_body`, `body_timeout`, `unsupported_media_type`; a
    /// request head HTTP refuses: `malformed_request`, `headers_too_large`, `http_version_not_supported`;
    /// `missing_credentials`, `invalid_credentials`, `invalid_session`, `too_many_attempts`,
    /// `directory_unavailable`, `unsupported`; a workload's OIDC token refused: `workload_token_malformed`,
    /// `workload_issuer_unknown`, `workload_algorithm_refused`, `workload_key_unknown`,
    /// `workload_signature_invalid`, `workload_token_expired`, `workload_token_not_yet_valid`,
    /// `workload_audience_mismatch`, `workload_claim_missing`, `workload_not_allowed`,
    /// `workload_issuer_unavailable`; `csrf_failed`, `forbidden`, `admin_only`, `connector_not_found`,
    /// `connector_disabled`, `plugin_denied`, `approval_required`, `approval_pending` (a container-credentials
    /// request that waits for an approval; elsewhere that is a `202`); a plugin's fault: `plugin_timeout`, `plugin_memory_limit`,
    /// `plugin_trap`, `plugin_error`, `plugin_widened_grant`, `plugin_invalid_grant`, `plugin_busy`,
    /// `plugin_instantiate_failed`, `plugin_incompatible`; a plugin or binding refused:
    /// `plugin_not_a_component`, `plugin_too_large`, `plugin_config_invalid`, `plugin_config_refused`,
    /// `plugin_limits_invalid`, `plugin_tag_keys_invalid` (`plugin_cache_error` is answered as
    /// `internal_error`); STS: `sts_invalid_request`,
    /// `sts_malformed_policy`, `sts_packed_policy_too_large`, `sts_throttled`, `sts_budget_exhausted`,
    /// `sts_unavailable`, `sts_access_denied`, `sts_region_disabled`, `sts_invalid_token`, `sts_error`;
    /// `federation_failed` (the console sign-in URL's federation endpoint); `ecr_failed` (ECR's
    /// `GetAuthorizationToken`, for `ecr-login`); `codeartifact_failed` (CodeArtifact's, for
    /// `codeartifact-token`); and `not_found`, `method_not_allowed`, `conflict`, `precondition_failed`,
    /// `timeout`, `unavailable`, `store_unavailable` (the database cannot be reached), `internal_error`.
    pub code: String,
    /// The message for the caller.
    pub message: String,
    /// Where in a plugin configuration the problem is, when the plugin said (admin bindings only).
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

/// An error of the container-credentials endpoint, in the ECS endpoint's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EcsErrorBody {
    /// The stable code.
    pub code: String,
    /// The message for the caller.
    pub message: String,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// A stable error code, as [`ErrorDetail::code`] carries it. A code this version does not know
        /// (from a newer server) is [`ErrorCode::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this version of the crate does not know.
            Other(String),
        }

        impl ErrorCode {
            /// Every code this version knows.
            pub const ALL: &[&str] = &[$($code),*];

            /// The code as the API writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Other(code) => code,
                }
            }

            /// The code `code` names.
            pub fn parse(code: &str) -> ErrorCode {
                match code {
                    $($code => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_owned()),
                }
            }
        }
    };
}

codes! {
    /// The request breaks a rule (400).
    InvalidRequest = "invalid_request",
    /// The body is not a JSON object of the operation's shape (422).
    InvalidJson = "invalid_json",
    /// The body is over the limit (413).
    BodyTooLarge = "body_too_large",
    /// The client ended the body early (400).
    IncompleteBody = "incomplete_body",
    /// The body stopped arriving (408).
    BodyTimeout = "body_timeout",
    /// The request head is not HTTP idfed can read (400).
    MalformedRequest = "malformed_request",
    /// The request head is too large (431).
    HeadersTooLarge = "headers_too_large",
    /// Not HTTP/1.1 or 1.0 (505).
    HttpVersionNotSupported = "http_version_not_supported",
    /// The body is not JSON (415).
    UnsupportedMediaType = "unsupported_media_type",
    /// No credentials were presented (401).
    MissingCredentials = "missing_credentials",
    /// A wrong user name or password, or an API key that is not valid (401).
    InvalidCredentials = "invalid_credentials",
    /// The session has ended (401).
    InvalidSession = "invalid_session",
    /// Locked out for a while (429).
    TooManyAttempts = "too_many_attempts",
    /// The directory could not be asked (503).
    DirectoryUnavailable = "directory_unavailable",
    /// The directory does not offer this (400).
    Unsupported = "unsupported",
    /// A workload token that is not a readable JWT (401).
    WorkloadTokenMalformed = "workload_token_malformed",
    /// A workload token from an issuer not configured (401).
    WorkloadIssuerUnknown = "workload_issuer_unknown",
    /// A workload token's algorithm is refused (401).
    WorkloadAlgorithmRefused = "workload_algorithm_refused",
    /// A workload token's key is not the issuer's (401).
    WorkloadKeyUnknown = "workload_key_unknown",
    /// A workload token's signature does not verify (401).
    WorkloadSignatureInvalid = "workload_signature_invalid",
    /// A workload token has expired (401).
    WorkloadTokenExpired = "workload_token_expired",
    /// A workload token is not valid yet (401).
    WorkloadTokenNotYetValid = "workload_token_not_yet_valid",
    /// A workload token is for another audience (401).
    WorkloadAudienceMismatch = "workload_audience_mismatch",
    /// A workload token lacks a claim idfed needs (401).
    WorkloadClaimMissing = "workload_claim_missing",
    /// No claim rule grants the workload anything (403).
    WorkloadNotAllowed = "workload_not_allowed",
    /// The workload token's issuer's keys cannot be had (503).
    WorkloadIssuerUnavailable = "workload_issuer_unavailable",
    /// A browser change without CSRF proof (403).
    CsrfFailed = "csrf_failed",
    /// The caller may not use this connector (403).
    Forbidden = "forbidden",
    /// An admin route, and the caller is no administrator (403).
    AdminOnly = "admin_only",
    /// No such connector (404).
    ConnectorNotFound = "connector_not_found",
    /// The connector is disabled (403).
    ConnectorDisabled = "connector_disabled",
    /// A plugin refused (403).
    PluginDenied = "plugin_denied",
    /// A plugin answered that the request needs an approval where none can be asked for (403).
    ApprovalRequired = "approval_required",
    /// A request waits for an approval: the `202` answer elsewhere, the container endpoint's 403, and the
    /// audit record's code.
    ApprovalPending = "approval_pending",
    /// A plugin ran past its deadline (502).
    PluginTimeout = "plugin_timeout",
    /// A plugin tried to grow its memory past its cap (502).
    PluginMemoryLimit = "plugin_memory_limit",
    /// A plugin trapped (502).
    PluginTrap = "plugin_trap",
    /// A plugin returned an error (502).
    PluginError = "plugin_error",
    /// A plugin's grant would widen the request (502).
    PluginWidenedGrant = "plugin_widened_grant",
    /// A plugin's grant is malformed (502).
    PluginInvalidGrant = "plugin_invalid_grant",
    /// No plugin slot came free in time (503).
    PluginBusy = "plugin_busy",
    /// No plugin instance could be made (502).
    PluginInstantiateFailed = "plugin_instantiate_failed",
    /// The binding's plugin could not be loaded (502).
    PluginIncompatible = "plugin_incompatible",
    /// An upload that is not a WebAssembly component (400).
    PluginNotAComponent = "plugin_not_a_component",
    /// An upload over the limit (413).
    PluginTooLarge = "plugin_too_large",
    /// A binding's configuration is not valid (400).
    PluginConfigInvalid = "plugin_config_invalid",
    /// The plugin's `validate-config` refused the configuration (400).
    PluginConfigRefused = "plugin_config_refused",
    /// A binding's limits are out of bounds (400).
    PluginLimitsInvalid = "plugin_limits_invalid",
    /// A binding's tag keys are not valid (400).
    PluginTagKeysInvalid = "plugin_tag_keys_invalid",
    /// STS refused the request as invalid (400).
    StsInvalidRequest = "sts_invalid_request",
    /// STS refused the policy (400).
    StsMalformedPolicy = "sts_malformed_policy",
    /// The policy packs too large (400).
    StsPackedPolicyTooLarge = "sts_packed_policy_too_large",
    /// STS throttled the call (503).
    StsThrottled = "sts_throttled",
    /// idfed's STS budget is spent (429).
    StsBudgetExhausted = "sts_budget_exhausted",
    /// STS could not be reached (503).
    StsUnavailable = "sts_unavailable",
    /// STS denied the connector's account (502).
    StsAccessDenied = "sts_access_denied",
    /// STS is not enabled in the Region (502).
    StsRegionDisabled = "sts_region_disabled",
    /// STS did not accept the account's credentials (502).
    StsInvalidToken = "sts_invalid_token",
    /// STS failed otherwise (502).
    StsError = "sts_error",
    /// The console federation endpoint failed (502).
    FederationFailed = "federation_failed",
    /// ECR failed (502).
    EcrFailed = "ecr_failed",
    /// CodeArtifact failed (502).
    CodeartifactFailed = "codeartifact_failed",
    /// No such route or resource (404).
    NotFound = "not_found",
    /// The route takes another method (405).
    MethodNotAllowed = "method_not_allowed",
    /// The resource changed or exists (409).
    Conflict = "conflict",
    /// `If-Match` does not match (412).
    PreconditionFailed = "precondition_failed",
    /// The request took too long (503).
    Timeout = "timeout",
    /// idfed's store cannot be used now (503).
    Unavailable = "unavailable",
    /// idfed's database cannot be reached, or did not answer in time (503).
    StoreUnavailable = "store_unavailable",
    /// idfed itself failed (500).
    InternalError = "internal_error",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorDetail {
    /// The code, typed.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::parse(&self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_itself_and_unknown_ones_are_other() {
        for code in ErrorCode::ALL {
            let parsed = ErrorCode::parse(code);
            assert!(!matches!(parsed, ErrorCode::Other(_)), "{code}");
            assert_eq!(parsed.as_str(), *code);
        }
        assert_eq!(
            ErrorCode::parse("from_a_newer_server"),
            ErrorCode::Other("from_a_newer_server".into())
        );
    }

    #[test]
    fn the_ecs_shape_is_pascal_case() {
        let body = EcsErrorBody {
            code: "forbidden".into(),
            message: "no".into(),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"Code": "forbidden", "Message": "no"})
        );
    }
}
