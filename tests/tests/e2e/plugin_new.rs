//! `idfed plugin new NAME --lang rust|python`: the project it writes builds, passes its own test and
//! `idfed plugin check` (contract 0.2.0) with no edit, and the component allows and denies.
//!
//! The Rust project builds into `target/plugin-new/` (kept between runs, so only the first compiles the SDK's
//! dependencies); the Python one is built and compiled once per run (~20 s and ~16 CPU-seconds).

use std::path::Path;
use std::process::Command;

use idfed_tests::idfed_binary;

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `plugin check`, then `plugin eval` (compiling once, into a cache under `dir`) of a request from a member of `dev` with `{"groups": [group]}`.
fn check_and_eval(wasm: &Path, dir: &Path, group: &str) -> (String, serde_json::Value) {
    let check = run(Command::new(idfed_binary())
        .args(["plugin", "check", "--cache-dir"])
        .arg(dir.join("cache"))
        .arg(wasm));
    let request = serde_json::to_value(idfed_tests::request(
        "alice",
        &["dev"],
        idfed::plugins::PrincipalType::AssumedRole,
        None,
    ))
    .unwrap();
    std::fs::write(dir.join("request.json"), request.to_string()).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"groups": [group]}).to_string(),
    )
    .unwrap();
    let eval = run(Command::new(idfed_binary())
        .args(["plugin", "eval", "--deadline-ms", "5000", "--cache-dir"])
        .arg(dir.join("cache"))
        .arg(wasm)
        .arg("--request")
        .arg(dir.join("request.json"))
        .arg("--config")
        .arg(dir.join("config.json")));
    (check, serde_json::from_str(&eval).unwrap())
}

#[test]
fn a_new_python_plugin_builds_and_passes_plugin_check_with_no_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gate");
    let said = run(Command::new(idfed_binary())
        .args(["plugin", "new", "gate", "--lang", "python", "--dir"])
        .arg(&dir));
    assert!(said.contains("componentize-py"), "{said}");
    for file in ["pyproject.toml", "app.py", "test_app.py", "README.md"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    run(Command::new(root().join(".venv/bin/python"))
        .args(["-m", "unittest", "-q"])
        .current_dir(&dir));
    // The very command the manifest and the README give.
    let manifest = std::fs::read_to_string(dir.join("pyproject.toml")).unwrap();
    assert!(
        manifest
            .contains("componentize-py -d wit -w policy-plugin componentize -p . app -o gate.wasm"),
        "{manifest}"
    );
    let tool = root().join(".venv/bin/componentize-py");
    assert!(tool.is_file(), "run scripts/setup-test-env");
    run(Command::new(tool)
        .args([
            "-d",
            "wit",
            "-w",
            "policy-plugin",
            "componentize",
            "-p",
            ".",
            "app",
            "-o",
            "gate.wasm",
        ])
        .current_dir(&dir));
    let (check, decision) = check_and_eval(&dir.join("gate.wasm"), tmp.path(), "dev");
    assert!(
        check.contains("is an idfed:policy@0.2.0 policy plugin"),
        "{check}"
    );
    assert_eq!(decision["decision"], "allow", "{decision}");
}

#[test]
fn a_new_rust_plugin_builds_and_passes_its_test_and_plugin_check_with_no_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gate-rs");
    run(Command::new(idfed_binary())
        .args(["plugin", "new", "gate-rs", "--lang", "rust", "--dir"])
        .arg(&dir));
    for file in ["Cargo.toml", "src/lib.rs", "README.md"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("plugin-new");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cargo = |args: &[&str]| {
        run(Command::new(&cargo)
            .args(args)
            .arg("--offline")
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET"))
    };
    let tested = cargo(&["test", "--quiet"]);
    assert!(tested.contains("1 passed"), "{tested}");
    cargo(&["build", "--release", "--target", "wasm32-wasip2"]);
    let wasm = target.join("wasm32-wasip2/release/gate_rs.wasm");
    let (check, decision) = check_and_eval(&wasm, tmp.path(), "ops");
    assert!(
        check.contains("is an idfed:policy@0.2.0 policy plugin"),
        "{check}"
    );
    assert_eq!(decision["decision"], "deny", "{decision}");
    assert_eq!(decision["reason"], "you must belong to one of: ops");
}
