//! `idfed user add|list` run as an operator runs them (the real binary, passwords on stdin), and the file
//! they write loaded by `StaticDirectory`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use idfed::auth::static_dir::StaticDirectory;
use idfed::auth::{AuthError, Directory, Person};
use idfed::secret::Secret;

const ALICE_PASSWORD: &str = "alice-correct-horse";
const BOB_PASSWORD: &str = "bob-battery-staple";

/// Runs idfed with `stdin` as its standard input.
fn idfed(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idfed"))
        .args(args)
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One line on stderr, starting `error: `, and a failed exit.
fn assert_one_line_failure(out: &Output, expected: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(expected),
        "{stderr} (expected {expected:?})"
    );
}

/// Adds alice (active, two groups) and bob (inactive) to a new file.
fn add_two_users(file: &str) {
    let out = idfed(
        &[
            "user",
            "add",
            "alice",
            "--file",
            file,
            "--groups",
            "aws-admins,developers",
            "--display-name",
            "Alice Example",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        &format!("{ALICE_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("added user alice to {file}\n"));

    let out = idfed(
        &[
            "user",
            "add",
            "bob",
            "--file",
            file,
            "--groups",
            "developers",
            "--inactive",
            "--password-stdin",
        ],
        &format!("{BOB_PASSWORD}\r\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("added user bob to {file}\n"));
}

fn users_file(dir: &Path) -> String {
    dir.join("users.toml").to_string_lossy().into_owned()
}

#[tokio::test]
async fn users_added_by_the_cli_authenticate_through_the_static_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path());
    add_two_users(&file);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the users file is private");
    }
    let contents = std::fs::read_to_string(&file).unwrap();
    assert!(!contents.contains(ALICE_PASSWORD) && !contents.contains(BOB_PASSWORD));
    assert!(!contents.contains("alice-correct") && !contents.contains("battery"));
    assert_eq!(contents.matches("$argon2id$v=19$").count(), 2, "{contents}");

    let directory = StaticDirectory::load(&file).unwrap();
    let alice = directory
        .authenticate("alice", &Secret::new(ALICE_PASSWORD))
        .await
        .unwrap();
    assert_eq!(
        alice,
        Person {
            name: "alice".into(),
            display_name: "Alice Example".into(),
            email: Some("alice@example.com".into()),
            active: true,
            groups: vec!["aws-admins".into(), "developers".into()],
        }
    );
    assert_eq!(
        directory.groups("alice").await.unwrap(),
        ["aws-admins", "developers"]
    );

    // A wrong password and an unknown user: the same error, nothing said about which.
    let wrong = directory
        .authenticate("alice", &Secret::new("alice-wrong-horse"))
        .await;
    let unknown = directory
        .authenticate("mallory", &Secret::new(ALICE_PASSWORD))
        .await;
    assert_eq!(wrong, Err(AuthError::InvalidCredentials));
    assert_eq!(unknown, wrong);
    assert_eq!(
        wrong.unwrap_err().to_string(),
        "invalid user name or password"
    );

    // Bob's password is right (its CR LF was stripped), but his account is inactive.
    assert_eq!(
        directory
            .authenticate("bob", &Secret::new(BOB_PASSWORD))
            .await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        directory.groups("bob").await,
        Err(AuthError::InvalidCredentials)
    );
    // ... and it is the password that was stored: replacing bob as active lets him in.
    let out = idfed(
        &[
            "user",
            "add",
            "bob",
            "--file",
            &file,
            "--replace",
            "--password-stdin",
        ],
        &format!("{BOB_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("replaced user bob in {file}\n"));
    directory.reload().unwrap();
    let bob = directory
        .authenticate("bob", &Secret::new(BOB_PASSWORD))
        .await
        .unwrap();
    assert!(bob.active && bob.groups.is_empty() && bob.display_name == "bob");
}

#[test]
fn adding_an_existing_user_needs_replace_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path());
    add_two_users(&file);
    let before = std::fs::read(&file).unwrap();
    let out = idfed(
        &["user", "add", "alice", "--file", &file, "--password-stdin"],
        "another-long-password\n",
    );
    assert_one_line_failure(&out, "user \"alice\" already exists (use --replace");
    assert!(text(&out.stdout).is_empty());
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn short_and_empty_passwords_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path());
    for (stdin, expected) in [
        (
            "short\n",
            "the password is too short (5 characters): at least 8",
        ),
        ("seven77\n", "too short (7 characters)"),
        ("\n", "the password is empty"),
        ("", "the password is empty"),
    ] {
        let out = idfed(
            &["user", "add", "carol", "--file", &file, "--password-stdin"],
            stdin,
        );
        assert_one_line_failure(&out, expected);
        assert!(!Path::new(&file).exists(), "nothing is written");
    }
    // Eight characters are enough.
    let out = idfed(
        &["user", "add", "carol", "--file", &file, "--password-stdin"],
        "eight888\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn without_password_stdin_and_without_a_terminal_it_says_what_to_do() {
    // Run in a new session (`setsid`), so that there is no terminal to prompt on even when the tests are
    // run from one; skipped where `setsid` is missing.
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path());
    let Ok(out) = Command::new("setsid")
        .arg("--wait")
        .arg(env!("CARGO_BIN_EXE_idfed"))
        .args(["user", "add", "dave", "--file", &file])
        .stdin(Stdio::null())
        .output()
    else {
        return;
    };
    assert_one_line_failure(&out, "cannot prompt for the password");
    assert!(text(&out.stderr).contains("use --password-stdin"));
    assert!(!Path::new(&file).exists());
}

#[test]
fn list_shows_the_users_but_never_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path());
    add_two_users(&file);
    let out = idfed(&["user", "list", "--file", &file], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    let alice = lines[1].split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        alice,
        [
            "alice",
            "Alice",
            "Example",
            "alice@example.com",
            "aws-admins,developers",
            "active"
        ]
    );
    let bob = lines[2].split_whitespace().collect::<Vec<_>>();
    assert_eq!(bob, ["bob", "bob", "-", "developers", "inactive"]);
    assert!(
        !stdout.contains("argon2") && !stdout.contains('$'),
        "{stdout}"
    );

    // A broken file is one line naming it.
    std::fs::write(&file, "[[users]]\nname = \"x\"\npassword_hash = \"nope\"\n").unwrap();
    let out = idfed(&["user", "list", "--file", &file], "");
    assert_one_line_failure(&out, &format!("{file}: user \"x\": password_hash"));
}
