//! Extractors: the authenticated caller ([`Authenticated`]) and JSON bodies ([`JsonBody`]) whose every
//! rejection is an [`ApiError`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::model::{Caller, Identity};
use crate::secret::Secret;
use crate::store::Store;

/// The prefix of idfed session tokens.
pub const SESSION_PREFIX: &str = "idfs_";
/// The prefix of system-scope API keys.
pub const API_KEY_PREFIX: &str = "idfed_";

/// The caller, authenticated by a session token, an API key, a workload's OIDC token (all three `Bearer`),
/// HTTP Basic, or (without an `Authorization` header) the web UI's session cookie.
#[derive(Debug)]
pub struct Authenticated {
    /// Who, from where.
    pub caller: Caller,
    /// The session token, when the caller used one (for logout).
    pub session_token: Option<Secret>,
}

/// The client's address ([`super::ClientAddr`]: the peer, or the client a trusted proxy names).
pub fn source_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<super::ClientAddr>()
        .map(|super::ClientAddr(addr)| addr.to_string())
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(256).collect())
}

/// Authenticates a token (a session token, an API key, or a workload's OIDC token) as the caller.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<Identity, ApiError> {
    if crate::auth::workload::looks_like_jwt(token) {
        Ok(Identity::Workload(
            state.service.workload.verify(token).await?,
        ))
    } else if token.starts_with(SESSION_PREFIX) {
        Ok(state.service.auth.session(&Secret::new(token)).await?)
    } else if token.starts_with(API_KEY_PREFIX) {
        let key = state
            .service
            .store
            .authenticate_api_key(token)
            .map_err(|e| ApiError::Unavailable(format!("API key lookup: {e}")))?
            .ok_or(ApiError::InvalidApiKey)?;
        Ok(Identity::System {
            key_id: key.id,
            key_name: key.name,
            connectors: key.connectors,
        })
    } else {
        Err(ApiError::Auth(crate::auth::AuthError::InvalidSession))
    }
}

/// A caller for `identity` from the request's connection and headers.
pub fn caller(parts: &Parts, identity: Identity) -> Caller {
    Caller {
        identity,
        source_ip: source_ip(parts),
        user_agent: user_agent(&parts.headers),
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            // A browser: the session cookie set by `POST /api/v1/web/session`, with CSRF checks.
            let (token, identity) = super::web_session::authenticate_cookie(parts, state)
                .await?
                .ok_or(ApiError::MissingCredentials)?;
            return Ok(Authenticated {
                caller: caller(parts, identity),
                session_token: Some(token),
            });
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::InvalidRequest("the Authorization header is not ASCII".into()))?
            .trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if rest.is_empty() {
                return Err(ApiError::MissingCredentials);
            }
            let identity = authenticate_token(state, rest).await?;
            let session_token = rest.starts_with(SESSION_PREFIX).then(|| Secret::new(rest));
            Ok(Authenticated {
                caller: caller(parts, identity),
                session_token,
            })
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    ApiError::InvalidRequest(
                        "the Basic credentials are not base64 of user:password".into(),
                    )
                })?;
            let decoded = Secret::new(decoded);
            let (user, password) = decoded.expose().split_once(':').ok_or_else(|| {
                ApiError::InvalidRequest(
                    "the Basic credentials are not base64 of user:password".into(),
                )
            })?;
            let ip = source_ip(parts);
            let identity = state
                .service
                .auth
                .authenticate_password(user, &Secret::new(password), ip.as_deref())
                .await?;
            Ok(Authenticated {
                caller: caller(parts, identity),
                session_token: None,
            })
        } else {
            Err(ApiError::InvalidRequest(
                "unsupported Authorization scheme: use Bearer or Basic".into(),
            ))
        }
    }
}

/// A JSON object as the body; an empty body reads as `{}`. Rejections: 413 over the limit, 415 for another
/// content type, 422 (`invalid_json`) for JSON that is not an object of the expected shape.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let json = content_type
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .map(|v| {
                    let v = v.trim().to_ascii_lowercase();
                    v == "application/json"
                        || (v.starts_with("application/") && v.ends_with("+json"))
                })
                .unwrap_or(false);
            if !json {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(ApiError::from_body_rejection)?;
        // Every body idfed takes is an object; serde would otherwise read a struct from an array too
        // (`[900, null, "env"]` as a credentials request), so a body is refused unless it starts as one.
        let bytes: &[u8] = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => b"{}",
            Some(b'{') => &bytes,
            Some(_) => {
                return Err(ApiError::UnreadableJson(
                    "the body must be a JSON object".into(),
                ));
            }
        };
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::UnreadableJson(format!("the body is not valid: {e}")))
    }
}

/// The client's address ([`source_ip`]; none in tests without a connection).
#[derive(Debug)]
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(source_ip(parts)))
    }
}
