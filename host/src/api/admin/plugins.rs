//! `GET|POST /admin/plugins`, `DELETE /admin/plugins/{digest}`. An upload is the component's bytes
//! (`Content-Type: application/wasm`), checked by the plugin runtime before it is stored, with an optional
//! `?name=` (uploads of one name are that plugin's versions).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::AdminErrors;
use super::{Admin, AdminError, AdminResult, blocking};
use crate::api::openapi::ErrorBody;
use crate::api::{ApiError, AppState, rfc3339};
use crate::store::Store;

/// The largest plugin upload, in bytes (the API's default body limit is far smaller).
pub const PLUGIN_BODY_LIMIT: usize = 32 << 20;

/// The plugin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, upload).layer(DefaultBodyLimit::max(PLUGIN_BODY_LIMIT)))
        .routes(routes!(remove))
}

pub use idfed_api::admin::{PluginBody, PluginList, PluginUse};

/// The stored plugins and where they are bound.
#[utoipa::path(
    get,
    path = "/api/v1/admin/plugins",
    tag = "admin",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The stored plugins", body = PluginList),
        AdminErrors,
    )
)]
async fn list(State(state): State<AppState>, _admin: Admin) -> AdminResult<Json<PluginList>> {
    let store = &state.service.store;
    let plugins = store.list_plugins()?;
    let connectors = store.list_connectors()?;
    let plugins = plugins
        .iter()
        .map(|p| PluginBody {
            digest: p.digest.clone(),
            name: p.name.clone(),
            size: p.size,
            stored: Some(rfc3339(p.stored)),
            bindings: Some(
                connectors
                    .iter()
                    .flat_map(|c| {
                        c.bindings
                            .iter()
                            .filter(|b| b.plugin == p.digest)
                            .map(move |b| PluginUse {
                                connector: c.name.clone(),
                                connector_id: c.id,
                                binding: b.id.clone(),
                            })
                    })
                    .collect(),
            ),
        })
        .collect();
    Ok(Json(PluginList { plugins }))
}

/// Stores a plugin component, checked by the plugin runtime first.
#[utoipa::path(
    post,
    path = "/api/v1/admin/plugins",
    tag = "admin",
    params(("name" = Option<String>, Query, description = "The plugin's name (A-Za-z0-9._-): uploads of one name are its versions")),
    request_body(content = Vec<u8>, description = "The WebAssembly component's bytes", content_type = "application/wasm"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The plugin was already stored (`digest`, `name`, `size`)", body = PluginBody),
        (status = 201, description = "The plugin is stored (`digest`, `name`, `size`)", body = PluginBody),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
        (status = 413, description = "The component is over the limit", body = ErrorBody),
        (status = 415, description = "The body is not `application/wasm` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "Not a component, or one idfed cannot run", body = ErrorBody),
    )
)]
async fn upload(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> AdminResult<(StatusCode, Json<PluginBody>)> {
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "name") {
        return Err(AdminError::invalid(format!(
            "unknown query parameter {unknown:?}; use name"
        )));
    }
    let name = query
        .get("name")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if let Some(name) = &name {
        crate::store::check_name("plugin", name)?;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(
        content_type.as_deref(),
        Some("application/wasm" | "application/octet-stream")
    ) {
        return Err(AdminError::Coded {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "send the plugin component's bytes as application/wasm".into(),
            pointer: None,
        });
    }
    let body =
        body.map_err(|rejection| AdminError::Api(ApiError::from_body_rejection(rejection)))?;
    let size = body.len();
    let store = state.service.store.clone();
    let runtime = state.service.plugins.clone();
    let label = name.clone();
    let event = admin.event(
        "admin.plugin.upload",
        None,
        format!("a plugin of {size} bytes uploaded"),
    );
    let log = state.service.audit.clone();
    let (digest, existed) = blocking(move || -> AdminResult<(String, bool)> {
        let plugin = runtime.load("upload", &body)?;
        let digest = plugin.digest().to_owned();
        let existed = store.list_plugins()?.iter().any(|p| p.digest == digest);
        let named = label
            .as_deref()
            .map(|n| format!(" as {n:?}"))
            .unwrap_or_default();
        let mut audited = store.audited(&log, event);
        audited.event_mut().reason = Some(if existed {
            format!("plugin {digest} uploaded again{named} ({size} bytes; already stored)")
        } else {
            format!("plugin {digest} stored{named} ({size} bytes)")
        });
        Ok((audited.put_plugin(&body, label.as_deref())?, existed))
    })
    .await??;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(PluginBody {
            digest,
            name,
            size: size as u64,
            stored: None,
            bindings: None,
        }),
    ))
}

/// Removes a stored plugin (refused while it is bound).
#[utoipa::path(
    delete,
    path = "/api/v1/admin/plugins/{digest}",
    tag = "admin",
    params(("digest" = String, Path, description = "The plugin's digest")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The plugin is removed"),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    Path(digest): Path<String>,
) -> AdminResult<StatusCode> {
    let store = state.service.store.clone();
    let target = digest.clone();
    let event = admin.event(
        "admin.plugin.delete",
        None,
        format!("plugin {digest} removed"),
    );
    let log = state.service.audit.clone();
    blocking(move || store.audited(&log, event).remove_plugin(&target)).await??;
    Ok(StatusCode::NO_CONTENT)
}
