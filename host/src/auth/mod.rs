//! Who is asking: people authenticated against a directory (Atlassian Crowd over its REST API, or a static
//! file of users), their groups (nested ones included), idfed's own sessions, caching and brute-force
//! lockout. Everything here ends in a [`crate::model::Identity`] for the vend pipeline.

pub mod authenticator;
pub mod cache;
pub mod config;
pub mod crowd;
pub mod lockout;
pub mod session;
pub mod static_dir;

use std::time::Duration;

use crate::secret::Secret;
use crate::sts::BoxFuture;

/// A person, as a directory knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// The user name (as the directory spells it).
    pub name: String,
    /// A name for people.
    pub display_name: String,
    /// Their email address, if the directory has one.
    pub email: Option<String>,
    /// Whether the account is active.
    pub active: bool,
    /// Every group they belong to, directly or through nested groups.
    pub groups: Vec<String>,
}

/// Why authentication failed. Towards the caller, every way a password can be wrong is the same
/// `InvalidCredentials`; the reason goes to idfed's log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong password, unknown user, inactive or expired account: never said which.
    #[error("invalid user name or password")]
    InvalidCredentials,
    /// A session or SSO token that is unknown, expired or ended.
    #[error("your session is not valid; log in again")]
    InvalidSession,
    /// Too many failed attempts: try again later.
    #[error("too many failed attempts; try again in {} seconds", retry_after.as_secs().max(1))]
    TooManyAttempts {
        /// When to try again.
        retry_after: Duration,
    },
    /// The directory cannot be used now (down, slow, or idfed's application credentials refused). The
    /// message is for the caller; the operator's details are logged.
    #[error("the identity directory is unavailable; try again later")]
    Unavailable(String),
    /// The directory does not offer this (e.g. SSO tokens with the static directory).
    #[error("not supported by this directory")]
    Unsupported,
}

impl AuthError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::InvalidSession => "invalid_session",
            AuthError::TooManyAttempts { .. } => "too_many_attempts",
            AuthError::Unavailable(_) => "directory_unavailable",
            AuthError::Unsupported => "unsupported",
        }
    }
}

/// An identity directory.
pub trait Directory: Send + Sync {
    /// A short name for logs and metrics (`crowd`, `static`).
    fn kind(&self) -> &'static str;

    /// Checks a password; the person with their groups (nested included) when it is right.
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Person, AuthError>>;

    /// The user's groups now, nested included (for re-checking a session). An unknown or inactive user is
    /// `InvalidCredentials`.
    fn groups<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<String>, AuthError>>;

    /// Validates a directory SSO token (Crowd's `crowd.token_key` cookie); the person it belongs to.
    fn validate_sso_token<'a>(
        &'a self,
        token: &'a Secret,
        remote_address: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Person, AuthError>> {
        let _ = (token, remote_address);
        Box::pin(async { Err(AuthError::Unsupported) })
    }
}
