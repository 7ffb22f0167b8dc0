//! The plugin runtime end to end, with the real components built from `plugins/`: each example plugin's
//! documented behaviour, every misbehaving fixture denied with its own fault while the host goes on
//! serving, the sandbox, the key-value store across restarts, config checks at bind time and the cache.

use std::sync::Arc;
use std::time::Duration;

use idfed::plugins::{
    Approval, BindError, BindOptions, Binding, ChainOutcome, Claim, CompileSource, ContractVersion,
    Decision, Limits, LoadError, MAX_JUSTIFICATION_BYTES, MAX_TICKET_BYTES, PluginFault,
    PolicyRequest, PrincipalType, Purpose, RuntimeConfig, SessionTag, WorkloadIdentity,
};
use idfed_tests::server::{TestServer, role_connector, user};
use idfed_tests::{S3_READ_POLICY, TestRuntime, fixtures, request};
use serde_json::{Value, json};

/// Guards against a hang (a broken deadline would otherwise stall the suite); not a speed assertion.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the host must answer; it hung")
}

async fn bind(rt: &TestRuntime, id: &str, path: &str, config: &str) -> Binding {
    bounded(rt.runtime.bind(id, rt.load(path), config, None))
        .await
        .unwrap()
}

/// Binds a plugin that may add session tags with these keys.
async fn bind_tagging(
    rt: &TestRuntime,
    id: &str,
    path: &str,
    config: &str,
    tag_keys: &[&str],
) -> Binding {
    let options = BindOptions {
        tag_keys: tag_keys.iter().map(|k| k.to_string()).collect(),
        ..BindOptions::default()
    };
    bounded(rt.runtime.bind_with(id, rt.load(path), config, &options))
        .await
        .unwrap()
}

async fn decide(
    rt: &TestRuntime,
    binding: &Binding,
    request: &PolicyRequest,
) -> Result<Decision, PluginFault> {
    bounded(rt.runtime.evaluate(binding, request)).await
}

fn grant_of(decision: Result<Decision, PluginFault>) -> idfed::plugins::Grant {
    match decision {
        Ok(Decision::Allow { grant }) => grant,
        other => panic!("expected an allow, got {other:?}"),
    }
}

fn reason_of(decision: Result<Decision, PluginFault>) -> String {
    match decision {
        Ok(Decision::Deny { reason }) => reason,
        other => panic!("expected a deny, got {other:?}"),
    }
}

fn fault_of(decision: Result<Decision, PluginFault>) -> PluginFault {
    match decision {
        Err(fault) => fault,
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn at(mut request: PolicyRequest, unix_seconds: u64) -> PolicyRequest {
    request.time = std::time::UNIX_EPOCH + Duration::from_secs(unix_seconds);
    request
}

const MON_0915: u64 = 1_796_030_100;
const MON_2000: u64 = 1_796_068_800;
const SUN_1000: u64 = 1_795_946_400;

#[tokio::test]
async fn business_hours_allows_inside_the_window_denies_outside_and_exempts_groups() {
    let rt = TestRuntime::new();
    let config = r#"{"utc_offset_minutes": 0, "days": ["mon","tue","wed","thu","fri"], "start": "08:00", "end": "18:00", "exempt_groups": ["oncall"]}"#;
    let b = bind(&rt, "bh", fixtures::BUSINESS_HOURS, config).await;
    let r = request(
        "alice",
        &["dev"],
        PrincipalType::FederatedUser,
        Some(S3_READ_POLICY),
    );
    assert_eq!(
        grant_of(decide(&rt, &b, &at(r.clone(), MON_0915)).await),
        r.unchanged_grant()
    );
    let evening = reason_of(decide(&rt, &b, &at(r.clone(), MON_2000)).await);
    assert!(
        evening.contains("08:00") && evening.contains("18:00"),
        "{evening}"
    );
    reason_of(decide(&rt, &b, &at(r.clone(), SUN_1000)).await);
    let oncall = request(
        "olga",
        &["oncall"],
        PrincipalType::FederatedUser,
        Some(S3_READ_POLICY),
    );
    grant_of(decide(&rt, &b, &at(oncall, MON_2000)).await);
    // The UTC offset moves the window: 20:00 UTC is 09:00 at UTC+13.
    let b13 = bind(
        &rt,
        "bh13",
        fixtures::BUSINESS_HOURS,
        &config.replace("\"utc_offset_minutes\": 0", "\"utc_offset_minutes\": 780"),
    )
    .await;
    grant_of(decide(&rt, &b13, &at(r, MON_2000)).await);
}

#[tokio::test]
async fn duration_cap_caps_per_group_first_rule_first() {
    let rt = TestRuntime::new();
    let config = r#"{"rules": [{"group": "contractors", "max_duration_seconds": 3600}, {"group": "dev", "max_duration_seconds": 14400}], "default_max_duration_seconds": 28800}"#;
    let b = bind(&rt, "cap", fixtures::DURATION_CAP, config).await;
    let mut long = request(
        "carl",
        &["dev", "contractors"],
        PrincipalType::AssumedRole,
        None,
    );
    long.duration_seconds = 43_200;
    assert_eq!(
        grant_of(decide(&rt, &b, &long).await).duration_seconds,
        3600
    );
    long.caller.groups = vec!["dev".into()];
    assert_eq!(
        grant_of(decide(&rt, &b, &long).await).duration_seconds,
        14_400
    );
    long.caller.groups = vec!["ops".into()];
    assert_eq!(
        grant_of(decide(&rt, &b, &long).await).duration_seconds,
        28_800
    );
    let short = request("ann", &["ops"], PrincipalType::AssumedRole, None);
    assert_eq!(
        grant_of(decide(&rt, &b, &short).await).duration_seconds,
        3600
    );
}

const ADMIN_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","s3:*"],"Resource":"*"}]}"#;

#[tokio::test]
async fn policy_guard_denies_or_rewrites_dangerous_policies() {
    let rt = TestRuntime::new();
    let deny = bind(
        &rt,
        "guard-deny",
        fixtures::POLICY_GUARD,
        r#"{"mode": "deny", "actions": ["iam:*", "organizations:*"]}"#,
    )
    .await;
    let risky = request(
        "alice",
        &["dev"],
        PrincipalType::FederatedUser,
        Some(ADMIN_POLICY),
    );
    let reason = reason_of(decide(&rt, &deny, &risky).await);
    assert!(reason.contains("iam:*"), "{reason}");
    let safe = request(
        "alice",
        &["dev"],
        PrincipalType::FederatedUser,
        Some(S3_READ_POLICY),
    );
    assert_eq!(
        grant_of(decide(&rt, &deny, &safe).await),
        safe.unchanged_grant()
    );

    let rewrite = bind(
        &rt,
        "guard-rewrite",
        fixtures::POLICY_GUARD,
        r#"{"mode": "rewrite", "actions": ["iam:*"]}"#,
    )
    .await;
    let grant = grant_of(decide(&rt, &rewrite, &risky).await);
    let policy: serde_json::Value = serde_json::from_str(grant.policy.as_deref().unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert!(
        statements
            .iter()
            .any(|s| s["Effect"] == "Deny" && s.to_string().contains("iam:*")),
        "no Deny statement for iam:* in {policy}"
    );
    // A role with no session policy has the role's whole permissions: the rewrite still guards it.
    let bare_role = request("alice", &["dev"], PrincipalType::AssumedRole, None);
    let grant = grant_of(decide(&rt, &rewrite, &bare_role).await);
    assert!(grant.policy.as_deref().unwrap().contains("Deny"));
}

#[tokio::test]
async fn rate_limit_counts_per_caller_and_state_survives_a_restart_private_to_its_binding() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = r#"{"max_requests": 2, "window_seconds": 3600}"#;
    let alice = request("alice", &["dev"], PrincipalType::IamUser, None);
    let bob = request("bob", &["dev"], PrincipalType::IamUser, None);
    {
        let rt = TestRuntime::open(dir.clone(), RuntimeConfig::default());
        let b = bind(&rt, "limit-1", fixtures::RATE_LIMIT, config).await;
        grant_of(decide(&rt, &b, &alice).await);
        grant_of(decide(&rt, &b, &alice).await);
        let reason = reason_of(decide(&rt, &b, &alice).await);
        assert!(
            reason.contains('2'),
            "the reason should state the limit: {reason}"
        );
        grant_of(decide(&rt, &b, &bob).await);
        rt.runtime.kv().flush().unwrap();
    }
    // A restart: a new runtime and database over the same data directory.
    let rt = TestRuntime::open(dir, RuntimeConfig::default());
    let b = bind(&rt, "limit-1", fixtures::RATE_LIMIT, config).await;
    reason_of(decide(&rt, &b, &alice).await);
    grant_of(decide(&rt, &b, &bob).await);
    reason_of(decide(&rt, &b, &bob).await);
    // Another binding of the same plugin has its own, empty store.
    let other = bind(&rt, "limit-2", fixtures::RATE_LIMIT, config).await;
    grant_of(decide(&rt, &other, &alice).await);
}

#[tokio::test]
async fn session_tags_adds_tags_from_the_caller_and_keeps_existing_ones() {
    let rt = TestRuntime::new();
    let config = r#"{"user_tag": "idfed-user", "team_tag": "team", "team_group_pattern": "team-*", "static": {"cost-center": "1234"}}"#;
    let b = bind_tagging(
        &rt,
        "tags",
        fixtures::SESSION_TAGS,
        config,
        &["idfed-user", "team", "cost-center"],
    )
    .await;
    let mut r = request(
        "alice",
        &["dev", "team-blue"],
        PrincipalType::AssumedRole,
        Some(S3_READ_POLICY),
    );
    r.tags = vec![SessionTag {
        key: "project".into(),
        value: "apollo".into(),
    }];
    let tags = grant_of(decide(&rt, &b, &r).await).tags;
    for (key, value) in [
        ("project", "apollo"),
        ("idfed-user", "alice"),
        ("team", "blue"),
        ("cost-center", "1234"),
    ] {
        assert!(
            tags.contains(&SessionTag {
                key: key.into(),
                value: value.into()
            }),
            "{key}={value} missing from {tags:?}"
        );
    }
    // GetSessionToken takes no tags: an iam-user request passes unchanged.
    let iam_user = request("alice", &["team-blue"], PrincipalType::IamUser, None);
    assert!(grant_of(decide(&rt, &b, &iam_user).await).tags.is_empty());
}

#[tokio::test]
async fn a_chain_passes_each_grant_on_and_stops_at_the_first_deny_or_fault() {
    let rt = TestRuntime::new();
    let cap = bind(
        &rt,
        "cap",
        fixtures::DURATION_CAP,
        r#"{"rules": [], "default_max_duration_seconds": 1800}"#,
    )
    .await;
    let tags = bind_tagging(
        &rt,
        "tags",
        fixtures::SESSION_TAGS,
        r#"{"user_tag": "idfed-user"}"#,
        &["idfed-user"],
    )
    .await;
    let guard = bind(
        &rt,
        "guard",
        fixtures::POLICY_GUARD,
        r#"{"mode": "deny", "actions": ["iam:*"]}"#,
    )
    .await;
    let panics = bind(&rt, "panics", fixtures::PANIC_PLUGIN, "{}").await;
    let r = request(
        "alice",
        &["dev"],
        PrincipalType::AssumedRole,
        Some(S3_READ_POLICY),
    );

    let chain = [cap.clone(), tags.clone(), guard.clone()];
    match bounded(rt.runtime.run_chain(&chain, &r)).await {
        ChainOutcome::Allow(grant) => {
            assert_eq!(grant.duration_seconds, 1800);
            assert_eq!(
                grant.tags,
                vec![SessionTag {
                    key: "idfed-user".into(),
                    value: "alice".into()
                }]
            );
        }
        other => panic!("{other:?}"),
    }
    let risky = PolicyRequest {
        policy: Some(ADMIN_POLICY.into()),
        ..r.clone()
    };
    match bounded(rt.runtime.run_chain(&chain, &risky)).await {
        ChainOutcome::Deny { binding, .. } => assert_eq!(binding, "guard"),
        other => panic!("{other:?}"),
    }
    match bounded(rt.runtime.run_chain(&[cap, panics, guard], &r)).await {
        ChainOutcome::Fault { binding, fault } => {
            assert_eq!(binding, "panics");
            assert_eq!(fault.code(), "plugin_trap");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        bounded(rt.runtime.run_chain(&[], &r)).await,
        ChainOutcome::Allow(r.unchanged_grant())
    );
}

#[tokio::test]
async fn misbehaving_plugins_are_denied_with_their_own_fault_and_the_host_goes_on() {
    let rt = TestRuntime::new();
    let good = bind(&rt, "good", fixtures::DURATION_CAP, "{}").await;
    let r = request("alice", &["dev"], PrincipalType::AssumedRole, None);
    let cases: [(&str, &str, &str); 5] = [
        (fixtures::ENDLESS_LOOP, "plugin_timeout", "deadline"),
        (fixtures::ALLOC_BOMB, "plugin_memory_limit", "memory limit"),
        (fixtures::PANIC_PLUGIN, "plugin_trap", "fixture panic: boom"),
        (
            fixtures::WIDEN_DURATION,
            "plugin_widened_grant",
            "longer than",
        ),
        (
            fixtures::PLUGIN_ERROR,
            "plugin_error",
            "fixture: internal failure",
        ),
    ];
    for (path, code, text) in cases {
        // Only the endless loop is meant to meet its deadline: the others get a generous one, so that on
        // a loaded machine each still fails for its own reason (the memory cap, the trap…), not the clock.
        let b = if code == "plugin_timeout" {
            bind(&rt, code, path, "{}").await
        } else {
            let options = BindOptions {
                limits: Some(Limits {
                    deadline: Duration::from_secs(2),
                    ..rt.runtime.config().default_limits
                }),
                ..BindOptions::default()
            };
            bounded(rt.runtime.bind_with(code, rt.load(path), "{}", &options))
                .await
                .unwrap()
        };
        let fault = fault_of(decide(&rt, &b, &r).await);
        assert_eq!(fault.code(), code, "{path}: {fault}");
        assert!(fault.to_string().contains(text), "{path}: {fault}");
        // The host is unharmed: the next request on the same runtime is served.
        grant_of(decide(&rt, &good, &r).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_plugins_do_not_stop_other_requests() {
    let rt = TestRuntime::new();
    let slow = Limits {
        deadline: Duration::from_millis(500),
        ..Limits::default()
    };
    let hang = bounded(
        rt.runtime
            .bind("hang", rt.load(fixtures::ENDLESS_LOOP), "{}", Some(slow)),
    )
    .await
    .unwrap();
    let good = bind(&rt, "good", fixtures::DURATION_CAP, "{}").await;
    let r = request("alice", &["dev"], PrincipalType::AssumedRole, None);
    let hangs: Vec<_> = (0..4)
        .map(|_| {
            let (runtime, hang, r) = (rt.runtime.clone(), hang.clone(), r.clone());
            tokio::spawn(async move { runtime.evaluate(&hang, &r).await })
        })
        .collect();
    // While four plugins spin on the two worker threads, ordinary evaluations, scheduled on those same
    // workers, still complete — all of them before the spinning ones reach their deadline.
    let served = {
        let (runtime, good, r) = (rt.runtime.clone(), good.clone(), r.clone());
        bounded(tokio::spawn(async move {
            let mut served = 0;
            for _ in 0..20 {
                grant_of(runtime.evaluate(&good, &r).await);
                served += 1;
            }
            served
        }))
        .await
        .unwrap()
    };
    let still_spinning = hangs.iter().filter(|h| !h.is_finished()).count();
    for h in hangs {
        assert_eq!(
            bounded(h).await.unwrap().unwrap_err().code(),
            "plugin_timeout"
        );
    }
    assert_eq!(served, 20);
    assert!(
        still_spinning > 0,
        "the hanging plugins ended before the good ones were served"
    );
}

#[tokio::test]
async fn a_plugin_cannot_reach_files_the_network_or_the_environment() {
    let rt = TestRuntime::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let config =
        serde_json::json!({"addr": listener.local_addr().unwrap().to_string(), "env_var": "PATH"})
            .to_string();
    assert!(
        std::env::var_os("PATH").is_some(),
        "the host has PATH, so the probe would see it if it leaked"
    );
    let b = bind(&rt, "probe", fixtures::SANDBOX_PROBE, &config).await;
    let report = reason_of(
        decide(
            &rt,
            &b,
            &request("alice", &[], PrincipalType::IamUser, None),
        )
        .await,
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    for key in ["file", "dir_root", "dir_cwd", "socket", "env_var"] {
        let outcome = report[key].as_str().unwrap_or_default();
        assert!(
            outcome.starts_with("Err"),
            "{key} should have failed inside the sandbox: {report}"
        );
    }
    assert_eq!(report["env_count"], 0, "{report}");
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the plugin connected to the host's socket"
    );
}

#[tokio::test]
async fn a_log_flood_is_capped_and_the_plugin_still_answers() {
    let rt = TestRuntime::new();
    // 2,000 lines of 16 KiB each to the log and to stderr: 64 MB, which the host neither keeps nor writes.
    // (The host's own work on the plugin's calls counts against the wall-clock deadline, so the flood is
    // sized to finish within it on a loaded debug build.)
    let generous = Limits {
        deadline: Duration::from_secs(5),
        ..Limits::default()
    };
    let plugin = rt.load(fixtures::LOG_FLOOD);
    let config = r#"{"lines": 2000, "bytes": 16384}"#;
    let b = bounded(rt.runtime.bind("flood", plugin, config, Some(generous)))
        .await
        .unwrap();
    let r = request("alice", &[], PrincipalType::AssumedRole, None);
    assert_eq!(grant_of(decide(&rt, &b, &r).await), r.unchanged_grant());
}

#[tokio::test]
async fn components_of_another_world_or_version_and_non_components_are_refused_at_load() {
    let rt = TestRuntime::new();
    for path in [fixtures::OTHER_WORLD, fixtures::OTHER_VERSION] {
        let wasm = std::fs::read(path).unwrap();
        let err = rt.runtime.load("x", &wasm).unwrap_err();
        assert!(matches!(err, LoadError::Incompatible(_)), "{path}: {err}");
        assert_eq!(err.code(), "plugin_incompatible");
    }
    let core_module = b"\0asm\x01\0\0\0";
    assert_eq!(
        rt.runtime.load("x", core_module).unwrap_err().code(),
        "plugin_not_a_component"
    );
    assert_eq!(
        rt.runtime
            .load("x", b"#!/bin/sh\necho hi\n")
            .unwrap_err()
            .code(),
        "plugin_not_a_component"
    );
    let mut truncated = std::fs::read(fixtures::DURATION_CAP).unwrap();
    truncated.truncate(truncated.len() / 2);
    assert_eq!(
        rt.runtime.load("x", &truncated).unwrap_err().code(),
        "plugin_not_a_component"
    );
}

#[tokio::test]
async fn a_bad_config_or_bad_limits_are_refused_at_bind_time() {
    let rt = TestRuntime::new();
    let plugin = rt.load(fixtures::DURATION_CAP);
    let refused = rt
        .runtime
        .bind("b", plugin.clone(), r#"{"rules": "everyone"}"#, None)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, BindError::ConfigRefused { .. }),
        "{refused}"
    );
    let too_short = rt
        .runtime
        .bind(
            "b",
            plugin.clone(),
            r#"{"default_max_duration_seconds": 60}"#,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(too_short, BindError::ConfigRefused { .. }),
        "{too_short}"
    );
    let not_json = rt
        .runtime
        .bind("b", plugin.clone(), "{rules:", None)
        .await
        .unwrap_err();
    assert_eq!(not_json.code(), "plugin_config_invalid");
    let huge = Limits {
        memory_bytes: 1 << 40,
        ..Limits::default()
    };
    assert_eq!(
        rt.runtime
            .bind("b", plugin.clone(), "{}", Some(huge))
            .await
            .unwrap_err()
            .code(),
        "plugin_limits_invalid"
    );
    let business = rt.load(fixtures::BUSINESS_HOURS);
    let bad_day = rt
        .runtime
        .bind("b", business, r#"{"days": ["someday"]}"#, None)
        .await
        .unwrap_err();
    assert!(
        matches!(bad_day, BindError::ConfigRefused { .. }),
        "{bad_day}"
    );
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk_across_restarts() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let wasm = std::fs::read(fixtures::DURATION_CAP).unwrap();
    {
        let rt = TestRuntime::open(dir.clone(), RuntimeConfig::default());
        assert_eq!(
            rt.runtime.load("cap", &wasm).unwrap().source(),
            CompileSource::Compiled
        );
        assert_eq!(
            rt.runtime.load("cap", &wasm).unwrap().source(),
            CompileSource::Cached
        );
    }
    let rt = TestRuntime::open(dir.clone(), RuntimeConfig::default());
    let plugin = rt.runtime.load("cap", &wasm).unwrap();
    assert_eq!(plugin.source(), CompileSource::Cached);
    let b = bounded(rt.runtime.bind("b", plugin, "{}", None))
        .await
        .unwrap();
    grant_of(decide(&rt, &b, &request("a", &[], PrincipalType::IamUser, None)).await);
    drop(rt);

    // A damaged cache file is not trusted blindly: it fails to load and the component is compiled again.
    let cache = dir.path().join("component-cache");
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not a compiled component").unwrap();
    }
    let rt = TestRuntime::open(dir, RuntimeConfig::default());
    assert_eq!(
        rt.runtime.load("cap", &wasm).unwrap().source(),
        CompileSource::Compiled
    );
}

#[tokio::test]
async fn nothing_survives_from_one_evaluation_to_the_next() {
    let rt = TestRuntime::new();
    let probe = bind(&rt, "probe", fixtures::STATE_PROBE, "{}").await;
    let other = bind_tagging(&rt, "other", fixtures::SESSION_TAGS, "{}", &["idfed-user"]).await;
    for (i, user) in ["alice", "bob", "carol"]
        .iter()
        .cycle()
        .take(30)
        .enumerate()
    {
        let r = request(user, &["dev"], PrincipalType::AssumedRole, None);
        let report: serde_json::Value =
            serde_json::from_str(&reason_of(decide(&rt, &probe, &r).await)).unwrap();
        assert_eq!(
            report,
            serde_json::json!({"calls": 1, "previous_caller": ""}),
            "evaluation {i}"
        );
        grant_of(decide(&rt, &other, &r).await);
    }
}

// ---- the contract's versions side by side: 0.1.0 (frozen) and 0.2.0

#[tokio::test]
async fn a_0_1_component_still_loads_links_its_imports_and_runs_beside_0_2_plugins() {
    let rt = TestRuntime::new();
    let legacy = rt.load(fixtures::CONTRACT_V01);
    assert_eq!(legacy.contract(), ContractVersion::V0_1);
    assert!(
        legacy
            .imports()
            .iter()
            .any(|i| i == "idfed:policy/kv@0.1.0"),
        "{:?}",
        legacy.imports()
    );
    // Every example plugin is built with the SDK, which targets 0.2.0.
    assert_eq!(
        rt.load(fixtures::DURATION_CAP).contract(),
        ContractVersion::V0_2
    );
    assert_eq!(
        rt.load(fixtures::CONTRACT_PROBE).contract(),
        ContractVersion::V0_2
    );

    let r = request("alice", &["dev"], PrincipalType::AssumedRole, None);
    let capping = bind(
        &rt,
        "legacy-cap",
        fixtures::CONTRACT_V01,
        r#"{"cap_seconds": 1200}"#,
    )
    .await;
    assert_eq!(
        grant_of(decide(&rt, &capping, &r).await).duration_seconds,
        1200
    );
    // Its log, clock and kv imports (0.1.0's) work: the store counts its calls.
    let denying = bind(
        &rt,
        "legacy-deny",
        fixtures::CONTRACT_V01,
        r#"{"deny": true}"#,
    )
    .await;
    assert_eq!(
        reason_of(decide(&rt, &denying, &r).await),
        "v0.1: alice on dev for 3600s, call 1"
    );
    assert_eq!(
        reason_of(decide(&rt, &denying, &r).await),
        "v0.1: alice on dev for 3600s, call 2"
    );
    // A chain mixes versions: the 0.2.0 plugin sees the 0.1.0 plugin's grant.
    let cap = bind(
        &rt,
        "cap",
        fixtures::DURATION_CAP,
        r#"{"default_max_duration_seconds": 1000}"#,
    )
    .await;
    match bounded(rt.runtime.run_chain(&[capping, cap], &r)).await {
        ChainOutcome::Allow(grant) => assert_eq!(grant.duration_seconds, 1000),
        other => panic!("{other:?}"),
    }
}

/// A request with every field 0.2.0 adds set.
fn request_0_2() -> PolicyRequest {
    let mut r = request("alice", &["dev"], PrincipalType::AssumedRole, None);
    r.justification = Some("incident 42: the payments queue is stuck".into());
    r.ticket = Some("OPS-1234".into());
    r.purpose = Purpose::ServiceToken("codeartifact".into());
    r.approval = Some(Approval {
        approver: "bob".into(),
        approved_at: std::time::UNIX_EPOCH + Duration::from_secs(1_796_029_200),
        comment: Some("go ahead".into()),
    });
    r.caller.workload = Some(WorkloadIdentity {
        issuer: "ci".into(),
        subject: "repo:org/app:ref:refs/heads/main".into(),
        claims: vec![
            Claim {
                name: "ref".into(),
                value: r#""refs/heads/main""#.into(),
            },
            Claim {
                name: "run_number".into(),
                value: "17".into(),
            },
        ],
    });
    r
}

#[tokio::test]
async fn a_0_2_plugin_sees_justification_ticket_purpose_approval_and_the_workload() {
    let rt = TestRuntime::new();
    let probe = bind(
        &rt,
        "probe",
        fixtures::CONTRACT_PROBE,
        r#"{"mode": "echo"}"#,
    )
    .await;
    let seen: serde_json::Value =
        serde_json::from_str(&reason_of(decide(&rt, &probe, &request_0_2()).await)).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "justification": "incident 42: the payments queue is stuck",
            "ticket": "OPS-1234",
            "purpose": "service-token:codeartifact",
            "approval": {"approver": "bob", "approved_at": 1_796_029_200u64, "comment": "go ahead"},
            "workload": {
                "issuer": "ci",
                "subject": "repo:org/app:ref:refs/heads/main",
                "claims": {"ref": "\"refs/heads/main\"", "run_number": "17"},
            },
        })
    );
    // What nothing sets arrives empty, and the purpose defaults to credentials.
    let plain = request("alice", &["dev"], PrincipalType::AssumedRole, None);
    let seen: serde_json::Value =
        serde_json::from_str(&reason_of(decide(&rt, &probe, &plain).await)).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({"justification": null, "ticket": null, "purpose": "credentials",
                           "approval": null, "workload": null})
    );
    // The justification and the ticket are cut at the caps 0.2.0 documents.
    let mut long = plain.clone();
    long.purpose = Purpose::ConsoleSignIn;
    long.justification = Some("j".repeat(MAX_JUSTIFICATION_BYTES * 3));
    long.ticket = Some("t".repeat(MAX_TICKET_BYTES + 1));
    let lengths = bind(
        &rt,
        "lengths",
        fixtures::CONTRACT_PROBE,
        r#"{"mode": "lengths"}"#,
    )
    .await;
    let seen: serde_json::Value =
        serde_json::from_str(&reason_of(decide(&rt, &lengths, &long).await)).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({"justification_bytes": MAX_JUSTIFICATION_BYTES,
                           "ticket_bytes": MAX_TICKET_BYTES, "purpose": "console-sign-in"})
    );
}

#[tokio::test]
async fn needs_approval_stops_the_chain_and_its_group_and_reason_are_bounded() {
    let rt = TestRuntime::new();
    let asks = bind(
        &rt,
        "asks",
        fixtures::CONTRACT_PROBE,
        r#"{"mode": "approval", "group": "prod-approvers", "reason": "production writes need a second person", "max_duration_seconds": 1800}"#,
    )
    .await;
    let r = request("alice", &["dev"], PrincipalType::AssumedRole, None);
    match decide(&rt, &asks, &r).await {
        Ok(Decision::NeedsApproval {
            group,
            reason,
            max_duration_seconds,
        }) => {
            assert_eq!(group, "prod-approvers");
            assert_eq!(reason, "production writes need a second person");
            assert_eq!(max_duration_seconds, Some(1800));
        }
        other => panic!("expected needs-approval, got {other:?}"),
    }
    // In a chain, it stops there: the plugin after it never runs.
    let after = bind(&rt, "after", fixtures::PANIC_PLUGIN, "{}").await;
    match bounded(rt.runtime.run_chain(&[asks.clone(), after], &r)).await {
        ChainOutcome::NeedsApproval { binding, group, .. } => {
            assert_eq!(binding, "asks");
            assert_eq!(group, "prod-approvers");
        }
        other => panic!("{other:?}"),
    }
    // Once approved, the same plugin allows.
    assert_eq!(
        grant_of(decide(&rt, &asks, &request_0_2()).await),
        request_0_2().unchanged_grant()
    );
    // A huge group and reason are cut, like a denial's reason, before the host copies them.
    let huge = bind_with_limits(
        &rt,
        "huge",
        fixtures::CONTRACT_PROBE,
        r#"{"mode": "approval", "group": "g", "reason": "r", "pad": 4000000}"#,
    )
    .await;
    match decide(&rt, &huge, &r).await {
        Ok(Decision::NeedsApproval { group, reason, .. }) => {
            for text in [&group, &reason] {
                assert!(text.len() < 1100, "{} bytes", text.len());
                assert!(text.ends_with("[truncated]"), "{text}");
            }
            assert!(group.starts_with("gxxx") && reason.starts_with("rxxx"));
        }
        other => panic!("expected needs-approval, got {other:?}"),
    }
}

async fn bind_with_limits(rt: &TestRuntime, id: &str, path: &str, config: &str) -> Binding {
    let limits = Limits {
        deadline: Duration::from_millis(500),
        memory_bytes: 64 << 20,
    };
    bounded(rt.runtime.bind(id, rt.load(path), config, Some(limits)))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_load_error_about_imports_names_every_contract_version() {
    let rt = TestRuntime::new();
    let err = rt
        .runtime
        .load("x", &std::fs::read(fixtures::OTHER_VERSION).unwrap())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("idfed:policy@0.1.0") && message.contains("idfed:policy@0.2.0"),
        "{message}"
    );
}

/// Asserts that an answer to a vend says the request needs an approval by a member of `group`: today the
/// host refuses it with `403 approval_required` naming the group; with the approval workflow it answers `202`
/// with the approval request. The one place that knows both.
fn assert_needs_approval(status: u16, body: &Value, group: &str) {
    match status {
        403 => {
            assert_eq!(body["error"]["code"], json!("approval_required"), "{body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(group), "the group is named: {body}");
        }
        202 => assert_eq!(body["approval"]["group"], json!(group), "{body}"),
        other => panic!(
            "expected 403 approval_required or 202 with an approval request, got {other}: {body}"
        ),
    }
    assert!(
        body.get("access_key_id").is_none(),
        "nothing vended: {body}"
    );
}

/// A require-approval `window` (UTC) on one day, opening `opens_in` minutes from now (negative: before now)
/// for `length` minutes, running past midnight when it must.
fn window_from_now(opens_in: i64, length: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60;
    let opens = now + opens_in;
    // 1970-01-01 was a Thursday.
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [(opens.div_euclid(1440) + 3).rem_euclid(7) as usize];
    let hhmm = |minute: i64| {
        let m = minute.rem_euclid(1440);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    json!({"days": [day], "start": hhmm(opens), "end": hhmm(opens + length), "utc_offset_minutes": 0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_approval_wants_a_justification_then_an_approval_and_lets_reads_through() {
    const DELETE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::data/*"}]}"#;
    const PUT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::data/*"}]}"#;
    use idfed::store::Store;

    let server = TestServer::start(vec![user("alice", &["devs"])], "").await;
    server
        .service
        .store
        .create_connector(role_connector("prod", "main", &["devs"]))
        .unwrap();
    let alice = server.login("alice").await;
    let vend = |body: Value| {
        let request = server
            .client
            .post(server.url("/api/v1/connectors/prod/credentials"))
            .bearer_auth(&alice)
            .json(&body);
        async move {
            let answer = bounded(request.send()).await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }
    };
    // Now is inside the window: only the listed actions need an approval.
    let config = |window: Value| {
        json!({"group": "prod-approvers", "window": window, "actions": ["s3:Delete*"]}).to_string()
    };
    server.bind_only(
        "prod",
        fixtures::REQUIRE_APPROVAL,
        &config(window_from_now(-60, 180)),
    );

    // Deleting without a justification: denied, and told how to give one.
    let (status, body) = vend(json!({"policy": DELETE})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], json!("plugin_denied"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("s3:Delete*")
            && message.contains("justification")
            && message.contains("--reason"),
        "{message}"
    );
    let record = &server.records_of("prod")[0].event;
    assert_eq!(record.outcome, idfed::audit::Outcome::PluginDenied);
    assert!(record.access_key_id.is_none());

    // With one: it needs an approval by the group.
    let (status, body) =
        vend(json!({"policy": DELETE, "justification": "remove the leaked export, INC-7"})).await;
    assert_needs_approval(status, &body, "prod-approvers");

    // Reading inside the window: vended, no justification asked.
    let (status, body) = vend(json!({"policy": S3_READ_POLICY})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["access_key_id"]
            .as_str()
            .is_some_and(|k| !k.is_empty()),
        "{body}"
    );

    // Outside the window (it opens in two hours), a write needs an approval too, and a read still does not.
    server.bind_only(
        "prod",
        fixtures::REQUIRE_APPROVAL,
        &config(window_from_now(120, 60)),
    );
    let (status, body) = vend(json!({"policy": PUT, "justification": "hotfix"})).await;
    assert_needs_approval(status, &body, "prod-approvers");
    let (status, body) = vend(json!({"policy": PUT})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outside"),
        "{body}"
    );
    let (status, body) = vend(json!({"policy": S3_READ_POLICY})).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}
