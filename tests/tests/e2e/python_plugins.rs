//! Python policy plugins (`plugins/python/`, written with `sdk/python`, built with componentize-py): the
//! business-hours example decides as the Rust one does, and the misbehaving fixtures (an endless loop,
//! memory growth, an exception) are held to the Rust fixtures' sandbox and fault expectations: each earns
//! its fault, the request is denied, never allowed, and the host serves the next request.
//!
//! Each component is built and compiled once per test run (see `idfed_tests::python`). Python bindings get
//! a deadline of seconds here: an evaluation takes ~2 ms on a release host but ~30 ms on the debug host
//! the tests run, too close to the 50 ms default on a loaded machine.

use std::time::{Duration, SystemTime};

use idfed::plugins::{
    BindError, BindOptions, Binding, ChainOutcome, Decision, Limits, PluginFault, PolicyRequest,
    PrincipalType,
};
use idfed_tests::python::{self, PythonRuntime};
use idfed_tests::{S3_READ_POLICY, fixtures, idfed_binary, request};

/// Guards against a hang; not a speed assertion (the first load of a component may compile it).
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(300), f)
        .await
        .expect("the host must answer; it hung")
}

fn limits(deadline: Duration) -> BindOptions {
    BindOptions {
        limits: Some(Limits {
            deadline,
            ..Limits::default()
        }),
        ..BindOptions::default()
    }
}

async fn bind_python(
    rt: &PythonRuntime,
    id: &str,
    name: &str,
    config: &str,
    deadline: Duration,
) -> Binding {
    let plugin = tokio::task::block_in_place(|| rt.load(name));
    bounded(rt.runtime.bind_with(id, plugin, config, &limits(deadline)))
        .await
        .unwrap()
}

/// A Rust plugin on the same runtime, to show the host still serves others.
async fn bind_rust(rt: &PythonRuntime, id: &str, path: &str) -> Binding {
    let plugin = rt.runtime.load(id, &std::fs::read(path).unwrap()).unwrap();
    bounded(rt.runtime.bind(id, plugin, "{}", None))
        .await
        .unwrap()
}

fn monday() -> PolicyRequest {
    // Mon 2026-11-30 09:15 UTC.
    request(
        "alice",
        &["dev"],
        PrincipalType::AssumedRole,
        Some(S3_READ_POLICY),
    )
}

fn saturday() -> PolicyRequest {
    PolicyRequest {
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_030_100 + 5 * 86_400 + 3600),
        ..monday()
    }
}

/// The host still serves ordinary evaluations, Python and Rust.
async fn still_serves(rt: &PythonRuntime, good: &[&Binding]) {
    let r = monday();
    for binding in good {
        match bounded(rt.runtime.evaluate(binding, &r)).await {
            Ok(Decision::Allow { grant }) => assert_eq!(grant, r.unchanged_grant()),
            other => panic!("{}: {other:?}", binding.id()),
        }
    }
}

const SECONDS: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_business_hours_plugin_decides_like_the_rust_one() {
    let rt = python::runtime();
    let config = r#"{"utc_offset_minutes": 60, "exempt_groups": ["oncall"]}"#;
    let py = bind_python(&rt, "py", python::BUSINESS_HOURS, config, SECONDS).await;
    assert_eq!(
        py.plugin().contract().package(),
        "idfed:policy@0.2.0",
        "the SDK targets 0.2.0"
    );
    let rust = bounded(
        rt.runtime.bind(
            "rust",
            rt.runtime
                .load("rust", &std::fs::read(fixtures::BUSINESS_HOURS).unwrap())
                .unwrap(),
            config,
            None,
        ),
    )
    .await
    .unwrap();

    // Inside the window: allowed, unchanged.
    match bounded(rt.runtime.evaluate(&py, &monday())).await {
        Ok(Decision::Allow { grant }) => assert_eq!(grant, monday().unchanged_grant()),
        other => panic!("{other:?}"),
    }
    // Outside: denied, with the very reason the Rust plugin gives.
    let reason = match bounded(rt.runtime.evaluate(&py, &saturday())).await {
        Ok(Decision::Deny { reason }) => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        reason,
        "outside business hours: credentials are issued on Mon, Tue, Wed, Thu, Fri from 08:00 to 18:00 (UTC+01:00); it is now Sat 11:15 (UTC+01:00)"
    );
    match bounded(rt.runtime.evaluate(&rust, &saturday())).await {
        Ok(Decision::Deny {
            reason: rust_reason,
        }) => assert_eq!(reason, rust_reason),
        other => panic!("{other:?}"),
    }
    // An exempt caller is allowed outside the window.
    let mut oncall = saturday();
    oncall.caller.groups.push("oncall".into());
    assert!(matches!(
        bounded(rt.runtime.evaluate(&py, &oncall)).await,
        Ok(Decision::Allow { .. })
    ));
    // In a chain with a Rust plugin, the Python one's denial stops it.
    match bounded(
        rt.runtime
            .run_chain(&[rust.clone(), py.clone()], &saturday()),
    )
    .await
    {
        ChainOutcome::Deny { binding, .. } => assert_eq!(binding, "rust"),
        other => panic!("{other:?}"),
    }
    match bounded(rt.runtime.run_chain(&[rust, py], &monday())).await {
        ChainOutcome::Allow(grant) => assert_eq!(grant, monday().unchanged_grant()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_refuses_a_bad_configuration_with_a_pointer() {
    let rt = python::runtime();
    let plugin = tokio::task::block_in_place(|| rt.load(python::BUSINESS_HOURS));
    let err = bounded(rt.runtime.bind_with(
        "bad",
        plugin,
        r#"{"days": ["mon", "funday"]}"#,
        &limits(SECONDS),
    ))
    .await
    .unwrap_err();
    match err {
        BindError::ConfigRefused { message, pointer } => {
            assert_eq!(pointer.as_deref(), Some("/days/1"));
            assert!(message.contains("unknown day 'funday'"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

/// Binds a misbehaving fixture, evaluates once and returns its fault, checking nothing was allowed and that
/// a Python and a Rust plugin on the same runtime are served afterwards.
async fn fault_of_fixture(name: &str, config: &str, deadline: Duration) -> PluginFault {
    let rt = python::runtime();
    let good_py = bind_python(&rt, "good-py", python::BUSINESS_HOURS, "{}", SECONDS).await;
    let good_rust = bind_rust(&rt, "good-rust", fixtures::DURATION_CAP).await;
    let bad = bind_python(&rt, "bad", name, config, deadline).await;
    let fault = match bounded(rt.runtime.evaluate(&bad, &monday())).await {
        Err(fault) => fault,
        other => panic!("{name}: expected a fault, got {other:?}"),
    };
    // In a chain, the fault denies the request.
    match bounded(
        rt.runtime
            .run_chain(&[good_rust.clone(), bad.clone()], &monday()),
    )
    .await
    {
        ChainOutcome::Fault { binding, fault: f } => {
            assert_eq!(binding, "bad");
            assert_eq!(f.code(), fault.code());
        }
        other => panic!("{name}: {other:?}"),
    }
    still_serves(&rt, &[&good_py, &good_rust]).await;
    fault
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_endless_loop_is_stopped_at_its_deadline() {
    let fault = fault_of_fixture(python::ENDLESS_LOOP, "{}", Duration::from_millis(500)).await;
    assert_eq!(fault.code(), "plugin_timeout", "{fault}");
    assert!(fault.to_string().contains("deadline"), "{fault}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_memory_growth_is_stopped_at_the_memory_cap() {
    let fault = fault_of_fixture(python::MEMORY_GROWTH, "{}", SECONDS).await;
    assert_eq!(fault.code(), "plugin_memory_limit", "{fault}");
    assert!(fault.to_string().contains("memory limit"), "{fault}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_exception_is_a_trap_and_a_plugin_error_is_reported_as_one() {
    let fault = fault_of_fixture(python::RAISE_EXCEPTION, "{}", SECONDS).await;
    assert_eq!(fault.code(), "plugin_trap", "{fault}");
    assert!(fault.to_string().contains("boom"), "{fault}");
    let fault = fault_of_fixture(
        python::RAISE_EXCEPTION,
        r#"{"mode": "plugin_error"}"#,
        SECONDS,
    )
    .await;
    assert_eq!(fault.code(), "plugin_error", "{fault}");
    assert!(
        fault.to_string().contains("fixture: internal failure"),
        "{fault}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idfed_plugin_check_and_eval_take_a_python_component_from_the_cache() {
    // Compiled into the shared cache first, so the command reads it instead of compiling it again.
    let rt = python::runtime();
    tokio::task::block_in_place(|| rt.load(python::BUSINESS_HOURS));
    let wasm = python::component(python::BUSINESS_HOURS);
    let cache = python::out_dir();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(idfed_binary())
            .args(["plugin"])
            .args(args)
            .arg(&wasm)
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (status, stdout) = run(&["check"]);
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("is an idfed:policy@0.2.0 policy plugin"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let request_file = dir.path().join("request.json");
    let mut r = serde_json::to_value(saturday()).unwrap();
    std::fs::write(&request_file, r.to_string()).unwrap();
    let request_arg = request_file.to_str().unwrap();
    let (status, stdout) = run(&["eval", "--deadline-ms", "5000", "--request", request_arg]);
    assert!(status.success(), "{stdout}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["decision"], "deny", "{stdout}");

    r = serde_json::to_value(monday()).unwrap();
    std::fs::write(&request_file, r.to_string()).unwrap();
    let (status, stdout) = run(&["eval", "--deadline-ms", "5000", "--request", request_arg]);
    assert!(status.success(), "{stdout}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["decision"], "allow", "{stdout}");
}
