//! Flushes of the credential cache that reach every replica. An administrator's flush of a connector's
//! cached credentials is made here at once and written to the tree `cache-flushes` (the connector's id →
//! a fresh random generation). On PostgreSQL the write is announced (`NOTIFY`), and every replica, which
//! follows the announcements ([`Flushes::follow`]), flushes that connector in its own cache within
//! moments; a replica that lost the announcements for a while (its listening connection dropped) flushes
//! everything, since it cannot know what it missed. On sled there is one replica: the local flush is all.
//!
//! Other changes need no message: a cached hand-out is keyed by the connector's and account's stored
//! state, which every vend reads from the shared database, so an edit on one replica is a miss on all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::cache::CredentialCache;
use crate::store::db::postgres::Changes;
use crate::store::db::{Db, Tree};
use crate::store::{DbError, StoreError};

/// The tree of flush generations, by connector id.
pub const FLUSHES_TREE: &str = "cache-flushes";

/// The flushes, as written and as last seen by this replica.
pub struct Flushes {
    db: Db,
    tree: Tree,
    cache: Arc<CredentialCache>,
    /// Each connector's generation as this replica last acted on it.
    seen: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

impl Flushes {
    /// The flushes of `db`, acting on `cache`.
    pub fn open(db: &Db, cache: Arc<CredentialCache>) -> Result<Self, DbError> {
        if let Db::Postgres(pg) = db {
            pg.announce(FLUSHES_TREE);
        }
        let flushes = Flushes {
            db: db.clone(),
            tree: db.open_tree(FLUSHES_TREE)?,
            cache,
            seen: Mutex::default(),
        };
        // What was flushed before this replica started concerns nothing it holds.
        flushes.catch_up(false)?;
        Ok(flushes)
    }

    /// Flushes `connector`'s cached credentials here, and on every other replica; how many entries were
    /// dropped here.
    pub fn flush_connector(&self, connector: Uuid) -> Result<usize, StoreError> {
        let flushed = self.cache.flush_connector(connector);
        if let Db::Postgres(_) = self.db {
            let mut generation = [0u8; 16];
            getrandom::fill(&mut generation)
                .map_err(|e| StoreError::Io(format!("no randomness for a flush: {e}")))?;
            let key = connector.to_string().into_bytes();
            self.tree.insert(&key, generation)?;
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, generation.to_vec());
        }
        Ok(flushed)
    }

    /// Acts on the flushes written since last seen (with `apply`; without, only notes them).
    fn catch_up(&self, apply: bool) -> Result<usize, DbError> {
        let mut flushed = 0;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for entry in self.tree.iter() {
            let (key, generation) = entry?;
            if seen.get(key.as_ref()).map(Vec::as_slice) == Some(generation.as_ref()) {
                continue;
            }
            if apply
                && let Some(id) = std::str::from_utf8(&key)
                    .ok()
                    .and_then(|id| Uuid::try_parse(id).ok())
            {
                flushed += self.cache.flush_connector(id);
            }
            seen.insert(key.to_vec(), generation.to_vec());
        }
        Ok(flushed)
    }

    /// Follows the announcements of `changes` for as long as the returned task runs: each announced
    /// flush is made here; after a gap in listening, everything is flushed.
    pub async fn follow(self: Arc<Self>, changes: Arc<Changes>) {
        let mut last = changes.generation(FLUSHES_TREE);
        loop {
            let changed = changes.changed();
            let now = changes.generation(FLUSHES_TREE);
            if now != last {
                let reconnected = now.0 != last.0;
                last = now;
                let this = self.clone();
                let caught = tokio::task::spawn_blocking(move || {
                    if reconnected {
                        let flushed = this.cache.flush_all();
                        this.catch_up(false).map(|_| flushed)
                    } else {
                        this.catch_up(true)
                    }
                })
                .await;
                match caught {
                    Ok(Ok(0)) => {}
                    Ok(Ok(flushed)) => {
                        tracing::info!(flushed, "credential cache flushed as another replica asked")
                    }
                    Ok(Err(e)) => {
                        // Unread: flush everything rather than keep what was meant to go, and read
                        // them again in a moment.
                        tracing::warn!(error = %e, "cannot read the cache flushes; flushing all");
                        self.cache.flush_all();
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        last = (u64::MAX, u64::MAX);
                    }
                    Err(e) => tracing::warn!(error = %e, "the cache flush task failed"),
                }
                continue;
            }
            changed.await;
        }
    }
}
