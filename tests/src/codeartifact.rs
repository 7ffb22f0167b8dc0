//! An AWS CodeArtifact stand-in (moto has no CodeArtifact): `GetAuthorizationToken` as AWS's API reference
//! publishes it, on a loopback port, for tests only.
//!
//! - `POST /v1/authorization-token?domain=D&domain-owner=O&duration=S`, signed with SigV4 for the service
//!   `codeartifact`: the `Authorization` header must be `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/
//!   codeartifact/aws4_request, …` (the signature itself is not checked: any key is let in). Temporary
//!   credentials carry `X-Amz-Security-Token`.
//! - `domain`: required, 2–50 characters, `[a-z][a-z0-9-]{0,48}[a-z0-9]`; `domain-owner`: optional, 12 digits;
//!   `duration`: optional, 0 or 900–43200 (0: the token ends with the caller's credentials; the stand-in, which
//!   cannot know when they end, gives 15 minutes). Anything else is `400` with `x-amzn-ErrorType:
//!   ValidationException` and `{"message"}`; a missing or malformed signature `403` `AccessDeniedException`.
//! - The answer: `200 {"authorizationToken": "…", "expiration": <epoch seconds>}` (default 12 hours).
//! - [`CodeArtifact::calls`] lists who asked for which domain (the access key id of the signature).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

/// One `GetAuthorizationToken` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The access key id the request was signed with.
    pub access_key_id: String,
    /// The region in the signature's scope.
    pub region: String,
    /// The domain asked for.
    pub domain: String,
    /// The domain owner asked for, if any.
    pub domain_owner: Option<String>,
    /// Whether temporary credentials' session token came with it.
    pub session_token: bool,
    /// The token handed out.
    pub token: String,
}

/// A running stand-in; stops when dropped.
pub struct CodeArtifact {
    address: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CodeArtifact {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CodeArtifact {
    /// Starts one on a free loopback port, on the caller's tokio runtime.
    pub async fn start() -> CodeArtifact {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/authorization-token", post(get_authorization_token))
            .with_state(calls.clone());
        let task = tokio::spawn(crate::sts_standin::serve(listener, app));
        CodeArtifact {
            address,
            calls,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The calls answered with a token, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

#[derive(Deserialize)]
struct Params {
    domain: Option<String>,
    #[serde(rename = "domain-owner")]
    domain_owner: Option<String>,
    duration: Option<String>,
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", kind),
            ("content-type", "application/json"),
        ],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn valid_domain(domain: &str) -> bool {
    let bytes = domain.as_bytes();
    (2..=50).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-'
}

async fn get_authorization_token(
    State(calls): State<Arc<Mutex<Vec<Call>>>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    // `Credential=KEY/DATE/REGION/SERVICE/aws4_request`.
    let scope = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("AWS4-HMAC-SHA256 Credential="))
        .and_then(|v| v.split([',', ' ']).next())
        .map(|scope| scope.split('/').map(str::to_owned).collect::<Vec<_>>());
    let Some(scope) = scope.filter(|s| {
        s.len() == 5 && s[3] == "codeartifact" && s[4] == "aws4_request" && !s[0].is_empty()
    }) else {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "the request is not signed with SigV4 for codeartifact",
        );
    };
    let Some(domain) = params.domain.filter(|d| valid_domain(d)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "domain must be 2-50 characters matching [a-z][a-z0-9\\-]{0,48}[a-z0-9]",
        );
    };
    if let Some(owner) = &params.domain_owner
        && !(owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "domainOwner must be 12 digits",
        );
    }
    let seconds = match params.duration.as_deref().map(str::parse::<u64>) {
        None => 12 * 3600,
        Some(Ok(0)) => 15 * 60,
        Some(Ok(s)) if (900..=43_200).contains(&s) => s,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                "durationSeconds must be 0 or 900-43200",
            );
        }
    };
    let number = calls.lock().unwrap().len() + 1;
    let token = format!("eyJ2ZXIiOjEsImlzdSI6{domain}{number:08}");
    let expiration = (SystemTime::now() + Duration::from_secs(seconds))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    calls.lock().unwrap().push(Call {
        access_key_id: scope[0].clone(),
        region: scope[2].clone(),
        domain,
        domain_owner: params.domain_owner,
        session_token: headers.contains_key("x-amz-security-token"),
        token: token.clone(),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        serde_json::json!({ "authorizationToken": token, "expiration": expiration }).to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_follow_the_published_pattern() {
        for ok in ["ab", "my-domain", "a1", &format!("a{}", "b".repeat(49))] {
            assert!(valid_domain(ok), "{ok}");
        }
        for bad in ["a", "1abc", "Abc", "ab-", "a_b", "", &"a".repeat(51)] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }
}
