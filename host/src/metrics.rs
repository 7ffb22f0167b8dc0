//! What idfed counts and times, for `/metrics`, with prometheus-client.
//!
//! [`Metrics`] is the handle the parts record into: the service builds one over its registry and hands it to
//! the API, the vend pipeline, the plugin runtime and the STS client as it builds them. [`PartStats`] reads
//! the counters the parts keep themselves (the authentication cache, the credential cache, the STS budget,
//! the audit log's group commit) at each scrape.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;
use prometheus_client::registry::Unit;

use crate::audit::AuditLog;
use crate::auth::authenticator::Authenticator;
use crate::sts::StsBudget;
use crate::vend::{CredentialCache, VendError};

/// The `Content-Type` of [`encode`]'s text: the Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// What `registry` holds now, in the Prometheus text exposition format (version 0.0.4). It fails only if a
/// collector does.
pub fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

/// The latency histograms' buckets, in seconds: from 0.5 ms (a cached vend, a trivial plugin) to 10 s (the
/// STS client's whole-operation timeout), about three to a decade.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A vend's labels: the connector (`_unknown` when there is none of that name) and the outcome (`issued`, or
/// the error's code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VendLabels {
    connector: String,
    outcome: String,
}

/// An error's code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// A plugin evaluation's labels: the binding's id, the plugin's name as the runtime loaded it (its digest's
/// first 12 hex digits) and the outcome (`allow`, `deny`, or the fault's code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    binding: String,
    plugin: String,
    outcome: String,
}

/// An STS request's labels: the operation (`AssumeRole`, `GetFederationToken`, `GetSessionToken`,
/// `GetCallerIdentity`) and the outcome (`ok`, or the error's code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StsLabels {
    operation: String,
    outcome: String,
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

fn latencies<L: Clone + std::hash::Hash + Eq>() -> Latencies<L> {
    Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS))
}

/// The counters and histograms the parts record into. Cheap to clone; clones record into the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    vends: Family<VendLabels, Counter>,
    vend_duration: Latencies<VendLabels>,
    plugin_faults: Family<CodeLabels, Counter>,
    plugin_evaluation_duration: Latencies<PluginLabels>,
    sts_errors: Family<CodeLabels, Counter>,
    sts_request_duration: Latencies<StsLabels>,
}

impl Default for Metrics {
    /// Metrics registered nowhere: for parts built on their own (tests, benchmarks, the CLI's tools).
    fn default() -> Self {
        Metrics::new(&mut Registry::default())
    }
}

impl Metrics {
    /// New metrics, registered with `registry`. prometheus-client adds `_total` to counters' names and the
    /// unit to histograms' (`idfed_vend_duration` in seconds is `idfed_vend_duration_seconds`).
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            vends: Family::default(),
            vend_duration: latencies(),
            plugin_faults: Family::default(),
            plugin_evaluation_duration: latencies(),
            sts_errors: Family::default(),
            sts_request_duration: latencies(),
        };
        registry.register(
            "idfed_vends",
            "Credential vends, by connector and outcome (issued, or the error code)",
            metrics.vends.clone(),
        );
        registry.register_with_unit(
            "idfed_vend_duration",
            "How long vends took, by connector and outcome (issued, or the error code)",
            Unit::Seconds,
            metrics.vend_duration.clone(),
        );
        registry.register(
            "idfed_plugin_faults",
            "Policy plugin faults, by code",
            metrics.plugin_faults.clone(),
        );
        registry.register_with_unit(
            "idfed_plugin_evaluation_duration",
            "How long policy plugins took to evaluate a request, by binding, plugin and outcome \
             (allow, deny, or the fault code)",
            Unit::Seconds,
            metrics.plugin_evaluation_duration.clone(),
        );
        registry.register(
            "idfed_sts_errors",
            "STS errors, by code",
            metrics.sts_errors.clone(),
        );
        registry.register_with_unit(
            "idfed_sts_request_duration",
            "How long STS requests took, retries included, by operation and outcome (ok, or the error code)",
            Unit::Seconds,
            metrics.sts_request_duration.clone(),
        );
        metrics
    }

    /// Counts and times a vend, and counts its plugin fault or STS error if it is one. `connector` is the
    /// connector's name when it was found.
    pub fn vend(&self, connector: Option<&str>, outcome: Result<(), &VendError>, took: Duration) {
        let labels = VendLabels {
            connector: connector.unwrap_or("_unknown").to_owned(),
            outcome: match outcome {
                Ok(()) => "issued".to_owned(),
                Err(e) => e.code().to_owned(),
            },
        };
        self.vends.get_or_create(&labels).inc();
        self.vend_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        match outcome {
            Err(VendError::PluginFault { code, .. }) => self.plugin_fault(code),
            Err(VendError::Sts(sts)) => self.sts_error(sts.code()),
            _ => {}
        }
    }

    /// Counts a plugin fault.
    pub fn plugin_fault(&self, code: &str) {
        self.plugin_faults.get_or_create(&code_labels(code)).inc();
    }

    /// Counts an STS error.
    pub fn sts_error(&self, code: &str) {
        self.sts_errors.get_or_create(&code_labels(code)).inc();
    }

    /// Times one plugin evaluation of binding `binding` (of plugin `plugin`), which ended in `outcome`.
    pub fn plugin_evaluation(&self, binding: &str, plugin: &str, outcome: &str, took: Duration) {
        let labels = PluginLabels {
            binding: binding.to_owned(),
            plugin: plugin.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.plugin_evaluation_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Times one STS request of `operation`, which ended in `outcome`.
    pub fn sts_request(&self, operation: &str, outcome: &str, took: Duration) {
        let labels = StsLabels {
            operation: operation.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.sts_request_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

fn code_labels(code: &str) -> CodeLabels {
    CodeLabels {
        code: code.to_owned(),
    }
}

/// The counters the service's parts keep themselves, read at each scrape.
pub struct PartStats {
    /// Password checks and group lookups, cached or not.
    pub auth: Arc<Authenticator>,
    /// The credential cache.
    pub credential_cache: Arc<CredentialCache>,
    /// The STS budget.
    pub budget: Arc<StsBudget>,
    /// The audit log (its group commit).
    pub audit: AuditLog,
}

impl fmt::Debug for PartStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartStats").finish_non_exhaustive()
    }
}

impl Collector for PartStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let auth = self.auth.stats();
        for (name, help, value) in [
            (
                "idfed_auth_cache_hits",
                "Password checks answered from the cache.",
                auth.auth_hits,
            ),
            (
                "idfed_auth_cache_misses",
                "Password checks that went to the directory.",
                auth.auth_misses,
            ),
            (
                "idfed_group_cache_hits",
                "Group lookups answered from the cache.",
                auth.group_hits,
            ),
            (
                "idfed_group_cache_misses",
                "Group lookups that went to the directory.",
                auth.group_misses,
            ),
        ] {
            counter(&mut encoder, name, help, value)?;
        }

        let cache = self.credential_cache.stats();
        for (name, help, value) in [
            (
                "idfed_credential_cache_hits",
                "Vends answered with credentials from the credential cache.",
                cache.hits,
            ),
            (
                "idfed_credential_cache_misses",
                "Vends of caching connectors that found nothing usable in the cache.",
                cache.misses,
            ),
            (
                "idfed_credential_cache_coalesced",
                "Cache misses that shared an identical request's STS call instead of making one.",
                cache.coalesced,
            ),
            (
                "idfed_credential_cache_evictions",
                "Cached credential sets ended: too old, over the bound, changed, refused or flushed.",
                cache.evictions,
            ),
        ] {
            counter(&mut encoder, name, help, value)?;
        }
        let entries = ConstGauge::new(cache.entries);
        entries.encode(encoder.encode_descriptor(
            "idfed_credential_cache_entries",
            "Credential sets in the cache now.",
            None,
            entries.metric_type(),
        )?)?;

        let budget = self.budget.stats();
        let mut calls = encoder.encode_descriptor(
            "idfed_sts_calls",
            "STS calls made, by account and Region (or endpoint).",
            None,
            MetricType::Counter,
        )?;
        for (scope, stats) in &budget {
            ConstCounter::new(stats.calls).encode(calls.encode_family(&[("scope", scope)])?)?;
        }
        let mut waits = encoder.encode_descriptor(
            "idfed_sts_budget_waits",
            "STS calls that waited for the budget, by account and Region.",
            None,
            MetricType::Counter,
        )?;
        for (scope, stats) in &budget {
            ConstCounter::new(stats.waited).encode(waits.encode_family(&[("scope", scope)])?)?;
        }
        let mut throttled = encoder.encode_descriptor(
            "idfed_sts_throttled",
            "STS calls refused for throttling, by account and Region and by whom: idfed's budget \
             (sts_budget_exhausted) or STS itself after retries (sts_throttled).",
            None,
            MetricType::Counter,
        )?;
        for (scope, stats) in &budget {
            for (by, n) in [("budget", stats.refused), ("sts", stats.throttled_by_sts)] {
                ConstCounter::new(n)
                    .encode(throttled.encode_family(&[("scope", scope.as_str()), ("by", by)])?)?;
            }
        }

        let durability = self.audit.durability_stats();
        counter(
            &mut encoder,
            "idfed_audit_durable_appends",
            "Audit records made durable before their answer was sent.",
            durability.durable_appends,
        )?;
        counter(
            &mut encoder,
            "idfed_audit_flushes",
            "Flushes (fsyncs) that made them durable: concurrent records share one.",
            durability.flushes,
        )
    }
}

/// One unlabelled counter, `_total` added to `name`.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sts::{StsError, StsErrorKind};

    fn text(registry: &Registry) -> String {
        encode(registry).unwrap()
    }

    #[test]
    fn counters_keep_their_names_help_and_escaped_labels() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        metrics.vend(Some("dev"), Ok(()), Duration::from_millis(3));
        metrics.vend(Some("dev"), Ok(()), Duration::from_millis(4));
        let sts = VendError::Sts(StsError::new(StsErrorKind::AccessDenied, "no"));
        metrics.vend(Some("we\"ird\\\n"), Err(&sts), Duration::from_secs(1));
        let text = text(&registry);
        assert!(text.contains(
            "# HELP idfed_vends_total Credential vends, by connector and outcome (issued, or the error code).\n\
             # TYPE idfed_vends_total counter\n"
        ), "{text}");
        assert!(
            text.contains("idfed_vends_total{connector=\"dev\",outcome=\"issued\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "idfed_vends_total{connector=\"we\\\"ird\\\\\\n\",outcome=\"sts_access_denied\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("idfed_sts_errors_total{code=\"sts_access_denied\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("idfed_plugin_faults"), "none yet: {text}");
    }

    #[test]
    fn latencies_fall_into_their_buckets() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        metrics.vend(Some("dev"), Ok(()), Duration::from_millis(3));
        metrics.plugin_evaluation("b-1", "0123456789ab", "allow", Duration::from_micros(700));
        metrics.sts_request("AssumeRole", "ok", Duration::from_millis(40));
        metrics.sts_request("AssumeRole", "ok", Duration::from_secs(20));
        let text = text(&registry);
        assert!(
            text.contains("# TYPE idfed_vend_duration_seconds histogram\n"),
            "{text}"
        );
        for line in [
            "idfed_vend_duration_seconds_bucket{connector=\"dev\",outcome=\"issued\",le=\"0.0025\"} 0\n",
            "idfed_vend_duration_seconds_bucket{connector=\"dev\",outcome=\"issued\",le=\"0.005\"} 1\n",
            "idfed_vend_duration_seconds_count{connector=\"dev\",outcome=\"issued\"} 1\n",
            "idfed_plugin_evaluation_duration_seconds_bucket{binding=\"b-1\",plugin=\"0123456789ab\",outcome=\"allow\",le=\"0.0005\"} 0\n",
            "idfed_plugin_evaluation_duration_seconds_bucket{binding=\"b-1\",plugin=\"0123456789ab\",outcome=\"allow\",le=\"0.001\"} 1\n",
            "idfed_sts_request_duration_seconds_bucket{operation=\"AssumeRole\",outcome=\"ok\",le=\"0.05\"} 1\n",
            "idfed_sts_request_duration_seconds_bucket{operation=\"AssumeRole\",outcome=\"ok\",le=\"10\"} 1\n",
            "idfed_sts_request_duration_seconds_bucket{operation=\"AssumeRole\",outcome=\"ok\",le=\"+Inf\"} 2\n",
            "idfed_sts_request_duration_seconds_count{operation=\"AssumeRole\",outcome=\"ok\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
