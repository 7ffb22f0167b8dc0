//! Broker overhead: `cargo bench -p idfed-tests --bench vend`.
//!
//! What idfed adds on top of the STS call itself: the whole vend pipeline (store reads, unsealing,
//! authorization, duration, plugin chain, validation, audit append) against an in-process STS stand-in that
//! answers at once (moto, at ~3 ms a call, would hide idfed's own cost). Median and p99 per vend, with no
//! plugin and with a chain of three, at 1 and at 64 concurrent callers. Asserts nothing about time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use idfed::audit::AuditLog;
use idfed::model::{
    AccountInput, AccountSourceInput, BindingSpec, Caller, Connector, Identity, Principal,
};
use idfed::plugins::{KvStore, PluginRuntime, RuntimeConfig};
use idfed::secret::Secret;
use idfed::store::{KeySource, SledStore, Store};
use idfed::vend::{VendOptions, Vendor};
use idfed_tests::{InstantSts, fixtures};
use uuid::Uuid;

const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::data","arn:aws:s3:::data/*"]}]}"#;
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
        SledStore::open(dir.path(), KeySource::File(dir.path().join("master.key"))).unwrap(),
    );
    let kv = KvStore::new(store.db().open_tree("plugin-kv").unwrap());
    let plugins = PluginRuntime::new(RuntimeConfig::default(), Some(store.data_dir()), kv).unwrap();
    let audit = AuditLog::open(store.db(), None).unwrap();
    let vendor = Vendor::new(store.clone(), Arc::new(InstantSts), plugins, audit);
    store
        .put_account(AccountInput {
            name: "main".into(),
            description: String::new(),
            source: AccountSourceInput::IamUser {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: Some(Secret::new("x".repeat(40))),
            },
            region: None,
            sts_endpoint: None,
        })
        .unwrap();
    let connector = |name: &str, bindings: Vec<BindingSpec>| Connector {
        id: Uuid::new_v4(),
        name: name.into(),
        description: String::new(),
        account: "main".into(),
        principal: Principal::AssumedRole {
            role_arn: "arn:aws:iam::123456789012:role/dev".into(),
            external_id: None,
            session_tags: vec![],
            source_identity: false,
        },
        policy: Some(S3_READ.into()),
        policy_arns: vec![],
        default_duration_seconds: None,
        max_duration_seconds: None,
        groups: vec!["dev".into()],
        system_scope: false,
        enabled: true,
        bindings,
    };
    let bind = |path: &str, config: &str| BindingSpec {
        id: Uuid::new_v4().to_string(),
        plugin: store
            .put_plugin(&std::fs::read(path).unwrap(), None)
            .unwrap(),
        config: config.into(),
        limits: None,
    };
    store.create_connector(connector("plain", vec![])).unwrap();
    store
        .create_connector(connector(
            "chained",
            vec![
                bind(fixtures::POLICY_GUARD, r#"{"mode": "deny", "actions": ["iam:*", "organizations:*"]}"#),
                bind(fixtures::DURATION_CAP, r#"{"default_max_duration_seconds": 3600}"#),
                bind(fixtures::SESSION_TAGS, r#"{"user_tag": "idfed-user", "team_tag": "team", "team_group_pattern": "team-*"}"#),
            ],
        ))
        .unwrap();

    println!(
        "idfed broker overhead: the vend pipeline against an STS that answers at once (2 tokio workers)\n"
    );
    for connector in ["plain", "chained"] {
        tokio.block_on(run(&vendor, connector, 1)); // warm-up: chain loading, caches
        for callers in [1, 64] {
            let samples = tokio.block_on(run(&vendor, connector, callers));
            println!(
                "{:<40} median {:>9.1?}   p99 {:>9.1?}   ({} vends)",
                format!("{connector}, {callers} concurrent caller(s)"),
                percentile(&samples, 0.5),
                percentile(&samples, 0.99),
                samples.len()
            );
        }
    }
}
