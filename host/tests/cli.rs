//! The `idfed plugin` commands, run as a user runs them: the real binary, real components, exit statuses.

use std::path::Path;
use std::process::{Command, Output};

use idfed_tests::fixtures;

fn idfed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idfed"))
        .args(args)
        .env("RUST_LIB_BACKTRACE", "0")
        // The compiled-component cache of `plugin check|eval` goes under target/, not the user's home.
        .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

const REQUEST: &str = r#"{
  "request_id": "r-1",
  "caller": {"user_name": "alice", "groups": ["contractors"], "is_admin": false, "is_system_scope": false,
             "source_ip": "192.0.2.10", "user_agent": "aws-cli/2"},
  "connector": {"name": "dev", "principal_type": "assumed-role", "account_name": "main",
                "role_arn": "arn:aws:iam::123456789012:role/dev"},
  "requested_duration_seconds": 43200,
  "duration_seconds": 43200,
  "time": "2026-11-30T09:15:00Z"
}"#;

#[test]
fn check_accepts_a_plugin_and_states_its_size() {
    let out = idfed(&["plugin", "check", fixtures::DURATION_CAP]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let size = std::fs::metadata(fixtures::DURATION_CAP).unwrap().len();
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ok: ") && stdout.contains(&format!("{size} bytes")),
        "{stdout}"
    );
    // Built with the SDK, which targets the newest contract.
    assert!(
        stdout.contains("is an idfed:policy@0.2.0 policy plugin"),
        "{stdout}"
    );
}

#[test]
fn check_says_which_contract_version_a_component_targets() {
    for (file, package) in [
        (fixtures::CONTRACT_V01, "idfed:policy@0.1.0"),
        (fixtures::CONTRACT_PROBE, "idfed:policy@0.2.0"),
    ] {
        let out = idfed(&["plugin", "check", file]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with(&format!("ok: {file} is an {package} policy plugin, ")),
            "{stdout}"
        );
        if package.ends_with("0.1.0") {
            // Its imports are 0.1.0's, which the host still links.
            assert!(stdout.contains("  idfed:policy/kv@0.1.0\n"), "{stdout}");
        }
    }
}

#[test]
fn check_refuses_other_worlds_and_non_components_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "garbage.wasm", "not wasm at all");
    for file in [
        fixtures::OTHER_WORLD,
        fixtures::OTHER_VERSION,
        garbage.as_str(),
        "/nonexistent/plugin.wasm",
    ] {
        let out = idfed(&["plugin", "check", file]);
        assert!(!out.status.success(), "{file} was accepted");
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one line expected for {file}: {stderr}"
        );
        assert!(
            stderr.starts_with("error: ") && stderr.contains(file),
            "{stderr}"
        );
    }
}

#[test]
fn eval_prints_the_decision_as_json_with_the_time_taken() {
    let dir = tempfile::tempdir().unwrap();
    let request = write(dir.path(), "request.json", REQUEST);
    let config = write(
        dir.path(),
        "config.json",
        r#"{"rules": [{"group": "contractors", "max_duration_seconds": 3600}]}"#,
    );
    let out = idfed(&[
        "plugin",
        "eval",
        fixtures::DURATION_CAP,
        "--request",
        &request,
        "--config",
        &config,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decision"], "allow");
    assert_eq!(json["grant"]["duration_seconds"], 3600);
    assert!(json["elapsed_us"].as_u64().is_some(), "{json}");
}

#[test]
fn eval_reports_a_fault_as_json_with_a_distinct_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let request = write(dir.path(), "request.json", REQUEST);
    let out = idfed(&[
        "plugin",
        "eval",
        fixtures::ENDLESS_LOOP,
        "--request",
        &request,
        "--deadline-ms",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decision"], "fault");
    assert_eq!(json["code"], "plugin_timeout");
}

#[test]
fn eval_stops_a_sleeping_plugin_at_its_deadline_in_evaluate_and_in_validate_config() {
    let dir = tempfile::tempdir().unwrap();
    let request = write(dir.path(), "request.json", REQUEST);
    for (config, stage) in [
        (r#"{"sleep_ms": 10000}"#, "evaluate"),
        (r#"{"validate_sleep_ms": 10000}"#, "validate-config"),
    ] {
        let config = write(dir.path(), "config.json", config);
        let out = idfed(&[
            "plugin",
            "eval",
            fixtures::SLEEPER,
            "--request",
            &request,
            "--config",
            &config,
        ]);
        assert_eq!(out.status.code(), Some(3), "{stage}: {}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["decision"], "fault", "{json}");
        assert_eq!(json["code"], "plugin_timeout", "{json}");
        assert_eq!(json["stage"], stage, "{json}");
    }
}

#[test]
fn eval_lets_a_plugin_add_only_the_tags_allowed_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let request = write(dir.path(), "request.json", REQUEST);
    let config = write(dir.path(), "config.json", r#"{"tags": {"team": "blue"}}"#);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "eval",
            fixtures::TAG_ADDER,
            "--request",
            &request,
            "--config",
            &config,
        ];
        args.extend_from_slice(extra);
        idfed(&args)
    };
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(json["code"], "plugin_widened_grant", "{json}");
    let allowed = run(&["--allow-tag", "team"]);
    assert!(allowed.status.success(), "{}", text(&allowed.stdout));
    let json: serde_json::Value = serde_json::from_slice(&allowed.stdout).unwrap();
    assert_eq!(json["grant"]["tags"][0]["key"], "team", "{json}");
}

#[test]
fn check_lists_imports_and_warns_about_those_linked_empty() {
    let out = idfed(&["plugin", "check", fixtures::SANDBOX_PROBE]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("imports:"), "{stdout}");
    // The SDK builds plugins of the newest contract.
    assert!(stdout.contains("idfed:policy/types@0.2.0"), "{stdout}");
    let warned: Vec<&str> = stdout.lines().filter(|l| l.contains("warning:")).collect();
    assert!(
        warned.iter().any(|l| l.contains("wasi:filesystem/")),
        "{stdout}"
    );
    assert!(
        warned.iter().any(|l| l.contains("wasi:sockets/")),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("linked empty"));
    // A plugin that touches neither gets no warning.
    let plain = idfed(&["plugin", "check", fixtures::DURATION_CAP]);
    let stdout = text(&plain.stdout);
    assert!(!stdout.contains("warning:"), "{stdout}");
}

#[test]
fn eval_refuses_bad_json_and_bad_config_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "request.json", REQUEST);
    let broken = write(dir.path(), "broken.json", r#"{"caller": "#);
    let misspelt = write(
        dir.path(),
        "misspelt.json",
        &REQUEST.replace(
            "duration_seconds\": 43200,\n  \"time",
            "durationseconds\": 1,\n  \"time",
        ),
    );
    let bad_config = write(dir.path(), "config.json", r#"{"rules": "everyone"}"#);
    let cases: [(&[&str], &str); 3] = [
        (&["--request", &broken], "broken.json"),
        (&["--request", &misspelt], "durationseconds"),
        (
            &["--request", &good, "--config", &bad_config],
            "config.json",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["plugin", "eval", fixtures::DURATION_CAP];
        all.extend_from_slice(args);
        let out = idfed(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{expected} not in: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

fn data_dir_args(dir: &Path) -> Vec<String> {
    vec!["--data-dir".into(), dir.to_string_lossy().into_owned()]
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(data_dir_args(dir));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    Command::new(env!("CARGO_BIN_EXE_idfed"))
        .args(&refs)
        .env_remove("IDFED_MASTER_KEY")
        .env("RUST_LIB_BACKTRACE", "0")
        .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap()
}

#[test]
fn audit_verify_passes_an_intact_log_and_catches_an_edited_record() {
    use idfed::audit::{AuditEvent, AuditLog};
    use idfed::store::{DataStore, KeySource};

    let dir = tempfile::tempdir().unwrap();
    {
        let store =
            DataStore::open(dir.path(), KeySource::File(dir.path().join("master.key"))).unwrap();
        let audit = AuditLog::open(store.db(), None).unwrap();
        for user in ["alice", "bob", "carol"] {
            audit
                .append(AuditEvent {
                    request_id: user.into(),
                    action: "vend".into(),
                    caller: Some(user.into()),
                    ..Default::default()
                })
                .unwrap();
        }
        audit.flush().unwrap();
    }
    let out = run_in(dir.path(), &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("3 record(s), chain intact"),
        "{}",
        text(&out.stdout)
    );

    {
        // Someone with access to the database rewrites who asked, in the second record.
        let db = idfed::store::open_db(&dir.path().join("db")).unwrap();
        let tree = db.open_tree("audit").unwrap();
        let (key, value) = tree.iter().nth(1).unwrap().unwrap();
        let mut edited = value.to_vec();
        let at = edited
            .windows(14)
            .position(|w| w == br#""caller":"bob""#)
            .expect("the record names bob");
        edited[at + 10..at + 13].copy_from_slice(b"eve");
        tree.insert(key, edited).unwrap();
        db.flush().unwrap();
    }
    let out = run_in(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("problem:"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("tampered"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rotate_key_reseals_the_secrets_and_the_store_still_opens() {
    use idfed::model::{AccountCredentials, AccountInput, AccountSourceInput};
    use idfed::secret::Secret;
    use idfed::store::{DataStore, KeySource, Store};

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let open = || DataStore::open(dir.path(), KeySource::File(key_file.clone())).unwrap();
    {
        let store = open();
        store
            .put_account(AccountInput {
                name: "main".into(),
                description: String::new(),
                source: AccountSourceInput::IamUser {
                    access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                    secret_access_key: Some(Secret::new(
                        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    )),
                },
                region: None,
                sts_endpoint: None,
            })
            .unwrap();
    }
    let before = std::fs::read(&key_file).unwrap();
    let out = run_in(dir.path(), &["admin", "rotate-key"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("re-sealed 1 secret(s)"),
        "{}",
        text(&out.stdout)
    );
    assert_ne!(
        std::fs::read(&key_file).unwrap(),
        before,
        "a new key was written"
    );
    match open().account_credentials("main").unwrap() {
        Some(AccountCredentials::Static {
            secret_access_key, ..
        }) => {
            assert_eq!(
                secret_access_key.expose(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn eval_prints_a_needs_approval_and_passes_the_0_2_fields() {
    let dir = tempfile::tempdir().unwrap();
    let request = write(dir.path(), "request.json", REQUEST);
    let config = write(
        dir.path(),
        "config.json",
        r#"{"mode": "approval", "group": "leads", "reason": "prod", "max_duration_seconds": 900}"#,
    );
    let out = idfed(&[
        "plugin",
        "eval",
        fixtures::CONTRACT_PROBE,
        "--request",
        &request,
        "--config",
        &config,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decision"], "needs_approval", "{json}");
    assert_eq!(json["group"], "leads");
    assert_eq!(json["reason"], "prod");
    assert_eq!(json["max_duration_seconds"], 900);

    let with_fields = REQUEST.replacen(
        "\"time\"",
        "\"justification\": \"incident 9\", \"ticket\": \"OPS-9\", \"purpose\": \"console_sign_in\", \"time\"",
        1,
    );
    let request = write(dir.path(), "request-0.2.json", &with_fields);
    let out = idfed(&[
        "plugin",
        "eval",
        fixtures::CONTRACT_PROBE,
        "--request",
        &request,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen: serde_json::Value = serde_json::from_str(json["reason"].as_str().unwrap()).unwrap();
    assert_eq!(seen["justification"], "incident 9");
    assert_eq!(seen["ticket"], "OPS-9");
    assert_eq!(seen["purpose"], "console-sign-in");
}
