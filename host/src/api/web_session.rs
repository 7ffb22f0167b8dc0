//! The web UI's sessions: `GET|POST|DELETE /web/session`, the session cookie and its CSRF checks.
//!
//! A browser never sees its session token: it lives in the cookie [`SESSION_COOKIE`] (`Secure`, `HttpOnly`,
//! `SameSite=Strict`, `__Host-` so no other host or path can set it). Every request the cookie
//! authenticates must come from idfed's own page: a `Sec-Fetch-Site` or `Origin` of another site is
//! refused, and every request (reads too: some vend) must carry `X-CSRF-Token` — a value derived from the
//! session token, handed to the page in the session's JSON, which another site's page can neither read nor
//! compute.
//! A valid directory SSO cookie (Crowd's `crowd.token_key`, named by `[web] sso_cookie`) logs the browser
//! in without a password. Logging out pauses that (cookie [`SSO_PAUSED_COOKIE`], until the browser closes
//! or the person asks for SSO again), so that a logout lasts while Crowd's cookie does. SSO tokens are
//! only sent to the directory when they look like one, at most [`SSO_CHECKS_PER_MINUTE`] a minute per
//! client address, and a refused one is not asked about again for [`SSO_REFUSAL_MEMORY`]. A session
//! started from SSO is bound to that SSO token ([`SSO_BOUND_COOKIE`]): on any request that comes without
//! the directory's cookie (logged out of Crowd) or with another (someone else logged in to Crowd), idfed's
//! session ends with it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, ClientIp, JsonBody};
use super::openapi::ErrorBody;
use super::session::identity_body;
use super::{ApiError, AppState, rfc3339};
use crate::auth::AuthError;
use crate::model::Identity;
use crate::secret::{Secret, secrets_equal};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "__Host-idfed_session";
/// The header that proves a cookie-authenticated request came from idfed's page.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Set by a logout: no SSO login from the directory's cookie until the browser closes or SSO is asked for.
pub const SSO_PAUSED_COOKIE: &str = "__Host-idfed_sso_paused";
/// How many SSO tokens one client address may have checked with the directory a minute.
pub const SSO_CHECKS_PER_MINUTE: u32 = 30;
/// How long a token the directory refused is refused without asking again.
pub const SSO_REFUSAL_MEMORY: Duration = Duration::from_secs(5 * 60);
/// Holds a fingerprint of the SSO token a session was started from.
pub const SSO_BOUND_COOKIE: &str = "__Host-idfed_sso_bound";
const SSO_TRACKED_MAX: usize = 10_000;
const MINUTE: Duration = Duration::from_secs(60);

/// The web session routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(current, login, logout))
}

/// The CSRF token of a session: SHA-256 of a label and the session token, base64url. Unforgeable without
/// the token, which the page never has.
pub fn csrf_token(session_token: &Secret) -> String {
    let mut hash = Sha256::new();
    hash.update(b"idfed-csrf-v1\0");
    hash.update(session_token.expose().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Refuses a request another site's page made. Browsers that send `Sec-Fetch-Site` are taken at their word
/// (`same-origin`, or `none` for what the user typed); for older ones, an `Origin` must name the host the
/// request was sent to (`Host`, or the HTTP/2 authority). Not comparing `Origin` when `Sec-Fetch-Site` is
/// there keeps a reverse proxy that rewrites `Host` from breaking every change.
fn check_same_origin(headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(ApiError::CsrfFailed(
                "this request came from another site's page",
            )),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host);
        if origin_host.is_none() || origin_host != host {
            return Err(ApiError::CsrfFailed(
                "this request's Origin is not idfed's own",
            ));
        }
    }
    Ok(())
}

/// Authenticates a request by the session cookie, if it has one, with the CSRF checks; `None` without a
/// cookie.
pub async fn authenticate_cookie(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<(Secret, Identity)>, ApiError> {
    if !state.web.enabled {
        return Ok(None);
    }
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let token = Secret::new(token);
    check_same_origin(&parts.headers, &parts.uri)?;
    // Every request, reads too: some reads vend (caller-identity), and a browser without
    // Sec-Fetch-Site sends a SameSite cookie along with a sibling subdomain's <img>.
    let presented = parts.headers.get(CSRF_HEADER).ok_or(ApiError::CsrfFailed(
        "send the X-CSRF-Token header with every request made with the session cookie",
    ))?;
    if !secrets_equal(presented.as_bytes(), csrf_token(&token).as_bytes()) {
        return Err(ApiError::CsrfFailed(
            "the X-CSRF-Token header does not match the session",
        ));
    }
    if sso_ended(state, &parts.headers) {
        state.service.auth.logout(&token)?;
        return Err(ApiError::Auth(AuthError::InvalidSession));
    }
    let identity = state.service.auth.session(&token).await?;
    Ok(Some((token, identity)))
}

/// Whether the browser's session was started from an SSO token that it no longer brings (logged out of
/// the directory, or someone else logged in there): then the session ends with it.
fn sso_ended(state: &AppState, headers: &HeaderMap) -> bool {
    cookie(headers, SSO_BOUND_COOKIE).is_some_and(|bound| {
        sso_token(state, headers).map(sso_fingerprint).as_deref() != Some(bound)
    })
}

/// A `__Host-` cookie: `Secure`, `HttpOnly`, `SameSite=Strict`, `Path=/`; with `Max-Age` if given (none:
/// until the browser closes).
fn host_cookie(name: &str, value: &str, max_age_seconds: Option<u64>) -> HeaderValue {
    let max_age = max_age_seconds
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("__Host-idfed_session=; Path=/; Max-Age=0"))
}

fn set_cookie(value: &str, max_age_seconds: u64) -> HeaderValue {
    host_cookie(SESSION_COOKIE, value, Some(max_age_seconds))
}

fn add_cookie(response: &mut Response, cookie: HeaderValue) {
    response.headers_mut().append(header::SET_COOKIE, cookie);
}

/// Keeps SSO from being a free way to make idfed call the directory: a client address may have at most
/// [`SSO_CHECKS_PER_MINUTE`] tokens checked a minute, and a refused token is refused without asking again
/// for [`SSO_REFUSAL_MEMORY`] (a browser's stale cookie is checked once, not on every page load). Kept
/// apart from the password lockout, which a stale cookie must not feed.
#[derive(Debug, Default)]
pub struct SsoGuard {
    inner: Mutex<SsoGuardState>,
}

#[derive(Debug, Default)]
struct SsoGuardState {
    /// Per address: when its minute started and how many checks it had.
    addresses: HashMap<String, (Instant, u32)>,
    /// SHA-256 of refused tokens, and until when they stay refused.
    refused: HashMap<[u8; 32], Instant>,
}

impl SsoGuard {
    fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// Whether `token` may be checked with the directory now; counts the check.
    pub fn allow(&self, token: &str, address: Option<&str>) -> bool {
        self.allow_at(token, address, Instant::now())
    }

    fn allow_at(&self, token: &str, address: Option<&str>, now: Instant) -> bool {
        let plausible = (8..=256).contains(&token.len())
            && token.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.')
            });
        if !plausible {
            return false;
        }
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .refused
            .get(&Self::digest(token))
            .is_some_and(|until| *until > now)
        {
            return false;
        }
        if state.addresses.len() >= SSO_TRACKED_MAX {
            state
                .addresses
                .retain(|_, (start, _)| now.duration_since(*start) < MINUTE);
            if state.addresses.len() >= SSO_TRACKED_MAX {
                state.addresses.clear();
            }
        }
        let entry = state
            .addresses
            .entry(address.unwrap_or("-").to_owned())
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= MINUTE {
            *entry = (now, 0);
        }
        if entry.1 >= SSO_CHECKS_PER_MINUTE {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Remembers that the directory refused `token`.
    pub fn refused(&self, token: &str) {
        self.refused_at(token, Instant::now());
    }

    fn refused_at(&self, token: &str, now: Instant) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if state.refused.len() >= SSO_TRACKED_MAX {
            state.refused.retain(|_, until| *until > now);
            if state.refused.len() >= SSO_TRACKED_MAX {
                state.refused.clear();
            }
        }
        state
            .refused
            .insert(Self::digest(token), now + SSO_REFUSAL_MEMORY);
    }
}

/// The directory's SSO token in the request, when SSO is on.
fn sso_token<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = state.web.sso_cookie.as_str();
    if name.is_empty() || state.service.auth.directory_kind() != "crowd" {
        return None;
    }
    cookie(headers, name)
}

/// What [`SSO_BOUND_COOKIE`] holds for an SSO token: not the token, and not usable as one.
fn sso_fingerprint(sso_token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"idfed-sso-bound-v1\0");
    hash.update(sso_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash.finalize()[..16])
}

/// A session started from an SSO token, with that token's fingerprint.
struct SsoSession {
    token: Secret,
    identity: Identity,
    fingerprint: String,
}

/// Logs in from the directory's SSO cookie, if SSO is on, the browser has one, and the guard lets it be
/// checked; `None` otherwise or when the directory refuses it.
async fn sso_login(
    state: &AppState,
    headers: &HeaderMap,
    ip: Option<&str>,
) -> Result<Option<SsoSession>, ApiError> {
    let Some(sso_token) = sso_token(state, headers) else {
        return Ok(None);
    };
    if !state.sso_guard.allow(sso_token, ip) {
        return Ok(None);
    }
    match state
        .service
        .auth
        .login_sso(&Secret::new(sso_token), ip)
        .await
    {
        Ok((token, identity)) => Ok(Some(SsoSession {
            token,
            identity,
            fingerprint: sso_fingerprint(sso_token),
        })),
        Err(AuthError::InvalidSession | AuthError::Unsupported) => {
            state.sso_guard.refused(sso_token);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The answer for a live session; with `Set-Cookie` when `new`.
fn session_response(state: &AppState, token: &Secret, identity: &Identity, new: bool) -> Response {
    let sessions = state.service.auth.sessions();
    let expires = sessions
        .get(token)
        .ok()
        .flatten()
        .map_or_else(|| SystemTime::now() + sessions.ttl(), |s| s.expires);
    let mut response = Json(WebSessionBody {
        user: identity_body(identity),
        csrf_token: csrf_token(token),
        expires: rfc3339(expires),
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if new {
        let max_age = expires
            .duration_since(SystemTime::now())
            .map_or(0, |d| d.as_secs());
        add_cookie(&mut response, set_cookie(token.expose(), max_age));
    }
    response
}

fn clear_cookie(mut response: Response) -> Response {
    add_cookie(&mut response, set_cookie("", 0));
    response
}

pub use idfed_api::identity::{WebLogin, WebSessionBody};

/// The browser's session: from the session cookie, or started from a valid directory SSO cookie.
#[utoipa::path(
    get,
    path = "/api/v1/web/session",
    tag = "web",
    security((), ("cookie" = [])),
    responses(
        (status = 200, description = "The session (a new one, with `Set-Cookie`, from an SSO cookie)", body = WebSessionBody),
        (status = 401, description = "No live session and no valid SSO cookie (`missing_credentials`, `invalid_session`)", body = ErrorBody),
        (status = 403, description = "Another site's request (`csrf_failed`)", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
    )
)]
async fn current(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.web.enabled {
        return Err(ApiError::NotFound);
    }
    check_same_origin(&headers, &uri)?;
    let auth = &state.service.auth;
    let mut stale = false;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let token = Secret::new(token);
        if sso_ended(&state, &headers) {
            // Logged out of the directory, or someone else logged in there: this session goes too.
            auth.logout(&token)?;
            stale = true;
        } else {
            match auth.session(&token).await {
                Ok(identity) => return Ok(session_response(&state, &token, &identity, false)),
                Err(AuthError::InvalidSession) => stale = true,
                Err(e) => return Err(e.into()),
            }
        }
    }
    if cookie(&headers, SSO_PAUSED_COOKIE).is_none()
        && let Some(sso) = sso_login(&state, &headers, ip.as_deref()).await?
    {
        return Ok(sso_session_response(&state, &headers, &sso));
    }
    let refusal = if stale {
        ApiError::Auth(AuthError::InvalidSession)
    } else {
        ApiError::MissingCredentials
    };
    let mut response = refusal.into_response();
    if stale {
        response = clear_cookie(response);
        forget_sso_binding(&mut response, &headers);
    }
    Ok(response)
}

/// A new session from SSO, bound to its token.
fn sso_session_response(state: &AppState, headers: &HeaderMap, sso: &SsoSession) -> Response {
    let mut response = session_response(state, &sso.token, &sso.identity, true);
    // As long-lived as the session's cookie, so that the session never outlives its binding.
    let ttl = state.service.auth.sessions().ttl().as_secs();
    add_cookie(
        &mut response,
        host_cookie(SSO_BOUND_COOKIE, &sso.fingerprint, Some(ttl)),
    );
    if cookie(headers, SSO_PAUSED_COOKIE).is_some() {
        add_cookie(&mut response, host_cookie(SSO_PAUSED_COOKIE, "", Some(0)));
    }
    response
}

/// Clears the SSO binding cookie, if the browser has one.
fn forget_sso_binding(response: &mut Response, headers: &HeaderMap) {
    if cookie(headers, SSO_BOUND_COOKIE).is_some() {
        add_cookie(response, host_cookie(SSO_BOUND_COOKIE, "", Some(0)));
    }
}

/// Logs a browser in: the session goes into the cookie, never into the page. A session the browser
/// already had is ended.
#[utoipa::path(
    post,
    path = "/api/v1/web/session",
    tag = "web",
    request_body = WebLogin,
    responses(
        (status = 200, description = "A new session, with `Set-Cookie`", body = WebSessionBody),
        (status = 400, description = "No user name, or no password (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "A wrong user name or password (`invalid_credentials`), or no valid SSO cookie (`invalid_session`)", body = ErrorBody),
        (status = 403, description = "Another site's request (`csrf_failed`)", body = ErrorBody),
        (status = 404, description = "The web UI is turned off (`not_found`)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`)", body = ErrorBody),
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(mut request): JsonBody<WebLogin>,
) -> Result<Response, ApiError> {
    if !state.web.enabled {
        return Err(ApiError::NotFound);
    }
    check_same_origin(&headers, &uri)?;
    // A form post without a content type needs no CORS preflight: JSON only, said so.
    if headers.get(header::CONTENT_TYPE).is_none() {
        return Err(ApiError::UnsupportedMediaType);
    }
    let auth = &state.service.auth;
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        // Best effort: the new session stands whatever happens to the old one.
        let _ = auth.logout(&Secret::new(old));
    }
    if request.sso {
        let sso = sso_login(&state, &headers, ip.as_deref())
            .await?
            .ok_or(ApiError::Auth(AuthError::InvalidSession))?;
        return Ok(sso_session_response(&state, &headers, &sso));
    }
    let username = request
        .username
        .take()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ApiError::InvalidRequest("username is empty".into()))?;
    let password = request
        .password
        .as_mut()
        .map(|p| Secret::new(std::mem::take(p)))
        .ok_or_else(|| ApiError::InvalidRequest("password is missing".into()))?;
    let (token, identity) = auth.login(&username, &password, ip.as_deref()).await?;
    let mut response = session_response(&state, &token, &identity, true);
    if cookie(&headers, SSO_PAUSED_COOKIE).is_some() {
        add_cookie(&mut response, host_cookie(SSO_PAUSED_COOKIE, "", Some(0)));
    }
    forget_sso_binding(&mut response, &headers);
    Ok(response)
}

/// Logs the browser out: ends the session, clears the cookie, and pauses SSO from the directory's cookie.
#[utoipa::path(
    delete,
    path = "/api/v1/web/session",
    tag = "web",
    security(("cookie" = [])),
    responses(
        (status = 204, description = "The session is ended, the cookie cleared and SSO paused"),
        (status = 401, description = "No live session", body = ErrorBody),
        (status = 403, description = "No or a wrong `X-CSRF-Token`, or another site's request (`csrf_failed`)", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
    )
)]
async fn logout(State(state): State<AppState>, who: Authenticated) -> Result<Response, ApiError> {
    if let Some(token) = &who.session_token {
        state.service.auth.logout(token)?;
    }
    let mut response = clear_cookie(StatusCode::NO_CONTENT.into_response());
    add_cookie(&mut response, host_cookie(SSO_PAUSED_COOKIE, "1", None));
    add_cookie(&mut response, host_cookie(SSO_BOUND_COOKIE, "", Some(0)));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn cookies_are_read_by_exact_name_across_headers() {
        let h = headers(&[
            ("cookie", "a=1; __Host-idfed_session_x=no"),
            (
                "cookie",
                "crowd.token_key=\"tok\"; __Host-idfed_session=idfs_abc",
            ),
        ]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("idfs_abc"));
        assert_eq!(cookie(&h, "crowd.token_key"), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
        assert_eq!(cookie(&headers(&[("cookie", "a=")]), "a"), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_hide_the_token() {
        let a = csrf_token(&Secret::new("idfs_one"));
        let b = csrf_token(&Secret::new("idfs_two"));
        assert_ne!(a, b);
        assert_eq!(a, csrf_token(&Secret::new("idfs_one")));
        assert!(!a.contains("idfs_one"));
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn other_sites_requests_are_refused() {
        let check =
            |pairs: &[(&str, &str)]| check_same_origin(&headers(pairs), &Uri::from_static("/"));
        assert!(check(&[("sec-fetch-site", "same-origin")]).is_ok());
        assert!(check(&[("sec-fetch-site", "none")]).is_ok());
        assert!(check(&[]).is_ok());
        assert!(check(&[("sec-fetch-site", "cross-site")]).is_err());
        assert!(check(&[("sec-fetch-site", "same-site")]).is_err());
        assert!(
            check(&[
                ("host", "127.0.0.1:8443"),
                ("origin", "http://127.0.0.1:8443")
            ])
            .is_ok()
        );
        assert!(
            check(&[
                ("host", "127.0.0.1:8443"),
                ("origin", "https://evil.example")
            ])
            .is_err()
        );
        assert!(check(&[("host", "127.0.0.1:8443"), ("origin", "null")]).is_err());
        // A browser that says where the request came from is believed over a Host a proxy rewrote.
        let proxied = [
            ("host", "backend:8443"),
            ("origin", "https://idfed.example.com"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert!(check(&proxied).is_ok());
        // HTTP/2 has no Host header: the authority stands in.
        let h2 = check_same_origin(
            &headers(&[("origin", "https://idfed.example.com")]),
            &Uri::from_static("https://idfed.example.com/api/v1/web/session"),
        );
        assert!(h2.is_ok());
        let h2_other = check_same_origin(
            &headers(&[("origin", "https://evil.example")]),
            &Uri::from_static("https://idfed.example.com/api/v1/web/session"),
        );
        assert!(h2_other.is_err());
    }

    #[test]
    fn the_sso_guard_limits_checks_per_address_and_remembers_refusals() {
        let guard = SsoGuard::default();
        let now = Instant::now();
        assert!(!guard.allow_at("short", Some("a"), now), "not a token");
        assert!(!guard.allow_at("has spaces in it", Some("a"), now));
        assert!(!guard.allow_at(&"x".repeat(300), Some("a"), now));
        for i in 0..SSO_CHECKS_PER_MINUTE {
            assert!(
                guard.allow_at(&format!("token-{i:04}"), Some("a"), now),
                "{i}"
            );
        }
        assert!(
            !guard.allow_at("token-more", Some("a"), now),
            "over the limit"
        );
        assert!(
            guard.allow_at("token-more", Some("b"), now),
            "another address"
        );
        assert!(
            guard.allow_at("token-more", Some("a"), now + MINUTE),
            "a new minute"
        );
        guard.refused_at("stale-token", now);
        assert!(!guard.allow_at("stale-token", Some("c"), now + MINUTE));
        assert!(guard.allow_at("stale-token", Some("c"), now + SSO_REFUSAL_MEMORY + MINUTE));
    }

    #[test]
    fn the_cookie_is_secure_http_only_and_strict() {
        let value = set_cookie("idfs_x", 60);
        let value = value.to_str().unwrap();
        for part in [
            "__Host-idfed_session=idfs_x",
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=60",
        ] {
            assert!(value.contains(part), "{value}");
        }
    }
}
