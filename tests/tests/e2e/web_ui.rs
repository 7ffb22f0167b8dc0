//! The web UI end to end in a real browser: a real idfed server (plain HTTP on 127.0.0.1) with moto as STS,
//! driven through Debian's Chromium by `tests/browser/ui.test.mjs` (playwright-core, no browser download).
//!
//! The script logs in as an administrator, adds an account inline with moto as its STS endpoint, creates a
//! federated-user connector from an IAM policy example and an assumed-role connector for group `devs`,
//! uploads the rate-limit plugin and binds it, makes an API key, reads the audit log; then, as a member of
//! `devs`, gets credentials (secrets masked until shown, copied for real), tests them, sees the plugin's
//! denial; and, as a user outside the group, sees no connector. It also checks the CSRF defence, the
//! HttpOnly session cookie, and that the browser reported no console error and no CSP violation. Screenshots
//! of every main screen go to `target/web-ui-screenshots/`.
//!
//! Accessibility: every main screen and dialog gets a label audit (every visible field and button has an
//! accessible name, by its label, `aria-label` or `aria-labelledby`, and Chromium's accessibility tree
//! agrees; every dialog is named by its heading); then, in a browser context of its own, the UI is used by
//! the keyboard alone (skip link, Get credentials with Show, Copy and Escape, Create connector with the
//! principal type picked by arrow keys, focus returned to what opened a dialog, a visible focus indicator
//! on every Tab stop).
//!
//! Sessions across tabs: another tab's login of the same user replaces the session and its CSRF token, and
//! this tab's next change still goes through (the token is fetched again); another user's login redraws the
//! page for them and does nothing as them; a logout elsewhere, met while a screen loads, leaves the login
//! form whole, with no API wording; a logout the server fails leaves the page logged in, saying so. A
//! browser whose clock is 3 hours fast counts the credentials down from their duration.
//!
//! Just-in-time approvals: the script binds the contract-probe fixture in its approval mode to a connector
//! `release` of `devs` (approvers: `release-managers`); alice gets "Approval needed" (a card, the
//! credentials dialog), cannot approve her own request, carol approves it in the Approvals screen (and meets
//! a 409 for a request decided meanwhile), and alice's Check again gets the credentials. Here, the audit log
//! then has the request, the approval, the denial and the approval's use.
//!
//! Here, the shell exports the script copied from the credentials dialog are then used by the AWS CLI.
//!
//! Needs `/usr/bin/chromium` and Node.js (`scripts/setup-browser`); `tests/browser/node_modules` is made
//! with `npm ci` when missing.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use idfed::config::ConsoleConfig;
use idfed_tests::moto;
use idfed_tests::server::{PASSWORD, TestServer, user};
use idfed_tests::{browser, fixtures};
use serde_json::Value;

/// The script ends itself after 3 minutes; this is the guard above it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// A loopback URL nothing listens on: the console sign-in must fail there, at once, without reaching AWS.
fn closed_federation_endpoint() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/federation")
}

/// The variables of `export NAME='value'` lines (POSIX single quotes, `'\''` for a quote).
fn parse_exports(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let rest = line
            .strip_prefix("export ")
            .unwrap_or_else(|| panic!("not an export: {line}"));
        let (name, quoted) = rest.split_once('=').unwrap();
        let mut value = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    for inner in chars.by_ref() {
                        if inner == '\'' {
                            break;
                        }
                        value.push(inner);
                    }
                }
                '\\' => value.push(chars.next().unwrap()),
                other => panic!("unquoted {other:?} in {line}"),
            }
        }
        vars.insert(name.to_owned(), value);
    }
    vars
}

#[test]
fn exports_are_unquoted_as_a_shell_would() {
    let vars = parse_exports("export A='x'\\''y'\nexport B='a b/c+d='\n");
    assert_eq!(vars["A"], "x'y");
    assert_eq!(vars["B"], "a b/c+d=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_end_to_end_in_chromium() {
    browser::prepare();
    idfed::api::console::configure(ConsoleConfig {
        federation_endpoint: closed_federation_endpoint(),
        ..ConsoleConfig::default()
    });

    let server = TestServer::start(
        vec![
            user("admin", &["idfed-admins"]),
            user("alice", &["devs"]),
            user("bob", &["ops"]),
            user("carol", &["release-managers"]),
        ],
        "[auth]\nadmin_groups = [\"idfed-admins\"]\n",
    )
    .await;
    let base = server.url("");
    let sts = moto::shared().endpoint();

    // Every earlier screenshot and log but the Crowd SSO test's (web_ui_sso.rs: 12-crowd-*, sso-*).
    let shots = browser::screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    for entry in std::fs::read_dir(&shots).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("12-crowd") && !name.starts_with("sso-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let env_out = server.dir.path().join("copied-exports.sh");
    let env = [
        ("IDFED_URL", base.into()),
        ("IDFED_PASSWORD", PASSWORD.into()),
        ("IDFED_STS_ENDPOINT", sts.clone().into()),
        ("IDFED_PLUGIN_WASM", fixtures::RATE_LIMIT.into()),
        ("IDFED_ADMIN", "admin".into()),
        ("IDFED_USER", "alice".into()),
        ("IDFED_OUTSIDER", "bob".into()),
        ("IDFED_GROUP", "devs".into()),
        ("IDFED_ENV_OUT", env_out.clone().into_os_string()),
        ("IDFED_APPROVAL_WASM", fixtures::CONTRACT_PROBE.into()),
        ("IDFED_APPROVER", "carol".into()),
        ("IDFED_APPROVER_GROUP", "release-managers".into()),
    ];
    browser::run_script("ui.test.mjs", &env, "ui-test", SCRIPT_TIMEOUT).await;
    browser::assert_screenshots(&[
        "01-login",
        "02-my-connectors",
        "03-credentials-dialog",
        "04-admin-connectors",
        "05-edit-connector-dialog",
        "06-account-dialog",
        "07-plugins",
        "08-api-keys",
        "09-audit",
        "10-plugin-denied",
        "11-keyboard-credentials",
        "11-keyboard-connector-dialog",
        "13-approval-needed",
        "14-approvals",
        "15-approved-credentials",
    ]);

    // The shell exports copied from the credentials dialog work in the AWS CLI.
    let exports = std::fs::read_to_string(&env_out).expect("the script wrote the copied exports");
    let vars = parse_exports(&exports);
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
    ] {
        assert!(
            vars.get(name).is_some_and(|v| !v.is_empty()),
            "{name} in {exports}"
        );
    }
    let identity = server.aws_caller_identity(&vars, &sts);
    let arn = identity["Arn"].as_str().unwrap_or_default();
    assert!(arn.contains(":assumed-role/dev/alice"), "{identity}");

    // What the browser did is in the audit log: the plugin's denial of alice, with its reason.
    let answer: Value = server
        .client
        .get(server.url("/api/v1/admin/audit?outcome=plugin_denied&user=alice"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = answer["records"].as_array().unwrap();
    assert!(
        records.iter().any(|r| r["event"]["connector"] == "dev-s3"
            && r["event"]["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("rate limit reached"))),
        "{answer}"
    );
    // And the reason and ticket typed in the credentials dialog, trimmed, with the vend they went with.
    let answer: Value = server
        .client
        .get(server.url("/api/v1/admin/audit?outcome=issued&connector=dev-role"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let with_reason: Vec<&Value> = answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"]["ticket"] == "OPS-42")
        .collect();
    assert_eq!(with_reason.len(), 1, "{answer}");
    assert_eq!(
        with_reason[0]["event"]["justification"],
        "Rotate the deploy key"
    );
    assert!(with_reason[0]["event"]["access_key_id"].is_string());

    // The approvals: alice's requests for `release`, carol's approval, its use by the repeated request, and
    // the denial made meanwhile (alice's own attempt to approve was refused: no decision of hers).
    let answer: Value = server
        .client
        .get(server.url("/api/v1/admin/audit?connector=release&limit=100"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = answer["records"].as_array().unwrap();
    let with_action = |action: &str| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| r["event"]["action"] == action)
            .collect()
    };
    assert!(
        with_action("approval.request")
            .iter()
            .all(|r| r["event"]["caller"] == "alice"),
        "{answer}"
    );
    assert!(with_action("approval.request").len() >= 2, "{answer}");
    let approved = with_action("approval.approve");
    assert_eq!(approved.len(), 1, "{answer}");
    assert_eq!(approved[0]["event"]["caller"], "carol", "{answer}");
    assert_eq!(approved[0]["event"]["ticket"], "REL-7", "{answer}");
    let used = with_action("approval.use");
    assert_eq!(used.len(), 1, "{answer}");
    assert_eq!(
        used[0]["event"]["request_id"],
        approved[0]["event"]["request_id"]
    );
    let denied = with_action("approval.deny");
    assert_eq!(denied.len(), 1, "{answer}");
    assert_eq!(denied[0]["event"]["caller"], "carol", "{answer}");
    // The approved request was vended once, with what alice typed.
    let issued: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"]["outcome"] == "issued" && r["event"]["access_key_id"].is_string())
        .collect();
    assert_eq!(issued.len(), 1, "{answer}");
    assert_eq!(issued[0]["event"]["justification"], "Deploy release 1.2");
    assert_eq!(issued[0]["event"]["ticket"], "REL-7");
    server.stop().await;
}
