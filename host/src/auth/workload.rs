//! Workload identity: the OIDC ID tokens CI systems give their jobs (GitHub Actions, GitLab CI, Buildkite,
//! Jenkins…) as callers, so a pipeline needs no long-lived API key.
//!
//! A token comes as `Authorization: Bearer <JWT>`. It is checked against the configured issuer its `iss`
//! names: the algorithm must be one the issuer allows (asymmetric only: never `none`, never HMAC, so a
//! public key can never be used as a shared secret), the key its `kid` names must be in the issuer's JWKS
//! (from a file, a URL, or the issuer's OpenID discovery document; cached, fetched again in the background
//! when it ages, and at once when an unknown `kid` shows a rotation), the key must fit the token's
//! algorithm, the signature must verify, the audience must be the one configured, `exp` and `iat` must be
//! whole numbers that hold with the configured leeway (and `nbf` when present), and the token may not
//! live longer than `max_token_lifetime_seconds`. Then the issuer's **claim rules** say which
//! system-scope connectors it may use: a rule matches when each claim it names matches (exactly, or with
//! `*` standing for any run of characters), and the caller gets the connectors of every rule that
//! matches. A token no rule matches is refused. The caller's name comes from a template of claims
//! (`{repository}@{ref}`), prefixed with the issuer's name: `ci:org/app@refs/heads/main`; a name longer
//! than 256 characters is refused, never cut.
//!
//! The token itself is never stored or logged: only the name and claims taken from it live on. A refused
//! token is logged with its issuer, its `kid` and the code, nothing else of it.
//!
//! The keys: a verification never waits for a fetch while usable keys are cached (a background task
//! refreshes them, one at a time per issuer); it waits — at most the fetch timeout — only when there are no
//! usable keys, or when its `kid` is unknown and the refetch gap has passed. Keys that could not be
//! refreshed for `jwks_max_stale_seconds` (a day) are no longer trusted.
//!
//! ```toml
//! [[workload.issuers]]
//! name = "ci"                                      # the callers' prefix: ci:…
//! issuer = "https://token.actions.githubusercontent.com"
//! audience = "https://idfed.example.com"
//! # jwks_url = "…" or jwks_file = "…"; neither: from the issuer's /.well-known/openid-configuration
//! algorithms = ["RS256"]                           # default RS256 and ES256
//! caller = "{repository}@{ref}"                    # default {sub}
//! [[workload.issuers.rules]]
//! claims = { repository = "org/app", ref = "refs/heads/main" }
//! connectors = ["deploy-prod"]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::lockout::Clock;

/// The longest token read (GitHub's are about 1.5 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The longest caller name (`issuer:` and the template filled in): longer ones are refused, never cut.
pub const MAX_NAME_CHARS: usize = 256;
/// The largest JWKS or discovery document read.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// The most claims kept for plugins and the audit log, and the longest value kept.
const MAX_CLAIMS: usize = 64;
const MAX_CLAIM_CHARS: usize = 512;
/// How long one fetch of an issuer's keys (the discovery document and the JWKS) may take in all.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most redirects one request of a fetch follows.
const MAX_REDIRECTS: usize = 3;
/// Issuer names that would read as idfed's own kinds of callers (`system:<API key>`).
const RESERVED_NAMES: [&str; 2] = ["system", "admin"];
/// Claims every token of an issuer carries with the same value: a rule needs another claim.
const ISSUER_WIDE_CLAIMS: [&str; 2] = ["iss", "aud"];

/// The algorithms idfed verifies: the asymmetric ones. HMAC (`HS*`) is refused whatever the configuration
/// says, because a JWKS is public and a public key must never serve as a shared secret.
const SUPPORTED: [(&str, Algorithm); 8] = [
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
];

fn supported(name: &str) -> Option<Algorithm> {
    SUPPORTED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, alg)| *alg)
}

/// `[workload]`: the OIDC issuers whose tokens are callers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSettings {
    /// The issuers (none: workload tokens are refused).
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
}

/// One `[[workload.issuers]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// A short name: the prefix of its callers' names (`ci` → `ci:org/app@refs/heads/main`). `system` and
    /// `admin` are reserved.
    pub name: String,
    /// The `iss` its tokens carry, exactly.
    pub issuer: String,
    /// The `aud` a token must carry (one of its audiences).
    pub audience: String,
    /// Where its JWKS is; with neither this nor `jwks_file`, the `jwks_uri` of its OpenID discovery
    /// document (`{issuer}/.well-known/openid-configuration`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A file holding its JWKS (read again whenever the keys are refreshed).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The algorithms accepted (default `["RS256", "ES256"]`; only RS*, PS* and ES256/ES384 may be named).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// The caller's name after `name:`, from claims (default `{sub}`).
    #[serde(default = "default_caller")]
    pub caller: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (default 60).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// The longest lifetime (`exp` − `iat`) a token may have, in seconds (default 21600, 6 hours).
    #[serde(default = "default_max_lifetime")]
    pub max_token_lifetime_seconds: u64,
    /// How long fetched keys are used before they are fetched again (in the background), in seconds
    /// (default 300).
    #[serde(default = "default_cache")]
    pub jwks_cache_seconds: u64,
    /// The least time between two fetches, in seconds (default 30, at least 1): tokens with made-up `kid`s
    /// cannot make idfed hammer the issuer, nor can an issuer that is down.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_min_seconds: u64,
    /// How long keys that could not be refreshed stay trusted after their last successful fetch, in
    /// seconds (default 86400, a day); then the issuer is unavailable until a fetch succeeds.
    #[serde(default = "default_max_stale")]
    pub jwks_max_stale_seconds: u64,
    /// A PEM file of CA certificates to trust for the JWKS and discovery URLs, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Which tokens may use which connectors.
    #[serde(default)]
    pub rules: Vec<ClaimRule>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_caller() -> String {
    "{sub}".into()
}
fn default_leeway() -> u64 {
    60
}
fn default_max_lifetime() -> u64 {
    21_600
}
fn default_cache() -> u64 {
    300
}
fn default_refresh() -> u64 {
    30
}
fn default_max_stale() -> u64 {
    86_400
}

/// One `[[workload.issuers.rules]]`: tokens whose claims match may use the connectors named.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// Claim name → the value it must have (`*` matches any run of characters). A claim that is a list
    /// matches when one of its items does. At least one claim other than `iss` and `aud` must have a
    /// pattern that is not only `*`: a rule never grants every token of its issuer.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// The system-scope connectors (by name) the token may then use.
    pub connectors: Vec<String>,
}

/// Why a workload token was refused. Each has a stable code; none carries the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// Not a JWS compact token, or its parts are not base64url JSON, or a field of the wrong type.
    #[error("the workload token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    /// Its `iss` is no configured issuer (or workload identity is not configured).
    #[error("the workload token's issuer {0:?} is not trusted here")]
    UnknownIssuer(String),
    /// Its `alg` is not one the issuer allows (`none` and HMAC never are), or fits no key its `kid` names.
    #[error("the workload token's algorithm {0:?} is not accepted")]
    AlgorithmRefused(String),
    /// Its `kid` is not among the issuer's keys, even after fetching them again; or the keys were fetched
    /// less than `jwks_refresh_min_seconds` ago, and `retry_after` says when they may be fetched again.
    #[error(
        "the workload token's signing key {kid:?} is not one of the issuer's keys{}",
        again(.retry_after)
    )]
    UnknownKey {
        /// The `kid` (at most 100 characters of it).
        kid: String,
        /// When the keys may be fetched again, if that is why they were not.
        retry_after: Option<Duration>,
    },
    /// It names no `kid`, and its issuer has more than one key.
    #[error("the workload token names no signing key (kid), and its issuer has several")]
    AmbiguousKey,
    /// The signature does not verify with the issuer's key.
    #[error("the workload token's signature does not verify")]
    BadSignature,
    /// Past its `exp` (with the leeway).
    #[error("the workload token has expired")]
    Expired,
    /// Its lifetime (`exp` − `iat`) is longer than its issuer's `max_token_lifetime_seconds`.
    #[error("the workload token lives longer than its issuer allows ({0} s)")]
    LivesTooLong(u64),
    /// Before its `nbf` or `iat` (with the leeway).
    #[error("the workload token is not valid yet")]
    NotYetValid,
    /// Its `aud` is not the audience configured.
    #[error("the workload token is not meant for this server (audience)")]
    WrongAudience,
    /// A claim the check or the caller's name needs is missing or of the wrong type.
    #[error("the workload token has no usable {0:?} claim (missing or of the wrong type)")]
    MissingClaim(String),
    /// The caller's name its claims make is longer than [`MAX_NAME_CHARS`].
    #[error("the workload's name from its claims would be longer than {MAX_NAME_CHARS} characters")]
    NameTooLong,
    /// Valid, but no claim rule of the issuer matches it.
    #[error("no rule lets this workload ({0}) use any connector")]
    NoRule(String),
    /// The issuer's keys cannot be had (none are cached, or they could not be refreshed for too long).
    #[error("the workload token's issuer cannot be reached for its keys; try again later")]
    IssuerUnavailable,
}

fn again(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(
            " (its keys may be fetched again in {} s)",
            after.as_secs() + u64::from(after.subsec_nanos() > 0)
        ),
        None => String::new(),
    }
}

impl WorkloadError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            WorkloadError::Malformed(_) => "workload_token_malformed",
            WorkloadError::UnknownIssuer(_) => "workload_issuer_unknown",
            WorkloadError::AlgorithmRefused(_) => "workload_algorithm_refused",
            WorkloadError::UnknownKey { .. } | WorkloadError::AmbiguousKey => {
                "workload_key_unknown"
            }
            WorkloadError::BadSignature => "workload_signature_invalid",
            WorkloadError::Expired | WorkloadError::LivesTooLong(_) => "workload_token_expired",
            WorkloadError::NotYetValid => "workload_token_not_yet_valid",
            WorkloadError::WrongAudience => "workload_audience_mismatch",
            WorkloadError::MissingClaim(_) | WorkloadError::NameTooLong => "workload_claim_missing",
            WorkloadError::NoRule(_) => "workload_not_allowed",
            WorkloadError::IssuerUnavailable => "workload_issuer_unavailable",
        }
    }

    /// When asking again may get another answer, where idfed knows: an unknown `kid` refused because the
    /// keys were fetched less than `jwks_refresh_min_seconds` ago (the rest of that gap).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            WorkloadError::UnknownKey { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A workload, once its token checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The issuer's configured name.
    pub issuer: String,
    /// The caller's name: `issuer:` and the caller template filled in (at most 256 characters).
    pub name: String,
    /// The token's `sub`, whole.
    pub subject: String,
    /// The token's claims that are text, numbers or booleans, as the token has them (at most 64, text
    /// cut at 512 characters), for plugins.
    pub claims: BTreeMap<String, Value>,
    /// The system-scope connectors (names) the matching rules grant.
    pub connectors: Vec<String>,
}

/// Whether `token` has the shape of a JWS in compact form (three base64url parts), so a bearer token can
/// be told from idfed's own session tokens and API keys.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ")
        && token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks workload tokens against the configured issuers.
pub struct WorkloadVerifier {
    issuers: Vec<Arc<Issuer>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WorkloadVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadVerifier")
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| &i.settings.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

struct Issuer {
    settings: IssuerSettings,
    algorithms: Vec<Algorithm>,
    template: Vec<Piece>,
    source: KeySource,
    http: reqwest::Client,
    /// Whether plain HTTP to a loopback address may be fetched (the configured URL is such): for redirects
    /// and the discovery document's `jwks_uri`.
    loopback_http: bool,
    /// The cached keys and the fetch state; held only for moments, never across a fetch.
    state: std::sync::Mutex<KeyState>,
    /// Counts the fetches that ended, for the requests waiting for one.
    done: tokio::sync::watch::Sender<u64>,
    /// Counts the fetches started.
    #[cfg(test)]
    fetches: std::sync::atomic::AtomicUsize,
}

enum KeySource {
    File(PathBuf),
    Url(String),
    Discovery(String),
}

#[derive(Default)]
struct KeyState {
    /// The keys of the last successful fetch.
    keys: Option<Arc<KeySet>>,
    /// When the last successful fetch started.
    fetched: Option<Instant>,
    /// When the last fetch, successful or not, started.
    attempted: Option<Instant>,
    /// Whether a fetch is running (at most one per issuer).
    in_flight: bool,
}

/// An issuer's keys: a `kid` may name several (say an RSA and an EC key), told apart by the token's `alg`.
#[derive(Default)]
struct KeySet {
    named: HashMap<String, Vec<Key>>,
    /// Keys without a `kid`.
    unnamed: Vec<Key>,
}

#[derive(Clone)]
struct Key {
    decoding: Arc<DecodingKey>,
    family: AlgorithmFamily,
    /// The curve of an EC key.
    curve: Option<EllipticCurve>,
    /// The `alg` the JWK is restricted to, if it names one.
    alg: Option<String>,
}

impl Key {
    /// Whether a token of `algorithm` (named `alg`) may be verified with this key.
    fn fits(&self, algorithm: Algorithm, alg: &str) -> bool {
        let curve_fits = match algorithm {
            Algorithm::ES256 => self.curve == Some(EllipticCurve::P256),
            Algorithm::ES384 => self.curve == Some(EllipticCurve::P384),
            _ => true,
        };
        self.family == algorithm.family()
            && curve_fits
            && self.alg.as_deref().is_none_or(|a| a == alg)
    }
}

/// What a key set holds for a token.
enum Lookup {
    /// The keys that fit its `kid` and `alg` (one, unless the issuer publishes duplicates).
    Found(Vec<Key>),
    /// Its `kid` names keys, none of which fits its `alg`.
    WrongAlgorithm,
    /// Its `kid` names no key.
    Unknown,
    /// It names no `kid`, and there is not exactly one key.
    Ambiguous,
}

impl KeySet {
    fn knows(&self, kid: Option<&str>) -> bool {
        kid.is_none_or(|kid| self.named.contains_key(kid))
    }

    fn lookup(&self, kid: Option<&str>, algorithm: Algorithm, alg: &str) -> Lookup {
        let candidates: Vec<&Key> = match kid {
            Some(kid) => match self.named.get(kid) {
                Some(keys) => keys.iter().collect(),
                None => return Lookup::Unknown,
            },
            None => {
                let all: Vec<&Key> = self
                    .unnamed
                    .iter()
                    .chain(self.named.values().flatten())
                    .collect();
                if all.len() != 1 {
                    return Lookup::Ambiguous;
                }
                all
            }
        };
        let fitting: Vec<Key> = candidates
            .into_iter()
            .filter(|key| key.fits(algorithm, alg))
            .cloned()
            .collect();
        if fitting.is_empty() {
            Lookup::WrongAlgorithm
        } else {
            Lookup::Found(fitting)
        }
    }
}

enum Piece {
    Text(String),
    Claim(String),
}

fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("{template:?} has a '{{' without its '}}'"))?;
        let name = &rest[start + 1..start + end];
        if name.is_empty() || name.contains('{') {
            return Err(format!("{template:?} has an empty or nested {{…}}"));
        }
        pieces.push(Piece::Claim(name.to_owned()));
        rest = &rest[start + end + 1..];
    }
    if rest.contains('}') {
        return Err(format!("{template:?} has a '}}' without its '{{'"));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Claim(_))) {
        return Err(format!("{template:?} names no claim (e.g. {{sub}})"));
    }
    Ok(pieces)
}

/// Whether `url`'s host is a loopback address (or `localhost`).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `url` may be fetched: HTTPS, or — when `loopback_http` — plain HTTP to a loopback address.
fn fetchable(url: &url::Url, loopback_http: bool) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => loopback_http && is_loopback(url),
        _ => false,
    }
}

/// Checks a configured URL: HTTPS, or HTTP to a loopback address (a test issuer, a local proxy). Whether it
/// is the latter, so that plain HTTP to loopback is allowed for what it leads to (redirects, `jwks_uri`).
fn check_fetch_url(field: &str, url: &str) -> Result<bool, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{field} {url:?}: {e}"))?;
    if parsed.scheme() == "https" {
        return Ok(false);
    }
    if fetchable(&parsed, true) {
        return Ok(true);
    }
    Err(format!(
        "{field} {url:?} must be https:// (http:// only to a loopback address)"
    ))
}

/// Why a redirect is not followed, if it is not: more than [`MAX_REDIRECTS`] hops, or a hop to a URL that
/// may not be fetched (`previous` counts the URLs already requested, the first one included).
fn redirect_refusal(next: &url::Url, previous: usize, loopback_http: bool) -> Option<&'static str> {
    if previous > MAX_REDIRECTS {
        Some("more than 3 redirects")
    } else if !fetchable(next, loopback_http) {
        Some("a redirect to a URL that is not https://")
    } else {
        None
    }
}

/// The lengths of a configured `name:` prefix and template text, at the least (each claim at least one
/// character): over [`MAX_NAME_CHARS`], every token would be refused.
fn least_name_chars(name: &str, template: &[Piece]) -> usize {
    name.chars().count()
        + 1
        + template
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.chars().count(),
                Piece::Claim(_) => 1,
            })
            .sum::<usize>()
}

fn check_rule(at: &str, rule: &ClaimRule) -> Result<(), String> {
    if rule.connectors.is_empty() {
        return Err(format!("{at}.connectors: name at least one"));
    }
    if rule.claims.is_empty() {
        return Err(format!(
            "{at}.claims: name at least one claim (a rule without claims would let every token of the \
             issuer use its connectors)"
        ));
    }
    let narrows = rule.claims.iter().any(|(claim, pattern)| {
        !ISSUER_WIDE_CLAIMS.contains(&claim.as_str()) && !pattern.chars().all(|c| c == '*')
    });
    if !narrows {
        return Err(format!(
            "{at}.claims: every pattern is '*' or names iss/aud, which would let every token of the \
             issuer use its connectors; name a claim that tells its tokens apart (repository, ref, sub…)"
        ));
    }
    Ok(())
}

impl WorkloadVerifier {
    /// The verifier for `settings`; an error names what in the configuration is wrong.
    pub fn new(settings: &WorkloadSettings, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let mut issuers: Vec<Arc<Issuer>> = Vec::new();
        for (index, issuer) in settings.issuers.iter().enumerate() {
            let at = format!("workload.issuers[{index}]");
            if issuer.name.is_empty()
                || !issuer
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(format!(
                    "{at}.name {:?}: 1 or more of A-Z a-z 0-9 - _ .",
                    issuer.name
                ));
            }
            if RESERVED_NAMES
                .iter()
                .any(|reserved| issuer.name.eq_ignore_ascii_case(reserved))
            {
                return Err(format!(
                    "{at}.name {:?} is reserved (system, admin): its callers would read as idfed's own",
                    issuer.name
                ));
            }
            if issuers
                .iter()
                .any(|i| i.settings.name == issuer.name || i.settings.issuer == issuer.issuer)
            {
                return Err(format!(
                    "{at}: the name {:?} or the issuer {:?} is configured twice",
                    issuer.name, issuer.issuer
                ));
            }
            if issuer.issuer.is_empty() {
                return Err(format!("{at}.issuer: required"));
            }
            if issuer.audience.is_empty() {
                return Err(format!("{at}.audience: required"));
            }
            let mut algorithms = Vec::new();
            for name in &issuer.algorithms {
                algorithms.push(supported(name).ok_or_else(|| {
                    format!(
                        "{at}.algorithms: {name:?} is not accepted (only RS256/384/512, \
                         PS256/384/512, ES256, ES384: never none or HMAC)"
                    )
                })?);
            }
            if algorithms.is_empty() {
                return Err(format!("{at}.algorithms: name at least one"));
            }
            let template =
                parse_template(&issuer.caller).map_err(|e| format!("{at}.caller: {e}"))?;
            if least_name_chars(&issuer.name, &template) > MAX_NAME_CHARS {
                return Err(format!(
                    "{at}.caller: the callers' names ({:?} and the template) would be longer than \
                     {MAX_NAME_CHARS} characters",
                    format!("{}:", issuer.name)
                ));
            }
            if issuer.jwks_refresh_min_seconds == 0 {
                return Err(format!(
                    "{at}.jwks_refresh_min_seconds: at least 1 (0 would let every made-up kid cause a fetch)"
                ));
            }
            if issuer.max_token_lifetime_seconds == 0 {
                return Err(format!("{at}.max_token_lifetime_seconds: at least 1"));
            }
            if issuer.jwks_max_stale_seconds <= issuer.jwks_cache_seconds {
                return Err(format!(
                    "{at}.jwks_max_stale_seconds: must be more than jwks_cache_seconds ({})",
                    issuer.jwks_cache_seconds
                ));
            }
            for (r, rule) in issuer.rules.iter().enumerate() {
                check_rule(&format!("{at}.rules[{r}]"), rule)?;
            }
            let (source, loopback_http) = match (&issuer.jwks_url, &issuer.jwks_file) {
                (Some(_), Some(_)) => {
                    return Err(format!("{at}: give jwks_url or jwks_file, not both"));
                }
                (Some(url), None) => {
                    let loopback_http = check_fetch_url(&format!("{at}.jwks_url"), url)?;
                    (KeySource::Url(url.clone()), loopback_http)
                }
                (None, Some(file)) => (KeySource::File(file.clone()), false),
                (None, None) => {
                    let loopback_http = check_fetch_url(&format!("{at}.issuer"), &issuer.issuer)?;
                    let discovery = format!(
                        "{}/.well-known/openid-configuration",
                        issuer.issuer.trim_end_matches('/')
                    );
                    (KeySource::Discovery(discovery), loopback_http)
                }
            };
            let mut http = reqwest::Client::builder().timeout(FETCH_TIMEOUT).redirect(
                reqwest::redirect::Policy::custom(move |attempt| {
                    match redirect_refusal(attempt.url(), attempt.previous().len(), loopback_http) {
                        None => attempt.follow(),
                        Some(why) => attempt.error(why),
                    }
                }),
            );
            if let Some(file) = &issuer.ca_file {
                let pem = std::fs::read(file)
                    .map_err(|e| format!("{at}.ca_file {}: {e}", file.display()))?;
                for certificate in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| format!("{at}.ca_file {}: {e}", file.display()))?
                {
                    http = http.add_root_certificate(certificate);
                }
            }
            let http = http
                .build()
                .map_err(|e| format!("{at}: cannot set up HTTPS: {e}"))?;
            issuers.push(Arc::new(Issuer {
                settings: issuer.clone(),
                algorithms,
                template,
                source,
                http,
                loopback_http,
                state: std::sync::Mutex::new(KeyState::default()),
                done: tokio::sync::watch::Sender::new(0),
                #[cfg(test)]
                fetches: std::sync::atomic::AtomicUsize::new(0),
            }));
        }
        Ok(WorkloadVerifier { issuers, clock })
    }

    /// Whether any issuer is configured.
    pub fn is_configured(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Checks `token`; the workload it names, with the connectors its claims are granted. A refusal is
    /// logged with the issuer, the `kid` and the code (never the token, nor its other claims).
    pub async fn verify(&self, token: &str) -> Result<Workload, WorkloadError> {
        let mut seen = Seen::default();
        let result = self.check(token, &mut seen).await;
        if let Err(error) = &result {
            let issuer = seen.issuer.as_deref().unwrap_or("-");
            let kid = seen.kid.as_deref().unwrap_or("-");
            let code = error.code();
            match error {
                WorkloadError::BadSignature
                | WorkloadError::AlgorithmRefused(_)
                | WorkloadError::IssuerUnavailable => {
                    tracing::warn!(issuer = ?issuer, kid = ?kid, code, "workload token refused");
                }
                _ => tracing::info!(issuer = ?issuer, kid = ?kid, code, "workload token refused"),
            }
        }
        result
    }

    async fn check(&self, token: &str, seen: &mut Seen) -> Result<Workload, WorkloadError> {
        // The size first: nothing of a longer token is read.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(WorkloadError::Malformed("longer than 16 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(WorkloadError::Malformed("not three dot-separated parts"));
        };
        let header: serde_json::Map<String, Value> = decode_part(header, "header")?;
        let claims: serde_json::Map<String, Value> = decode_part(payload, "payload")?;
        if header.contains_key("crit") {
            return Err(WorkloadError::Malformed(
                "the header names critical extensions (crit), which idfed does not implement",
            ));
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(WorkloadError::Malformed(
                "the header has no alg, or not as text",
            ))?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(WorkloadError::Malformed("the header's kid is not text")),
        };
        seen.kid = kid.map(|kid| clip(kid, 100));
        // none and HMAC are refused before anything else is looked at.
        let Some(algorithm) = supported(alg) else {
            return Err(WorkloadError::AlgorithmRefused(clip(alg, 20)));
        };
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| WorkloadError::MissingClaim("iss".into()))?;
        seen.issuer = Some(clip(iss, 200));
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.settings.issuer == iss)
            .ok_or_else(|| WorkloadError::UnknownIssuer(clip(iss, 200)))?;
        seen.issuer = Some(issuer.settings.name.clone());
        if !issuer.algorithms.contains(&algorithm) {
            return Err(WorkloadError::AlgorithmRefused(alg.to_owned()));
        }
        let keys = issuer.keys(kid, self.clock.instant()).await?;
        let candidates = match keys.lookup(kid, algorithm, alg) {
            Lookup::Found(keys) => keys,
            Lookup::WrongAlgorithm => return Err(WorkloadError::AlgorithmRefused(alg.to_owned())),
            Lookup::Ambiguous => return Err(WorkloadError::AmbiguousKey),
            Lookup::Unknown => {
                // Cannot be: keys() answers only with keys that know the kid.
                return Err(WorkloadError::UnknownKey {
                    kid: clip(kid.unwrap_or(""), 100),
                    retry_after: None,
                });
            }
        };
        // (The library would take an aud of another type for a missing one.)
        match claims.get("aud") {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => {
                return Err(WorkloadError::Malformed(
                    "its aud is neither text nor a list of text",
                ));
            }
        }
        issuer.check_signature(token, algorithm, alg, &candidates)?;
        check_times(&claims, &issuer.settings, self.clock.as_ref())?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| WorkloadError::MissingClaim("sub".into()))?;
        let mut name = format!("{}:", issuer.settings.name);
        for piece in &issuer.template {
            match piece {
                Piece::Text(text) => name.push_str(text),
                Piece::Claim(claim) => name.push_str(
                    &claim_text(&claims, claim)
                        .ok_or_else(|| WorkloadError::MissingClaim(claim.clone()))?,
                ),
            }
            if name.len() > 4 * MAX_NAME_CHARS {
                return Err(WorkloadError::NameTooLong);
            }
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(WorkloadError::NameTooLong);
        }
        let mut connectors: Vec<String> = Vec::new();
        for rule in &issuer.settings.rules {
            if rule_matches(rule, &claims) {
                for connector in &rule.connectors {
                    if !connectors.contains(connector) {
                        connectors.push(connector.clone());
                    }
                }
            }
        }
        if connectors.is_empty() {
            return Err(WorkloadError::NoRule(name));
        }
        let kept = claims
            .iter()
            .filter_map(|(k, v)| {
                let kept = match v {
                    Value::String(text) => Value::String(clip(text, MAX_CLAIM_CHARS)),
                    Value::Number(_) | Value::Bool(_) => v.clone(),
                    _ => return None,
                };
                Some((clip(k, 64), kept))
            })
            .take(MAX_CLAIMS)
            .collect();
        Ok(Workload {
            issuer: issuer.settings.name.clone(),
            name,
            subject: subject.to_owned(),
            claims: kept,
            connectors,
        })
    }
}

/// What of a token may be logged when it is refused: its issuer (the configured name, or the `iss` when no
/// issuer is configured for it) and its `kid`.
#[derive(Default)]
struct Seen {
    issuer: Option<String>,
    kid: Option<String>,
}

/// Checks the times: `exp` and `iat` required, and `nbf` when present, all whole numbers of seconds (not
/// fractions, not text); the token not expired, not issued or valid only in the future (each with the
/// leeway), and not living longer than its issuer allows.
fn check_times(
    claims: &serde_json::Map<String, Value>,
    settings: &IssuerSettings,
    clock: &dyn Clock,
) -> Result<(), WorkloadError> {
    let now = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let leeway = settings.leeway_seconds;
    let time = |name: &str| -> Result<Option<u64>, WorkloadError> {
        match claims.get(name) {
            None => Ok(None),
            // as_u64: a non-negative integer only; 1.5, 1e9 and "1" are refused.
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| WorkloadError::MissingClaim(name.into())),
        }
    };
    let exp = time("exp")?.ok_or_else(|| WorkloadError::MissingClaim("exp".into()))?;
    let iat = time("iat")?.ok_or_else(|| WorkloadError::MissingClaim("iat".into()))?;
    let nbf = time("nbf")?;
    if exp < iat {
        return Err(WorkloadError::Malformed("its exp is before its iat"));
    }
    if exp - iat > settings.max_token_lifetime_seconds {
        return Err(WorkloadError::LivesTooLong(
            settings.max_token_lifetime_seconds,
        ));
    }
    if now > exp.saturating_add(leeway) {
        return Err(WorkloadError::Expired);
    }
    if iat > now.saturating_add(leeway) || nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(WorkloadError::NotYetValid);
    }
    Ok(())
}

fn decode_part<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, WorkloadError> {
    let malformed = |base64: bool| {
        WorkloadError::Malformed(match (what, base64) {
            ("header", true) => "the header is not base64url",
            ("header", false) => "the header is not a JSON object",
            (_, true) => "the payload is not base64url",
            (_, false) => "the payload is not a JSON object",
        })
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(true))?;
    serde_json::from_slice(&bytes).map_err(|_| malformed(false))
}

fn clip(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// A claim's value as text, when it is text, a number or a boolean.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn claim_text(claims: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(scalar_text)
        .filter(|text| !text.is_empty())
}

fn rule_matches(rule: &ClaimRule, claims: &serde_json::Map<String, Value>) -> bool {
    rule.claims
        .iter()
        .all(|(name, pattern)| match claims.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(scalar_text)
                .any(|item| glob(pattern, &item)),
            Some(value) => scalar_text(value).is_some_and(|text| glob(pattern, &text)),
            None => false,
        })
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (`/` included) and every
/// other character for itself.
fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Ends a fetch however its task ends (done, failed, cancelled, panicked): the next one may start, and the
/// requests waiting for it wake up.
struct InFlight(Arc<Issuer>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock_state().in_flight = false;
        self.0
            .done
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}

impl Issuer {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, KeyState> {
        // A panic elsewhere while holding the lock leaves the state consistent (plain assignments).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached keys when they may still be trusted (fetched less than `jwks_max_stale_seconds` ago).
    fn usable(&self, state: &KeyState, now: Instant) -> Option<Arc<KeySet>> {
        let max_stale = Duration::from_secs(self.settings.jwks_max_stale_seconds);
        state
            .fetched
            .filter(|at| now.saturating_duration_since(*at) < max_stale)
            .and(state.keys.clone())
    }

    /// The rest of the gap between two fetches, if the last one started less than
    /// `jwks_refresh_min_seconds` ago.
    fn gap_left(&self, state: &KeyState, now: Instant) -> Option<Duration> {
        let gap = Duration::from_secs(self.settings.jwks_refresh_min_seconds);
        state
            .attempted
            .map(|at| now.saturating_duration_since(at))
            .filter(|since| *since < gap)
            .map(|since| gap - since)
    }

    /// The issuer's keys, knowing `kid` when it names one.
    ///
    /// Cached keys are used at once; when they have aged, a refresh starts in the background (one at a time,
    /// at most once per `jwks_refresh_min_seconds`). The caller waits for a fetch — at most the fetch
    /// timeout — only when no keys may be trusted (never fetched, or not refreshed for
    /// `jwks_max_stale_seconds`), or when `kid` is not among them and the keys may be fetched again (a
    /// rotation).
    async fn keys(
        self: &Arc<Self>,
        kid: Option<&str>,
        now: Instant,
    ) -> Result<Arc<KeySet>, WorkloadError> {
        let unknown = |retry_after| WorkloadError::UnknownKey {
            kid: clip(kid.unwrap_or(""), 100),
            retry_after,
        };
        let mut start = false;
        let next = {
            let mut state = self.lock_state();
            let gap_left = self.gap_left(&state, now);
            let mut begin = |state: &mut KeyState| {
                state.in_flight = true;
                state.attempted = Some(now);
                start = true;
            };
            match self.usable(&state, now) {
                Some(keys) => {
                    let aged = state.fetched.is_none_or(|at| {
                        now.saturating_duration_since(at)
                            >= Duration::from_secs(self.settings.jwks_cache_seconds)
                    });
                    if keys.knows(kid) {
                        if aged && gap_left.is_none() && !state.in_flight {
                            begin(&mut state);
                        }
                        Ok(keys)
                    } else if state.in_flight {
                        Err(self.done.subscribe())
                    } else if let Some(left) = gap_left {
                        return Err(unknown(Some(left)));
                    } else {
                        begin(&mut state);
                        Err(self.done.subscribe())
                    }
                }
                None if state.in_flight => Err(self.done.subscribe()),
                None if gap_left.is_some() => return Err(WorkloadError::IssuerUnavailable),
                None => {
                    begin(&mut state);
                    Err(self.done.subscribe())
                }
            }
            // (Subscribed while the fetch is marked running: its end cannot be missed.)
        };
        if start {
            self.spawn_fetch(now);
        }
        let mut wait = match next {
            Ok(keys) => return Ok(keys),
            Err(wait) => wait,
        };
        let _ = tokio::time::timeout(FETCH_TIMEOUT + Duration::from_secs(1), wait.changed()).await;
        let state = self.lock_state();
        match self.usable(&state, now) {
            None => Err(WorkloadError::IssuerUnavailable),
            Some(keys) if keys.knows(kid) => Ok(keys),
            Some(_) => Err(unknown(self.gap_left(&state, now))),
        }
    }

    /// Runs the fetch [`Issuer::keys`] marked as running in a task of its own, so that no request holds
    /// anything while it runs.
    fn spawn_fetch(self: &Arc<Self>, now: Instant) {
        #[cfg(test)]
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let guard = InFlight(Arc::clone(self));
        tokio::spawn(async move {
            let issuer = &guard.0;
            let result = match tokio::time::timeout(FETCH_TIMEOUT, issuer.fetch()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())),
            };
            match result {
                Ok(keys) => {
                    let mut state = issuer.lock_state();
                    state.keys = Some(Arc::new(keys));
                    state.fetched = Some(now);
                }
                Err(why) => tracing::warn!(
                    issuer = %issuer.settings.name,
                    "workload identity: cannot fetch the issuer's keys (cached ones stay in use for up to \
                     jwks_max_stale_seconds): {why}"
                ),
            }
            drop(guard);
        });
    }

    /// Verifies the signature (and `iss`, `aud`) with the first of `keys` that takes it.
    fn check_signature(
        &self,
        token: &str,
        algorithm: Algorithm,
        alg: &str,
        keys: &[Key],
    ) -> Result<(), WorkloadError> {
        let mut validation = Validation::new(algorithm);
        // Times are checked by check_times against idfed's clock; the library checks the signature, iss
        // and aud.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["iss", "aud"].iter().map(|c| c.to_string()).collect();
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        let mut outcome = Err(WorkloadError::BadSignature);
        for key in keys {
            outcome = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
                token,
                &key.decoding,
                &validation,
            )
            .map(|_| ())
            .map_err(|e| map_library_error(e.kind(), alg));
            if outcome != Err(WorkloadError::BadSignature) {
                break;
            }
        }
        outcome
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let document = match &self.source {
            KeySource::File(file) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || read_limited(&file))
                    .await
                    .map_err(|_| "reading the JWKS file failed".to_owned())??
            }
            KeySource::Url(url) => self.get(url).await?,
            KeySource::Discovery(url) => {
                let discovery: Value = serde_json::from_slice(&self.get(url).await?)
                    .map_err(|e| format!("{url}: not JSON: {e}"))?;
                if discovery.get("issuer").and_then(Value::as_str) != Some(&self.settings.issuer) {
                    return Err(format!("{url}: names another issuer"));
                }
                let jwks_uri = discovery
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{url}: no jwks_uri"))?;
                let parsed = url::Url::parse(jwks_uri)
                    .map_err(|e| format!("{url}: jwks_uri {jwks_uri:?}: {e}"))?;
                if !fetchable(&parsed, self.loopback_http) {
                    return Err(format!(
                        "{url}: jwks_uri {jwks_uri:?} is not https:// (http:// only when the issuer is \
                         itself on loopback)"
                    ));
                }
                self.get(jwks_uri).await?
            }
        };
        parse_jwks(&document)
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {}", describe_reqwest(&e)))?;
        if !response.status().is_success() {
            return Err(format!("{url}: answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", describe_reqwest(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A reqwest error with its causes (a refused redirect says why), for the log.
fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A library error, as a refusal with a fixed message (nothing of the library's own text reaches callers).
fn map_library_error(kind: &jsonwebtoken::errors::ErrorKind, alg: &str) -> WorkloadError {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature => WorkloadError::BadSignature,
        ErrorKind::InvalidAudience => WorkloadError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => WorkloadError::WrongAudience,
        ErrorKind::InvalidClaimFormat(claim) if claim == "aud" => {
            WorkloadError::Malformed("its aud is neither text nor a list of text")
        }
        // iss was read as text and matched before: these cannot happen, and would be refusals anyway.
        ErrorKind::InvalidIssuer | ErrorKind::InvalidClaimFormat(_) => {
            WorkloadError::MissingClaim("iss".into())
        }
        ErrorKind::MissingRequiredClaim(_) => WorkloadError::MissingClaim("iss".into()),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => WorkloadError::AlgorithmRefused(clip(alg, 20)),
        _ => WorkloadError::Malformed("it could not be read as a signed JWT"),
    }
}

/// A file's bytes, if it holds at most [`MAX_DOCUMENT_BYTES`].
fn read_limited(file: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let opened = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "{}: larger than {MAX_DOCUMENT_BYTES} bytes",
            file.display()
        ));
    }
    Ok(bytes)
}

/// The signing keys of a JWK Set. A key idfed does not use — an encryption key (`use` other than `sig`,
/// `key_ops` without `verify`), an OKP or symmetric key, one it cannot read — is skipped, not fatal.
fn parse_jwks(document: &[u8]) -> Result<KeySet, String> {
    let set: Value =
        serde_json::from_slice(document).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let items = set
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no keys list")?;
    let mut keys = KeySet::default();
    for item in items {
        if item.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
            continue;
        }
        if let Some(ops) = item.get("key_ops")
            && !ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")))
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(item.clone()) else {
            continue;
        };
        let (family, curve) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
            AlgorithmParameters::EllipticCurve(ec) => (AlgorithmFamily::Ec, Some(ec.curve.clone())),
            _ => continue,
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let key = Key {
            decoding: Arc::new(decoding),
            family,
            curve,
            alg: item.get("alg").and_then(Value::as_str).map(str::to_owned),
        };
        match jwk.common.key_id {
            Some(kid) => keys.named.entry(kid).or_default().push(key),
            None => keys.unnamed.push(key),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::lockout::ManualClock;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    };
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    struct Signer {
        pair: EcdsaKeyPair,
        kid: String,
        /// ES256 (P-256) or ES384 (P-384).
        alg: &'static str,
    }

    impl Signer {
        /// A P-256 key (ES256).
        fn new(kid: &str) -> Signer {
            Signer::generate(kid, &ECDSA_P256_SHA256_FIXED_SIGNING, "ES256")
        }

        /// A P-384 key (ES384).
        fn p384(kid: &str) -> Signer {
            Signer::generate(kid, &ECDSA_P384_SHA384_FIXED_SIGNING, "ES384")
        }

        fn generate(
            kid: &str,
            algorithm: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
            alg: &'static str,
        ) -> Signer {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(algorithm, &aws_lc_rs::rand::SystemRandom::new())
                    .unwrap();
            Signer {
                pair: EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref()).unwrap(),
                kid: kid.into(),
                alg,
            }
        }

        fn jwk(&self) -> Value {
            // SEC 1 uncompressed: 0x04 || x || y.
            let point = self.pair.public_key().as_ref();
            let half = (point.len() - 1) / 2;
            let crv = if self.alg == "ES256" {
                "P-256"
            } else {
                "P-384"
            };
            json!({"kty": "EC", "crv": crv, "kid": self.kid, "use": "sig", "alg": self.alg,
                   "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..])})
        }

        fn sign(&self, header: Value, claims: &Value) -> String {
            let message = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let signature = self
                .pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message.as_bytes())
                .unwrap();
            format!("{message}.{}", b64(signature.as_ref()))
        }

        fn token(&self, claims: &Value) -> String {
            self.sign(
                json!({"alg": self.alg, "typ": "JWT", "kid": self.kid}),
                claims,
            )
        }
    }

    const ISS: &str = "https://ci.example.com";

    fn now(clock: &ManualClock) -> u64 {
        clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims(clock: &ManualClock, extra: Value) -> Value {
        let now = now(clock);
        let mut claims = json!({"iss": ISS, "aud": "idfed", "sub": "repo:org/app:ref:refs/heads/main",
            "repository": "org/app", "ref": "refs/heads/main", "iat": now, "nbf": now, "exp": now + 300});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        jwks: PathBuf,
        clock: Arc<ManualClock>,
        verifier: WorkloadVerifier,
    }

    impl Fixture {
        fn issuer(&self) -> &Arc<Issuer> {
            &self.verifier.issuers[0]
        }

        /// Waits for the background fetch running, if any, to end.
        async fn settle(&self) {
            for _ in 0..500 {
                if !self.issuer().lock_state().in_flight {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the background fetch did not end");
        }

        async fn code(&self, token: &str) -> &'static str {
            self.verifier.verify(token).await.unwrap_err().code()
        }
    }

    /// A verifier of the issuer `ISS` keyed by `signers` (a JWKS file), its callers named by `caller`, a
    /// second between fetches, with `extra` settings.
    fn fixture_with(signers: &[&Signer], caller: &str, extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        write_keys(&jwks, signers);
        let settings: WorkloadSettings = toml::from_str(&format!(
            r#"
            [[issuers]]
            name = "ci"
            issuer = "{ISS}"
            audience = "idfed"
            jwks_file = "{}"
            caller = "{caller}"
            {extra}
            [[issuers.rules]]
            claims = {{ repository = "org/app", ref = "refs/heads/main" }}
            connectors = ["deploy-prod"]
            [[issuers.rules]]
            claims = {{ repository = "org/*" }}
            connectors = ["read-only", "deploy-prod"]
            "#,
            jwks.display()
        ))
        .unwrap();
        let clock = Arc::new(ManualClock::new());
        let verifier = WorkloadVerifier::new(&settings, clock.clone()).unwrap();
        Fixture {
            _dir: dir,
            jwks,
            clock,
            verifier,
        }
    }

    fn fixture(signers: &[&Signer], extra: &str) -> Fixture {
        fixture_with(
            signers,
            "{repository}@{ref}",
            &format!("algorithms = [\"ES256\"]\njwks_refresh_min_seconds = 1\n{extra}"),
        )
    }

    fn write_keys(file: &std::path::Path, signers: &[&Signer]) {
        let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
        write_jwks(file, keys);
    }

    fn write_jwks(file: &std::path::Path, keys: Vec<Value>) {
        std::fs::write(file, json!({ "keys": keys }).to_string()).unwrap();
    }

    /// A token's signature part: what must never be logged or stored (an unsigned token's claims part).
    fn signature(token: &str) -> &str {
        let mut parts = token.rsplit('.');
        let signature = parts.next().unwrap();
        if signature.is_empty() {
            parts.next().unwrap()
        } else {
            signature
        }
    }

    #[tokio::test]
    async fn a_good_token_names_the_workload_and_the_connectors_its_rules_grant() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let workload = f
            .verifier
            .verify(&signer.token(&claims(&f.clock, json!({}))))
            .await
            .unwrap();
        assert_eq!(workload.name, "ci:org/app@refs/heads/main");
        assert_eq!(workload.issuer, "ci");
        assert_eq!(workload.subject, "repo:org/app:ref:refs/heads/main");
        assert_eq!(workload.connectors, ["deploy-prod", "read-only"]);
        assert_eq!(workload.claims["repository"], "org/app");

        // Another branch matches only the wildcard rule.
        let other = claims(&f.clock, json!({"ref": "refs/heads/feature"}));
        let workload = f.verifier.verify(&signer.token(&other)).await.unwrap();
        assert_eq!(workload.connectors, ["read-only", "deploy-prod"]);
    }

    #[tokio::test]
    async fn each_bad_token_is_refused_with_its_own_code() {
        let signer = Signer::new("k1");
        let stranger = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let good = claims(&f.clock, json!({}));
        let now = now(&f.clock);
        let cases = [
            (
                signer.token(&claims(
                    &f.clock,
                    json!({"iat": 900, "nbf": 900, "exp": 1000}),
                )),
                "workload_token_expired",
            ),
            (
                signer.token(&claims(
                    &f.clock,
                    json!({"nbf": now + 600, "exp": now + 900}),
                )),
                "workload_token_not_yet_valid",
            ),
            (
                signer.token(&claims(
                    &f.clock,
                    json!({"iss": "https://evil.example.com"}),
                )),
                "workload_issuer_unknown",
            ),
            (
                signer.token(&claims(&f.clock, json!({"aud": "other"}))),
                "workload_audience_mismatch",
            ),
            (
                signer.token(&claims(&f.clock, json!({"aud": null}))),
                "workload_audience_mismatch",
            ),
            (
                signer.token(&claims(&f.clock, json!({"exp": null}))),
                "workload_claim_missing",
            ),
            (
                signer.token(&claims(&f.clock, json!({"sub": null}))),
                "workload_claim_missing",
            ),
            (
                signer.token(&claims(&f.clock, json!({"sub": 42}))),
                "workload_claim_missing",
            ),
            (
                signer.sign(json!({"alg": "ES256", "kid": "nope"}), &good),
                "workload_key_unknown",
            ),
            (stranger.token(&good), "workload_signature_invalid"),
            (
                format!(
                    "{}.{}.",
                    b64(br#"{"alg":"none"}"#),
                    b64(good.to_string().as_bytes())
                ),
                "workload_algorithm_refused",
            ),
            (
                signer.sign(json!({"alg": "HS256", "kid": "k1"}), &good),
                "workload_algorithm_refused",
            ),
            (
                signer.sign(json!({"alg": "RS256", "kid": "k1"}), &good),
                "workload_algorithm_refused",
            ),
            (
                signer.token(&claims(&f.clock, json!({"repository": "elsewhere/app"}))),
                "workload_not_allowed",
            ),
            (
                signer.token(&claims(&f.clock, json!({"ref": null}))),
                "workload_claim_missing",
            ),
            (
                "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln".to_owned(),
                "workload_token_malformed",
            ),
            ("a.b".to_owned(), "workload_token_malformed"),
            (
                signer.sign(json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}), &good),
                "workload_token_malformed",
            ),
            (
                signer.sign(json!({"alg": "ES256", "kid": 1}), &good),
                "workload_token_malformed",
            ),
            (
                signer.token(&claims(&f.clock, json!({"exp": now - 10, "iat": now}))),
                "workload_token_malformed",
            ),
        ];
        for (token, code) in cases {
            let error = f.verifier.verify(&token).await.unwrap_err();
            assert_eq!(error.code(), code, "{error}");
            assert!(!error.to_string().contains(signature(&token)), "{error}");
        }
        // The good one still passes: the refusals above are about the tokens, not the fixture.
        f.verifier.verify(&signer.token(&good)).await.unwrap();
    }

    #[tokio::test]
    async fn times_must_be_whole_numbers_and_iat_is_required() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let now = now(&f.clock);
        for (extra, code) in [
            (json!({"exp": now as f64 + 300.5}), "workload_claim_missing"),
            (json!({"exp": (now + 300) as f64}), "workload_claim_missing"),
            (
                json!({"exp": (now + 300).to_string()}),
                "workload_claim_missing",
            ),
            (json!({"exp": -1}), "workload_claim_missing"),
            (json!({"iat": null}), "workload_claim_missing"),
            (json!({"iat": now as f64}), "workload_claim_missing"),
            (json!({"iat": now.to_string()}), "workload_claim_missing"),
            (json!({"nbf": now as f64}), "workload_claim_missing"),
            // Issued in the future, beyond the leeway (60 s).
            (
                json!({"iat": now + 120, "nbf": null, "exp": now + 400}),
                "workload_token_not_yet_valid",
            ),
        ] {
            let token = signer.token(&claims(&f.clock, extra.clone()));
            assert_eq!(f.code(&token).await, code, "{extra}");
        }
        // Within the leeway, iat in the future is taken; nbf is optional.
        let token = signer.token(&claims(
            &f.clock,
            json!({"iat": now + 30, "nbf": null, "exp": now + 330}),
        ));
        f.verifier.verify(&token).await.unwrap();
    }

    #[tokio::test]
    async fn a_token_living_longer_than_the_issuer_allows_is_refused() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let now = now(&f.clock);
        // The default: 6 hours.
        let longest = signer.token(&claims(&f.clock, json!({"iat": now, "exp": now + 21_600})));
        f.verifier.verify(&longest).await.unwrap();
        let longer = signer.token(&claims(&f.clock, json!({"iat": now, "exp": now + 21_601})));
        let error = f.verifier.verify(&longer).await.unwrap_err();
        assert_eq!(error, WorkloadError::LivesTooLong(21_600));
        assert_eq!(error.code(), "workload_token_expired");

        let strict = fixture(&[&signer], "max_token_lifetime_seconds = 600");
        let hour = signer.token(&claims(&strict.clock, json!({"exp": now + 3600})));
        assert_eq!(strict.code(&hour).await, "workload_token_expired");
    }

    #[tokio::test]
    async fn aud_may_be_a_list_that_holds_the_audience() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let listed = signer.token(&claims(&f.clock, json!({"aud": ["other", "idfed"]})));
        f.verifier.verify(&listed).await.unwrap();
        for (aud, code) in [
            (json!(["other", "another"]), "workload_audience_mismatch"),
            (json!([]), "workload_audience_mismatch"),
            (json!(5), "workload_token_malformed"),
            (json!({"idfed": true}), "workload_token_malformed"),
            (json!(["idfed", 5]), "workload_token_malformed"),
        ] {
            let token = signer.token(&claims(&f.clock, json!({ "aud": aud.clone() })));
            let error = f.verifier.verify(&token).await.unwrap_err();
            assert_eq!(error.code(), code, "{aud}");
            // A fixed message, not the library's.
            assert!(!error.to_string().contains("InvalidClaimFormat"), "{error}");
        }
    }

    #[tokio::test]
    async fn an_oversized_token_is_refused_before_it_is_read() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "");
        // Not base64url, not JSON: had it been read, it would be refused for that.
        let oversized = format!("eyJ{}.%%%.%%%", "A".repeat(MAX_TOKEN_BYTES));
        assert_eq!(
            f.verifier.verify(&oversized).await.unwrap_err(),
            WorkloadError::Malformed("longer than 16 KiB")
        );
        // A well-made token padded over the limit with a claim is refused the same way.
        let padded = signer.token(&claims(
            &f.clock,
            json!({"padding": "x".repeat(MAX_TOKEN_BYTES)}),
        ));
        assert_eq!(
            f.verifier.verify(&padded).await.unwrap_err(),
            WorkloadError::Malformed("longer than 16 KiB")
        );
    }

    #[tokio::test]
    async fn without_a_kid_only_an_issuer_with_a_single_key_is_taken() {
        let signer = Signer::new("k1");
        let other = Signer::new("k2");
        let good = |f: &Fixture| claims(&f.clock, json!({}));
        let single = fixture(&[&signer], "");
        let token = signer.sign(json!({"alg": "ES256", "typ": "JWT"}), &good(&single));
        single.verifier.verify(&token).await.unwrap();

        let several = fixture(&[&signer, &other], "");
        let token = signer.sign(json!({"alg": "ES256", "typ": "JWT"}), &good(&several));
        let error = several.verifier.verify(&token).await.unwrap_err();
        assert_eq!(error, WorkloadError::AmbiguousKey);
        assert_eq!(error.code(), "workload_key_unknown");
        // With its kid, the same key is found.
        several
            .verifier
            .verify(&signer.token(&good(&several)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn duplicate_kids_are_told_apart_by_the_tokens_algorithm() {
        let p256 = Signer::new("shared");
        let p384 = Signer::p384("shared");
        let f = fixture_with(
            &[&p256, &p384],
            "{sub}",
            "algorithms = [\"ES256\", \"ES384\"]\njwks_refresh_min_seconds = 1",
        );
        let good = claims(&f.clock, json!({}));
        f.verifier.verify(&p256.token(&good)).await.unwrap();
        f.verifier.verify(&p384.token(&good)).await.unwrap();
        // Either way round in the JWKS.
        write_keys(&f.jwks, &[&p384, &p256]);
        f.clock.advance(Duration::from_secs(301));
        f.verifier.verify(&p256.token(&good)).await.unwrap();
        f.settle().await;
        f.verifier.verify(&p384.token(&good)).await.unwrap();
        // An algorithm neither key fits.
        let token = p256.sign(json!({"alg": "RS256", "kid": "shared"}), &good);
        assert_eq!(f.code(&token).await, "workload_algorithm_refused");
    }

    #[tokio::test]
    async fn keys_for_encryption_are_ignored() {
        let signer = Signer::new("k1");
        let encrypting = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let mut enc = encrypting.jwk();
        enc["use"] = json!("enc");
        let mut no_verify = encrypting.jwk();
        no_verify["kid"] = json!("k2");
        no_verify.as_object_mut().unwrap().remove("use");
        no_verify["key_ops"] = json!(["encrypt"]);
        write_jwks(&f.jwks, vec![enc.clone(), signer.jwk(), no_verify]);
        let good = claims(&f.clock, json!({}));
        // The signing key under k1 is the only one taken: the encryption key neither verifies nor makes
        // the kid ambiguous.
        f.verifier.verify(&signer.token(&good)).await.unwrap();
        assert_eq!(
            f.code(&encrypting.token(&good)).await,
            "workload_signature_invalid"
        );
        let k2 = encrypting.sign(json!({"alg": "ES256", "kid": "k2"}), &good);
        assert_eq!(f.code(&k2).await, "workload_key_unknown");

        // A JWKS of nothing but an encryption key has no key for k1.
        let only_enc = fixture(&[], "");
        write_jwks(&only_enc.jwks, vec![enc]);
        assert_eq!(
            only_enc.code(&encrypting.token(&good)).await,
            "workload_key_unknown"
        );
    }

    #[tokio::test]
    async fn times_are_judged_by_the_injected_clock_with_the_leeway() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "leeway_seconds = 30");
        let token = signer.token(&claims(&f.clock, json!({})));
        f.clock.advance(Duration::from_secs(300 + 30));
        f.verifier.verify(&token).await.unwrap();
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(
            f.verifier.verify(&token).await.unwrap_err(),
            WorkloadError::Expired
        );
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_the_keys_again_so_a_rotation_is_seen_and_the_old_key_dropped() {
        let old = Signer::new("old");
        let new = Signer::new("new");
        let f = fixture(&[&old], "");
        let good = claims(&f.clock, json!({}));
        f.verifier.verify(&old.token(&good)).await.unwrap();
        write_keys(&f.jwks, &[&new]);
        // jwks_refresh_min_seconds = 1 since the first fetch.
        f.clock.advance(Duration::from_secs(1));
        f.verifier.verify(&new.token(&good)).await.unwrap();
        assert_eq!(f.code(&old.token(&good)).await, "workload_key_unknown");
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_the_keys_again_only_after_the_gap() {
        let old = Signer::new("old");
        let new = Signer::new("new");
        let f = fixture_with(
            &[&old],
            "{sub}",
            "algorithms = [\"ES256\"]\njwks_refresh_min_seconds = 30",
        );
        let good = claims(&f.clock, json!({}));
        f.verifier.verify(&old.token(&good)).await.unwrap();
        write_keys(&f.jwks, &[&new]);
        // Within the gap the keys are not fetched again: the new kid is unknown, and the answer says when
        // to ask again.
        let error = f.verifier.verify(&new.token(&good)).await.unwrap_err();
        assert_eq!(error.code(), "workload_key_unknown");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
        assert!(
            error.to_string().contains("fetched again in 30 s"),
            "{error}"
        );
        f.clock.advance(Duration::from_secs(10));
        let error = f.verifier.verify(&new.token(&good)).await.unwrap_err();
        assert_eq!(error.retry_after(), Some(Duration::from_secs(20)));
        // The old key is still the cached one.
        f.verifier.verify(&old.token(&good)).await.unwrap();
        f.clock.advance(Duration::from_secs(20));
        f.verifier.verify(&new.token(&good)).await.unwrap();
        assert_eq!(f.code(&old.token(&good)).await, "workload_key_unknown");
        // That fetch started the gap again: another made-up kid costs nothing for 30 s.
        let made_up = new.sign(json!({"alg": "ES256", "kid": "made-up"}), &good);
        let error = f.verifier.verify(&made_up).await.unwrap_err();
        assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    }

    #[tokio::test]
    async fn cached_keys_are_served_while_a_refresh_fails_until_they_are_a_day_old() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let token = || signer.token(&claims(&f.clock, json!({})));
        f.verifier.verify(&token()).await.unwrap();
        assert!(f.issuer().lock_state().fetched.is_some());
        std::fs::remove_file(&f.jwks).unwrap();

        // Aged (jwks_cache_seconds = 300): a refresh starts in the background, and fails; the cached key
        // answers meanwhile and after.
        f.clock.advance(Duration::from_secs(301));
        f.verifier.verify(&token()).await.unwrap();
        f.settle().await;
        let attempted = f.issuer().lock_state().attempted;
        f.verifier.verify(&token()).await.unwrap();
        for _ in 0..10 {
            f.clock.advance(Duration::from_secs(3600));
            f.verifier.verify(&token()).await.unwrap();
            f.settle().await;
        }
        assert_ne!(f.issuer().lock_state().attempted, attempted);

        // A day after the last successful fetch, the keys are no longer trusted.
        f.clock
            .advance(Duration::from_secs(86_400 - 301 - 10 * 3600));
        assert_eq!(
            f.verifier.verify(&token()).await.unwrap_err(),
            WorkloadError::IssuerUnavailable
        );
        // The issuer back: within the gap it is not asked again; after it, it is.
        write_keys(&f.jwks, &[&signer]);
        assert_eq!(
            f.verifier.verify(&token()).await.unwrap_err(),
            WorkloadError::IssuerUnavailable
        );
        f.clock.advance(Duration::from_secs(1));
        f.verifier.verify(&token()).await.unwrap();
    }

    #[tokio::test]
    async fn a_refresh_runs_once_however_many_tokens_arrive() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let good = claims(&f.clock, json!({}));
        // No keys yet: the concurrent first tokens all wait for the one fetch.
        let token = signer.token(&good);
        let results = join_all((0..16).map(|_| f.verifier.verify(&token)).collect()).await;
        assert!(results.iter().all(Result::is_ok));
        let fetches = || f.issuer().fetches.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(fetches(), 1);
        // Aged: one refresh, in the background, while the cached keys answer.
        f.clock.advance(Duration::from_secs(301));
        let results = join_all((0..16).map(|_| f.verifier.verify(&token)).collect()).await;
        assert!(results.iter().all(Result::is_ok));
        f.settle().await;
        assert_eq!(fetches(), 2);
        {
            let state = f.issuer().lock_state();
            assert_eq!(state.fetched, state.attempted);
        }
        // Fresh again: no fetch.
        f.verifier.verify(&token).await.unwrap();
        assert_eq!(fetches(), 2);
    }

    /// Polls the futures together on this task (no extra dependency for join_all).
    async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
        let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
        let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
                if output.is_none() {
                    match future.as_mut().poll(cx) {
                        std::task::Poll::Ready(value) => *output = Some(value),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        outputs.into_iter().map(Option::unwrap).collect()
    }

    /// What the `tracing` events of this thread write, while the guard lives.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            (captured, tracing::subscriber::set_default(subscriber))
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[tokio::test]
    async fn a_refused_token_is_logged_with_its_issuer_kid_and_code_only() {
        let signer = Signer::new("k1");
        let stranger = Signer::new("k1");
        let f = fixture(&[&signer], "");
        let (log, _guard) = Captured::start();
        let secret_claims = claims(
            &f.clock,
            json!({"repository": "org/secret-repo", "ref": "refs/heads/secret-branch"}),
        );
        let forged = stranger.token(&secret_claims);
        let unruled = signer.token(&claims(
            &f.clock,
            json!({"repository": "elsewhere/secret-repo"}),
        ));
        let unknown_issuer = signer.token(&claims(
            &f.clock,
            json!({"iss": "https://other.example.com", "sub": "secret-subject"}),
        ));
        for (token, code) in [
            (&forged, "workload_signature_invalid"),
            (&unruled, "workload_not_allowed"),
            (&unknown_issuer, "workload_issuer_unknown"),
        ] {
            assert_eq!(f.code(token).await, code);
        }
        let text = log.text();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("refused")).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
        assert!(lines[0].contains("issuer=\"ci\""), "{}", lines[0]);
        assert!(lines[0].contains("kid=\"k1\""), "{}", lines[0]);
        assert!(
            lines[0].contains("workload_signature_invalid"),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("INFO") && lines[1].contains("workload_not_allowed"));
        assert!(
            lines[2].contains("issuer=\"https://other.example.com\""),
            "{}",
            lines[2]
        );
        for token in [&forged, &unruled, &unknown_issuer] {
            assert!(!text.contains(signature(token)), "{text}");
            assert!(!text.contains(token.split('.').nth(1).unwrap()), "{text}");
        }
        for value in ["secret-repo", "secret-branch", "secret-subject"] {
            assert!(!text.contains(value), "{value}: {text}");
        }
    }

    #[tokio::test]
    async fn keys_that_cannot_be_had_answer_issuer_unavailable() {
        let signer = Signer::new("k1");
        let f = fixture(&[&signer], "");
        std::fs::remove_file(&f.jwks).unwrap();
        let token = signer.token(&claims(&f.clock, json!({})));
        assert_eq!(
            f.verifier.verify(&token).await.unwrap_err(),
            WorkloadError::IssuerUnavailable
        );
    }

    #[tokio::test]
    async fn the_sts_session_name_of_a_long_subject_keeps_a_64_bit_hash_of_the_whole_name() {
        use crate::sts::validate::{federated_user_name, role_session_name};
        let signer = Signer::new("k1");
        let f = fixture_with(
            &[&signer],
            "{sub}",
            "algorithms = [\"ES256\"]\njwks_refresh_min_seconds = 1",
        );
        let name_of = |sub: String| {
            let token = signer.token(&claims(&f.clock, json!({ "sub": sub })));
            let verifier = &f.verifier;
            async move { verifier.verify(&token).await.map(|w| w.name) }
        };
        let long = format!("repo:org/app:environment:{}", "x".repeat(100));
        let name = name_of(long.clone()).await.unwrap();
        assert_eq!(name, format!("ci:{long}"));
        assert_eq!(
            role_session_name(&name),
            "ci_repo_org_app_environment_xxxxxxxxxxxxxxxxxxx-9152bf9634c2ca4f"
        );
        assert_eq!(
            federated_user_name(&name),
            "ci_repo_org_app-9152bf9634c2ca4f"
        );
        // Two subjects alike but for their last character: two names.
        let twin = format!("repo:org/app:environment:{}y", "x".repeat(99));
        let twin_name = name_of(twin).await.unwrap();
        assert_ne!(role_session_name(&twin_name), role_session_name(&name));
        assert_ne!(federated_user_name(&twin_name), federated_user_name(&name));

        // A name over 256 characters is refused, not cut (cut, two subjects would share it).
        let name = name_of("s".repeat(253)).await.unwrap();
        assert_eq!(name.chars().count(), 256);
        let error = name_of("s".repeat(254)).await.unwrap_err();
        assert_eq!(error, WorkloadError::NameTooLong);
        assert_eq!(error.code(), "workload_claim_missing");
        // The subject is kept whole.
        let workload = f
            .verifier
            .verify(&signer.token(&claims(&f.clock, json!({ "sub": "s".repeat(253) }))))
            .await
            .unwrap();
        assert_eq!(workload.subject, "s".repeat(253));
    }

    #[test]
    fn the_configuration_refuses_none_hmac_plain_http_bad_templates_and_wide_rules() {
        let base = |issuer: &str, rule: &str| {
            format!(
                "[[issuers]]\nname = \"ci\"\nissuer = \"https://ci.example.com\"\naudience = \"idfed\"\n{issuer}\n\
                 [[issuers.rules]]\nconnectors = [\"x\"]\n{rule}\n"
            )
        };
        let build = |issuer: &str, rule: &str| {
            let settings: WorkloadSettings = toml::from_str(&base(issuer, rule)).unwrap();
            WorkloadVerifier::new(&settings, Arc::new(ManualClock::new())).map(|_| ())
        };
        let rule = "claims = { repository = \"org/*\" }";
        build("", rule).unwrap();
        for (issuer, says) in [
            ("algorithms = [\"none\"]", "never none or HMAC"),
            ("algorithms = [\"HS256\"]", "never none or HMAC"),
            (
                "jwks_url = \"http://keys.example.com/jwks\"",
                "must be https://",
            ),
            ("caller = \"static\"", "names no claim"),
            ("caller = \"{sub\"", "without its"),
            ("jwks_refresh_min_seconds = 0", "at least 1"),
            ("max_token_lifetime_seconds = 0", "at least 1"),
            (
                "jwks_cache_seconds = 600\njwks_max_stale_seconds = 600",
                "more than jwks_cache_seconds",
            ),
        ] {
            let error = build(issuer, rule).unwrap_err();
            assert!(error.contains(says), "{issuer}: {error}");
        }
        let long = format!("caller = \"{}{{sub}}\"", "x".repeat(253));
        assert!(build(&long, rule).unwrap_err().contains("longer than 256"));
        build(&format!("caller = \"{}{{sub}}\"", "x".repeat(252)), rule).unwrap();
        build("jwks_url = \"http://127.0.0.1:9/jwks\"", rule).unwrap();
        build("jwks_refresh_min_seconds = 1", rule).unwrap();

        // Rules that would grant every token of the issuer.
        for (rule, says) in [
            ("", "name at least one claim"),
            ("claims = {}", "name at least one claim"),
            ("claims = { repository = \"*\" }", "every pattern is '*'"),
            (
                "claims = { repository = \"**\", ref = \"*\" }",
                "every pattern is '*'",
            ),
            ("claims = { aud = \"idfed\" }", "every pattern is '*'"),
            (
                "claims = { iss = \"https://ci.example.com\", repository = \"*\" }",
                "every pattern is '*'",
            ),
        ] {
            let error = build("", rule).unwrap_err();
            assert!(error.contains(says), "{rule}: {error}");
        }
        build(
            "",
            "claims = { repository = \"*\", ref = \"refs/heads/main\" }",
        )
        .unwrap();
    }

    #[test]
    fn the_names_system_and_admin_are_reserved() {
        for name in ["system", "admin", "System", "ADMIN"] {
            let settings: WorkloadSettings = toml::from_str(&format!(
                "[[issuers]]\nname = \"{name}\"\nissuer = \"https://ci.example.com\"\naudience = \"idfed\"\n"
            ))
            .unwrap();
            let error = WorkloadVerifier::new(&settings, Arc::new(ManualClock::new())).unwrap_err();
            assert!(error.contains("reserved"), "{name}: {error}");
        }
    }

    #[test]
    fn redirects_stay_on_https_for_at_most_three_hops() {
        let url = |text: &str| url::Url::parse(text).unwrap();
        let https = url("https://keys.example.com/jwks");
        assert_eq!(redirect_refusal(&https, 1, false), None);
        assert_eq!(redirect_refusal(&https, 3, false), None);
        assert_eq!(
            redirect_refusal(&https, 4, false),
            Some("more than 3 redirects")
        );
        for plain in [
            "http://keys.example.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "ftp://keys.example.com/jwks",
        ] {
            assert!(redirect_refusal(&url(plain), 1, false).is_some(), "{plain}");
        }
        // An issuer configured on loopback over plain HTTP (a test issuer) may redirect there, and to
        // HTTPS, but not to plain HTTP elsewhere.
        assert_eq!(
            redirect_refusal(&url("http://127.0.0.1:8080/jwks"), 1, true),
            None
        );
        assert_eq!(
            redirect_refusal(&url("http://[::1]:8080/jwks"), 1, true),
            None
        );
        assert_eq!(redirect_refusal(&https, 1, true), None);
        assert!(redirect_refusal(&url("http://keys.example.com/jwks"), 1, true).is_some());

        assert_eq!(check_fetch_url("f", "https://ci.example.com"), Ok(false));
        assert_eq!(check_fetch_url("f", "http://127.0.0.1:1"), Ok(true));
        assert!(check_fetch_url("f", "http://ci.example.com").is_err());
    }

    #[test]
    fn library_errors_become_fixed_messages() {
        use jsonwebtoken::errors::ErrorKind;
        let json = serde_json::from_str::<Value>("{").unwrap_err();
        for kind in [
            ErrorKind::Json(Arc::new(json)),
            ErrorKind::InvalidToken,
            ErrorKind::Provider("secret detail".into()),
        ] {
            let error = map_library_error(&kind, "ES256");
            assert_eq!(
                error,
                WorkloadError::Malformed("it could not be read as a signed JWT")
            );
        }
        assert_eq!(
            map_library_error(&ErrorKind::InvalidRsaKey("detail".into()), "RS256"),
            WorkloadError::AlgorithmRefused("RS256".into())
        );
    }

    #[test]
    fn globs_match_runs_of_any_characters_and_nothing_else() {
        assert!(glob("org/*", "org/app"));
        assert!(glob("refs/heads/*", "refs/heads/feature/x"));
        assert!(glob("*", ""));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("org/*", "org2/app"));
        assert!(!glob("main", "main2"));
        assert!(!glob("a*c", "abcd"));
    }

    #[test]
    fn only_jws_shaped_tokens_are_taken_for_workload_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("idfed_abc.def"));
        assert!(!looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0"));
        assert!(!looks_like_jwt("eyJh bGc.eyJ.sig"));
    }
}
