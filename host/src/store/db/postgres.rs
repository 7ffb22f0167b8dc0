//! The PostgreSQL engine of [`Db`](super::Db): every tree is rows of one table,
//!
//! ```sql
//! idfed_kv (tree text, key bytea, value bytea, PRIMARY KEY (tree, key))
//! ```
//!
//! shared by every replica. Transactions run `SERIALIZABLE` and are retried after a serialization failure
//! (what sled calls a conflict), so a rule read and written in one transaction (a unique name, a
//! connector's revision, the audit chain's head) holds across replicas without locks of idfed's own.
//! Single-key writes are single statements; a compare-and-swap is one conditional `UPDATE`, `INSERT` or
//! `DELETE`.
//!
//! The stores above are synchronous (as sled is), so this module owns a small runtime of its own that
//! drives the connections; a caller's thread waits for its statement, never longer than the operation
//! timeout: a database that is down or unreachable answers [`DbError::Unavailable`] within it. Schema
//! migrations are versioned (`idfed_migrations`) and applied at start-up under an advisory lock, so
//! replicas starting together apply each once.
//!
//! Committed writes to the trees idfed caches are announced with `NOTIFY idfed_changes, '<tree>'`;
//! [`Postgres::subscribe`] hands them to the replica's caches (see [`Changes`]).

use std::collections::HashMap;
use std::future::Future;
use std::ops::Bound;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::{CasFailed, DbError, Entry, IVec, TransactionError, TxError, TxOpError};

/// The versioned schema: `MIGRATIONS[v]` takes the database from version `v` to `v + 1`.
const MIGRATIONS: &[&str] = &["CREATE TABLE idfed_kv (
         tree text COLLATE \"C\" NOT NULL,
         key bytea NOT NULL,
         value bytea NOT NULL,
         PRIMARY KEY (tree, key)
     )"];

/// The advisory lock held while migrating (an arbitrary constant: `idfed` in ASCII).
const MIGRATION_LOCK: i64 = 0x0069_6466_6564;
/// The channel committed changes are announced on.
pub const CHANGES_CHANNEL: &str = "idfed_changes";
/// Rows fetched per page of a scan.
const PAGE: i64 = 256;
/// How often a transaction is tried before giving up on conflicts.
const MAX_ATTEMPTS: u32 = 64;

/// How to reach the database.
#[derive(Clone)]
pub struct PostgresConfig {
    /// The connection string (`postgres://user:password@host:port/db?sslmode=…` or `host=… user=…`).
    /// Never logged: it may hold a password.
    pub url: crate::secret::Secret,
    /// Connections each replica keeps at most.
    pub pool_size: usize,
    /// How long an operation (a statement, a connection, a wait for a free connection) may take before
    /// the database counts as unavailable.
    pub timeout: Duration,
    /// A CA certificate (PEM) to trust for the database's TLS, besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl PostgresConfig {
    /// A configuration with the defaults: 16 connections, 5 s.
    pub fn new(url: crate::secret::Secret) -> Self {
        PostgresConfig {
            url,
            pool_size: 16,
            timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

/// A pool of connections to one database, with the runtime that drives them.
pub struct Postgres {
    runtime: Option<tokio::runtime::Runtime>,
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    timeout: Duration,
    size: usize,
    idle: Mutex<Vec<Arc<Conn>>>,
    /// Connections open (idle or in use).
    open: AtomicUsize,
    freed: Condvar,
    /// Trees whose committed changes are announced.
    announced: Mutex<Vec<String>>,
    /// Trees read through a cache of this replica's, kept while no change is announced.
    caches: Mutex<HashMap<String, Arc<TreeCache>>>,
    changes: Arc<Changes>,
    /// Transactions run again after a conflict.
    retries: AtomicU64,
    /// Reads answered from a cache.
    cache_hits: AtomicU64,
    /// Until when, after a connection attempt failed, others fail at once rather than each wait for
    /// the timeout (the next attempt is made a second later).
    down_until: Mutex<Option<std::time::Instant>>,
}

/// How often the change listener checks that its connection still answers.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long after a failed connection attempt the next one is made (others fail at once meanwhile).
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    statements: Statements,
    /// Set when an operation on it timed out or failed mid-way: it is closed rather than reused.
    broken: AtomicBool,
}

struct Statements {
    get: Statement,
    get_for_update: Statement,
    insert_new: Statement,
    upsert: Statement,
    delete: Statement,
    cas_update: Statement,
    cas_insert: Statement,
    cas_delete: Statement,
    count: Statement,
    clear: Statement,
    scan_asc: Statement,
    scan_asc_from: Statement,
    scan_asc_after: Statement,
    scan_desc: Statement,
    scan_desc_before: Statement,
    notify: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        const COLS: &str = "SELECT key, value FROM idfed_kv WHERE tree = $1";
        Ok(Statements {
            get: client
                .prepare("SELECT value FROM idfed_kv WHERE tree = $1 AND key = $2")
                .await?,
            get_for_update: client
                .prepare("SELECT value FROM idfed_kv WHERE tree = $1 AND key = $2 FOR UPDATE")
                .await?,
            // Without `ON CONFLICT` on the entries: one that exists fails the statement (and so the
            // transaction), and nothing of it is written.
            insert_new: client
                .prepare(
                    "WITH new AS (\
                         INSERT INTO idfed_kv (tree, key, value) \
                         SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS t(k, v) \
                         RETURNING 1), \
                     set AS (\
                         INSERT INTO idfed_kv (tree, key, value) \
                         SELECT $4::text, $5::bytea, $6::bytea WHERE $4::text IS NOT NULL \
                         ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value RETURNING 1) \
                     SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM set)",
                )
                .await?,
            upsert: client
                .prepare(
                    "INSERT INTO idfed_kv (tree, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
                )
                .await?,
            delete: client
                .prepare("DELETE FROM idfed_kv WHERE tree = $1 AND key = $2 RETURNING value")
                .await?,
            cas_update: client
                .prepare(
                    "UPDATE idfed_kv SET value = $4 WHERE tree = $1 AND key = $2 AND value = $3",
                )
                .await?,
            cas_insert: client
                .prepare(
                    "INSERT INTO idfed_kv (tree, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (tree, key) DO NOTHING",
                )
                .await?,
            cas_delete: client
                .prepare("DELETE FROM idfed_kv WHERE tree = $1 AND key = $2 AND value = $3")
                .await?,
            count: client
                .prepare("SELECT count(*) FROM idfed_kv WHERE tree = $1")
                .await?,
            clear: client
                .prepare("DELETE FROM idfed_kv WHERE tree = $1")
                .await?,
            scan_asc: client
                .prepare(&format!("{COLS} ORDER BY key LIMIT $2"))
                .await?,
            scan_asc_from: client
                .prepare(&format!("{COLS} AND key >= $2 ORDER BY key LIMIT $3"))
                .await?,
            scan_asc_after: client
                .prepare(&format!("{COLS} AND key > $2 ORDER BY key LIMIT $3"))
                .await?,
            scan_desc: client
                .prepare(&format!("{COLS} ORDER BY key DESC LIMIT $2"))
                .await?,
            scan_desc_before: client
                .prepare(&format!("{COLS} AND key < $2 ORDER BY key DESC LIMIT $3"))
                .await?,
            notify: client
                .prepare(&format!("SELECT pg_notify('{CHANGES_CHANNEL}', $1)"))
                .await?,
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send>>;

/// A connection checked out of the pool, given back when dropped (unless broken).
struct Lease<'a> {
    pg: &'a Postgres,
    conn: Option<Arc<Conn>>,
}

impl Lease<'_> {
    fn conn(&self) -> &Arc<Conn> {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pg.give_back(conn);
        }
    }
}

impl Postgres {
    /// Connects to the database described by `config`, applies the schema migrations it lacks, and
    /// keeps up to `config.pool_size` connections.
    pub fn connect(config: &PostgresConfig) -> Result<Arc<Postgres>, DbError> {
        let mut pg_config: tokio_postgres::Config = config
            .url
            .expose()
            .parse()
            .map_err(|e| DbError::Failed(format!("the database URL is not valid: {e}")))?;
        pg_config.connect_timeout(config.timeout);
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("idfed");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            // It only moves bytes between sockets and waiting callers.
            .worker_threads(1)
            .thread_name("idfed-postgres")
            .enable_all()
            .build()
            .map_err(|e| DbError::Failed(format!("cannot start the database runtime: {e}")))?;
        let pg = Arc::new(Postgres {
            runtime: Some(runtime),
            config: pg_config,
            tls: tls_connector(config.ca_file.as_deref())?,
            timeout: config.timeout,
            size: config.pool_size.max(1),
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            freed: Condvar::new(),
            announced: Mutex::new(Vec::new()),
            caches: Mutex::new(HashMap::new()),
            changes: Arc::new(Changes::default()),
            retries: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            down_until: Mutex::new(None),
        });
        pg.migrate()?;
        Ok(pg)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("held until dropped")
    }

    /// Runs `fut` on the database runtime and waits for it, at most the operation timeout.
    fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    ) -> Result<T, PgFailure> {
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        let timeout = self.timeout;
        self.runtime().spawn(async move {
            let result = tokio::time::timeout(timeout, fut).await;
            let _ = send.send(result);
        });
        match receive.recv() {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(PgFailure::Postgres(e)),
            Ok(Err(_)) => Err(PgFailure::Timeout),
            Err(_) => Err(PgFailure::Timeout),
        }
    }

    /// Runs `work` on a pooled connection.
    fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(Arc<Conn>) -> BoxFuture<T>,
    ) -> Result<T, DbError> {
        let lease = self.checkout()?;
        let conn = lease.conn().clone();
        self.block_on(work(conn)).map_err(|e| {
            lease
                .conn()
                .broken
                .store(e.breaks_connection(), Ordering::Relaxed);
            e.into_db_error()
        })
    }

    fn checkout(&self) -> Result<Lease<'_>, DbError> {
        let deadline = std::time::Instant::now() + self.timeout;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some(conn) = idle.pop() {
                if conn.client.is_closed() || conn.broken.load(Ordering::Relaxed) {
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                return Ok(Lease {
                    pg: self,
                    conn: Some(conn),
                });
            }
            if self.open.load(Ordering::Acquire) < self.size {
                let down = *self.down_until.lock().unwrap_or_else(|e| e.into_inner());
                if down.is_some_and(|until| std::time::Instant::now() < until) {
                    return Err(DbError::Unavailable(
                        "the database could not be reached a moment ago".into(),
                    ));
                }
                self.open.fetch_add(1, Ordering::AcqRel);
                drop(idle);
                let opened = self.open_connection();
                let mut down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
                return match opened {
                    Ok(conn) => {
                        *down = None;
                        Ok(Lease {
                            pg: self,
                            conn: Some(conn),
                        })
                    }
                    Err(e) => {
                        *down = Some(std::time::Instant::now() + RECONNECT_PAUSE);
                        self.open.fetch_sub(1, Ordering::AcqRel);
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(DbError::Unavailable(format!(
                    "all {} database connections stayed busy for {:?}",
                    self.size, self.timeout
                )));
            }
            idle = self
                .freed
                .wait_timeout(idle, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn give_back(&self, conn: Arc<Conn>) {
        if conn.client.is_closed() || conn.broken.load(Ordering::Relaxed) {
            self.open.fetch_sub(1, Ordering::AcqRel);
        } else {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
        self.freed.notify_one();
    }

    fn open_connection(&self) -> Result<Arc<Conn>, DbError> {
        let config = self.config.clone();
        let tls = self.tls.clone();
        self.block_on(async move {
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "a database connection ended");
                }
            });
            let statements = Statements::prepare(&client).await?;
            Ok(Arc::new(Conn {
                client,
                statements,
                broken: AtomicBool::new(false),
            }))
        })
        .map_err(|failure| {
            let unavailable = failure.is_unavailable();
            match failure {
                PgFailure::Timeout => {
                    DbError::Unavailable(format!("no connection within {:?}", self.timeout))
                }
                PgFailure::Postgres(e) if unavailable => {
                    DbError::Unavailable(format!("cannot connect to the database: {e}"))
                }
                PgFailure::Postgres(e) => {
                    DbError::Failed(format!("the database refused the connection: {e}"))
                }
            }
        })
    }

    /// Applies the migrations the database lacks, one replica at a time.
    fn migrate(&self) -> Result<(), DbError> {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let known = MIGRATIONS.len() as i32;
        let applied = self
            .block_on(async move {
                let (mut client, connection) = config.connect(tls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!(
                        "SELECT pg_advisory_lock({MIGRATION_LOCK}); \
                         CREATE TABLE IF NOT EXISTS idfed_migrations (\
                             version integer PRIMARY KEY, \
                             applied timestamptz NOT NULL DEFAULT now())"
                    ))
                    .await?;
                let current: i32 = client
                    .query_one(
                        "SELECT coalesce(max(version), 0) FROM idfed_migrations",
                        &[],
                    )
                    .await?
                    .get(0);
                let mut applied = Vec::new();
                if current <= known {
                    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                        let version = index as i32 + 1;
                        let tx = client.transaction().await?;
                        tx.batch_execute(sql).await?;
                        tx.execute(
                            "INSERT INTO idfed_migrations (version) VALUES ($1)",
                            &[&version],
                        )
                        .await?;
                        tx.commit().await?;
                        applied.push(version);
                    }
                }
                client
                    .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                    .await?;
                Ok((current, applied))
            })
            .map_err(|e| {
                let e = e.into_db_error();
                match e {
                    DbError::Failed(e) => DbError::Failed(format!("migrating the schema: {e}")),
                    e => e,
                }
            })?;
        let (current, applied) = applied;
        if current > known {
            return Err(DbError::Failed(format!(
                "the database's schema is version {current}, newer than this idfed knows ({known}): \
                 upgrade idfed"
            )));
        }
        for version in applied {
            tracing::info!(version, "database schema migrated");
        }
        Ok(())
    }

    /// The tree `name`.
    pub fn tree(self: &Arc<Self>, name: &str) -> PgTree {
        PgTree {
            pg: self.clone(),
            name: Arc::from(name),
            cache: self
                .caches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned(),
        }
    }

    /// Reads of the tree `name` (opened after this call) are answered from this replica's memory for as
    /// long as no change to it is announced: every write to it is announced, this replica listens, and
    /// a cache is used only while the listening connection is up. Worth it for what every request reads
    /// and few write (connectors, accounts, API keys, sessions).
    pub fn cache_tree(self: &Arc<Self>, name: &str) {
        self.announce(name);
        self.caches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default();
        self.subscribe();
    }

    fn invalidate(&self, tree: &str) {
        if let Some(cache) = self
            .caches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tree)
        {
            cache.invalidate();
        }
    }

    /// Whether the database answers now.
    pub fn ping(&self) -> Result<(), DbError> {
        self.with_conn(|conn| {
            Box::pin(async move {
                conn.client.simple_query("").await?;
                Ok(())
            })
        })
    }

    /// Waits for the advisory lock `key` (at most the operation timeout), held until the guard is
    /// dropped: what one replica at a time may do.
    pub fn advisory_lock(self: &Arc<Self>, key: i64) -> Result<AdvisoryLock, DbError> {
        self.lock_on_a_connection(key, false)?
            .ok_or_else(|| DbError::Unavailable("the advisory lock was not granted".into()))
    }

    /// The advisory lock `key` if no other session holds it.
    pub fn try_advisory_lock(self: &Arc<Self>, key: i64) -> Result<Option<AdvisoryLock>, DbError> {
        self.lock_on_a_connection(key, true)
    }

    fn lock_on_a_connection(
        self: &Arc<Self>,
        key: i64,
        try_only: bool,
    ) -> Result<Option<AdvisoryLock>, DbError> {
        let mut lease = self.checkout()?;
        let conn = lease.conn.take().expect("a fresh lease");
        drop(lease);
        let sql = if try_only {
            "SELECT pg_try_advisory_lock($1)"
        } else {
            "SELECT pg_advisory_lock($1)::text = '' OR true"
        };
        let granted = self.block_on({
            let conn = conn.clone();
            async move { Ok(conn.client.query_one(sql, &[&key]).await?.get::<_, bool>(0)) }
        });
        match granted {
            Ok(true) => Ok(Some(AdvisoryLock {
                pg: self.clone(),
                conn: Some(conn),
                key,
            })),
            Ok(false) => {
                self.give_back(conn);
                Ok(None)
            }
            Err(e) => {
                // A lock request that timed out may still be granted later: the session must end.
                conn.broken.store(true, Ordering::Relaxed);
                self.give_back(conn);
                Err(e.into_db_error())
            }
        }
    }

    /// How many records the database holds, in all trees.
    pub fn row_count(&self) -> Result<u64, DbError> {
        self.with_conn(|conn| {
            Box::pin(async move {
                let count: i64 = conn
                    .client
                    .query_one("SELECT count(*) FROM idfed_kv", &[])
                    .await?
                    .get(0);
                Ok(count.max(0) as u64)
            })
        })
    }

    /// Reads answered from this replica's caches so far.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Transactions run again after a serialization failure so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs `work` in a `SERIALIZABLE` transaction, again after each serialization failure.
    pub(super) fn transaction<R, E>(
        &self,
        isolation: super::Isolation,
        work: impl Fn(&PgTx<'_>) -> Result<R, TxError<E>>,
    ) -> Result<R, TransactionError<E>> {
        let begin = match isolation {
            super::Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            super::Isolation::Locking => "BEGIN ISOLATION LEVEL READ COMMITTED",
        };
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                self.retries.fetch_add(1, Ordering::Relaxed);
                // A little jitter, growing, so that replicas contending for one row take turns.
                let micros = 50u64 << attempt.min(8);
                let jitter = u64::from(rand_u16()) % micros.max(1);
                std::thread::sleep(Duration::from_micros(micros / 2 + jitter));
            }
            let lease = self.checkout().map_err(TransactionError::Storage)?;
            // BEGIN goes with the first statement (one round trip for both).
            let tx = PgTx {
                pg: self,
                conn: lease.conn().clone(),
                written: Mutex::new(Vec::new()),
                begin: Mutex::new(Some(begin)),
                commit_next: AtomicBool::new(false),
                committed: AtomicBool::new(false),
            };
            let outcome = work(&tx);
            match outcome {
                Ok(result) if tx.committed.load(Ordering::Acquire) => {
                    for tree in tx.written.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        self.invalidate(tree);
                    }
                    return Ok(result);
                }
                Ok(result) => {
                    if let Err(e) = tx.announce() {
                        let _ = tx.simple("ROLLBACK");
                        match e {
                            TxOpError::Conflict => continue,
                            TxOpError::Storage(e) => return Err(TransactionError::Storage(e)),
                        }
                    }
                    if tx.begin.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                        // Nothing was read or written: there is nothing to commit.
                        return Ok(result);
                    }
                    match tx.simple("COMMIT") {
                        Ok(()) => {
                            for tree in tx.written.lock().unwrap_or_else(|e| e.into_inner()).iter()
                            {
                                self.invalidate(tree);
                            }
                            return Ok(result);
                        }
                        Err(e) if e.is_conflict() => continue,
                        Err(e) => return Err(TransactionError::Storage(e.into_db_error())),
                    }
                }
                Err(TxError::Abort(e)) => {
                    tx.rollback();
                    return Err(TransactionError::Abort(e));
                }
                Err(TxError::Conflict) => {
                    tx.rollback();
                    continue;
                }
                Err(TxError::Storage(e)) => {
                    tx.rollback();
                    return Err(TransactionError::Storage(e));
                }
            }
        }
        Err(TransactionError::Storage(DbError::Unavailable(format!(
            "a transaction met a concurrent change {MAX_ATTEMPTS} times in a row"
        ))))
    }

    /// Announces committed writes to `tree` on [`CHANGES_CHANNEL`] from now on.
    pub fn announce(&self, tree: &str) {
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        if !announced.iter().any(|t| t == tree) {
            announced.push(tree.to_owned());
        }
    }

    fn is_announced(&self, tree: &str) -> bool {
        self.announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|t| t == tree)
    }

    /// The changes announced by every replica (this one included), as they arrive. A dedicated
    /// connection listens, reconnecting when it drops.
    pub fn subscribe(self: &Arc<Self>) -> Arc<Changes> {
        if !self.changes.started.swap(true, Ordering::AcqRel) {
            let config = self.config.clone();
            let tls = self.tls.clone();
            let changes = self.changes.clone();
            self.runtime().spawn(listen(config, tls, changes));
        }
        self.changes.clone()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Dropping a runtime inside another (a test's, the server's) would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A session-level advisory lock, released (and its connection given back) when dropped.
pub struct AdvisoryLock {
    pg: Arc<Postgres>,
    conn: Option<Arc<Conn>>,
    key: i64,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let key = self.key;
        let unlocked = self.pg.block_on({
            let conn = conn.clone();
            async move {
                conn.client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key])
                    .await?;
                Ok(())
            }
        });
        if unlocked.is_err() {
            // Closing the session releases its locks.
            conn.broken.store(true, Ordering::Relaxed);
        }
        self.pg.give_back(conn);
    }
}

thread_local! {
    /// Above zero while this thread's reads must see the database itself ([`fresh_reads`]).
    static FRESH_READS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Until the guard is dropped, this thread's reads bypass the replicas' caches: what a write checks
/// before it commits (under the writers' lock) must be what is stored, not what was heard of.
pub fn fresh_reads() -> FreshReads {
    FRESH_READS.with(|fresh| fresh.set(fresh.get() + 1));
    FreshReads(std::marker::PhantomData)
}

/// See [`fresh_reads`]. Not `Send`: it marks the thread that made it.
pub struct FreshReads(std::marker::PhantomData<*const ()>);

impl Drop for FreshReads {
    fn drop(&mut self) {
        FRESH_READS.with(|fresh| fresh.set(fresh.get().saturating_sub(1)));
    }
}

/// A tree's reads as last fetched, valid for one generation of its announced changes.
#[derive(Default)]
struct TreeCache {
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// The announcements' generation the entries were fetched in, and this replica's own writes.
    generation: ((u64, u64), u64),
    entries: HashMap<Vec<u8>, Option<IVec>>,
}

impl TreeCache {
    /// Entries kept at most; a full cache starts afresh.
    const MAX: usize = 16_384;

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a write of this replica's (committed): what was fetched before is not used again.
    fn invalidate(&self) {
        let mut state = self.lock();
        state.generation.1 += 1;
        state.entries.clear();
    }
}

/// Announced changes, as a listener sees them: each tree's generation counts the announcements of its
/// changes; a cache that remembers the generation it filled at knows when it is stale. While the
/// listening connection is down nothing can be known: [`Changes::connected`] is false and caches must
/// not answer.
#[derive(Default)]
pub struct Changes {
    started: AtomicBool,
    connected: AtomicBool,
    /// Bumped at every (re)connection: anything may have changed while disconnected.
    epoch: AtomicU64,
    generations: Mutex<std::collections::HashMap<String, u64>>,
    /// Waiters for the next change (tests, caches that refresh eagerly).
    notify: tokio::sync::Notify,
}

impl Changes {
    /// Whether the listening connection is up (so that every change will be heard).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// A number that changes whenever `tree` may have: its announcements and the reconnections.
    pub fn generation(&self, tree: &str) -> (u64, u64) {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        (
            self.epoch.load(Ordering::Acquire),
            generations.get(tree).copied().unwrap_or(0),
        )
    }

    /// Waits for the next announcement (of any tree).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    fn heard(&self, tree: &str) {
        *self
            .generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tree.to_owned())
            .or_default() += 1;
        self.notify.notify_waiters();
    }
}

async fn listen(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    changes: Arc<Changes>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let (send, mut receive) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    loop {
                        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                            Some(Ok(message)) => {
                                if send.send(message).is_err() {
                                    break;
                                }
                            }
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "the database change listener failed");
                                break;
                            }
                            None => break,
                        }
                    }
                });
                match client
                    .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
                    .await
                {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        changes.epoch.fetch_add(1, Ordering::AcqRel);
                        changes.connected.store(true, Ordering::Release);
                        changes.notify.notify_waiters();
                        // A connection that dies without a word (a partition) would leave caches
                        // trusting silence: the listener asks the database twice a second, and a
                        // second without an answer counts as disconnected.
                        let mut heartbeat = tokio::time::interval(HEARTBEAT);
                        loop {
                            tokio::select! {
                                message = receive.recv() => match message {
                                    Some(tokio_postgres::AsyncMessage::Notification(n)) => {
                                        changes.heard(n.payload());
                                    }
                                    Some(_) => {}
                                    None => break,
                                },
                                _ = heartbeat.tick() => {
                                    let answered = tokio::time::timeout(
                                        HEARTBEAT * 2,
                                        client.simple_query(""),
                                    )
                                    .await;
                                    if !matches!(answered, Ok(Ok(_))) {
                                        tracing::warn!("the database change listener stopped answering");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen for database changes"),
                }
                changes.connected.store(false, Ordering::Release);
                changes.epoch.fetch_add(1, Ordering::AcqRel);
                changes.notify.notify_waiters();
                driver.abort();
                drop(client);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the database change listener cannot connect");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// What a statement ended with, besides its rows.
enum PgFailure {
    Postgres(tokio_postgres::Error),
    Timeout,
}

impl PgFailure {
    fn is_conflict(&self) -> bool {
        matches!(self, PgFailure::Postgres(e) if matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        ))
    }

    /// Whether the database is away rather than refusing this statement: the connection failed, or
    /// the server says so (SQLSTATE classes 08, connection exception; 57, operator intervention — shutting
    /// down, starting up; 53, insufficient resources — too many connections).
    fn is_unavailable(&self) -> bool {
        match self {
            PgFailure::Timeout => true,
            PgFailure::Postgres(e) => match e.code() {
                None => true,
                Some(code) => matches!(code.code().get(..2), Some("08" | "57" | "53")),
            },
        }
    }

    fn breaks_connection(&self) -> bool {
        self.is_unavailable()
    }

    fn into_db_error(self) -> DbError {
        let unavailable = self.is_unavailable();
        match self {
            PgFailure::Timeout => {
                DbError::Unavailable("the database did not answer in time".into())
            }
            PgFailure::Postgres(e) if unavailable => {
                DbError::Unavailable(format!("the database connection failed: {e}"))
            }
            PgFailure::Postgres(e) => DbError::Failed(e.to_string()),
        }
    }

    fn into_op_error(self) -> TxOpError {
        if self.is_conflict() {
            TxOpError::Conflict
        } else {
            TxOpError::Storage(self.into_db_error())
        }
    }
}

/// One tree, as rows of `idfed_kv`.
#[derive(Clone)]
pub struct PgTree {
    pg: Arc<Postgres>,
    name: Arc<str>,
    cache: Option<Arc<TreeCache>>,
}

impl PgTree {
    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn tree(&self) -> String {
        self.name.to_string()
    }

    fn notify_after_write(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate();
        }
        if self.pg.is_announced(&self.name) {
            let tree = self.tree();
            let _ = self.pg.with_conn(move |conn| {
                Box::pin(async move {
                    conn.client
                        .execute(&conn.statements.notify, &[&tree])
                        .await?;
                    Ok(())
                })
            });
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<IVec>, DbError> {
        let Some(cache) = &self.cache else {
            return self.fetch(key);
        };
        if FRESH_READS.with(|fresh| fresh.get() > 0) {
            return self.fetch(key);
        }
        let changes = &self.pg.changes;
        if !changes.connected() {
            // Changes might go unheard: nothing may be answered from memory.
            return self.fetch(key);
        }
        let announced = changes.generation(&self.name);
        let generation = {
            let mut state = cache.lock();
            if state.generation.0 != announced {
                state.generation.0 = announced;
                state.entries.clear();
            }
            if let Some(value) = state.entries.get(key) {
                self.pg.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(value.clone());
            }
            state.generation
        };
        let value = self.fetch(key)?;
        let mut state = cache.lock();
        // Kept only if nothing was announced or written meanwhile (it might be older than that).
        if state.generation == generation && changes.connected() {
            if state.entries.len() >= TreeCache::MAX {
                state.entries.clear();
            }
            state.entries.insert(key.to_vec(), value.clone());
        }
        Ok(value)
    }

    /// The value as the database holds it now (never from the cache).
    pub(super) fn fetch(&self, key: &[u8]) -> Result<Option<IVec>, DbError> {
        let (tree, key) = (self.tree(), key.to_vec());
        self.pg.with_conn(move |conn| {
            Box::pin(async move {
                let row = conn
                    .client
                    .query_opt(&conn.statements.get, &[&tree, &key])
                    .await?;
                Ok(row.map(|row| IVec::from(row.get::<_, Vec<u8>>(0))))
            })
        })
    }

    pub(super) fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), DbError> {
        let (tree, key, value) = (self.tree(), key.to_vec(), value.to_vec());
        self.pg.with_conn(move |conn| {
            Box::pin(async move {
                conn.client
                    .execute(&conn.statements.upsert, &[&tree, &key, &value])
                    .await?;
                Ok(())
            })
        })?;
        self.notify_after_write();
        Ok(())
    }

    pub(super) fn remove(&self, key: &[u8]) -> Result<Option<IVec>, DbError> {
        let (tree, key) = (self.tree(), key.to_vec());
        let removed = self.pg.with_conn(move |conn| {
            Box::pin(async move {
                let row = conn
                    .client
                    .query_opt(&conn.statements.delete, &[&tree, &key])
                    .await?;
                Ok(row.map(|row| IVec::from(row.get::<_, Vec<u8>>(0))))
            })
        })?;
        if removed.is_some() {
            self.notify_after_write();
        }
        Ok(removed)
    }

    pub(super) fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), CasFailed>, DbError> {
        let (tree, key_owned) = (self.tree(), key.to_vec());
        let (old, new) = (old.map(<[u8]>::to_vec), new.map(<[u8]>::to_vec));
        let swapped = self.pg.with_conn(move |conn| {
            Box::pin(async move {
                let s = &conn.statements;
                let changed = match (old, new) {
                    (Some(old), Some(new)) => {
                        conn.client
                            .execute(&s.cas_update, &[&tree, &key_owned, &old, &new])
                            .await?
                    }
                    (None, Some(new)) => {
                        conn.client
                            .execute(&s.cas_insert, &[&tree, &key_owned, &new])
                            .await?
                    }
                    (Some(old), None) => {
                        conn.client
                            .execute(&s.cas_delete, &[&tree, &key_owned, &old])
                            .await?
                    }
                    (None, None) => {
                        let row = conn.client.query_opt(&s.get, &[&tree, &key_owned]).await?;
                        u64::from(row.is_none())
                    }
                };
                Ok(changed == 1)
            })
        })?;
        if swapped {
            self.notify_after_write();
            Ok(Ok(()))
        } else {
            Ok(Err(CasFailed {
                current: self.fetch(key)?,
            }))
        }
    }

    pub(super) fn len(&self) -> Result<usize, DbError> {
        let tree = self.tree();
        self.pg.with_conn(move |conn| {
            Box::pin(async move {
                let count: i64 = conn
                    .client
                    .query_one(&conn.statements.count, &[&tree])
                    .await?
                    .get(0);
                Ok(usize::try_from(count).unwrap_or(usize::MAX))
            })
        })
    }

    pub(super) fn clear(&self) -> Result<(), DbError> {
        let tree = self.tree();
        self.pg.with_conn(move |conn| {
            Box::pin(async move {
                conn.client
                    .execute(&conn.statements.clear, &[&tree])
                    .await?;
                Ok(())
            })
        })?;
        self.notify_after_write();
        Ok(())
    }

    /// The entries from `start` (ascending; descending: before it), a page at a time, stopping at the
    /// first key without `prefix`.
    pub(super) fn scan(
        &self,
        start: Bound<&[u8]>,
        prefix: Option<Vec<u8>>,
        descending: bool,
    ) -> Scan {
        Scan {
            tree: self.clone(),
            position: start.map(<[u8]>::to_vec),
            prefix,
            descending,
            page: std::collections::VecDeque::new(),
            done: false,
        }
    }

    fn page(&self, position: &Bound<Vec<u8>>, descending: bool) -> Result<Vec<Row>, DbError> {
        let tree = self.tree();
        let position = position.clone();
        self.pg.with_conn(move |conn| {
            Box::pin(async move {
                let s = &conn.statements;
                let rows = match (descending, position) {
                    (false, Bound::Unbounded) => {
                        conn.client.query(&s.scan_asc, &[&tree, &PAGE]).await?
                    }
                    (false, Bound::Included(key)) => {
                        conn.client
                            .query(&s.scan_asc_from, &[&tree, &key, &PAGE])
                            .await?
                    }
                    (false, Bound::Excluded(key)) => {
                        conn.client
                            .query(&s.scan_asc_after, &[&tree, &key, &PAGE])
                            .await?
                    }
                    (true, Bound::Unbounded) => {
                        conn.client.query(&s.scan_desc, &[&tree, &PAGE]).await?
                    }
                    (true, Bound::Included(key) | Bound::Excluded(key)) => {
                        conn.client
                            .query(&s.scan_desc_before, &[&tree, &key, &PAGE])
                            .await?
                    }
                };
                Ok(rows
                    .into_iter()
                    .map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1)))
                    .collect())
            })
        })
    }
}

/// A key and its value.
type Row = (Vec<u8>, Vec<u8>);

/// A scan of a [`PgTree`], a page at a time.
pub struct Scan {
    tree: PgTree,
    position: Bound<Vec<u8>>,
    prefix: Option<Vec<u8>>,
    descending: bool,
    page: std::collections::VecDeque<Row>,
    done: bool,
}

impl Iterator for Scan {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        if self.page.is_empty() && !self.done {
            match self.tree.page(&self.position, self.descending) {
                Ok(rows) => {
                    self.done = rows.len() < PAGE as usize;
                    if let Some((last, _)) = rows.last() {
                        self.position = Bound::Excluded(last.clone());
                    }
                    self.page.extend(rows);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let (key, value) = self.page.pop_front()?;
        if let Some(prefix) = &self.prefix
            && !key.starts_with(prefix)
        {
            self.done = true;
            self.page.clear();
            return None;
        }
        Some(Ok((IVec::from(key), IVec::from(value))))
    }
}

/// A transaction on one connection.
pub struct PgTx<'a> {
    pg: &'a Postgres,
    conn: Arc<Conn>,
    /// Announced trees written in it (notified just before commit).
    written: Mutex<Vec<String>>,
    /// The `BEGIN` not sent yet: it goes with the first statement.
    begin: Mutex<Option<&'static str>>,
    /// Set by [`PgTx::commit_with_next`]: `COMMIT` goes with the next statement.
    commit_next: AtomicBool,
    /// Whether `COMMIT` went with a statement and succeeded.
    committed: AtomicBool,
}

impl PgTx<'_> {
    fn pg(&self) -> &Postgres {
        self.pg
    }

    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Arc<Conn>) -> BoxFuture<T>,
    ) -> Result<T, PgFailure> {
        let begin = self.begin.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Announcements go before COMMIT: with any to make, COMMIT is sent on its own, after them.
        let commit = self.commit_next.swap(false, Ordering::AcqRel)
            && self
                .written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
        let statement = work(self.conn.clone());
        let result = if begin.is_none() && !commit {
            self.pg().block_on(statement)
        } else {
            let conn = self.conn.clone();
            // Pipelined: BEGIN, the statement and COMMIT are sent at once, one round trip for all
            // (requests are sent in the order first polled, and the server runs them in order).
            self.pg().block_on(async move {
                let began = async {
                    match begin {
                        Some(begin) => conn.client.batch_execute(begin).await,
                        None => Ok(()),
                    }
                };
                let committed = async {
                    if commit {
                        conn.client.batch_execute("COMMIT").await
                    } else {
                        Ok(())
                    }
                };
                let (began, result, committed) = tokio::join!(began, statement, committed);
                began?;
                // A COMMIT after a failed statement only ends the failed transaction: the
                // statement's error is the one to report.
                let result = result?;
                committed?;
                Ok(result)
            })
        };
        if commit && result.is_ok() {
            self.committed.store(true, Ordering::Release);
        }
        if let Err(e) = &result
            && e.breaks_connection()
        {
            self.conn.broken.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Sends `COMMIT` with the next statement, which must be the transaction's last: one round trip
    /// for both. (When announced trees were written, `COMMIT` follows their announcements instead.)
    pub(super) fn commit_with_next(&self) {
        self.commit_next.store(true, Ordering::Release);
    }

    fn simple(&self, sql: &'static str) -> Result<(), PgFailure> {
        self.run(move |conn| {
            Box::pin(async move {
                conn.client.batch_execute(sql).await?;
                Ok(())
            })
        })
    }

    fn rollback(&self) {
        if self
            .begin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        if self.simple("ROLLBACK").is_err() {
            self.conn.broken.store(true, Ordering::Relaxed);
        }
    }

    fn wrote(&self, tree: &str) {
        if self.pg().is_announced(tree) {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            if !written.iter().any(|t| t == tree) {
                written.push(tree.to_owned());
            }
        }
    }

    /// Queues the announcements of this transaction's writes (delivered when it commits).
    fn announce(&self) -> Result<(), TxOpError> {
        let written = self
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for tree in written {
            self.run(move |conn| {
                Box::pin(async move {
                    conn.client
                        .execute(&conn.statements.notify, &[&tree])
                        .await?;
                    Ok(())
                })
            })
            .map_err(PgFailure::into_op_error)?;
        }
        Ok(())
    }

    pub(super) fn get(&self, tree: &str, key: &[u8]) -> Result<Option<IVec>, TxOpError> {
        self.read_one(tree, key, |statements| &statements.get)
    }

    pub(super) fn get_for_update(&self, tree: &str, key: &[u8]) -> Result<Option<IVec>, TxOpError> {
        self.read_one(tree, key, |statements| &statements.get_for_update)
    }

    /// One value by `statement` (of `tree`, `key`).
    fn read_one(
        &self,
        tree: &str,
        key: &[u8],
        statement: fn(&Statements) -> &Statement,
    ) -> Result<Option<IVec>, TxOpError> {
        let (tree, key) = (tree.to_owned(), key.to_vec());
        self.run(move |conn| {
            Box::pin(async move {
                let row = conn
                    .client
                    .query_opt(statement(&conn.statements), &[&tree, &key])
                    .await?;
                Ok(row.map(|row| IVec::from(row.get::<_, Vec<u8>>(0))))
            })
        })
        .map_err(PgFailure::into_op_error)
    }

    pub(super) fn insert_new(
        &self,
        tree: &str,
        entries: &[(Vec<u8>, Vec<u8>)],
        then_set: Option<(&str, &[u8], &[u8])>,
    ) -> Result<usize, TxOpError> {
        self.wrote(tree);
        if let Some((other, ..)) = then_set {
            self.wrote(other);
        }
        let tree = tree.to_owned();
        let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
        let values: Vec<Vec<u8>> = entries.iter().map(|(_, v)| v.clone()).collect();
        let (set_tree, set_key, set_value) = match then_set {
            Some((other, key, value)) => (
                Some(other.to_owned()),
                Some(key.to_vec()),
                Some(value.to_vec()),
            ),
            None => (None, None, None),
        };
        let new = self
            .run(move |conn| {
                Box::pin(async move {
                    let row = conn
                        .client
                        .query_one(
                            &conn.statements.insert_new,
                            &[&tree, &keys, &values, &set_tree, &set_key, &set_value],
                        )
                        .await?;
                    Ok(row.get::<_, i64>(0))
                })
            })
            .or_else(|failure| match &failure {
                // A key that exists: nothing was written, and the transaction is over.
                PgFailure::Postgres(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(0),
                _ => Err(failure.into_op_error()),
            })?;
        Ok(usize::try_from(new).unwrap_or(0))
    }

    pub(super) fn insert(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), TxOpError> {
        self.wrote(tree);
        let (tree, key, value) = (tree.to_owned(), key.to_vec(), value.to_vec());
        self.run(move |conn| {
            Box::pin(async move {
                conn.client
                    .execute(&conn.statements.upsert, &[&tree, &key, &value])
                    .await?;
                Ok(())
            })
        })
        .map_err(PgFailure::into_op_error)
    }

    pub(super) fn remove(&self, tree: &str, key: &[u8]) -> Result<Option<IVec>, TxOpError> {
        self.wrote(tree);
        let (tree, key) = (tree.to_owned(), key.to_vec());
        self.run(move |conn| {
            Box::pin(async move {
                let row = conn
                    .client
                    .query_opt(&conn.statements.delete, &[&tree, &key])
                    .await?;
                Ok(row.map(|row| IVec::from(row.get::<_, Vec<u8>>(0))))
            })
        })
        .map_err(PgFailure::into_op_error)
    }
}

/// The TLS connector: the system's roots, and `ca_file`'s certificates when given. Whether TLS is used
/// is the connection string's `sslmode` (`prefer` unless it says otherwise; `require` to insist).
fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, DbError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                DbError::Failed(format!(
                    "cannot read the database CA file {}: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(DbError::Failed(format!(
                "the database CA file {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                DbError::Failed(format!(
                    "a certificate in {} is not usable: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Failed(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// 16 random bits, for jitter.
fn rand_u16() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    u16::from_le_bytes(bytes)
}
