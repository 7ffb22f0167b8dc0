//! The web UI with Atlassian Crowd behind it, in a real browser: a real idfed server (plain HTTP on
//! 127.0.0.1) whose directory is the Crowd REST test server, driven through Debian's Chromium by
//! `tests/browser/sso.test.mjs` (playwright-core, no browser download).
//!
//! A browser bringing Crowd's SSO cookie (`crowd.token_key`) is logged in without a password; *Log out*
//! pauses single sign-on, so the login page stays, across a reload too; *Log in with Crowd SSO* resumes
//! it; without Crowd's cookie that button says there is no Crowd session; and a password login against
//! Crowd works. No console error, no CSP violation. The Crowd login page's screenshot is
//! `target/web-ui-screenshots/12-crowd-login.png`.
//!
//! Needs `/usr/bin/chromium` and Node.js (`scripts/setup-browser`); `tests/browser/node_modules` is made
//! with `npm ci` when missing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idfed::api::{ApiLimits, AppState, serve};
use idfed::config::Config;
use idfed::service::Service;
use idfed_tests::crowd::{CrowdServer, TestUser};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The script ends itself after 2 minutes; this is the guard above it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

const USER: &str = "carol";
const PASSWORD: &str = "carol's Crowd password";
const GROUP: &str = "crowd-devs";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `target/web-ui-screenshots/`: beside `target/tmp` (`CARGO_TARGET_TMPDIR`), shared with `web_ui.rs`.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("web-ui-screenshots"))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-ui-screenshots")
        })
}

/// Node.js and playwright-core, installed from the lock file if missing.
fn prepare_node() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: run scripts/setup-browser (Node.js 18 or later runs the browser test)"
    );
    if !browser_dir()
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        eprintln!("tests/browser/node_modules is missing: npm ci");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(browser_dir())
            .stdin(Stdio::null())
            .status()
            .expect("running npm (run scripts/setup-browser)");
        assert!(status.success(), "npm ci in tests/browser failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crowd_single_sign_on_in_chromium() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: the web UI test needs Debian's Chromium; run scripts/setup-browser \
         (as root: apt-get install chromium fonts-dejavu-core)"
    );
    prepare_node();

    let crowd = CrowdServer::start().await;
    crowd.add_user(TestUser::new(USER, PASSWORD));
    crowd.add_group(GROUP);
    crowd.add_user_to_group(USER, GROUP);

    // idfed with Crowd as its directory, serving on a free loopback port.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse(&format!(
        "[server]\nplain_http = true\nlisten = \"127.0.0.1:0\"\n[data]\ndir = {:?}\n[auth.directory]\ntype = \"crowd\"\nurl = {:?}\napplication_name = {:?}\napplication_password = {:?}\n",
        dir.path().join("data"),
        crowd.base_url(),
        crowd.application_name(),
        crowd.application_password(),
    ))
    .unwrap();
    config.apply_env(|_| None).unwrap();
    config.check().unwrap();
    let service = Arc::new(Service::open(&config).unwrap());
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(service.clone(), ApiLimits::from(&config.server))
        .with_web(config.web.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, None, state, async move {
        let _ = stopped.await;
    }));

    // Only this test's files: the rest of the directory is web_ui.rs's.
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    for name in [
        "12-crowd-login.png",
        "sso-failure.png",
        "sso-test.log",
        "sso-test.stderr.log",
    ] {
        let _ = std::fs::remove_file(shots.join(name));
    }
    let log_path = shots.join("sso-test.log");

    let token = crowd.create_sso_token(USER, None);
    let mut command = Command::new("node");
    command
        .arg(browser_dir().join("sso.test.mjs"))
        .current_dir(browser_dir())
        .env("IDFED_URL", &base)
        .env("IDFED_CROWD_USER", USER)
        .env("IDFED_CROWD_PASSWORD", PASSWORD)
        .env("IDFED_CROWD_GROUP", GROUP)
        .env("IDFED_SSO_TOKEN", &token)
        .env("IDFED_SSO_COOKIE", &config.web.sso_cookie)
        .env("IDFED_SCREENSHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(File::create(&log_path).unwrap())
        .stderr(File::create(shots.join("sso-test.stderr.log")).unwrap());
    eprintln!(
        "running the Crowd SSO browser test against {base} (log: {})",
        log_path.display()
    );
    // The servers run on this runtime's workers: the script is waited for off them.
    let status = tokio::task::spawn_blocking(move || {
        let mut child = command
            .spawn()
            .expect("running node tests/browser/sso.test.mjs");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > SCRIPT_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    let output = format!(
        "{}{}",
        std::fs::read_to_string(&log_path).unwrap_or_default(),
        std::fs::read_to_string(shots.join("sso-test.stderr.log")).unwrap_or_default()
    );
    println!("--- tests/browser/sso.test.mjs ---\n{output}--- end ---");
    println!("screenshots: {}", shots.display());
    match status {
        None => panic!(
            "the browser test ran over {} s:\n{output}",
            SCRIPT_TIMEOUT.as_secs()
        ),
        Some(status) => assert!(
            status.success(),
            "the browser test failed ({status}); screenshots in {}:\n{output}",
            shots.display()
        ),
    }
    let png = shots.join("12-crowd-login.png");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "no screenshot {}", png.display());

    // What the browser did reached Crowd: the SSO token checked, the password checked.
    let paths: Vec<String> = crowd.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.iter().any(|p| p.contains("/session/")),
        "Crowd was never asked about the SSO token: {paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("/authentication")),
        "Crowd was never asked to check the password: {paths:?}"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    service.shutdown().unwrap();
}
