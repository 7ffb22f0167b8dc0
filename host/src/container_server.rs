//! `idfed container-server CONNECTOR`: a local container-credentials endpoint, as aws-vault's and Weep's.
//!
//! It listens on 127.0.0.1 only, makes a random token, and prints the two lines every AWS SDK and the AWS
//! CLI read:
//!
//! ```text
//! export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT/
//! export AWS_CONTAINER_AUTHORIZATION_TOKEN=TOKEN
//! ```
//!
//! A `GET` with the raw token in `Authorization` is answered with the ECS shape
//! `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}`; anything else with 403 and
//! `{"Message"}`. Credentials come from the idfed server with the session kept by `idfed login`
//! ([`crate::client::credentials`]), are cached, and are fetched anew before they expire: when less than
//! [`refresh_margin`] of them remains (botocore itself refreshes when under 15 minutes remain, so the
//! margin is larger than that).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::json;
use tokio::sync::Mutex;

use crate::api::CredentialsBody;
use crate::client::ClientError;
use crate::secret::Secret;

/// The least time before expiry at which credentials are still handed out as they are.
pub const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(20 * 60);

/// When credentials lasting `duration` are fetched anew: once less than this remains. The larger of
/// 20 minutes and a fifth of the duration, but never more than half of it (short credentials would
/// otherwise be fetched on every request).
pub fn refresh_margin(duration: Duration) -> Duration {
    MIN_REFRESH_MARGIN.max(duration / 5).min(duration / 2)
}

/// Credentials fetched from the idfed server.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Secret,
    pub(crate) session_token: Secret,
    expiration: SystemTime,
    /// The text of `expiration`, as the server gave it.
    pub(crate) expiration_text: String,
    duration: Duration,
}

impl Cached {
    fn remaining(&self, now: SystemTime) -> Duration {
        self.expiration
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    fn fresh(&self, now: SystemTime) -> bool {
        self.remaining(now) > refresh_margin(self.duration)
    }
}

/// Where credentials come from (the idfed server, in use; something else in tests).
pub trait Source: Send + Sync + 'static {
    /// Fetches credentials: idfed's JSON format (`access_key_id`, `secret_access_key`,
    /// `session_token`, `expiration`, `duration_seconds`).
    fn fetch(&self) -> futures_like::BoxFuture<'_, Result<String, ClientError>>;
}

/// A boxed future (kept local: the crate has no `futures` dependency).
pub mod futures_like {
    /// A boxed, sendable future.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

/// The idfed server, through the kept session.
pub struct IdfedSource {
    /// The connector's name or id.
    pub connector: String,
    /// The duration asked for, if any.
    pub duration_seconds: Option<u32>,
    /// The justification and ticket given, if any.
    pub why: crate::client::Why,
}

impl Source for IdfedSource {
    fn fetch(&self) -> futures_like::BoxFuture<'_, Result<String, ClientError>> {
        Box::pin(crate::client::credentials(
            &self.connector,
            "json",
            self.duration_seconds,
            &self.why,
        ))
    }
}

struct Shared {
    token: Secret,
    source: Box<dyn Source>,
    cache: Mutex<Option<Cached>>,
}

impl Shared {
    /// The cached credentials, fetched anew when they are near their end. When fetching fails and the
    /// cached ones still have a minute, they are used.
    async fn credentials(&self) -> Result<Cached, ClientError> {
        let mut cache = self.cache.lock().await;
        let now = SystemTime::now();
        if let Some(cached) = cache.as_ref()
            && cached.fresh(now)
        {
            return Ok(cached.clone());
        }
        match fetch(self.source.as_ref()).await {
            Ok(fresh) => {
                tracing::info!(
                    access_key_id = %fresh.access_key_id,
                    expiration = %fresh.expiration_text,
                    "fetched credentials"
                );
                *cache = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cache.as_ref() {
                Some(cached) if cached.remaining(now) > Duration::from_secs(60) => {
                    tracing::warn!(error = %e, "refreshing failed; the cached credentials are still valid");
                    Ok(cached.clone())
                }
                _ => Err(e),
            },
        }
    }
}

/// Fetches credentials from `source` (idfed's JSON format) and reads them.
pub(crate) async fn fetch(source: &dyn Source) -> Result<Cached, ClientError> {
    let text = Secret::new(source.fetch().await?);
    let answer: CredentialsBody = serde_json::from_str(text.expose())
        .map_err(|e| ClientError(format!("unexpected credentials from the server: {e}")))?;
    let expiration = humantime::parse_rfc3339(&answer.expiration).map_err(|e| {
        ClientError(format!(
            "unexpected expiration {:?} from the server: {e}",
            answer.expiration
        ))
    })?;
    Ok(Cached {
        access_key_id: answer.access_key_id.clone(),
        secret_access_key: Secret::new(answer.secret_access_key.as_str()),
        session_token: Secret::new(answer.session_token.as_str()),
        expiration,
        expiration_text: answer.expiration.clone(),
        duration: Duration::from_secs(answer.duration_seconds.into()),
    })
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"Message": text}))).into_response()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !same(presented, shared.token.expose().as_bytes()) {
        return message(StatusCode::FORBIDDEN, "invalid authorization token");
    }
    match shared.credentials().await {
        Ok(c) => (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key.expose(),
                "Token": c.session_token.expose(),
                "Expiration": c.expiration_text,
            })),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot fetch credentials");
            message(
                StatusCode::BAD_GATEWAY,
                &format!("idfed cannot fetch credentials: {e}"),
            )
        }
    }
}

/// A new random token (32 bytes, URL-safe base64: safe in a shell and a header).
pub fn new_token() -> Result<Secret, ClientError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ClientError(format!("no randomness for the token: {e}")))?;
    Ok(Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// A running endpoint.
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The token it wants.
    pub token: Secret,
    router: Router,
    listener: tokio::net::TcpListener,
}

impl Endpoint {
    /// Binds 127.0.0.1:`port` (0 for any free port) with a new token, over `source`.
    pub async fn bind(port: u16, source: Box<dyn Source>) -> Result<Endpoint, ClientError> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .map_err(|e| ClientError(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ClientError(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        let token = new_token()?;
        let shared = Arc::new(Shared {
            token: token.clone(),
            source,
            cache: Mutex::new(None),
        });
        // Fetch once now: a session that has ended or a connector the user may not use is said at once.
        shared.credentials().await?;
        let router = Router::new()
            .route("/", get(handle))
            .fallback(|| async { message(StatusCode::NOT_FOUND, "not found: use /") })
            .with_state(shared);
        Ok(Endpoint {
            addr,
            token,
            router,
            listener,
        })
    }

    /// The `export` lines for a shell.
    pub fn exports(&self) -> String {
        format!(
            "export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{}/\nexport AWS_CONTAINER_AUTHORIZATION_TOKEN={}\n",
            self.addr,
            self.token.expose()
        )
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ClientError> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| ClientError(format!("server: {e}")))
    }
}

/// `idfed container-server`: binds, prints the exports on stdout, serves until ctrl-c or SIGTERM.
pub async fn run(
    connector: &str,
    port: u16,
    duration_seconds: Option<u32>,
    why: crate::client::Why,
) -> Result<(), ClientError> {
    let source = IdfedSource {
        connector: connector.to_owned(),
        duration_seconds,
        why,
    };
    let endpoint = Endpoint::bind(port, Box::new(source)).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(endpoint.exports().as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ClientError(format!("stdout: {e}")))?;
    }
    eprintln!(
        "idfed: serving credentials of connector {connector:?} on http://{}/ (127.0.0.1 only); set the two variables above in the shell that runs your AWS tools; ctrl-c stops",
        endpoint.addr
    );
    endpoint.serve(crate::api::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_margin(hour), Duration::from_secs(20 * 60));
        assert_eq!(
            refresh_margin(12 * hour),
            Duration::from_secs(12 * 3600 / 5)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(900)),
            Duration::from_secs(450)
        );
    }

    struct Counting(std::sync::atomic::AtomicU32, u64);

    impl Source for Counting {
        fn fetch(&self) -> futures_like::BoxFuture<'_, Result<String, ClientError>> {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let expiration = SystemTime::now() + Duration::from_secs(self.1);
            Box::pin(async move {
                Ok(json!({
                    "access_key_id": format!("ASIA{n}"),
                    "secret_access_key": "s",
                    "session_token": "t",
                    "expiration": crate::api::rfc3339(expiration),
                    "duration_seconds": 3600,
                })
                .to_string())
            })
        }
    }

    #[tokio::test]
    async fn caches_until_near_expiry() {
        let shared = Shared {
            token: Secret::new("x"),
            source: Box::new(Counting(Default::default(), 3600)),
            cache: Mutex::new(None),
        };
        assert_eq!(shared.credentials().await.unwrap().access_key_id, "ASIA0");
        assert_eq!(shared.credentials().await.unwrap().access_key_id, "ASIA0");
        // Near its end: fetched anew.
        shared.cache.lock().await.as_mut().unwrap().expiration =
            SystemTime::now() + Duration::from_secs(10 * 60);
        assert_eq!(shared.credentials().await.unwrap().access_key_id, "ASIA1");
        assert_eq!(shared.credentials().await.unwrap().access_key_id, "ASIA1");
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
