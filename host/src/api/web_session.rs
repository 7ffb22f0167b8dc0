//! The web UI's sessions: `GET|POST|DELETE /web/session`, the session cookie and its CSRF checks.
//!
//! A browser never sees its session token: it lives in the cookie [`SESSION_COOKIE`] (`Secure`, `HttpOnly`,
//! `SameSite=Strict`, `__Host-` so no other host or path can set it). Every request the cookie
//! authenticates must come from idfed's own page: a `Sec-Fetch-Site` or `Origin` of another site is
//! refused, and any method but GET/HEAD must carry `X-CSRF-Token` — a value derived from the session token,
//! handed to the page in the session's JSON, which another site's page can neither read nor compute.
//! A valid directory SSO cookie (Crowd's `crowd.token_key`, named by `[web] sso_cookie`) logs the browser
//! in without a password.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, ClientIp, JsonBody};
use super::openapi::ErrorBody;
use super::session::identity_json;
use super::{ApiError, AppState, rfc3339};
use crate::auth::AuthError;
use crate::model::Identity;
use crate::secret::Secret;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "__Host-idfed_session";
/// The header that proves a cookie-authenticated request came from idfed's page.
pub const CSRF_HEADER: &str = "x-csrf-token";

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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authenticates a request by the session cookie, if it has one, with the CSRF checks; `None` without a
/// cookie.
pub async fn authenticate_cookie(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<(Secret, Identity)>, ApiError> {
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let token = Secret::new(token);
    check_same_origin(&parts.headers, &parts.uri)?;
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        let presented = parts.headers.get(CSRF_HEADER).ok_or(ApiError::CsrfFailed(
            "send the X-CSRF-Token header with every change made with the session cookie",
        ))?;
        if !constant_time_eq(presented.as_bytes(), csrf_token(&token).as_bytes()) {
            return Err(ApiError::CsrfFailed(
                "the X-CSRF-Token header does not match the session",
            ));
        }
    }
    let identity = state.service.auth.session(&token).await?;
    Ok(Some((token, identity)))
}

fn set_cookie(value: &str, max_age_seconds: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("__Host-idfed_session=; Path=/; Max-Age=0"))
}

/// The answer for a live session; with `Set-Cookie` when `new`.
fn session_response(state: &AppState, token: &Secret, identity: &Identity, new: bool) -> Response {
    let sessions = state.service.auth.sessions();
    let expires = sessions
        .get(token)
        .ok()
        .flatten()
        .map_or_else(|| SystemTime::now() + sessions.ttl(), |s| s.expires);
    let mut response = Json(json!({
        "user": identity_json(identity),
        "csrf_token": csrf_token(token),
        "expires": rfc3339(expires),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if new {
        let max_age = expires
            .duration_since(SystemTime::now())
            .map_or(0, |d| d.as_secs());
        response
            .headers_mut()
            .insert(header::SET_COOKIE, set_cookie(token.expose(), max_age));
    }
    response
}

fn clear_cookie(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    response
}

/// A web session.
#[derive(ToSchema)]
#[allow(dead_code)]
struct WebSessionBody {
    /// Who is logged in (as `GET /me` answers).
    user: Value,
    /// The value to send as `X-CSRF-Token` with every change.
    csrf_token: String,
    /// When the session ends (RFC 3339).
    expires: String,
}

/// The browser's session: from the session cookie, or started from a valid directory SSO cookie.
#[utoipa::path(
    get,
    path = "/web/session",
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
    check_same_origin(&headers, &uri)?;
    let auth = &state.service.auth;
    let mut stale = false;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let token = Secret::new(token);
        match auth.session(&token).await {
            Ok(identity) => return Ok(session_response(&state, &token, &identity, false)),
            Err(AuthError::InvalidSession) => stale = true,
            Err(e) => return Err(e.into()),
        }
    }
    let sso = Some(state.web.sso_cookie.as_str())
        .filter(|name| !name.is_empty() && auth.directory_kind() == "crowd");
    if let Some(sso_token) = sso.and_then(|name| cookie(&headers, name)) {
        match auth.login_sso(&Secret::new(sso_token), ip.as_deref()).await {
            Ok((token, identity)) => return Ok(session_response(&state, &token, &identity, true)),
            Err(AuthError::InvalidSession | AuthError::Unsupported) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let refusal = if stale {
        ApiError::Auth(AuthError::InvalidSession)
    } else {
        ApiError::MissingCredentials
    };
    Ok(if stale {
        clear_cookie(refusal.into_response())
    } else {
        refusal.into_response()
    })
}

/// A login from the web UI.
#[derive(Deserialize, ToSchema)]
struct WebLogin {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: Secret,
}

/// Logs a browser in: the session goes into the cookie, never into the page.
#[utoipa::path(
    post,
    path = "/web/session",
    tag = "web",
    request_body = WebLogin,
    responses(
        (status = 200, description = "A new session, with `Set-Cookie`", body = WebSessionBody),
        (status = 400, description = "An empty user name (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "A wrong user name or password (`invalid_credentials`)", body = ErrorBody),
        (status = 403, description = "Another site's request (`csrf_failed`)", body = ErrorBody),
        (status = 429, description = "Too many failed logins (`too_many_attempts`), with `Retry-After`", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`unreadable_json`)", body = ErrorBody),
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(request): JsonBody<WebLogin>,
) -> Result<Response, ApiError> {
    check_same_origin(&headers, &uri)?;
    if request.username.trim().is_empty() {
        return Err(ApiError::InvalidRequest("username is empty".into()));
    }
    let (token, identity) = state
        .service
        .auth
        .login(&request.username, &request.password, ip.as_deref())
        .await?;
    Ok(session_response(&state, &token, &identity, true))
}

/// Logs the browser out: ends the session and clears the cookie.
#[utoipa::path(
    delete,
    path = "/web/session",
    tag = "web",
    security(("cookie" = [])),
    responses(
        (status = 204, description = "The session is ended and the cookie cleared"),
        (status = 401, description = "No live session", body = ErrorBody),
        (status = 403, description = "No or a wrong `X-CSRF-Token`, or another site's request (`csrf_failed`)", body = ErrorBody),
        (status = 503, description = "The directory or the store cannot be used now", body = ErrorBody),
    )
)]
async fn logout(State(state): State<AppState>, who: Authenticated) -> Result<Response, ApiError> {
    if let Some(token) = &who.session_token {
        state.service.auth.logout(token)?;
    }
    Ok(clear_cookie(StatusCode::NO_CONTENT.into_response()))
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
