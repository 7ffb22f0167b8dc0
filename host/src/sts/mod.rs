//! Everything about talking to AWS STS: the requests the vend pipeline makes ([`IssueRequest`]), what comes
//! back ([`IssuedCredentials`], [`CallerIdentity`]), the errors ([`StsError`], with stable codes), STS's input
//! rules enforced before any call ([`validate`]) and the client that makes the calls ([`AwsIssuer`]).
//!
//! The pipeline depends on the [`CredentialIssuer`] trait, so tests can put a stand-in in place of AWS.

use std::time::{Duration, SystemTime};

pub use crate::model::SessionTag;
use crate::secret::Secret;

pub mod budget;
mod issuer;
pub mod validate;

pub use budget::{BudgetSettings, Budgeted, StsBudget};
pub use issuer::{AwsIssuer, IssuerSettings};
pub use validate::ValidationError;

/// The account whose long-term credentials make an STS call, and where to reach STS for it.
#[derive(Clone, Debug)]
pub struct AccountAccess {
    /// The account's name (names the cached client, and appears in error messages).
    pub account_name: String,
    /// The account's credentials, opened for this call.
    pub credentials: crate::model::AccountCredentials,
    /// The STS region; [`IssuerSettings::default_region`] when none.
    pub region: Option<String>,
    /// An STS endpoint URL other than AWS's (a VPC endpoint, a test STS).
    pub endpoint: Option<String>,
}

/// Which STS call, with what it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssueKind {
    /// `GetFederationToken`.
    FederationToken {
        /// The federated user's name (2–32 of `[\w+=,.@-]`: see [`validate::federated_user_name`]).
        name: String,
        /// The inline session policy.
        policy: Option<String>,
        /// Managed session policy ARNs.
        policy_arns: Vec<String>,
        /// Session tags.
        tags: Vec<SessionTag>,
    },
    /// `GetSessionToken` (no session policy, no tags).
    SessionToken,
    /// `AssumeRole`.
    AssumeRole {
        /// The role to assume.
        role_arn: String,
        /// `RoleSessionName` (2–64 of `[\w+=,.@-]`: see [`validate::role_session_name`]).
        session_name: String,
        /// The external id the role's trust policy requires.
        external_id: Option<String>,
        /// The inline session policy.
        policy: Option<String>,
        /// Managed session policy ARNs.
        policy_arns: Vec<String>,
        /// Session tags.
        tags: Vec<SessionTag>,
        /// `SourceIdentity` (2–64 of `[\w+=,.@-]`: see [`validate::source_identity`]).
        source_identity: Option<String>,
    },
}

impl IssueKind {
    /// The STS operation's name, for messages and logs.
    pub fn operation(&self) -> &'static str {
        match self {
            IssueKind::FederationToken { .. } => "GetFederationToken",
            IssueKind::SessionToken => "GetSessionToken",
            IssueKind::AssumeRole { .. } => "AssumeRole",
        }
    }

    /// The principal type this call vends for.
    pub fn principal_type(&self) -> crate::model::PrincipalType {
        use crate::model::PrincipalType;
        match self {
            IssueKind::FederationToken { .. } => PrincipalType::FederatedUser,
            IssueKind::SessionToken => PrincipalType::IamUser,
            IssueKind::AssumeRole { .. } => PrincipalType::AssumedRole,
        }
    }
}

/// One call to STS for temporary credentials.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// Whose keys make the call, and where.
    pub access: AccountAccess,
    /// Which call.
    pub kind: IssueKind,
    /// `DurationSeconds`.
    pub duration_seconds: u32,
    /// Whom the call is for (the caller's name in idfed), so that no one caller can spend the whole STS
    /// budget of an account ([`budget`]); `None` for calls on nobody's behalf.
    pub requester: Option<String>,
}

/// Temporary credentials from STS. `Debug` shows neither the secret key nor the session token.
#[derive(Clone, Debug)]
pub struct IssuedCredentials {
    /// The temporary access key id (`ASIA…`).
    pub access_key_id: String,
    /// The temporary secret access key.
    pub secret_access_key: Secret,
    /// The session token.
    pub session_token: Secret,
    /// When they expire.
    pub expiration: SystemTime,
    /// The federated user's or assumed role's ARN (none for `GetSessionToken`).
    pub principal_arn: Option<String>,
    /// How much of the packed policy limit the session policies and tags use, in percent.
    pub packed_policy_size: Option<i32>,
}

/// What `GetCallerIdentity` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The account id.
    pub account: String,
    /// The caller's ARN.
    pub arn: String,
    /// The caller's unique id.
    pub user_id: String,
}

/// A boxed, sendable future (what [`CredentialIssuer`]'s methods return).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Makes STS calls: [`AwsIssuer`] in the service, a stand-in in tests.
pub trait CredentialIssuer: Send + Sync {
    /// Validates `request` ([`validate::check_issue_request`]) and, if it passes, makes the STS call.
    fn issue<'a>(
        &'a self,
        request: &'a IssueRequest,
    ) -> BoxFuture<'a, Result<IssuedCredentials, StsError>>;

    /// GetCallerIdentity with vended credentials (same region/endpoint as the account).
    fn caller_identity<'a>(
        &'a self,
        access: &'a AccountAccess,
        credentials: &'a IssuedCredentials,
    ) -> BoxFuture<'a, Result<CallerIdentity, StsError>>;
}

/// An STS call that failed, or was refused before it was made. The message never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StsError {
    /// What kind of failure.
    pub kind: StsErrorKind,
    /// What happened, for people.
    pub message: String,
}

/// The kinds of STS failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsErrorKind {
    /// The request breaks one of STS's input rules (found by idfed before calling, or by STS).
    Invalid(ValidationError),
    /// STS refused the account's credentials the call (`AccessDenied`, or an HTTP 403 without a readable code).
    AccessDenied,
    /// STS throttled the calls, still after retrying with backoff.
    Throttled {
        /// How long to wait before trying again.
        retry_after: Duration,
    },
    /// idfed's own STS budget for the account and Region is spent (see [`budget`]): nothing was sent.
    BudgetExhausted {
        /// When a token will be free.
        retry_after: Duration,
    },
    /// STS found the session policy malformed.
    MalformedPolicy,
    /// The session policies and tags are over STS's packed size limit.
    PackedPolicyTooLarge,
    /// STS is not activated in the account's region.
    RegionDisabled,
    /// The credentials used are not valid: unknown, expired or badly signed.
    InvalidToken,
    /// STS could not be reached or did not answer in time, or failed itself (HTTP 5xx).
    Unavailable,
    /// Anything else.
    Other,
}

impl StsError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: StsErrorKind, message: impl Into<String>) -> Self {
        StsError {
            kind,
            message: message.into(),
        }
    }

    /// A request refused by idfed's own validation.
    pub fn invalid(error: ValidationError) -> Self {
        StsError {
            message: format!("invalid STS request: {error}"),
            kind: StsErrorKind::Invalid(error),
        }
    }

    /// The stable code: `sts_invalid_request`, `sts_access_denied`, `sts_throttled`, `sts_malformed_policy`,
    /// `sts_packed_policy_too_large`, `sts_region_disabled`, `sts_invalid_token`, `sts_unavailable`,
    /// `sts_budget_exhausted` or `sts_error`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            StsErrorKind::Invalid(_) => "sts_invalid_request",
            StsErrorKind::AccessDenied => "sts_access_denied",
            StsErrorKind::Throttled { .. } => "sts_throttled",
            StsErrorKind::BudgetExhausted { .. } => "sts_budget_exhausted",
            StsErrorKind::MalformedPolicy => "sts_malformed_policy",
            StsErrorKind::PackedPolicyTooLarge => "sts_packed_policy_too_large",
            StsErrorKind::RegionDisabled => "sts_region_disabled",
            StsErrorKind::InvalidToken => "sts_invalid_token",
            StsErrorKind::Unavailable => "sts_unavailable",
            StsErrorKind::Other => "sts_error",
        }
    }
}

impl From<ValidationError> for StsError {
    fn from(error: ValidationError) -> Self {
        StsError::invalid(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let cases = [
            (
                StsErrorKind::Invalid(ValidationError::new("f", "r")),
                "sts_invalid_request",
            ),
            (StsErrorKind::AccessDenied, "sts_access_denied"),
            (
                StsErrorKind::Throttled {
                    retry_after: Duration::from_secs(1),
                },
                "sts_throttled",
            ),
            (
                StsErrorKind::BudgetExhausted {
                    retry_after: Duration::from_secs(1),
                },
                "sts_budget_exhausted",
            ),
            (StsErrorKind::MalformedPolicy, "sts_malformed_policy"),
            (
                StsErrorKind::PackedPolicyTooLarge,
                "sts_packed_policy_too_large",
            ),
            (StsErrorKind::RegionDisabled, "sts_region_disabled"),
            (StsErrorKind::InvalidToken, "sts_invalid_token"),
            (StsErrorKind::Unavailable, "sts_unavailable"),
            (StsErrorKind::Other, "sts_error"),
        ];
        for (kind, code) in cases {
            assert_eq!(StsError::new(kind, "m").code(), code);
        }
    }

    #[test]
    fn invalid_names_field_and_rule() {
        let err = StsError::invalid(ValidationError::new("duration_seconds", "too long"));
        assert_eq!(err.code(), "sts_invalid_request");
        assert_eq!(
            err.to_string(),
            "invalid STS request: duration_seconds: too long"
        );
    }

    #[test]
    fn issued_credentials_debug_hides_secrets() {
        let creds = IssuedCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("very-secret-key"),
            session_token: Secret::new("very-secret-token"),
            expiration: SystemTime::UNIX_EPOCH,
            principal_arn: None,
            packed_policy_size: Some(6),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("ASIAEXAMPLE"));
    }
}
