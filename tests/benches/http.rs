//! The vending endpoint over HTTP, as a user's load arrives: `cargo bench -p idfed-tests --bench http`
//! (needs `wrk`: `apt-get install wrk`).
//!
//! In one run, on the same machine: a bare axum hello-world (the floor), idfed's `GET /healthz` (its HTTP
//! stack alone: router and middleware around a handler that does nothing), then idfed (plain HTTP on
//! 127.0.0.1, its real STS client) against the STS stand-in **in another process** on loopback, loaded by
//! `wrk` at 1 and 64 connections: no plugin and a chain of three, each with the credential cache off and
//! hit — requests/s, p50, p99 and the share of hello-world at the same connections. Then a burst of 1,000
//! identical concurrent requests on a caching connector (and the STS calls it made), and throughput with
//! the durable audit log on and off. The STS budget is off (`budget_per_second = 0`) so that it measures
//! idfed, not the budget.
//!
//! Then the same on PostgreSQL (a throw-away cluster on loopback, `fsync` on, as durable as sled's
//! audit log): one replica at 64 connections, and three replicas on one database loaded round-robin
//! (three `wrk` at once, one a replica, 21 connections each), no plugin with the cache off and hit,
//! each beside sled's figure of the same case in this run; and the audit log's group commits there.
//! Skipped, with a line saying so, when PostgreSQL is not installed. Asserts nothing about time.

use std::process::Command;

/// The allocator of the idfed binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use idfed::api::{ApiLimits, AppState, serve};
use idfed::audit::DurabilityStats;
use idfed::auth::static_dir::{UserEntry, add_user, hash_password};
use idfed::config::Config;
use idfed::model::Connector;
use idfed::secret::Secret;
use idfed::service::Service;
use idfed::store::Store;
use idfed_tests::add_benchmark_connectors;
use idfed_tests::postgres::PgCluster;
use idfed_tests::sts_standin::{StandInOptions, spawn_process};

/// What `wrk` measured.
struct Run {
    requests_per_second: f64,
    p50: String,
    p99: String,
    non_2xx: String,
}

fn wrk(url: &str, connections: usize, seconds: u64, script: Option<&std::path::Path>) -> Run {
    wrk_threads(url, connections.clamp(1, 2), connections, seconds, script)
}

/// [`wrk`] with `threads` of its own.
fn wrk_threads(
    url: &str,
    threads: usize,
    connections: usize,
    seconds: u64,
    script: Option<&std::path::Path>,
) -> Run {
    let threads = threads.to_string();
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
    add_connectors(service.store.as_ref());
    // IDFED_BENCH_NOT_DURABLE=1: every case without the durable audit log (to see what it costs); the
    // PostgreSQL rows then run on a cluster with fsync off.
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
    let mut floor = HashMap::new();
    // Each case's requests/s at 64 connections, for the PostgreSQL rows' ratios.
    let mut sled_at_64 = HashMap::new();
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
    // The HTTP stack alone: idfed's own router and middleware around a handler that does nothing.
    let healthz_url = format!("http://{addr}/healthz");
    wrk(&healthz_url, 8, 1, None);
    for connections in [1, 64] {
        let run = wrk(&healthz_url, connections, seconds, None);
        let share = run.requests_per_second / floor[&connections];
        println!(
            "{:<34} {connections:>5} {:>12.0} {:>10} {:>10} {:>9} {}",
            "idfed GET /healthz (HTTP stack)",
            run.requests_per_second,
            run.p50,
            run.p99,
            format!("{share:.2}"),
            run.non_2xx
        );
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
        // Warm-up: one vend answered first (a chain's plugins are compiled by the first request, which
        // can take longer than wrk's 2 s timeout and would count against the next run), then the cache
        // entry and the pools.
        tokio.block_on(async {
            let answer = client
                .post(&url)
                .bearer_auth(&token)
                .json(&serde_json::json!({"format": "json"}))
                .timeout(std::time::Duration::from_secs(120))
                .send()
                .await
                .unwrap();
            assert!(
                answer.status().is_success(),
                "warm-up vend: {}",
                answer.status()
            );
        });
        wrk(&url, 8, 1, Some(&script));
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
            if connections == 64 {
                sled_at_64.insert(connector, run.requests_per_second);
            }
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
    drop(service);

    postgres_rows(&PgBench {
        tokio: &tokio,
        seconds,
        dir: dir.path(),
        users: &users,
        password,
        sts_endpoint: &sts.endpoint(),
        durable,
        floor_at_64: floor[&64],
        sled_at_64: &sled_at_64,
        only: only.as_deref(),
    });
}

/// The benchmark connectors, and a copy of `plain` and `chained` with the credential cache on
/// (`plain-cached`, `chained-cached`).
fn add_connectors(store: &dyn Store) {
    add_benchmark_connectors(store, "devs");
    for name in ["plain", "chained"] {
        let original = store.get_connector(name).unwrap().unwrap();
        store
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
}

/// What the PostgreSQL rows need of the sled part's run.
struct PgBench<'a> {
    tokio: &'a tokio::runtime::Runtime,
    seconds: u64,
    /// Where the replicas' directories and the shared master key go.
    dir: &'a Path,
    users: &'a Path,
    password: &'a str,
    sts_endpoint: &'a str,
    /// Off (`IDFED_BENCH_NOT_DURABLE`): the cluster runs with `fsync` off.
    durable: bool,
    /// hello-world's requests/s at 64 connections.
    floor_at_64: f64,
    /// Sled's requests/s at 64 connections, by connector.
    sled_at_64: &'a HashMap<&'static str, f64>,
    /// `IDFED_BENCH_CASES`.
    only: Option<&'a [String]>,
}

/// An idfed replica on PostgreSQL, served on a loopback port of its own.
struct Replica {
    service: Arc<Service>,
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Replica {
    /// Opens replica `index` on `database_url` (its own `dir`, the master key shared) and serves it.
    fn start(bench: &PgBench, database_url: &str, index: usize) -> Replica {
        let shared = bench.dir.join("postgres");
        let own = shared.join(format!("r{index}"));
        std::fs::create_dir_all(&own).unwrap();
        let config = Config::parse(&format!(
            "[server]\nplain_http = true\nlisten = \"127.0.0.1:0\"\n\
             [data]\ndir = {:?}\nmaster_key_file = {:?}\nbackend = \"postgres\"\n\
             [data.postgres]\nurl = {database_url:?}\n\
             [auth.directory]\ntype = \"static\"\nfile = {:?}\n\
             [sts]\nendpoint = {:?}\nbudget_per_second = 0\n",
            own.join("data"),
            shared.join("master.key"),
            bench.users,
            bench.sts_endpoint,
        ))
        .unwrap();
        config.check().unwrap();
        // In the runtime: on PostgreSQL the service follows the other replicas' changes in a task of it.
        let service = bench
            .tokio
            .block_on(async { Service::open(&config) })
            .unwrap();
        assert_eq!(service.store.db().engine(), "postgres");
        service.audit.set_durable(bench.durable);
        let service = Arc::new(service);
        let listener = bench
            .tokio
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(service.clone(), ApiLimits::from(&config.server));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = bench.tokio.spawn(serve(listener, None, state, async move {
            let _ = stopped.await;
        }));
        Replica {
            service,
            addr,
            stop,
            server,
        }
    }

    fn vend_url(&self, connector: &str) -> String {
        format!(
            "http://{}/api/v1/connectors/{connector}/credentials",
            self.addr
        )
    }

    fn stop(self, tokio: &tokio::runtime::Runtime) {
        let _ = self.stop.send(());
        tokio.block_on(self.server).unwrap().unwrap();
        self.service.shutdown().unwrap();
    }
}

/// One `wrk` a URL, all at once, `connections` each: the requests/s summed, the middle of their p50s,
/// the worst of their p99s.
fn wrk_round_robin(urls: &[String], connections: usize, seconds: u64, script: &Path) -> Run {
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let running: Vec<_> = urls
            .iter()
            // One thread each: the three load the 2 cores as one wrk of two threads would, not thrice.
            .map(|url| scope.spawn(move || wrk_threads(url, 1, connections, seconds, Some(script))))
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    // What wrk did not print ("?") sorts last: a missing p99 is not hidden by the others.
    let key = |text: &String| wrk_duration(text).unwrap_or(f64::INFINITY);
    let mut p50s: Vec<&String> = runs.iter().map(|r| &r.p50).collect();
    p50s.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let p99 = runs
        .iter()
        .map(|r| &r.p99)
        .max_by(|a, b| key(a).total_cmp(&key(b)))
        .cloned()
        .unwrap_or_default();
    Run {
        requests_per_second: runs.iter().map(|r| r.requests_per_second).sum(),
        p50: p50s
            .get(p50s.len() / 2)
            .map_or_else(String::new, |p| (*p).clone()),
        p99,
        non_2xx: runs
            .iter()
            .map(|r| r.non_2xx.as_str())
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// A duration as wrk prints it (`812.00us`, `1.23ms`, `2.01s`, `1.50m`), in microseconds.
fn wrk_duration(text: &str) -> Option<f64> {
    let unit = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(unit);
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

/// What each replica's audit log committed since `before` (its stats then).
fn print_group_commits(replicas: &[Replica], before: &[DurabilityStats]) {
    for (index, replica) in replicas.iter().enumerate() {
        let now = replica.service.audit.durability_stats();
        let (appends, flushes) =
            before
                .get(index)
                .map_or((now.durable_appends, now.flushes), |b| {
                    (
                        now.durable_appends - b.durable_appends,
                        now.flushes - b.flushes,
                    )
                });
        println!(
            "  group commit, replica {index}: {appends} durable records took {flushes} commits \
             ({:.1} records a commit)",
            appends as f64 / flushes.max(1) as f64
        );
    }
}

/// The PostgreSQL rows: one replica, then three on one database round-robin (see the module docs).
fn postgres_rows(bench: &PgBench) {
    let Some(bin) = idfed_tests::postgres::bin_dir() else {
        println!(
            "\nPostgreSQL is not installed (apt-get install postgresql): the PostgreSQL rows are skipped"
        );
        return;
    };
    let version = bin
        .parent()
        .and_then(Path::file_name)
        .map_or_else(String::new, |v| v.to_string_lossy().into_owned());
    let cluster = if bench.durable {
        PgCluster::start_durable()
    } else {
        PgCluster::start()
    };
    cluster.create_database("idfed_bench");
    let database_url = cluster.url("idfed_bench");
    let cases = [
        ("no plugin, cache off", "plain"),
        ("no plugin, cache hit", "plain-cached"),
    ];
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(_, connector)| {
            bench
                .only
                .is_none_or(|only| only.iter().any(|c| c == connector))
        })
        .collect();
    let each = 64 / 3;

    println!(
        "\non PostgreSQL {version} (a cluster on loopback, fsync {}; {} connections a replica), the same STS \
         stand-in; \"of sled\" is sled's requests/s of the same case at 64 connections above; \
         round-robin: three wrk at once, one a replica, {each} connections each (p50: the middle of \
         theirs, p99: the worst)",
        if bench.durable { "on" } else { "OFF" },
        idfed::config::PostgresSection::default().pool_size,
    );
    println!(
        "{:<46} {:>5} {:>12} {:>10} {:>10} {:>9} {:>11}",
        "case", "conns", "requests/s", "p50", "p99", "of hello", "of sled"
    );
    let row = |label: &str, connections: &str, connector: &str, run: &Run| {
        let share = run.requests_per_second / bench.floor_at_64;
        let of_sled = bench.sled_at_64.get(connector).map_or_else(
            || "-".to_owned(),
            |sled| format!("{:.2}× sled", run.requests_per_second / sled.max(1e-9)),
        );
        println!(
            "{label:<46} {connections:>5} {:>12.0} {:>10} {:>10} {:>9} {:>11} {}",
            run.requests_per_second,
            run.p50,
            run.p99,
            format!("1/{:.0}", 1.0 / share.max(1e-9)),
            of_sled,
            run.non_2xx
        );
    };

    // The first replica: the connectors are made once, in the shared state.
    let mut replicas = vec![Replica::start(bench, &database_url, 0)];
    add_connectors(replicas[0].service.store.as_ref());
    // One login: a session is shared by the replicas.
    let token: String = bench.tokio.block_on(async {
        let answer = reqwest::Client::new()
            .post(format!("http://{}/api/v1/login", replicas[0].addr))
            .json(&serde_json::json!({"username": "alice", "password": bench.password}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = answer.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    });
    let script = bench.dir.join("vend-postgres.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"format\": \"json\"}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
        ),
    )
    .unwrap();

    for (label, connector) in &cases {
        let url = replicas[0].vend_url(connector);
        wrk(&url, 8, 1, Some(&script)); // warm-up: the cache entry
        let run = wrk(&url, 64, bench.seconds, Some(&script));
        row(&format!("1 replica: {label}"), "64", connector, &run);
    }
    print_group_commits(&replicas, &[]);

    replicas.push(Replica::start(bench, &database_url, 1));
    replicas.push(Replica::start(bench, &database_url, 2));
    let before: Vec<DurabilityStats> = replicas
        .iter()
        .map(|r| r.service.audit.durability_stats())
        .collect();
    for (label, connector) in &cases {
        let urls: Vec<String> = replicas.iter().map(|r| r.vend_url(connector)).collect();
        wrk_round_robin(&urls, 8, 1, &script); // warm-up: each replica's cache entry
        let run = wrk_round_robin(&urls, each, bench.seconds, &script);
        row(
            &format!("3 replicas, round-robin: {label}"),
            &format!("3×{each}"),
            connector,
            &run,
        );
    }
    print_group_commits(&replicas, &before);

    for replica in replicas {
        replica.stop(bench.tokio);
    }
    drop(cluster);
}
