//! The key-value store plugins import (`idfed:policy/kv`): one sled tree, each binding's keys under its
//! own prefix so that no binding can reach another's, with quotas checked by the host.
//!
//! A stored value is `expiry (u64 big-endian milliseconds since the epoch, 0 = none) ++ bytes`; counters
//! keep their `i64` as 8 big-endian bytes. Expired keys read as absent and are removed when met.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// How many live keys one binding may hold.
pub const MAX_KEYS_PER_BINDING: usize = 4096;
/// How many writes (`set`, `delete`, `increment`) one evaluation may make.
pub const MAX_WRITES_PER_CALL: u32 = 32;

const HEADER: usize = 8;

/// Why a store operation failed; mirrors the WIT `kv-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// Empty or over [`MAX_KEY_BYTES`].
    #[error("invalid key")]
    InvalidKey,
    /// Over [`MAX_VALUE_BYTES`].
    #[error("value too large")]
    ValueTooLarge,
    /// Too many keys, or too many writes in one call.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// `increment` on a value that is not a counter.
    #[error("not a counter")]
    NotACounter,
    /// sled failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::store::DbError> for KvError {
    fn from(e: crate::store::DbError) -> Self {
        KvError::Unavailable(e.to_string())
    }
}

/// The plugin key-value store: one sled tree shared by every binding.
#[derive(Clone)]
pub struct KvStore {
    tree: crate::store::db::Tree,
    /// Live-key counts per binding, counted from the tree on first use and kept up to date after.
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl KvStore {
    /// A store over `tree` (e.g. `db.open_tree("plugin-kv")`).
    pub fn new(tree: crate::store::db::Tree) -> Self {
        KvStore {
            tree,
            counts: Arc::default(),
        }
    }

    /// The view of one binding, with a fresh per-call write budget.
    pub fn binding(&self, binding_id: &str) -> BindingKv {
        BindingKv {
            store: self.clone(),
            prefix: prefix(binding_id),
            binding_id: binding_id.to_owned(),
            writes: 0,
        }
    }

    /// Flushes written state to disk.
    pub fn flush(&self) -> Result<(), KvError> {
        self.tree.flush()?;
        Ok(())
    }

    /// Removes every key of a binding (when the binding is deleted).
    pub fn remove_binding(&self, binding_id: &str) -> Result<(), KvError> {
        let prefix = prefix(binding_id);
        for entry in self.tree.scan_prefix(&prefix) {
            self.tree.remove(entry?.0)?;
        }
        self.counts.lock().unwrap().remove(binding_id);
        Ok(())
    }

    fn adjust_count(&self, binding_id: &str, prefix: &[u8], delta: isize) -> Result<(), KvError> {
        let mut counts = self.counts.lock().unwrap();
        let count = self.count_entry(&mut counts, binding_id, prefix)?;
        *count = count.saturating_add_signed(delta);
        Ok(())
    }

    fn count_entry<'a>(
        &self,
        counts: &'a mut HashMap<String, usize>,
        binding_id: &str,
        prefix: &[u8],
    ) -> Result<&'a mut usize, KvError> {
        if !counts.contains_key(binding_id) {
            let now = now_millis();
            let mut live = 0;
            for entry in self.tree.scan_prefix(prefix) {
                if !expired(&entry?.1, now) {
                    live += 1;
                }
            }
            counts.insert(binding_id.to_owned(), live);
        }
        Ok(counts.get_mut(binding_id).expect("inserted above"))
    }
}

/// One binding's view of the store during one evaluation.
pub struct BindingKv {
    store: KvStore,
    prefix: Vec<u8>,
    binding_id: String,
    writes: u32,
}

impl BindingKv {
    /// Reads a key; `None` when absent or expired.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let full = self.key(key)?;
        match self.store.tree.get(&full)? {
            Some(stored) if expired(&stored, now_millis()) => {
                // Expired: drop it now rather than let dead keys count against the quota.
                if self
                    .store
                    .tree
                    .compare_and_swap(&full, Some(stored), None::<&[u8]>)?
                    .is_ok()
                {
                    self.store
                        .adjust_count(&self.binding_id, &self.prefix, -1)?;
                }
                Ok(None)
            }
            Some(stored) => Ok(Some(stored[HEADER..].to_vec())),
            None => Ok(None),
        }
    }

    /// Writes a key, with an optional time to live.
    pub fn set(&mut self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        let full = self.key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::ValueTooLarge);
        }
        self.spend_write()?;
        let was_live = self.live(&full)?;
        if !was_live {
            self.reserve_new_key()?;
        }
        let mut stored = Vec::with_capacity(HEADER + value.len());
        stored.extend_from_slice(&expiry_after(ttl).to_be_bytes());
        stored.extend_from_slice(value);
        if let Err(e) = self.store.tree.insert(full, stored) {
            if !was_live {
                self.store
                    .adjust_count(&self.binding_id, &self.prefix, -1)?;
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Removes a key.
    pub fn delete(&mut self, key: &str) -> Result<(), KvError> {
        let full = self.key(key)?;
        self.spend_write()?;
        if let Some(old) = self.store.tree.remove(full)?
            && !expired(&old, now_millis())
        {
            self.store
                .adjust_count(&self.binding_id, &self.prefix, -1)?;
        }
        Ok(())
    }

    /// Adds `delta` to a counter atomically; an absent or expired key starts at 0 and takes `ttl`.
    pub fn increment(
        &mut self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, KvError> {
        let full = self.key(key)?;
        self.spend_write()?;
        let now = now_millis();
        let was_live = self.live(&full)?;
        if !was_live {
            self.reserve_new_key()?;
        }
        let mut failure = None;
        let mut result = 0;
        let update = self.store.tree.update_and_fetch(&full, |old| {
            failure = None;
            let (expiry, current) = match old {
                Some(stored) if !expired(stored, now) => {
                    let Ok(counter) = <[u8; 8]>::try_from(&stored[HEADER..]) else {
                        failure = Some(KvError::NotACounter);
                        return Some(stored.to_vec());
                    };
                    (
                        u64::from_be_bytes(stored[..HEADER].try_into().unwrap()),
                        i64::from_be_bytes(counter),
                    )
                }
                _ => (expiry_after(ttl), 0),
            };
            result = current.saturating_add(delta);
            let mut stored = Vec::with_capacity(HEADER + 8);
            stored.extend_from_slice(&expiry.to_be_bytes());
            stored.extend_from_slice(&result.to_be_bytes());
            Some(stored)
        });
        if let Err(e) = update {
            if !was_live {
                self.store
                    .adjust_count(&self.binding_id, &self.prefix, -1)?;
            }
            return Err(e.into());
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(result),
        }
    }

    fn key(&self, key: &str) -> Result<Vec<u8>, KvError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(KvError::InvalidKey);
        }
        let mut full = self.prefix.clone();
        full.extend_from_slice(key.as_bytes());
        Ok(full)
    }

    fn spend_write(&mut self) -> Result<(), KvError> {
        if self.writes >= MAX_WRITES_PER_CALL {
            return Err(KvError::QuotaExceeded);
        }
        self.writes += 1;
        Ok(())
    }

    fn live(&self, full: &[u8]) -> Result<bool, KvError> {
        Ok(self
            .store
            .tree
            .get(full)?
            .is_some_and(|stored| !expired(&stored, now_millis())))
    }

    fn reserve_new_key(&self) -> Result<(), KvError> {
        let mut counts = self.store.counts.lock().unwrap();
        let count = self
            .store
            .count_entry(&mut counts, &self.binding_id, &self.prefix)?;
        if *count >= MAX_KEYS_PER_BINDING {
            return Err(KvError::QuotaExceeded);
        }
        *count += 1;
        Ok(())
    }
}

/// `len(binding id) as u16 ++ binding id`: no binding's prefix is a prefix of another's.
fn prefix(binding_id: &str) -> Vec<u8> {
    let len = u16::try_from(binding_id.len()).expect("binding ids are short");
    let mut prefix = len.to_be_bytes().to_vec();
    prefix.extend_from_slice(binding_id.as_bytes());
    prefix
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn expiry_after(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| {
        now_millis().saturating_add(ttl.as_millis() as u64).max(1)
    })
}

fn expired(stored: &[u8], now: u64) -> bool {
    let Some(header) = stored.get(..HEADER) else {
        return true;
    };
    let expiry = u64::from_be_bytes(header.try_into().unwrap());
    expiry != 0 && expiry <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, KvStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
        (dir, KvStore::new(db.open_tree("kv").unwrap()))
    }

    #[test]
    fn set_get_delete() {
        let (_dir, kv) = store();
        let mut b = kv.binding("b1");
        assert_eq!(b.get("k").unwrap(), None);
        b.set("k", b"v", None).unwrap();
        assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        b.delete("k").unwrap();
        assert_eq!(b.get("k").unwrap(), None);
        b.delete("k").unwrap();
    }

    #[test]
    fn bindings_do_not_see_each_other_even_with_crafted_ids() {
        let (_dir, kv) = store();
        kv.binding("ab").set("c", b"1", None).unwrap();
        assert_eq!(kv.binding("a").get("bc").unwrap(), None);
        assert_eq!(kv.binding("abc").get("c").unwrap(), None);
        assert_eq!(
            kv.binding("ab").get("c").unwrap().as_deref(),
            Some(&b"1"[..])
        );
    }

    #[test]
    fn expired_keys_read_as_absent_and_free_their_quota() {
        let (_dir, kv) = store();
        let mut b = kv.binding("b");
        b.set("k", b"v", Some(Duration::from_millis(1))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(b.get("k").unwrap(), None);
        assert_eq!(*kv.counts.lock().unwrap().get("b").unwrap(), 0);
    }

    #[test]
    fn increment_counts_atomically_keeps_the_window_and_refuses_non_counters() {
        let (_dir, kv) = store();
        let mut b = kv.binding("b");
        assert_eq!(
            b.increment("n", 1, Some(Duration::from_secs(60))).unwrap(),
            1
        );
        assert_eq!(
            b.increment("n", 5, Some(Duration::from_secs(1))).unwrap(),
            6
        );
        assert_eq!(b.increment("n", -10, None).unwrap(), -4);
        b.set("s", b"text", None).unwrap();
        assert_eq!(b.increment("s", 1, None), Err(KvError::NotACounter));
        assert_eq!(b.get("s").unwrap().as_deref(), Some(&b"text"[..]));
        // The first TTL (60 s) still holds: the shorter one given later did not replace it.
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(kv.binding("b").increment("n", 1, None).unwrap(), -3);
    }

    #[test]
    fn increment_after_expiry_starts_again_from_zero() {
        let (_dir, kv) = store();
        let mut b = kv.binding("b");
        b.increment("n", 7, Some(Duration::from_millis(1))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(b.increment("n", 1, None).unwrap(), 1);
    }

    #[test]
    fn limits_on_keys_values_and_writes() {
        let (_dir, kv) = store();
        let mut b = kv.binding("b");
        assert_eq!(b.set("", b"v", None), Err(KvError::InvalidKey));
        assert_eq!(
            b.get(&"k".repeat(MAX_KEY_BYTES + 1)),
            Err(KvError::InvalidKey)
        );
        assert_eq!(
            b.set("k", &vec![0; MAX_VALUE_BYTES + 1], None),
            Err(KvError::ValueTooLarge)
        );
        for i in 0..MAX_WRITES_PER_CALL {
            b.set(&format!("k{i}"), b"v", None).unwrap();
        }
        assert_eq!(b.set("one-more", b"v", None), Err(KvError::QuotaExceeded));
        // A new call has a new budget.
        kv.binding("b").set("one-more", b"v", None).unwrap();
    }

    #[test]
    fn a_binding_cannot_hold_more_than_its_key_quota() {
        let (_dir, kv) = store();
        for i in 0..MAX_KEYS_PER_BINDING {
            kv.binding("b").set(&format!("k{i}"), b"", None).unwrap();
        }
        assert_eq!(
            kv.binding("b").set("another", b"", None),
            Err(KvError::QuotaExceeded)
        );
        assert_eq!(
            kv.binding("b").increment("another", 1, None),
            Err(KvError::QuotaExceeded)
        );
        // Overwriting an existing key is fine, and deleting frees room.
        kv.binding("b").set("k0", b"new", None).unwrap();
        kv.binding("b").delete("k1").unwrap();
        kv.binding("b").set("another", b"", None).unwrap();
        // Other bindings have their own quota.
        kv.binding("c").set("k", b"", None).unwrap();
    }

    #[test]
    fn state_survives_reopening_and_quota_is_recounted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
            let kv = KvStore::new(db.open_tree("kv").unwrap());
            kv.binding("b").increment("n", 3, None).unwrap();
            kv.flush().unwrap();
        }
        let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
        let kv = KvStore::new(db.open_tree("kv").unwrap());
        assert_eq!(kv.binding("b").increment("n", 1, None).unwrap(), 4);
        kv.binding("b").set("m", b"", None).unwrap();
        assert_eq!(
            *kv.counts.lock().unwrap().get("b").unwrap(),
            2,
            "counted from disk, then one added"
        );
        kv.remove_binding("b").unwrap();
        assert_eq!(kv.binding("b").get("n").unwrap(), None);
    }
}
