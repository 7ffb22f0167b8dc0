//! Plugin containment, second pass: plugins written as an attacker would write them, each answered with the
//! exact fault it earns, nothing allowed, and the host still serving everyone else: waiting counts against
//! the deadline, one binding cannot take the instance pool, grants STS could never take and oversized
//! grants are refused while they are read, policy documents are strict, and only a binding's declared tag
//! keys may be added.

use std::time::Duration;

use idfed::plugins::{
    BindOptions, Binding, Decision, Grant, Limits, PluginFault, PolicyRequest, PrincipalType,
    RuntimeConfig, SessionTag,
};
use idfed_tests::{S3_READ_POLICY, TestRuntime, fixtures, request};

/// Guards against a hang; not a speed assertion.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the host must answer; it hung")
}

async fn bind_with(
    rt: &TestRuntime,
    id: &str,
    path: &str,
    config: &str,
    options: BindOptions,
) -> Binding {
    bounded(rt.runtime.bind_with(id, rt.load(path), config, &options))
        .await
        .unwrap()
}

async fn bind(rt: &TestRuntime, id: &str, path: &str, config: &str) -> Binding {
    bind_with(rt, id, path, config, BindOptions::default()).await
}

fn role_request() -> PolicyRequest {
    let mut r = request(
        "alice",
        &["dev"],
        PrincipalType::AssumedRole,
        Some(S3_READ_POLICY),
    );
    r.policy_arns = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()];
    r.tags = vec![SessionTag {
        key: "project".into(),
        value: "apollo".into(),
    }];
    r
}

fn fault_of(decision: Result<Decision, PluginFault>) -> PluginFault {
    match decision {
        Err(fault) => fault,
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn grant_of(decision: Result<Decision, PluginFault>) -> Grant {
    match decision {
        Ok(Decision::Allow { grant }) => grant,
        other => panic!("expected an allow, got {other:?}"),
    }
}

/// The host still serves an ordinary evaluation.
async fn still_serves(rt: &TestRuntime, good: &Binding) {
    let r = role_request();
    assert_eq!(
        grant_of(bounded(rt.runtime.evaluate(good, &r)).await),
        r.unchanged_grant()
    );
}

fn limits(deadline_ms: u64) -> Option<Limits> {
    Some(Limits {
        deadline: Duration::from_millis(deadline_ms),
        ..Limits::default()
    })
}

// ---- 1. waiting counts

#[tokio::test]
async fn a_sleeping_plugin_is_stopped_at_its_deadline_not_allowed_after_its_sleep() {
    let rt = TestRuntime::new();
    let good = bind(&rt, "good", fixtures::DURATION_CAP, "{}").await;
    let sleeper = bind(&rt, "sleeper", fixtures::SLEEPER, r#"{"sleep_ms": 20000}"#).await;
    let fault = fault_of(bounded(rt.runtime.evaluate(&sleeper, &role_request())).await);
    assert_eq!(
        fault,
        PluginFault::Timeout {
            deadline: Duration::from_millis(50),
            waiting: true
        }
    );
    assert!(fault.to_string().contains("waiting counts"), "{fault}");
    still_serves(&rt, &good).await;
}

#[tokio::test]
async fn short_sleeps_between_bursts_of_work_are_counted_too() {
    let rt = TestRuntime::new();
    let sleeper = bind(
        &rt,
        "sleep-spin",
        fixtures::SLEEP_SPIN,
        r#"{"rounds": 20, "sleep_ms": 100, "spin_ms": 5}"#,
    )
    .await;
    // The CPU deadline alone lets this run for seconds (it is mostly asleep); the wall clock stops it.
    let fault = fault_of(bounded(rt.runtime.evaluate(&sleeper, &role_request())).await);
    assert!(
        matches!(fault, PluginFault::Timeout { waiting: true, .. }),
        "{fault:?}"
    );
}

#[tokio::test]
async fn a_validate_config_that_sleeps_is_a_timeout_at_bind_time() {
    let rt = TestRuntime::new();
    let err = bounded(rt.runtime.bind(
        "slow-check",
        rt.load(fixtures::SLEEPER),
        r#"{"validate_sleep_ms": 20000}"#,
        None,
    ))
    .await
    .unwrap_err();
    assert_eq!(err.code(), "plugin_timeout", "{err}");
}

// ---- 2. no starvation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_saturated_far_past_its_share_leaves_the_pool_to_the_others() {
    let rt = TestRuntime::with_config(RuntimeConfig {
        max_concurrent_per_binding: 16,
        queue_wait: Duration::from_millis(100),
        ..RuntimeConfig::default()
    });
    let pool = rt.runtime.config().pool_instances as usize;
    let sleeper = bind_with(
        &rt,
        "sleeper",
        fixtures::SLEEPER,
        r#"{"sleep_ms": 60000}"#,
        BindOptions {
            limits: limits(3000),
            ..BindOptions::default()
        },
    )
    .await;
    let good = bind(&rt, "good", fixtures::DURATION_CAP, "{}").await;
    // More than the whole pool, all at once, on one binding.
    let hammer: Vec<_> = (0..pool + 72)
        .map(|_| {
            let (runtime, sleeper) = (rt.runtime.clone(), sleeper.clone());
            tokio::spawn(async move { runtime.evaluate(&sleeper, &role_request()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While the sleepers hold every slot their binding may have, the other binding is served, every time.
    for _ in 0..50 {
        still_serves(&rt, &good).await;
    }
    let sleeping = hammer.iter().filter(|h| !h.is_finished()).count();
    let (mut busy, mut timeouts) = (0, 0);
    for h in hammer {
        match bounded(h).await.unwrap() {
            Err(PluginFault::Busy { message }) => {
                assert!(message.contains("this binding"), "{message}");
                busy += 1;
            }
            Err(PluginFault::Timeout { waiting: true, .. }) => timeouts += 1,
            other => panic!("a sleeper must be refused: {other:?}"),
        }
    }
    assert!(sleeping > 0, "the sleepers ended before the check ran");
    assert_eq!(timeouts, 16, "exactly its share ran (and timed out)");
    assert_eq!(busy, pool + 72 - 16);
}

// ---- 3. strict policy documents

#[tokio::test]
async fn a_policy_with_keys_the_check_does_not_understand_is_an_invalid_grant() {
    let rt = TestRuntime::new();
    let good = bind(&rt, "good", fixtures::DURATION_CAP, "{}").await;
    for (mode, why) in [
        ("extra-key", "statement"),
        ("statement-key", "Extra"),
        ("unterminated-variable", "${aws:username"),
    ] {
        let b = bind(
            &rt,
            mode,
            fixtures::EXTRA_KEY_POLICY,
            &format!(r#"{{"mode": "{mode}"}}"#),
        )
        .await;
        let fault = fault_of(bounded(rt.runtime.evaluate(&b, &role_request())).await);
        assert_eq!(fault.code(), "plugin_invalid_grant", "{mode}: {fault}");
        assert!(fault.to_string().contains(why), "{mode}: {fault}");
        still_serves(&rt, &good).await;
    }
}

// ---- 4 and 5. grants STS cannot take, refused while they are read

#[tokio::test]
async fn grants_sts_could_never_take_are_invalid_grants_however_large() {
    let rt = TestRuntime::new();
    let good = bind(&rt, "good", fixtures::DURATION_CAP, "{}").await;
    let cases = [
        ("tags", 60, "61 session tags, more than the 50"),
        ("tags", 50_000, "50001 session tags, more than the 50"),
        ("arns", 200_000, "200000 policy ARNs, more than the 10"),
        ("arns", 2, "more than once"),
        ("duration", 1, "duration"),
        ("tag-key", 129, "must be 1 to 128 characters"),
        (
            "tag-key",
            100_000,
            "the key of session tag 1 is 100000 bytes",
        ),
        ("tag-value", 257, "at most 256 characters"),
        (
            "tag-value",
            1_000_000,
            "the value of session tag 1 is 1000000 bytes",
        ),
        ("arn-length", 3_000, "policy ARN 1 is 3024 bytes"),
        ("policy", 2_100, "characters"),
        ("policy", 1_000_000, "the inline policy is"),
    ];
    for (kind, count, why) in cases {
        let b = bind_with(
            &rt,
            &format!("{kind}-{count}"),
            fixtures::OVERSIZED_GRANT,
            &format!(r#"{{"kind": "{kind}", "count": {count}}}"#),
            BindOptions {
                limits: Some(Limits {
                    deadline: Duration::from_millis(500),
                    memory_bytes: 64 << 20,
                }),
                // Allowing every key the fixture adds, so that only the size rules are in play.
                tag_keys: (0..48)
                    .map(|i| format!("k{i}"))
                    .chain(["big".to_owned(), "k".repeat(128)])
                    .collect(),
            },
        )
        .await;
        let fault = fault_of(bounded(rt.runtime.evaluate(&b, &role_request())).await);
        assert_eq!(
            fault.code(),
            "plugin_invalid_grant",
            "{kind} {count}: {fault}"
        );
        assert!(fault.to_string().contains(why), "{kind} {count}: {fault}");
        still_serves(&rt, &good).await;
    }
}

#[tokio::test]
async fn a_huge_denial_reason_is_cut_before_it_is_copied() {
    let rt = TestRuntime::new();
    let b = bind_with(
        &rt,
        "reason",
        fixtures::OVERSIZED_GRANT,
        r#"{"kind": "reason", "count": 4000000}"#,
        BindOptions {
            limits: Some(Limits {
                deadline: Duration::from_millis(500),
                memory_bytes: 64 << 20,
            }),
            ..BindOptions::default()
        },
    )
    .await;
    match bounded(rt.runtime.evaluate(&b, &role_request())).await {
        Ok(Decision::Deny { reason }) => {
            assert!(reason.len() < 1100, "{} bytes", reason.len());
            assert!(reason.starts_with("rrrr"), "{reason}");
            assert!(reason.ends_with("[truncated]"), "{reason}");
        }
        other => panic!("expected a deny, got {other:?}"),
    }
}

// ---- 6. tags

#[tokio::test]
async fn only_the_tag_keys_a_binding_declares_may_be_added() {
    let rt = TestRuntime::new();
    let good = bind(&rt, "good", fixtures::DURATION_CAP, "{}").await;
    let options = || BindOptions {
        tag_keys: vec!["team".into(), "Cost-Center".into()],
        ..BindOptions::default()
    };
    let adder = |tags: &str| format!(r#"{{"tags": {tags}}}"#);
    let b = bind_with(
        &rt,
        "ok",
        fixtures::TAG_ADDER,
        &adder(r#"{"team": "blue", "cost-center": "1234"}"#),
        options(),
    )
    .await;
    let tags = grant_of(bounded(rt.runtime.evaluate(&b, &role_request())).await).tags;
    assert_eq!(tags.len(), 3, "{tags:?}");

    let cases = [
        (r#"{"idfed-admin": "true"}"#, "plugin_widened_grant"),
        // Cyrillic "е" in "tеam": a look-alike key is another key.
        (r#"{"t\u0435am": "blue"}"#, "plugin_widened_grant"),
        // An existing tag may not be changed, even by a key the binding may add.
        (r#"{"project": "gemini"}"#, "plugin_widened_grant"),
        // Keys it may add must still be tags STS takes.
        (r#"{"team": "<script>"}"#, "plugin_invalid_grant"),
    ];
    for (tags, code) in cases {
        let b = bind_with(&rt, code, fixtures::TAG_ADDER, &adder(tags), options()).await;
        let fault = fault_of(bounded(rt.runtime.evaluate(&b, &role_request())).await);
        assert_eq!(fault.code(), code, "{tags}: {fault}");
        still_serves(&rt, &good).await;
    }
    // A binding that declares none may add none.
    let none = bind(
        &rt,
        "none",
        fixtures::TAG_ADDER,
        &adder(r#"{"team": "blue"}"#),
    )
    .await;
    let fault = fault_of(bounded(rt.runtime.evaluate(&none, &role_request())).await);
    assert_eq!(fault.code(), "plugin_widened_grant", "{fault}");
}

#[tokio::test]
async fn tag_keys_sts_would_refuse_are_refused_at_bind_time() {
    let rt = TestRuntime::new();
    for keys in [vec!["aws:team"], vec!["team", "TEAM"], vec!["bad key!"]] {
        let err = bounded(rt.runtime.bind_with(
            "b",
            rt.load(fixtures::TAG_ADDER),
            "{}",
            &BindOptions {
                tag_keys: keys.iter().map(|k| k.to_string()).collect(),
                ..BindOptions::default()
            },
        ))
        .await
        .unwrap_err();
        assert_eq!(err.code(), "plugin_tag_keys_invalid", "{keys:?}: {err}");
    }
}
