//! The chain's encoding and its checks: how a record is stored and hashed, and the walk `verify` makes.
//!
//! A stored record is `SHA-256 of the body (32 bytes) ++ body`, where the body is the JSON of
//! `{seq, time, prev_hash, event}` exactly as it was written at append. The hash is taken over those stored
//! bytes, never over a re-serialization, so a field added to [`AuditEvent`] later leaves old records
//! verifiable. The body carries its own `seq` (a record copied to another key is detected) and the previous
//! record's hash (`prev_hash`, hex), which links the chain; the first record after the retention anchor
//! links to the anchor's hash, and the first record ever to [`GENESIS`].
//!
//! `audit-meta` holds two [`ChainLink`]s, as JSON: `head`, the last record appended (written in the same
//! transaction as that record), and `anchor`, the last record removed by retention (written in the same
//! transaction as the removals); no anchor means nothing was ever pruned (seq 0, [`GENESIS`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuditEvent, AuditRecord};

/// The `prev_hash` of the first record ever, and the hash of the empty chain: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key of the head in `audit-meta`.
pub(super) const HEAD_KEY: &[u8] = b"head";
/// The key of the retention anchor in `audit-meta`.
pub(super) const ANCHOR_KEY: &[u8] = b"anchor";

const HASH_BYTES: usize = 32;

/// At most this many problems are listed by one verification; the rest are counted.
const MAX_PROBLEMS: usize = 1000;

/// A point in the chain: a record's seq and hash (hex). The head is the last record appended, the anchor
/// the last one removed by retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The record's seq (0 for the empty chain).
    pub seq: u64,
    /// The record's hash, hex ([`GENESIS`] for the empty chain).
    pub hash: String,
}

impl ChainLink {
    /// The start of every chain: seq 0, [`GENESIS`].
    pub fn genesis() -> ChainLink {
        ChainLink {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a link serializes")
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<ChainLink, String> {
        let link: ChainLink = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if !is_hash(&link.hash) {
            return Err(format!("{:?} is not a SHA-256 in hex", link.hash));
        }
        Ok(link)
    }
}

/// The body as written.
#[derive(Serialize)]
struct BodyOut<'a> {
    seq: u64,
    #[serde(with = "idfed_api::audit::rfc3339")]
    time: SystemTime,
    prev_hash: &'a str,
    event: &'a AuditEvent,
}

/// The body as read back.
#[derive(Deserialize)]
struct BodyIn {
    seq: u64,
    #[serde(with = "idfed_api::audit::rfc3339")]
    time: SystemTime,
    prev_hash: String,
    event: AuditEvent,
}

/// Builds the stored value of a new record, and the record.
pub(super) fn seal(
    seq: u64,
    time: SystemTime,
    prev_hash: &str,
    event: &AuditEvent,
) -> (Vec<u8>, AuditRecord) {
    let body = serde_json::to_vec(&BodyOut {
        seq,
        time,
        prev_hash,
        event,
    })
    .expect("an audit record serializes");
    let hash: [u8; HASH_BYTES] = Sha256::digest(&body).into();
    let mut value = Vec::with_capacity(HASH_BYTES + body.len());
    value.extend_from_slice(&hash);
    value.extend_from_slice(&body);
    let record = AuditRecord {
        seq,
        time,
        event: event.clone(),
        prev_hash: prev_hash.to_owned(),
        hash: hex::encode(hash),
    };
    (value, record)
}

/// A stored record, read back and checked against its own hash.
pub(super) struct Opened {
    /// The record, with `hash` the stored hash.
    pub record: AuditRecord,
    /// Whether the body still hashes to the stored hash.
    pub hash_ok: bool,
}

/// Reads a stored value back; `Err` when it is not a record at all.
pub(super) fn open(value: &[u8]) -> Result<Opened, String> {
    if value.len() <= HASH_BYTES {
        return Err(format!("{} bytes, too short for a record", value.len()));
    }
    let (stored, body) = value.split_at(HASH_BYTES);
    let parsed: BodyIn = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let hash_ok = Sha256::digest(body).as_slice() == stored;
    Ok(Opened {
        record: AuditRecord {
            seq: parsed.seq,
            time: parsed.time,
            event: parsed.event,
            prev_hash: parsed.prev_hash,
            hash: hex::encode(stored),
        },
        hash_ok,
    })
}

/// The seq a key names, if it is one.
pub(super) fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// A record's time as stored: whole microseconds since the epoch (never before it), so that it survives
/// RFC 3339 and back unchanged.
pub(super) fn record_time(now: SystemTime) -> SystemTime {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_micros(since.as_micros() as u64)
}

fn is_hash(text: &str) -> bool {
    text.len() == 2 * HASH_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why a record cannot be removed by retention, or `None` when it can: it must be the next one after the
/// anchor, intact and linked to the anchor, so that pruning never launders tampering into the anchor.
pub(super) fn prunable_problem(
    anchor: &ChainLink,
    key_seq: u64,
    opened: &Result<Opened, String>,
) -> Option<String> {
    if key_seq != anchor.seq + 1 {
        return Some(format!(
            "record {} missing, the next is {key_seq}",
            anchor.seq + 1
        ));
    }
    match opened {
        Err(e) => Some(format!("record {key_seq} unreadable: {e}")),
        Ok(o) if o.record.seq != key_seq => {
            Some(format!("record {key_seq} holds seq {}", o.record.seq))
        }
        Ok(o) if !o.hash_ok => Some(format!("record {key_seq}: hash mismatch")),
        Ok(o) if o.record.prev_hash != anchor.hash => Some(format!(
            "record {key_seq}: prev_hash does not match the anchor"
        )),
        Ok(_) => None,
    }
}

/// The walk `verify` makes over the records in key order.
pub(super) struct Walker {
    anchor: ChainLink,
    /// The seq the next record should have.
    expected: u64,
    /// The hash the next record's `prev_hash` should be; `None` when unknown (after a gap or an
    /// unreadable record, already reported).
    prev_hash: Option<String>,
    /// The hash of the last record visited, if it was readable.
    last_hash: Option<String>,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    problems: Vec<String>,
    unlisted: usize,
}

impl Walker {
    pub fn new(anchor: ChainLink) -> Walker {
        Walker {
            expected: anchor.seq + 1,
            prev_hash: Some(anchor.hash.clone()),
            last_hash: None,
            anchor,
            records: 0,
            first_seq: None,
            last_seq: None,
            problems: Vec::new(),
            unlisted: 0,
        }
    }

    pub fn problem(&mut self, problem: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.unlisted += 1;
        }
    }

    /// Checks one stored record.
    pub fn visit(&mut self, key: &[u8], value: &[u8]) {
        let Some(seq) = seq_of(key) else {
            self.problem(format!(
                "a key of {} bytes, not a sequence number ({}): written out of band",
                key.len(),
                hex::encode(key)
            ));
            return;
        };
        if seq <= self.anchor.seq {
            self.problem(format!(
                "record {seq}: at or before the retention anchor (seq {}): inserted out of band",
                self.anchor.seq
            ));
            return;
        }
        self.records += 1;
        self.first_seq.get_or_insert(seq);
        self.last_seq = Some(seq);
        if seq > self.expected {
            let missing = if seq - 1 == self.expected {
                format!("record {} missing (removed)", self.expected)
            } else {
                format!("records {}..={} missing (removed)", self.expected, seq - 1)
            };
            let missing = if self.expected == self.anchor.seq + 1 && self.anchor.seq > 0 {
                format!(
                    "{missing}, or the retention anchor (seq {}) was altered",
                    self.anchor.seq
                )
            } else {
                missing
            };
            self.problem(format!("record {seq}: {missing}"));
            self.prev_hash = None;
        }
        self.expected = seq + 1;
        let opened = match open(value) {
            Ok(opened) => opened,
            Err(e) => {
                self.problem(format!("record {seq}: unreadable ({e}): edited"));
                self.prev_hash = None;
                self.last_hash = None;
                return;
            }
        };
        let record = opened.record;
        if record.seq != seq {
            self.problem(format!(
                "record {seq}: holds seq {} (moved or copied out of band)",
                record.seq
            ));
        }
        if !opened.hash_ok {
            self.problem(format!(
                "record {seq}: hash mismatch (the record was edited)"
            ));
        }
        if let Some(expected) = &self.prev_hash
            && record.prev_hash != *expected
        {
            let problem = if seq == self.anchor.seq + 1 && self.anchor.seq > 0 {
                format!(
                    "record {seq}: prev_hash does not match the retention anchor's hash \
                     (the anchor or this record was altered)"
                )
            } else if seq == self.anchor.seq + 1 {
                format!(
                    "record {seq}: prev_hash is not the genesis hash (edited, or records before \
                     it were pruned and the retention anchor removed)"
                )
            } else {
                format!(
                    "record {seq}: prev_hash does not match record {}'s hash (record {} was \
                     rewritten, or this one was replaced or inserted out of band)",
                    seq - 1,
                    seq - 1
                )
            };
            self.problem(problem);
        }
        self.prev_hash = Some(record.hash.clone());
        self.last_hash = Some(record.hash);
    }

    /// Compares the end of the walk with the head: `head` is `Ok(None)` when there is none,
    /// `at_head` the stored hash of the record at the head's seq, if there is one and it is readable.
    pub fn finish(
        &mut self,
        head: Result<Option<ChainLink>, String>,
        at_head: Option<String>,
    ) -> Vec<String> {
        let last = self.last_seq.unwrap_or(self.anchor.seq);
        match head {
            Err(e) => self.problem(format!("head unreadable ({e})")),
            Ok(None) => {
                if self.records > 0 || self.anchor.seq > 0 {
                    self.problem(format!(
                        "head missing, though the chain reaches seq {last}: removed out of band"
                    ));
                }
            }
            Ok(Some(head)) => {
                if head.seq < self.anchor.seq {
                    self.problem(format!(
                        "head (seq {}) is behind the retention anchor (seq {})",
                        head.seq, self.anchor.seq
                    ));
                } else if head.seq == self.anchor.seq && self.records == 0 {
                    if head.hash != self.anchor.hash {
                        self.problem(format!(
                            "head (seq {}) does not match the retention anchor's hash",
                            head.seq
                        ));
                    }
                } else if last < head.seq {
                    self.problem(format!(
                        "head is at seq {} but the last record is {last}: records {}..={} \
                         removed from the tail (truncated)",
                        head.seq,
                        last + 1,
                        head.seq
                    ));
                } else {
                    if last > head.seq {
                        self.problem(format!(
                            "records {}..={last} beyond the head (seq {}): appended out of band",
                            head.seq + 1,
                            head.seq
                        ));
                    }
                    let at_head = if last == head.seq {
                        self.last_hash.clone()
                    } else {
                        at_head
                    };
                    if at_head.as_deref().is_some_and(|hash| hash != head.hash) {
                        self.problem(format!(
                            "head does not match record {}'s hash (the record was rewritten, \
                             or the head)",
                            head.seq
                        ));
                    }
                }
            }
        }
        let mut problems = std::mem::take(&mut self.problems);
        if self.unlisted > 0 {
            problems.push(format!("… and {} more problems", self.unlisted));
        }
        problems
    }
}
