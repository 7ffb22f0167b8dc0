//! An OpenID Connect issuer stand-in, like a CI system's (GitHub Actions, GitLab) ID-token issuer, on a
//! loopback port, for tests only: it publishes a JWKS and signs JWT ID tokens, so end-to-end tests can check
//! that workload-identity validation takes good tokens and refuses bad ones.
//!
//! - `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0) → `200` `Content-Type:
//!   application/json` `{"issuer": "http://127.0.0.1:PORT", "jwks_uri": "http://127.0.0.1:PORT/jwks",
//!   "id_token_signing_alg_values_supported": ["RS256", "ES256"], "response_types_supported": ["id_token"],
//!   "subject_types_supported": ["public"]}`.
//! - `GET /jwks` (RFC 7517 JWK Set) → `200` `Content-Type: application/json`, `Cache-Control: max-age=300`,
//!   `{"keys": [{"kty": "RSA", "kid", "use": "sig", "alg": "RS256", "n", "e"}, {"kty": "EC", "kid", "use":
//!   "sig", "alg": "ES256", "crv": "P-256", "x", "y"}]}`: the current RSA key (2048 bits, `e` = 65537) and the
//!   current P-256 key, with base64url (no padding) big-endian values: `n` and `e` without leading zero octets,
//!   `x` and `y` 32 octets each (RFC 7518 §6). Answers are counted ([`OidcIssuer::jwks_fetches`]).
//! - `GET /redirect/{n}` → `302` to `/redirect/{n-1}`, and `/redirect/1` to `/jwks`: `n` redirects before the
//!   JWKS ([`OidcIssuer::jwks_url_via_redirects`]). `GET /redirect-to?to=URL` → `302` to `URL`
//!   ([`OidcIssuer::redirect_to`]).
//! - Anything else is `404`.
//!
//! A test may make the JWKS fail (`500`, [`OidcIssuer::fail_jwks`]), hold its answers until released
//! ([`OidcIssuer::hold_jwks`]: a slow or hung issuer), or make the discovery document name another
//! `jwks_uri` ([`OidcIssuer::set_jwks_uri`]). [`OidcIssuer::start_tls`] serves all of it over HTTPS with a
//! certificate for 127.0.0.1 issued by a CA made for the test ([`OidcIssuer::ca_file`]).
//!
//! Tokens are JWS compact serializations (RFC 7515 §7.1): `BASE64URL(header) "." BASE64URL(claims) "."
//! BASE64URL(signature)`, the header and claims serialized with serde_json. RS256 is RSASSA-PKCS1-v1_5 with
//! SHA-256; ES256 is ECDSA P-256 with SHA-256 whose signature is the fixed 64 octets `R || S` (RFC 7518 §3.4),
//! not DER. [`OidcIssuer::claims`] makes a typical ID token's claims; the other methods sign them well or
//! badly: alg `none` ([`OidcIssuer::unsigned`]), HS256 keyed with the RSA public key
//! ([`OidcIssuer::hmac_with_public_key`]), any header ([`OidcIssuer::sign_with_header`]), a key taken out of
//! the JWKS by [`OidcIssuer::rotate`] ([`OidcIssuer::sign_with_retired`]).
//!
//! Signing is aws-lc-rs used directly, not `jsonwebtoken` (which the product verifies with), so that the
//! product's tests do not share the code they test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64URL};
use serde_json::{Value, json};

/// The `sub` of [`OidcIssuer::claims`], a GitHub Actions workflow run on `main` of `org/app`.
pub const SUBJECT: &str = "repo:org/app:ref:refs/heads/main";

/// How long a token of [`OidcIssuer::claims`] lasts: `exp` is `iat` plus this many seconds.
pub const LIFETIME_SECONDS: u64 = 300;

/// Which of the issuer's two keys signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// The RSA key (2048 bits): RS256, RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa,
    /// The P-256 key: ES256, ECDSA with SHA-256, signature `R || S`.
    Ec,
}

impl KeyKind {
    /// The JWS `alg` of this kind of key: `RS256` or `ES256`.
    pub fn alg(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RS256",
            KeyKind::Ec => "ES256",
        }
    }
}

/// One generation of keys: an RSA key and an EC key, each with its kid.
struct KeySet {
    rsa: RsaKeyPair,
    rsa_kid: String,
    ec: EcdsaKeyPair,
    ec_kid: String,
}

impl KeySet {
    fn generate() -> Arc<KeySet> {
        let id = uuid::Uuid::new_v4();
        Arc::new(KeySet {
            rsa: RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("cannot generate an RSA key"),
            rsa_kid: format!("rsa-{id}"),
            ec: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("cannot generate a P-256 key"),
            ec_kid: format!("ec-{id}"),
        })
    }

    fn kid(&self, kind: KeyKind) -> &str {
        match kind {
            KeyKind::Rsa => &self.rsa_kid,
            KeyKind::Ec => &self.ec_kid,
        }
    }

    /// The two public keys as JWKs (RFC 7517 §4, RFC 7518 §6.2 and §6.3).
    fn jwks(&self) -> Vec<Value> {
        let rsa = RsaPublicKeyComponents::<Vec<u8>>::from(self.rsa.public_key());
        // SEC 1 uncompressed point: 0x04 || x || y, each coordinate 32 octets for P-256.
        let point = self.ec.public_key().as_ref();
        assert!(
            point.len() == 65 && point[0] == 0x04,
            "not an uncompressed P-256 point"
        );
        vec![
            json!({
                "kty": "RSA",
                "kid": self.rsa_kid,
                "use": "sig",
                "alg": "RS256",
                "n": BASE64URL.encode(&rsa.n),
                "e": BASE64URL.encode(&rsa.e),
            }),
            json!({
                "kty": "EC",
                "kid": self.ec_kid,
                "use": "sig",
                "alg": "ES256",
                "crv": "P-256",
                "x": BASE64URL.encode(&point[1..33]),
                "y": BASE64URL.encode(&point[33..65]),
            }),
        ]
    }

    /// The signature of `input` with the key of `kind`.
    fn sign(&self, kind: KeyKind, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match kind {
            KeyKind::Rsa => {
                let mut signature = vec![0; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(&RSA_PKCS1_SHA256, &rng, input, &mut signature)
                    .expect("RS256 signing failed");
                signature
            }
            KeyKind::Ec => {
                let signature = self.ec.sign(&rng, input).expect("ES256 signing failed");
                assert_eq!(signature.as_ref().len(), 64, "ES256 is R || S, 64 octets");
                signature.as_ref().to_vec()
            }
        }
    }

    /// The public key of `kind` as PEM `SubjectPublicKeyInfo` (RFC 7468 §13): `-----BEGIN PUBLIC KEY-----`,
    /// base64 in lines of 64 characters, `-----END PUBLIC KEY-----`, each line ending with `\n`.
    fn public_key_pem(&self, kind: KeyKind) -> String {
        let der = match kind {
            KeyKind::Rsa => self.rsa.public_key().as_der(),
            KeyKind::Ec => self.ec.public_key().as_der(),
        }
        .expect("cannot encode the public key");
        let body = BASE64.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

struct Keys {
    current: Arc<KeySet>,
    retired: Option<Arc<KeySet>>,
}

struct Shared {
    issuer: String,
    keys: Mutex<Keys>,
    jwks_fetches: AtomicUsize,
    /// `GET /jwks` requests received (answered or not yet).
    jwks_requests: AtomicUsize,
    /// Whether `GET /jwks` answers `500`.
    jwks_failing: AtomicBool,
    /// While `true`, `GET /jwks` waits before it answers.
    jwks_held: tokio::sync::watch::Sender<bool>,
    /// The `jwks_uri` the discovery document names instead of `{issuer}/jwks`.
    jwks_uri: Mutex<Option<String>>,
}

impl Shared {
    fn current(&self) -> Arc<KeySet> {
        self.keys.lock().unwrap().current.clone()
    }
}

/// A running issuer; stops when dropped.
pub struct OidcIssuer {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    /// The CA certificate (PEM) its HTTPS certificate is issued by, when it serves HTTPS.
    ca_file: Option<PathBuf>,
}

impl Drop for OidcIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OidcIssuer {
    /// Starts one on a free loopback port, on the caller's tokio runtime, with one RSA key and one EC key
    /// published.
    pub async fn start() -> OidcIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Shared::new(format!("http://{address}"));
        let task = tokio::spawn(crate::sts_standin::serve(listener, router(shared.clone())));
        OidcIssuer {
            address,
            shared,
            task,
            ca_file: None,
        }
    }

    /// Starts one as [`OidcIssuer::start`] does, served over HTTPS: its issuer is `https://127.0.0.1:PORT`,
    /// its certificate (for IP 127.0.0.1) issued by a CA made with `openssl` in `dir`, whose certificate
    /// [`OidcIssuer::ca_file`] names.
    pub async fn start_tls(dir: &Path) -> OidcIssuer {
        let (ca, cert, key) = certificates(dir);
        let acceptor = idfed::api::load_tls(&cert, &key).expect("the test certificate loads");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Shared::new(format!("https://{address}"));
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        OidcIssuer {
            address,
            shared,
            task,
            ca_file: Some(ca),
        }
    }

    /// `http://127.0.0.1:PORT` (`https://…` when started with [`OidcIssuer::start_tls`]), exactly the `iss` of
    /// its tokens and the discovery document's `issuer`.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The CA certificate file (PEM) to trust for an issuer started with [`OidcIssuer::start_tls`].
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The discovery document's URL: the issuer followed by `/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// The JWKS's URL: the issuer followed by `/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer())
    }

    /// How many times `GET /jwks` was answered with the keys.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many `GET /jwks` requests arrived (answered, failed or held).
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// From now on `GET /jwks` answers `500` (`true`) or the keys again (`false`).
    pub fn fail_jwks(&self, failing: bool) {
        self.shared.jwks_failing.store(failing, Ordering::SeqCst);
    }

    /// From now on `GET /jwks` waits, without answering, until called with `false` (`true`): an issuer that
    /// is slow or hung. Releasing answers the requests held.
    pub fn hold_jwks(&self, held: bool) {
        self.shared.jwks_held.send_replace(held);
    }

    /// The discovery document names `uri` as its `jwks_uri` (`None`: its own `/jwks` again).
    pub fn set_jwks_uri(&self, uri: Option<String>) {
        *self.shared.jwks_uri.lock().unwrap() = uri;
    }

    /// A URL of this issuer that redirects `hops` times (`hops` at least 1), the last time to its JWKS.
    pub fn jwks_url_via_redirects(&self, hops: usize) -> String {
        assert!(hops >= 1, "at least one redirect");
        format!("{}/redirect/{hops}", self.issuer())
    }

    /// A URL of this issuer that redirects to `target`.
    pub fn redirect_to(&self, target: &str) -> String {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("to", target)
            .finish();
        format!("{}/redirect-to?{query}", self.issuer())
    }

    /// The JWK Set `GET /jwks` answers now (`{"keys": [RSA, EC]}`), without counting a fetch.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.shared.current().jwks() })
    }

    /// The current kid of the key of `kind`.
    pub fn kid(&self, kind: KeyKind) -> String {
        self.shared.current().kid(kind).to_owned()
    }

    /// The current public key of `kind` as PEM `SubjectPublicKeyInfo` (`-----BEGIN PUBLIC KEY-----`, base64 in
    /// lines of 64 characters, every line ending with `\n`), for a verifier configured with a static key.
    pub fn public_key_pem(&self, kind: KeyKind) -> String {
        self.shared.current().public_key_pem(kind)
    }

    /// An ID token's claims: `{"iss": issuer, "aud": audience, "sub": SUBJECT, "iat": now, "nbf": now, "exp":
    /// now + 300, "jti": a new UUID}` (times in seconds since the epoch), then `extra`'s keys put over them: a
    /// key whose value is `null` is removed. `extra` must be an object or `null` (nothing to change).
    pub fn claims(&self, audience: &str, extra: Value) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({
            "iss": self.issuer(),
            "aud": audience,
            "sub": SUBJECT,
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME_SECONDS,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let object = claims.as_object_mut().unwrap();
        match extra {
            Value::Null => {}
            Value::Object(extra) => {
                for (key, value) in extra {
                    if value.is_null() {
                        object.remove(&key);
                    } else {
                        object.insert(key, value);
                    }
                }
            }
            other => panic!("extra claims must be an object or null, not {other}"),
        }
        claims
    }

    /// `claims` signed with the current key of `kind`, header `{"alg": "RS256" or "ES256", "typ": "JWT",
    /// "kid": current kid}`.
    pub fn sign(&self, kind: KeyKind, claims: &Value) -> String {
        let keys = self.shared.current();
        sign_with(&keys, kind, &header(kind, keys.kid(kind)), claims)
    }

    /// `claims` with `header` as given (an unknown kid, a wrong `alg`, no `typ`…), signed with the current key
    /// of `kind` as `kind`'s algorithm, whatever the header says.
    pub fn sign_with_header(&self, kind: KeyKind, header: Value, claims: &Value) -> String {
        sign_with(&self.shared.current(), kind, &header, claims)
    }

    /// `claims` unsigned (RFC 7519 §6): header `{"alg": "none", "typ": "JWT"}` and an empty signature, so the
    /// token ends with its second `.`.
    pub fn unsigned(&self, claims: &Value) -> String {
        format!(
            "{}.",
            signing_input(&json!({ "alg": "none", "typ": "JWT" }), claims)
        )
    }

    /// The key-confusion attack: header `{"alg": "HS256", "typ": "JWT", "kid": current RSA kid}`, signed with
    /// HMAC-SHA256 keyed with the bytes of [`OidcIssuer::public_key_pem`] for the current RSA key (the PEM text,
    /// final `\n` included), as a verifier that takes the algorithm from the token and the RSA public key as an
    /// HMAC secret would check it.
    pub fn hmac_with_public_key(&self, claims: &Value) -> String {
        let keys = self.shared.current();
        let header = json!({ "alg": "HS256", "typ": "JWT", "kid": keys.rsa_kid });
        let input = signing_input(&header, claims);
        let pem = keys.public_key_pem(KeyKind::Rsa);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pem.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", BASE64URL.encode(tag.as_ref()))
    }

    /// Replaces both keys with new ones with new kids: from now on the JWKS publishes only the new keys, and the
    /// previous ones are kept for [`OidcIssuer::sign_with_retired`] (those of earlier rotations are forgotten).
    pub fn rotate(&self) {
        let new = KeySet::generate();
        let mut keys = self.shared.keys.lock().unwrap();
        let old = std::mem::replace(&mut keys.current, new);
        keys.retired = Some(old);
    }

    /// `claims` signed with the key of `kind` published just before the last [`OidcIssuer::rotate`], with that
    /// key's kid in the header (as [`OidcIssuer::sign`]). Panics if there was no rotation.
    pub fn sign_with_retired(&self, kind: KeyKind, claims: &Value) -> String {
        let keys = self
            .shared
            .keys
            .lock()
            .unwrap()
            .retired
            .clone()
            .expect("no key was retired: call rotate() first");
        sign_with(&keys, kind, &header(kind, keys.kid(kind)), claims)
    }

    /// The retired kid of `kind` (the current one before the last [`OidcIssuer::rotate`]), if any.
    pub fn retired_kid(&self, kind: KeyKind) -> Option<String> {
        let keys = self.shared.keys.lock().unwrap();
        keys.retired.as_ref().map(|k| k.kid(kind).to_owned())
    }
}

fn header(kind: KeyKind, kid: &str) -> Value {
    json!({ "alg": kind.alg(), "typ": "JWT", "kid": kid })
}

/// `BASE64URL(header) "." BASE64URL(claims)`, the JWS Signing Input (RFC 7515 §5.1).
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        BASE64URL.encode(serde_json::to_vec(header).unwrap()),
        BASE64URL.encode(serde_json::to_vec(claims).unwrap())
    )
}

fn sign_with(keys: &KeySet, kind: KeyKind, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let signature = keys.sign(kind, input.as_bytes());
    format!("{input}.{}", BASE64URL.encode(signature))
}

impl Shared {
    fn new(issuer: String) -> Arc<Shared> {
        Arc::new(Shared {
            issuer,
            keys: Mutex::new(Keys {
                current: KeySet::generate(),
                retired: None,
            }),
            jwks_fetches: AtomicUsize::new(0),
            jwks_requests: AtomicUsize::new(0),
            jwks_failing: AtomicBool::new(false),
            jwks_held: tokio::sync::watch::Sender::new(false),
            jwks_uri: Mutex::new(None),
        })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/jwks", get(jwks))
        .route("/redirect/{hops}", get(redirect_hops))
        .route("/redirect-to", get(redirect_to))
        .with_state(shared)
}

/// A CA and a server certificate for IP 127.0.0.1 it issued (P-256, a day), made with `openssl` in `dir`
/// (also for the PostgreSQL store's TLS test):
/// the paths of the CA certificate, the server certificate and the server key.
pub fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[String]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let args = |line: &str| -> Vec<String> { line.split(' ').map(str::to_owned).collect() };
    let mut ca = args(&format!(
        "req -x509 {ec} -days 1 -keyout oidc-ca.key -out oidc-ca.pem -subj"
    ));
    ca.push("/CN=idfed test CA".to_owned());
    openssl(&ca);
    openssl(&args(&format!(
        "req {ec} -subj /CN=127.0.0.1 -keyout oidc-server.key -out oidc-server.csr"
    )));
    std::fs::write(
        path("oidc-server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&args(
        "x509 -req -in oidc-server.csr -CA oidc-ca.pem -CAkey oidc-ca.key -CAcreateserial -days 1 \
         -extfile oidc-server.ext -out oidc-server.pem",
    ));
    (
        path("oidc-ca.pem"),
        path("oidc-server.pem"),
        path("oidc-server.key"),
    )
}

async fn redirect_hops(UrlPath(hops): UrlPath<usize>) -> Response {
    let next = if hops > 1 {
        format!("/redirect/{}", hops - 1)
    } else {
        "/jwks".to_owned()
    };
    (StatusCode::FOUND, [(header::LOCATION, next)]).into_response()
}

async fn redirect_to(Query(query): Query<std::collections::HashMap<String, String>>) -> Response {
    match query.get("to") {
        Some(target) => (StatusCode::FOUND, [(header::LOCATION, target.clone())]).into_response(),
        None => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn openid_configuration(State(shared): State<Arc<Shared>>) -> Response {
    let jwks_uri = shared
        .jwks_uri
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| format!("{}/jwks", shared.issuer));
    let body = json!({
        "issuer": shared.issuer,
        "jwks_uri": jwks_uri,
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
    let mut held = shared.jwks_held.subscribe();
    let _ = held.wait_for(|held| !*held).await;
    if shared.jwks_failing.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let body = json!({ "keys": shared.current().jwks() });
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaSubjectPublicKey, UnparsedPublicKey,
    };

    fn b64(part: &str) -> Vec<u8> {
        BASE64URL
            .decode(part)
            .expect("not base64url without padding")
    }

    /// A token's header, claims, signing input and signature.
    fn split(token: &str) -> (Value, Value, String, Vec<u8>) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        (
            serde_json::from_slice(&b64(parts[0])).unwrap(),
            serde_json::from_slice(&b64(parts[1])).unwrap(),
            format!("{}.{}", parts[0], parts[1]),
            b64(parts[2]),
        )
    }

    async fn get(url: &str) -> reqwest::Response {
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "application/json");
        response
    }

    async fn fetch_jwks(issuer: &OidcIssuer) -> Vec<Value> {
        let response = get(&issuer.jwks_url()).await;
        assert_eq!(response.headers()["cache-control"], "max-age=300");
        let jwks: Value = response.json().await.unwrap();
        jwks["keys"].as_array().unwrap().clone()
    }

    fn jwk<'a>(keys: &'a [Value], kid: &str) -> Option<&'a Value> {
        keys.iter().find(|k| k["kid"] == kid)
    }

    /// Checks `token`'s signature with a published JWK, as a relying party would: the key from `n`/`e` or
    /// `x`/`y`, the algorithm from the JWK's `kty` (never from the token).
    fn verify(jwk: &Value, token: &str) -> Result<(), aws_lc_rs::error::Unspecified> {
        let (_, _, input, signature) = split(token);
        let field = |name: &str| b64(jwk[name].as_str().unwrap());
        match jwk["kty"].as_str().unwrap() {
            "RSA" => RsaPublicKeyComponents {
                n: field("n"),
                e: field("e"),
            }
            .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &signature),
            "EC" => {
                let mut point = vec![0x04];
                point.extend(field("x"));
                point.extend(field("y"));
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &signature)
            }
            other => panic!("unexpected kty {other}"),
        }
    }

    #[tokio::test]
    async fn discovery_names_the_issuer_and_its_jwks() {
        let issuer = OidcIssuer::start().await;
        let config: Value = get(&issuer.discovery_url()).await.json().await.unwrap();
        assert_eq!(config["issuer"], issuer.issuer());
        assert_eq!(config["jwks_uri"], issuer.jwks_url());
        assert_eq!(
            config["id_token_signing_alg_values_supported"],
            json!(["RS256", "ES256"])
        );
        assert_eq!(config["response_types_supported"], json!(["id_token"]));
        assert_eq!(config["subject_types_supported"], json!(["public"]));
        assert!(issuer.issuer().starts_with("http://127.0.0.1:"));
        assert_eq!(issuer.jwks_fetches(), 0);
        let missing = reqwest::get(format!("{}/nothing", issuer.issuer()))
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    }

    #[tokio::test]
    async fn rs256_and_es256_tokens_verify_with_the_published_keys() {
        let issuer = OidcIssuer::start().await;
        let keys = fetch_jwks(&issuer).await;
        assert_eq!(issuer.jwks_fetches(), 1);
        assert_eq!(keys.len(), 2);
        assert_eq!(json!({ "keys": keys }), issuer.jwks());

        let rsa = jwk(&keys, &issuer.kid(KeyKind::Rsa)).expect("RSA kid not published");
        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["use"], "sig");
        assert_eq!(rsa["alg"], "RS256");
        assert_eq!(rsa["e"], "AQAB");
        let n = b64(rsa["n"].as_str().unwrap());
        assert_eq!(n.len(), 256, "a 2048-bit modulus, no leading zero");
        assert_ne!(n[0], 0);

        let ec = jwk(&keys, &issuer.kid(KeyKind::Ec)).expect("EC kid not published");
        assert_eq!(ec["kty"], "EC");
        assert_eq!(ec["use"], "sig");
        assert_eq!(ec["alg"], "ES256");
        assert_eq!(ec["crv"], "P-256");
        assert_eq!(b64(ec["x"].as_str().unwrap()).len(), 32);
        assert_eq!(b64(ec["y"].as_str().unwrap()).len(), 32);
        assert_ne!(issuer.kid(KeyKind::Rsa), issuer.kid(KeyKind::Ec));

        let claims = issuer.claims("sts.amazonaws.com", Value::Null);
        for (kind, key, other) in [(KeyKind::Rsa, rsa, ec), (KeyKind::Ec, ec, rsa)] {
            let token = issuer.sign(kind, &claims);
            let (header, payload, input, signature) = split(&token);
            assert_eq!(
                header,
                json!({ "alg": kind.alg(), "typ": "JWT", "kid": issuer.kid(kind) })
            );
            assert_eq!(payload, claims);
            if kind == KeyKind::Ec {
                assert_eq!(signature.len(), 64, "ES256 is R || S, not DER");
            } else {
                assert_eq!(signature.len(), 256);
            }
            verify(key, &token).unwrap_or_else(|_| panic!("{kind:?} signature does not verify"));
            assert!(
                verify(other, &token).is_err(),
                "{kind:?} verifies with the other key"
            );

            // A claim changed after signing breaks the signature.
            let mut forged = claims.clone();
            forged["sub"] = json!("repo:evil/app:ref:refs/heads/main");
            let forged_payload = BASE64URL.encode(serde_json::to_vec(&forged).unwrap());
            let header_part = input.split('.').next().unwrap();
            let signature_part = token.rsplit('.').next().unwrap();
            let tampered = format!("{header_part}.{forged_payload}.{signature_part}");
            assert!(
                verify(key, &tampered).is_err(),
                "{kind:?} tampered token verifies"
            );
        }
        assert_eq!(issuer.jwks_fetches(), 1);
    }

    #[tokio::test]
    async fn rotation_replaces_the_published_keys() {
        let issuer = OidcIssuer::start().await;
        let before = fetch_jwks(&issuer).await;
        let old_rsa = issuer.kid(KeyKind::Rsa);
        let old_ec = issuer.kid(KeyKind::Ec);
        assert_eq!(issuer.retired_kid(KeyKind::Rsa), None);

        issuer.rotate();
        let after = fetch_jwks(&issuer).await;
        assert_eq!(issuer.jwks_fetches(), 2);
        assert_eq!(after.len(), 2);
        for (kind, old) in [(KeyKind::Rsa, &old_rsa), (KeyKind::Ec, &old_ec)] {
            let new = issuer.kid(kind);
            assert_ne!(&new, old);
            assert!(
                jwk(&after, old).is_none(),
                "{kind:?} old kid still published"
            );
            let new_key = jwk(&after, &new).expect("new kid not published");
            assert_eq!(issuer.retired_kid(kind).as_ref(), Some(old));

            let claims = issuer.claims("sts.amazonaws.com", Value::Null);
            let current = issuer.sign(kind, &claims);
            verify(new_key, &current).unwrap();

            let retired = issuer.sign_with_retired(kind, &claims);
            let (header, _, _, _) = split(&retired);
            assert_eq!(header["kid"], json!(old));
            verify(jwk(&before, old).unwrap(), &retired).unwrap();
            assert!(verify(new_key, &retired).is_err());
        }
    }

    #[tokio::test]
    async fn unsigned_tokens_say_none_and_end_with_a_dot() {
        let issuer = OidcIssuer::start().await;
        let claims = issuer.claims("sts.amazonaws.com", Value::Null);
        let token = issuer.unsigned(&claims);
        assert!(token.ends_with('.'), "{token}");
        let (header, payload, _, signature) = split(&token);
        assert_eq!(header, json!({ "alg": "none", "typ": "JWT" }));
        assert_eq!(payload, claims);
        assert!(signature.is_empty());
    }

    #[tokio::test]
    async fn hmac_tokens_are_keyed_with_the_rsa_public_key_pem() {
        let issuer = OidcIssuer::start().await;
        let claims = issuer.claims("sts.amazonaws.com", Value::Null);
        let token = issuer.hmac_with_public_key(&claims);
        let (header, payload, input, tag) = split(&token);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], json!(issuer.kid(KeyKind::Rsa)));
        assert_eq!(payload, claims);

        // The PEM is the published RSA key's SubjectPublicKeyInfo.
        let pem = issuer.public_key_pem(KeyKind::Rsa);
        let mut lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.remove(0), "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines.pop(), Some("-----END PUBLIC KEY-----"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(lines.iter().all(|l| l.len() <= 64));
        let der = BASE64.decode(lines.concat()).unwrap();
        let public = RsaSubjectPublicKey::from_der(&der).unwrap();
        let components = RsaPublicKeyComponents::<Vec<u8>>::from(&public);
        let keys = fetch_jwks(&issuer).await;
        let rsa = jwk(&keys, &issuer.kid(KeyKind::Rsa)).unwrap();
        assert_eq!(BASE64URL.encode(&components.n), rsa["n"]);
        assert_eq!(BASE64URL.encode(&components.e), rsa["e"]);

        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pem.as_bytes());
        aws_lc_rs::hmac::verify(&key, input.as_bytes(), &tag).expect("HMAC does not verify");
    }

    #[tokio::test]
    async fn headers_are_signed_as_given() {
        let issuer = OidcIssuer::start().await;
        let claims = issuer.claims("sts.amazonaws.com", Value::Null);
        let given = json!({ "alg": "ES256", "kid": "no-such-key" });
        let token = issuer.sign_with_header(KeyKind::Ec, given.clone(), &claims);
        let (header, _, _, _) = split(&token);
        assert_eq!(header, given);
        let keys = fetch_jwks(&issuer).await;
        verify(jwk(&keys, &issuer.kid(KeyKind::Ec)).unwrap(), &token).unwrap();
    }

    #[tokio::test]
    async fn claims_are_typical_and_can_be_changed() {
        let issuer = OidcIssuer::start().await;
        let claims = issuer.claims("sts.amazonaws.com", Value::Null);
        assert_eq!(claims["iss"], issuer.issuer());
        assert_eq!(claims["aud"], "sts.amazonaws.com");
        assert_eq!(claims["sub"], SUBJECT);
        let iat = claims["iat"].as_u64().unwrap();
        assert_eq!(claims["nbf"].as_u64(), Some(iat));
        assert_eq!(claims["exp"].as_u64(), Some(iat + LIFETIME_SECONDS));
        let jti = claims["jti"].as_str().unwrap();
        assert_ne!(jti, issuer.claims("sts.amazonaws.com", Value::Null)["jti"]);

        let changed = issuer.claims(
            "sts.amazonaws.com",
            json!({ "sub": "repo:org/other:ref:refs/heads/dev", "nbf": null, "aud": ["a", "b"], "ref": "x" }),
        );
        assert_eq!(changed["sub"], "repo:org/other:ref:refs/heads/dev");
        assert!(changed.get("nbf").is_none());
        assert_eq!(changed["aud"], json!(["a", "b"]));
        assert_eq!(changed["ref"], "x");
        assert_eq!(changed["iss"], issuer.issuer());
        assert_eq!(issuer.claims("x", json!({})).as_object().unwrap().len(), 7);
    }
}
