//! idfed's persistent state: accounts (their secrets sealed), connectors, system-scope API keys and
//! plugin components, behind the [`Store`] trait. [`DataStore`] keeps them in a [`Db`]: sled under one
//! data directory (the default), or PostgreSQL shared by several replicas:
//!
//! ```text
//! <data dir>/db/                 sled: trees `meta`, `accounts`, `connectors`, `connector-names`,
//!                                `api-keys`, `plugins` (and others' trees: the audit log, plugins' kv)
//! <data dir>/plugins/<sha256>.wasm   plugin components, named by their digest (PostgreSQL: the tree
//!                                `plugin-components`)
//! ```
//!
//! Every write is flushed before it returns: acknowledged means durable. Secrets are sealed with the
//! master key (see [`seal`]); API keys are kept only as hashes.

mod data_store;
pub mod db;
pub(crate) mod decoded;
pub mod migrate;
pub mod seal;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use data_store::{DataStore, SCHEMA_VERSION, open_db};
pub use db::{Db, DbError, TransactionError};
pub use seal::{KeySource, Keyring, MASTER_KEY_ENV, MasterKey};

use crate::model::{Account, AccountCredentials, AccountInput, ApiKey, Connector, ConnectorId};
use crate::secret::Secret;

/// What the store keeps.
pub trait Store: Send + Sync {
    /// Creates or replaces an account. On a replace, an iam-user account given no secret access key keeps
    /// the stored one (if its access key id is unchanged); on a create it must have one.
    fn put_account(&self, input: AccountInput) -> Result<Account, StoreError>;
    /// An account by name.
    fn get_account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// Every account, by name.
    fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Deletes an account: `NotFound` if there is none, `Conflict` while a connector uses it.
    fn delete_account(&self, name: &str) -> Result<(), StoreError>;
    /// An account's credentials, its secret opened, for one STS call.
    fn account_credentials(&self, name: &str) -> Result<Option<AccountCredentials>, StoreError>;

    /// Creates a connector (a nil id is given a new one): its name unique, its account existing, its
    /// bindings' plugins stored.
    fn create_connector(&self, connector: Connector) -> Result<Connector, StoreError>;
    /// Replaces a connector, found by id, if it is still `expected` (as the caller read it): `NotFound` if
    /// there is none, `Conflict` if it was changed meanwhile (so that no edit silently undoes another).
    fn update_connector(
        &self,
        connector: Connector,
        expected: &Connector,
    ) -> Result<Connector, StoreError>;
    /// A connector by id (a UUID string) or else by name.
    fn get_connector(&self, id_or_name: &str) -> Result<Option<Connector>, StoreError>;
    /// Every connector, by name.
    fn list_connectors(&self) -> Result<Vec<Connector>, StoreError>;
    /// Deletes a connector (and removes it from the API keys that named it).
    fn delete_connector(&self, id: ConnectorId) -> Result<(), StoreError>;

    /// Makes an API key for system-scope connectors. The [`Secret`] is the whole key, shown once:
    /// `idfed_<id, 32 hex>_<43 characters of base64url>`; only a hash of it is kept.
    fn create_api_key(
        &self,
        name: &str,
        connectors: Vec<ConnectorId>,
        expires: Option<SystemTime>,
    ) -> Result<(ApiKey, Secret), StoreError>;
    /// The key `presented` is, if it is a live one; `None` if it is unknown, expired or malformed.
    fn authenticate_api_key(&self, presented: &str) -> Result<Option<ApiKey>, StoreError>;
    /// Every API key (hashes only), by name.
    fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Deletes an API key.
    fn delete_api_key(&self, id: Uuid) -> Result<(), StoreError>;

    /// Stores a plugin component; returns its SHA-256 (hex), by which bindings name it. A `name` (the
    /// plugin's, e.g. `policy-guard`: uploads of one name are its versions) is recorded, replacing any
    /// name the same bytes had; `None` keeps it.
    fn put_plugin(&self, wasm: &[u8], name: Option<&str>) -> Result<String, StoreError>;
    /// A stored plugin component; `Invalid` unless `digest` is 64 lowercase hex characters.
    fn get_plugin(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every stored plugin, by digest.
    fn list_plugins(&self) -> Result<Vec<PluginInfo>, StoreError>;
    /// Removes a plugin component: `Conflict` while a binding uses it.
    fn remove_plugin(&self, digest: &str) -> Result<(), StoreError>;

    /// Re-seals every secret under `new_key`, which becomes the master key; returns how many were.
    fn rotate_master_key(&self, new_key: MasterKey) -> Result<usize, StoreError>;
    /// Makes everything written durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// A plugin component as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Its SHA-256, hex.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was first stored.
    pub stored: SystemTime,
    /// The plugin's name, when the uploader gave one (uploads of one name are its versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a store operation failed. Messages name records, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The write clashes with what is stored (a taken name, a record still in use).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input is not acceptable.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Sealing or opening a secret failed, or the master key is unusable.
    #[error("sealing failed: {0}")]
    Sealing(String),
    /// The disk or the database failed.
    #[error("storage failed: {0}")]
    Io(String),
    /// The database could not be reached, or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// The error's code, for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "store_not_found",
            StoreError::Conflict(_) => "store_conflict",
            StoreError::Invalid(_) => "store_invalid",
            StoreError::Sealing(_) => "store_sealing_failed",
            StoreError::Io(_) => "store_io",
            StoreError::Unavailable(_) => "store_unavailable",
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(m) => StoreError::Unavailable(m),
            DbError::Failed(m) => StoreError::Io(m),
        }
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

/// The longest account, connector or API key name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a name: 1-64 characters of `A-Za-z0-9._-`, not only dots (`.` and `..` cannot be a URL's path
/// segment). `what` names the kind in the error.
pub fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.bytes().all(|b| b == b'.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} name {:?} must be 1-{MAX_NAME_LEN} characters of A-Za-z0-9._-, not only dots",
            truncate(name)
        )))
    }
}

/// Checks a plugin digest: 64 lowercase hex characters (so that no other name reaches the filesystem).
pub fn check_digest(digest: &str) -> Result<(), StoreError> {
    if digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "plugin digest {:?} must be 64 lowercase hex characters (a SHA-256)",
            truncate(digest)
        )))
    }
}

/// At most 80 characters of `text`, for error messages.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "prod-eu.1_x", ".a", "a..", &"x".repeat(64)] {
            check_name("account", good).unwrap();
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "../x",
            "é",
            ".",
            "..",
            "...",
            &"x".repeat(65),
        ] {
            let e = check_name("account", bad).unwrap_err();
            assert_eq!(e.code(), "store_invalid");
            assert!(e.to_string().contains("account name"), "{e}");
        }
    }

    #[test]
    fn digests() {
        check_digest(&"ab".repeat(32)).unwrap();
        for bad in [
            "",
            "../../etc/passwd",
            &"AB".repeat(32),
            &"ab".repeat(33),
            &format!("{}/", "a".repeat(63)),
        ] {
            assert_eq!(check_digest(bad).unwrap_err().code(), "store_invalid");
        }
    }

    #[test]
    fn codes() {
        let codes: Vec<_> = [
            StoreError::NotFound(String::new()),
            StoreError::Conflict(String::new()),
            StoreError::Invalid(String::new()),
            StoreError::Sealing(String::new()),
            StoreError::Io(String::new()),
            StoreError::Unavailable(String::new()),
        ]
        .iter()
        .map(StoreError::code)
        .collect();
        assert_eq!(
            codes,
            [
                "store_not_found",
                "store_conflict",
                "store_invalid",
                "store_sealing_failed",
                "store_io",
                "store_unavailable"
            ]
        );
    }
}
