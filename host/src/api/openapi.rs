//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]` annotations and
//! served at `GET /api/v1/openapi.json` (no authentication).
//!
//! The router and the document cannot drift apart: [`super::app`] takes its routes from
//! [`super::routes`], an [`utoipa_axum::router::OpenApiRouter`] whose every route is added with
//! `routes!(handler, …)`, which registers the handler with axum at the method and path of its
//! annotation and adds the same operation to the document. A route cannot be served without being
//! documented, nor documented at another path or method than the one it is served at.

use std::sync::OnceLock;

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The security scheme for `Authorization: Bearer <idfs_… session token | idfed_… API key>`.
pub const BEARER: &str = "bearer";
/// The security scheme for HTTP Basic (`user:password`, checked against the directory).
pub const BASIC: &str = "basic";
/// The security scheme of the web UI: its session cookie (changes also need `X-CSRF-Token`).
pub const COOKIE: &str = "cookie";
/// The security scheme of the container-credentials endpoint: the raw token in `Authorization`.
pub const CONTAINER_TOKEN: &str = "container_token";

pub use idfed_api::{EcsErrorBody, ErrorBody, ErrorDetail};

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token (`idfs_…`, from POST /api/v1/login) or an API key (`idfed_…`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("A directory user's name and password"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::web_session::SESSION_COOKIE,
                "The web UI's session (from POST /api/v1/web/session), accepted wherever `bearer` is, from \
                 idfed's own page only; every change must also send `X-CSRF-Token`",
            ))),
        );
        components.add_security_scheme(
            CONTAINER_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The raw session token or API key, no scheme (AWS_CONTAINER_AUTHORIZATION_TOKEN)",
            ))),
        );
    }
}

/// The document's base: its information, tags, security schemes and shared schemas. The paths are added
/// by [`super::routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "idfed",
        description = "Identity broker that vends temporary AWS credentials. Every error is JSON \
                       `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`; every response carries an \
                       `x-request-id`."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody, ErrorDetail, EcsErrorBody)),
    tags(
        (name = "session", description = "Logging in and out"),
        (name = "connectors", description = "Connectors and the credentials they vend"),
        (name = "admin", description = "Administration (administrators only)"),
        (name = "web", description = "The web UI: its files and its cookie sessions"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The API's OpenAPI document (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| super::routes().into_openapi())
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", body = serde_json::Value),
    )
)]
pub async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}
