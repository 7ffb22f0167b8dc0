//! `GET /admin/audit?user=&connector=&plugin=&outcome=&since=&until=&limit=`: audit records, newest first.
//! `plugin` (a digest) selects that plugin's denials and faults (older records, which name no plugin, by
//! its current bindings).

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminErrors;
use super::{Admin, AdminError, AdminResult, parse_time};
use crate::api::{ApiError, AppState};
use crate::audit::{AuditFilter, DEFAULT_QUERY_LIMIT, Outcome, PluginRecords};
use crate::store::{Store, check_digest};

/// The most records one query returns.
pub const MAX_LIMIT: usize = 1000;

const PARAMETERS: [&str; 7] = [
    "user",
    "connector",
    "plugin",
    "outcome",
    "since",
    "until",
    "limit",
];

pub use idfed_api::audit::AuditRecords;

/// The audit route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(query))
}

/// The filter the query parameters ask for; `plugin_bindings` gives a plugin's current binding ids.
fn filter(
    params: &HashMap<String, String>,
    plugin_bindings: impl FnOnce(&str) -> AdminResult<Vec<String>>,
) -> AdminResult<AuditFilter> {
    if let Some(unknown) = params.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
        return Err(AdminError::invalid(format!(
            "unknown query parameter {unknown:?}; use {}",
            PARAMETERS.join(", ")
        )));
    }
    let text = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let outcome = text("outcome")
        .map(|o| {
            serde_json::from_value::<Outcome>(serde_json::Value::String(o.to_owned())).map_err(|_| {
                AdminError::invalid(format!(
                    "outcome: {o:?} is not one of issued, refused, plugin_denied, plugin_fault, \
                     failed, changed"
                ))
            })
        })
        .transpose()?;
    let limit = match text("limit") {
        None => DEFAULT_QUERY_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                AdminError::invalid(format!(
                    "limit: {l:?} is not a number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let plugin = text("plugin")
        .map(|digest| {
            Ok::<_, AdminError>(PluginRecords {
                digest: digest.to_owned(),
                bindings: plugin_bindings(digest)?,
            })
        })
        .transpose()?;
    let since = text("since").map(|t| parse_time("since", t)).transpose()?;
    let until = text("until").map(|t| parse_time("until", t)).transpose()?;
    Ok(AuditFilter {
        caller: text("user").map(str::to_owned),
        connector: text("connector").map(str::to_owned),
        outcome,
        plugin,
        since,
        until,
        limit,
    })
}

/// Audit records, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    params(
        ("user" = Option<String>, Query, description = "Only this caller's records"),
        ("connector" = Option<String>, Query, description = "Only this connector's records (id or name)"),
        ("plugin" = Option<String>, Query, description = "Only the denials and faults of this plugin (its digest)"),
        ("outcome" = Option<String>, Query, description = "issued, refused, plugin_denied, plugin_fault, failed or changed"),
        ("since" = Option<String>, Query, description = "Records from this time (RFC 3339)"),
        ("until" = Option<String>, Query, description = "Records until this time (RFC 3339)"),
        ("limit" = Option<usize>, Query, description = "At most this many records (1 to 1000)"),
    ),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The records, newest first", body = AuditRecords),
        AdminErrors,
    )
)]
async fn query(
    State(state): State<AppState>,
    _admin: Admin,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AdminResult<Json<AuditRecords>> {
    let Query(params) =
        params.map_err(|_| AdminError::invalid("the query string could not be read"))?;
    let filter = filter(&params, |digest| {
        check_digest(digest)?;
        Ok(state
            .service
            .store
            .list_connectors()?
            .iter()
            .flat_map(|c| &c.bindings)
            .filter(|b| b.plugin == digest)
            .map(|b| b.id.clone())
            .collect())
    })?;
    let records = state
        .service
        .audit
        .query(&filter)
        .map_err(|e| ApiError::Unavailable(format!("audit log: {e}")))?;
    Ok(Json(AuditRecords { records }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn no_plugins(digest: &str) -> AdminResult<Vec<String>> {
        Ok(vec![format!("binding-of-{digest}")])
    }

    #[test]
    fn filters() {
        let f = filter(
            &params(&[
                ("user", "alice"),
                ("outcome", "changed"),
                ("limit", "5"),
                ("since", "2026-01-01T00:00:00Z"),
            ]),
            no_plugins,
        )
        .unwrap();
        assert_eq!(f.caller.as_deref(), Some("alice"));
        assert_eq!(f.outcome, Some(Outcome::Changed));
        assert_eq!(f.limit, 5);
        assert!(f.since.is_some() && f.until.is_none());
        assert_eq!(f.plugin, None);
        assert_eq!(
            filter(&params(&[]), no_plugins).unwrap().limit,
            DEFAULT_QUERY_LIMIT
        );
        assert_eq!(
            filter(&params(&[("plugin", "abc")]), no_plugins)
                .unwrap()
                .plugin,
            Some(PluginRecords {
                digest: "abc".into(),
                bindings: vec!["binding-of-abc".to_owned()]
            })
        );
        for bad in [
            ("outcome", "great"),
            ("limit", "0"),
            ("limit", "100000"),
            ("limit", "x"),
            ("since", "today"),
            ("users", "alice"),
        ] {
            assert!(filter(&params(&[bad]), no_plugins).is_err(), "{bad:?}");
        }
    }
}
