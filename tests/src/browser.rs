//! Running the browser tests' scripts (`tests/browser/*.test.mjs`: playwright-core driving Debian's
//! Chromium, no browser download) from Rust tests: checks that Chromium and Node.js are there, installs
//! `tests/browser/node_modules` from its lock file when missing, runs a script with a time limit off the
//! async runtime (the servers it talks to run on it), and fails with the script's output.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `tests/browser/`.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `target/web-ui-screenshots/`, where the scripts save screenshots and their logs.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-ui-screenshots")
}

/// Asserts Chromium and Node.js are installed and playwright-core is in `tests/browser/node_modules`
/// (running `npm ci` there if not).
pub fn prepare() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: the web UI tests need Debian's Chromium; run scripts/setup-browser \
         (as root: apt-get install chromium fonts-dejavu-core)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: run scripts/setup-browser (Node.js 18 or later runs the browser tests)"
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

/// Runs `tests/browser/{script}` with `env` (and `CHROMIUM`, `IDFED_SCREENSHOTS`), its output in
/// `{log}.log` and `{log}.stderr.log` in the screenshot directory; panics, with the output, if it fails or
/// runs over `timeout`. Its output.
pub async fn run_script(
    script: &str,
    env: &[(&str, OsString)],
    log: &str,
    timeout: Duration,
) -> String {
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let (out_path, err_path) = (
        shots.join(format!("{log}.log")),
        shots.join(format!("{log}.stderr.log")),
    );
    let mut command = Command::new("node");
    command
        .arg(browser_dir().join(script))
        .current_dir(browser_dir())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("IDFED_SCREENSHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    eprintln!(
        "running tests/browser/{script} (log: {})",
        out_path.display()
    );
    let status = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("running node");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > timeout {
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
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    println!("--- tests/browser/{script} ---\n{output}--- end ---");
    println!("screenshots: {}", shots.display());
    match status {
        None => panic!("{script} ran over {} s:\n{output}", timeout.as_secs()),
        Some(status) => assert!(
            status.success(),
            "{script} failed ({status}); screenshots in {}:\n{output}",
            shots.display()
        ),
    }
    output
}

/// Asserts each of `names` was saved as a screenshot (`{name}.png`, not empty).
pub fn assert_screenshots(names: &[&str]) {
    for name in names {
        let png = screenshot_dir().join(format!("{name}.png"));
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "no screenshot {}", png.display());
    }
}
