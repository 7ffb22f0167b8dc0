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
pub mod workload;

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
    /// idfed's store (its sessions) cannot be used now. The details are logged.
    #[error("idfed's database cannot be used now; try again later")]
    StoreUnavailable(String),
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
            AuthError::StoreUnavailable(_) => "store_unavailable",
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

    /// Every group the directory has, for pickers (an administrator choosing a connector's groups), never for
    /// authorization: at most `limit` names, without duplicates, in [`sort_group_names`]'s order. When the
    /// directory has more than `limit`, which ones are kept is the directory's choice. `Unsupported` when the
    /// directory cannot list its groups.
    fn list_groups<'a>(&'a self, limit: usize) -> BoxFuture<'a, Result<Vec<String>, AuthError>> {
        let _ = limit;
        Box::pin(async { Err(AuthError::Unsupported) })
    }
}

/// Sorts group names for people: ignoring case first, then as written (so `Dev` comes before `dev`, and both
/// between `alpha` and `Zeta`), and drops exact duplicates.
pub fn sort_group_names(groups: &mut Vec<String>) {
    groups.sort_by(|a, b| {
        a.to_lowercase()
            .cmp(&b.to_lowercase())
            .then_with(|| a.cmp(b))
    });
    groups.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_sort_ignoring_case_then_as_written_without_duplicates() {
        let mut groups: Vec<String> = ["Zeta", "dev", "alpha", "Dev", "dev", "beta-2", "Beta-1"]
            .map(String::from)
            .to_vec();
        sort_group_names(&mut groups);
        assert_eq!(groups, ["alpha", "Beta-1", "beta-2", "Dev", "dev", "Zeta"]);
    }

    struct Bare;

    impl Directory for Bare {
        fn kind(&self) -> &'static str {
            "bare"
        }

        fn authenticate<'a>(
            &'a self,
            _user: &'a str,
            _password: &'a Secret,
        ) -> BoxFuture<'a, Result<Person, AuthError>> {
            Box::pin(async { Err(AuthError::InvalidCredentials) })
        }

        fn groups<'a>(&'a self, _user: &'a str) -> BoxFuture<'a, Result<Vec<String>, AuthError>> {
            Box::pin(async { Err(AuthError::InvalidCredentials) })
        }
    }

    #[tokio::test]
    async fn a_directory_that_cannot_list_its_groups_says_so() {
        assert_eq!(Bare.list_groups(10).await, Err(AuthError::Unsupported));
        assert_eq!(AuthError::Unsupported.code(), "unsupported");
    }
}
