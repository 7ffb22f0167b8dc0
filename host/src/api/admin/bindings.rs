//! `GET|POST /admin/connectors/{c}/bindings`, `DELETE /admin/connectors/{c}/bindings/{binding_id}`. A new
//! binding's configuration is checked by the plugin's `validate-config` before it is saved.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminErrors;
use super::{Admin, AdminError, AdminResult, blocking, find_connector};
use crate::api::AppState;
use crate::api::extract::JsonBody;
use crate::api::openapi::ErrorBody;
use crate::audit::AuditEvent;
use crate::model::{BindingSpec, Connector, Limits};
use crate::store::{Store, StoreError, check_digest};

/// The binding routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
}

pub use idfed_api::admin::{BindingBody, BindingInput, BindingList, LimitsBody};

/// A binding as answers show it (the configuration as JSON; as a string if it is not JSON).
pub fn binding_body(b: &BindingSpec) -> BindingBody {
    let config = serde_json::from_str::<Value>(&b.config)
        .unwrap_or_else(|_| Value::String(b.config.clone()));
    BindingBody {
        id: b.id.clone(),
        plugin: b.plugin.clone(),
        config,
        limits: b.limits.map(|l| LimitsBody {
            deadline_ms: Some(u64::try_from(l.deadline.as_millis()).unwrap_or(u64::MAX)),
            memory_bytes: Some(l.memory_bytes),
        }),
        tag_keys: b.tag_keys.clone(),
        position: None,
    }
}

/// A binding as written back in a connector's `PUT`, as stored: a configuration given as a string is
/// kept as it is, any other JSON as its text; limits left out are the runtime's defaults.
pub fn binding_spec(state: &AppState, body: BindingBody) -> BindingSpec {
    let config = match body.config {
        Value::String(text) => text,
        other => other.to_string(),
    };
    BindingSpec {
        id: body.id,
        plugin: body.plugin.trim().to_ascii_lowercase(),
        config,
        limits: body.limits.map(|given| limits(state, given)),
        tag_keys: body.tag_keys,
    }
}

/// Limits as given, the runtime's defaults where left out.
fn limits(state: &AppState, given: LimitsBody) -> Limits {
    let defaults = state.service.plugins.config().default_limits;
    Limits {
        deadline: given
            .deadline_ms
            .map_or(defaults.deadline, Duration::from_millis),
        memory_bytes: given.memory_bytes.unwrap_or(defaults.memory_bytes),
    }
}

/// Applies `change` to the connector's plugin chain and stores it with the audit record `event` makes of
/// the change's description, in one transaction; if another change landed in between, does it again on
/// the chain as it then is (a few times), so that concurrent edits of one chain all count. The connector
/// as stored.
fn change_chain(
    state: &AppState,
    connector: &str,
    mut change: impl FnMut(&mut Vec<BindingSpec>) -> AdminResult<String>,
    event: impl Fn(&Connector, String) -> AuditEvent,
) -> AdminResult<Connector> {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        let read = find_connector(state, connector)?;
        let mut changed = read.clone();
        let description = change(&mut changed.bindings)?;
        let audited = state
            .service
            .store
            .audited(&state.service.audit, event(&changed, description));
        match audited.update_connector(changed, &read) {
            Err(StoreError::Conflict(_)) if attempt < ATTEMPTS => continue,
            result => {
                let connector = result?;
                state.service.vendor.cache().flush_connector(connector.id);
                return Ok(connector);
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Loads the binding's plugin and has its `validate-config` check the configuration and limits.
pub async fn check_binding(state: &AppState, spec: &BindingSpec) -> AdminResult<()> {
    check_digest(&spec.plugin)?;
    let store = state.service.store.clone();
    let runtime = state.service.plugins.clone();
    let digest = spec.plugin.clone();
    let plugin = blocking(move || -> AdminResult<_> {
        let wasm = store.get_plugin(&digest)?.ok_or_else(|| {
            AdminError::invalid(format!(
                "plugin: {digest} is not stored; upload it with POST /api/v1/admin/plugins"
            ))
        })?;
        Ok(runtime.load(&digest, &wasm)?)
    })
    .await??;
    state
        .service
        .plugins
        .bind_with(&spec.id, plugin, &spec.config, &spec.options())
        .await?;
    Ok(())
}

/// The plugins bound to a connector, in chain order.
#[utoipa::path(
    get,
    path = "/api/v1/admin/connectors/{c}/bindings",
    tag = "admin",
    params(("c" = String, Path, description = "The connector's id or name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The connector's plugin chain", body = BindingList),
        AdminErrors,
        (status = 404, description = "No such connector (`connector_not_found`)", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Path(c): Path<String>,
) -> AdminResult<Json<BindingList>> {
    let connector = find_connector(&state, &c)?;
    Ok(Json(BindingList {
        bindings: connector.bindings.iter().map(binding_body).collect(),
        connector: connector.name,
        connector_id: connector.id,
    }))
}

/// Binds a stored plugin to a connector.
#[utoipa::path(
    post,
    path = "/api/v1/admin/connectors/{c}/bindings",
    tag = "admin",
    params(("c" = String, Path, description = "The connector's id or name")),
    request_body = BindingInput,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The binding, with its position", body = BindingBody),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
        (status = 413, description = "The body is over the limit (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "The body is not readable JSON of this shape (`invalid_json`), or a plugin that cannot be loaded or refuses the configuration (with `pointer`)", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Path(c): Path<String>,
    JsonBody(input): JsonBody<BindingInput>,
) -> AdminResult<(StatusCode, Json<BindingBody>)> {
    let connector = find_connector(&state, &c)?;
    if let Some(position) = input.position
        && position > connector.bindings.len()
    {
        return Err(AdminError::invalid(format!(
            "position: {position} is past the end of the chain ({} binding(s))",
            connector.bindings.len()
        )));
    }
    let limits = input.limits.map(|given| limits(&state, given));
    let config = match &input.config {
        None => "{}".to_owned(),
        Some(value) => value.to_string(),
    };
    let spec = BindingSpec {
        id: Uuid::new_v4().to_string(),
        plugin: input.plugin.trim().to_ascii_lowercase(),
        config,
        limits,
        tag_keys: input.tag_keys,
    };
    check_binding(&state, &spec).await?;
    // The chain as it is now (it may have changed while the plugin checked the configuration).
    let id = connector.id.to_string();
    let mut position = 0;
    change_chain(
        &state,
        &id,
        |chain| {
            position = input.position.unwrap_or(chain.len()).min(chain.len());
            chain.insert(position, spec.clone());
            Ok(format!("at position {position}"))
        },
        |connector, at| {
            admin.event(
                "admin.binding.create",
                Some(connector),
                format!(
                    "plugin {} bound to connector {:?} {at} as binding {}",
                    spec.plugin, connector.name, spec.id
                ),
            )
        },
    )?;
    let body = BindingBody {
        position: Some(position),
        ..binding_body(&spec)
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// Removes a binding from a connector.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/connectors/{c}/bindings/{binding_id}",
    tag = "admin",
    params(("c" = String, Path, description = "The connector's id or name"), ("binding_id" = String, Path, description = "The binding's id")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The binding is removed"),
        AdminErrors,
        (status = 404, description = "No such resource (`not_found`, `connector_not_found`)", body = ErrorBody),
        (status = 409, description = "A conflict with what is stored (`conflict`)", body = ErrorBody),
        (status = 500, description = "idfed failed, or the change could not be audited (`internal_error`)", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    Path((c, binding_id)): Path<(String, String)>,
) -> AdminResult<StatusCode> {
    let mut removed = None;
    change_chain(
        &state,
        &c,
        |chain| {
            let index = chain
                .iter()
                .position(|b| b.id == binding_id)
                .ok_or_else(|| {
                    AdminError::not_found(format!("the connector has no binding {binding_id:?}"))
                })?;
            let binding = chain.remove(index);
            let description = format!("binding {} (plugin {})", binding.id, binding.plugin);
            removed = Some(binding);
            Ok(description)
        },
        |connector, binding| {
            admin.event(
                "admin.binding.delete",
                Some(connector),
                format!("{binding} removed from connector {:?}", connector.name),
            )
        },
    )?;
    let removed = removed.expect("a binding was removed");
    if let Err(e) = state.service.plugins.kv().remove_binding(&removed.id) {
        tracing::warn!(binding = %removed.id, error = %e, "could not remove a binding's state");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::ApiLimits;
    use crate::config::Config;
    use crate::model::{AccountInput, AccountSourceInput, Principal};
    use crate::service::Service;

    fn state(dir: &std::path::Path) -> AppState {
        let users = dir.join("users.toml");
        std::fs::write(&users, "").unwrap();
        let config = Config::parse(&format!(
            "[server]\nplain_http = true\n[data]\ndir = {:?}\n[auth.directory]\ntype = \"static\"\nfile = {users:?}\n",
            dir.join("data"),
        ))
        .unwrap();
        let service = Service::open(&config).unwrap();
        AppState::new(Arc::new(service), ApiLimits::default())
    }

    fn binding(plugin: &str) -> BindingSpec {
        BindingSpec {
            id: uuid::Uuid::new_v4().to_string(),
            plugin: plugin.into(),
            config: "{}".into(),
            limits: None,
            tag_keys: Vec::new(),
        }
    }

    #[test]
    fn a_chain_changed_meanwhile_is_changed_again_on_top_of_that() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        let store = state.service.store.clone();
        store
            .put_account(AccountInput {
                name: "main".into(),
                description: String::new(),
                source: AccountSourceInput::HostCredentials,
                region: None,
                sts_endpoint: None,
            })
            .unwrap();
        store
            .create_connector(Connector {
                id: uuid::Uuid::nil(),
                name: "dev".into(),
                description: String::new(),
                account: "main".into(),
                principal: Principal::IamUser,
                policy: None,
                policy_arns: vec![],
                default_duration_seconds: None,
                max_duration_seconds: None,
                groups: vec![],
                system_scope: false,
                enabled: true,
                credential_cache: false,
                bindings: vec![],
            })
            .unwrap();
        let plugin = store.put_plugin(b"\0asm component", None).unwrap();
        let (ours, theirs) = (binding(&plugin), binding(&plugin));
        let mut calls = 0;
        let stored = change_chain(
            &state,
            "dev",
            |chain| {
                calls += 1;
                if calls == 1 {
                    // Another administrator's binding lands between our read and our write.
                    let read = store.get_connector("dev").unwrap().unwrap();
                    let mut other = read.clone();
                    other.bindings.push(theirs.clone());
                    store.update_connector(other, &read).unwrap();
                }
                chain.push(ours.clone());
                Ok(format!("attempt {calls}"))
            },
            |_, attempt| AuditEvent {
                action: "admin.binding.create".into(),
                reason: Some(attempt),
                ..AuditEvent::default()
            },
        )
        .unwrap();
        assert_eq!(calls, 2, "done again on the chain as it then was");
        assert_eq!(stored.bindings, [theirs, ours]);
        assert_eq!(store.get_connector("dev").unwrap().unwrap(), stored);
        // The attempt that lost wrote nothing, its record neither: one record, of the change made.
        let records = state
            .service
            .audit
            .query(&crate::audit::AuditFilter::default())
            .unwrap();
        let reasons: Vec<_> = records
            .iter()
            .filter(|r| r.event.action == "admin.binding.create")
            .map(|r| r.event.reason.clone())
            .collect();
        assert_eq!(reasons, [Some("attempt 2".to_owned())]);
    }
}
