//! The database all of idfed's state lives in: named trees of byte keys and values, with single-key
//! writes, compare-and-swap, ordered scans and transactions over several trees. Two engines:
//!
//! - **sled**, embedded under the data directory: the zero-setup default;
//! - **PostgreSQL** ([`postgres`]), shared by any number of replicas: one table of `(tree, key, value)`
//!   rows, transactions `SERIALIZABLE` (retried on a serialization failure, as sled retries a conflict).
//!
//! The stores above it (accounts and connectors, the audit log, sessions and lockouts, the plugins'
//! key-value store, approvals) are written once against [`Db`] and [`Tree`], so both engines keep the
//! same rules — the way Vault and OpenBao keep every engine on one storage interface.

pub mod postgres;

use std::ops::Bound;
use std::sync::Arc;

pub use sled::IVec;

/// A database: sled, or a PostgreSQL pool. Cheap to clone.
#[derive(Clone)]
pub enum Db {
    /// sled, embedded.
    Sled(sled::Db),
    /// PostgreSQL, shared.
    Postgres(Arc<postgres::Postgres>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Sled(_) => "Db::Sled",
            Db::Postgres(_) => "Db::Postgres",
        })
    }
}

/// Why the database failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached, or did not answer in time (PostgreSQL).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error, or the disk failed.
    #[error("the database failed: {0}")]
    Failed(String),
}

impl From<sled::Error> for DbError {
    fn from(e: sled::Error) -> Self {
        DbError::Failed(e.to_string())
    }
}

/// What a closure given to [`Db::transaction`] ends with, besides success.
#[derive(Debug)]
pub enum TxError<E> {
    /// The caller's error: the transaction is rolled back and `E` returned.
    Abort(E),
    /// Another writer got there first: the transaction is run again.
    Conflict,
    /// The database failed.
    Storage(DbError),
}

/// Why a transaction failed.
#[derive(Debug)]
pub enum TransactionError<E> {
    /// The closure's error.
    Abort(E),
    /// The database failed.
    Storage(DbError),
}

/// What an operation inside a transaction fails with.
#[derive(Debug)]
pub enum TxOpError {
    /// Another writer got there first (the transaction is run again).
    Conflict,
    /// The database failed.
    Storage(DbError),
}

impl<E> From<TxOpError> for TxError<E> {
    fn from(e: TxOpError) -> Self {
        match e {
            TxOpError::Conflict => TxError::Conflict,
            TxOpError::Storage(e) => TxError::Storage(e),
        }
    }
}

impl From<sled::transaction::UnabortableTransactionError> for TxOpError {
    fn from(e: sled::transaction::UnabortableTransactionError) -> Self {
        match e {
            sled::transaction::UnabortableTransactionError::Conflict => TxOpError::Conflict,
            sled::transaction::UnabortableTransactionError::Storage(e) => {
                TxOpError::Storage(e.into())
            }
        }
    }
}

/// A compare-and-swap found another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasFailed {
    /// What is stored now.
    pub current: Option<IVec>,
}

/// One entry of a scan.
pub type Entry = Result<(IVec, IVec), DbError>;

/// An ordered scan (in key order, or its reverse).
pub type Iter = Box<dyn Iterator<Item = Entry> + Send>;

impl Db {
    /// A sled database at `path`.
    pub fn sled(db: sled::Db) -> Self {
        Db::Sled(db)
    }

    /// The tree `name` (made on first write).
    pub fn open_tree(&self, name: &str) -> Result<Tree, DbError> {
        Ok(match self {
            Db::Sled(db) => Tree::Sled(db.open_tree(name)?),
            Db::Postgres(pg) => Tree::Postgres(pg.tree(name)),
        })
    }

    /// Makes every write durable (sled: a flush; PostgreSQL: commits already are).
    pub fn flush(&self) -> Result<(), DbError> {
        match self {
            Db::Sled(db) => {
                db.flush()?;
            }
            Db::Postgres(_) => {}
        }
        Ok(())
    }

    /// Whether the database answers now (for readiness).
    pub fn ping(&self) -> Result<(), DbError> {
        match self {
            Db::Sled(_) => Ok(()),
            Db::Postgres(pg) => pg.ping(),
        }
    }

    /// For a duty one replica at a time does (sweeping sessions, pruning the audit log): `Some` while
    /// held (sled: always), `None` when another replica holds it now.
    pub fn try_exclusive(&self, key: i64) -> Result<Option<Exclusive>, DbError> {
        match self {
            Db::Sled(_) => Ok(Some(Exclusive(None))),
            Db::Postgres(pg) => Ok(pg.try_advisory_lock(key)?.map(|lock| Exclusive(Some(lock)))),
        }
    }

    /// Which engine, for logs and readiness: `sled` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self {
            Db::Sled(_) => "sled",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Runs `work` over `trees` (all of this database) as one transaction: all its writes or none. `work`
    /// may run more than once (after a conflict), so it must do nothing but read and write the trees.
    pub fn transaction<const N: usize, R, E>(
        &self,
        trees: [&Tree; N],
        work: impl Fn(&[TxTree<'_>; N]) -> Result<R, TxError<E>>,
    ) -> Result<R, TransactionError<E>> {
        self.transaction_with(Isolation::Serializable, trees, work)
    }

    /// [`Db::transaction`] at an isolation of the caller's choice (PostgreSQL; sled's transactions are
    /// always serializable). [`Isolation::Locking`] is for work that locks what it reads
    /// ([`TxTree::get_for_update`]) and writes keys only it can write (under that lock): such
    /// transactions wait for one another instead of failing and running again.
    pub fn transaction_with<const N: usize, R, E>(
        &self,
        isolation: Isolation,
        trees: [&Tree; N],
        work: impl Fn(&[TxTree<'_>; N]) -> Result<R, TxError<E>>,
    ) -> Result<R, TransactionError<E>> {
        match self {
            Db::Sled(_) => {
                let sled_trees: Vec<&sled::Tree> = trees
                    .iter()
                    .map(|tree| match tree {
                        Tree::Sled(tree) => tree,
                        Tree::Postgres(_) => {
                            unreachable!("a PostgreSQL tree in a sled transaction")
                        }
                    })
                    .collect();
                use sled::Transactional;
                let result = sled_trees.as_slice().transaction(|view| {
                    let txs: [TxTree<'_>; N] = std::array::from_fn(|i| TxTree::Sled(&view[i]));
                    work(&txs).map_err(|e| match e {
                        TxError::Abort(e) => {
                            sled::transaction::ConflictableTransactionError::Abort(
                                TransactionError::Abort(e),
                            )
                        }
                        TxError::Conflict => {
                            sled::transaction::ConflictableTransactionError::Conflict
                        }
                        TxError::Storage(e) => {
                            sled::transaction::ConflictableTransactionError::Abort(
                                TransactionError::Storage(e),
                            )
                        }
                    })
                });
                result.map_err(|e| match e {
                    sled::transaction::TransactionError::Abort(e) => e,
                    sled::transaction::TransactionError::Storage(e) => {
                        TransactionError::Storage(e.into())
                    }
                })
            }
            Db::Postgres(pg) => {
                let names: [&str; N] = std::array::from_fn(|i| match trees[i] {
                    Tree::Postgres(tree) => tree.name(),
                    Tree::Sled(_) => unreachable!("a sled tree in a PostgreSQL transaction"),
                });
                pg.transaction(isolation, |tx| {
                    let txs: [TxTree<'_>; N] =
                        std::array::from_fn(|i| TxTree::Postgres(tx, names[i]));
                    work(&txs)
                })
            }
        }
    }
}

/// Held while a duty runs on this replica only ([`Db::try_exclusive`]).
pub struct Exclusive(#[allow(dead_code)] Option<postgres::AdvisoryLock>);

/// How a PostgreSQL transaction is isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// `SERIALIZABLE`: any transaction, run again after a serialization failure.
    Serializable,
    /// `READ COMMITTED` with row locks: see [`Db::transaction_with`].
    Locking,
}

/// One tree of a [`Db`]. Cheap to clone.
#[derive(Clone)]
pub enum Tree {
    /// A sled tree.
    Sled(sled::Tree),
    /// A tree of the PostgreSQL table.
    Postgres(postgres::PgTree),
}

impl Tree {
    /// The value under `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, DbError> {
        match self {
            Tree::Sled(tree) => Ok(tree.get(key)?),
            Tree::Postgres(tree) => tree.get(key.as_ref()),
        }
    }

    /// Whether there is a value under `key`.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, DbError> {
        match self {
            Tree::Sled(tree) => Ok(tree.contains_key(key)?),
            Tree::Postgres(tree) => Ok(tree.get(key.as_ref())?.is_some()),
        }
    }

    /// Stores `value` under `key`.
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), DbError> {
        match self {
            Tree::Sled(tree) => {
                tree.insert(key.as_ref(), value.as_ref())?;
            }
            Tree::Postgres(tree) => tree.insert(key.as_ref(), value.as_ref())?,
        }
        Ok(())
    }

    /// Removes `key`, returning what it held.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, DbError> {
        match self {
            Tree::Sled(tree) => Ok(tree.remove(key)?),
            Tree::Postgres(tree) => tree.remove(key.as_ref()),
        }
    }

    /// Replaces `old` (`None`: absent) under `key` by `new` (`None`: removes it), if `old` is what is
    /// stored; else reports what is.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<impl AsRef<[u8]>>,
        new: Option<impl AsRef<[u8]>>,
    ) -> Result<Result<(), CasFailed>, DbError> {
        let (old, new) = (
            old.as_ref().map(AsRef::as_ref),
            new.as_ref().map(AsRef::as_ref),
        );
        match self {
            Tree::Sled(tree) => Ok(tree
                .compare_and_swap(key, old, new)?
                .map_err(|e| CasFailed { current: e.current })),
            Tree::Postgres(tree) => tree.compare_and_swap(key.as_ref(), old, new),
        }
    }

    /// Sets `key` to `update(current)` (`None`: removes it), atomically, and returns the new value.
    /// `update` may run more than once.
    pub fn update_and_fetch(
        &self,
        key: impl AsRef<[u8]>,
        mut update: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<IVec>, DbError> {
        let key = key.as_ref();
        match self {
            Tree::Sled(tree) => Ok(tree.update_and_fetch(key, update)?),
            Tree::Postgres(tree) => {
                let mut current = tree.fetch(key)?;
                loop {
                    let new = update(current.as_deref());
                    match self.compare_and_swap(key, current.as_deref(), new.as_deref())? {
                        Ok(()) => return Ok(new.map(IVec::from)),
                        Err(e) => current = e.current,
                    }
                }
            }
        }
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> Iter {
        self.range_from(Bound::Unbounded)
    }

    /// Every entry, in reverse key order.
    pub fn iter_rev(&self) -> Iter {
        match self {
            Tree::Sled(tree) => Box::new(tree.iter().rev().map(|e| e.map_err(DbError::from))),
            Tree::Postgres(tree) => Box::new(tree.scan(Bound::Unbounded, None, true)),
        }
    }

    /// The entries from `start` on, in key order.
    pub fn range_from(&self, start: Bound<&[u8]>) -> Iter {
        match self {
            Tree::Sled(tree) => {
                let start = start.map(IVec::from);
                Box::new(
                    tree.range::<IVec, _>((start, Bound::Unbounded))
                        .map(|e| e.map_err(DbError::from)),
                )
            }
            Tree::Postgres(tree) => Box::new(tree.scan(start, None, false)),
        }
    }

    /// The entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        let prefix = prefix.as_ref();
        match self {
            Tree::Sled(tree) => {
                Box::new(tree.scan_prefix(prefix).map(|e| e.map_err(DbError::from)))
            }
            Tree::Postgres(tree) => {
                Box::new(tree.scan(Bound::Included(prefix), Some(prefix.to_vec()), false))
            }
        }
    }

    /// How many entries there are.
    pub fn len(&self) -> Result<usize, DbError> {
        match self {
            Tree::Sled(tree) => Ok(tree.len()),
            Tree::Postgres(tree) => tree.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> Result<bool, DbError> {
        match self {
            Tree::Sled(tree) => Ok(tree.is_empty()),
            Tree::Postgres(tree) => Ok(tree.len()? == 0),
        }
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), DbError> {
        match self {
            Tree::Sled(tree) => Ok(tree.clear()?),
            Tree::Postgres(tree) => tree.clear(),
        }
    }

    /// Makes this tree's writes durable (sled: a flush; PostgreSQL: commits already are).
    pub fn flush(&self) -> Result<(), DbError> {
        match self {
            Tree::Sled(tree) => {
                tree.flush()?;
            }
            Tree::Postgres(_) => {}
        }
        Ok(())
    }
}

/// A tree inside a transaction.
pub enum TxTree<'a> {
    /// sled's view of a tree in a transaction.
    Sled(&'a sled::transaction::TransactionalTree),
    /// A tree in a PostgreSQL transaction.
    Postgres(&'a postgres::PgTx<'a>, &'a str),
}

impl TxTree<'_> {
    /// The value under `key`, as this transaction sees it.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, TxOpError> {
        match self {
            TxTree::Sled(tree) => Ok(tree.get(key)?),
            TxTree::Postgres(tx, tree) => tx.get(tree, key.as_ref()),
        }
    }

    /// Stores `value` under `key`.
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), TxOpError> {
        match self {
            TxTree::Sled(tree) => {
                tree.insert(key.as_ref(), value.as_ref())?;
                Ok(())
            }
            TxTree::Postgres(tx, tree) => tx.insert(tree, key.as_ref(), value.as_ref()),
        }
    }

    /// Removes `key`, returning what it held.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, TxOpError> {
        match self {
            TxTree::Sled(tree) => Ok(tree.remove(key.as_ref())?),
            TxTree::Postgres(tx, tree) => tx.remove(tree, key.as_ref()),
        }
    }

    /// The value under `key`, locked until the transaction ends (PostgreSQL: `FOR UPDATE`; another
    /// transaction locking it waits, then reads what this one committed).
    pub fn get_for_update(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, TxOpError> {
        match self {
            TxTree::Sled(tree) => Ok(tree.get(key)?),
            TxTree::Postgres(tx, tree) => tx.get_for_update(tree, key.as_ref()),
        }
    }

    /// Makes the next statement the transaction's last, committed with it in one round trip
    /// (PostgreSQL; nothing to do on sled). Nothing may follow that statement in the transaction.
    pub fn commit_with_next(&self) {
        if let TxTree::Postgres(tx, _) = self {
            tx.commit_with_next();
        }
    }

    /// Stores the entries if every key is new and then, with `then_set`, sets one key of another tree,
    /// all in one round trip: how many entries were stored. If a key exists, nothing is written and 0
    /// is returned; on PostgreSQL the transaction has then failed, so only give it up (abort or
    /// [`TxError::Conflict`]) after that.
    pub fn insert_new(
        &self,
        entries: &[(Vec<u8>, Vec<u8>)],
        then_set: Option<(&TxTree<'_>, &[u8], &[u8])>,
    ) -> Result<usize, TxOpError> {
        match self {
            TxTree::Sled(tree) => {
                for (key, _) in entries {
                    if tree.get(key)?.is_some() {
                        return Ok(0);
                    }
                }
                for (key, value) in entries {
                    tree.insert(key.as_slice(), value.as_slice())?;
                }
                if let Some((other, key, value)) = then_set {
                    other.insert(key, value)?;
                }
                Ok(entries.len())
            }
            TxTree::Postgres(tx, tree) => {
                let then_set = match then_set {
                    None => None,
                    Some((TxTree::Postgres(_, other), key, value)) => Some((*other, key, value)),
                    Some((TxTree::Sled(_), ..)) => {
                        unreachable!("a sled tree in a PostgreSQL transaction")
                    }
                };
                tx.insert_new(tree, entries, then_set)
            }
        }
    }
}
