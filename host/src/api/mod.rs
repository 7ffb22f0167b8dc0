//! idfed's HTTP API (axum), under `/api/v1`, with `/healthz`, `/readyz` and `/metrics` beside it.
//!
//! Every error is JSON `{"error": {"code": "...", "message": "..."}}` (see [`ApiError`]); every response
//! carries an `x-request-id`; bodies are limited and requests time out. Callers authenticate with
//! `Authorization: Bearer <idfs_… session token | idfed_… API key>` or HTTP Basic. Logs hold no password,
//! token, secret or credential: headers and bodies are never logged.

mod admin;
mod approvals;
mod client_addr;
mod connectors;
pub mod console;
mod container;
mod error;
mod extract;
mod http_guard;
mod idle_body;
pub mod metrics;
pub mod openapi;
mod server;
pub mod service_tokens;
mod session;
pub mod web;
pub mod web_session;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use connectors::{CredentialsBody, Format, render, shell_quote};
pub use error::{ApiError, error_body};
pub use extract::{API_KEY_PREFIX, Authenticated, SESSION_PREFIX};
pub use server::{load_tls, serve, shutdown_signal};
pub use session::{IdentityBody, LoginResponse};

use crate::config::{ServerConfig, WebConfig};
use crate::model::Caller;
use crate::secret::Secret;
use crate::service::Service;
use crate::store::Store;
use crate::vend::{VendError, VendOptions, Vended};
pub use client_addr::{ClientAddr, TrustedProxies};
use idle_body::IdleTimeoutBody;

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Limits applied to every request.
#[derive(Clone, Copy, Debug)]
pub struct ApiLimits {
    /// The largest body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// How long a request may take.
    pub request_timeout: Duration,
    /// How long a request body may pause before it is refused (`body_timeout`, 408).
    pub body_timeout: Duration,
    /// How many TLS handshakes may run at once.
    pub max_tls_handshakes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        let server = ServerConfig::default();
        ApiLimits::from(&server)
    }
}

impl From<&ServerConfig> for ApiLimits {
    fn from(server: &ServerConfig) -> Self {
        ApiLimits {
            body_limit_bytes: server.body_limit_bytes,
            request_timeout: Duration::from_secs(server.request_timeout_seconds),
            body_timeout: Duration::from_secs(server.body_timeout_seconds),
            max_tls_handshakes: server.max_tls_handshakes,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub service: Arc<Service>,
    /// The limits.
    pub limits: ApiLimits,
    /// The web UI's settings.
    pub web: Arc<WebConfig>,
    /// What limits logins from the directory's SSO cookie.
    pub sso_guard: Arc<web_session::SsoGuard>,
    /// The token `/metrics` asks for, if any.
    pub metrics_token: Option<Arc<Secret>>,
    /// The proxies whose forwarding headers name the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// How ECR and CodeArtifact are reached for their tokens.
    pub services: Arc<service_tokens::ServiceEndpoints>,
}

impl AppState {
    /// State over `service`, with `limits`.
    pub fn new(service: Arc<Service>, limits: ApiLimits) -> Self {
        AppState {
            service,
            limits,
            web: Arc::new(WebConfig::default()),
            sso_guard: Arc::default(),
            metrics_token: None,
            trusted_proxies: Arc::default(),
            services: Arc::default(),
        }
    }

    /// The same state with `/metrics` behind this token (open with none).
    pub fn with_metrics_token(mut self, token: Option<Secret>) -> Self {
        self.metrics_token = token.map(Arc::new);
        self
    }

    /// The same state with the client's address read from these proxies' forwarding headers.
    pub fn with_trusted_proxies(mut self, networks: Vec<ipnet::IpNet>) -> Self {
        self.trusted_proxies = Arc::new(TrustedProxies::new(networks));
        self
    }

    /// The same state reaching ECR and CodeArtifact at `endpoints` (AWS's regional ones where it names
    /// none), in `default_region` for accounts that name none.
    pub fn with_service_endpoints(
        mut self,
        endpoints: &crate::config::EndpointsConfig,
        default_region: String,
    ) -> Self {
        self.services = Arc::new(service_tokens::ServiceEndpoints::new(
            endpoints,
            default_region,
        ));
        self
    }

    /// The same state with these web UI settings.
    pub fn with_web(mut self, web: WebConfig) -> Self {
        self.web = Arc::new(web);
        self
    }

    /// Vends, counting and timing the outcome.
    pub async fn vend(
        &self,
        caller: &Caller,
        connector: &str,
        options: VendOptions,
    ) -> Result<Vended, ApiError> {
        let started = Instant::now();
        let result = self.service.vendor.vend(caller, connector, options).await;
        let took = started.elapsed();
        match &result {
            Ok(vended) => {
                tracing::info!(
                    request_id = %vended.request_id,
                    caller = %caller.display_name(),
                    connector = %vended.connector_name,
                    access_key_id = %vended.credentials.access_key_id,
                    duration_seconds = vended.duration_seconds,
                    "credentials vended"
                );
                self.service
                    .metrics
                    .vend(Some(&vended.connector_name), Ok(()), took);
            }
            Err(e) => {
                let label = match e {
                    VendError::NotFound(_) => None,
                    _ => self
                        .service
                        .store
                        .get_connector(connector)
                        .ok()
                        .flatten()
                        .map(|c| c.name),
                };
                tracing::info!(
                    caller = %caller.display_name(),
                    connector = label.as_deref().unwrap_or("_unknown"),
                    code = e.code(),
                    "vend refused"
                );
                self.service.metrics.vend(label.as_deref(), Err(e), took);
            }
        }
        result.map_err(ApiError::from)
    }
}

/// A time as RFC 3339 in UTC, to the second (`2026-11-30T12:47:53Z`).
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Every route, documented: `/api/v1/…`, the web UI (`/`, `/assets/…`), `/healthz`, `/readyz`, `/metrics`. Each route is added with
/// `routes!`, which serves a handler at the method and path of its `#[utoipa::path]` and adds the same
/// operation to the OpenAPI document ([`openapi`]), so no route can be served undocumented.
pub fn routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .merge(session::router())
        .merge(approvals::router())
        .merge(admin::router())
        .merge(connectors::router())
        .merge(container::router())
        .merge(console::router())
        .merge(service_tokens::router())
        .merge(web_session::router())
        .routes(routes!(openapi::openapi_json));
    // Merged, not nested: the API's paths are written whole, since `nest` wraps each nested route in two
    // more services (the prefix stripped from the URI, the nesting recorded) run on every request.
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api)
        .merge(web::router())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics::metrics))
}

/// The whole application: `/api/v1/…`, `/healthz`, `/readyz`, `/metrics` (see [`routes`]).
///
/// What every request passes through (request id, trace span, the request timeout, [`edge`]) wraps the
/// routed application once, not each route: `Router::layer` boxes each layer around every route, and each
/// box is an allocation and a clone a request. Measured on a cached vend: 162 → 132 µs of server CPU.
pub fn app(state: AppState) -> Router {
    let limits = state.limits;
    let edge_state = Edge {
        trusted_proxies: state.trusted_proxies.clone(),
        body_timeout: limits.body_timeout,
    };
    let (router, _) = routes().split_for_parts();
    let routed = router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .with_state(state);
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // Method, path and request id only: never headers, query or body.
                let id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(middleware::from_fn_with_state(edge_state, edge))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.request_timeout,
        ))
        .service(routed);
    Router::new().fallback_service(stack)
}

/// The edge's settings.
#[derive(Clone)]
struct Edge {
    trusted_proxies: Arc<TrustedProxies>,
    body_timeout: Duration,
}

/// One middleware for what every request needs around its handler: the client's address (from trusted
/// proxies' headers), a request body that fails to read once it pauses longer than `body_timeout`
/// (`body_timeout`, 408), error responses made outside the handlers as JSON errors, and the security
/// headers. One middleware, because each costs a boxed service and a boxed future a request.
async fn edge(State(edge): State<Edge>, mut request: Request, next: Next) -> Response {
    client_addr::resolve(&edge.trusted_proxies, &mut request);
    let request =
        request.map(|body| axum::body::Body::new(IdleTimeoutBody::new(edge.body_timeout, body)));
    let mut response = as_json_error(next.run(request).await);
    web::add_security_headers(response.headers_mut());
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// An error response made outside the handlers (405, a timeout, a body over the limit…) as the API's JSON
/// error; any other response as it is.
fn as_json_error(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as application/json",
        ),
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => {
            ("timeout", "the request took too long")
        }
        s if s.is_client_error() => ("invalid_request", "the request is not valid"),
        _ => ("internal_error", "idfed could not complete the request"),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let mut fresh = (status, Json(error_body(code, message))).into_response();
    for (name, value) in parts.headers.iter() {
        fresh.headers_mut().entry(name).or_insert(value.clone());
    }
    fresh
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "idfed is up", body = idfed_api::Health),
    )
)]
async fn healthz() -> Json<idfed_api::Health> {
    Json(idfed_api::Health {
        status: "ok".into(),
    })
}

/// `GET /readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "idfed can serve: its store can be read (PostgreSQL: the database answers now)", body = idfed_api::Readiness),
        (status = 503, description = "The store cannot be read (`unavailable`), or the database cannot be reached (`store_unavailable`)", body = openapi::ErrorBody),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<idfed_api::Readiness>, ApiError> {
    let service = state.service.clone();
    // Off the async workers: a database that does not answer holds this for up to its timeout.
    let probed = tokio::task::spawn_blocking(move || {
        service.store.db().ping()?;
        service.store.get_account("readyz-probe").map(|_| ())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the readiness probe failed: {e}")))?;
    match probed {
        Ok(()) => {}
        Err(crate::store::StoreError::Unavailable(m)) => {
            return Err(ApiError::Vend(crate::vend::VendError::StoreUnavailable(m)));
        }
        Err(e) => {
            return Err(ApiError::Unavailable(format!(
                "the store cannot be read: {e}"
            )));
        }
    }
    let directory = state.service.auth.directory_kind();
    Ok(Json(idfed_api::Readiness {
        status: "ready".into(),
        directory: directory.into(),
        sso: state.web.enabled && !state.web.sso_cookie.is_empty() && directory == "crowd",
        store: state.service.store.db().engine().into(),
    }))
}
