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
use utoipa::{Modify, OpenApi, ToSchema};

/// The security scheme for `Authorization: Bearer <idfs_… session token | idfed_… API key>`.
pub const BEARER: &str = "bearer";
/// The security scheme for HTTP Basic (`user:password`, checked against the directory).
pub const BASIC: &str = "basic";
/// The security scheme of the web UI: its session cookie (changes also need `X-CSRF-Token`).
pub const COOKIE: &str = "cookie";
/// The security scheme of the container-credentials endpoint: the raw token in `Authorization`.
pub const CONTAINER_TOKEN: &str = "container_token";

/// Every error the API answers (except the container-credentials endpoint's): the one definition the API
/// writes ([`super::error_body`]), the OpenAPI document describes and the command line reads.
#[derive(Debug, serde::Serialize, serde::Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "connector_not_found", "message": "no connector \"prod\""}}))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable code (README, "Error codes"): `invalid_request`, `invalid_json`, `body_too_large`,
    /// `incomplete_body`, `body_timeout`, `unsupported_media_type`; a request head HTTP refuses:
    /// `malformed_request`, `headers_too_large`, `http_version_not_supported`; `missing_credentials`, `invalid_credentials`, `invalid_session`,
    /// `too_many_attempts`, `directory_unavailable`, `unsupported`; a workload's OIDC token refused:
    /// `workload_token_malformed`, `workload_issuer_unknown`, `workload_algorithm_refused`,
    /// `workload_key_unknown`, `workload_signature_invalid`, `workload_token_expired`,
    /// `workload_token_not_yet_valid`, `workload_audience_mismatch`, `workload_claim_missing`,
    /// `workload_not_allowed`, `workload_issuer_unavailable`; `csrf_failed`, `forbidden`, `admin_only`,
    /// `connector_not_found`, `connector_disabled`, `plugin_denied`; a plugin's fault: `plugin_timeout`,
    /// `plugin_memory_limit`, `plugin_trap`, `plugin_error`, `plugin_widened_grant`, `plugin_invalid_grant`,
    /// `plugin_busy`, `plugin_instantiate_failed`, `plugin_incompatible`; a plugin or binding refused:
    /// `plugin_not_a_component`, `plugin_too_large`, `plugin_config_invalid`, `plugin_config_refused`,
    /// `plugin_limits_invalid`, `plugin_tag_keys_invalid` (`plugin_cache_error` is answered as
    /// `internal_error`); STS: `sts_invalid_request`, `sts_malformed_policy`, `sts_packed_policy_too_large`,
    /// `sts_throttled`, `sts_budget_exhausted`, `sts_unavailable`, `sts_access_denied`,
    /// `sts_region_disabled`, `sts_invalid_token`, `sts_error`; `federation_failed` (the console sign-in
    /// URL's federation endpoint); `ecr_failed` (ECR's `GetAuthorizationToken`, for `ecr-login`);
    /// `codeartifact_failed` (CodeArtifact's, for `codeartifact-token`); and `not_found`, `method_not_allowed`,
    /// `conflict`, `precondition_failed`, `timeout`, `unavailable`, `internal_error`.
    pub code: String,
    /// The message for the caller.
    pub message: String,
    /// Where in a plugin configuration the problem is, when the plugin said (admin bindings only).
    #[schema(nullable = false)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

/// An error of the container-credentials endpoint, in the ECS endpoint's shape.
#[derive(Debug, ToSchema)]
#[allow(non_snake_case)]
pub struct EcsErrorBody {
    /// The stable code.
    pub Code: String,
    /// The message for the caller.
    pub Message: String,
}

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
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", body = serde_json::Value),
    )
)]
pub async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}
