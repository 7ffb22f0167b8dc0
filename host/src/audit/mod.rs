//! The audit log: every credential request attempt (and every admin change) as an append-only,
//! hash-chained record in sled, so that a record edited, removed or slipped in out of band is detected by
//! [`AuditLog::verify`]; with a retention that prunes old records without breaking verification.
//!
//! Records live in the tree `audit`, keyed by their seq (`u64` big-endian, from 1); the tree `audit-meta`
//! holds the head (the last record's seq and hash, written right after each record, or by the flush of a
//! group of durable appends) and the retention
//! anchor (the last pruned record's seq and hash). Each record's hash is SHA-256 over its stored body, which includes its seq, its time and the
//! previous record's hash, so the chain can only be rewritten from the point of an edit onwards, head
//! included (see `chain.rs` for the encoding). The chain proves integrity against edits to the database
//! that do not rewrite everything after them; to guard against someone rewriting the whole tail, record the
//! head ([`AuditLog::head`]) somewhere else from time to time.
//!
//! Durability: an append writes the record, then the head (not a sled transaction: see
//! [`AuditLog::append`]); records a crash left past the head are completed when the log is next opened. [`AuditLog::append_durable`], which every vend uses before it hands anything
//! out, also waits until the record is on disk, by **group commit**: one caller at a time flushes sled
//! (an fsync), and that flush covers every record appended before it started, so concurrent vends share
//! one fsync instead of paying one each. With durability off (`[audit] durable = false`) a record is
//! durable once sled flushes (every 500 ms) or at shutdown; a crash may then lose the last moments'
//! records, never leave a broken chain.

mod chain;

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::store::db::{Db, DbError, Isolation, TransactionError, Tree, TxError, TxTree};

use chain::{ANCHOR_KEY, HEAD_KEY};
pub use chain::{ChainLink, GENESIS};

/// The sled tree of the records.
pub const RECORDS_TREE: &str = "audit";
/// The sled tree of the head and the retention anchor.
pub const META_TREE: &str = "audit-meta";
/// Free text (`reason`, `user_agent`) is cut to this many bytes when appended.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The number of records [`AuditFilter::default`] returns at most.
pub const DEFAULT_QUERY_LIMIT: usize = 100;
/// How many records one prune transaction removes.
const PRUNE_BATCH: usize = 256;
/// Group commits under way at once on PostgreSQL, each replica. One: what arrives during a commit goes
/// into the next, so batches grow with the load (in the HTTP benchmark at 64 connections: 22 records a
/// commit against 11 with two under way, and cache hits at 0.81× of sled's in the same run against 0.61×).
const COMMITTERS: usize = 1;
/// The advisory lock (PostgreSQL) held while pruning or verifying.
const MAINTENANCE_LOCK: i64 = 0x6964_6665_6441;

pub use idfed_api::audit::{AuditEvent, AuditRecord, Outcome};

/// A plugin's denials and faults: the records that name it, and older ones (from before records named
/// plugins) of the bindings given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRecords {
    /// The plugin's digest.
    pub digest: String,
    /// Its bindings' ids.
    pub bindings: Vec<String>,
}

/// Which records [`AuditLog::query`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this caller's (exact name, e.g. `alice` or `system:ci`).
    pub caller: Option<String>,
    /// Only this connector's, by id or name.
    pub connector: Option<String>,
    /// Only those that ended so.
    pub outcome: Option<Outcome>,
    /// Only denials and faults of this plugin.
    pub plugin: Option<PluginRecords>,
    /// Only those appended at or after.
    pub since: Option<SystemTime>,
    /// Only those appended before.
    pub until: Option<SystemTime>,
    /// At most this many, newest first; 0 for all.
    pub limit: usize,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            caller: None,
            connector: None,
            outcome: None,
            plugin: None,
            since: None,
            until: None,
            limit: DEFAULT_QUERY_LIMIT,
        }
    }
}

impl AuditFilter {
    fn matches(&self, record: &AuditRecord) -> bool {
        let event = &record.event;
        self.caller
            .as_ref()
            .is_none_or(|c| event.caller.as_ref() == Some(c))
            && self.connector.as_ref().is_none_or(|c| {
                event.connector_id.as_ref() == Some(c) || event.connector.as_ref() == Some(c)
            })
            && self.outcome.is_none_or(|o| event.outcome == o)
            && self.plugin.as_ref().is_none_or(|plugin| {
                event.plugin.as_ref() == Some(&plugin.digest)
                    || (event.plugin.is_none()
                        && event
                            .binding
                            .as_ref()
                            .is_some_and(|binding| plugin.bindings.contains(binding)))
            })
            && self.since.is_none_or(|since| record.time >= since)
            && self.until.is_none_or(|until| record.time < until)
    }
}

/// What [`AuditLog::verify`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// How many records were checked (those after the retention anchor).
    pub records: u64,
    /// The first record's seq, if any.
    pub first_seq: Option<u64>,
    /// The last record's seq, if any.
    pub last_seq: Option<u64>,
    /// The retention anchor's seq: records up to it were pruned (0: none ever).
    pub anchor_seq: u64,
    /// The head's seq, if the head could be read.
    pub head_seq: Option<u64>,
    /// Each problem, naming the seq and what is wrong; empty when the chain is intact.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Why the audit log could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// sled failed.
    #[error("audit store unavailable: {0}")]
    Store(String),
    /// The database cannot be reached now.
    #[error("audit store unreachable: {0}")]
    Unavailable(String),
    /// The stored chain is damaged in a way that stops the operation (verify reports the details).
    #[error("audit log corrupt: {0}")]
    Corrupt(String),
}

impl AuditError {
    /// A stable code for API errors and logs.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Store(_) => "audit_unavailable",
            AuditError::Unavailable(_) => "store_unavailable",
            AuditError::Corrupt(_) => "audit_corrupt",
        }
    }
}

impl From<DbError> for AuditError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(m) => AuditError::Unavailable(m),
            DbError::Failed(m) => AuditError::Store(m),
        }
    }
}

impl From<TransactionError<AuditError>> for AuditError {
    fn from(e: TransactionError<AuditError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

/// The audit log. Cheap to clone; clones share the chain. Open it once per database and clone it:
/// appends are serialized by a lock held by the clones (and by sled's transactions across instances).
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    records: Tree,
    meta: Tree,
    retention: Option<Duration>,
    /// Held by each append, and by `verify` while it reads the tail and the head. It holds the tip
    /// (sled), see [`Tip`].
    append: Mutex<Tip>,
    /// Held by `prune` and `verify`, so that verify never sees a half-done prune.
    maintenance: Mutex<()>,
    /// Whether `append_durable` waits for the disk.
    durable: AtomicBool,
    /// The highest seq appended (in sled's memory).
    appended: AtomicU64,
    /// The highest seq known to be on disk.
    synced: AtomicU64,
    /// Held by the one caller flushing (sled) or committing (PostgreSQL) for everyone.
    flusher: tokio::sync::Mutex<()>,
    /// Durable appends waiting for the next group commit (PostgreSQL).
    queue: Mutex<Vec<Queued>>,
    /// Group commits under way at once (PostgreSQL), [`COMMITTERS`].
    committers: tokio::sync::Semaphore,
    /// Flushes made for durable appends.
    flushes: AtomicU64,
    /// Appends made durable.
    durable_appends: AtomicU64,
}

/// What the group commit did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurabilityStats {
    /// Records made durable before their answer.
    pub durable_appends: u64,
    /// Flushes (fsyncs; on PostgreSQL, group commits) that took them to disk: fewer than the appends
    /// under load.
    pub flushes: u64,
}

impl AuditLog {
    /// Opens the log in `db`'s `audit` and `audit-meta` trees; `retention` is how long records are kept
    /// (`None`: for ever).
    pub fn open(db: &Db, retention: Option<Duration>) -> Result<AuditLog, AuditError> {
        let log = AuditLog {
            inner: Arc::new(Inner {
                db: db.clone(),
                records: db.open_tree(RECORDS_TREE)?,
                meta: db.open_tree(META_TREE)?,
                retention,
                append: Mutex::new(Tip::default()),
                maintenance: Mutex::new(()),
                durable: AtomicBool::new(true),
                appended: AtomicU64::new(0),
                synced: AtomicU64::new(0),
                flusher: tokio::sync::Mutex::new(()),
                queue: Mutex::new(Vec::new()),
                committers: tokio::sync::Semaphore::new(COMMITTERS),
                flushes: AtomicU64::new(0),
                durable_appends: AtomicU64::new(0),
            }),
        };
        if let Err(e) = log.complete_interrupted_append() {
            tracing::error!(error = %e, "audit log: could not check for an interrupted append");
        }
        if let Db::Postgres(_) = db {
            log.ensure_head()?;
        }
        match log.read_link(HEAD_KEY) {
            Ok(head) => {
                // What was there at open is on disk (sled recovered it from there).
                let seq = head.map_or(0, |h| h.seq);
                log.inner.appended.store(seq, Ordering::Relaxed);
                log.inner.synced.store(seq, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log head unreadable: appends will fail; run verify");
            }
        }
        Ok(log)
    }

    /// Whether [`AuditLog::append_durable`] waits until the record is on disk (the default).
    pub fn set_durable(&self, durable: bool) {
        self.inner.durable.store(durable, Ordering::Relaxed);
    }

    /// Whether appends are made durable before they return.
    pub fn is_durable(&self) -> bool {
        self.inner.durable.load(Ordering::Relaxed)
    }

    /// What the group commit did so far.
    pub fn durability_stats(&self) -> DurabilityStats {
        DurabilityStats {
            durable_appends: self.inner.durable_appends.load(Ordering::Relaxed),
            flushes: self.inner.flushes.load(Ordering::Relaxed),
        }
    }

    /// [`AuditLog::append`], then, if the log is durable, waits until the record is on disk: the first
    /// waiter flushes for everyone appended by then; the others wait for that flush (group commit).
    /// An error means the record may not survive a crash: whatever it records must not be handed out.
    pub async fn append_durable(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        if let Db::Postgres(_) = self.inner.db {
            // A commit is durable there; what is shared is the commit itself.
            let record = self.append_grouped(event).await?;
            self.inner.durable_appends.fetch_add(1, Ordering::Relaxed);
            return Ok(record);
        }
        let durable = self.is_durable();
        // The head is left to the flush that makes the record durable.
        let record = self.append_record(event, !durable)?;
        if durable {
            self.sync_through(record.seq).await?;
            self.inner.durable_appends.fetch_add(1, Ordering::Relaxed);
        }
        Ok(record)
    }

    /// Group commit on PostgreSQL: the appends waiting when a commit starts are all made in that one
    /// transaction (one round of the chain's head across replicas, one WAL flush), off the async
    /// threads; each caller gets its own record.
    async fn append_grouped(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        lock_queue(&self.inner.queue).push(Queued {
            event,
            time: SystemTime::now(),
            reply,
        });
        let committer = self
            .inner
            .committers
            .acquire()
            .await
            .map_err(|_| AuditError::Store("the audit log is closing".into()))?;
        // A commit before this one may have taken ours.
        if let Ok(answered) = answer.try_recv() {
            return answered;
        }
        let batch = std::mem::take(&mut *lock_queue(&self.inner.queue));
        if batch.is_empty() {
            // Taken by a commit under way: its answer comes.
            drop(committer);
            return answer
                .await
                .map_err(|_| AuditError::Store("the audit commit dropped this record".into()))?;
        }
        let log = self.clone();
        let (replies, committed) = tokio::task::spawn_blocking(move || {
            let taken = Mutex::new(batch);
            let inner = &log.inner;
            // The database's lock on the head orders the batches (of this replica and the others').
            let committed = inner.db.transaction_with(
                Isolation::Locking,
                [&inner.records, &inner.meta],
                |[records, meta]| {
                    let tip = lock_tip(meta)?;
                    // What arrived while the head was awaited (other replicas' turns) goes in too:
                    // the more replicas contend, the larger each batch, the fewer turns.
                    let mut taken = lock_queue(&taken);
                    taken.append(&mut lock_queue(&inner.queue));
                    let events: Vec<(&AuditEvent, SystemTime)> =
                        taken.iter().map(|q| (&q.event, q.time)).collect();
                    append_after(records, meta, tip, &events)
                },
            );
            let committed = committed.map_err(AuditError::from);
            if let Ok(records) = &committed
                && let Some(last) = records.last()
            {
                log.appended_through(last.seq);
                inner.flushes.fetch_add(1, Ordering::Relaxed);
            }
            let replies: Vec<_> = taken
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .into_iter()
                .map(|q| q.reply)
                .collect();
            (replies, committed)
        })
        .await
        .map_err(|e| AuditError::Store(format!("the audit commit did not finish: {e}")))?;
        match committed {
            Ok(records) => {
                for (reply, record) in replies.into_iter().zip(records) {
                    let _ = reply.send(Ok(record));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        answer
            .await
            .map_err(|_| AuditError::Store("the audit commit dropped this record".into()))?
    }

    /// Waits until every record up to `seq` is on disk.
    pub async fn sync_through(&self, seq: u64) -> Result<(), AuditError> {
        let inner = &self.inner;
        if inner.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _flusher = inner.flusher.lock().await;
        if inner.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        // Everything appended by now is in sled's memory, so this flush takes it all, with the head
        // written first (durable appends leave it to the flush).
        let target = inner.appended.load(Ordering::Acquire);
        let log = self.clone();
        tokio::task::spawn_blocking(move || {
            log.write_head()?;
            log.inner.records.flush().map_err(AuditError::from)
        })
        .await
        .map_err(|e| AuditError::Store(format!("the flush did not finish: {e}")))??;
        inner.flushes.fetch_add(1, Ordering::Relaxed);
        inner.synced.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// The retention.
    pub fn retention(&self) -> Option<Duration> {
        self.inner.retention
    }

    /// Appends a record of `event`: assigns its seq, time, previous hash and hash, and stores it, then the
    /// new head. Durable within sled's flush interval (see the module docs).
    ///
    /// Single-key writes rather than a sled transaction: sled 0.34 rolls its I/O buffer before and after
    /// every transaction (a buffer write and `sync_file_range` per append, which halved the vending
    /// endpoint's throughput), plain inserts do not. Durable appends ([`AuditLog::append_durable`]) leave
    /// the head to the flush that makes them durable ([`AuditLog::sync_through`]), one head write a group
    /// rather than a record: whatever was answered is covered by a head on disk. Appends are serialized by
    /// the lock, and sled recovers writes in their order, so a crash can leave records past the head, each
    /// linked to the one before; [`AuditLog::open`] completes such appends.
    ///
    /// On PostgreSQL every replica appends to the one chain: the record and the head are written in one
    /// serializable transaction, which one replica at a time gets through (the others run again).
    pub fn append(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        self.append_record(event, true)
    }

    /// [`AuditLog::append`], the head written now or (`head_now` false, sled) by the next flush.
    fn append_record(&self, event: AuditEvent, head_now: bool) -> Result<AuditRecord, AuditError> {
        let mut tip = lock(&self.inner.append);
        if let Db::Postgres(_) = self.inner.db {
            let mut records = self.append_batch(&[(event, SystemTime::now())])?;
            return Ok(records.remove(0));
        }
        let mut event = event;
        cut_text(&mut event.reason);
        cut_text(&mut event.user_agent);
        let time = chain::record_time(SystemTime::now());
        let record = loop {
            // Read, not taken: an error below (sled's I/O) must leave the tip in place, since the stored
            // head may still be behind the records this log appended.
            let (prev, from_store) = match &tip.link {
                Some(link) => (link.clone(), false),
                None => (self.stored_head()?, true),
            };
            let seq = prev.seq + 1;
            let (value, record) = chain::seal(seq, time, &prev.hash, &event);
            // Stored only where the key is free (one lookup, not a read then a write): a record
            // already there is not overwritten.
            let stored = self.inner.records.compare_and_swap(
                seq.to_be_bytes(),
                None::<&[u8]>,
                Some(value),
            )?;
            match stored {
                Ok(()) => break record,
                // The tip this log kept is behind the head (another instance appended to this
                // database): once more from the head.
                Err(_) if !from_store => {
                    tip.link = None;
                    continue;
                }
                Err(_) => {
                    return Err(AuditError::Corrupt(format!(
                        "record {seq} already exists though the head is at {}: written out of band \
                         (not overwritten)",
                        prev.seq
                    )));
                }
            }
        };
        let head = ChainLink {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        // The next append links to this record even if the head cannot be written now (the head then
        // catches up with it).
        tip.link = Some(head.clone());
        tip.unwritten = true;
        self.inner.appended.fetch_max(record.seq, Ordering::AcqRel);
        if head_now {
            write_head(&self.inner.meta, &mut tip)?;
        }
        Ok(record)
    }

    /// Appends `events` (with their times) as consecutive records in one transaction that locks the
    /// head (PostgreSQL: `READ COMMITTED` and `FOR UPDATE`), so that replicas appending at once take
    /// turns at the head rather than fail and run again; a handful of round trips however many records.
    fn append_batch(
        &self,
        events: &[(AuditEvent, SystemTime)],
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let records = self.inner.db.transaction_with(
            Isolation::Locking,
            [&self.inner.records, &self.inner.meta],
            |[records, meta]| append_batch_in(records, meta, events),
        )?;
        if let Some(last) = records.last() {
            self.appended_through(last.seq);
        }
        Ok(records)
    }

    /// On PostgreSQL the head row exists from the start (the anchor's or genesis link, which `verify`
    /// reads as "nothing appended"), so that every append locks it: replicas' first appends then take
    /// turns too, instead of both starting from an absent head.
    fn ensure_head(&self) -> Result<(), AuditError> {
        self.inner.db.transaction_with(
            Isolation::Locking,
            [&self.inner.records, &self.inner.meta],
            |[_, meta]| {
                if meta.get_for_update(HEAD_KEY)?.is_some() {
                    return Ok(());
                }
                let tip = anchor_or_genesis(meta)?;
                // Another replica opening at the same moment may make it first: then run again.
                if meta.insert_new(&[(HEAD_KEY.to_vec(), tip.encode().to_vec())], None)? == 0 {
                    return Err(TxError::Conflict);
                }
                Ok::<_, TxError<AuditError>>(())
            },
        )?;
        Ok(())
    }

    /// Completes appends a crash interrupted between their records and their head: the records past the
    /// head, each the next seq and linked to the one before, up to the first that is not (what is past
    /// that is left for `verify`).
    ///
    /// A log without a head and without records past its anchor gets its head now (the anchor's, or
    /// genesis), so that a missing head always means one removed: then nothing is completed, and appends
    /// are refused until `verify` has been looked at.
    ///
    /// Sled only: on PostgreSQL a record and its head are committed together, and other replicas append
    /// meanwhile.
    fn complete_interrupted_append(&self) -> Result<(), AuditError> {
        if let Db::Postgres(_) = self.inner.db {
            return Ok(());
        }
        let Some(head) = self.read_link(HEAD_KEY)? else {
            let start = self.stored_head()?;
            let from = (start.seq + 1).to_be_bytes();
            if self
                .inner
                .records
                .range_from(Bound::Included(&from))
                .next()
                .is_none()
            {
                self.inner.meta.insert(HEAD_KEY, start.encode())?;
            }
            return Ok(());
        };
        let mut tip = head.clone();
        let from = (head.seq + 1).to_be_bytes();
        for item in self.inner.records.range_from(Bound::Included(&from)) {
            let (key, value) = item?;
            let Ok(opened) = chain::open(&value) else {
                break;
            };
            let next = tip.seq + 1;
            if chain::seq_of(&key) != Some(next)
                || opened.record.seq != next
                || opened.record.prev_hash != tip.hash
            {
                break;
            }
            tip = ChainLink {
                seq: next,
                hash: opened.record.hash,
            };
        }
        if tip.seq == head.seq {
            return Ok(());
        }
        self.inner.meta.insert(HEAD_KEY, tip.encode())?;
        self.inner.meta.flush()?;
        tracing::warn!(
            from = head.seq + 1,
            to = tip.seq,
            "completed audit appends interrupted between their records and their head"
        );
        Ok(())
    }

    /// Holds appends off while another write appends through [`append_in`] (an administrator's change
    /// committed with its record); call [`AuditLog::appended_through`] with the record's seq after. The
    /// head is written first where appends left it to the next flush; the next append reads it back from
    /// the store.
    pub fn lock_appends(&self) -> Result<AppendsHeld<'_>, AuditError> {
        let mut held = lock(&self.inner.append);
        write_head(&self.inner.meta, &mut held)?;
        held.link = None;
        Ok(AppendsHeld { _held: held })
    }

    /// Writes the head where appends left it to the next flush.
    fn write_head(&self) -> Result<(), AuditError> {
        write_head(&self.inner.meta, &mut lock(&self.inner.append))
    }

    /// Notes a record appended through [`append_in`], for the group commit's bookkeeping.
    pub fn appended_through(&self, seq: u64) {
        self.inner.appended.fetch_max(seq, Ordering::AcqRel);
    }

    /// The head: the last record's seq and hash (the anchor, or genesis, when there is none). Worth
    /// recording elsewhere now and then: the chain up to it can then not be rewritten unnoticed.
    pub fn head(&self) -> Result<ChainLink, AuditError> {
        self.write_head()?;
        self.stored_head()
    }

    /// The head as stored (behind the last append until the next flush writes it, with the log durable).
    fn stored_head(&self) -> Result<ChainLink, AuditError> {
        match self.read_link(HEAD_KEY)? {
            Some(head) => Ok(head),
            None => Ok(self
                .read_link(ANCHOR_KEY)?
                .unwrap_or_else(ChainLink::genesis)),
        }
    }

    /// Walks the chain from the retention anchor to the head and reports every problem: a record edited
    /// (hash mismatch), removed (a gap in seq), moved, inserted or appended out of band, the tail truncated
    /// (head mismatch), a broken anchor. Appends go on meanwhile, except while the tail is read.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let _maintenance = lock(&self.inner.maintenance);
        let _replicas = self.maintenance_lock()?;
        let (anchor, anchor_problem) = match self.read_link(ANCHOR_KEY) {
            Ok(anchor) => (anchor.unwrap_or_else(ChainLink::genesis), None),
            Err(e) => (ChainLink::genesis(), Some(e)),
        };
        let anchor_seq = anchor.seq;
        let mut walker = chain::Walker::new(anchor);
        if let Some(e) = anchor_problem {
            walker.problem(format!("retention anchor unreadable: {e}"));
        }
        let mut last_key = None;
        for item in self.inner.records.iter() {
            let (key, value) = item?;
            walker.visit(&key, &value);
            last_key = Some(key);
        }
        // The records appended since, and the head, with appends held off so that they agree.
        let mut appends_held = lock(&self.inner.append);
        write_head(&self.inner.meta, &mut appends_held)?;
        let shared = matches!(self.inner.db, Db::Postgres(_));
        // Other replicas go on appending: read the head first, and the records up to it. (A record
        // and its head are committed together there, so nothing past the head is out of band yet.)
        let early_head = if shared {
            self.inner.meta.get(HEAD_KEY)?
        } else {
            None
        };
        let tail = match &last_key {
            Some(key) => self.inner.records.range_from(Bound::Excluded(key)),
            None => self.inner.records.iter(),
        };
        let cap = early_head
            .as_ref()
            .and_then(|bytes| ChainLink::decode(bytes).ok())
            .map(|head| head.seq);
        for item in tail {
            let (key, value) = item?;
            if let (Some(cap), Some(seq)) = (cap, chain::seq_of(&key))
                && seq > cap
            {
                break;
            }
            walker.visit(&key, &value);
        }
        let head_bytes = if shared {
            early_head
        } else {
            self.inner.meta.get(HEAD_KEY)?
        };
        let head = match head_bytes {
            None => Ok(None),
            Some(bytes) => ChainLink::decode(&bytes).map(Some),
        };
        let at_head = match &head {
            Ok(Some(head)) => self
                .inner
                .records
                .get(head.seq.to_be_bytes())?
                .and_then(|value| chain::open(&value).ok())
                .map(|opened| opened.record.hash),
            _ => None,
        };
        drop(appends_held);
        let head_seq = head.as_ref().ok().and_then(|h| h.as_ref().map(|h| h.seq));
        let problems = walker.finish(head, at_head);
        Ok(VerifyReport {
            records: walker.records,
            first_seq: walker.first_seq,
            last_seq: walker.last_seq,
            anchor_seq,
            head_seq,
            problems,
        })
    }

    /// Removes the records older than the retention at `now` (none without a retention), oldest first,
    /// moving the retention anchor to the last one removed, in the same transaction, so that verification
    /// still holds. Stops before a record that fails its checks (logged): pruning never launders tampering
    /// into the anchor. Returns how many were removed.
    pub fn prune(&self, now: SystemTime) -> Result<u64, AuditError> {
        let Some(retention) = self.inner.retention else {
            return Ok(0);
        };
        let Some(cutoff) = now.checked_sub(retention) else {
            return Ok(0);
        };
        let _maintenance = lock(&self.inner.maintenance);
        let _replicas = self.maintenance_lock()?;
        // Never past the head: records beyond it were appended out of band.
        let head_seq = self.read_link(HEAD_KEY)?.map_or(0, |head| head.seq);
        let mut anchor = self
            .read_link(ANCHOR_KEY)?
            .unwrap_or_else(ChainLink::genesis);
        let mut removed = 0;
        loop {
            let mut batch = Vec::new();
            let mut next = anchor.clone();
            let mut stopped = None;
            let mut more = false;
            let from = (anchor.seq + 1).to_be_bytes();
            for item in self.inner.records.range_from(Bound::Included(&from)) {
                let (key, value) = item?;
                let Some(seq) = chain::seq_of(&key) else {
                    stopped = Some(format!("a key of {} bytes after the anchor", key.len()));
                    break;
                };
                if seq > head_seq {
                    break;
                }
                let opened = chain::open(&value);
                if let Some(problem) = chain::prunable_problem(&next, seq, &opened) {
                    stopped = Some(problem);
                    break;
                }
                let record = opened.expect("checked").record;
                if record.time >= cutoff {
                    break;
                }
                next = ChainLink {
                    seq,
                    hash: record.hash,
                };
                batch.push(key);
                if batch.len() == PRUNE_BATCH {
                    more = true;
                    break;
                }
            }
            if !batch.is_empty() {
                self.inner.db.transaction(
                    [&self.inner.records, &self.inner.meta],
                    |[records, meta]| {
                        for key in &batch {
                            records.remove(key)?;
                        }
                        meta.insert(ANCHOR_KEY, next.encode())?;
                        Ok::<_, TxError<AuditError>>(())
                    },
                )?;
                removed += batch.len() as u64;
                anchor = next;
            }
            if let Some(problem) = stopped {
                tracing::warn!(
                    anchor = anchor.seq,
                    problem,
                    "audit log retention stopped at a damaged record; run verify"
                );
                break;
            }
            if !more {
                break;
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                anchor = anchor.seq,
                anchor_hash = anchor.hash,
                "audit log pruned"
            );
        }
        Ok(removed)
    }

    /// The records matching `filter`, newest first, at most `filter.limit` (0: all). Records that cannot
    /// be read are skipped (logged); `verify` reports them.
    pub fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        let mut found = Vec::new();
        for item in self.inner.records.iter_rev() {
            let (key, value) = item?;
            let Some(seq) = chain::seq_of(&key) else {
                continue;
            };
            let record = match chain::open(&value) {
                Ok(opened) => opened.record,
                Err(e) => {
                    tracing::warn!(seq, error = e, "audit record unreadable; skipped");
                    continue;
                }
            };
            if filter.matches(&record) {
                found.push(record);
                if found.len() == filter.limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Writes everything appended so far to disk.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.write_head()?;
        self.inner.records.flush()?;
        self.inner.meta.flush()?;
        Ok(())
    }

    /// On PostgreSQL, the advisory lock that keeps one replica at a time pruning or verifying.
    fn maintenance_lock(
        &self,
    ) -> Result<Option<crate::store::db::postgres::AdvisoryLock>, AuditError> {
        match &self.inner.db {
            Db::Sled(_) => Ok(None),
            Db::Postgres(pg) => Ok(Some(pg.advisory_lock(MAINTENANCE_LOCK)?)),
        }
    }

    fn read_link(&self, key: &[u8]) -> Result<Option<ChainLink>, AuditError> {
        match self.inner.meta.get(key)? {
            None => Ok(None),
            Some(bytes) => ChainLink::decode(&bytes).map(Some).map_err(|e| {
                AuditError::Corrupt(format!("{} unreadable: {e}", String::from_utf8_lossy(key)))
            }),
        }
    }
}

/// Appends a record of `event` at `time` inside a sled transaction over the log's trees (`records` is
/// [`RECORDS_TREE`], `meta` [`META_TREE`]), so that another change can be committed with its record, or not
/// at all. [`AuditLog::append`] is this in a transaction of its own.
pub fn append_in(
    records: &TxTree<'_>,
    meta: &TxTree<'_>,
    event: &AuditEvent,
    time: SystemTime,
) -> Result<AuditRecord, TxError<AuditError>> {
    let mut event = event.clone();
    cut_text(&mut event.reason);
    cut_text(&mut event.user_agent);
    let time = chain::record_time(time);
    let prev = match meta.get(HEAD_KEY)? {
        Some(bytes) => ChainLink::decode(&bytes).map_err(|e| {
            TxError::Abort(AuditError::Corrupt(format!("the head is unreadable: {e}")))
        })?,
        // No head: nothing ever appended, or everything was pruned.
        None => anchor_or_genesis(meta)?,
    };
    let seq = prev.seq + 1;
    let key = seq.to_be_bytes();
    if records.get(key)?.is_some() {
        return Err(TxError::Abort(AuditError::Corrupt(format!(
            "record {seq} already exists though the head is at {}: written out of \
                     band (not overwritten)",
            prev.seq
        ))));
    }
    let (value, record) = chain::seal(seq, time, &prev.hash, &event);
    records.insert(key, value)?;
    let head = ChainLink {
        seq,
        hash: record.hash.clone(),
    };
    meta.insert(HEAD_KEY, head.encode())?;
    Ok(record)
}

/// [`append_in`] for several events at once, the head read (locked) and written once.
fn append_batch_in(
    records: &TxTree<'_>,
    meta: &TxTree<'_>,
    events: &[(AuditEvent, SystemTime)],
) -> Result<Vec<AuditRecord>, TxError<AuditError>> {
    let tip = lock_tip(meta)?;
    let events: Vec<(&AuditEvent, SystemTime)> = events.iter().map(|(e, t)| (e, *t)).collect();
    append_after(records, meta, tip, &events)
}

/// The head, locked (PostgreSQL: `FOR UPDATE`) until the transaction ends; else the retention anchor,
/// else genesis.
fn lock_tip(meta: &TxTree<'_>) -> Result<ChainLink, TxError<AuditError>> {
    match meta.get_for_update(HEAD_KEY)? {
        Some(bytes) => ChainLink::decode(&bytes).map_err(|e| {
            TxError::Abort(AuditError::Corrupt(format!("the head is unreadable: {e}")))
        }),
        None => anchor_or_genesis(meta),
    }
}

/// The retention anchor, else genesis: where the chain starts when there is no head.
fn anchor_or_genesis(meta: &TxTree<'_>) -> Result<ChainLink, TxError<AuditError>> {
    match meta.get(ANCHOR_KEY)? {
        Some(bytes) => ChainLink::decode(&bytes).map_err(|e| {
            TxError::Abort(AuditError::Corrupt(format!(
                "the retention anchor is unreadable: {e}"
            )))
        }),
        None => Ok(ChainLink::genesis()),
    }
}

/// Appends `events` after `tip` (the head, locked by [`lock_tip`]), and moves the head.
fn append_after(
    records: &TxTree<'_>,
    meta: &TxTree<'_>,
    tip: ChainLink,
    events: &[(&AuditEvent, SystemTime)],
) -> Result<Vec<AuditRecord>, TxError<AuditError>> {
    let mut prev = tip;
    let head_seq = prev.seq;
    let keys: Vec<Vec<u8>> = (1..=events.len() as u64)
        .map(|i| (prev.seq + i).to_be_bytes().to_vec())
        .collect();
    let mut sealed = Vec::with_capacity(events.len());
    let mut appended = Vec::with_capacity(events.len());
    for ((event, time), key) in events.iter().zip(keys) {
        let mut event = (*event).clone();
        cut_text(&mut event.reason);
        cut_text(&mut event.user_agent);
        let (value, record) =
            chain::seal(prev.seq + 1, chain::record_time(*time), &prev.hash, &event);
        prev = ChainLink {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        sealed.push((key, value));
        appended.push(record);
    }
    // The records and the head in one statement, committed with it (one round trip, so that the head
    // is held for one round trip and the WAL flush, not two). Under the head's lock no other append can
    // have written these keys: one that exists was written out of band, and then nothing of the batch
    // is written (nothing overwritten, the head where it was).
    let head = prev.encode();
    records.commit_with_next();
    let new = records.insert_new(&sealed, Some((meta, HEAD_KEY, head.as_ref())))?;
    if new != sealed.len() {
        return Err(TxError::Abort(AuditError::Corrupt(format!(
            "a record among {}..={} already exists though the head is at {head_seq}: written out \
             of band (not overwritten)",
            head_seq + 1,
            head_seq + sealed.len() as u64
        ))));
    }
    Ok(appended)
}

/// A durable append waiting for the group commit.
struct Queued {
    event: AuditEvent,
    time: SystemTime,
    reply: tokio::sync::oneshot::Sender<Result<AuditRecord, AuditError>>,
}

fn lock_queue(queue: &Mutex<Vec<Queued>>) -> MutexGuard<'_, Vec<Queued>> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Appends held off by [`AuditLog::lock_appends`] until dropped.
pub struct AppendsHeld<'a> {
    _held: MutexGuard<'a, Tip>,
}

/// Where a log's own appends reached (sled), kept under its append lock.
#[derive(Default)]
struct Tip {
    /// The last record this log appended, so that an append need not read the head back; `None` where
    /// it is not known (at open, after an administrator's change, on PostgreSQL).
    link: Option<ChainLink>,
    /// Whether `link` is past the head as stored (durable appends leave the head to the next flush).
    unwritten: bool,
}

/// Stores `tip` as the head if it is past the stored one.
fn write_head(meta: &Tree, tip: &mut Tip) -> Result<(), AuditError> {
    if let (true, Some(link)) = (tip.unwritten, &tip.link) {
        meta.insert(HEAD_KEY, link.encode())?;
    }
    tip.unwritten = false;
    Ok(())
}

/// A panic elsewhere while one of these locks was held leaves nothing inconsistent: the tip is set only
/// once its record is stored, and the other locks guard no data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Cuts free text to [`MAX_TEXT_BYTES`], on a character boundary, marking the cut.
fn cut_text(text: &mut Option<String>) {
    if let Some(text) = text
        && text.len() > MAX_TEXT_BYTES
    {
        let mut end = MAX_TEXT_BYTES - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

#[cfg(test)]
mod tests;
