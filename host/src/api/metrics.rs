//! Hand-written Prometheus counters, rendered as the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::secret::secrets_equal;
use crate::vend::VendError;

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Vends by (connector, outcome: `issued` or the error's code).
    vends: Mutex<BTreeMap<(String, String), u64>>,
    /// Plugin faults by code.
    plugin_faults: Mutex<BTreeMap<String, u64>>,
    /// STS errors by code.
    sts_errors: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts a vend's outcome. `connector` is the connector's name when it was found.
    pub fn vend(&self, connector: Option<&str>, outcome: Result<(), &VendError>) {
        let connector = connector.unwrap_or("_unknown").to_owned();
        let outcome = match outcome {
            Ok(()) => "issued".to_owned(),
            Err(e) => e.code().to_owned(),
        };
        *lock(&self.vends).entry((connector, outcome)).or_default() += 1;
    }

    /// Counts a vend error's plugin fault or STS error, if it is one.
    pub fn vend_error(&self, e: &VendError) {
        match e {
            VendError::PluginFault { code, .. } => self.plugin_fault(code),
            VendError::Sts(sts) => self.sts_error(sts.code()),
            _ => {}
        }
    }

    /// Counts a plugin fault.
    pub fn plugin_fault(&self, code: &str) {
        *lock(&self.plugin_faults)
            .entry(code.to_owned())
            .or_default() += 1;
    }

    /// Counts an STS error.
    pub fn sts_error(&self, code: &str) {
        *lock(&self.sts_errors).entry(code.to_owned()).or_default() += 1;
    }

    /// The Prometheus text.
    pub fn render(&self, auth: crate::auth::cache::CacheStats) -> String {
        let mut out = String::new();
        header_lines(
            &mut out,
            "idfed_vends_total",
            "Credential vends, by connector and outcome (issued, or the error code).",
        );
        for ((connector, outcome), n) in lock(&self.vends).iter() {
            let _ = writeln!(
                out,
                "idfed_vends_total{{connector=\"{}\",outcome=\"{}\"}} {n}",
                escape(connector),
                escape(outcome)
            );
        }
        header_lines(
            &mut out,
            "idfed_plugin_faults_total",
            "Policy plugin faults, by code.",
        );
        for (code, n) in lock(&self.plugin_faults).iter() {
            let _ = writeln!(
                out,
                "idfed_plugin_faults_total{{code=\"{}\"}} {n}",
                escape(code)
            );
        }
        header_lines(&mut out, "idfed_sts_errors_total", "STS errors, by code.");
        for (code, n) in lock(&self.sts_errors).iter() {
            let _ = writeln!(
                out,
                "idfed_sts_errors_total{{code=\"{}\"}} {n}",
                escape(code)
            );
        }
        for (name, help, value) in [
            (
                "idfed_auth_cache_hits_total",
                "Password checks answered from the cache.",
                auth.auth_hits,
            ),
            (
                "idfed_auth_cache_misses_total",
                "Password checks that went to the directory.",
                auth.auth_misses,
            ),
            (
                "idfed_group_cache_hits_total",
                "Group lookups answered from the cache.",
                auth.group_hits,
            ),
            (
                "idfed_group_cache_misses_total",
                "Group lookups that went to the directory.",
                auth.group_misses,
            ),
        ] {
            header_lines(&mut out, name, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

/// The credential cache's, the STS budget's and the audit log's group commit's counters.
fn render_economy(out: &mut String, service: &crate::service::Service) {
    let cache = service.vendor.cache().stats();
    for (name, kind, help, value) in [
        (
            "idfed_credential_cache_hits_total",
            "counter",
            "Vends answered with credentials from the credential cache.",
            cache.hits,
        ),
        (
            "idfed_credential_cache_misses_total",
            "counter",
            "Vends of caching connectors that found nothing usable in the cache.",
            cache.misses,
        ),
        (
            "idfed_credential_cache_coalesced_total",
            "counter",
            "Cache misses that shared an identical request's STS call instead of making one.",
            cache.coalesced,
        ),
        (
            "idfed_credential_cache_evictions_total",
            "counter",
            "Cached credential sets ended: too old, over the bound, changed, refused or flushed.",
            cache.evictions,
        ),
        (
            "idfed_credential_cache_entries",
            "gauge",
            "Credential sets in the cache now.",
            cache.entries,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
    let budget = service.budget.stats();
    header_lines(
        out,
        "idfed_sts_calls_total",
        "STS calls made, by account and Region (or endpoint).",
    );
    for (scope, stats) in &budget {
        let _ = writeln!(
            out,
            "idfed_sts_calls_total{{scope=\"{}\"}} {}",
            escape(scope),
            stats.calls
        );
    }
    header_lines(
        out,
        "idfed_sts_budget_waits_total",
        "STS calls that waited for the budget, by account and Region.",
    );
    for (scope, stats) in &budget {
        let _ = writeln!(
            out,
            "idfed_sts_budget_waits_total{{scope=\"{}\"}} {}",
            escape(scope),
            stats.waited
        );
    }
    header_lines(
        out,
        "idfed_sts_throttled_total",
        "STS calls refused for throttling, by account and Region and by whom: idfed's budget \
         (sts_budget_exhausted) or STS itself after retries (sts_throttled).",
    );
    for (scope, stats) in &budget {
        for (by, n) in [("budget", stats.refused), ("sts", stats.throttled_by_sts)] {
            let _ = writeln!(
                out,
                "idfed_sts_throttled_total{{scope=\"{}\",by=\"{by}\"}} {n}",
                escape(scope)
            );
        }
    }
    let durability = service.audit.durability_stats();
    for (name, help, value) in [
        (
            "idfed_audit_durable_appends_total",
            "Audit records made durable before their answer was sent.",
            durability.durable_appends,
        ),
        (
            "idfed_audit_flushes_total",
            "Flushes (fsyncs) that made them durable: concurrent records share one.",
            durability.flushes,
        ),
    ] {
        header_lines(out, name, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn header_lines(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: open, or with `[server] metrics_token_file` set, for `Authorization: Bearer <token>`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus counters (text exposition format 0.0.4)", body = String,
         content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = "A metrics token is configured and was not sent (`missing_credentials`, `invalid_credentials`)", body = ErrorBody),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &state.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::MissingCredentials)?;
        if !secrets_equal(presented.trim().as_bytes(), token.expose().as_bytes()) {
            return Err(ApiError::Auth(crate::auth::AuthError::InvalidCredentials));
        }
    }
    let mut body = state.metrics.render(state.service.auth.stats());
    render_economy(&mut body, &state.service);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}
