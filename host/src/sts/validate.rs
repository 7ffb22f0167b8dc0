//! STS's input rules, checked by idfed before any call (STS stand-ins such as moto check almost none of them, and
//! AWS's own errors come late and are confusing). Pure functions; each refusal is a [`ValidationError`] naming the
//! field and the rule.
//!
//! The rules (botocore's STS model, the IAM user guide):
//!
//! | what | rule |
//! |---|---|
//! | `GetFederationToken` `Name` | 2–32 of `[\w+=,.@-]` (see [`federated_user_name`] for the mapping from user names) |
//! | `RoleSessionName`, `SourceIdentity` | 2–64 of `[\w+=,.@-]` ([`role_session_name`], [`source_identity`]) |
//! | `DurationSeconds` | see [`duration_range`] and [`aws_default_duration`] |
//! | `ExternalId` | 2–1,224 of `[\w+=,.@:/-]` |
//! | inline session policy | 1–2,048 characters of tab, LF, CR and U+0020–U+00FF; a valid IAM policy without `Principal` |
//! | inline policy and policy ARNs together | at most 2,048 characters of plaintext |
//! | `PolicyArns` | at most 10, `arn:aws…:iam::ACCOUNT:policy/…` (ACCOUNT 12 digits or `aws`), no duplicates |
//! | session tags | at most 50; key 1–128 and value 0–256 of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`; keys unique ignoring case; no `aws:` key prefix |
//!
//! `\w` in AWS's patterns is ASCII: `[A-Za-z0-9_]`.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use idfed_sdk::iam::{self, PolicyDocument};
use sha2::{Digest, Sha256};

use super::{AccountAccess, IssueKind, IssueRequest};
use crate::model::{AccountCredentials, Connector, Principal, PrincipalType, SessionTag};

/// A request or a connector that breaks one of STS's rules: which field, and which rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    /// The field, e.g. `duration_seconds` or `tags[3].key`.
    pub field: String,
    /// The rule it breaks, e.g. "must be between 900 and 43200 seconds for assumed-role connectors".
    pub rule: String,
}

impl ValidationError {
    /// `field` breaks `rule`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// What every check returns.
pub type Checked = Result<(), ValidationError>;

/// The shortest `DurationSeconds` STS accepts, for every principal type.
pub const MIN_DURATION_SECONDS: u32 = 900;
/// The longest `DurationSeconds` for `GetFederationToken` and `GetSessionToken` (36 hours).
pub const MAX_TOKEN_DURATION_SECONDS: u32 = 129_600;
/// The longest `DurationSeconds` for `AssumeRole` (12 hours; the role's own maximum may be lower).
pub const MAX_ASSUME_ROLE_DURATION_SECONDS: u32 = 43_200;
/// The longest `GetFederationToken` `Name`.
pub const FEDERATED_USER_NAME_MAX: usize = 32;
/// The longest `RoleSessionName`.
pub const ROLE_SESSION_NAME_MAX: usize = 64;
/// The longest `SourceIdentity`.
pub const SOURCE_IDENTITY_MAX: usize = 64;
/// The shortest `Name`, `RoleSessionName` or `SourceIdentity`.
pub const STS_NAME_MIN: usize = 2;
/// `ExternalId`'s length range.
pub const EXTERNAL_ID_LENGTH: RangeInclusive<usize> = 2..=1224;
/// The most policy ARNs in one call.
pub const MAX_POLICY_ARNS: usize = 10;
/// The most characters of inline and managed session policies together.
pub const MAX_SESSION_POLICY_PLAINTEXT: usize = iam::STS_POLICY_MAX_CHARS;
/// The most session tags in one call.
pub const MAX_TAGS: usize = 50;
/// A tag key's length range.
pub const TAG_KEY_LENGTH: RangeInclusive<usize> = 1..=128;
/// The longest tag value.
pub const TAG_VALUE_MAX: usize = 256;
/// The longest account or connector name.
pub const NAME_MAX: usize = 64;
/// Hex characters of SHA-256 appended to a mapped name: 64 bits, so that no one can make up a name (a
/// workload's claims, a branch name) whose mapping collides with another's in feasible time.
const HASH_HEX_CHARS: usize = 16;

fn principal_label(principal: PrincipalType) -> &'static str {
    match principal {
        PrincipalType::FederatedUser => "federated-user",
        PrincipalType::IamUser => "iam-user",
        PrincipalType::AssumedRole => "assumed-role",
    }
}

fn describe(c: char) -> String {
    format!("{c:?} (U+{:04X})", c as u32)
}

// ---------------------------------------------------------------------------------------------------------------
// Names STS derives from the caller

/// A character of `[\w+=,.@-]` (`Name`, `RoleSessionName`, `SourceIdentity`), `\w` being ASCII.
fn is_sts_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// Whether `name` ends the way a mapped name does: `-` and [`HASH_HEX_CHARS`] lowercase hex digits.
fn looks_mapped(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > HASH_HEX_CHARS
        && b[b.len() - HASH_HEX_CHARS - 1] == b'-'
        && b[b.len() - HASH_HEX_CHARS..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// The deterministic mapping of a user name to an STS name of 2 to `max` characters of `[\w+=,.@-]`.
fn map_name(user: &str, max: usize) -> String {
    let length = user.chars().count();
    if (STS_NAME_MIN..=max).contains(&length)
        && user.chars().all(is_sts_name_char)
        && !looks_mapped(user)
    {
        return user.to_owned();
    }
    let hash = hex::encode(Sha256::digest(user.as_bytes()));
    let suffix = format!("-{}", &hash[..HASH_HEX_CHARS]);
    let mut name: String = user
        .chars()
        .map(|c| if is_sts_name_char(c) { c } else { '_' })
        .take(max - suffix.len())
        .collect();
    name.push_str(&suffix);
    name
}

/// `GetFederationToken`'s `Name` for `user`: 2–32 characters of `[\w+=,.@-]`.
///
/// The mapping, deterministic and documented:
/// - a name that already fits (2–32 allowed characters) is used as is, unless it ends like a mapped name
///   (`-` and 16 lowercase hex digits), so that no one's name can equal another's mapped name;
/// - otherwise each disallowed character becomes `_`, the result is cut to 15 characters, and `-` plus the first
///   16 hex digits (64 bits) of the SHA-256 of the whole original name (UTF-8) is appended: `"Jane Doe"` →
///   `"Jane_Doe-<hash>"`. Names shorter than 2 characters are extended the same way (`"a"` → `"a-<hash>"`).
///
/// Two different names share a mapped name only if 64 bits of their hashes collide, which no one can bring
/// about on purpose (a workload's name is made of its token's claims, such as a branch name anyone with
/// push access picks). The hash covers the whole name — for a workload the issuer's name and every claim of
/// its caller template — so names alike in the part kept differ in the hash. The mapped name is what AWS
/// shows (CloudTrail, the federated user's ARN); idfed's audit log records the real name.
pub fn federated_user_name(user: &str) -> String {
    map_name(user, FEDERATED_USER_NAME_MAX)
}

/// `AssumeRole`'s `RoleSessionName` for `user`: the mapping of [`federated_user_name`] with up to 64 characters
/// (a prefix of up to 47 characters before the hash).
pub fn role_session_name(user: &str) -> String {
    map_name(user, ROLE_SESSION_NAME_MAX)
}

/// `SourceIdentity` for `user`: the mapping of [`federated_user_name`] with up to 64 characters.
pub fn source_identity(user: &str) -> String {
    map_name(user, SOURCE_IDENTITY_MAX)
}

/// Checks an STS name (`Name`, `RoleSessionName`, `SourceIdentity`): 2 to `max` characters of `[\w+=,.@-]`.
fn check_sts_name(field: &str, value: &str, max: usize) -> Checked {
    let length = value.chars().count();
    if !(STS_NAME_MIN..=max).contains(&length) {
        return Err(ValidationError::new(
            field,
            format!("must be {STS_NAME_MIN} to {max} characters long, not {length}"),
        ));
    }
    if let Some((position, c)) = value.char_indices().find(|(_, c)| !is_sts_name_char(*c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "may hold only letters, digits and _+=,.@- (ASCII); it has {} at byte {position}",
                describe(c)
            ),
        ));
    }
    Ok(())
}

/// Checks a `GetFederationToken` `Name` (field `name`).
pub fn check_federated_user_name(name: &str) -> Checked {
    check_sts_name("name", name, FEDERATED_USER_NAME_MAX)
}

/// Checks a `RoleSessionName` (field `session_name`).
pub fn check_role_session_name(name: &str) -> Checked {
    check_sts_name("session_name", name, ROLE_SESSION_NAME_MAX)
}

/// Checks a `SourceIdentity` (field `source_identity`).
pub fn check_source_identity(value: &str) -> Checked {
    check_sts_name("source_identity", value, SOURCE_IDENTITY_MAX)
}

// ---------------------------------------------------------------------------------------------------------------
// Durations

/// AWS's default `DurationSeconds` when none is sent: 43,200 for federated and iam-user, 3,600 for assumed-role.
pub fn aws_default_duration(principal: PrincipalType) -> u32 {
    match principal {
        PrincipalType::FederatedUser | PrincipalType::IamUser => 43_200,
        PrincipalType::AssumedRole => 3_600,
    }
}

/// The `DurationSeconds` STS accepts: 900–129,600 for federated and iam-user, 900–43,200 for assumed-role
/// (the role's own maximum session duration may be lower still; only AWS knows it).
pub fn duration_range(principal: PrincipalType) -> RangeInclusive<u32> {
    match principal {
        PrincipalType::FederatedUser | PrincipalType::IamUser => {
            MIN_DURATION_SECONDS..=MAX_TOKEN_DURATION_SECONDS
        }
        PrincipalType::AssumedRole => MIN_DURATION_SECONDS..=MAX_ASSUME_ROLE_DURATION_SECONDS,
    }
}

fn check_duration_field(field: &str, principal: PrincipalType, seconds: u32) -> Checked {
    let range = duration_range(principal);
    if range.contains(&seconds) {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!(
            "must be between {} and {} seconds for {} connectors, not {seconds}",
            range.start(),
            range.end(),
            principal_label(principal)
        ),
    ))
}

/// Checks `DurationSeconds` (field `duration_seconds`) against [`duration_range`].
pub fn check_duration(principal: PrincipalType, seconds: u32) -> Checked {
    check_duration_field("duration_seconds", principal, seconds)
}

/// The duration a connector grants when the caller asks for none: its default, else AWS's, capped at its
/// maximum (else AWS's).
pub fn effective_default_duration(connector: &Connector) -> u32 {
    let principal = connector.principal.principal_type();
    let max = connector
        .max_duration_seconds
        .unwrap_or(*duration_range(principal).end());
    connector
        .default_duration_seconds
        .unwrap_or(aws_default_duration(principal))
        .min(max)
}

// ---------------------------------------------------------------------------------------------------------------
// Session policies

/// Checks an inline session policy (field `policy`): 1–2,048 characters of tab, LF, CR and U+0020–U+00FF, a valid
/// IAM policy document, and no `Principal`/`NotPrincipal` (a session policy is identity-based).
pub fn check_policy(text: &str) -> Checked {
    let invalid = |e: iam::PolicyError| ValidationError::new("policy", e.to_string());
    iam::check_sts_limits(text).map_err(invalid)?;
    let doc = PolicyDocument::parse(text).map_err(invalid)?;
    if let Some(index) = doc
        .statement
        .iter()
        .position(|s| s.principal.is_some() || s.not_principal.is_some())
    {
        return Err(ValidationError::new(
            "policy",
            format!(
                "statement {index} names a Principal or NotPrincipal, which a session policy may not (STS would answer MalformedPolicyDocument)"
            ),
        ));
    }
    Ok(())
}

/// Checks the `policy/…` part of a policy ARN or the `role/…` part of a role ARN: a path and a name of
/// `[\w+=,.@/-]`, not ending in `/`.
fn check_iam_resource(field: &str, rest: &str, what: &str, shape: &str) -> Checked {
    if rest.is_empty() || rest.ends_with('/') || rest.starts_with('/') {
        return Err(ValidationError::new(
            field,
            format!("must name a {what}: {shape}"),
        ));
    }
    if let Some(c) = rest.chars().find(|&c| !(is_sts_name_char(c) || c == '/')) {
        return Err(ValidationError::new(
            field,
            format!(
                "the {what} path and name may hold only letters, digits and _+=,.@-/ (ASCII); it has {}",
                describe(c)
            ),
        ));
    }
    Ok(())
}

/// Splits `arn:PARTITION:iam::ACCOUNT:RESOURCE` into (ACCOUNT, RESOURCE) if the partition is `aws[a-z-]*`.
fn split_iam_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|p| p.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
    if !partition_ok {
        return None;
    }
    let rest = rest.strip_prefix("iam::")?;
    rest.split_once(':')
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn check_policy_arn(field: &str, arn: &str) -> Checked {
    const SHAPE: &str =
        "arn:aws:iam::ACCOUNT:policy/[PATH/]NAME, ACCOUNT being 12 digits or \"aws\"";
    let length = arn.chars().count();
    if !(20..=2048).contains(&length) {
        return Err(ValidationError::new(
            field,
            format!("must be 20 to 2048 characters long, not {length}"),
        ));
    }
    let Some((account, resource)) = split_iam_arn(arn) else {
        return Err(ValidationError::new(
            field,
            format!("is not an IAM policy ARN: {SHAPE}"),
        ));
    };
    if !(is_account_id(account) || account == "aws") {
        return Err(ValidationError::new(
            field,
            format!("the account must be 12 digits or \"aws\": {SHAPE}"),
        ));
    }
    let Some(rest) = resource.strip_prefix("policy/") else {
        return Err(ValidationError::new(
            field,
            format!("is not an IAM policy ARN: {SHAPE}"),
        ));
    };
    check_iam_resource(field, rest, "policy", SHAPE)
}

/// Checks managed session policy ARNs (field `policy_arns`, or `policy_arns[i]`): at most 10, each
/// `arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[PATH/]NAME`, no duplicates.
pub fn check_policy_arns(arns: &[String]) -> Checked {
    if arns.len() > MAX_POLICY_ARNS {
        return Err(ValidationError::new(
            "policy_arns",
            format!(
                "at most {MAX_POLICY_ARNS} policy ARNs may be sent, not {}",
                arns.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, arn) in arns.iter().enumerate() {
        let field = format!("policy_arns[{i}]");
        check_policy_arn(&field, arn)?;
        if !seen.insert(arn.as_str()) {
            return Err(ValidationError::new(
                field,
                format!("{arn} is listed more than once"),
            ));
        }
    }
    Ok(())
}

/// Checks that the inline policy and the policy ARNs together are at most 2,048 characters of plaintext (field
/// `policy_arns`).
pub fn check_session_policy_size(policy: Option<&str>, arns: &[String]) -> Checked {
    let total = policy.map_or(0, |p| p.chars().count())
        + arns.iter().map(|a| a.chars().count()).sum::<usize>();
    if total > MAX_SESSION_POLICY_PLAINTEXT {
        return Err(ValidationError::new(
            "policy_arns",
            format!(
                "the inline policy and the policy ARNs together must be at most {MAX_SESSION_POLICY_PLAINTEXT} characters, not {total}"
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Tags

/// A character of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. Letters and numbers are Rust's `char::is_alphabetic` and
/// `char::is_numeric` (a near match of `\p{L}` and `\p{N}`); separators are Unicode white space other than
/// control characters (`\p{Z}`).
fn is_tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

fn check_tags_at(prefix: &str, tags: &[SessionTag]) -> Checked {
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::new(
            prefix,
            format!(
                "at most {MAX_TAGS} session tags may be sent, not {}",
                tags.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, tag) in tags.iter().enumerate() {
        let key_field = format!("{prefix}[{i}].key");
        let length = tag.key.chars().count();
        if !TAG_KEY_LENGTH.contains(&length) {
            return Err(ValidationError::new(
                key_field,
                format!(
                    "must be {} to {} characters long, not {length}",
                    TAG_KEY_LENGTH.start(),
                    TAG_KEY_LENGTH.end()
                ),
            ));
        }
        if let Some(c) = tag.key.chars().find(|&c| !is_tag_char(c)) {
            return Err(ValidationError::new(
                key_field,
                format!(
                    "may hold only letters, numbers, spaces and _.:/=+-@; it has {}",
                    describe(c)
                ),
            ));
        }
        if tag
            .key
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
        {
            return Err(ValidationError::new(
                key_field,
                "must not begin with \"aws:\" (reserved by AWS)",
            ));
        }
        if !seen.insert(tag.key.to_lowercase()) {
            return Err(ValidationError::new(
                key_field,
                format!(
                    "the key {:?} is given more than once (tag keys are compared ignoring case)",
                    tag.key
                ),
            ));
        }
        let value_field = format!("{prefix}[{i}].value");
        let length = tag.value.chars().count();
        if length > TAG_VALUE_MAX {
            return Err(ValidationError::new(
                value_field,
                format!("must be at most {TAG_VALUE_MAX} characters long, not {length}"),
            ));
        }
        if let Some(c) = tag.value.chars().find(|&c| !is_tag_char(c)) {
            return Err(ValidationError::new(
                value_field,
                format!(
                    "may hold only letters, numbers, spaces and _.:/=+-@; it has {}",
                    describe(c)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks session tags (fields `tags`, `tags[i].key`, `tags[i].value`): at most 50; keys 1–128 and values 0–256
/// characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`; keys unique ignoring case; no key beginning with `aws:`.
pub fn check_tags(tags: &[SessionTag]) -> Checked {
    check_tags_at("tags", tags)
}

// ---------------------------------------------------------------------------------------------------------------
// Roles, external ids, names, regions, endpoints

/// Checks an `ExternalId` (field `external_id`): 2–1,224 characters of `[\w+=,.@:/-]`. The value is not echoed.
pub fn check_external_id(id: &str) -> Checked {
    let length = id.chars().count();
    if !EXTERNAL_ID_LENGTH.contains(&length) {
        return Err(ValidationError::new(
            "external_id",
            format!(
                "must be {} to {} characters long, not {length}",
                EXTERNAL_ID_LENGTH.start(),
                EXTERNAL_ID_LENGTH.end()
            ),
        ));
    }
    if let Some(position) = id
        .chars()
        .position(|c| !(is_sts_name_char(c) || c == ':' || c == '/'))
    {
        return Err(ValidationError::new(
            "external_id",
            format!(
                "may hold only letters, digits and _+=,.@:/- (ASCII); character {position} is not one of them"
            ),
        ));
    }
    Ok(())
}

/// Checks a role ARN (field `role_arn`): `arn:aws[a-z-]*:iam::\d{12}:role/[PATH/]NAME`, 20–2,048 characters,
/// the name at most 64.
pub fn check_role_arn(arn: &str) -> Checked {
    const FIELD: &str = "role_arn";
    const SHAPE: &str = "arn:aws:iam::ACCOUNT:role/[PATH/]NAME, ACCOUNT being 12 digits";
    let length = arn.chars().count();
    if !(20..=2048).contains(&length) {
        return Err(ValidationError::new(
            FIELD,
            format!("must be 20 to 2048 characters long, not {length}"),
        ));
    }
    let Some((account, resource)) = split_iam_arn(arn) else {
        return Err(ValidationError::new(
            FIELD,
            format!("is not an IAM role ARN: {SHAPE}"),
        ));
    };
    if !is_account_id(account) {
        return Err(ValidationError::new(
            FIELD,
            format!("the account must be 12 digits: {SHAPE}"),
        ));
    }
    let Some(rest) = resource.strip_prefix("role/") else {
        return Err(ValidationError::new(
            FIELD,
            format!("is not an IAM role ARN: {SHAPE}"),
        ));
    };
    check_iam_resource(FIELD, rest, "role", SHAPE)?;
    let name = rest.rsplit('/').next().unwrap_or(rest);
    if name.len() > 64 {
        return Err(ValidationError::new(
            FIELD,
            format!(
                "the role name must be at most 64 characters, not {}",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// Checks an account or connector name: 1–64 characters of `A-Za-z0-9._-`.
pub fn check_name(field: &str, name: &str) -> Checked {
    let length = name.chars().count();
    if !(1..=NAME_MAX).contains(&length) {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {NAME_MAX} characters long, not {length}"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "may hold only A-Z, a-z, 0-9, '.', '_' and '-'; it has {}",
                describe(c)
            ),
        ));
    }
    Ok(())
}

/// Checks a region name (field `region`): 2–32 characters of lowercase letters, digits and single `-`s, beginning
/// with a letter, with at least one `-` (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `aws-global`).
pub fn check_region(region: &str) -> Checked {
    let ok = (2..=32).contains(&region.len())
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && !region.ends_with('-')
        && !region.contains("--")
        && region.contains('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "region",
            format!("{region:?} is not an AWS region name (such as us-east-1)"),
        ))
    }
}

/// Checks an STS endpoint URL (field `endpoint`): `http://` or `https://`, a host (a name, an IPv4 address or a
/// bracketed IPv6 address), an optional port, an optional path; no user name or password, query or fragment, no
/// spaces or control characters. The URL is parsed by the `url` crate (the WHATWG URL standard).
pub fn check_endpoint(endpoint: &str) -> Checked {
    let err = |rule: &str| Err(ValidationError::new("endpoint", rule.to_owned()));
    if !endpoint.starts_with("https://") && !endpoint.starts_with("http://") {
        return err("must be an http:// or https:// URL");
    }
    if endpoint.len() > 2048 {
        return err("must be at most 2048 characters long");
    }
    // Before parsing: the parser drops tabs and newlines and trims spaces rather than refusing them.
    if endpoint
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return err("must not hold spaces or control characters");
    }
    let url = match url::Url::parse(endpoint) {
        Ok(url) => url,
        Err(url::ParseError::EmptyHost) => return err("must name a host"),
        Err(url::ParseError::InvalidPort) => return err("has an invalid port (1 to 65535)"),
        Err(url::ParseError::InvalidIpv6Address) => return err("has an invalid [IPv6 address]"),
        Err(_) => return err("has an invalid host name"),
    };
    if url.query().is_some() || url.fragment().is_some() {
        return err("must not hold a query or a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return err("must not hold a user name or password");
    }
    match url.host() {
        None => return err("must name a host"),
        Some(url::Host::Domain(name)) => {
            let valid_label = |label: &str| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            // The host as written, not one the parser mapped it to (IDNA, percent-decoding): the AWS SDK is
            // given the text as written.
            if !name.split('.').all(valid_label) || !endpoint.to_ascii_lowercase().contains(name) {
                return err("has an invalid host name");
            }
        }
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {}
    }
    if url.port() == Some(0) {
        return err("has an invalid port (1 to 65535)");
    }
    Ok(())
}

/// Checks an access key id (field `access_key_id`): 16–128 characters of `[A-Za-z0-9_]`.
pub fn check_access_key_id(id: &str) -> Checked {
    if !(16..=128).contains(&id.len())
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ValidationError::new(
            "access_key_id",
            "must be 16 to 128 characters of A-Z, a-z, 0-9 and _",
        ));
    }
    Ok(())
}

/// Checks the account side of a call: its name, its credentials (a static key needs an id and a non-empty secret;
/// neither is echoed), its region and endpoint.
pub fn check_access(access: &AccountAccess) -> Checked {
    check_name("account_name", &access.account_name)?;
    if let AccountCredentials::Static {
        access_key_id,
        secret_access_key,
    } = &access.credentials
    {
        check_access_key_id(access_key_id)?;
        if secret_access_key.is_empty() {
            return Err(ValidationError::new(
                "secret_access_key",
                "must not be empty",
            ));
        }
    }
    if let Some(region) = &access.region {
        check_region(region)?;
    }
    if let Some(endpoint) = &access.endpoint {
        check_endpoint(endpoint)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Connectors and requests

const NO_PERMISSIONS: &str = "a federated-user connector needs an inline policy or policy ARNs: without a session \
     policy, GetFederationToken's sessions have no permissions at all";

/// Checks a connector being saved: its name and account name, its principal (role ARN, external id, session tags),
/// its session policies (iam-user connectors take none: `GetSessionToken` accepts no session policy; a
/// federated-user connector must have one, or its sessions would have no permissions), and its durations (each
/// within the principal type's range, the default at most the maximum).
pub fn check_connector(connector: &Connector) -> Checked {
    check_name("name", &connector.name)?;
    check_name("account", &connector.account)?;
    let principal = connector.principal.principal_type();
    if let Principal::AssumedRole {
        role_arn,
        external_id,
        session_tags,
        source_identity: _,
    } = &connector.principal
    {
        check_role_arn(role_arn).map_err(|e| prefixed("principal", e))?;
        if let Some(id) = external_id {
            check_external_id(id).map_err(|e| prefixed("principal", e))?;
        }
        check_tags_at("principal.session_tags", session_tags)?;
    }
    match principal {
        PrincipalType::IamUser => {
            if connector.policy.is_some() {
                return Err(ValidationError::new(
                    "policy",
                    "iam-user connectors take no session policy (GetSessionToken accepts none)",
                ));
            }
            if !connector.policy_arns.is_empty() {
                return Err(ValidationError::new(
                    "policy_arns",
                    "iam-user connectors take no policy ARNs (GetSessionToken accepts none)",
                ));
            }
        }
        PrincipalType::FederatedUser => {
            if connector.policy.is_none() && connector.policy_arns.is_empty() {
                return Err(ValidationError::new("policy", NO_PERMISSIONS));
            }
        }
        PrincipalType::AssumedRole => {}
    }
    if let Some(policy) = &connector.policy {
        check_policy(policy)?;
    }
    check_policy_arns(&connector.policy_arns)?;
    check_session_policy_size(connector.policy.as_deref(), &connector.policy_arns)?;
    if let Some(default) = connector.default_duration_seconds {
        check_duration_field("default_duration_seconds", principal, default)?;
    }
    if let Some(max) = connector.max_duration_seconds {
        check_duration_field("max_duration_seconds", principal, max)?;
    }
    if let (Some(default), Some(max)) = (
        connector.default_duration_seconds,
        connector.max_duration_seconds,
    ) && default > max
    {
        return Err(ValidationError::new(
            "default_duration_seconds",
            format!("must not be more than max_duration_seconds ({default} > {max})"),
        ));
    }
    Ok(())
}

fn prefixed(prefix: &str, error: ValidationError) -> ValidationError {
    ValidationError::new(format!("{prefix}.{}", error.field), error.rule)
}

fn check_session_policies(policy: &Option<String>, arns: &[String]) -> Checked {
    if let Some(policy) = policy {
        check_policy(policy)?;
    }
    check_policy_arns(arns)?;
    check_session_policy_size(policy.as_deref(), arns)
}

/// The final gate before any STS call: everything the request carries (the account's name, credentials, region
/// and endpoint; the names, role ARN, external id, session policies, tags and duration of the call). A federated
/// request without any session policy is refused, as for connectors.
pub fn check_issue_request(request: &IssueRequest) -> Checked {
    check_access(&request.access)?;
    match &request.kind {
        IssueKind::FederationToken {
            name,
            policy,
            policy_arns,
            tags,
        } => {
            check_federated_user_name(name)?;
            if policy.is_none() && policy_arns.is_empty() {
                return Err(ValidationError::new("policy", NO_PERMISSIONS));
            }
            check_session_policies(policy, policy_arns)?;
            check_tags(tags)?;
        }
        IssueKind::SessionToken => {}
        IssueKind::AssumeRole {
            role_arn,
            session_name,
            external_id,
            policy,
            policy_arns,
            tags,
            source_identity,
        } => {
            check_role_arn(role_arn)?;
            check_role_session_name(session_name)?;
            if let Some(id) = external_id {
                check_external_id(id)?;
            }
            check_session_policies(policy, policy_arns)?;
            check_tags(tags)?;
            if let Some(value) = source_identity {
                check_source_identity(value)?;
            }
        }
    }
    check_duration(request.kind.principal_type(), request.duration_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/*"}]}"#;
    const ARN: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    const ROLE: &str = "arn:aws:iam::123456789012:role/dev";

    fn field(result: Checked) -> String {
        result.expect_err("expected a refusal").field
    }

    fn tag(key: &str, value: &str) -> SessionTag {
        SessionTag {
            key: key.into(),
            value: value.into(),
        }
    }

    // ----- names

    #[test]
    fn fitting_names_are_kept() {
        for name in [
            "alice",
            "jane.doe@example.com",
            "a+b=c,d",
            "ab",
            &"x".repeat(32),
        ] {
            assert_eq!(federated_user_name(name), name);
            check_federated_user_name(&federated_user_name(name)).unwrap();
        }
        assert_eq!(role_session_name(&"y".repeat(64)), "y".repeat(64));
        assert_eq!(source_identity("bob"), "bob");
    }

    #[test]
    fn mapped_names_fit_and_are_deterministic() {
        for name in [
            "",
            "a",
            "é",
            "a b",
            "Jane Doe",
            "DOMAIN\\jane",
            "ユーザー",
            &"z".repeat(33),
            &"q".repeat(500),
        ] {
            let mapped = federated_user_name(name);
            check_federated_user_name(&mapped).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!(mapped, federated_user_name(name));
            check_role_session_name(&role_session_name(name)).unwrap();
            check_source_identity(&source_identity(name)).unwrap();
            assert!(looks_mapped(&mapped), "{mapped}");
        }
        assert!(federated_user_name("Jane Doe").starts_with("Jane_Doe-"));
        assert!(federated_user_name("a").starts_with("a-"));
        assert_eq!(federated_user_name(&"q".repeat(500)).len(), 32);
        assert_eq!(role_session_name(&"q".repeat(500)).len(), 64);
        assert_eq!(source_identity(&"q".repeat(500)).len(), 64);
    }

    #[test]
    fn mapped_names_do_not_collide() {
        let a = "a".repeat(40);
        let b = format!("{}b", "a".repeat(39));
        let pairs = [
            ("a b".to_string(), "a_b".to_string()),
            ("a b".to_string(), "a!b".to_string()),
            (a.clone(), b.clone()),
            ("a".to_string(), "a_".to_string()),
        ];
        for (x, y) in pairs {
            assert_ne!(
                federated_user_name(&x),
                federated_user_name(&y),
                "{x} / {y}"
            );
            assert_ne!(role_session_name(&x), role_session_name(&y), "{x} / {y}");
            assert_ne!(source_identity(&x), source_identity(&y), "{x} / {y}");
        }
        let c = format!("{}c", "a".repeat(69));
        let d = format!("{}d", "a".repeat(69));
        assert_ne!(role_session_name(&c), role_session_name(&d));
        assert_ne!(source_identity(&c), source_identity(&d));
        // A user literally named like another user's mapped name is mapped too.
        let mapped = federated_user_name("a b");
        assert_ne!(federated_user_name(&mapped), mapped);
        assert_ne!(role_session_name(&mapped), mapped);
        assert!(looks_mapped(&mapped));
        assert!(!looks_mapped("build-1234567"));
        assert_eq!(federated_user_name("build-DEADBEEF"), "build-DEADBEEF");
    }

    #[test]
    fn mapped_names_keep_64_bits_of_the_hash_of_the_whole_name() {
        // A workload's name (issuer:subject) too long for STS: 47 characters kept, then 16 hex digits of the
        // SHA-256 of the whole name.
        let name = format!("ci:repo:org/app:environment:{}", "x".repeat(100));
        let expected = "ci_repo_org_app_environment_xxxxxxxxxxxxxxxxxxx-9152bf9634c2ca4f";
        assert_eq!(role_session_name(&name), expected);
        assert_eq!(source_identity(&name), expected);
        assert_eq!(
            federated_user_name(&name),
            "ci_repo_org_app-9152bf9634c2ca4f"
        );
        // Names alike but for their end (past what is kept) map apart.
        let a = format!("ci:repo:org/app:environment:{}a", "x".repeat(200));
        let b = format!("ci:repo:org/app:environment:{}b", "x".repeat(200));
        assert_ne!(role_session_name(&a), role_session_name(&b));
        assert_ne!(federated_user_name(&a), federated_user_name(&b));
        // An 8-digit tail is no longer the mapped shape: such a name is kept as it is.
        assert_eq!(role_session_name("build-deadbeef"), "build-deadbeef");
        assert_eq!(
            role_session_name("build-0123456789abcdef").len(),
            "build-0123456789abcdef".len() + 17
        );
    }

    #[test]
    fn sts_names_are_checked() {
        assert_eq!(field(check_federated_user_name("a")), "name");
        assert_eq!(field(check_federated_user_name(&"a".repeat(33))), "name");
        assert_eq!(field(check_federated_user_name("a b")), "name");
        assert_eq!(field(check_role_session_name("a/b")), "session_name");
        assert_eq!(
            field(check_role_session_name(&"a".repeat(65))),
            "session_name"
        );
        check_role_session_name(&"a".repeat(64)).unwrap();
        assert_eq!(field(check_source_identity("x")), "source_identity");
        assert_eq!(field(check_source_identity("a:b")), "source_identity");
    }

    // ----- durations

    #[test]
    fn duration_ranges_and_defaults() {
        use PrincipalType::*;
        assert_eq!(duration_range(FederatedUser), 900..=129_600);
        assert_eq!(duration_range(IamUser), 900..=129_600);
        assert_eq!(duration_range(AssumedRole), 900..=43_200);
        assert_eq!(aws_default_duration(FederatedUser), 43_200);
        assert_eq!(aws_default_duration(IamUser), 43_200);
        assert_eq!(aws_default_duration(AssumedRole), 3_600);
        for p in [FederatedUser, IamUser, AssumedRole] {
            assert!(duration_range(p).contains(&aws_default_duration(p)));
            check_duration(p, 900).unwrap();
            check_duration(p, *duration_range(p).end()).unwrap();
            assert_eq!(field(check_duration(p, 899)), "duration_seconds");
            assert_eq!(
                field(check_duration(p, duration_range(p).end() + 1)),
                "duration_seconds"
            );
            assert_eq!(field(check_duration(p, 0)), "duration_seconds");
        }
        let err = check_duration(AssumedRole, 43_201).unwrap_err();
        assert_eq!(
            err.rule,
            "must be between 900 and 43200 seconds for assumed-role connectors, not 43201"
        );
        assert!(
            err.to_string()
                .starts_with("duration_seconds: must be between 900")
        );
    }

    // ----- policies

    #[test]
    fn policies_are_checked() {
        check_policy(POLICY).unwrap();
        assert_eq!(field(check_policy("")), "policy");
        assert_eq!(field(check_policy("{not json")), "policy");
        assert_eq!(
            field(check_policy(
                r#"{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#
            )),
            "policy"
        );
        let long = format!(
            r#"{{"Statement":[{{"Sid":"{}","Effect":"Allow","Action":"*","Resource":"*"}}]}}"#,
            "a".repeat(2100)
        );
        assert!(check_policy(&long).unwrap_err().rule.contains("2048"));
        let unicode = POLICY.replace("data", "dαta");
        assert!(check_policy(&unicode).unwrap_err().rule.contains("U+03B1"));
        let with_principal =
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;
        assert!(
            check_policy(with_principal)
                .unwrap_err()
                .rule
                .contains("Principal")
        );
    }

    #[test]
    fn policy_arns_are_checked() {
        check_policy_arns(&[]).unwrap();
        check_policy_arns(&[
            ARN.into(),
            "arn:aws:iam::123456789012:policy/team/dev-read".into(),
            "arn:aws-us-gov:iam::123456789012:policy/x_y".into(),
            "arn:aws-cn:iam::aws:policy/job-function/ViewOnlyAccess".into(),
        ])
        .unwrap();
        let eleven: Vec<String> = (0..11)
            .map(|i| format!("arn:aws:iam::123456789012:policy/p{i}"))
            .collect();
        assert_eq!(field(check_policy_arns(&eleven)), "policy_arns");
        check_policy_arns(&eleven[..10]).unwrap();
        for bad in [
            "arn:aws:iam::12345678901:policy/x",
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:s3:::123456789012:policy/x",
            "arn:gcp:iam::123456789012:policy/x",
            "arn:aws:iam::123456789012:policy/",
            "arn:aws:iam::123456789012:policy/a b",
            "arn:aws:iam:us-east-1:123456789012:policy/x",
            "arn:AWS:iam::123456789012:policy/x",
            "policy/x",
        ] {
            assert_eq!(
                field(check_policy_arns(&[ARN.into(), bad.into()])),
                "policy_arns[1]",
                "{bad}"
            );
        }
        let dup = check_policy_arns(&[ARN.into(), ARN.into()]).unwrap_err();
        assert_eq!(dup.field, "policy_arns[1]");
        assert!(dup.rule.contains("more than once"));
    }

    #[test]
    fn session_policy_plaintext_is_limited() {
        check_session_policy_size(Some(POLICY), &[ARN.into()]).unwrap();
        let padded = format!("{POLICY}{}", " ".repeat(2048 - POLICY.len()));
        check_session_policy_size(Some(&padded), &[]).unwrap();
        assert_eq!(
            field(check_session_policy_size(Some(&padded), &[ARN.into()])),
            "policy_arns"
        );
    }

    // ----- tags

    #[test]
    fn tags_are_checked() {
        check_tags(&[]).unwrap();
        check_tags(&[
            tag("team", "data"),
            tag("Project Name", ""),
            tag("ключ", "значение 1"),
            tag("a:b/c=d+e-f@g_h.", "x"),
        ])
        .unwrap();
        let fifty: Vec<_> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
        check_tags(&fifty).unwrap();
        let fifty_one: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(field(check_tags(&fifty_one)), "tags");
        assert_eq!(field(check_tags(&[tag("", "v")])), "tags[0].key");
        assert_eq!(
            field(check_tags(&[tag("ok", "v"), tag(&"k".repeat(129), "v")])),
            "tags[1].key"
        );
        check_tags(&[tag(&"k".repeat(128), &"v".repeat(256))]).unwrap();
        assert_eq!(
            field(check_tags(&[tag("k", &"v".repeat(257))])),
            "tags[0].value"
        );
        assert_eq!(field(check_tags(&[tag("k*", "v")])), "tags[0].key");
        assert_eq!(field(check_tags(&[tag("k", "v\n")])), "tags[0].value");
        assert_eq!(field(check_tags(&[tag("k", "v;")])), "tags[0].value");
        assert_eq!(field(check_tags(&[tag("AWS:x", "v")])), "tags[0].key");
        let dup = check_tags(&[tag("Team", "a"), tag("team", "b")]).unwrap_err();
        assert_eq!(dup.field, "tags[1].key");
        assert!(dup.rule.contains("ignoring case"));
    }

    // ----- role, external id, names, region, endpoint

    #[test]
    fn role_arns_are_checked() {
        check_role_arn(ROLE).unwrap();
        check_role_arn("arn:aws:iam::123456789012:role/service-role/ci+deploy@x").unwrap();
        check_role_arn("arn:aws-us-gov:iam::123456789012:role/dev").unwrap();
        for bad in [
            "",
            "arn:aws:iam::aws:role/dev-role-name",
            "arn:aws:iam::123456789012:policy/dev",
            "arn:aws:iam::123456789012:user/dev",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/dev/",
            "arn:aws:iam::123456789012:role/d v",
            "arn:aws:sts::123456789012:role/dev",
            "arn:aws:iam::1234567890123:role/dev",
        ] {
            assert_eq!(field(check_role_arn(bad)), "role_arn", "{bad}");
        }
        assert_eq!(
            field(check_role_arn(&format!("{ROLE}{}", "x".repeat(62)))),
            "role_arn"
        );
    }

    #[test]
    fn external_ids_are_checked() {
        check_external_id("ab").unwrap();
        check_external_id("urn:example/123_abc+=,.@-").unwrap();
        check_external_id(&"e".repeat(1224)).unwrap();
        assert_eq!(field(check_external_id("a")), "external_id");
        assert_eq!(field(check_external_id(&"e".repeat(1225))), "external_id");
        let err = check_external_id("secret value").unwrap_err();
        assert!(!err.rule.contains("secret"), "{err}");
    }

    #[test]
    fn names_are_checked() {
        check_name("name", "dev").unwrap();
        check_name("name", "A.b_c-9").unwrap();
        check_name("name", &"n".repeat(64)).unwrap();
        assert_eq!(field(check_name("name", "")), "name");
        assert_eq!(field(check_name("account", &"n".repeat(65))), "account");
        assert_eq!(field(check_name("name", "a b")), "name");
        assert_eq!(field(check_name("name", "a@b")), "name");
        assert_eq!(field(check_name("name", "é")), "name");
    }

    #[test]
    fn regions_are_checked() {
        for ok in [
            "us-east-1",
            "eu-west-3",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-4",
            "us-isob-east-1",
            "aws-global",
        ] {
            check_region(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "US-EAST-1",
            "us_east_1",
            "useast1",
            "-us-east-1",
            "us-east-",
            "us--east-1",
            "us-east-1 ",
            "1us-east",
        ] {
            assert_eq!(field(check_region(bad)), "region", "{bad:?}");
        }
    }

    #[test]
    fn endpoints_are_checked() {
        for ok in [
            "https://sts.amazonaws.com",
            "https://sts.eu-west-1.amazonaws.com/",
            "http://127.0.0.1:5000",
            "http://localhost:5000/sts",
            "https://vpce-0123-abcd.sts.us-east-1.vpce.amazonaws.com",
            "http://[::1]:8080",
            "http://[::1]",
            "http://STS.Example.com:8443/a%20b",
        ] {
            check_endpoint(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "sts.amazonaws.com",
            "ftp://sts.amazonaws.com",
            "https://",
            "https://:443",
            "http://host:0",
            "http://host:70000",
            "http://host:x",
            "http://user:pw@host",
            "http://ho st",
            "http://host/?a=b",
            "http://host#x",
            "http://-host",
            "http://a..b",
            "http://[::1",
            "http://[::1]x",
            "http://[zz]",
            "http://256.0.0.1",
            "http://host.",
            "http://\u{e9}\u{301}-.example",
            "http://b\u{fc}cher.example",
            "http://st%73.amazonaws.com",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad:?} is accepted");
            assert_eq!(field(check_endpoint(bad)), "endpoint", "{bad:?}");
        }
        let rule = |url: &str| check_endpoint(url).unwrap_err().rule;
        assert_eq!(
            rule("HTTPS://sts.amazonaws.com"),
            "must be an http:// or https:// URL"
        );
        assert_eq!(rule("https://"), "must name a host");
        assert_eq!(rule("https://:443"), "must name a host");
        assert_eq!(rule("http://host:0"), "has an invalid port (1 to 65535)");
        assert_eq!(
            rule("http://host:70000"),
            "has an invalid port (1 to 65535)"
        );
        assert_eq!(
            rule("http://user:pw@host"),
            "must not hold a user name or password"
        );
        assert_eq!(
            rule("http://host\t.example"),
            "must not hold spaces or control characters"
        );
        assert_eq!(
            rule("http://host/?a=b"),
            "must not hold a query or a fragment"
        );
        assert_eq!(rule("http://a..b"), "has an invalid host name");
        assert_eq!(rule("http://[zz]"), "has an invalid [IPv6 address]");
        assert_eq!(
            rule(&format!("https://{}.example", "a".repeat(2048))),
            "must be at most 2048 characters long"
        );
    }

    #[test]
    fn access_is_checked() {
        let mut access = AccountAccess {
            account_name: "main".into(),
            credentials: AccountCredentials::Static {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            },
            region: Some("eu-west-1".into()),
            endpoint: Some("http://127.0.0.1:5000".into()),
        };
        check_access(&access).unwrap();
        access.credentials = AccountCredentials::HostChain;
        check_access(&access).unwrap();
        access.credentials = AccountCredentials::Static {
            access_key_id: "AKIA".into(),
            secret_access_key: Secret::new("x"),
        };
        assert_eq!(field(check_access(&access)), "access_key_id");
        access.credentials = AccountCredentials::Static {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new(""),
        };
        assert_eq!(field(check_access(&access)), "secret_access_key");
        access.credentials = AccountCredentials::HostChain;
        access.account_name = "bad name".into();
        assert_eq!(field(check_access(&access)), "account_name");
        access.account_name = "main".into();
        access.region = Some("Mars".into());
        assert_eq!(field(check_access(&access)), "region");
        access.region = None;
        access.endpoint = Some("nope".into());
        assert_eq!(field(check_access(&access)), "endpoint");
    }

    // ----- connectors

    fn connector(principal: Principal) -> Connector {
        Connector {
            id: uuid::Uuid::nil(),
            name: "dev".into(),
            description: String::new(),
            account: "main".into(),
            principal,
            policy: Some(POLICY.into()),
            policy_arns: vec![],
            default_duration_seconds: None,
            max_duration_seconds: None,
            groups: vec![],
            system_scope: false,
            enabled: true,
            credential_cache: false,
            bindings: vec![],
        }
    }

    fn role() -> Principal {
        Principal::AssumedRole {
            role_arn: ROLE.into(),
            external_id: None,
            session_tags: vec![],
            source_identity: true,
        }
    }

    #[test]
    fn valid_connectors_pass() {
        check_connector(&connector(Principal::FederatedUser)).unwrap();
        check_connector(&connector(role())).unwrap();
        let mut c = connector(Principal::IamUser);
        c.policy = None;
        check_connector(&c).unwrap();
        let mut c = connector(Principal::FederatedUser);
        c.policy = None;
        c.policy_arns = vec![ARN.into()];
        c.default_duration_seconds = Some(3600);
        c.max_duration_seconds = Some(129_600);
        check_connector(&c).unwrap();
    }

    #[test]
    fn connector_rules() {
        let mut c = connector(Principal::FederatedUser);
        c.name = "no spaces".into();
        assert_eq!(field(check_connector(&c)), "name");
        let mut c = connector(Principal::FederatedUser);
        c.account = String::new();
        assert_eq!(field(check_connector(&c)), "account");

        let mut c = connector(Principal::IamUser);
        assert_eq!(field(check_connector(&c)), "policy");
        c.policy = None;
        c.policy_arns = vec![ARN.into()];
        assert!(
            check_connector(&c)
                .unwrap_err()
                .rule
                .contains("GetSessionToken")
        );

        let mut c = connector(Principal::FederatedUser);
        c.policy = None;
        let err = check_connector(&c).unwrap_err();
        assert_eq!(err.field, "policy");
        assert!(err.rule.contains("no permissions"), "{err}");

        let mut c = connector(Principal::FederatedUser);
        c.policy = Some("{}".into());
        assert_eq!(field(check_connector(&c)), "policy");
        let mut c = connector(Principal::FederatedUser);
        c.policy_arns = vec!["nope".into()];
        assert_eq!(field(check_connector(&c)), "policy_arns[0]");

        let mut c = connector(role());
        c.max_duration_seconds = Some(43_201);
        assert_eq!(field(check_connector(&c)), "max_duration_seconds");
        c.max_duration_seconds = Some(3600);
        c.default_duration_seconds = Some(600);
        assert_eq!(field(check_connector(&c)), "default_duration_seconds");
        c.default_duration_seconds = Some(7200);
        let err = check_connector(&c).unwrap_err();
        assert_eq!(err.field, "default_duration_seconds");
        assert!(err.rule.contains("max_duration_seconds"));
        c.default_duration_seconds = Some(1800);
        check_connector(&c).unwrap();
        assert_eq!(effective_default_duration(&c), 1800);

        let mut c = connector(Principal::AssumedRole {
            role_arn: "arn:aws:iam::123:role/x".into(),
            external_id: None,
            session_tags: vec![],
            source_identity: false,
        });
        assert_eq!(field(check_connector(&c)), "principal.role_arn");
        c.principal = Principal::AssumedRole {
            role_arn: ROLE.into(),
            external_id: Some("x".into()),
            session_tags: vec![],
            source_identity: false,
        };
        assert_eq!(field(check_connector(&c)), "principal.external_id");
        c.principal = Principal::AssumedRole {
            role_arn: ROLE.into(),
            external_id: None,
            session_tags: vec![tag("a", "1"), tag("A", "2")],
            source_identity: false,
        };
        assert_eq!(field(check_connector(&c)), "principal.session_tags[1].key");
        // An assumed-role connector may do without a session policy: the role's own policies apply.
        let mut c = connector(role());
        c.policy = None;
        check_connector(&c).unwrap();
    }

    #[test]
    fn effective_default_durations() {
        let mut c = connector(Principal::FederatedUser);
        assert_eq!(effective_default_duration(&c), 43_200);
        c.max_duration_seconds = Some(3600);
        assert_eq!(effective_default_duration(&c), 3600);
        let c = connector(role());
        assert_eq!(effective_default_duration(&c), 3600);
    }

    // ----- requests

    fn request(kind: IssueKind, duration_seconds: u32) -> IssueRequest {
        IssueRequest {
            access: AccountAccess {
                account_name: "main".into(),
                credentials: AccountCredentials::Static {
                    access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                    secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                },
                region: None,
                endpoint: None,
            },
            kind,
            duration_seconds,
            requester: None,
        }
    }

    fn federation() -> IssueKind {
        IssueKind::FederationToken {
            name: "alice".into(),
            policy: Some(POLICY.into()),
            policy_arns: vec![ARN.into()],
            tags: vec![tag("team", "data")],
        }
    }

    fn assume() -> IssueKind {
        IssueKind::AssumeRole {
            role_arn: ROLE.into(),
            session_name: "alice".into(),
            external_id: Some("ext-123".into()),
            policy: Some(POLICY.into()),
            policy_arns: vec![ARN.into()],
            tags: vec![tag("team", "data")],
            source_identity: Some("alice".into()),
        }
    }

    #[test]
    fn valid_requests_pass() {
        check_issue_request(&request(federation(), 3600)).unwrap();
        check_issue_request(&request(IssueKind::SessionToken, 129_600)).unwrap();
        check_issue_request(&request(assume(), 43_200)).unwrap();
    }

    #[test]
    fn request_rules() {
        assert_eq!(
            field(check_issue_request(&request(federation(), 899))),
            "duration_seconds"
        );
        assert_eq!(
            field(check_issue_request(&request(
                IssueKind::SessionToken,
                129_601
            ))),
            "duration_seconds"
        );
        assert_eq!(
            field(check_issue_request(&request(assume(), 43_201))),
            "duration_seconds"
        );

        let mut r = request(IssueKind::SessionToken, 3600);
        r.access.endpoint = Some("tcp://x".into());
        assert_eq!(field(check_issue_request(&r)), "endpoint");

        let with = |f: &dyn Fn(&mut IssueKind)| {
            let mut kind = federation();
            f(&mut kind);
            field(check_issue_request(&request(kind, 3600)))
        };
        assert_eq!(
            with(&|k| if let IssueKind::FederationToken { name, .. } = k {
                *name = "a b".into()
            }),
            "name"
        );
        assert_eq!(
            with(&|k| if let IssueKind::FederationToken {
                policy,
                policy_arns,
                ..
            } = k
            {
                *policy = None;
                policy_arns.clear();
            }),
            "policy"
        );
        assert_eq!(
            with(&|k| if let IssueKind::FederationToken { policy, .. } = k {
                *policy = Some("[]".into())
            }),
            "policy"
        );
        assert_eq!(
            with(
                &|k| if let IssueKind::FederationToken { policy_arns, .. } = k {
                    policy_arns.push(ARN.into())
                }
            ),
            "policy_arns[1]"
        );
        assert_eq!(
            with(&|k| if let IssueKind::FederationToken { tags, .. } = k {
                tags.push(tag("TEAM", "x"))
            }),
            "tags[1].key"
        );

        let with = |f: &dyn Fn(&mut IssueKind)| {
            let mut kind = assume();
            f(&mut kind);
            field(check_issue_request(&request(kind, 3600)))
        };
        assert_eq!(
            with(&|k| if let IssueKind::AssumeRole { role_arn, .. } = k {
                *role_arn = "arn:aws:iam::123456789012:user/x".into()
            }),
            "role_arn"
        );
        assert_eq!(
            with(&|k| if let IssueKind::AssumeRole { session_name, .. } = k {
                *session_name = "a".into()
            }),
            "session_name"
        );
        assert_eq!(
            with(&|k| if let IssueKind::AssumeRole { external_id, .. } = k {
                *external_id = Some("x y".into())
            }),
            "external_id"
        );
        assert_eq!(
            with(&|k| if let IssueKind::AssumeRole {
                source_identity, ..
            } = k
            {
                *source_identity = Some("a b".into())
            }),
            "source_identity"
        );
        assert_eq!(
            with(&|k| if let IssueKind::AssumeRole { tags, .. } = k {
                tags.push(tag("k", "\u{7}"))
            }),
            "tags[1].value"
        );
        assert_eq!(
            with(&|k| if let IssueKind::AssumeRole { policy_arns, .. } = k {
                *policy_arns = (0..11)
                    .map(|i| format!("arn:aws:iam::aws:policy/P{i}"))
                    .collect();
            }),
            "policy_arns"
        );
        // AssumeRole without any session policy is fine: the role's own policies apply.
        let mut kind = assume();
        if let IssueKind::AssumeRole {
            policy,
            policy_arns,
            ..
        } = &mut kind
        {
            *policy = None;
            policy_arns.clear();
        }
        check_issue_request(&request(kind, 3600)).unwrap();
    }

    #[test]
    fn refusals_never_echo_the_secret() {
        let mut r = request(assume(), 1);
        r.access.region = Some("bad region".into());
        let err = check_issue_request(&r).unwrap_err();
        assert!(!format!("{err:?} {err}").contains("wJalr"));
    }
}
