//! The vending endpoint over HTTP, as a user's load arrives: `cargo bench -p idfed-tests --bench http`
//! (needs `wrk`: `apt-get install wrk`).
//!
//! In one run, on the same machine: a bare axum hello-world (the floor), then idfed (plain HTTP on
//! 127.0.0.1, its real STS client) against the STS stand-in **in another process** on loopback, loaded by
//! `wrk` at 1 and 64 connections: no plugin and a chain of three, each with the credential cache off and
//! hit — requests/s, p50, p99 and the share of hello-world at the same connections. Then a burst of 1,000
//! identical concurrent requests on a caching connector (and the STS calls it made), and throughput with
//! the durable audit log on and off. The STS budget is off (`budget_per_second = 0`) so that it measures
//! idfed, not the budget. Asserts nothing about time.

use std::process::Command;

/// The allocator of the idfed binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;
use std::time::Instant;

use idfed::api::{ApiLimits, AppState, serve};
use idfed::auth::static_dir::{UserEntry, add_user, hash_password};
use idfed::config::Config;
use idfed::model::Connector;
use idfed::secret::Secret;
use idfed::service::Service;
use idfed::store::Store;
use idfed_tests::add_benchmark_connectors;
use idfed_tests::sts_standin::{StandInOptions, spawn_process};

/// What `wrk` measured.
struct Run {
    requests_per_second: f64,
    p50: String,
    p99: String,
    non_2xx: String,
}

fn wrk(url: &str, connections: usize, seconds: u64, script: Option<&std::path::Path>) -> Run {
    let threads = connections.clamp(1, 2).to_string();
    let mut command = Command::new("wrk");
    command.args([
        "-t",
        &threads,
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    if std::env::var_os("IDFED_BENCH_RAW").is_some() {
        eprintln!("{report}");
    }
    let field = |prefix: &str| {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    Run {
        requests_per_second: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        non_2xx: report
            .lines()
            .find(|l| l.contains("Non-2xx"))
            .map(|l| l.trim().to_owned())
            .unwrap_or_default(),
    }
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed: apt-get install wrk");
        std::process::exit(1);
    }
    let seconds: u64 = std::env::var("IDFED_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sts = spawn_process(
        std::path::Path::new(env!("CARGO_BIN_EXE_sts-standin")),
        &StandInOptions::default(),
    );

    // The floor: a bare axum hello-world on the same runtime.
    let hello = tokio.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello, world" }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });

    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let password = "benchmark-password";
    add_user(
        &users,
        UserEntry {
            name: "alice".into(),
            display_name: None,
            email: None,
            active: true,
            groups: vec!["devs".into(), "team-blue".into()],
            password_hash: hash_password(&Secret::new(password)).unwrap(),
        },
        false,
    )
    .unwrap();
    let config = Config::parse(&format!(
        "[server]\nplain_http = true\nlisten = \"127.0.0.1:0\"\n[data]\ndir = {:?}\n\
         [auth.directory]\ntype = \"static\"\nfile = {:?}\n\
         [sts]\nendpoint = {:?}\nbudget_per_second = 0\n",
        dir.path().join("data"),
        users,
        sts.endpoint(),
    ))
    .unwrap();
    let service = Service::open(&config).unwrap();
    add_benchmark_connectors(service.store.as_ref(), "devs");
    for name in ["plain", "chained"] {
        let original = service.store.get_connector(name).unwrap().unwrap();
        service
            .store
            .create_connector(Connector {
                id: uuid::Uuid::new_v4(),
                name: format!("{name}-cached"),
                credential_cache: true,
                // A binding's id keys its private store: the copy's bindings are bindings of their own.
                bindings: original
                    .bindings
                    .iter()
                    .map(|b| idfed::model::BindingSpec {
                        id: uuid::Uuid::new_v4().to_string(),
                        ..b.clone()
                    })
                    .collect(),
                ..original.clone()
            })
            .unwrap();
    }
    // IDFED_BENCH_NOT_DURABLE=1: every case without the durable audit log (to see what it costs).
    let durable = std::env::var_os("IDFED_BENCH_NOT_DURABLE").is_none();
    service.audit.set_durable(durable);
    let service = Arc::new(service);
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(service.clone(), ApiLimits::from(&config.server));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio.spawn(serve(listener, None, state, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let token: String = tokio.block_on(async {
        let answer = client
            .post(format!("http://{addr}/api/v1/login"))
            .json(&serde_json::json!({"username": "alice", "password": password}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = answer.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    });
    let script = dir.path().join("vend.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"format\": \"json\"}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
        ),
    )
    .unwrap();
    let vend_url =
        |connector: &str| format!("http://{addr}/api/v1/connectors/{connector}/credentials");

    println!(
        "idfed's vending endpoint over HTTP: wrk on loopback, {seconds} s a run; STS is the stand-in in \
         another process ({}); durable audit on unless said\n",
        sts.endpoint()
    );
    println!(
        "{:<34} {:>5} {:>12} {:>10} {:>10} {:>9}",
        "case", "conns", "requests/s", "p50", "p99", "of hello"
    );
    let mut floor = std::collections::HashMap::new();
    let hello_url = format!("http://{hello}/");
    wrk(&hello_url, 8, 1, None);
    for connections in [1, 64] {
        let run = wrk(&hello_url, connections, seconds, None);
        println!(
            "{:<34} {connections:>5} {:>12.0} {:>10} {:>10} {:>9} {}",
            "axum hello-world (the floor)",
            run.requests_per_second,
            run.p50,
            run.p99,
            "1",
            run.non_2xx
        );
        floor.insert(connections, run.requests_per_second);
    }
    let cases = [
        ("no plugin, cache off", "plain"),
        ("no plugin, cache hit", "plain-cached"),
        ("chain of three, cache hit", "chained-cached"),
        ("chain of three, cache off", "chained"),
    ];
    // IDFED_BENCH_CASES=plain-cached,chained … runs only those (e.g. under a profiler).
    let only: Option<Vec<String>> = std::env::var("IDFED_BENCH_CASES")
        .ok()
        .map(|list| list.split(',').map(str::to_owned).collect());
    for (label, connector) in cases {
        if only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|c| c == connector))
        {
            continue;
        }
        let url = vend_url(connector);
        wrk(&url, 8, 1, Some(&script)); // warm-up: chain loading, the cache entry
        for connections in [1, 64] {
            let run = wrk(&url, connections, seconds, Some(&script));
            let share = run.requests_per_second / floor[&connections];
            println!(
                "{label:<34} {connections:>5} {:>12.0} {:>10} {:>10} {:>9} {}",
                run.requests_per_second,
                run.p50,
                run.p99,
                format!("1/{:.0}", 1.0 / share.max(1e-9)),
                run.non_2xx
            );
        }
    }

    // One connection again, timed request by request by a client of our own: wrk's latency figures for a
    // single connection are at times inconsistent with its own count (an average that, times the requests
    // made, exceeds the run).
    println!("\none connection, 2,000 sequential requests timed by the benchmark's own client:");
    for (label, connector) in cases {
        if only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|c| c == connector))
        {
            continue;
        }
        let url = vend_url(connector);
        let mut samples: Vec<std::time::Duration> = tokio.block_on(async {
            let client = reqwest::Client::new();
            let mut samples = Vec::with_capacity(2000);
            for _ in 0..2000 {
                let started = Instant::now();
                let answer = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"format": "json"}))
                    .send()
                    .await
                    .unwrap();
                answer.bytes().await.unwrap();
                samples.push(started.elapsed());
            }
            samples
        });
        samples.sort();
        println!(
            "{label:<34} p50 {:>9.1?}   p99 {:>9.1?}   max {:>9.1?}",
            samples[1000], samples[1980], samples[1999]
        );
    }

    // Durable audit off, for its cost.
    service.audit.set_durable(false);
    let url = vend_url("plain");
    for connections in [1, 64] {
        let run = wrk(&url, connections, seconds, Some(&script));
        let share = run.requests_per_second / floor[&connections];
        println!(
            "{:<34} {connections:>5} {:>12.0} {:>10} {:>10} {:>9} {}",
            "no plugin, cache off, audit NOT durable",
            run.requests_per_second,
            run.p50,
            run.p99,
            format!("1/{:.0}", 1.0 / share.max(1e-9)),
            run.non_2xx
        );
    }
    service.audit.set_durable(durable);
    let group = service.audit.durability_stats();
    println!(
        "\ngroup commit: {} durable records took {} flushes ({:.1} records a flush)",
        group.durable_appends,
        group.flushes,
        group.durable_appends as f64 / group.flushes.max(1) as f64
    );

    // The burst: 1,000 identical concurrent requests on a caching connector with nothing cached.
    // The last wrk run's connections may still have vends in flight: wait until STS is quiet.
    let mut quiet = sts.total_calls();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = sts.total_calls();
        if now == quiet {
            break;
        }
        quiet = now;
    }
    service.vendor.cache().flush_all();
    let cache_before = service.vendor.cache().stats();
    let before = sts.total_calls();
    let started = Instant::now();
    let statuses: Vec<u16> = tokio.block_on(async {
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (client, url, token) =
                    (client.clone(), vend_url("plain-cached"), token.clone());
                tokio::spawn(async move {
                    client
                        .post(url)
                        .bearer_auth(token)
                        .json(&serde_json::json!({}))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    });
    let elapsed = started.elapsed();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let cache = service.vendor.cache().stats();
    println!(
        "burst: 1,000 identical concurrent requests (no plugin, cache on, nothing cached): {ok} answered \
         200 in {:.0} ms, {} STS call(s); {} shared the call in flight, {} were cache hits",
        elapsed.as_secs_f64() * 1000.0,
        sts.total_calls() - before,
        cache.coalesced - cache_before.coalesced,
        cache.hits - cache_before.hits,
    );

    let _ = stop.send(());
    tokio.block_on(server).unwrap().unwrap();
    service.shutdown().unwrap();
}
