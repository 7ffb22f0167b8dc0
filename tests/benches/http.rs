//! The vending endpoint over HTTP: `cargo bench -p idfed-tests --bench http` (needs `wrk`:
//! `apt-get install wrk`).
//!
//! A real idfed server (plain HTTP on 127.0.0.1) whose STS is an in-process stand-in that answers at once,
//! loaded by `wrk` on loopback: requests per second and p50/p99 for `POST /connectors/{c}/credentials`
//! with a session token, at 1, 64 and 256 connections, with no plugin and with a chain of three. Asserts
//! nothing about time.

use std::process::Command;
use std::sync::Arc;

use idfed::api::{ApiLimits, AppState, serve};
use idfed::auth::static_dir::{UserEntry, add_user, hash_password};
use idfed::config::Config;
use idfed::secret::Secret;
use idfed::service::Service;
use idfed::vend::Vendor;
use idfed_tests::{InstantSts, add_benchmark_connectors};

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed: apt-get install wrk");
        std::process::exit(1);
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
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
        "[server]\nplain_http = true\nlisten = \"127.0.0.1:0\"\n[data]\ndir = {:?}\n[auth.directory]\ntype = \"static\"\nfile = {:?}\n",
        dir.path().join("data"),
        users
    ))
    .unwrap();
    let mut service = Service::open(&config).unwrap();
    service.vendor = Vendor::new(
        service.store.clone(),
        Arc::new(InstantSts),
        service.plugins.clone(),
        service.audit.clone(),
    );
    add_benchmark_connectors(service.store.as_ref(), "devs");

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
    let token: String = tokio.block_on(async {
        let answer = reqwest::Client::new()
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

    println!(
        "idfed vending endpoint over HTTP (wrk on loopback, an STS that answers at once, 5 s a run)\n"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "connector", "connections", "requests/s", "p50", "p99", "max"
    );
    for name in ["plain", "chained"] {
        let url = format!("http://{addr}/api/v1/connectors/{name}/credentials");
        let run = |connections: usize, seconds: u64| {
            let threads = connections.clamp(1, 2).to_string();
            let output = Command::new("wrk")
                .args([
                    "-t",
                    &threads,
                    "-c",
                    &connections.to_string(),
                    "-d",
                    &format!("{seconds}s"),
                    "--latency",
                    "-s",
                ])
                .arg(&script)
                .arg(&url)
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        run(8, 2); // warm-up: chain loading, caches
        for connections in [1, 64, 256] {
            let report = run(connections, 5);
            let field = |prefix: &str| {
                report
                    .lines()
                    .find(|l| l.trim_start().starts_with(prefix))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("?")
                    .to_owned()
            };
            let max = report
                .lines()
                .find(|l| l.trim_start().starts_with("Latency") && !l.contains("Distribution"))
                .and_then(|l| l.split_whitespace().nth(3))
                .unwrap_or("?")
                .to_owned();
            let non_2xx = report
                .lines()
                .find(|l| l.contains("Non-2xx"))
                .map(str::trim)
                .unwrap_or("");
            println!(
                "{name:<10} {connections:>12} {:>12} {:>10} {:>10} {:>10} {non_2xx}",
                field("Requests/sec:"),
                field("50%"),
                field("99%"),
                max
            );
        }
    }
    let _ = stop.send(());
    tokio.block_on(server).unwrap().unwrap();
    service.shutdown().unwrap();
}
