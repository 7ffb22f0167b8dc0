//! [`DataStore`]: the [`Store`] in a [`Db`] (sled or PostgreSQL), records as JSON.
//!
//! Trees: `meta` (`schema_version`), `accounts` (by name), `connectors` (by id) with the
//! `connector-names` index (name → id, changed in the same transaction as the connector), `api-keys`
//! (by id), `plugins` (metadata, by digest). The components themselves are files,
//! `plugins/<digest>.wasm` in the data dir, with sled; rows of the tree `plugin-components` with
//! PostgreSQL, so that every replica finds them.
//!
//! Writes are serialised by one mutex (they are rare: administrators' changes) and, on PostgreSQL, by
//! an advisory lock across replicas, which makes the checks that span trees (an account still in use, a
//! plugin still bound) exact; what must change together is changed in one transaction. Every write is
//! durable before it returns.
//!
//! # Master key rotation, and why a crash cannot lose a secret
//!
//! Every [`SealedSecret`](crate::model::SealedSecret) carries the id of the key that sealed it, so a
//! keyring holding two keys opens records sealed under either. A rotation (with a key file `K`):
//!
//! 1. opens every secret with the current keyring (if any does not open, nothing is changed);
//! 2. writes the new key to `K.new` (through `K.new.tmp` and a rename, file and directory synced: so
//!    `K.new` is absent or whole, never torn);
//! 3. re-seals every secret under the new key and writes them all in **one** sled transaction;
//! 4. flushes sled (now the records on disk are all under the new key);
//! 5. renames `K.new` over `K` and syncs the directory.
//!
//! A crash before 2 completes leaves the old key and old records (a stray `K.new.tmp` is removed on the
//! next start). A crash anywhere from 2 to 5 leaves `K` (old key) and `K.new` (new key), and records all
//! under the old key or all under the new one (the transaction is atomic): on the next [`DataStore::open`],
//! the keyring holds both, so every record opens, and the interrupted rotation is completed (every secret
//! re-sealed under `K.new`'s key, flushed, then the rename). After 5 there is nothing left to do.
//!
//! With [`KeySource::Env`] there is no file to write: steps 2 and 5 are skipped. Whoever rotates holds
//! the new key (export it with [`MasterKey::to_base64`] *before* calling `rotate_master_key`) and must set
//! `IDFED_MASTER_KEY` to it before the next start; started with the old key, `open` refuses with an error
//! naming the key id the records need.
//!
//! A limit: sled is log-structured, so the ciphertexts sealed under the old key may stay in its
//! segment files until they are rewritten. Rotation protects against a key that is *going to* leak
//! (or a routine change), not fully against one that leaked together with a copy of the data directory.

use std::collections::{BTreeMap, HashSet};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cap_std::fs::Dir;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::db::{Db, Tree, TxError, TxTree};
use super::decoded::Decoded;
use super::seal::{
    self, KeySource, Keyring, MasterKey, account_secret_aad, commit_pending_key,
    create_private_dir_all, read_pending_key, write_pending_key,
};
use super::{PluginInfo, Store, StoreError, check_digest, check_name};
use crate::audit::{AuditEvent, AuditLog};
use crate::model::{
    Account, AccountCredentials, AccountInput, AccountSource, AccountSourceInput, ApiKey,
    Connector, ConnectorId,
};
use crate::secret::Secret;

/// The schema this build writes; `open` migrates older databases forward to it.
pub const SCHEMA_VERSION: u32 = 1;

const META: &str = "meta";
const ACCOUNTS: &str = "accounts";
const CONNECTORS: &str = "connectors";
const CONNECTOR_NAMES: &str = "connector-names";
const API_KEYS: &str = "api-keys";
const PLUGINS: &str = "plugins";
const SCHEMA_KEY: &[u8] = b"schema_version";
const PLUGIN_DIR: &str = "plugins";

/// API keys: `idfed_<id as 32 hex>_<43 characters: base64url of 32 random bytes>`.
const API_KEY_PREFIX: &str = "idfed_";
const API_KEY_ID_LEN: usize = 32;
const API_KEY_SECRET_LEN: usize = 43;
/// `last_used` is written at most this often per key.
const LAST_USED_GRANULARITY: Duration = Duration::from_secs(60);

/// A migration takes the database from one version to the next. It must be idempotent: a crash after
/// it ran but before the new version was recorded runs it again.
type Migration = fn(&Trees, &Components) -> Result<(), StoreError>;

/// `MIGRATIONS[v]` takes a database from version `v` to `v + 1`.
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [migrate_v0_to_v1];

/// The tree of plugin components (PostgreSQL), by digest.
pub(crate) const PLUGIN_COMPONENTS: &str = "plugin-components";
/// The advisory lock that serialises administrators' writes across replicas (PostgreSQL).
const WRITER_LOCK: i64 = 0x6964_6665_6457;

struct Trees {
    meta: Tree,
    accounts: Tree,
    connectors: Tree,
    connector_names: Tree,
    api_keys: Tree,
    plugins: Tree,
}

/// Where plugin components are kept: files beside sled, rows in PostgreSQL.
enum Components {
    Files(Dir),
    Rows(Tree),
}

/// The store, in a [`Db`].
pub struct DataStore {
    db: Db,
    dir: Dir,
    components: Components,
    trees: Trees,
    key_source: KeySource,
    keyring: RwLock<Keyring>,
    /// Serialises writes (not `last_used` updates, which compare-and-swap).
    writer: Mutex<()>,
    /// The audit log's trees, for changes committed with their audit record ([`DataStore::audited`]).
    audit_records: Tree,
    audit_meta: Tree,
    /// Connectors and accounts as last decoded, read on every vend.
    decoded_connectors: Decoded<Connector>,
    decoded_accounts: Decoded<Account>,
}

/// The store's trees inside one write's transaction.
struct Tx<'a> {
    accounts: &'a TxTree<'a>,
    connectors: &'a TxTree<'a>,
    names: &'a TxTree<'a>,
    api_keys: &'a TxTree<'a>,
    plugins: &'a TxTree<'a>,
}

type TxResult<T> = Result<T, TxError<StoreError>>;

/// Ends a transaction with `e`.
fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(TxError::Abort(e))
}

/// Held by a write: the process's mutex and, on PostgreSQL, the replicas' advisory lock, with reads
/// made fresh from the database (not this replica's cache) while it is held.
struct WriteGuard<'a> {
    _fresh: super::db::postgres::FreshReads,
    _local: MutexGuard<'a, ()>,
    _shared: Option<super::db::postgres::AdvisoryLock>,
}

impl std::fmt::Debug for DataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataStore")
            .field("key_source", &self.key_source)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl DataStore {
    /// Opens (creating if need be) the store in `data_dir`: sled in `<data_dir>/db`, plugin components
    /// in `<data_dir>/plugins/`. Migrates an older database forward, refuses a newer one, loads the
    /// master key (creating a key file if there is none), completes an interrupted key rotation, and
    /// refuses a key that does not open the stored secrets.
    pub fn open(data_dir: &Path, key_source: KeySource) -> Result<DataStore, StoreError> {
        create_private_dir_all(data_dir)?;
        let db_path = data_dir.join("db");
        let db = open_db(&db_path).map_err(|e| {
            StoreError::Io(format!(
                "cannot open the database {}: {e}",
                db_path.display()
            ))
        })?;
        let dir = Dir::open_ambient_dir(data_dir, cap_std::ambient_authority())
            .map_err(|e| io_error("cannot open the data directory", data_dir, &e))?;
        let plugin_dir = dir
            .create_dir_all(PLUGIN_DIR)
            .and_then(|()| dir.open_dir(PLUGIN_DIR))
            .map_err(|e| io_error("cannot open", &data_dir.join(PLUGIN_DIR), &e))?;
        let where_ = db_path.display().to_string();
        Self::open_in(
            Db::Sled(db),
            dir,
            Components::Files(plugin_dir),
            key_source,
            &where_,
        )
    }

    /// Opens the store in a PostgreSQL database `pg` (plugin components in it too); `data_dir` holds
    /// only the master key file, if the key comes from one. Every replica must be given the same master
    /// key.
    pub fn open_postgres(
        pg: std::sync::Arc<super::db::postgres::Postgres>,
        data_dir: &Path,
        key_source: KeySource,
    ) -> Result<DataStore, StoreError> {
        create_private_dir_all(data_dir)?;
        let dir = Dir::open_ambient_dir(data_dir, cap_std::ambient_authority())
            .map_err(|e| io_error("cannot open the data directory", data_dir, &e))?;
        // What every request reads and few change, from memory while no change is announced.
        for tree in [ACCOUNTS, CONNECTORS, CONNECTOR_NAMES, API_KEYS, PLUGINS] {
            pg.cache_tree(tree);
        }
        let db = Db::Postgres(pg);
        let components = Components::Rows(db.open_tree(PLUGIN_COMPONENTS)?);
        Self::open_in(db, dir, components, key_source, "the PostgreSQL database")
    }

    fn open_in(
        db: Db,
        dir: Dir,
        components: Components,
        key_source: KeySource,
        where_: &str,
    ) -> Result<DataStore, StoreError> {
        let trees = Trees {
            meta: db.open_tree(META)?,
            accounts: db.open_tree(ACCOUNTS)?,
            connectors: db.open_tree(CONNECTORS)?,
            connector_names: db.open_tree(CONNECTOR_NAMES)?,
            api_keys: db.open_tree(API_KEYS)?,
            plugins: db.open_tree(PLUGINS)?,
        };
        migrate(&db, &trees, &components, where_)?;

        let current = MasterKey::load_or_create(&key_source)?;
        let pending = match &key_source {
            KeySource::File(path) => read_pending_key(path)?,
            KeySource::Env(_) => None,
        };
        let mut keyring = Keyring::new(current);
        if let Some(pending) = &pending {
            keyring = keyring.with_key(pending.duplicate());
        }
        let store = DataStore {
            audit_records: db.open_tree(crate::audit::RECORDS_TREE)?,
            audit_meta: db.open_tree(crate::audit::META_TREE)?,
            decoded_connectors: Decoded::default(),
            decoded_accounts: Decoded::default(),
            db,
            dir,
            components,
            trees,
            key_source,
            keyring: RwLock::new(keyring),
            writer: Mutex::new(()),
        };
        store.check_keys()?;
        if let Some(pending) = pending {
            tracing::warn!(
                key_id = %pending.fingerprint(),
                "completing an interrupted master key rotation"
            );
            let _writer = store.write_lock()?;
            let count = store.reseal_all(pending, true)?;
            tracing::info!(
                secrets = count,
                key_id = %store.key_id(),
                "master key rotation completed"
            );
        }
        Ok(store)
    }

    /// The database, shared with the audit log and the plugins' key-value store (their own trees).
    /// Its `ping` is the readiness probe.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Dir {
        &self.dir
    }

    /// The id (fingerprint) of the master key that seals.
    pub fn key_id(&self) -> String {
        self.keys().current_id()
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> Result<WriteGuard<'_>, StoreError> {
        let local = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let shared = match &self.db {
            Db::Sled(_) => None,
            Db::Postgres(pg) => Some(pg.advisory_lock(WRITER_LOCK)?),
        };
        Ok(WriteGuard {
            _fresh: super::db::postgres::fresh_reads(),
            _local: local,
            _shared: shared,
        })
    }

    fn durable(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The writes of an administrator's change, each committed in one transaction with `event`'s record
    /// in `log` (which must be this database's): both are stored, or neither (an audit log that cannot be
    /// written refuses the change).
    pub fn audited<'a>(&'a self, log: &'a AuditLog, event: AuditEvent) -> Audited<'a> {
        Audited {
            store: self,
            log,
            event,
        }
    }

    /// Runs `work` in one transaction over the store's trees (and, with `audit`, appends its record in
    /// the same transaction), then makes it durable.
    fn commit<R>(
        &self,
        audit: Option<(&AuditLog, &AuditEvent)>,
        work: impl Fn(&Tx<'_>) -> TxResult<R>,
    ) -> Result<R, StoreError> {
        let time = SystemTime::now();
        // The log's own appends are held off, so the record's seq is the next one.
        let _appends = audit
            .map(|(log, _)| log.lock_appends())
            .transpose()
            .map_err(|e| StoreError::Io(format!("audit log: {e}")))?;
        let appended = std::cell::Cell::new(None);
        let t = &self.trees;
        let result =
            self.db
                .transaction(
                    [
                        &t.accounts,
                        &t.connectors,
                        &t.connector_names,
                        &t.api_keys,
                        &t.plugins,
                        &self.audit_records,
                        &self.audit_meta,
                    ],
                    |[
                        accounts,
                        connectors,
                        names,
                        api_keys,
                        plugins,
                        records,
                        meta,
                    ]| {
                        let result = work(&Tx {
                            accounts,
                            connectors,
                            names,
                            api_keys,
                            plugins,
                        })?;
                        if let Some((_, event)) = audit {
                            let record = crate::audit::append_in(records, meta, event, time)
                                .map_err(|e| match e {
                                    TxError::Abort(e) => TxError::Abort(StoreError::Io(format!(
                                        "the change could not be audited, so it was not made: {e}"
                                    ))),
                                    TxError::Storage(e) => TxError::Storage(e),
                                    TxError::Conflict => TxError::Conflict,
                                })?;
                            appended.set(Some(record.seq));
                        }
                        Ok(result)
                    },
                )
                .map_err(StoreError::from)?;
        if let (Some((log, _)), Some(seq)) = (audit, appended.get()) {
            log.appended_through(seq);
        }
        self.durable()?;
        Ok(result)
    }

    /// Refuses a keyring that cannot open every stored secret: most likely the wrong key was given, and
    /// going on would mix secrets sealed under two keys.
    fn check_keys(&self) -> Result<(), StoreError> {
        let keys = self.keys();
        let mut missing = BTreeMap::<String, usize>::new();
        for account in self.accounts()? {
            if let AccountSource::IamUser {
                secret_access_key, ..
            } = &account.source
                && !keys.has_key(&secret_access_key.key_id)
            {
                *missing.entry(secret_access_key.key_id.clone()).or_default() += 1;
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let needed: Vec<String> = missing
            .iter()
            .map(|(id, n)| format!("{n} under key {id}"))
            .collect();
        Err(StoreError::Sealing(format!(
            "the master key given ({}, from {:?}) does not open the stored secrets ({}): is it the \
             right {} or key file?",
            keys.current_id(),
            self.key_source,
            needed.join(", "),
            seal::MASTER_KEY_ENV
        )))
    }

    /// Re-seals every secret under `new_key` and makes it the key; see the module documentation for the
    /// steps and why they are crash-safe. The caller holds the writer lock. `resuming`: completing an
    /// interrupted rotation, whose `K.new` records may already be sealed under.
    fn reseal_all(&self, new_key: MasterKey, resuming: bool) -> Result<usize, StoreError> {
        let mut keys = self.keyring.write().unwrap_or_else(|e| e.into_inner());
        let old_key = keys.current().duplicate();
        let sealer = Keyring::new(new_key);

        // 1. Open everything first, and seal it again under the new key: nothing is written yet.
        let mut changes = Vec::new();
        for entry in self.trees.accounts.iter() {
            let (name_bytes, old) = entry?;
            let mut account: Account = decode(ACCOUNTS, &name_bytes, &old)?;
            if let AccountSource::IamUser {
                secret_access_key, ..
            } = &mut account.source
            {
                let aad = account_secret_aad(&account.name);
                let secret = keys.open(secret_access_key, &aad).map_err(|e| {
                    StoreError::Sealing(format!(
                        "account {}: {e}; nothing was rotated",
                        account.name
                    ))
                })?;
                *secret_access_key = sealer.seal(&secret, &aad)?;
                changes.push((name_bytes, old, encode(&account)?));
            }
        }

        // 2. The new key, durably, next to the old one.
        if let KeySource::File(path) = &self.key_source {
            write_pending_key(path, sealer.current())?;
        }

        // 3. All secrets at once.
        let committed = self.db.transaction([&self.trees.accounts], |[tx]| {
            for (name, old, new) in &changes {
                if tx.get(name)?.as_ref() != Some(old) {
                    return abort(StoreError::Conflict(
                        "an account changed during the rotation; nothing was rotated".into(),
                    ));
                }
                tx.insert(name.as_ref(), new.as_slice())?;
            }
            Ok(())
        });
        if let Err(e) = committed {
            // Nothing was re-sealed. A fresh key's `K.new` can go (if it stays, the next open completes
            // the rotation, which is safe too); a resumed rotation's must stay: records may need it.
            if let (KeySource::File(path), false) = (&self.key_source, resuming) {
                let _ = std::fs::remove_file(seal::pending_path(path));
            }
            return Err(e.into());
        }

        // 4. Durable. From here on the records need the new key (until then, either may be needed).
        *keys = sealer.with_key(old_key);
        self.durable()?;
        *keys = Keyring::new(keys.current().duplicate());

        // 5. The new key becomes the key file (if this fails, the next open completes it).
        if let KeySource::File(path) = &self.key_source {
            commit_pending_key(path)?;
        }
        Ok(changes.len())
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.trees
            .accounts
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(ACCOUNTS, &key, &value)
            })
            .collect()
    }

    fn connectors(&self) -> Result<Vec<Connector>, StoreError> {
        self.trees
            .connectors
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(CONNECTORS, &key, &value)
            })
            .collect()
    }

    fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.trees
            .api_keys
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(API_KEYS, &key, &value)
            })
            .collect()
    }

    fn connector_by_id(&self, id: ConnectorId) -> Result<Option<Connector>, StoreError> {
        let key = id.to_string();
        self.trees
            .connectors
            .get(&key)?
            .map(|value| {
                self.decoded_connectors.get(key.as_bytes(), &value, |v| {
                    decode(CONNECTORS, key.as_bytes(), v)
                })
            })
            .transpose()
    }

    /// What the store checks of a connector: its name, its account, its bindings.
    fn check_connector(&self, connector: &Connector) -> Result<(), StoreError> {
        check_name("connector", &connector.name)?;
        // STS's rules, on every save: a connector that could never vend is refused now, not at first use.
        crate::sts::validate::check_connector(connector)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        if Uuid::try_parse(&connector.name).is_ok() {
            return Err(StoreError::Invalid(format!(
                "connector name {:?} must not be a UUID (connectors are found by id or name)",
                connector.name
            )));
        }
        if !self.trees.accounts.contains_key(&connector.account)? {
            return Err(StoreError::Invalid(format!(
                "connector {}: account {:?} does not exist",
                connector.name, connector.account
            )));
        }
        let taken: HashSet<String> = self
            .connectors()?
            .into_iter()
            .filter(|other| other.id != connector.id)
            .flat_map(|other| other.bindings.into_iter().map(|b| b.id))
            .collect();
        let mut seen = HashSet::new();
        for binding in &connector.bindings {
            if binding.id.is_empty() || binding.id.len() > 128 {
                return Err(StoreError::Invalid(format!(
                    "connector {}: a binding id must be 1-128 characters",
                    connector.name
                )));
            }
            if !seen.insert(binding.id.as_str()) || taken.contains(&binding.id) {
                return Err(StoreError::Invalid(format!(
                    "connector {}: binding id {} is used twice (it keys the binding's private store)",
                    connector.name, binding.id
                )));
            }
            check_digest(&binding.plugin)?;
            if !self.trees.plugins.contains_key(&binding.plugin)? {
                return Err(StoreError::Invalid(format!(
                    "connector {}: binding {} names plugin {}, which is not stored",
                    connector.name, binding.id, binding.plugin
                )));
            }
        }
        Ok(())
    }
}

impl Components {
    fn file(digest: &str) -> String {
        format!("{digest}.wasm")
    }

    /// Whether the component `digest` is kept whole (`len` bytes).
    fn has(&self, digest: &str, len: u64) -> Result<bool, StoreError> {
        Ok(match self {
            Components::Files(dir) => dir
                .metadata(Self::file(digest))
                .is_ok_and(|m| m.is_file() && m.len() == len),
            Components::Rows(tree) => tree.get(digest)?.is_some_and(|v| v.len() as u64 == len),
        })
    }

    fn exists(&self, digest: &str) -> Result<bool, StoreError> {
        Ok(match self {
            Components::Files(dir) => dir.metadata(Self::file(digest)).is_ok(),
            Components::Rows(tree) => tree.contains_key(digest)?,
        })
    }

    fn write(&self, digest: &str, wasm: &[u8]) -> Result<(), StoreError> {
        match self {
            Components::Files(dir) => {
                // Written under a temporary name, synced, and renamed: never a torn file under the
                // real name.
                let name = Self::file(digest);
                let temporary = format!("{name}.{}.tmp", std::process::id());
                let write = || -> std::io::Result<()> {
                    let mut file = dir.create(&temporary)?;
                    file.write_all(wasm)?;
                    file.sync_all()?;
                    dir.rename(&temporary, dir, &name)?;
                    // A directory handle of cap-std's may be `O_PATH`, which cannot be synced: open
                    // it for reading.
                    dir.open(".")?.sync_all()
                };
                write().map_err(|e| {
                    let _ = dir.remove_file(&temporary);
                    StoreError::Io(format!("cannot store plugin {digest}: {e}"))
                })
            }
            Components::Rows(tree) => Ok(tree.insert(digest, wasm)?),
        }
    }

    fn read(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Components::Files(dir) => match dir.read(Self::file(digest)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::Io(format!("cannot read plugin {digest}: {e}"))),
            },
            Components::Rows(tree) => Ok(tree.get(digest)?.map(|v| v.to_vec())),
        }
    }

    /// Removes a component; whether there was one.
    fn remove(&self, digest: &str) -> Result<bool, StoreError> {
        match self {
            Components::Files(dir) => match dir.remove_file(Self::file(digest)) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(StoreError::Io(format!(
                    "cannot remove plugin {digest}: {e}"
                ))),
            },
            Components::Rows(tree) => Ok(tree.remove(digest)?.is_some()),
        }
    }
}

/// The writes, each with an optional audit record committed in the same transaction.
impl DataStore {
    fn put_account_in(
        &self,
        input: AccountInput,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<Account, StoreError> {
        check_name("account", &input.name)?;
        let _writer = self.write_lock()?;
        let keys = self.keys();
        let existing = self.get_account(&input.name)?;
        let source = match input.source {
            AccountSourceInput::HostCredentials => AccountSource::HostCredentials,
            AccountSourceInput::IamUser {
                access_key_id,
                secret_access_key,
            } => {
                if access_key_id.is_empty()
                    || access_key_id.len() > 128
                    || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(StoreError::Invalid(format!(
                        "account {}: the access key id must be 1-128 letters and digits",
                        input.name
                    )));
                }
                let sealed = match (secret_access_key, existing.map(|a| a.source)) {
                    (Some(secret), _) if secret.is_empty() => {
                        return Err(StoreError::Invalid(format!(
                            "account {}: the secret access key is empty",
                            input.name
                        )));
                    }
                    (Some(secret), _) => keys.seal(&secret, &account_secret_aad(&input.name))?,
                    (
                        None,
                        Some(AccountSource::IamUser {
                            access_key_id: stored_id,
                            secret_access_key,
                        }),
                    ) if stored_id == access_key_id => secret_access_key,
                    (None, Some(AccountSource::IamUser { .. })) => {
                        return Err(StoreError::Invalid(format!(
                            "account {}: a new access key id needs its secret access key",
                            input.name
                        )));
                    }
                    (None, _) => {
                        return Err(StoreError::Invalid(format!(
                            "account {}: an iam-user account needs a secret access key",
                            input.name
                        )));
                    }
                };
                AccountSource::IamUser {
                    access_key_id,
                    secret_access_key: sealed,
                }
            }
        };
        let account = Account {
            name: input.name,
            description: input.description,
            source,
            region: input.region,
            sts_endpoint: input.sts_endpoint,
        };
        let value = encode(&account)?;
        self.commit(audit, |tx| {
            tx.accounts
                .insert(account.name.as_bytes(), value.as_slice())?;
            Ok(())
        })?;
        Ok(account)
    }

    fn delete_account_in(
        &self,
        name: &str,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<(), StoreError> {
        let _writer = self.write_lock()?;
        if !self.trees.accounts.contains_key(name)? {
            return Err(StoreError::NotFound(format!("account {name:?}")));
        }
        let users: Vec<String> = self
            .connectors()?
            .into_iter()
            .filter(|c| c.account == name)
            .map(|c| c.name)
            .collect();
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "account {name} is used by connector(s) {}",
                users.join(", ")
            )));
        }
        self.commit(audit, |tx| {
            tx.accounts.remove(name.as_bytes())?;
            Ok(())
        })
    }

    fn create_connector_in(
        &self,
        mut connector: Connector,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<Connector, StoreError> {
        if connector.id.is_nil() {
            connector.id = Uuid::new_v4();
        }
        let _writer = self.write_lock()?;
        self.check_connector(&connector)?;
        let id = connector.id.to_string();
        let value = encode(&connector)?;
        self.commit(audit, |tx| {
            if tx.connectors.get(&id)?.is_some() {
                return abort(StoreError::Conflict(format!(
                    "a connector with id {id} exists"
                )));
            }
            if tx.names.get(&connector.name)?.is_some() {
                return abort(StoreError::Conflict(format!(
                    "a connector named {} exists",
                    connector.name
                )));
            }
            tx.connectors.insert(id.as_bytes(), value.as_slice())?;
            tx.names.insert(connector.name.as_bytes(), id.as_bytes())?;
            Ok(())
        })?;
        Ok(connector)
    }

    fn update_connector_in(
        &self,
        connector: Connector,
        expected: &Connector,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<Connector, StoreError> {
        let _writer = self.write_lock()?;
        let old = self
            .connector_by_id(connector.id)?
            .ok_or_else(|| StoreError::NotFound(format!("connector {}", connector.id)))?;
        if old != *expected {
            return Err(StoreError::Conflict(format!(
                "connector {:?} was changed by someone else meanwhile: read it again",
                old.name
            )));
        }
        self.check_connector(&connector)?;
        let id = connector.id.to_string();
        let value = encode(&connector)?;
        self.commit(audit, |tx| {
            if let Some(holder) = tx.names.get(&connector.name)?
                && holder.as_ref() != id.as_bytes()
            {
                return abort(StoreError::Conflict(format!(
                    "a connector named {} exists",
                    connector.name
                )));
            }
            if old.name != connector.name {
                tx.names.remove(old.name.as_bytes())?;
            }
            tx.names.insert(connector.name.as_bytes(), id.as_bytes())?;
            tx.connectors.insert(id.as_bytes(), value.as_slice())?;
            Ok(())
        })?;
        Ok(connector)
    }

    fn delete_connector_in(
        &self,
        id: ConnectorId,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<(), StoreError> {
        let _writer = self.write_lock()?;
        let connector = self
            .connector_by_id(id)?
            .ok_or_else(|| StoreError::NotFound(format!("connector {id}")))?;
        let holders: Vec<String> = self
            .api_keys()?
            .into_iter()
            .filter(|k| k.connectors.contains(&id))
            .map(|k| k.id.to_string())
            .collect();
        let key = id.to_string();
        self.commit(audit, |tx| {
            tx.connectors.remove(key.as_bytes())?;
            if tx.names.get(&connector.name)?.as_deref() == Some(key.as_bytes()) {
                tx.names.remove(connector.name.as_bytes())?;
            }
            for holder in &holders {
                let Some(value) = tx.api_keys.get(holder)? else {
                    continue;
                };
                let mut api_key: ApiKey =
                    decode(API_KEYS, holder.as_bytes(), &value).map_err(TxError::Abort)?;
                api_key.connectors.retain(|c| *c != id);
                let value = encode(&api_key).map_err(TxError::Abort)?;
                tx.api_keys.insert(holder.as_bytes(), value)?;
            }
            Ok(())
        })
    }

    fn create_api_key_in(
        &self,
        name: &str,
        connectors: Vec<ConnectorId>,
        expires: Option<SystemTime>,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<(ApiKey, Secret), StoreError> {
        check_name("API key", name)?;
        let now = SystemTime::now();
        if expires.is_some_and(|at| at <= now) {
            return Err(StoreError::Invalid(format!(
                "API key {name}: it would expire before it is made"
            )));
        }
        if connectors.is_empty() {
            return Err(StoreError::Invalid(format!(
                "API key {name}: it must name at least one connector"
            )));
        }
        let _writer = self.write_lock()?;
        let mut unique = Vec::new();
        for id in connectors {
            if unique.contains(&id) {
                continue;
            }
            match self.connector_by_id(id)? {
                None => {
                    return Err(StoreError::Invalid(format!(
                        "API key {name}: connector {id} does not exist"
                    )));
                }
                Some(c) if !c.system_scope => {
                    return Err(StoreError::Invalid(format!(
                        "API key {name}: connector {} is not open to system-scope keys",
                        c.name
                    )));
                }
                Some(_) => unique.push(id),
            }
        }
        if self.api_keys()?.iter().any(|k| k.name == name) {
            return Err(StoreError::Conflict(format!(
                "an API key named {name} exists"
            )));
        }

        let id = Uuid::new_v4();
        let mut random = Zeroizing::new([0u8; 32]);
        getrandom::fill(random.as_mut())
            .map_err(|e| StoreError::Sealing(format!("no randomness for an API key: {e}")))?;
        let secret_part = Zeroizing::new(URL_SAFE_NO_PAD.encode(random.as_ref()));
        let whole = Secret::new(format!(
            "{API_KEY_PREFIX}{}_{}",
            id.simple(),
            secret_part.as_str()
        ));
        let api_key = ApiKey {
            id,
            name: name.to_owned(),
            hash: hex::encode(Sha256::digest(secret_part.as_bytes())),
            connectors: unique,
            created: now,
            expires,
            last_used: None,
        };
        let value = encode(&api_key)?;
        // The record names the key by its id too (made here), as its deletion's record does.
        let named = audit.map(|(log, event)| {
            let event = AuditEvent {
                reason: event.reason.as_ref().map(|r| format!("{r} (id {id})")),
                ..event.clone()
            };
            (log, event)
        });
        self.commit(named.as_ref().map(|(log, event)| (*log, event)), |tx| {
            tx.api_keys
                .insert(id.to_string().as_bytes(), value.as_slice())?;
            Ok(())
        })?;
        Ok((api_key, whole))
    }

    fn delete_api_key_in(
        &self,
        id: Uuid,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<(), StoreError> {
        let _writer = self.write_lock()?;
        self.commit(audit, |tx| {
            if tx.api_keys.remove(id.to_string().as_bytes())?.is_none() {
                return abort(StoreError::NotFound(format!("API key {id}")));
            }
            Ok(())
        })
    }

    fn put_plugin_in(
        &self,
        wasm: &[u8],
        plugin_name: Option<&str>,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<String, StoreError> {
        if wasm.is_empty() {
            return Err(StoreError::Invalid("an empty plugin".into()));
        }
        if let Some(plugin_name) = plugin_name {
            check_name("plugin", plugin_name)?;
        }
        let digest = hex::encode(Sha256::digest(wasm));
        let _writer = self.write_lock()?;
        let existing: Option<PluginInfo> = self
            .trees
            .plugins
            .get(&digest)?
            .map(|v| decode(PLUGINS, digest.as_bytes(), &v))
            .transpose()?;
        let kept = self.components.has(&digest, wasm.len() as u64)?;
        if !(existing.is_some() && kept) {
            self.components.write(&digest, wasm)?;
        }
        let info = PluginInfo {
            digest: digest.clone(),
            size: wasm.len() as u64,
            name: plugin_name
                .map(str::to_owned)
                .or_else(|| existing.as_ref().and_then(|e| e.name.clone())),
            stored: existing.map_or_else(SystemTime::now, |e| e.stored),
        };
        let value = encode(&info)?;
        self.commit(audit, |tx| {
            tx.plugins.insert(digest.as_bytes(), value.as_slice())?;
            Ok(())
        })?;
        Ok(digest)
    }

    fn remove_plugin_in(
        &self,
        digest: &str,
        audit: Option<(&AuditLog, &AuditEvent)>,
    ) -> Result<(), StoreError> {
        check_digest(digest)?;
        let _writer = self.write_lock()?;
        let users: Vec<String> = self
            .connectors()?
            .into_iter()
            .filter(|c| c.bindings.iter().any(|b| b.plugin == digest))
            .map(|c| c.name)
            .collect();
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "plugin {digest} is bound in connector(s) {}",
                users.join(", ")
            )));
        }
        let kept = self.components.exists(digest)?;
        if !kept && !self.trees.plugins.contains_key(digest)? {
            // Nothing to remove: no change, and no record of one.
            return Err(StoreError::NotFound(format!("plugin {digest}")));
        }
        let had_metadata = self.commit(audit, |tx| {
            Ok(tx.plugins.remove(digest.as_bytes())?.is_some())
        })?;
        // The metadata goes first: a crash in between leaves an unlisted component, which a later
        // put_plugin of the same component reuses.
        let had_file = self.components.remove(digest)?;
        if !had_metadata && !had_file {
            return Err(StoreError::NotFound(format!("plugin {digest}")));
        }
        Ok(())
    }
}

/// An administrator's change to the store with its audit record: each write commits both, or neither.
pub struct Audited<'a> {
    store: &'a DataStore,
    log: &'a AuditLog,
    event: AuditEvent,
}

impl Audited<'_> {
    /// The record's event (to name what was changed in it before the write).
    pub fn event_mut(&mut self) -> &mut AuditEvent {
        &mut self.event
    }

    /// [`Store::put_account`], audited.
    pub fn put_account(&self, input: AccountInput) -> Result<Account, StoreError> {
        self.store
            .put_account_in(input, Some((self.log, &self.event)))
    }

    /// [`Store::delete_account`], audited.
    pub fn delete_account(&self, name: &str) -> Result<(), StoreError> {
        self.store
            .delete_account_in(name, Some((self.log, &self.event)))
    }

    /// [`Store::create_connector`], audited.
    pub fn create_connector(&self, connector: Connector) -> Result<Connector, StoreError> {
        self.store
            .create_connector_in(connector, Some((self.log, &self.event)))
    }

    /// [`Store::update_connector`], audited.
    pub fn update_connector(
        &self,
        connector: Connector,
        expected: &Connector,
    ) -> Result<Connector, StoreError> {
        self.store
            .update_connector_in(connector, expected, Some((self.log, &self.event)))
    }

    /// [`Store::delete_connector`], audited.
    pub fn delete_connector(&self, id: ConnectorId) -> Result<(), StoreError> {
        self.store
            .delete_connector_in(id, Some((self.log, &self.event)))
    }

    /// [`Store::create_api_key`], audited.
    pub fn create_api_key(
        &self,
        name: &str,
        connectors: Vec<ConnectorId>,
        expires: Option<SystemTime>,
    ) -> Result<(ApiKey, Secret), StoreError> {
        self.store
            .create_api_key_in(name, connectors, expires, Some((self.log, &self.event)))
    }

    /// [`Store::delete_api_key`], audited.
    pub fn delete_api_key(&self, id: Uuid) -> Result<(), StoreError> {
        self.store
            .delete_api_key_in(id, Some((self.log, &self.event)))
    }

    /// [`Store::put_plugin`], audited.
    pub fn put_plugin(&self, wasm: &[u8], plugin_name: Option<&str>) -> Result<String, StoreError> {
        self.store
            .put_plugin_in(wasm, plugin_name, Some((self.log, &self.event)))
    }

    /// [`Store::remove_plugin`], audited.
    pub fn remove_plugin(&self, digest: &str) -> Result<(), StoreError> {
        self.store
            .remove_plugin_in(digest, Some((self.log, &self.event)))
    }
}

impl Store for DataStore {
    fn put_account(&self, input: AccountInput) -> Result<Account, StoreError> {
        self.put_account_in(input, None)
    }

    fn get_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.trees
            .accounts
            .get(name)?
            .map(|value| {
                self.decoded_accounts.get(name.as_bytes(), &value, |v| {
                    decode(ACCOUNTS, name.as_bytes(), v)
                })
            })
            .transpose()
    }

    fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.accounts()
    }

    fn delete_account(&self, name: &str) -> Result<(), StoreError> {
        self.delete_account_in(name, None)
    }

    fn account_credentials(&self, name: &str) -> Result<Option<AccountCredentials>, StoreError> {
        // The keyring is held while the record is read, so a rotation cannot come in between.
        let keys = self.keys();
        let Some(account) = self.get_account(name)? else {
            return Ok(None);
        };
        Ok(Some(match account.source {
            AccountSource::HostCredentials => AccountCredentials::HostChain,
            AccountSource::IamUser {
                access_key_id,
                secret_access_key,
            } => AccountCredentials::Static {
                secret_access_key: keys
                    .open(&secret_access_key, &account_secret_aad(&account.name))
                    .map_err(|e| StoreError::Sealing(format!("account {name}: {e}")))?,
                access_key_id,
            },
        }))
    }

    fn create_connector(&self, connector: Connector) -> Result<Connector, StoreError> {
        self.create_connector_in(connector, None)
    }

    fn update_connector(
        &self,
        connector: Connector,
        expected: &Connector,
    ) -> Result<Connector, StoreError> {
        self.update_connector_in(connector, expected, None)
    }

    fn get_connector(&self, id_or_name: &str) -> Result<Option<Connector>, StoreError> {
        if let Ok(id) = Uuid::try_parse(id_or_name) {
            return self.connector_by_id(id);
        }
        let Some(id) = self.trees.connector_names.get(id_or_name)? else {
            return Ok(None);
        };
        let id = std::str::from_utf8(&id)
            .ok()
            .and_then(|id| Uuid::try_parse(id).ok())
            .ok_or_else(|| {
                StoreError::Io(format!(
                    "the {CONNECTOR_NAMES} entry of {id_or_name:?} is not a UUID"
                ))
            })?;
        self.connector_by_id(id)
    }

    fn list_connectors(&self) -> Result<Vec<Connector>, StoreError> {
        let mut connectors = self.connectors()?;
        connectors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(connectors)
    }

    fn delete_connector(&self, id: ConnectorId) -> Result<(), StoreError> {
        self.delete_connector_in(id, None)
    }

    fn create_api_key(
        &self,
        name: &str,
        connectors: Vec<ConnectorId>,
        expires: Option<SystemTime>,
    ) -> Result<(ApiKey, Secret), StoreError> {
        self.create_api_key_in(name, connectors, expires, None)
    }

    fn authenticate_api_key(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some((id, secret_part)) = parse_api_key(presented) else {
            return Ok(None);
        };
        let key = id.to_string();
        let Some(stored) = self.trees.api_keys.get(&key)? else {
            return Ok(None);
        };
        let mut api_key: ApiKey = decode(API_KEYS, key.as_bytes(), &stored)?;
        let presented_digest = Sha256::digest(secret_part.as_bytes());
        let Some(stored_digest) = hex::decode(&api_key.hash).ok() else {
            return Ok(None);
        };
        // Both digests, so a fixed length: compared in constant time.
        if !bool::from(presented_digest.as_slice().ct_eq(&stored_digest)) {
            return Ok(None);
        }
        let now = SystemTime::now();
        if api_key.expires.is_some_and(|at| at <= now) {
            return Ok(None);
        }
        let stale = api_key.last_used.is_none_or(|last| {
            now.duration_since(last)
                .is_ok_and(|age| age >= LAST_USED_GRANULARITY)
        });
        if stale {
            let mut updated = api_key.clone();
            updated.last_used = Some(now);
            // Compare-and-swap: a key deleted or changed meanwhile is not brought back.
            let swapped = self.trees.api_keys.compare_and_swap(
                key.as_bytes(),
                Some(&stored),
                Some(&encode(&updated)?),
            );
            match swapped {
                Ok(Ok(())) => {
                    if let Err(e) = self.db.flush() {
                        tracing::warn!(api_key = %id, error = %e, "cannot flush an API key's last use");
                    }
                    api_key = updated;
                }
                Ok(Err(_)) => {}
                Err(e) => {
                    tracing::warn!(api_key = %id, error = %e, "cannot record an API key's last use")
                }
            }
        }
        Ok(Some(api_key))
    }

    fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys = self.api_keys()?;
        keys.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    fn delete_api_key(&self, id: Uuid) -> Result<(), StoreError> {
        self.delete_api_key_in(id, None)
    }

    fn put_plugin(&self, wasm: &[u8], plugin_name: Option<&str>) -> Result<String, StoreError> {
        self.put_plugin_in(wasm, plugin_name, None)
    }

    fn get_plugin(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_digest(digest)?;
        let Some(bytes) = self.components.read(digest)? else {
            return Ok(None);
        };
        if hex::encode(Sha256::digest(&bytes)) != digest {
            return Err(StoreError::Io(format!(
                "plugin file {digest}.wasm does not match its digest: it was altered or damaged"
            )));
        }
        Ok(Some(bytes))
    }

    fn list_plugins(&self) -> Result<Vec<PluginInfo>, StoreError> {
        self.trees
            .plugins
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(PLUGINS, &key, &value)
            })
            .collect()
    }

    fn remove_plugin(&self, digest: &str) -> Result<(), StoreError> {
        self.remove_plugin_in(digest, None)
    }

    fn rotate_master_key(&self, new_key: MasterKey) -> Result<usize, StoreError> {
        let _writer = self.write_lock()?;
        if new_key.fingerprint() == self.key_id() {
            return Err(StoreError::Invalid(
                "the new master key is the current one".into(),
            ));
        }
        let new_id = new_key.fingerprint();
        let count = self.reseal_all(new_key, false)?;
        tracing::info!(secrets = count, key_id = %new_id, "master key rotated");
        if let KeySource::Env(_) = self.key_source {
            tracing::warn!(
                key_id = %new_id,
                "set {} to the new master key before the next start",
                seal::MASTER_KEY_ENV
            );
        }
        Ok(count)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.durable()
    }
}

/// Splits `idfed_<32 hex>_<43 base64url>` into the id and the secret part.
fn parse_api_key(presented: &str) -> Option<(Uuid, &str)> {
    let rest = presented.strip_prefix(API_KEY_PREFIX)?;
    if !rest.is_ascii() || rest.len() != API_KEY_ID_LEN + 1 + API_KEY_SECRET_LEN {
        return None;
    }
    let (id, secret) = rest.split_at(API_KEY_ID_LEN);
    let secret = secret.strip_prefix('_')?;
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Io(format!("cannot encode a record: {e}")))
}

/// Decodes a record; the error names the record but holds nothing of its content.
fn decode<T: DeserializeOwned>(tree: &str, key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|e| {
        StoreError::Io(format!(
            "record {:?} in {tree} is unreadable ({:?} error at line {}, column {})",
            String::from_utf8_lossy(key),
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

fn schema_version(trees: &Trees) -> Result<u32, StoreError> {
    match trees.meta.get(SCHEMA_KEY)? {
        None => Ok(0),
        Some(value) => std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Invalid("the stored schema_version is not a number".into())),
    }
}

/// Brings the database to [`SCHEMA_VERSION`], one version at a time, each step durable.
fn migrate(db: &Db, trees: &Trees, plugins: &Components, where_: &str) -> Result<(), StoreError> {
    let mut version = schema_version(trees)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Invalid(format!(
            "the database {where_} has schema version {version}, newer than this idfed knows \
             ({SCHEMA_VERSION}): run a newer idfed"
        )));
    }
    while version < SCHEMA_VERSION {
        tracing::info!(from = version, to = version + 1, "migrating the database");
        MIGRATIONS[version as usize](trees, plugins)?;
        version += 1;
        trees
            .meta
            .insert(SCHEMA_KEY, version.to_string().as_bytes())?;
        db.flush()?;
    }
    Ok(())
}

/// Version 0 (before versioning) had no `connector-names` index and no plugin metadata (plugin files
/// only). Builds both, and checks that every record reads as a v1 record. A new, empty database is
/// version 0 too, and goes through here trivially.
fn migrate_v0_to_v1(trees: &Trees, plugins: &Components) -> Result<(), StoreError> {
    let mut names = BTreeMap::new();
    for entry in trees.connectors.iter() {
        let (key, value) = entry?;
        let connector: Connector = decode(CONNECTORS, &key, &value)?;
        if key.as_ref() != connector.id.to_string().as_bytes() {
            return Err(StoreError::Invalid(format!(
                "cannot migrate: connector {} is stored under another id",
                connector.name
            )));
        }
        if names.insert(connector.name.clone(), connector.id).is_some() {
            return Err(StoreError::Invalid(format!(
                "cannot migrate: two connectors are named {}; rename one with an older idfed",
                connector.name
            )));
        }
    }
    trees.connector_names.clear()?;
    for (name, id) in names {
        trees
            .connector_names
            .insert(name.as_bytes(), id.to_string().as_bytes())?;
    }
    for entry in trees.accounts.iter() {
        let (key, value) = entry?;
        decode::<Account>(ACCOUNTS, &key, &value)?;
    }
    for entry in trees.api_keys.iter() {
        let (key, value) = entry?;
        decode::<ApiKey>(API_KEYS, &key, &value)?;
    }
    // Version 0 was sled's only: its plugin files.
    let Components::Files(plugins) = plugins else {
        return Ok(());
    };
    let entries = plugins
        .entries()
        .map_err(|e| StoreError::Io(format!("cannot list the plugin directory: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::Io(format!("cannot list plugins: {e}")))?;
        let file_name = entry.file_name();
        let Some(digest) = file_name
            .to_str()
            .and_then(|n| n.strip_suffix(".wasm"))
            .filter(|d| check_digest(d).is_ok())
        else {
            continue;
        };
        if trees.plugins.contains_key(digest)? {
            continue;
        }
        let metadata = entry
            .metadata()
            .map_err(|e| StoreError::Io(format!("cannot stat plugin {digest}: {e}")))?;
        let info = PluginInfo {
            digest: digest.to_owned(),
            size: metadata.len(),
            name: None,
            stored: metadata
                .modified()
                .map(|t| t.into_std())
                .unwrap_or_else(|_| SystemTime::now()),
        };
        trees.plugins.insert(digest.as_bytes(), encode(&info)?)?;
    }
    Ok(())
}

/// Opens sled, waiting a little for its file lock: a database closed a moment ago (a restart in the same
/// process, or a maintenance command right after the server stopped) is released by sled's background
/// flusher shortly after the last handle is dropped. A lock still held after that is a real conflict.
pub fn open_db(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e)) if is_lock_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// sled reports a held lock as `ErrorKind::Other` with the `WouldBlock` only in its message.
fn is_lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BindingSpec, Principal};
    use crate::store::seal::pending_path;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn iam_user(name: &str, secret: Option<&str>) -> AccountInput {
        AccountInput {
            name: name.into(),
            description: String::new(),
            source: AccountSourceInput::IamUser {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: secret.map(Secret::new),
            },
            region: None,
            sts_endpoint: None,
        }
    }

    fn connector(name: &str, account: &str) -> Connector {
        Connector {
            id: Uuid::new_v4(),
            name: name.into(),
            description: String::new(),
            account: account.into(),
            principal: Principal::FederatedUser,
            policy: None,
            policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            default_duration_seconds: None,
            max_duration_seconds: None,
            groups: Vec::new(),
            system_scope: true,
            enabled: true,
            credential_cache: false,
            bindings: Vec::new(),
        }
    }

    fn env_key() -> (String, KeySource) {
        let encoded = MasterKey::generate()
            .unwrap()
            .to_base64()
            .expose()
            .to_owned();
        (encoded.clone(), KeySource::Env(encoded))
    }

    fn secret_of(store: &DataStore, name: &str) -> String {
        match store.account_credentials(name).unwrap().unwrap() {
            AccountCredentials::Static {
                secret_access_key, ..
            } => secret_access_key.expose().to_owned(),
            AccountCredentials::HostChain => panic!("not an iam-user account"),
        }
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DataStore>();
        let _: Option<&dyn Store> = None;
    }

    #[test]
    fn a_v0_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let (encoded, source) = env_key();
        let ring = Keyring::new(MasterKey::from_base64(&encoded).unwrap());
        let wasm = b"\0asm\x0d\0\x01\0fake component".to_vec();
        let digest = hex::encode(Sha256::digest(&wasm));
        let c = connector("deploy", "prod");
        {
            // What a v0 idfed left: records, but no schema_version, no name index, no plugin metadata.
            let db = sled::open(dir.path().join("db")).unwrap();
            let account = Account {
                name: "prod".into(),
                description: String::new(),
                source: AccountSource::IamUser {
                    access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                    secret_access_key: ring
                        .seal(&Secret::new(SECRET), &account_secret_aad("prod"))
                        .unwrap(),
                },
                region: None,
                sts_endpoint: None,
            };
            db.open_tree(ACCOUNTS)
                .unwrap()
                .insert("prod", serde_json::to_vec(&account).unwrap())
                .unwrap();
            db.open_tree(CONNECTORS)
                .unwrap()
                .insert(c.id.to_string(), serde_json::to_vec(&c).unwrap())
                .unwrap();
            db.flush().unwrap();
            std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
            std::fs::write(dir.path().join(format!("plugins/{digest}.wasm")), &wasm).unwrap();
        }
        let store = DataStore::open(dir.path(), source.clone()).unwrap();
        assert_eq!(
            store.trees.meta.get(SCHEMA_KEY).unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(store.get_connector("deploy").unwrap(), Some(c.clone()));
        let plugins = store.list_plugins().unwrap();
        assert_eq!(plugins.len(), 1);
        assert_eq!(plugins[0].digest, digest);
        assert_eq!(plugins[0].size, wasm.len() as u64);
        assert_eq!(secret_of(&store, "prod"), SECRET);
        // The index is live: the name is taken.
        let e = store
            .create_connector(connector("deploy", "prod"))
            .unwrap_err();
        assert_eq!(e.code(), "store_conflict");
        drop(store);
        // Opening again migrates nothing more.
        DataStore::open(dir.path(), source).unwrap();
    }

    #[test]
    fn a_v0_database_with_duplicate_names_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let (_, source) = env_key();
        {
            let db = sled::open(dir.path().join("db")).unwrap();
            let connectors = db.open_tree(CONNECTORS).unwrap();
            for _ in 0..2 {
                let c = connector("twin", "prod");
                connectors
                    .insert(c.id.to_string(), serde_json::to_vec(&c).unwrap())
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let e = DataStore::open(dir.path(), source).unwrap_err();
        assert_eq!(e.code(), "store_invalid", "{e}");
        assert!(
            e.to_string().contains("two connectors are named twin"),
            "{e}"
        );
    }

    #[test]
    fn opening_waits_for_a_lock_released_a_moment_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let held = open_db(&path).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        open_db(&path).unwrap();
        release.join().unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, source) = env_key();
        {
            let db = sled::open(dir.path().join("db")).unwrap();
            db.open_tree(META)
                .unwrap()
                .insert(SCHEMA_KEY, &b"7"[..])
                .unwrap();
            db.flush().unwrap();
        }
        let e = DataStore::open(dir.path(), source).unwrap_err();
        assert_eq!(e.code(), "store_invalid", "{e}");
        assert!(e.to_string().contains("schema version 7, newer"), "{e}");
    }

    #[test]
    fn the_wrong_master_key_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (_, source) = env_key();
        let key_id = {
            let store = DataStore::open(dir.path(), source).unwrap();
            store.put_account(iam_user("prod", Some(SECRET))).unwrap();
            store.key_id()
        };
        let (_, other) = env_key();
        let e = DataStore::open(dir.path(), other).unwrap_err();
        assert_eq!(e.code(), "store_sealing_failed");
        assert!(e.to_string().contains(&key_id), "{e}");
        assert!(!e.to_string().contains(SECRET));
    }

    /// A crash after the new key was written to `K.new`, before any record was re-sealed.
    #[test]
    fn a_rotation_interrupted_before_resealing_is_completed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        let source = KeySource::File(key_file.clone());
        {
            let store = DataStore::open(dir.path(), source.clone()).unwrap();
            store.put_account(iam_user("prod", Some(SECRET))).unwrap();
        }
        let new = MasterKey::generate().unwrap();
        write_pending_key(&key_file, &new).unwrap();
        let store = DataStore::open(dir.path(), source.clone()).unwrap();
        assert_eq!(store.key_id(), new.fingerprint());
        assert!(!pending_path(&key_file).exists());
        assert_eq!(
            MasterKey::load_or_create(&source).unwrap().fingerprint(),
            new.fingerprint()
        );
        assert_eq!(secret_of(&store, "prod"), SECRET);
    }

    /// A crash after the re-sealed records were written, before `K.new` was renamed over `K`.
    #[test]
    fn a_rotation_interrupted_before_the_rename_is_completed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        let source = KeySource::File(key_file.clone());
        let new = MasterKey::generate().unwrap();
        {
            let store = DataStore::open(dir.path(), source.clone()).unwrap();
            store.put_account(iam_user("prod", Some(SECRET))).unwrap();
            store.put_account(iam_user("dev", Some("other"))).unwrap();
            write_pending_key(&key_file, &new).unwrap();
            // Steps 3 and 4 done by hand, with the new key.
            let sealer = Keyring::new(new.duplicate());
            for name in ["prod", "dev"] {
                let mut account = store.get_account(name).unwrap().unwrap();
                let secret = store.keys().open(
                    match &account.source {
                        AccountSource::IamUser {
                            secret_access_key, ..
                        } => secret_access_key,
                        _ => unreachable!(),
                    },
                    &account_secret_aad(name),
                );
                account.source = AccountSource::IamUser {
                    access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                    secret_access_key: sealer
                        .seal(&secret.unwrap(), &account_secret_aad(name))
                        .unwrap(),
                };
                store
                    .trees
                    .accounts
                    .insert(name, encode(&account).unwrap())
                    .unwrap();
            }
            store.flush().unwrap();
        }
        let store = DataStore::open(dir.path(), source.clone()).unwrap();
        assert_eq!(store.key_id(), new.fingerprint());
        assert!(!pending_path(&key_file).exists());
        assert_eq!(secret_of(&store, "prod"), SECRET);
        assert_eq!(secret_of(&store, "dev"), "other");
    }

    #[test]
    fn rotation_with_an_env_key_writes_no_file_and_needs_the_new_key_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let (_, source) = env_key();
        let new = MasterKey::generate().unwrap();
        let new_encoded = new.to_base64().expose().to_owned();
        {
            let store = DataStore::open(dir.path(), source.clone()).unwrap();
            store.put_account(iam_user("prod", Some(SECRET))).unwrap();
            assert_eq!(store.rotate_master_key(new).unwrap(), 1);
            assert_eq!(secret_of(&store, "prod"), SECRET);
        }
        assert_eq!(
            DataStore::open(dir.path(), source).unwrap_err().code(),
            "store_sealing_failed"
        );
        let store = DataStore::open(dir.path(), KeySource::Env(new_encoded)).unwrap();
        assert_eq!(secret_of(&store, "prod"), SECRET);
        let same = MasterKey::from_base64(store.keys().current().to_base64().expose()).unwrap();
        assert_eq!(
            store.rotate_master_key(same).unwrap_err().code(),
            "store_invalid"
        );
    }

    #[test]
    fn an_audited_change_is_stored_with_its_record_or_not_at_all() {
        use crate::audit::{AuditFilter, RECORDS_TREE};
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::open(dir.path(), env_key().1).unwrap();
        store.put_account(iam_user("main", Some("secret"))).unwrap();
        let event = AuditEvent {
            action: "admin.connector.create".into(),
            reason: Some("connector dev created".into()),
            ..AuditEvent::default()
        };
        // A record written out of band where the next one goes: the audit log refuses to append.
        let records = store.db().open_tree(RECORDS_TREE).unwrap();
        records
            .insert(1u64.to_be_bytes(), &b"out of band"[..])
            .unwrap();
        let log = AuditLog::open(store.db(), None).unwrap();
        let refused = store
            .audited(&log, event.clone())
            .create_connector(connector("dev", "main"))
            .unwrap_err();
        assert_eq!(refused.code(), "store_io");
        assert!(refused.to_string().contains("not made"), "{refused}");
        assert!(
            store.get_connector("dev").unwrap().is_none(),
            "nothing changed"
        );
        let unaudited = store.audited(&log, event.clone()).delete_account("main");
        assert!(unaudited.is_err());
        assert!(store.get_account("main").unwrap().is_some());

        records.remove(1u64.to_be_bytes()).unwrap();
        let created = store
            .audited(&log, event)
            .create_connector(connector("dev", "main"))
            .unwrap();
        assert_eq!(store.get_connector("dev").unwrap(), Some(created));
        let found = log.query(&AuditFilter::default()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].event.action, "admin.connector.create");
        assert!(log.verify().unwrap().is_intact());
        // Unaudited writes (tests, the command line's maintenance) add no record.
        store
            .put_account(iam_user("other", Some("secret")))
            .unwrap();
        assert_eq!(log.query(&AuditFilter::default()).unwrap().len(), 1);
    }

    #[test]
    fn accounts_keep_or_need_their_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::open(dir.path(), env_key().1).unwrap();
        assert_eq!(
            store
                .put_account(iam_user("prod", None))
                .unwrap_err()
                .code(),
            "store_invalid"
        );
        assert_eq!(
            store
                .put_account(iam_user("prod", Some("")))
                .unwrap_err()
                .code(),
            "store_invalid"
        );
        assert_eq!(
            store
                .put_account(iam_user("bad name", Some(SECRET)))
                .unwrap_err()
                .code(),
            "store_invalid"
        );
        store.put_account(iam_user("prod", Some(SECRET))).unwrap();
        let mut update = iam_user("prod", None);
        update.description = "kept".into();
        let account = store.put_account(update).unwrap();
        assert_eq!(account.description, "kept");
        assert_eq!(secret_of(&store, "prod"), SECRET);
        // Another access key id without its secret: refused.
        let mut other = iam_user("prod", None);
        other.source = AccountSourceInput::IamUser {
            access_key_id: "AKIAOTHER".into(),
            secret_access_key: None,
        };
        assert_eq!(
            store.put_account(other).unwrap_err().code(),
            "store_invalid"
        );
        // A sealed secret moved to another record does not open.
        let sealed = store.trees.accounts.get("prod").unwrap().unwrap();
        let mut moved: Account = serde_json::from_slice(&sealed).unwrap();
        moved.name = "copy".into();
        store
            .trees
            .accounts
            .insert("copy", encode(&moved).unwrap())
            .unwrap();
        assert_eq!(
            store.account_credentials("copy").unwrap_err().code(),
            "store_sealing_failed"
        );
    }

    #[test]
    fn reads_see_every_write_even_one_made_beside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::open(dir.path(), env_key().1).unwrap();
        store.put_account(iam_user("prod", Some(SECRET))).unwrap();
        let created = store.create_connector(connector("web", "prod")).unwrap();
        // Read twice: the second read is the remembered decoding.
        assert_eq!(store.get_connector("web").unwrap().unwrap(), created);
        assert_eq!(store.get_connector("web").unwrap().unwrap(), created);
        let mut edited = created.clone();
        edited.description = "through the store".into();
        store.update_connector(edited.clone(), &created).unwrap();
        assert_eq!(store.get_connector("web").unwrap().unwrap(), edited);

        // Written straight into sled: the stored bytes differ, so the record is decoded again.
        let mut beside = edited.clone();
        beside.description = "beside the store".into();
        store
            .trees
            .connectors
            .insert(beside.id.to_string(), serde_json::to_vec(&beside).unwrap())
            .unwrap();
        assert_eq!(
            store
                .get_connector(&beside.id.to_string())
                .unwrap()
                .unwrap(),
            beside
        );
        let mut account = store.get_account("prod").unwrap().unwrap();
        account.region = Some("eu-west-1".into());
        store
            .trees
            .accounts
            .insert("prod", serde_json::to_vec(&account).unwrap())
            .unwrap();
        assert_eq!(store.get_account("prod").unwrap().unwrap(), account);
        // And a record that no longer decodes is an error, never the old record.
        store.trees.accounts.insert("prod", b"{").unwrap();
        assert_eq!(store.get_account("prod").unwrap_err().code(), "store_io");
    }

    #[test]
    fn connectors_check_names_accounts_and_bindings() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::open(dir.path(), env_key().1).unwrap();
        store.put_account(iam_user("prod", Some(SECRET))).unwrap();
        assert_eq!(
            store
                .create_connector(connector("x", "nope"))
                .unwrap_err()
                .code(),
            "store_invalid"
        );
        let uuid_name = Uuid::new_v4().to_string();
        assert_eq!(
            store
                .create_connector(connector(&uuid_name, "prod"))
                .unwrap_err()
                .code(),
            "store_invalid"
        );
        let mut bound = connector("bound", "prod");
        bound.bindings.push(BindingSpec {
            id: "b1".into(),
            plugin: "ab".repeat(32),
            config: "{}".into(),
            limits: None,
            tag_keys: Vec::new(),
        });
        assert_eq!(
            store.create_connector(bound.clone()).unwrap_err().code(),
            "store_invalid",
            "the plugin is not stored"
        );
        let digest = store.put_plugin(b"\0asm component", None).unwrap();
        bound.bindings[0].plugin = digest.clone();
        let bound = store.create_connector(bound).unwrap();
        let mut twin = connector("twin", "prod");
        twin.bindings = bound.bindings.clone();
        assert_eq!(
            store.create_connector(twin).unwrap_err().code(),
            "store_invalid",
            "binding ids are unique across connectors"
        );
        assert_eq!(
            store.remove_plugin(&digest).unwrap_err().code(),
            "store_conflict"
        );
        let mut nil = connector("nil", "prod");
        nil.id = Uuid::nil();
        assert!(!store.create_connector(nil).unwrap().id.is_nil());
        // Renaming frees the old name and takes the new one.
        let mut renamed = bound.clone();
        renamed.name = "renamed".into();
        let renamed = store.update_connector(renamed, &bound).unwrap();
        assert!(store.get_connector("bound").unwrap().is_none());
        assert_eq!(
            store.get_connector("renamed").unwrap().unwrap().id,
            bound.id
        );
        store.create_connector(connector("bound", "prod")).unwrap();
        let mut clash = renamed.clone();
        clash.name = "nil".into();
        assert_eq!(
            store.update_connector(clash, &renamed).unwrap_err().code(),
            "store_conflict"
        );
        // An edit based on what is no longer stored is refused, and changes nothing.
        let mut stale = bound.clone();
        stale.description = "based on the old state".into();
        assert_eq!(
            store.update_connector(stale, &bound).unwrap_err().code(),
            "store_conflict"
        );
        assert_eq!(store.get_connector("renamed").unwrap().unwrap(), renamed);
        assert_ne!(renamed.revision(), bound.revision());
        assert_eq!(
            renamed.revision(),
            store.get_connector("renamed").unwrap().unwrap().revision()
        );
    }

    #[test]
    fn api_key_parsing_and_comparison() {
        let id = Uuid::new_v4();
        let secret = "A".repeat(43);
        let key = format!("idfed_{}_{secret}", id.simple());
        assert_eq!(parse_api_key(&key), Some((id, secret.as_str())));
        for bad in [
            String::new(),
            key[1..].to_owned(),
            format!("{key}x"),
            key.replacen('_', "-", 2),
            format!("idfed_{}_{}", "g".repeat(32), secret),
            format!(
                "idfed_{}é_{}",
                &id.simple().to_string()[..31],
                &secret[..42]
            ),
        ] {
            assert_eq!(parse_api_key(&bad), None, "{bad}");
        }
    }

    #[test]
    fn last_use_is_recorded_at_most_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataStore::open(dir.path(), env_key().1).unwrap();
        store.put_account(iam_user("prod", Some(SECRET))).unwrap();
        let c = store.create_connector(connector("ci", "prod")).unwrap();
        let (_, key) = store.create_api_key("ci-deploy", vec![c.id], None).unwrap();
        let first = store.authenticate_api_key(key.expose()).unwrap().unwrap();
        let used = first.last_used.unwrap();
        let second = store.authenticate_api_key(key.expose()).unwrap().unwrap();
        assert_eq!(second.last_used, Some(used));
        assert_eq!(store.list_api_keys().unwrap()[0].last_used, Some(used));
    }
}
