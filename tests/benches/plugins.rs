//! The plugin runtime's speed: `cargo bench -p idfed-tests --bench plugins`.
//!
//! Prints median and p99 of: one evaluation with a fresh instance per call; a chain of three; the same
//! policy logic as a native Rust function (and the ratio); and runtime start-up with 10 plugins, compiled
//! and cached; and one evaluation of the Python business-hours plugin (`plugins/python/business-hours`, built
//! with componentize-py) next to the Rust one: median, p99, first call, size and the ratio. A benchmark,
//! not a test: it asserts nothing about time.

use std::time::{Duration, Instant};

use idfed::plugins::{
    BindOptions, Binding, ChainOutcome, Decision, PluginRuntime, PrincipalType, RuntimeConfig,
};
use idfed_tests::{S3_READ_POLICY, TestRuntime, fixtures, request};

const ITERATIONS: usize = 5_000;
const WARMUP: usize = 500;

struct Figures {
    median: Duration,
    p99: Duration,
}

fn measure(mut f: impl FnMut(), iterations: usize, warmup: usize) -> Figures {
    for _ in 0..warmup {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    Figures {
        median: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
    }
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<48} median {:>10.1?}   p99 {:>10.1?}",
        f.median, f.p99
    );
}

fn main() {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = TestRuntime::new();
    let bind = |id: &str, path: &str, config: &str| -> Binding {
        tokio
            .block_on(rt.runtime.bind(id, rt.load(path), config, None))
            .unwrap()
    };
    let guard_config = r#"{"mode": "deny", "actions": ["iam:*", "organizations:*"]}"#;
    let guard = bind("guard", fixtures::POLICY_GUARD, guard_config);
    let cap = bind(
        "cap",
        fixtures::DURATION_CAP,
        r#"{"rules": [{"group": "contractors", "max_duration_seconds": 3600}], "default_max_duration_seconds": 28800}"#,
    );
    let tags = tokio
        .block_on(rt.runtime.bind_with(
            "tags",
            rt.load(fixtures::SESSION_TAGS),
            r#"{"user_tag": "idfed-user", "team_tag": "team", "team_group_pattern": "team-*"}"#,
            &BindOptions {
                tag_keys: vec!["idfed-user".into(), "team".into()],
                ..BindOptions::default()
            },
        ))
        .unwrap();
    let req = request(
        "alice",
        &["dev", "team-blue"],
        PrincipalType::AssumedRole,
        Some(S3_READ_POLICY),
    );

    println!(
        "idfed plugin benchmark: {ITERATIONS} iterations after {WARMUP} warm-up, fresh instance per evaluation\n"
    );
    let faults_before = minor_faults();
    let one = measure(
        || match tokio.block_on(rt.runtime.evaluate(&guard, &req)) {
            Ok(Decision::Allow { .. }) => {}
            other => panic!("{other:?}"),
        },
        ITERATIONS,
        WARMUP,
    );
    print("one evaluation (policy-guard)", &one);
    if let (Some(before), Some(after)) = (faults_before, minor_faults()) {
        let per_call = (after - before) as f64 / (ITERATIONS + WARMUP) as f64;
        println!("{:<48} {per_call:.2}", "  minor page faults per evaluation");
    }

    let chain = [guard.clone(), cap, tags];
    let three = measure(
        || match tokio.block_on(rt.runtime.run_chain(&chain, &req)) {
            ChainOutcome::Allow(_) => {}
            other => panic!("{other:?}"),
        },
        ITERATIONS,
        WARMUP,
    );
    print("chain of three (guard, duration-cap, session-tags)", &three);

    // The plugin's own code path (config parsing, check, decision), compiled natively.
    let native_request = sdk_request(&req);
    let native = measure(
        || {
            let decision =
                idfed_sdk::evaluate::<policy_guard::PolicyGuard>(guard_config, &native_request);
            assert!(std::hint::black_box(decision).unwrap().is_allow());
        },
        ITERATIONS * 4,
        WARMUP,
    );
    print("the same logic as a native function", &native);
    println!(
        "{:<48} {:.1}x (median, wasm / native)",
        "ratio",
        one.median.as_secs_f64() / native.median.as_secs_f64()
    );

    // Start-up: a new runtime loading 10 distinct plugins, with an empty and with a warm compiled-component cache.
    let ten: Vec<Vec<u8>> = [
        fixtures::BUSINESS_HOURS,
        fixtures::DURATION_CAP,
        fixtures::POLICY_GUARD,
        fixtures::RATE_LIMIT,
        fixtures::SESSION_TAGS,
        fixtures::PANIC_PLUGIN,
        fixtures::WIDEN_DURATION,
        fixtures::PLUGIN_ERROR,
        fixtures::SANDBOX_PROBE,
        fixtures::LOG_FLOOD,
    ]
    .iter()
    .map(|path| std::fs::read(path).unwrap())
    .collect();
    let kv = rt.runtime.kv().clone();
    let start = |dir: &tempfile::TempDir| {
        let data =
            cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let runtime =
            PluginRuntime::new(RuntimeConfig::default(), Some(&data), kv.clone()).unwrap();
        for (i, wasm) in ten.iter().enumerate() {
            runtime.load(&format!("p{i}"), wasm).unwrap();
        }
    };
    let compiled = measure(|| start(&tempfile::tempdir().unwrap()), 5, 0);
    print("start-up with 10 plugins, compiled", &compiled);
    let warm = tempfile::tempdir().unwrap();
    start(&warm);
    let cached = measure(|| start(&warm), 20, 1);
    print("start-up with 10 plugins, cached", &cached);

    python_vs_rust(&tokio, &req);
}

/// One evaluation of the business-hours plugin, in Python and in Rust: the same configuration and request.
fn python_vs_rust(tokio: &tokio::runtime::Runtime, req: &idfed::plugins::PolicyRequest) {
    use idfed_tests::python;
    const PY_ITERATIONS: usize = 500;
    const PY_WARMUP: usize = 50;
    println!(
        "\nbusiness-hours, Python (componentize-py) next to Rust; {PY_ITERATIONS} iterations after {PY_WARMUP} warm-up\n"
    );
    // Built (if its sources changed) and compiled (if not cached in target/python-plugins/) before timing.
    let py_wasm = python::component(python::BUSINESS_HOURS);
    let rt = python::runtime();
    let config = r#"{"exempt_groups": ["oncall"]}"#;
    let deadline = idfed::plugins::BindOptions {
        limits: Some(idfed::plugins::Limits {
            deadline: Duration::from_secs(5),
            ..idfed::plugins::Limits::default()
        }),
        ..BindOptions::default()
    };
    let rows = [
        ("Rust", std::path::PathBuf::from(fixtures::BUSINESS_HOURS)),
        ("Python", py_wasm),
    ];
    let mut medians = Vec::new();
    for (lang, path) in rows {
        let wasm = std::fs::read(&path).unwrap();
        let plugin = rt
            .runtime
            .load(&format!("business-hours-{lang}"), &wasm)
            .unwrap();
        let started = Instant::now();
        let binding = tokio
            .block_on(rt.runtime.bind_with(lang, plugin, config, &deadline))
            .unwrap();
        let first_bind = started.elapsed();
        let started = Instant::now();
        let evaluate = || match tokio.block_on(rt.runtime.evaluate(&binding, req)) {
            Ok(Decision::Allow { .. }) => {}
            other => panic!("{other:?}"),
        };
        evaluate();
        let first_eval = started.elapsed();
        let figures = measure(evaluate, PY_ITERATIONS, PY_WARMUP);
        print(&format!("one evaluation, {lang}"), &figures);
        println!(
            "{:<48} first call (validate-config) {first_bind:.1?}, first evaluation {first_eval:.1?}, size {:.2} MiB",
            "",
            wasm.len() as f64 / (1 << 20) as f64
        );
        medians.push((figures, wasm.len()));
    }
    let (rust, py) = (&medians[0], &medians[1]);
    println!(
        "{:<48} median {:.0}x, p99 {:.0}x, size {:.0}x (Python / Rust)",
        "ratio",
        py.0.median.as_secs_f64() / rust.0.median.as_secs_f64(),
        py.0.p99.as_secs_f64() / rust.0.p99.as_secs_f64(),
        py.1 as f64 / rust.1 as f64
    );
}

/// The host's request as the SDK's type, for running plugin code natively.
fn sdk_request(r: &idfed::plugins::PolicyRequest) -> idfed_sdk::Request {
    use idfed_sdk::{Caller, Connector, PrincipalType as P, SessionTag, Timestamp};
    idfed_sdk::Request {
        request_id: r.request_id.clone(),
        caller: Caller {
            user_name: r.caller.user_name.clone(),
            groups: r.caller.groups.clone(),
            is_admin: r.caller.is_admin,
            is_system_scope: r.caller.is_system_scope,
            source_ip: r.caller.source_ip.clone(),
            user_agent: r.caller.user_agent.clone(),
            // The benchmark's requests come from users.
            workload: None,
        },
        connector: Connector {
            name: r.connector.name.clone(),
            principal_type: match r.connector.principal_type {
                PrincipalType::FederatedUser => P::FederatedUser,
                PrincipalType::IamUser => P::IamUser,
                PrincipalType::AssumedRole => P::AssumedRole,
            },
            account_name: r.connector.account_name.clone(),
            role_arn: r.connector.role_arn.clone(),
            default_duration_seconds: r.connector.default_duration_seconds,
            max_duration_seconds: r.connector.max_duration_seconds,
        },
        requested_duration_seconds: r.requested_duration_seconds,
        duration_seconds: r.duration_seconds,
        policy: r.policy.clone(),
        policy_arns: r.policy_arns.clone(),
        tags: r
            .tags
            .iter()
            .map(|t| SessionTag {
                key: t.key.clone(),
                value: t.value.clone(),
            })
            .collect(),
        time: Timestamp::from_system_time(r.time),
        justification: r.justification.clone(),
        ticket: r.ticket.clone(),
        purpose: idfed_sdk::Purpose::Credentials,
        approval: None,
    }
}

/// The process's minor page faults so far (Linux), to show what a fresh instance costs the kernel.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses: state is the 1st, minflt the 8th.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(7)?
        .parse()
        .ok()
}
