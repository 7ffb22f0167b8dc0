//! The web UI's files (`/`, `/assets/…`), embedded in the binary from `host/web/`, and the security headers
//! every response carries: a strict Content-Security-Policy (scripts, styles and connections from idfed
//! itself only; no inline code, no frames), `nosniff`, no referrer.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const FAVICON_SVG: &str = include_str!("../../web/favicon.svg");

/// The web UI's routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(app_js))
        .routes(routes!(app_css))
        .routes(routes!(favicon))
}

fn asset(state: &AppState, content_type: &'static str, body: &'static str) -> Response {
    if !state.web.enabled {
        return ApiError::NotFound.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The web UI's page.
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, description = "The web UI", content_type = "text/html")))]
async fn index(State(state): State<AppState>) -> Response {
    asset(&state, "text/html; charset=utf-8", INDEX_HTML)
}

/// The web UI's script.
#[utoipa::path(get, path = "/assets/app.js", tag = "web",
    responses((status = 200, description = "The web UI's script", content_type = "text/javascript")))]
async fn app_js(State(state): State<AppState>) -> Response {
    asset(&state, "text/javascript; charset=utf-8", APP_JS)
}

/// The web UI's style sheet.
#[utoipa::path(get, path = "/assets/app.css", tag = "web",
    responses((status = 200, description = "The web UI's style sheet", content_type = "text/css")))]
async fn app_css(State(state): State<AppState>) -> Response {
    asset(&state, "text/css; charset=utf-8", APP_CSS)
}

/// The web UI's icon.
#[utoipa::path(get, path = "/assets/favicon.svg", tag = "web",
    responses((status = 200, description = "The web UI's icon", content_type = "image/svg+xml")))]
async fn favicon(State(state): State<AppState>) -> Response {
    asset(&state, "image/svg+xml", FAVICON_SVG)
}

/// Adds the security headers to every response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Adds `Strict-Transport-Security` (one year) to every response: for idfed serving TLS itself.
pub async fn strict_transport_security(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .entry(header::STRICT_TRANSPORT_SECURITY)
        .or_insert(HeaderValue::from_static("max-age=31536000"));
    response
}
