//! IAM policy documents: a faithful serde model, STS's limits for inline session policies, wildcard-aware action
//! queries and a conservative check that one policy allows nothing another does not.
//!
//! Pure Rust with no host imports, so the host uses it natively too.
//!
//! ```
//! use idfed_sdk::iam::PolicyDocument;
//!
//! let mut doc = PolicyDocument::parse(
//!     r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#,
//! )?;
//! assert!(doc.allows_action("s3:GetObject"));
//! assert!(!doc.allows_action("iam:*"));
//!
//! let baseline = doc.clone();
//! doc.add_deny(["s3:DeleteObject"], ["*"]);
//! assert!(doc.is_within(&baseline).is_ok()); // adding a Deny only narrows
//! assert!(baseline.is_within(&PolicyDocument::parse(
//!     r#"{"Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]}"#,
//! )?).is_err());
//! # Ok::<(), idfed_sdk::iam::PolicyError>(())
//! ```

mod glob;
mod model;
mod within;

pub use model::{Effect, OneOrMany, PolicyDocument, Statement};

use glob::{intersects, tokens};

/// The most characters STS accepts in an inline session policy.
pub const STS_POLICY_MAX_CHARS: usize = 2048;

/// The policy language version that expands policy variables such as `${aws:username}`.
pub const VERSION_2012: &str = "2012-10-17";

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The policy text is empty.
    Empty,
    /// The policy text has more characters than STS accepts.
    TooLong {
        /// The number of characters.
        length: usize,
        /// The most allowed.
        max: usize,
    },
    /// The policy text has a character outside `\t`, `\n`, `\r` and U+0020 to U+00FF.
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The text is not JSON, or not shaped like a policy document.
    Syntax(String),
    /// A statement breaks the policy grammar.
    Statement {
        /// The statement's position in `Statement`, from 0.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Empty => write!(f, "the policy is empty"),
            PolicyError::TooLong { length, max } => {
                write!(
                    f,
                    "the policy has {length} characters, more than the {max} STS accepts"
                )
            }
            PolicyError::InvalidCharacter {
                character,
                position,
            } => write!(
                f,
                "the policy has the character {character:?} (U+{:04X}) at position {position}; STS accepts only tab, \
                 line feed, carriage return and U+0020 to U+00FF",
                *character as u32
            ),
            PolicyError::Syntax(m) => write!(f, "the policy is not a valid policy document: {m}"),
            PolicyError::Statement { index, message } => {
                write!(f, "statement {index} of the policy: {message}")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// Checks an inline session policy against STS's rules: 1 to 2,048 characters, only tab, line feed, carriage
/// return and U+0020 to U+00FF, and a valid policy document.
///
/// (STS also limits the packed, compressed size of policies and tags together, which cannot be checked here.)
pub fn check_sts_limits(text: &str) -> Result<(), PolicyError> {
    let length = text.chars().count();
    if length == 0 {
        return Err(PolicyError::Empty);
    }
    if length > STS_POLICY_MAX_CHARS {
        return Err(PolicyError::TooLong {
            length,
            max: STS_POLICY_MAX_CHARS,
        });
    }
    if let Some((position, character)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FF}'))
    {
        return Err(PolicyError::InvalidCharacter {
            character,
            position,
        });
    }
    PolicyDocument::parse(text).map(|_| ())
}

/// Parses an IAM policy document (same as [`PolicyDocument::parse`]).
pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
    PolicyDocument::parse(text)
}

impl PolicyDocument {
    /// Whether this document expands policy variables (`Version` is `2012-10-17`).
    pub fn expands_variables(&self) -> bool {
        self.version.as_deref() == Some(VERSION_2012)
    }

    /// The `Action` entries of the `Allow` statements (not `NotAction`).
    pub fn allowed_actions(&self) -> Vec<&str> {
        self.allow_statements()
            .filter_map(|s| s.action.as_ref())
            .flat_map(|a| a.iter().map(String::as_str))
            .collect()
    }

    /// The `Resource` entries of the `Allow` statements (not `NotResource`).
    pub fn allowed_resources(&self) -> Vec<&str> {
        self.allow_statements()
            .filter_map(|s| s.resource.as_ref())
            .flat_map(|a| a.iter().map(String::as_str))
            .collect()
    }

    /// The `Allow` statements.
    pub fn allow_statements(&self) -> impl Iterator<Item = &Statement> {
        self.statement.iter().filter(|s| s.effect == Effect::Allow)
    }

    /// The `Deny` statements.
    pub fn deny_statements(&self) -> impl Iterator<Item = &Statement> {
        self.statement.iter().filter(|s| s.effect == Effect::Deny)
    }

    /// Whether some `Allow` statement could allow an action matching `pattern` (an action such as
    /// `iam:CreateUser` or a pattern such as `iam:*`), on some resource under some conditions.
    ///
    /// Wildcards count on both sides and actions compare case-insensitively: `iam:*` is allowed by a policy
    /// allowing `*`, `iam:Create*` or `iam:PassRole`. An `Allow` with `NotAction` could allow `pattern` unless one
    /// of its `NotAction` entries covers all of it. The answer errs towards "could": it is `false` only when no
    /// matching action can be allowed, or when an unconditional `Deny` on `Resource: "*"` covers the pattern.
    pub fn allows_action(&self, pattern: &str) -> bool {
        let p = tokens(pattern, false);
        let denied = self.deny_statements().any(|d| {
            d.condition.is_none()
                && d.principal.is_none()
                && d.not_principal.is_none()
                && d.resource
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|r| r == "*"))
                && d.action
                    .as_ref()
                    .is_some_and(|a| a.iter().any(|q| glob::covers(&p, &tokens(q, false), true)))
        });
        if denied {
            return false;
        }
        self.allow_statements().any(|s| {
            if s.resource.as_ref().is_some_and(|r| r.is_empty()) {
                return false;
            }
            match (&s.action, &s.not_action) {
                (Some(actions), _) => actions
                    .iter()
                    .any(|q| intersects(&p, &tokens(q, false), true)),
                (None, Some(not)) => !not
                    .iter()
                    .any(|n| glob::covers(&p, &tokens(n, false), true)),
                (None, None) => false,
            }
        })
    }

    /// Checks, conservatively and soundly, that this document allows nothing that `baseline` does not.
    ///
    /// Every `Allow` statement of `self` must be covered by one `Allow` statement of `baseline`: its actions and
    /// resources covered by the baseline statement's (wildcard containment: actions case-insensitive, resources
    /// case-sensitive; `NotAction`/`NotResource` only against the same or a wider exclusion, or against a
    /// baseline `*`), its conditions including every condition of the baseline statement with equal values, and
    /// its `Principal`/`NotPrincipal` equal to the baseline statement's. `Deny` statements of `self` are always
    /// fine, and every `Deny` statement of `baseline` must be kept: covered by a `Deny` statement of `self` that
    /// denies at least as much (dropping a `Deny` would widen). "No" answers may be false alarms; "yes" answers
    /// are sound. A `self` that [`validate`](Self::validate) refuses (unknown keys, malformed policy variables, ...)
    /// is refused too.
    ///
    /// The error says which statement widens and why.
    pub fn is_within(&self, baseline: &PolicyDocument) -> Result<(), String> {
        within::is_within(self, baseline)
    }
}

#[cfg(test)]
mod tests;
