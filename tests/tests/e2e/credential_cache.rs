//! The STS economy end to end, over HTTP: the per-connector credential cache (hits, the expiry margin,
//! every change that ends entries, a plugin still denying on a cached path), coalescing of identical
//! concurrent requests (the STS stand-in counts the calls), and the STS budget (429
//! `sts_budget_exhausted` with `Retry-After`). STS is moto, or the stand-in where calls are counted.

use std::collections::HashSet;
use std::sync::Arc;

use idfed::audit::{AuditFilter, Outcome};
use idfed::model::{BindingSpec, Caller, Connector, Identity, Principal};
use idfed::store::Store;
use idfed::vend::{VendError, VendOptions};
use idfed_tests::fixtures;
use idfed_tests::server::{TestServer, iam_account, user};
use idfed_tests::sts_standin::{StandInOptions, StsStandIn};
use serde_json::{Value, json};

const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::data","arn:aws:s3:::data/*"]}]}"#;
const S3_GET: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::data/*"]}]}"#;

async fn start(extra_config: &str) -> TestServer {
    TestServer::start(
        vec![user("alice", &["devs"]), user("root", &["idfed-admins"])],
        &format!("[auth]\nadmin_groups = [\"idfed-admins\"]\n{extra_config}"),
    )
    .await
}

/// An assumed-role connector for `devs` over `account`, one hour by default.
fn add_connector(server: &TestServer, name: &str, account: &str, cache: bool) -> Connector {
    server
        .service
        .store
        .create_connector(Connector {
            id: uuid::Uuid::new_v4(),
            name: name.into(),
            description: String::new(),
            account: account.into(),
            principal: Principal::AssumedRole {
                role_arn: "arn:aws:iam::123456789012:role/dev".into(),
                external_id: None,
                session_tags: vec![],
                source_identity: false,
            },
            policy: Some(S3_READ.into()),
            policy_arns: vec![],
            default_duration_seconds: Some(3600),
            max_duration_seconds: None,
            groups: vec!["devs".into()],
            system_scope: false,
            enabled: true,
            credential_cache: cache,
            bindings: vec![],
        })
        .unwrap()
}

/// An account `standin` whose STS is `sts`.
fn add_standin_account(server: &TestServer, sts: &str) {
    server
        .service
        .store
        .put_account(iam_account("standin", sts))
        .unwrap();
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn vend(server: &TestServer, token: &str, connector: &str, body: Value) -> Answer {
    let response = server
        .client
        .post(server.url(&format!("/api/v1/connectors/{connector}/credentials")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap();
    Answer {
        status,
        retry_after,
        body,
    }
}

/// A vend that must succeed: its JSON.
async fn vend_ok(server: &TestServer, token: &str, connector: &str) -> Value {
    let answer = vend(server, token, connector, json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

fn key_of(body: &Value) -> String {
    body["access_key_id"].as_str().unwrap().to_owned()
}

async fn metrics(server: &TestServer) -> String {
    server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in the metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caching_connector_hands_out_the_same_credentials_for_the_same_request() {
    let server = start("").await;
    let connector = add_connector(&server, "cached", "main", true);
    add_connector(&server, "fresh", "main", false);
    let alice = server.login("alice").await;

    let first = vend_ok(&server, &alice, "cached").await;
    let second = vend_ok(&server, &alice, "cached").await;
    assert_eq!(first["cached"], json!(false));
    assert_eq!(second["cached"], json!(true), "{second}");
    for field in [
        "access_key_id",
        "secret_access_key",
        "session_token",
        "expiration",
    ] {
        assert_eq!(first[field], second[field], "{field}");
    }
    assert!(second["duration_seconds"].as_u64().unwrap() <= 3600);
    assert_ne!(first["request_id"], second["request_id"]);

    // Another final request is another entry: the caller's own narrowing, another duration.
    let narrowed = vend(&server, &alice, "cached", json!({"policy": S3_GET})).await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    assert_eq!(narrowed.body["cached"], json!(false));
    assert_ne!(key_of(&narrowed.body), key_of(&first));
    let again = vend(&server, &alice, "cached", json!({"policy": S3_GET})).await;
    assert_eq!(again.body["cached"], json!(true));
    assert_eq!(key_of(&again.body), key_of(&narrowed.body));
    let longer = vend(&server, &alice, "cached", json!({"duration_seconds": 7200})).await;
    assert_eq!(longer.status, 200, "{}", longer.body);
    assert_eq!(longer.body["cached"], json!(false));

    // Without the cache every vend is its own STS call.
    let a = vend_ok(&server, &alice, "fresh").await;
    let b = vend_ok(&server, &alice, "fresh").await;
    assert_ne!(key_of(&a), key_of(&b));
    assert_eq!(b["cached"], json!(false));

    // The audit log records both hand-outs, with the same access key id, the second as cached.
    let records = server
        .service
        .audit
        .query(&AuditFilter {
            connector: Some(connector.id.to_string()),
            outcome: Some(Outcome::Issued),
            limit: 0,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(records.len(), 5);
    let oldest_two = &records[3..];
    assert_eq!(
        oldest_two[1].event.access_key_id.as_deref(),
        Some(key_of(&first).as_str())
    );
    assert!(!oldest_two[1].event.cached);
    assert_eq!(
        oldest_two[0].event.access_key_id.as_deref(),
        Some(key_of(&first).as_str())
    );
    assert!(oldest_two[0].event.cached);

    let text = metrics(&server).await;
    assert_eq!(metric(&text, "idfed_credential_cache_hits_total "), 2);
    assert_eq!(metric(&text, "idfed_credential_cache_misses_total "), 3);
    assert_eq!(metric(&text, "idfed_credential_cache_entries "), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_with_too_little_life_left_are_not_handed_out_again() {
    // All of the hour must be left: never true a moment after issue.
    let server = start("[credential_cache]\nmin_remaining_fraction = 1.0\n").await;
    add_connector(&server, "cached", "main", true);
    let alice = server.login("alice").await;
    let first = vend_ok(&server, &alice, "cached").await;
    let second = vend_ok(&server, &alice, "cached").await;
    assert_ne!(key_of(&first), key_of(&second));
    assert_eq!(second["cached"], json!(false));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_ends_the_entries() {
    let server = start("").await;
    add_connector(&server, "cached", "main", true);
    let alice = server.login("alice").await;
    let root = server.login("root").await;
    let admin = |method: reqwest::Method, path: &str| {
        server
            .client
            .request(method, server.url(&format!("/api/v1/admin{path}")))
            .bearer_auth(&root)
    };
    // A miss, then a hit: the entry is there.
    let warm = || async {
        let miss = vend_ok(&server, &alice, "cached").await;
        assert_eq!(miss["cached"], json!(false), "{miss}");
        let hit = vend_ok(&server, &alice, "cached").await;
        assert_eq!(hit["cached"], json!(true));
        assert_eq!(key_of(&hit), key_of(&miss));
        key_of(&miss)
    };
    let mut seen = HashSet::new();
    assert!(seen.insert(warm().await));

    // The connector changed.
    let mut shown: Value = admin(reqwest::Method::GET, "/connectors/cached")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["credential_cache"], json!(true));
    shown["description"] = json!("edited");
    let input = json!({
        "name": shown["name"], "description": shown["description"], "account": shown["account"],
        "principal": shown["principal"], "policy": shown["policy"], "groups": shown["groups"],
        "default_duration_seconds": 3600, "credential_cache": true,
    });
    let put = admin(reqwest::Method::PUT, "/connectors/cached")
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    assert!(
        seen.insert(warm().await),
        "a changed connector starts afresh"
    );

    // A binding added.
    let digest = server
        .service
        .store
        .put_plugin(&std::fs::read(fixtures::POLICY_GUARD).unwrap(), None)
        .unwrap();
    let bound = admin(reqwest::Method::POST, "/connectors/cached/bindings")
        .json(&json!({"plugin": digest, "config": {"mode": "deny", "actions": ["iam:*"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bound.status(), 201);
    let binding: Value = bound.json().await.unwrap();
    assert!(seen.insert(warm().await), "a changed chain starts afresh");
    let unbound = admin(
        reqwest::Method::DELETE,
        &format!(
            "/connectors/cached/bindings/{}",
            binding["id"].as_str().unwrap()
        ),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(unbound.status(), 204);
    assert!(seen.insert(warm().await), "a binding removed starts afresh");

    // The account written again (even unchanged).
    let account = admin(reqwest::Method::PUT, "/accounts/main")
        .json(&json!({
            "name": "main",
            "source": {"type": "iam-user", "access_key_id": "AKIAIOSFODNN7EXAMPLE"},
            "region": "us-east-1",
            "sts_endpoint": idfed_tests::moto::shared().endpoint(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 200, "{}", account.text().await.unwrap());
    assert!(seen.insert(warm().await), "a changed account starts afresh");

    // An administrator's flush.
    let flushed = admin(reqwest::Method::POST, "/connectors/cached/cache/flush")
        .send()
        .await
        .unwrap();
    assert_eq!(flushed.status(), 200);
    let flushed: Value = flushed.json().await.unwrap();
    assert_eq!(flushed, json!({"connector": "cached", "flushed": 1}));
    assert!(seen.insert(warm().await), "a flushed cache starts afresh");
    let audited = server
        .service
        .audit
        .query(&AuditFilter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.event.action == "admin.connector.cache.flush")
        .expect("the flush is audited");
    assert_eq!(audited.event.caller.as_deref(), Some("root"));

    // Only administrators flush; an unknown connector is 404.
    let refused = server
        .client
        .post(server.url("/api/v1/admin/connectors/cached/cache/flush"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let missing = admin(reqwest::Method::POST, "/connectors/nope/cache/flush")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_loses_the_group_is_refused_and_starts_afresh() {
    let server = start("").await;
    add_connector(&server, "cached", "main", true);
    let alice = |groups: &[&str]| Caller {
        identity: Identity::User {
            name: "alice".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            is_admin: false,
        },
        source_ip: Some("127.0.0.1".into()),
        user_agent: None,
    };
    let vendor = &server.service.vendor;
    let vend = |caller: Caller| async move {
        vendor.vend(&caller, "cached", VendOptions::default()).await
    };
    let first = vend(alice(&["devs"])).await.unwrap();
    let hit = vend(alice(&["devs"])).await.unwrap();
    assert!(hit.cached);
    assert_eq!(
        hit.credentials.access_key_id,
        first.credentials.access_key_id
    );
    // Another set of groups is another key.
    let more = vend(alice(&["devs", "ops"])).await.unwrap();
    assert!(!more.cached);
    // The group lost: refused, and the entries end.
    let refused = vend(alice(&[])).await.unwrap_err();
    assert!(matches!(refused, VendError::Forbidden(_)), "{refused:?}");
    let back = vend(alice(&["devs"])).await.unwrap();
    assert!(
        !back.cached,
        "the group regained does not bring old credentials back"
    );
    assert_ne!(
        back.credentials.access_key_id,
        first.credentials.access_key_id
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_still_decide_on_a_cached_path() {
    let server = start("").await;
    let connector = add_connector(&server, "limited", "main", true);
    let digest = server
        .service
        .store
        .put_plugin(&std::fs::read(fixtures::RATE_LIMIT).unwrap(), None)
        .unwrap();
    let mut bound = connector.clone();
    bound.bindings.push(BindingSpec {
        id: uuid::Uuid::new_v4().to_string(),
        plugin: digest,
        config: r#"{"max_requests": 2, "window_seconds": 3600}"#.into(),
        limits: None,
        tag_keys: vec![],
    });
    server
        .service
        .store
        .update_connector(bound, &connector)
        .unwrap();
    let alice = server.login("alice").await;
    let first = vend_ok(&server, &alice, "limited").await;
    let second = vend_ok(&server, &alice, "limited").await;
    assert_eq!(second["cached"], json!(true));
    assert_eq!(key_of(&first), key_of(&second));
    let third = vend(&server, &alice, "limited", json!({})).await;
    assert_eq!(third.status, 403, "{}", third.body);
    assert_eq!(third.body["error"]["code"], json!("plugin_denied"));
    assert!(third.body.to_string().find("ASIA").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_identical_requests_makes_one_sts_call() {
    let sts = StsStandIn::start(StandInOptions {
        delay: std::time::Duration::from_millis(300),
        ..StandInOptions::default()
    })
    .await;
    let server = Arc::new(start("").await);
    add_standin_account(&server, &sts.endpoint());
    add_connector(&server, "cached", "standin", true);
    add_connector(&server, "fresh", "standin", false);
    let alice = Arc::new(server.login("alice").await);

    let burst = |connector: &'static str, n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (server, alice) = (server.clone(), alice.clone());
                tokio::spawn(async move { vend(&server, &alice, connector, json!({})).await })
            })
            .collect();
        async move {
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        }
    };
    // 1,000 at once through the pipeline (in process: a thousand connections would need more open files
    // than a test machine may allow), then 200 more over HTTP.
    let caller = Caller {
        identity: Identity::User {
            name: "alice".into(),
            groups: vec!["devs".into()],
            is_admin: false,
        },
        source_ip: Some("127.0.0.1".into()),
        user_agent: None,
    };
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (server, caller) = (server.clone(), caller.clone());
            tokio::spawn(async move {
                server
                    .service
                    .vendor
                    .vend(&caller, "cached", VendOptions::default())
                    .await
            })
        })
        .collect();
    let mut vended = Vec::new();
    for task in tasks {
        vended.push(
            task.await
                .unwrap()
                .expect("every request of the burst is answered"),
        );
    }
    let keys: HashSet<&str> = vended
        .iter()
        .map(|v| v.credentials.access_key_id.as_str())
        .collect();
    assert_eq!(keys.len(), 1, "one set of credentials for all");
    assert_eq!(
        sts.calls("AssumeRole"),
        1,
        "1,000 identical requests, one STS call"
    );
    assert_eq!(
        vended.iter().filter(|v| !v.cached).count(),
        1,
        "only the request that made the call says it was not cached"
    );
    let key = keys.into_iter().next().unwrap().to_owned();
    let answers = burst("cached", 200).await;
    assert!(
        answers.iter().all(|a| a.status == 200),
        "{:?}",
        answers.iter().find(|a| a.status != 200).map(|a| &a.body)
    );
    assert!(answers.iter().all(|a| key_of(&a.body) == key));
    assert!(answers.iter().all(|a| a.body["cached"] == json!(true)));
    assert_eq!(sts.calls("AssumeRole"), 1);
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "idfed_credential_cache_hits_total ")
            + metric(&text, "idfed_credential_cache_coalesced_total "),
        1199
    );

    // Without the cache, identical requests are calls of their own.
    sts.reset();
    let answers = burst("fresh", 20).await;
    assert!(answers.iter().all(|a| a.status == 200));
    assert_eq!(sts.calls("AssumeRole"), 20);

    // An error is shared too, and never cached: STS throttling (retried by the SDK) reaches all at once.
    sts.reset();
    sts.set_throttle(true);
    server.service.vendor.cache().flush_all();
    let answers = burst("cached", 50).await;
    assert!(
        answers
            .iter()
            .all(|a| a.body["error"]["code"] == json!("sts_throttled")),
        "{:?}",
        answers.first().map(|a| &a.body)
    );
    // One call with the SDK's three attempts, or, on a slow machine, a second for a request that came
    // after the first had given up: never one a request.
    let attempts = sts.calls("AssumeRole");
    assert!(
        (1..=6).contains(&attempts),
        "a shared call (with the SDK's retries) for 50 requests: {attempts}"
    );
    let text = metrics(&server).await;
    let throttled = metric(
        &text,
        &format!(
            "idfed_sts_throttled_total{{scope=\"standin@{}\",by=\"sts\"}}",
            sts.endpoint()
        ),
    );
    assert!((1..=2).contains(&throttled), "{throttled}");
    sts.set_throttle(false);
    let recovered = vend_ok(&server, &alice, "cached").await;
    assert_eq!(recovered["cached"], json!(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_sts_budget_a_vend_is_refused_with_retry_after() {
    let server = start(
        "[sts]\nbudget_per_second = 2\nbudget_per_caller_per_second = 0\nbudget_wait_ms = 0\n",
    )
    .await;
    let connector = add_connector(&server, "fresh", "main", false);
    let alice = Arc::new(server.login("alice").await);
    let server = Arc::new(server);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (server, alice) = (server.clone(), alice.clone());
            tokio::spawn(async move { vend(&server, &alice, "fresh", json!({})).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(ok >= 2, "the burst is two calls");
    assert!(!refused.is_empty(), "ten at once are over a budget of 2/s");
    assert_eq!(ok + refused.len(), 10);
    for answer in &refused {
        assert_eq!(answer.body["error"]["code"], json!("sts_budget_exhausted"));
        let retry: u64 = answer.retry_after.as_deref().unwrap().parse().unwrap();
        assert!(retry >= 1);
    }
    let records = server
        .service
        .audit
        .query(&AuditFilter {
            connector: Some(connector.id.to_string()),
            limit: 0,
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.event.code.as_deref() == Some("sts_budget_exhausted"))
            .count(),
        refused.len()
    );
    let text = metrics(&server).await;
    assert!(
        text.contains(&format!(
            "idfed_sts_throttled_total{{scope=\"main@{}\",by=\"budget\"}} {}",
            idfed_tests::moto::shared().endpoint(),
            refused.len()
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_budget_waits_its_turn_when_allowed_to() {
    let server = start(
        "[sts]\nbudget_per_second = 2\nbudget_per_caller_per_second = 0\nbudget_wait_ms = 2500\n",
    )
    .await;
    add_connector(&server, "fresh", "main", false);
    let alice = Arc::new(server.login("alice").await);
    let server = Arc::new(server);
    // Two from the burst, four more at 0.5, 1, 1.5 and 2 s: all within the wait allowed.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (server, alice) = (server.clone(), alice.clone());
            tokio::spawn(async move { vend(&server, &alice, "fresh", json!({})).await })
        })
        .collect();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let text = metrics(&server).await;
    let waited = metric(
        &text,
        &format!(
            "idfed_sts_budget_waits_total{{scope=\"main@{}\"}}",
            idfed_tests::moto::shared().endpoint()
        ),
    );
    assert!(waited >= 1, "six at once, two a second: some waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_spends_only_its_share_of_the_budget() {
    let server = start(
        "[sts]\nbudget_per_second = 4\nbudget_per_caller_per_second = 2\nbudget_wait_ms = 0\n",
    )
    .await;
    add_connector(&server, "fresh", "main", false);
    let alice = Arc::new(server.login("alice").await);
    let root = server.login("root").await;
    let server = Arc::new(server);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (server, alice) = (server.clone(), alice.clone());
            tokio::spawn(async move { vend(&server, &alice, "fresh", json!({})).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (2..=4).contains(&ok),
        "alice's share is 2 a second (plus what refills meanwhile, on a slow machine): {statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429));
    assert!(ok < 8, "without a share of her own, all eight would pass");
    // Another caller still has the rest of the account's budget (it refills twice as fast as her share).
    let answer = vend(&server, &root, "fresh", json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}
