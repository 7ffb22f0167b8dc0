//! A throw-away PostgreSQL cluster: Debian's `postgresql` package (`scripts/test` installs it), `initdb` in
//! a temporary directory and `pg_ctl` on a free loopback port, its socket in that directory, trust
//! authentication for the `idfed` role. `initdb` refuses to run as root, so as root the tools run as the
//! package's `postgres` user (with `runuser`), and the directory is handed to that user. The cluster is
//! stopped (`immediate`) and its directory removed when the [`PgCluster`] is dropped.
//!
//! [`PgCluster::stop`] and [`PgCluster::start_again`] take it down and bring it back on the same port and
//! data, as a database restarted under load is.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian's PostgreSQL binaries are (`/usr/lib/postgresql/<major>/bin`), the newest first; `None`
/// when the package is not installed.
pub fn bin_dir() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL cluster of a test's own (see the module docs).
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// The user the server runs as, when the tests run as root.
    run_as: Option<&'static str>,
    /// Whether the server syncs its writes ([`PgCluster::start_durable`]); off for the tests.
    durable: bool,
}

/// The role the cluster is made with (trust authentication on loopback).
pub const ROLE: &str = "idfed";

impl PgCluster {
    /// Makes and starts a cluster, with `fsync` and `full_page_writes` off: fast, and nothing of it
    /// survives a crash of the machine (a test's does not need to).
    ///
    /// # Panics
    /// If PostgreSQL is not installed, or `initdb` or `pg_ctl` fail (with their output in the message).
    pub fn start() -> PgCluster {
        PgCluster::start_with(false)
    }

    /// [`PgCluster::start`], but durable as a production server is: `fsync`, `full_page_writes` and
    /// `synchronous_commit` on, so that a commit waits for its WAL to be on disk (for benchmarks that
    /// compare it with a store that syncs).
    ///
    /// # Panics
    /// As [`PgCluster::start`].
    pub fn start_durable() -> PgCluster {
        PgCluster::start_with(true)
    }

    fn start_with(durable: bool) -> PgCluster {
        let bin = bin_dir()
            .expect("PostgreSQL is not installed: apt-get install postgresql (scripts/test does)");
        let run_as = is_root().then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("idfed-pg-")
            .tempdir()
            .expect("cannot make a directory for the cluster");
        if let Some(user) = run_as {
            let (uid, gid) = ids_of(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("cannot give the cluster's directory to the postgres user");
        }
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            run_as,
            durable,
        };
        let data = cluster.data_dir();
        cluster.run_ok(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                ROLE,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // The port is picked before the server binds it: another process may take it in between.
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port = crate::free_port();
            match cluster.try_start() {
                Ok(()) => return cluster,
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection string of `database` as the [`ROLE`] (no password: trust on loopback).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    /// Makes a database (one per test keeps tests apart on one cluster).
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// Runs `sql` in `database` with `psql` and returns what it printed (unaligned, tuples only).
    ///
    /// # Panics
    /// If psql fails, with its output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                ROLE,
                "-d",
                database,
                "-c",
                sql,
            ])
            .output()
            .expect("cannot run psql");
        check("psql", &output);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Stops the server (fast shutdown: sessions are cut), keeping its data and port.
    pub fn stop(&self) {
        self.run_ok(
            "pg_ctl",
            &["-D", path_str(&self.data_dir()), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts it again after [`PgCluster::stop`], on the same port and data.
    ///
    /// # Panics
    /// If it does not start (the port was taken meanwhile, say).
    pub fn start_again(&self) {
        self.try_start()
            .unwrap_or_else(|e| panic!("PostgreSQL did not start again: {e}"));
    }

    fn try_start(&self) -> Result<(), String> {
        let data = self.data_dir();
        let socket_dir = self.dir.path();
        let sync = if self.durable {
            "-c fsync=on -c full_page_writes=on -c synchronous_commit=on"
        } else {
            "-c fsync=off -c full_page_writes=off"
        };
        let options = format!(
            "-p {} -k {} -h 127.0.0.1 {sync}",
            self.port,
            path_str(socket_dir)
        );
        let log = socket_dir.join("server.log");
        let output = self.command(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-o",
                &options,
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
    }

    fn run_ok(&self, tool: &str, args: &[&str]) {
        check(tool, &self.command(tool, args));
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate: nothing of a throw-away cluster needs saving. Already stopped is fine.
        let _ = self.command(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data_dir()),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

fn check(tool: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{tool} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a temporary path is UTF-8")
}

fn is_root() -> bool {
    id(&["-u"]) == 0
}

/// The uid and gid of `user`.
fn ids_of(user: &str) -> (u32, u32) {
    (id(&["-u", user]), id(&["-g", user]))
}

fn id(args: &[&str]) -> u32 {
    let output = Command::new("id")
        .args(args)
        .output()
        .expect("cannot run id");
    check("id", &output);
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("id prints a number")
}

/// Set to `postgres` (`IDFED_TEST_BACKEND=postgres`), the end-to-end tests' servers keep their state in
/// PostgreSQL (a database each, on one cluster per test process) instead of sled: `scripts/test` runs
/// them both ways.
pub const BACKEND_ENV: &str = "IDFED_TEST_BACKEND";

/// Whether the tests' servers run on PostgreSQL ([`BACKEND_ENV`]).
pub fn servers_on_postgres() -> bool {
    std::env::var(BACKEND_ENV).is_ok_and(|v| v.trim() == "postgres")
}

/// What a test server's `[data]` section needs besides its `dir`: nothing on sled; on PostgreSQL the
/// backend and a fresh database of the shared cluster (a `[data.postgres]` table, so it goes last in
/// `[data]`).
pub fn data_backend_toml() -> String {
    if !servers_on_postgres() {
        return String::new();
    }
    format!(
        "backend = \"postgres\"\n[data.postgres]\nurl = {:?}\n",
        fresh_database()
    )
}

/// A new, empty database on the shared cluster; its URL.
pub fn fresh_database() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = shared();
    let name = format!(
        "idfed_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    cluster.create_database(&name);
    cluster.url(&name)
}

/// One cluster for the whole test process. Rust's test harness has no teardown and statics are never
/// dropped, so a watcher process (in a session of its own) stops the cluster and removes its directory
/// once this process has ended.
pub fn shared() -> &'static PgCluster {
    static SHARED: std::sync::OnceLock<PgCluster> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let cluster = PgCluster::start();
        let stop = match cluster.run_as {
            Some(user) => format!(
                "runuser -u {user} -- {:?} -D {:?} -m immediate stop",
                cluster.bin.join("pg_ctl"),
                cluster.data_dir()
            ),
            None => format!(
                "{:?} -D {:?} -m immediate stop",
                cluster.bin.join("pg_ctl"),
                cluster.data_dir()
            ),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir:?}",
            pid = std::process::id(),
            dir = cluster.dir.path(),
        );
        // `setsid -f` forks the watcher off and returns at once.
        let started = Command::new("setsid")
            .args(["-f", "sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("cannot start the cluster's watcher (setsid, from util-linux)");
        assert!(started.success(), "the cluster's watcher did not start");
        cluster
    })
}
