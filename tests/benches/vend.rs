//! Broker overhead: `cargo bench -p idfed-tests --bench vend`.
//!
//! What idfed adds on top of the STS call itself: the whole vend pipeline (store reads, unsealing,
//! authorization, duration, plugin chain, validation, audit append) against an in-process STS stand-in that
//! answers at once (moto, at ~3 ms a call, would hide idfed's own cost). Median and p99 per vend, with no
//! plugin and with a chain of three, at 1 and at 64 concurrent callers, with the audit log durable (every
//! record fsynced before the answer, by group commit) and not. Asserts nothing about time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use idfed::audit::AuditLog;
use idfed::model::{Caller, Identity};
use idfed::plugins::{KvStore, PluginRuntime, RuntimeConfig};
use idfed::store::{DataStore, KeySource};
use idfed::vend::{VendOptions, Vendor};
use idfed_tests::{InstantSts, add_benchmark_connectors};

/// Vends measured per configuration, shared among the callers.
const TOTAL_VENDS: usize = 12_800;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn run(vendor: &Vendor, connector: &str, callers: usize) -> Vec<Duration> {
    let per_caller = (TOTAL_VENDS / callers).max(50);
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let (vendor, connector) = (vendor.clone(), connector.to_owned());
            tokio::spawn(async move {
                let caller = Caller {
                    identity: Identity::User {
                        name: format!("user{i}"),
                        groups: vec!["dev".into(), "team-blue".into()],
                        is_admin: false,
                    },
                    source_ip: Some("127.0.0.1".into()),
                    user_agent: None,
                };
                let mut samples = Vec::with_capacity(per_caller);
                for _ in 0..per_caller {
                    let started = Instant::now();
                    vendor
                        .vend(&caller, &connector, VendOptions::default())
                        .await
                        .unwrap();
                    samples.push(started.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    all
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        DataStore::open(dir.path(), KeySource::File(dir.path().join("master.key"))).unwrap(),
    );
    let kv = KvStore::new(store.db().open_tree("plugin-kv").unwrap());
    let plugins = PluginRuntime::new(RuntimeConfig::default(), Some(store.data_dir()), kv).unwrap();
    let audit = AuditLog::open(store.db(), None).unwrap();
    let vendor = Vendor::new(store.clone(), Arc::new(InstantSts), plugins, audit.clone());
    add_benchmark_connectors(store.as_ref(), "dev");

    println!(
        "idfed broker overhead: the vend pipeline against an STS that answers at once (2 tokio workers)\n"
    );
    for (durable, audited) in [(true, "durable audit"), (false, "audit NOT durable")] {
        audit.set_durable(durable);
        for connector in ["plain", "chained"] {
            tokio.block_on(run(&vendor, connector, 1)); // warm-up: chain loading, caches
            for callers in [1, 64] {
                let samples = tokio.block_on(run(&vendor, connector, callers));
                println!(
                    "{:<58} median {:>9.1?}   p99 {:>9.1?}   ({} vends)",
                    format!("{connector}, {callers} concurrent caller(s), {audited}"),
                    percentile(&samples, 0.5),
                    percentile(&samples, 0.99),
                    samples.len()
                );
            }
        }
    }
}
