//! Three replicas of idfed on one PostgreSQL database (a throw-away cluster of the test's own), as behind
//! a load balancer: a session made on one works on the others and a logout on one ends it everywhere;
//! failed logins count together; two administrators editing one connector at once on two replicas — one
//! wins, the other gets 412; a plugin's key-value state (`rate-limit`) is one; a cache flush reaches every
//! replica; concurrent vends through all three make one audit chain that verifies; PostgreSQL stopped
//! under load means `503 store_unavailable` (never a 200 without its record, never a hang) and the
//! replicas recover by themselves when it is back.

use std::time::{Duration, Instant};

use idfed::audit::{AuditFilter, Outcome};
use idfed::model::{BindingSpec, Connector};
use idfed::store::Store;
use idfed_tests::fixtures;
use idfed_tests::postgres::PgCluster;
use idfed_tests::server::{PASSWORD, TestServer, user};
use serde_json::{Value, json};

const ADMINS: &str = "[auth]\nadmin_groups = [\"idfed-admins\"]\nmax_failures = 4\n";

async fn replicas(cluster: &PgCluster, database: &str) -> Vec<TestServer> {
    cluster.create_database(database);
    TestServer::start_replicas(
        3,
        &cluster.url(database),
        vec![user("alice", &["devs"]), user("root", &["idfed-admins"])],
        ADMINS,
    )
    .await
}

fn role_connector(name: &str, cache: bool) -> Connector {
    let mut connector = idfed_tests::server::role_connector(name, "main", &["devs"]);
    connector.credential_cache = cache;
    connector
}

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn vend(server: &TestServer, token: &str, connector: &str) -> (u16, Value) {
    let (status, _, body) = send(
        server,
        reqwest::Method::POST,
        &format!("/api/v1/connectors/{connector}/credentials"),
        token,
        Some(json!({})),
    )
    .await;
    (status, body)
}

/// Every `issued` record of `connector`, as `server` reads the shared audit log.
fn issued(server: &TestServer, connector: &str) -> Vec<idfed::audit::AuditRecord> {
    server
        .service
        .audit
        .query(&AuditFilter {
            connector: Some(connector.into()),
            outcome: Some(Outcome::Issued),
            limit: 0,
            ..AuditFilter::default()
        })
        .unwrap()
}

async fn login_status(server: &TestServer, password: &str) -> u16 {
    server
        .client
        .post(server.url("/api/v1/login"))
        .json(&json!({"username": "alice", "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_logouts_lockouts_and_connector_edits_hold_across_replicas() {
    let cluster = PgCluster::start();
    let r = replicas(&cluster, "sharing").await;

    // A session from replica A works on B and C; a logout on B ends it on A.
    let token = r[0].login("alice").await;
    for server in &r {
        let (status, _, me) = send(server, reqwest::Method::GET, "/api/v1/me", &token, None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["name"], "alice", "{me}");
    }
    let (status, _, _) = send(&r[1], reqwest::Method::POST, "/api/v1/logout", &token, None).await;
    assert!(status == 200 || status == 204, "logout: {status}");
    // Replicas answer sessions from memory until a change is announced (LISTEN/NOTIFY): within moments.
    for server in &r {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, _, body) =
                send(server, reqwest::Method::GET, "/api/v1/me", &token, None).await;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200, "{body}");
            assert!(
                Instant::now() < deadline,
                "a session ended on B still works: {body}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Failed logins on A, B and C count together: max_failures = 4 locks alice after the fourth,
    // wherever it was made. Each replica alone has seen at most two.
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(login_status(&r[i % 3], "wrong password").await);
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let third = login_status(&r[2], PASSWORD).await;
    assert_eq!(
        third, 429,
        "the right password is refused while locked, on a replica that saw fewer failures: {statuses:?}"
    );

    // Two administrators edit one connector at once, on two replicas: one wins, the other is told.
    r[0].service
        .store
        .create_connector(role_connector("shared", false))
        .unwrap();
    let admin = r[1].login("root").await;
    let path = "/api/v1/admin/connectors/shared";
    let (status, a_headers, a_body) = send(&r[1], reqwest::Method::GET, path, &admin, None).await;
    assert_eq!(status, 200, "created on A, read on B: {a_body}");
    let (_, b_headers, mut b_body) = send(&r[2], reqwest::Method::GET, path, &admin, None).await;
    assert_eq!(a_headers["etag"], b_headers["etag"]);
    let put = |server: &TestServer, etag: reqwest::header::HeaderValue, body: Value| {
        server
            .client
            .put(server.url(path))
            .bearer_auth(&admin)
            .header("if-match", etag)
            .json(&body)
            .send()
    };
    let mut a_edit = a_body.clone();
    a_edit["description"] = json!("edited on B");
    let a_put = put(&r[1], a_headers["etag"].clone(), a_edit).await.unwrap();
    assert_eq!(a_put.status(), 200, "{}", a_put.text().await.unwrap());
    b_body["description"] = json!("edited on C");
    let b_put = put(&r[2], b_headers["etag"].clone(), b_body).await.unwrap();
    assert_eq!(b_put.status(), 412);
    let refused: Value = b_put.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "precondition_failed", "{refused}");
    let kept = r[0].service.store.get_connector("shared").unwrap().unwrap();
    assert_eq!(kept.description, "edited on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_audit_chain_one_plugin_state_and_flushes_that_reach_every_replica() {
    let cluster = PgCluster::start();
    let r = replicas(&cluster, "chain").await;
    r[0].service
        .store
        .create_connector(role_connector("deploy", false))
        .unwrap();
    let token = r[0].login("alice").await;

    // Concurrent vends through all three replicas: one chain, which verifies on each.
    let per_replica = 15;
    let mut tasks = tokio::task::JoinSet::new();
    for server in &r {
        for _ in 0..per_replica {
            let request = server
                .client
                .post(server.url("/api/v1/connectors/deploy/credentials"))
                .bearer_auth(&token)
                .json(&json!({}));
            tasks.spawn(async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            });
        }
    }
    while let Some(answer) = tasks.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    for server in &r {
        let report = server.service.audit.verify().unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
    }
    let issued = issued(&r[1], "deploy");
    assert_eq!(issued.len(), 3 * per_replica);
    let mut seqs: Vec<u64> = issued.iter().map(|r| r.seq).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 3 * per_replica, "every record its own seq");

    // rate-limit's count is one across replicas: 4 allowed in all, wherever they are asked.
    let store = &r[2].service.store;
    let digest = store
        .put_plugin(&std::fs::read(fixtures::RATE_LIMIT).unwrap(), None)
        .unwrap();
    let mut limited = role_connector("limited", false);
    limited.bindings = vec![BindingSpec {
        id: "limit".into(),
        plugin: digest,
        config: r#"{"max_requests": 4, "window_seconds": 3600}"#.into(),
        limits: None,
        tag_keys: vec![],
    }];
    store.create_connector(limited).unwrap();
    let mut allowed = 0;
    let mut denied = 0;
    for i in 0..9 {
        let (status, body) = vend(&r[i % 3], &token, "limited").await;
        match status {
            200 => allowed += 1,
            403 => {
                assert_eq!(body["error"]["code"], "plugin_denied", "{body}");
                denied += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((allowed, denied), (4, 5));

    // A cache flush on A reaches B and C: their cached credentials go within moments.
    r[0].service
        .store
        .create_connector(role_connector("cached", true))
        .unwrap();
    for server in &r {
        let (status, body) = vend(server, &token, "cached").await;
        assert_eq!(status, 200, "{body}");
        let (_, again) = vend(server, &token, "cached").await;
        assert_eq!(again["cached"], true, "each replica caches: {again}");
    }
    let admin = r[0].login("root").await;
    let (status, _, flushed) = send(
        &r[0],
        reqwest::Method::POST,
        "/api/v1/admin/connectors/cached/cache/flush",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{flushed}");
    assert_eq!(flushed["flushed"], 1, "A's own entry: {flushed}");
    for server in &r[1..] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.service.vendor.cache().stats().entries > 0 {
            assert!(
                Instant::now() < deadline,
                "a replica kept its cached credentials after the flush"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, body) = vend(server, &token, "cached").await;
        assert_eq!(body["cached"], false, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_load_means_503_then_recovery_without_a_restart() {
    let cluster = PgCluster::start();
    let r = replicas(&cluster, "restart").await;
    r[0].service
        .store
        .create_connector(role_connector("deploy", false))
        .unwrap();
    let token = r[0].login("alice").await;
    for server in &r {
        assert_eq!(vend(server, &token, "deploy").await.0, 200);
    }

    // Load throughout: clients vending round-robin through the three replicas, before, while and after
    // the database is down. Only 200 or 503 store_unavailable may come back.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for client in 0..6 {
        let requests: Vec<_> = r
            .iter()
            .map(|server| {
                (
                    server.client.clone(),
                    server.url("/api/v1/connectors/deploy/credentials"),
                )
            })
            .collect();
        let (token, stop) = (token.clone(), stop.clone());
        load.spawn(async move {
            let mut answers = Vec::new();
            let mut next = client;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let (http, url) = &requests[next % requests.len()];
                next += 1;
                let response = http
                    .post(url)
                    .bearer_auth(&token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                answers.push((status, body));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    cluster.stop();
    for server in &r {
        let started = Instant::now();
        let (status, body) = vend(server, &token, "deploy").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        // Bounded by the database timeout (5 s), never a hang; a generous ceiling, not a timing test.
        assert!(started.elapsed() < Duration::from_secs(60));
        let ready = server
            .client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        // Logging in needs the database too: refused, not assumed.
        assert_eq!(login_status(server, PASSWORD).await, 503);
    }

    cluster.start_again();
    for server in &r {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = vend(server, &token, "deploy").await;
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert!(Instant::now() < deadline, "no recovery: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ready: Value = server
            .client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["store"], "postgres", "{ready}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut answered = Vec::new();
    let mut refused = 0;
    while let Some(answers) = load.join_next().await {
        for (status, body) in answers.unwrap() {
            match status {
                200 => answered.push(body["access_key_id"].as_str().unwrap().to_owned()),
                503 => {
                    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
                    refused += 1;
                }
                other => panic!("{other} under load while the database restarted: {body}"),
            }
        }
    }
    assert!(refused > 0, "the load met the database down");
    assert!(!answered.is_empty(), "the load was served before and after");

    // Nothing handed out went unrecorded, and the chain is whole.
    let report = r[0].service.audit.verify().unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    let issued: std::collections::BTreeSet<String> = issued(&r[0], "deploy")
        .into_iter()
        .filter_map(|record| record.event.access_key_id)
        .collect();
    let missing: Vec<&String> = answered.iter().filter(|id| !issued.contains(*id)).collect();
    assert!(missing.is_empty(), "answered without a record: {missing:?}");
    println!(
        "under load: {} vend(s) answered 200, {refused} refused 503 store_unavailable while the \
         database was down; {} issued record(s)",
        answered.len(),
        issued.len()
    );
}
