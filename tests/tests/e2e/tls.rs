//! idfed serving TLS itself (`[server] tls_cert`/`tls_key`): a real handshake from curl against a
//! certificate made for the test, `Strict-Transport-Security` on its answers, and none over plain HTTP.

use std::process::Command;
use std::sync::Arc;

use idfed::api::{ApiLimits, AppState, load_tls, serve};
use idfed::config::Config;
use idfed::service::Service;

/// Makes a self-signed certificate for 127.0.0.1 with openssl; the paths of the certificate and key.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

async fn start(dir: &std::path::Path, tls: bool) -> (String, tokio::sync::oneshot::Sender<()>) {
    start_with(dir, tls, "").await
}

/// [`start`] with `server` added to `[server]`.
async fn start_with(
    dir: &std::path::Path,
    tls: bool,
    server: &str,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let users = dir.join("users.toml");
    std::fs::write(&users, "").unwrap();
    let config = Config::parse(&format!(
        "[server]\nplain_http = true\n{server}[data]\ndir = {:?}\n[auth.directory]\ntype = \"static\"\nfile = {:?}\n",
        dir.join(if tls { "data-tls" } else { "data-plain" }),
        users
    ))
    .unwrap();
    let service = Arc::new(Service::open(&config).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.then(|| {
        let (cert, key) = certificate(dir);
        load_tls(&cert, &key).unwrap()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(service, ApiLimits::from(&config.server));
    tokio::spawn(serve(listener, acceptor, state, async move {
        let _ = stopped.await;
    }));
    let scheme = if tls { "https" } else { "http" };
    (format!("{scheme}://{addr}"), stop)
}

/// `curl -sS -D -` of `url`, trusting `ca` if given: the status line and headers, lowercased.
async fn head(url: String, ca: Option<std::path::PathBuf>) -> String {
    tokio::task::spawn_blocking(move || {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10"]);
        if let Some(ca) = ca {
            curl.arg("--cacert").arg(ca);
        }
        let output = curl.arg(url).output().expect("curl is installed");
        assert!(
            output.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().to_lowercase()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn tls_answers_carry_strict_transport_security_and_plain_http_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stop) = start(dir.path(), true).await;
    let headers = head(format!("{url}/healthz"), Some(dir.path().join("cert.pem"))).await;
    assert!(
        headers.starts_with("http/1.1 200") || headers.starts_with("http/2 200"),
        "{headers}"
    );
    assert!(
        headers.contains("strict-transport-security: max-age=31536000"),
        "{headers}"
    );
    assert!(headers.contains("content-security-policy:"), "{headers}");
    let _ = stop.send(());

    let (url, stop) = start(dir.path(), false).await;
    let headers = head(format!("{url}/healthz"), None).await;
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert!(!headers.contains("strict-transport-security"), "{headers}");
    let _ = stop.send(());
}

#[tokio::test]
async fn tls_handshakes_beyond_the_bound_wait_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stop) = start_with(dir.path(), true, "max_tls_handshakes = 1\n").await;
    let addr = url.trim_start_matches("https://").to_owned();
    // A client that connects and never says hello holds the one handshake slot (for up to 10 s).
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let curl = tokio::spawn(head(
        format!("{url}/healthz"),
        Some(dir.path().join("cert.pem")),
    ));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        !curl.is_finished(),
        "a second handshake ran while the only slot was taken"
    );
    // The silent client leaves: its handshake fails at once, and the waiting one proceeds.
    drop(silent);
    let headers = curl.await.unwrap();
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    let _ = stop.send(());
}
