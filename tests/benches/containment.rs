//! What misbehaving plugins cost the host, measured (issue: plugin containment, second pass):
//! - how long a sleeping plugin holds a request (its deadline is 50 ms);
//! - a healthy binding's p50/p99 alone and while 200 concurrent requests hammer a sleeping one;
//! - the host time and host heap of the largest grants a plugin can return, refused or accepted.
//!
//! `cargo bench -p idfed-tests --bench containment` (prints figures; asserts only what must hold).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use idfed::plugins::{BindOptions, Binding, Decision, Limits, PluginFault, PrincipalType};
use idfed_tests::{S3_READ_POLICY, TestRuntime, fixtures, request};

/// Counts the host's heap: the bytes live now and the most live since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn bind(
    rt: &TestRuntime,
    id: &str,
    path: &str,
    config: &str,
    options: BindOptions,
) -> Binding {
    rt.runtime
        .bind_with(id, rt.load(path), config, &options)
        .await
        .unwrap()
}

/// Evaluates `good` `n` times, one after another; the latencies, sorted.
async fn latencies(rt: &TestRuntime, good: &Binding, n: usize) -> Vec<Duration> {
    let r = request(
        "alice",
        &["dev"],
        PrincipalType::AssumedRole,
        Some(S3_READ_POLICY),
    );
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        match rt.runtime.evaluate(good, &r).await {
            Ok(Decision::Allow { .. }) => {}
            other => panic!("the healthy binding must allow: {other:?}"),
        }
        all.push(started.elapsed());
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
    tokio.block_on(run());
}

async fn run() {
    let rt = TestRuntime::new();
    let r = request(
        "alice",
        &["dev"],
        PrincipalType::AssumedRole,
        Some(S3_READ_POLICY),
    );
    println!(
        "idfed plugin containment benchmark (2 tokio workers, default limits: deadline 50 ms)\n"
    );

    // 1. A sleeping plugin: how long it holds a request.
    let sleeper = bind(
        &rt,
        "sleeper",
        fixtures::SLEEPER,
        r#"{"sleep_ms": 10000}"#,
        BindOptions::default(),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let outcome = rt.runtime.evaluate(&sleeper, &r).await;
        assert!(
            matches!(outcome, Err(PluginFault::Timeout { waiting: true, .. })),
            "{outcome:?}"
        );
        held.push(started.elapsed());
    }
    held.sort();
    println!(
        "{:<60} median {:>8.1?}  max {:>8.1?}  (deadline 50 ms; target <= 60 ms)",
        "a plugin sleeping 10 s holds a request for",
        percentile(&held, 0.5),
        held[held.len() - 1]
    );

    // 2. A healthy binding while 200 concurrent requests hammer the sleeper.
    let good = bind(
        &rt,
        "good",
        fixtures::DURATION_CAP,
        "{}",
        BindOptions::default(),
    )
    .await;
    latencies(&rt, &good, 500).await; // warm-up
    let alone = latencies(&rt, &good, 5000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (busy, timeouts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hammer: Vec<_> = (0..200)
        .map(|_| {
            let (runtime, sleeper, r) = (rt.runtime.clone(), sleeper.clone(), r.clone());
            let (stop, busy, timeouts) = (stop.clone(), busy.clone(), timeouts.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match runtime.evaluate(&sleeper, &r).await {
                        Err(PluginFault::Busy { .. }) => busy.fetch_add(1, Ordering::Relaxed),
                        Err(PluginFault::Timeout { .. }) => {
                            timeouts.fetch_add(1, Ordering::Relaxed)
                        }
                        other => panic!("a sleeper must be refused: {other:?}"),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let hammered = latencies(&rt, &good, 5000).await;
    let window = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for h in hammer {
        h.await.unwrap();
    }
    println!(
        "{:<60} p50 {:>8.1?}  p99 {:>8.1?}",
        "healthy binding alone (5,000 evaluations)",
        percentile(&alone, 0.5),
        percentile(&alone, 0.99)
    );
    println!(
        "{:<60} p50 {:>8.1?}  p99 {:>8.1?}",
        "healthy binding, 200 requests hammering a sleeper",
        percentile(&hammered, 0.5),
        percentile(&hammered, 0.99)
    );
    println!(
        "{:<60} {} plugin_busy, {} plugin_timeout (in {:.1?} and the wind-down)",
        "  the sleeper's answers meanwhile",
        busy.load(Ordering::Relaxed),
        timeouts.load(Ordering::Relaxed),
        window
    );

    // 3. The largest grants: host time and host heap per evaluation.
    println!();
    let big_limits = Limits {
        deadline: Duration::from_millis(1000),
        memory_bytes: 64 << 20,
    };
    let cases: [(&str, &str, u32); 6] = [
        ("refused: 50,000 tags", "tags", 50_000),
        ("refused: 200,000 duplicate ARNs", "arns", 200_000),
        ("refused: a 1 MB inline policy", "policy", 1_000_000),
        ("refused: a tag value of 4 MB", "tag-value", 4_000_000),
        (
            "accepted: 49 added tags (50 in all, STS's maximum)",
            "tags",
            49,
        ),
        (
            "deny with a 4 MB reason (cut to 1 KiB)",
            "reason",
            4_000_000,
        ),
    ];
    for (label, kind, count) in cases {
        let b = bind(
            &rt,
            &format!("{kind}-{count}"),
            fixtures::OVERSIZED_GRANT,
            &format!(r#"{{"kind": "{kind}", "count": {count}}}"#),
            BindOptions {
                limits: Some(big_limits),
                tag_keys: (0..49)
                    .map(|i| format!("k{i}"))
                    .chain(["big".into()])
                    .collect(),
            },
        )
        .await;
        let mut times = Vec::new();
        let mut peaks = Vec::new();
        let mut code = String::new();
        for _ in 0..20 {
            let before = LIVE.load(Ordering::Relaxed);
            PEAK.store(before, Ordering::Relaxed);
            let started = Instant::now();
            let outcome = rt.runtime.evaluate(&b, &r).await;
            times.push(started.elapsed());
            peaks.push(PEAK.load(Ordering::Relaxed).saturating_sub(before));
            code = match outcome {
                Ok(Decision::Allow { .. }) => "allow".into(),
                Ok(Decision::Deny { .. }) => "deny".into(),
                Ok(Decision::NeedsApproval { .. }) => "needs_approval".into(),
                Err(fault) => fault.code().into(),
            };
        }
        times.sort();
        peaks.sort();
        println!(
            "{label:<60} {code:<22} evaluation median {:>8.1?}  host heap peak median {:>7.1} KiB",
            percentile(&times, 0.5),
            peaks[peaks.len() / 2] as f64 / 1024.0
        );
    }
    println!(
        "\n(the host heap peak includes the whole evaluation: the store, WASI context and the request lowered into the plugin)"
    );
}
