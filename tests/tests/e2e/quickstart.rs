//! `scripts/quickstart` as a newcomer meets it: run, then every command it prints run as printed — from
//! `$HOME`, in a new shell with nothing of the test's environment (no `AWS_*`, no `IDFED_*`, a bare
//! `PATH`): the CLI's logins and credentials, the container-credentials server with the AWS CLI reading
//! its exports, and the AWS CLI through the printed profile.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use idfed_tests::fixtures;

/// A child in its own process group, killed with the group when dropped (a failing test leaves no
/// servers behind).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // bash's own `kill`: a fresh machine may have no procps.
        let _ = Command::new("bash")
            .args(["-c", &format!("kill -TERM -- -{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn spawn_group(command: &mut Command) -> Group {
    use std::os::unix::process::CommandExt;
    Group(command.process_group(0).spawn().unwrap())
}

/// The lines `child` prints, as they come.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Lines until one satisfying `last` (included); panics after a generous guard.
fn read_until(lines: &mpsc::Receiver<String>, last: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(180)) {
            Ok(line) => {
                let done = last(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("{e}; printed so far:\n{}", seen.join("\n")),
        }
    }
}

/// A new shell: bash in `home`, with only `HOME` and a bare `PATH`.
fn clean_shell(home: &Path, script: &str) -> Command {
    let mut shell = Command::new("bash");
    shell
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null());
    shell
}

fn run_clean(home: &Path, script: &str) -> String {
    let output = clean_shell(home, script).output().unwrap();
    assert!(
        output.status.success(),
        "as printed, from $HOME in a new shell:\n{script}\nfailed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A printed command line without its trailing comment.
fn command(line: &str) -> String {
    let line = line.trim();
    match line.find("  #").or_else(|| line.find(" # ")) {
        Some(at) => line[..at].trim_end().to_owned(),
        None if line.starts_with('#') => String::new(),
        None => line.to_owned(),
    }
}

#[test]
fn the_printed_commands_work_as_printed_from_home_in_a_new_shell() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut quickstart = Command::new(root.join("scripts/quickstart"));
    quickstart
        .env("QUICKSTART_IDFED", idfed_tests::idfed_binary())
        .env("QUICKSTART_PLUGIN", fixtures::DURATION_CAP)
        .env("QUICKSTART_DIR", dir.path().join("quickstart"))
        .env("MOTO_PORT", "0")
        .env("IDFED_PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut quickstart = spawn_group(&mut quickstart);
    let printed = lines(&mut quickstart.0);
    let text = read_until(&printed, |l| l.starts_with("Ctrl-C stops both servers"));
    let section = |from: &str, to: &str| -> Vec<String> {
        let start = text.iter().position(|l| l.starts_with(from)).unwrap() + 1;
        let end = text.iter().position(|l| l.starts_with(to)).unwrap();
        text[start..end]
            .iter()
            .map(|l| command(l))
            .filter(|c| !c.is_empty())
            .collect()
    };
    let shell = section("In another shell:", "An AWS config profile");
    let profile_command = text
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with("AWS_CONFIG_FILE="))
        .map(|l| command(l))
        .expect("the profile command is printed");

    // The second shell: everything up to the container server, one after the other.
    let server_at = shell
        .iter()
        .position(|c| c.contains("container-server"))
        .expect("container-server is printed");
    let second = &shell[..server_at];
    assert!(second.iter().any(|c| c.contains(" login ")), "{second:?}");
    for (i, line) in second.iter().enumerate() {
        // Each command in the shell that ran the ones before it (the exports, the login); only its own
        // output is looked at.
        let script = second[..i]
            .iter()
            .map(|c| format!("{c} >/dev/null\n"))
            .chain([line.clone()])
            .collect::<String>();
        let out = run_clean(&home, &script);
        if line.ends_with("creds demo") {
            let credentials: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(credentials["Version"], 1, "{out}");
            assert!(credentials["AccessKeyId"].is_string(), "{out}");
        } else if line.ends_with("--format env") {
            assert!(out.contains("AWS_SESSION_TOKEN="), "{out}");
        } else if line.ends_with("--format json") {
            let credentials: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(credentials["duration_seconds"], 1800, "{out}");
        }
    }

    // The container server, in that shell, printing the exports the third shell uses.
    let exports_before: Vec<&String> = second.iter().filter(|c| c.starts_with("export ")).collect();
    let server_script = exports_before
        .iter()
        .map(|c| c.as_str())
        .chain([shell[server_at].as_str()])
        .collect::<Vec<_>>()
        .join("\n");
    let mut server = clean_shell(&home, &server_script);
    server.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut server = spawn_group(&mut server);
    let served = lines(&mut server.0);
    let mut exports = Vec::new();
    while exports.len() < 2 {
        let line = served
            .recv_timeout(Duration::from_secs(60))
            .expect("container-server prints its exports");
        if line.starts_with("export AWS_CONTAINER_") {
            exports.push(line);
        }
    }
    let third: Vec<String> = exports
        .into_iter()
        .chain(shell[server_at + 1..].iter().cloned())
        .collect();
    let identity: serde_json::Value =
        serde_json::from_str(&run_clean(&home, &third.join("\n"))).unwrap();
    assert!(
        identity["Arn"].as_str().is_some_and(|a| a.contains("demo")),
        "{identity}"
    );
    drop(server);

    // The profile, from yet another new shell.
    let identity: serde_json::Value =
        serde_json::from_str(&run_clean(&home, &profile_command)).unwrap();
    assert!(identity["Account"].is_string(), "{identity}");
    drop(quickstart);
}
