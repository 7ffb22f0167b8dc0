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

use std::time::Duration;

use idfed_tests::browser;
use idfed_tests::crowd::{CrowdServer, TestUser};
use idfed_tests::server::TestServer;

/// The script ends itself after 2 minutes; this is the guard above it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

const USER: &str = "carol";
const PASSWORD: &str = "carol's Crowd password";
const GROUP: &str = "crowd-devs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crowd_single_sign_on_in_chromium() {
    browser::prepare();

    let crowd = CrowdServer::start().await;
    crowd.add_user(TestUser::new(USER, PASSWORD));
    crowd.add_group(GROUP);
    crowd.add_user_to_group(USER, GROUP);

    // idfed with Crowd as its directory, serving on a free loopback port.
    let server = TestServer::start_with_crowd(&crowd, "").await;
    let base = server.url("");

    // Only this test's files: the rest of the directory is web_ui.rs's.
    let shots = browser::screenshot_dir();
    for name in [
        "12-crowd-login.png",
        "sso-failure.png",
        "sso-test.log",
        "sso-test.stderr.log",
    ] {
        let _ = std::fs::remove_file(shots.join(name));
    }
    let token = crowd.create_sso_token(USER, None);
    let env = [
        ("IDFED_URL", base.into()),
        ("IDFED_CROWD_USER", USER.into()),
        ("IDFED_CROWD_PASSWORD", PASSWORD.into()),
        ("IDFED_CROWD_GROUP", GROUP.into()),
        ("IDFED_SSO_TOKEN", token.into()),
        ("IDFED_SSO_COOKIE", server.web.sso_cookie.clone().into()),
    ];
    browser::run_script("sso.test.mjs", &env, "sso-test", SCRIPT_TIMEOUT).await;
    browser::assert_screenshots(&["12-crowd-login"]);

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

    server.stop().await;
}
