//! Workload identity: the OIDC ID tokens CI systems give their jobs (GitHub Actions, GitLab CI, Buildkite,
//! Jenkins…) as callers, so a pipeline needs no long-lived API key.
//!
//! A token comes as `Authorization: Bearer <JWT>`. It is checked against the configured issuer its `iss`
//! names: the algorithm must be one the issuer allows (asymmetric only: never `none`, never HMAC, so a
//! public key can never be used as a shared secret), the key its `kid` names must be in the issuer's JWKS
//! (from a file, a URL, or the issuer's OpenID discovery document; cached, fetched again when it ages or
//! when an unknown `kid` shows a rotation), the signature must verify, the audience must be the one
//! configured, and `exp`/`nbf`/`iat` must hold with the configured leeway. Then the issuer's **claim
//! rules** say which system-scope connectors it may use: a rule matches when each claim it names matches
//! (exactly, or with `*` standing for any run of characters), and the caller gets the connectors of every
//! rule that matches. A token no rule matches is refused. The caller's name comes from a template of
//! claims (`{repository}@{ref}`), prefixed with the issuer's name: `ci:org/app@refs/heads/main`.
//!
//! The token itself is never stored or logged: only the name and claims taken from it live on.
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
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::lockout::Clock;

/// The longest token read (GitHub's are about 1.5 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The largest JWKS or discovery document read.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// The most claims kept for plugins and the audit log, and the longest value kept.
const MAX_CLAIMS: usize = 64;
const MAX_CLAIM_CHARS: usize = 512;
/// How long one JWKS or discovery fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// A short name: the prefix of its callers' names (`ci` → `ci:org/app@refs/heads/main`).
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
    /// How long fetched keys are used before they are fetched again, in seconds (default 300).
    #[serde(default = "default_cache")]
    pub jwks_cache_seconds: u64,
    /// The least time between two fetches caused by a `kid` not in the cached keys, in seconds (default 30):
    /// tokens with made-up `kid`s cannot make idfed hammer the issuer.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_min_seconds: u64,
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
fn default_cache() -> u64 {
    300
}
fn default_refresh() -> u64 {
    30
}

/// One `[[workload.issuers.rules]]`: tokens whose claims match may use the connectors named.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// Claim name → the value it must have (`*` matches any run of characters). A claim that is a list
    /// matches when one of its items does. Empty: every token of the issuer.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// The system-scope connectors (by name) the token may then use.
    pub connectors: Vec<String>,
}

/// Why a workload token was refused. Each is its own stable code; none carries the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// Not a JWS compact token, or its parts are not base64url JSON.
    #[error("the workload token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// Its `iss` is no configured issuer (or workload identity is not configured).
    #[error("the workload token's issuer {0:?} is not trusted here")]
    UnknownIssuer(String),
    /// Its `alg` is not one the issuer allows (`none` and HMAC never are).
    #[error("the workload token's algorithm {0:?} is not accepted")]
    AlgorithmRefused(String),
    /// Its `kid` is not among the issuer's keys, even after fetching them again.
    #[error("the workload token's signing key {0:?} is not one of the issuer's keys")]
    UnknownKey(String),
    /// The signature does not verify with the issuer's key.
    #[error("the workload token's signature does not verify")]
    BadSignature,
    /// Past its `exp` (with the leeway).
    #[error("the workload token has expired")]
    Expired,
    /// Before its `nbf` or `iat` (with the leeway).
    #[error("the workload token is not valid yet")]
    NotYetValid,
    /// Its `aud` is not the audience configured.
    #[error("the workload token is not meant for this server (audience)")]
    WrongAudience,
    /// A claim the check or the caller's name needs is missing or not text.
    #[error("the workload token has no usable {0:?} claim")]
    MissingClaim(String),
    /// Valid, but no claim rule of the issuer matches it.
    #[error("no rule lets this workload ({0}) use any connector")]
    NoRule(String),
    /// The issuer's keys cannot be had (and none are cached).
    #[error("the workload token's issuer cannot be reached for its keys; try again later")]
    IssuerUnavailable,
}

impl WorkloadError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            WorkloadError::Malformed(_) => "workload_token_malformed",
            WorkloadError::UnknownIssuer(_) => "workload_issuer_unknown",
            WorkloadError::AlgorithmRefused(_) => "workload_algorithm_refused",
            WorkloadError::UnknownKey(_) => "workload_key_unknown",
            WorkloadError::BadSignature => "workload_signature_invalid",
            WorkloadError::Expired => "workload_token_expired",
            WorkloadError::NotYetValid => "workload_token_not_yet_valid",
            WorkloadError::WrongAudience => "workload_audience_mismatch",
            WorkloadError::MissingClaim(_) => "workload_claim_missing",
            WorkloadError::NoRule(_) => "workload_not_allowed",
            WorkloadError::IssuerUnavailable => "workload_issuer_unavailable",
        }
    }
}

/// A workload, once its token checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The issuer's configured name.
    pub issuer: String,
    /// The caller's name: `issuer:` and the caller template filled in.
    pub name: String,
    /// The token's `sub`.
    pub subject: String,
    /// The token's claims that are text, numbers or booleans, as text (at most 64, each value cut at
    /// 512 characters), for plugins and the audit log.
    pub claims: BTreeMap<String, String>,
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
    issuers: Vec<Issuer>,
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
    keys: tokio::sync::Mutex<KeyCache>,
}

enum KeySource {
    File(PathBuf),
    Url(String),
    Discovery(String),
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Key>,
    /// Keys without a `kid`, tried when a token names none.
    unnamed: Vec<Key>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

#[derive(Clone)]
struct Key {
    decoding: Arc<DecodingKey>,
    family: jsonwebtoken::AlgorithmFamily,
    /// The `alg` the JWK is restricted to, if it names one.
    alg: Option<String>,
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

/// Whether `url` may be fetched: HTTPS, or HTTP to a loopback address (a test issuer, a local proxy).
fn check_fetch_url(field: &str, url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{field} {url:?}: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{field} {url:?} must be https:// (http:// only to a loopback address)"
        )),
    }
}

impl WorkloadVerifier {
    /// The verifier for `settings`; an error names what in the configuration is wrong.
    pub fn new(settings: &WorkloadSettings, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let mut issuers: Vec<Issuer> = Vec::new();
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
            if issuers
                .iter()
                .any(|i| i.settings.name == issuer.name || i.settings.issuer == issuer.issuer)
            {
                return Err(format!(
                    "{at}: the name {:?} or the issuer {:?} is configured twice",
                    issuer.name, issuer.issuer
                ));
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
            for (r, rule) in issuer.rules.iter().enumerate() {
                if rule.connectors.is_empty() {
                    return Err(format!("{at}.rules[{r}].connectors: name at least one"));
                }
            }
            let source = match (&issuer.jwks_url, &issuer.jwks_file) {
                (Some(_), Some(_)) => {
                    return Err(format!("{at}: give jwks_url or jwks_file, not both"));
                }
                (Some(url), None) => {
                    check_fetch_url(&format!("{at}.jwks_url"), url)?;
                    KeySource::Url(url.clone())
                }
                (None, Some(file)) => KeySource::File(file.clone()),
                (None, None) => {
                    check_fetch_url(&format!("{at}.issuer"), &issuer.issuer)?;
                    KeySource::Discovery(format!(
                        "{}/.well-known/openid-configuration",
                        issuer.issuer.trim_end_matches('/')
                    ))
                }
            };
            let mut http = reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::limited(3));
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
            issuers.push(Issuer {
                settings: issuer.clone(),
                algorithms,
                template,
                source,
                http,
                keys: tokio::sync::Mutex::new(KeyCache::default()),
            });
        }
        Ok(WorkloadVerifier { issuers, clock })
    }

    /// Whether any issuer is configured.
    pub fn is_configured(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Checks `token`; the workload it names, with the connectors its claims are granted.
    pub async fn verify(&self, token: &str) -> Result<Workload, WorkloadError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(WorkloadError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(WorkloadError::Malformed(
                "not three dot-separated parts".into(),
            ));
        };
        let header: Value = decode_part(header, "header")?;
        let claims: serde_json::Map<String, Value> = decode_part(payload, "payload")?;
        if header.get("crit").is_some() {
            return Err(WorkloadError::Malformed(
                "the header names critical extensions (crit), which idfed does not implement"
                    .into(),
            ));
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| WorkloadError::Malformed("the header has no alg".into()))?;
        // none and HMAC are refused before anything else is looked at.
        let Some(algorithm) = supported(alg) else {
            return Err(WorkloadError::AlgorithmRefused(alg.to_owned()));
        };
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| WorkloadError::MissingClaim("iss".into()))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.settings.issuer == iss)
            .ok_or_else(|| WorkloadError::UnknownIssuer(clip(iss, 200)))?;
        if !issuer.algorithms.contains(&algorithm) {
            return Err(WorkloadError::AlgorithmRefused(alg.to_owned()));
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let key = issuer.key(kid, self.clock.instant()).await?;
        if key.family != algorithm.family() || key.alg.as_deref().is_some_and(|a| a != alg) {
            return Err(WorkloadError::AlgorithmRefused(alg.to_owned()));
        }
        let mut validation = Validation::new(algorithm);
        // Times are checked below against idfed's clock; the library checks the signature, iss and aud.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["iss", "aud"].iter().map(|c| c.to_string()).collect();
        validation.set_issuer(&[&issuer.settings.issuer]);
        validation.set_audience(&[&issuer.settings.audience]);
        jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => WorkloadError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAudience => WorkloadError::WrongAudience,
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                WorkloadError::WrongAudience
            }
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                WorkloadError::UnknownIssuer(clip(iss, 200))
            }
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                WorkloadError::AlgorithmRefused(alg.to_owned())
            }
            other => WorkloadError::Malformed(format!("{other:?}")),
        })?;
        self.check_times(&claims, issuer.settings.leeway_seconds)?;
        let subject =
            claim_text(&claims, "sub").ok_or_else(|| WorkloadError::MissingClaim("sub".into()))?;
        let mut name = format!("{}:", issuer.settings.name);
        for piece in &issuer.template {
            match piece {
                Piece::Text(text) => name.push_str(text),
                Piece::Claim(claim) => name.push_str(
                    &claim_text(&claims, claim)
                        .ok_or_else(|| WorkloadError::MissingClaim(claim.clone()))?,
                ),
            }
        }
        let name = clip(&name, 256);
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
            .filter_map(|(k, v)| scalar_text(v).map(|v| (clip(k, 64), clip(&v, MAX_CLAIM_CHARS))))
            .take(MAX_CLAIMS)
            .collect();
        Ok(Workload {
            issuer: issuer.settings.name.clone(),
            name,
            subject: clip(&subject, MAX_CLAIM_CHARS),
            claims: kept,
            connectors,
        })
    }

    fn check_times(
        &self,
        claims: &serde_json::Map<String, Value>,
        leeway: u64,
    ) -> Result<(), WorkloadError> {
        let now = self
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let time = |name: &str| -> Result<Option<u64>, WorkloadError> {
            match claims.get(name) {
                None => Ok(None),
                Some(value) => value
                    .as_u64()
                    .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .map(Some)
                    .ok_or_else(|| WorkloadError::MissingClaim(name.into())),
            }
        };
        let exp = time("exp")?.ok_or_else(|| WorkloadError::MissingClaim("exp".into()))?;
        if now > exp.saturating_add(leeway) {
            return Err(WorkloadError::Expired);
        }
        for name in ["nbf", "iat"] {
            if time(name)?.is_some_and(|t| t > now.saturating_add(leeway)) {
                return Err(WorkloadError::NotYetValid);
            }
        }
        Ok(())
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, WorkloadError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| WorkloadError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| WorkloadError::Malformed(format!("the {what} is not a JSON object")))
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

impl Issuer {
    /// The key `kid` names (or the one unnamed key when the token names none), fetching the keys again
    /// when they have aged or when `kid` is not among them (at most once per `jwks_refresh_min_seconds`).
    async fn key(&self, kid: Option<&str>, now: Instant) -> Result<Key, WorkloadError> {
        let mut cache = self.keys.lock().await;
        let max_age = Duration::from_secs(self.settings.jwks_cache_seconds);
        let min_gap = Duration::from_secs(self.settings.jwks_refresh_min_seconds);
        let attempted_recently = |cache: &KeyCache, gap: Duration| {
            cache
                .attempted
                .is_some_and(|at| now.saturating_duration_since(at) < gap)
        };
        let stale = cache
            .fetched
            .is_none_or(|at| now.saturating_duration_since(at) >= max_age);
        // A failed fetch is not tried again for the refresh gap either (at least 1 s), so an issuer that is
        // down is not asked once per request.
        if stale && !attempted_recently(&cache, min_gap.max(Duration::from_secs(1))) {
            self.refresh(&mut cache, now).await;
        }
        if cache.fetched.is_none() {
            return Err(WorkloadError::IssuerUnavailable);
        }
        let found = |cache: &KeyCache| match kid {
            Some(kid) => cache.keys.get(kid).cloned(),
            None if cache.unnamed.len() + cache.keys.len() == 1 => cache
                .unnamed
                .first()
                .or_else(|| cache.keys.values().next())
                .cloned(),
            None => None,
        };
        if let Some(key) = found(&cache) {
            return Ok(key);
        }
        if !attempted_recently(&cache, min_gap) {
            self.refresh(&mut cache, now).await;
            if let Some(key) = found(&cache) {
                return Ok(key);
            }
        }
        Err(WorkloadError::UnknownKey(clip(kid.unwrap_or(""), 100)))
    }

    async fn refresh(&self, cache: &mut KeyCache, now: Instant) {
        cache.attempted = Some(now);
        match self.fetch().await {
            Ok((keys, unnamed)) => {
                cache.keys = keys;
                cache.unnamed = unnamed;
                cache.fetched = Some(now);
            }
            Err(why) => tracing::warn!(
                issuer = %self.settings.name,
                "workload identity: cannot refresh the issuer's keys (the cached ones stay in use): {why}"
            ),
        }
    }

    async fn fetch(&self) -> Result<(HashMap<String, Key>, Vec<Key>), String> {
        let document = match &self.source {
            KeySource::File(file) => {
                let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
                if bytes.len() > MAX_DOCUMENT_BYTES {
                    return Err(format!(
                        "{}: larger than {MAX_DOCUMENT_BYTES} bytes",
                        file.display()
                    ));
                }
                bytes
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
                check_fetch_url("jwks_uri", jwks_uri)?;
                self.get(jwks_uri).await?
            }
        };
        let set: Value =
            serde_json::from_slice(&document).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let items = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no keys list")?;
        let mut keys = HashMap::new();
        let mut unnamed = Vec::new();
        for item in items {
            // A key of a kind idfed does not use (an encryption key, an OKP key) is skipped, not fatal.
            if item
                .get("use")
                .and_then(Value::as_str)
                .is_some_and(|u| u != "sig")
            {
                continue;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(item.clone()) else {
                continue;
            };
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => jsonwebtoken::AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => jsonwebtoken::AlgorithmFamily::Ec,
                _ => continue,
            };
            let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let key = Key {
                decoding: Arc::new(decoding),
                family,
                alg: item.get("alg").and_then(Value::as_str).map(str::to_owned),
            };
            match jwk.common.key_id {
                Some(kid) => {
                    keys.insert(kid, key);
                }
                None => unnamed.push(key),
            }
        }
        Ok((keys, unnamed))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("{url}: answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::lockout::ManualClock;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    struct Signer {
        pair: EcdsaKeyPair,
        kid: String,
    }

    impl Signer {
        fn new(kid: &str) -> Signer {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .unwrap();
            Signer {
                pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                    .unwrap(),
                kid: kid.into(),
            }
        }

        fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                   "x": b64(&point[1..33]), "y": b64(&point[33..65])})
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
                json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
                claims,
            )
        }
    }

    const ISS: &str = "https://ci.example.com";

    fn claims(clock: &ManualClock, extra: Value) -> Value {
        let now = clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
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

    fn fixture(signers: &[&Signer], extra: &str) -> Fixture {
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
            algorithms = ["ES256"]
            caller = "{{repository}}@{{ref}}"
            jwks_refresh_min_seconds = 0
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

    fn write_keys(file: &std::path::Path, signers: &[&Signer]) {
        let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
        std::fs::write(file, json!({ "keys": keys }).to_string()).unwrap();
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
        let cases = [
            (
                signer.token(&claims(&f.clock, json!({"exp": 1000}))),
                "workload_token_expired",
            ),
            (
                signer.token(&claims(&f.clock, json!({"nbf": 4_000_000_000u64}))),
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
        ];
        for (token, code) in cases {
            let error = f.verifier.verify(&token).await.unwrap_err();
            assert_eq!(error.code(), code, "{error}");
            assert!(!error.to_string().contains(&token), "{error}");
        }
        // The good one still passes: the refusals above are about the tokens, not the fixture.
        f.verifier.verify(&signer.token(&good)).await.unwrap();
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
        f.verifier.verify(&new.token(&good)).await.unwrap();
        assert_eq!(
            f.verifier
                .verify(&old.token(&good))
                .await
                .unwrap_err()
                .code(),
            "workload_key_unknown"
        );
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

    #[test]
    fn the_configuration_refuses_none_hmac_plain_http_and_bad_templates() {
        let base = |extra: &str| {
            format!(
                "[[issuers]]\nname = \"ci\"\nissuer = \"https://ci.example.com\"\naudience = \"idfed\"\n{extra}\n\
                 [[issuers.rules]]\nconnectors = [\"x\"]\n"
            )
        };
        let build = |extra: &str| {
            let settings: WorkloadSettings = toml::from_str(&base(extra)).unwrap();
            WorkloadVerifier::new(&settings, Arc::new(ManualClock::new())).map(|_| ())
        };
        build("").unwrap();
        for (extra, says) in [
            ("algorithms = [\"none\"]", "never none or HMAC"),
            ("algorithms = [\"HS256\"]", "never none or HMAC"),
            (
                "jwks_url = \"http://keys.example.com/jwks\"",
                "must be https://",
            ),
            ("caller = \"static\"", "names no claim"),
            ("caller = \"{sub\"", "without its"),
        ] {
            let error = build(extra).unwrap_err();
            assert!(error.contains(says), "{extra}: {error}");
        }
        build("jwks_url = \"http://127.0.0.1:9/jwks\"").unwrap();
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
