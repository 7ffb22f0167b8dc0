//! The web UI's files (`/`, `/assets/…`), embedded in the binary from `host/web/`, and the security headers
//! every response carries: a strict Content-Security-Policy (scripts, styles and connections from idfed
//! itself only; no inline code, no frames), `nosniff`, no referrer. Files carry an `ETag` (their SHA-256)
//! and are revalidated on each use: an unchanged file is a `304` with no body.

use std::sync::OnceLock;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// A file of the web UI.
struct Asset {
    content_type: &'static str,
    body: &'static str,
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(content_type: &'static str, body: &'static str) -> Asset {
        Asset {
            content_type,
            body,
            etag: OnceLock::new(),
        }
    }

    fn etag(&self) -> &str {
        self.etag.get_or_init(|| {
            let digest = Sha256::digest(self.body.as_bytes());
            format!("\"{}\"", hex::encode(&digest[..16]))
        })
    }
}

static INDEX_HTML: Asset = Asset::new(
    "text/html; charset=utf-8",
    include_str!("../../web/index.html"),
);
static APP_JS: Asset = Asset::new(
    "text/javascript; charset=utf-8",
    include_str!("../../web/app.js"),
);
static APP_CSS: Asset = Asset::new("text/css; charset=utf-8", include_str!("../../web/app.css"));
static FAVICON_SVG: Asset = Asset::new("image/svg+xml", include_str!("../../web/favicon.svg"));

/// The web UI's routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(app_js))
        .routes(routes!(app_css))
        .routes(routes!(favicon))
}

fn asset(state: &AppState, headers: &HeaderMap, asset: &'static Asset) -> Response {
    if !state.web.enabled {
        return ApiError::NotFound.into_response();
    }
    let etag = asset.etag();
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let headers = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, etag),
    ];
    if unchanged {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, asset.body).into_response()
    }
}

/// The web UI's page.
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, description = "The web UI", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag")))]
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    asset(&state, &headers, &INDEX_HTML)
}

/// The web UI's script.
#[utoipa::path(get, path = "/assets/app.js", tag = "web",
    responses((status = 200, description = "The web UI's script", content_type = "text/javascript")))]
async fn app_js(State(state): State<AppState>, headers: HeaderMap) -> Response {
    asset(&state, &headers, &APP_JS)
}

/// The web UI's style sheet.
#[utoipa::path(get, path = "/assets/app.css", tag = "web",
    responses((status = 200, description = "The web UI's style sheet", content_type = "text/css")))]
async fn app_css(State(state): State<AppState>, headers: HeaderMap) -> Response {
    asset(&state, &headers, &APP_CSS)
}

/// The web UI's icon.
#[utoipa::path(get, path = "/assets/favicon.svg", tag = "web",
    responses((status = 200, description = "The web UI's icon", content_type = "image/svg+xml")))]
async fn favicon(State(state): State<AppState>, headers: HeaderMap) -> Response {
    asset(&state, &headers, &FAVICON_SVG)
}

/// Adds the security headers (those it does not have already) to a response's `headers`.
pub fn add_security_headers(headers: &mut HeaderMap) {
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
