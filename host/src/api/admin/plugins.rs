//! `GET|POST /admin/plugins`, `DELETE /admin/plugins/{digest}`. An upload is the component's bytes
//! (`Content-Type: application/wasm`), checked by the plugin runtime before it is stored.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{Admin, AdminError, AdminResult, blocking};
use crate::api::{ApiError, AppState, rfc3339};
use crate::store::Store;

/// The largest plugin upload, in bytes (the API's default body limit is far smaller).
pub const PLUGIN_BODY_LIMIT: usize = 32 << 20;

/// The plugin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/plugins",
            get(list)
                .post(upload)
                .layer(DefaultBodyLimit::max(PLUGIN_BODY_LIMIT)),
        )
        .route("/admin/plugins/{digest}", delete(remove))
}

async fn list(State(state): State<AppState>, _admin: Admin) -> AdminResult<Json<Value>> {
    let store = &state.service.store;
    let plugins = store.list_plugins()?;
    let connectors = store.list_connectors()?;
    let plugins: Vec<Value> = plugins
        .iter()
        .map(|p| {
            let bound: Vec<Value> = connectors
                .iter()
                .flat_map(|c| {
                    c.bindings
                        .iter()
                        .filter(|b| b.plugin == p.digest)
                        .map(move |b| {
                            json!({"connector": c.name, "connector_id": c.id, "binding": b.id})
                        })
                })
                .collect();
            json!({
                "digest": p.digest,
                "size": p.size,
                "stored": rfc3339(p.stored),
                "bindings": bound,
            })
        })
        .collect();
    Ok(Json(json!({ "plugins": plugins })))
}

async fn upload(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AdminResult<(StatusCode, Json<Value>)> {
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
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AdminError::Api(ApiError::BodyTooLarge)
        } else {
            AdminError::invalid("the request body could not be read")
        }
    })?;
    let size = body.len();
    let store = state.service.store.clone();
    let runtime = state.service.plugins.clone();
    let (digest, existed) = blocking(move || -> AdminResult<(String, bool)> {
        let plugin = runtime.load("upload", &body)?;
        let existed = store
            .list_plugins()?
            .iter()
            .any(|p| p.digest == plugin.digest());
        Ok((store.put_plugin(&body)?, existed))
    })
    .await??;
    admin.audit(
        &state,
        "admin.plugin.upload",
        None,
        if existed {
            format!("plugin {digest} uploaded again ({size} bytes; already stored)")
        } else {
            format!("plugin {digest} stored ({size} bytes)")
        },
    )?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({"digest": digest, "size": size}))))
}

async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    Path(digest): Path<String>,
) -> AdminResult<StatusCode> {
    let store = state.service.store.clone();
    let target = digest.clone();
    blocking(move || store.remove_plugin(&target)).await??;
    admin.audit(
        &state,
        "admin.plugin.delete",
        None,
        format!("plugin {digest} removed"),
    )?;
    Ok(StatusCode::NO_CONTENT)
}
