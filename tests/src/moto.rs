//! moto's server mode as the STS (and IAM) of the tests: `moto_server -H 127.0.0.1 -p PORT` as a child process,
//! on loopback only.
//!
//! The binary is, in this order: `$MOTO_SERVER`, `<workspace>/.venv/bin/moto_server` (made by
//! `scripts/setup-test-env`), `moto_server` on `PATH`.
//!
//! moto runs under a small `sh` guard that kills it when the guard's stdin closes. The test process holds the
//! other end of that pipe, so moto goes away with the test process however it ends, even for [`shared`], whose
//! static is never dropped. [`Moto`]'s `Drop` closes the pipe too, then reaps the guard (killing it if it lingers).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long moto may take to answer after starting (it is a Python process; ~1 s on a quiet machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server.
pub struct Moto {
    port: u16,
    child: Child,
    /// Closing this makes the guard stop moto.
    stdin: Option<ChildStdin>,
    /// The end of moto's output, for the message when it fails to start.
    output: Arc<Mutex<Vec<u8>>>,
}

/// How much of moto's output is kept.
const OUTPUT_KEPT: usize = 8192;

/// Reads `from` to its end on a thread of its own, keeping the last [`OUTPUT_KEPT`] bytes in `into`.
fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            let mut kept = into.lock().unwrap_or_else(|e| e.into_inner());
            kept.extend_from_slice(&buffer[..n]);
            let excess = kept.len().saturating_sub(OUTPUT_KEPT);
            kept.drain(..excess);
        }
    });
}

/// The moto server shared by all the tests of this test binary, started on first use.
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    SHARED.get_or_init(Moto::start)
}

/// The `moto_server` to run: `$MOTO_SERVER`, `<workspace>/.venv/bin/moto_server`, then `moto_server` on `PATH`.
///
/// # Panics
/// If there is none: "moto_server not found: run scripts/setup-test-env".
pub fn moto_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("moto_server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("moto_server not found: run scripts/setup-test-env");
}

impl Moto {
    /// Starts a moto server of its own (prefer [`shared`]: starting moto takes about a second).
    ///
    /// # Panics
    /// If moto cannot be found or does not answer within a minute (with moto's output in the message).
    pub fn start() -> Moto {
        let binary = moto_server_path();
        let mut last_error = String::new();
        // The port is picked before moto binds it: another process may take it in between, so try a few.
        for _ in 0..3 {
            match Self::try_start(&binary, crate::free_port()) {
                Ok(moto) => return moto,
                Err(error) => last_error = error,
            }
        }
        panic!(
            "moto_server ({}) did not start: {last_error}",
            binary.display()
        );
    }

    fn try_start(binary: &Path, port: u16) -> Result<Moto, String> {
        // $0 is moto_server, $@ its arguments. The guard waits for moto; a watcher kills moto when the guard's
        // stdin closes (the test process ended, or dropped the Moto). If moto exits by itself, so does the guard.
        let guard = r#"exec 3<&0
"$0" "$@" </dev/null 3<&- & pid=$!
( cat >/dev/null; kill $pid 2>/dev/null ) <&3 & watcher=$!
exec 3<&-
trap 'kill $pid 2>/dev/null; wait $pid; exit 0' TERM INT HUP
wait $pid
status=$?
kill $watcher 2>/dev/null
exit $status
"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(guard)
            .arg(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, output.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, output.clone());
        }
        let mut moto = Moto {
            port,
            stdin: None,
            child,
            output,
        };
        moto.stdin = moto.child.stdin.take();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if moto.answers() {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("it exited ({status}): {}", moto.output()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on port {port} within {STARTUP_TIMEOUT:?}: {}",
                    moto.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether moto answers an HTTP request.
    fn answers(&self) -> bool {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
    }

    /// The end of moto's output so far.
    fn output(&self) -> String {
        let kept = self.output.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&kept).into_owned()
    }

    /// The endpoint URL: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing the guard's stdin makes it stop moto and wait for it.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        // The guard's TERM trap stops moto too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto").field("port", &self.port).finish()
    }
}
