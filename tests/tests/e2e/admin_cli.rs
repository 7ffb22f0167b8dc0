//! `idfed admin …` with the real binary against a real idfed server (plain HTTP on 127.0.0.1) with moto as
//! STS: an administrator sets up an account, a connector, a plugin and its binding and an API key from the
//! command line, and reads the audit log; secrets are never printed back; a non-administrator is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use idfed_tests::server::{PASSWORD, TestServer, user};
use idfed_tests::{fixtures, moto};
use serde_json::{Value, json};

const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "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";
const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::data/*"]}]}"#;

/// A server with an administrator, `root` (in `idfed-admins`), and a user, `alice` (in `devs`), and
/// nothing else: the test sets everything up through the CLI.
async fn start() -> TestServer {
    TestServer::start_empty(
        vec![user("root", &["idfed-admins"]), user("alice", &["devs"])],
        "[auth]\nadmin_groups = [\"idfed-admins\"]\n",
    )
    .await
}

/// Logs `name` in to `server` with the real CLI, in a config folder of its own; the folder.
fn login(server: &TestServer, name: &str) -> PathBuf {
    let config_dir = server.dir.path().join(format!("config-{name}"));
    let out = ok(
        &config_dir,
        &[
            "login",
            "--server",
            &server.url(""),
            "--user",
            name,
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.contains("logged in"), "{out}");
    config_dir
}

/// Runs `idfed args…` with the session in `config_dir`, `stdin` fed in; its output.
fn idfed(config_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(idfed_tests::idfed_binary())
        .env("IDFED_CONFIG_DIR", config_dir)
        .env_remove("IDFED_SERVER")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    for stream in [&output.stdout, &output.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(SECRET_KEY),
            "idfed {args:?} printed the account's secret"
        );
    }
    output
}

/// Runs a command that must succeed; its stdout.
fn ok(config_dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let output = idfed(config_dir, args, stdin);
    assert!(
        output.status.success(),
        "idfed {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a command that must fail with exit code 1 and one `error: …` line on stderr; that line.
fn fails(config_dir: &Path, args: &[&str]) -> String {
    let output = idfed(config_dir, args, None);
    assert_eq!(
        output.status.code(),
        Some(1),
        "idfed {args:?}: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "idfed {args:?}: {stderr:?}"
    );
    stderr.trim_end().to_owned()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_sets_everything_up_from_the_command_line() {
    let server = start().await;
    let root = login(&server, "root");
    let files = server.dir.path();
    let endpoint = moto::shared().endpoint();

    // An account, the secret from stdin; it is never shown back.
    let out = ok(
        &root,
        &[
            "admin",
            "accounts",
            "put",
            "main",
            "--access-key-id",
            ACCESS_KEY_ID,
            "--secret-stdin",
            "--region",
            "us-east-1",
            "--sts-endpoint",
            &endpoint,
            "--description",
            "the test account",
        ],
        Some(&format!("{SECRET_KEY}\n")),
    );
    assert!(out.contains("saved account main"), "{out}");
    let out = ok(&root, &["admin", "accounts", "show", "main"], None);
    assert!(
        out.contains(ACCESS_KEY_ID) && out.contains("***") && out.contains("us-east-1"),
        "{out}"
    );
    let shown = json_of(&ok(
        &root,
        &["admin", "accounts", "show", "main", "--json"],
        None,
    ));
    assert_eq!(shown["source"]["secret_access_key"], "***");
    assert_eq!(shown["sts_endpoint"], endpoint.as_str());
    let out = ok(&root, &["admin", "accounts", "list"], None);
    assert!(out.starts_with("NAME") && out.contains("main"), "{out}");
    // Without --secret-stdin an update keeps the stored secret (alice's vend below proves it).
    ok(
        &root,
        &[
            "admin",
            "accounts",
            "put",
            "main",
            "--access-key-id",
            ACCESS_KEY_ID,
            "--region",
            "us-east-1",
            "--sts-endpoint",
            &endpoint,
        ],
        None,
    );
    let error = fails(&root, &["admin", "accounts", "show", "nope"]);
    assert!(error.contains("not_found"), "{error}");

    // Connectors from JSON files.
    let web = files.join("web.json");
    std::fs::write(
        &web,
        json!({"name": "web", "account": "main", "groups": ["devs"], "policy": S3_READ, "principal": {"type": "federated-user"}})
            .to_string(),
    )
    .unwrap();
    let out = ok(
        &root,
        &[
            "admin",
            "connectors",
            "create",
            "--file",
            web.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.contains("created connector web"), "{out}");
    let ci = files.join("ci.json");
    std::fs::write(
        &ci,
        json!({"name": "ci", "account": "main", "system_scope": true, "principal": {"type": "iam-user"}})
            .to_string(),
    )
    .unwrap();
    ok(
        &root,
        &[
            "admin",
            "connectors",
            "create",
            "--file",
            ci.to_str().unwrap(),
        ],
        None,
    );
    std::fs::write(
        &web,
        json!({"name": "web", "description": "for developers", "account": "main", "groups": ["devs"], "policy": S3_READ, "principal": {"type": "federated-user"}})
            .to_string(),
    )
    .unwrap();
    let out = ok(
        &root,
        &[
            "admin",
            "connectors",
            "update",
            "web",
            "--file",
            web.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.contains("for developers"), "{out}");
    let out = ok(&root, &["admin", "connectors", "list"], None);
    assert!(out.contains("web") && out.contains("ci"), "{out}");
    let out = ok(&root, &["admin", "connectors", "show", "web"], None);
    assert!(
        out.contains("federated-user") && out.contains("devs"),
        "{out}"
    );
    let out = ok(&root, &["admin", "connectors", "flush-cache", "web"], None);
    assert!(
        out.contains("flushed the credential cache of connector web: 0 credential set(s) ended"),
        "{out}"
    );
    let flushed = json_of(&ok(
        &root,
        &["admin", "connectors", "flush-cache", "web", "--json"],
        None,
    ));
    assert_eq!(flushed, json!({"connector": "web", "flushed": 0}));

    // A plugin, bound with a configuration.
    let uploaded = json_of(&ok(
        &root,
        &[
            "admin",
            "plugins",
            "upload",
            fixtures::DURATION_CAP,
            "--name",
            "duration-cap",
            "--json",
        ],
        None,
    ));
    let digest = uploaded["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 64);
    let out = ok(&root, &["admin", "plugins", "list"], None);
    assert!(out.contains(&digest), "{out}");
    assert!(out.contains("duration-cap"), "{out}");
    let config = files.join("cap.json");
    std::fs::write(&config, r#"{"default_max_duration_seconds": 900}"#).unwrap();
    let out = ok(
        &root,
        &[
            "admin",
            "bindings",
            "add",
            "web",
            "--plugin",
            &digest,
            "--config",
            config.to_str().unwrap(),
            "--position",
            "0",
        ],
        None,
    );
    assert!(
        out.contains("bound plugin") && out.contains("position 0"),
        "{out}"
    );
    let chain = json_of(&ok(
        &root,
        &["admin", "bindings", "list", "web", "--json"],
        None,
    ));
    let binding = chain["bindings"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        chain["bindings"][0]["config"]["default_max_duration_seconds"],
        900
    );
    let out = ok(&root, &["admin", "bindings", "list", "web"], None);
    assert!(out.contains(&binding) && out.contains("900"), "{out}");
    // A configuration the plugin refuses: one line with the plugin's code.
    std::fs::write(&config, r#"{"no_such_field": 1}"#).unwrap();
    let error = fails(
        &root,
        &[
            "admin",
            "bindings",
            "add",
            "web",
            "--plugin",
            &digest,
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert!(error.contains("plugin_"), "{error}");

    // The binding is in force: alice's credentials are capped at 900 s.
    let alice = login(&server, "alice");
    let creds = json_of(&ok(&alice, &["creds", "web", "--format", "json"], None));
    assert_eq!(creds["duration_seconds"], 900, "{creds}");

    // An API key, printed once.
    let out = ok(
        &root,
        &[
            "admin",
            "keys",
            "create",
            "ci-runner",
            "--connector",
            "ci",
            "--expires",
            "2099-01-01T00:00:00Z",
        ],
        None,
    );
    let key = out.trim().to_owned();
    assert!(key.starts_with("idfed_") && !key.contains('\n'), "{out}");
    let out = ok(&root, &["admin", "keys", "list"], None);
    assert!(out.contains("ci-runner") && out.contains("2099"), "{out}");
    assert!(!out.contains(&key), "{out}");
    let listed = ok(&root, &["admin", "keys", "list", "--json"], None);
    assert!(!listed.contains(&key));
    let key_id = json_of(&listed)["api_keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/connectors/ci/credentials",
            server.addr
        ))
        .bearer_auth(&key)
        .json(&json!({"format": "json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // whoami: the kept session's user; with an API key given, the key (it wins over the session).
    let out = ok(&alice, &["whoami"], None);
    assert!(
        out.contains("alice") && out.contains("user") && out.contains("devs"),
        "{out}"
    );
    let output = Command::new(idfed_tests::idfed_binary())
        .env("IDFED_CONFIG_DIR", &alice)
        .env("IDFED_API_KEY", &key)
        .args(["whoami", "--json", "--server", &server.url("")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let me = json_of(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(me["kind"], "system", "{me}");
    assert_eq!(me["name"], "ci-runner", "{me}");
    assert_eq!(me["key_id"], key_id.as_str(), "{me}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(&key));

    // The audit log lists the changes.
    let out = ok(
        &root,
        &["admin", "audit", "--user", "root", "--outcome", "changed"],
        None,
    );
    for action in [
        "admin.account.create",
        "admin.account.update",
        "admin.connector.create",
        "admin.connector.update",
        "admin.plugin.upload",
        "admin.binding.create",
        "admin.api_key.create",
    ] {
        assert!(out.contains(action), "{action} missing from:\n{out}");
    }
    let records = json_of(&ok(
        &root,
        &[
            "admin",
            "audit",
            "--connector",
            "web",
            "--limit",
            "1",
            "--json",
        ],
        None,
    ));
    assert_eq!(records["records"].as_array().unwrap().len(), 1);
    let error = fails(&root, &["admin", "audit", "--since", "yesterday"]);
    assert!(error.contains("invalid_request"), "{error}");

    // A user who is not an administrator is refused, in one line.
    let error = fails(&alice, &["admin", "connectors", "list"]);
    assert!(error.contains("admin_only"), "{error}");

    // Taking it all down again.
    let out = ok(
        &root,
        &["admin", "bindings", "remove", "web", &binding],
        None,
    );
    assert!(out.contains("removed binding"), "{out}");
    let out = ok(&root, &["admin", "bindings", "list", "web"], None);
    assert!(out.contains("no bindings"), "{out}");
    ok(&root, &["admin", "keys", "delete", &key_id], None);
    assert!(ok(&root, &["admin", "keys", "list"], None).contains("no API keys"));
    ok(&root, &["admin", "plugins", "delete", &digest], None);
    for connector in ["web", "ci"] {
        ok(&root, &["admin", "connectors", "delete", connector], None);
    }
    ok(&root, &["admin", "accounts", "delete", "main"], None);
    assert!(ok(&root, &["admin", "accounts", "list"], None).contains("no accounts"));
    assert!(ok(&root, &["admin", "connectors", "list"], None).contains("no connectors"));
    assert!(ok(&root, &["admin", "plugins", "list"], None).contains("no plugins"));

    server.stop().await;
}
