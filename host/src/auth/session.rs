//! idfed's own sessions, made after a password or SSO login.
//!
//! A session token is `idfs_` followed by 43 characters: 32 random bytes, base64url. Only its SHA-256 is
//! stored (the key in the sled tree `sessions`; its hex is the session's [`Session::id`], fit for logs),
//! with a JSON record: the user, their groups and administrator flag as last checked, when it was made,
//! when it ends (a fixed lifetime, not extended by use) and when its groups were last checked with the
//! directory. Tokens are [`Secret`]s and never logged.
//!
//! Creating a session, ending one and ending a user's are flushed before they return (a logout must
//! survive a crash); group-check updates are not (losing one only means checking again). Expired
//! sessions read as absent and are removed when met, and [`SessionStore::purge_expired`] sweeps the rest.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::lockout::{Clock, SystemClock};
use crate::secret::Secret;
use crate::store::decoded::Decoded;

/// The sled tree of sessions.
pub const SESSIONS_TREE: &str = "sessions";
/// Every session token starts with this.
pub const TOKEN_PREFIX: &str = "idfs_";
/// How long a session lasts unless configured otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);

const TOKEN_RANDOM_BYTES: usize = 32;
/// The advisory lock (PostgreSQL) of the replica sweeping expired sessions.
const SWEEP_LOCK: i64 = 0x6964_6665_6453;
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// Why the session store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// sled failed.
    #[error("session store: {0}")]
    Storage(String),
    /// No randomness for a token or a salt.
    #[error("no randomness: {0}")]
    Randomness(String),
}

impl From<crate::store::DbError> for SessionError {
    fn from(e: crate::store::DbError) -> Self {
        SessionError::Storage(e.to_string())
    }
}

/// A session, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The hex SHA-256 of the token: names the session in logs (the token cannot be had from it).
    pub id: String,
    /// The user name, as the directory spells it.
    pub user: String,
    /// The user's groups when last checked.
    pub groups: Vec<String>,
    /// Whether they were an administrator when last checked.
    pub is_admin: bool,
    /// When it was made.
    pub created: SystemTime,
    /// When it ends.
    pub expires: SystemTime,
    /// When its groups were last checked with the directory.
    pub groups_checked: SystemTime,
}

#[derive(Clone, Serialize, Deserialize)]
struct Record {
    user: String,
    groups: Vec<String>,
    is_admin: bool,
    created: SystemTime,
    expires: SystemTime,
    groups_checked: SystemTime,
}

impl Record {
    fn into_session(self, key: &[u8]) -> Session {
        Session {
            id: hex::encode(key),
            user: self.user,
            groups: self.groups,
            is_admin: self.is_admin,
            created: self.created,
            expires: self.expires,
            groups_checked: self.groups_checked,
        }
    }
}

/// The sessions, in sled.
#[derive(Clone)]
pub struct SessionStore {
    db: crate::store::Db,
    tree: crate::store::db::Tree,
    /// Every authenticated request reads its session: each stored version is decoded once.
    decoded: Arc<Decoded<Record>>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            // No count: that would be a read of the database (a query, with PostgreSQL) in a Debug.
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// The store in `db`'s `sessions` tree, sessions lasting [`DEFAULT_SESSION_TTL`].
    pub fn open(db: &crate::store::Db) -> Result<Self, SessionError> {
        if let crate::store::Db::Postgres(pg) = db {
            // Every authenticated request reads its session; logins, logouts and group refreshes are
            // announced to every replica.
            pg.cache_tree(SESSIONS_TREE);
        }
        Ok(SessionStore {
            db: db.clone(),
            tree: db.open_tree(SESSIONS_TREE)?,
            decoded: Arc::default(),
            ttl: DEFAULT_SESSION_TTL,
            clock: Arc::new(SystemClock),
        })
    }

    /// Sessions made from now on last `ttl`.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Reads the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long new sessions last.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Makes a session; its token (shown to the user once, never stored) and the session.
    pub fn create(
        &self,
        user: &str,
        groups: &[String],
        is_admin: bool,
    ) -> Result<(Secret, Session), SessionError> {
        let mut random = Zeroizing::new([0u8; TOKEN_RANDOM_BYTES]);
        getrandom::fill(random.as_mut())
            .map_err(|e| SessionError::Randomness(format!("for a session token: {e}")))?;
        let token = Secret::new(format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random.as_ref())
        ));
        let now = self.clock.now();
        let record = Record {
            user: user.to_owned(),
            groups: groups.to_vec(),
            is_admin,
            created: now,
            expires: now + self.ttl,
            groups_checked: now,
        };
        let key = hash(&token);
        self.tree.insert(key, encode(&record)?)?;
        self.tree.flush()?;
        Ok((token, record.into_session(&key)))
    }

    /// The session a token opens: `None` if unknown, malformed or expired (an expired one is removed).
    pub fn get(&self, token: &Secret) -> Result<Option<Session>, SessionError> {
        if !well_formed(token) {
            return Ok(None);
        }
        let key = hash(token);
        let Some(stored) = self.tree.get(key)? else {
            return Ok(None);
        };
        let Ok(record) = self
            .decoded
            .get(&key, &stored, |value| decode(&key, value).ok_or(()))
        else {
            self.tree.remove(key)?;
            return Ok(None);
        };
        if record.expires <= self.clock.now() {
            // Only if unchanged since read: a concurrent update is not brought back, nor lost.
            let _ = self
                .tree
                .compare_and_swap(key, Some(stored), None::<&[u8]>)?;
            return Ok(None);
        }
        Ok(Some(record.into_session(&key)))
    }

    /// Records a group check: the groups and administrator flag found, and when they were current.
    /// `Ok(None)` when the session is gone (ended meanwhile); never brings a session back.
    pub fn update_groups(
        &self,
        id: &str,
        groups: &[String],
        is_admin: bool,
        checked: SystemTime,
    ) -> Result<Option<Session>, SessionError> {
        let Ok(key) = hex::decode(id) else {
            return Ok(None);
        };
        let updated = self.tree.update_and_fetch(&key, |old| {
            let old = old?;
            let Some(mut record) = decode(&key, old) else {
                return Some(old.to_vec());
            };
            record.groups = groups.to_vec();
            record.is_admin = is_admin;
            record.groups_checked = checked;
            Some(serde_json::to_vec(&record).unwrap_or_else(|_| old.to_vec()))
        })?;
        Ok(updated
            .and_then(|value| decode(&key, &value))
            .map(|record| record.into_session(&key)))
    }

    /// Ends the session a token opens (logout). Ending an unknown one is no error.
    pub fn delete(&self, token: &Secret) -> Result<(), SessionError> {
        if well_formed(token) && self.tree.remove(hash(token))?.is_some() {
            self.tree.flush()?;
        }
        Ok(())
    }

    /// Ends a session by its id.
    pub fn delete_id(&self, id: &str) -> Result<(), SessionError> {
        if let Ok(key) = hex::decode(id)
            && self.tree.remove(key)?.is_some()
        {
            self.tree.flush()?;
        }
        Ok(())
    }

    /// Ends every session of a user (name compared exactly); how many.
    pub fn delete_user(&self, user: &str) -> Result<usize, SessionError> {
        let mut ended = 0;
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            if decode(&key, &value).is_some_and(|r| r.user == user) {
                self.tree.remove(key)?;
                ended += 1;
            }
        }
        if ended > 0 {
            self.tree.flush()?;
        }
        Ok(ended)
    }

    /// The live sessions of a user.
    pub fn list_user(&self, user: &str) -> Result<Vec<Session>, SessionError> {
        let now = self.clock.now();
        let mut sessions = Vec::new();
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            if let Some(record) = decode(&key, &value)
                && record.user == user
                && record.expires > now
            {
                sessions.push(record.into_session(&key));
            }
        }
        Ok(sessions)
    }

    /// Removes expired (and unreadable) sessions; how many.
    pub fn purge_expired(&self) -> Result<usize, SessionError> {
        // One replica at a time sweeps (the others' turn comes).
        let Some(_sweeping) = self.db.try_exclusive(SWEEP_LOCK)? else {
            return Ok(0);
        };
        let now = self.clock.now();
        let mut removed = 0;
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            if decode(&key, &value).is_none_or(|r| r.expires <= now)
                && self
                    .tree
                    .compare_and_swap(&key, Some(value), None::<&[u8]>)?
                    .is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// How many sessions are stored (expired ones not yet purged included).
    pub fn len(&self) -> Result<usize, SessionError> {
        Ok(self.tree.len()?)
    }

    /// Whether none is stored.
    pub fn is_empty(&self) -> Result<bool, SessionError> {
        Ok(self.tree.is_empty()?)
    }
}

/// The shape of a token idfed makes; anything else is not looked up.
fn well_formed(token: &Secret) -> bool {
    let token = token.expose();
    token.len() == TOKEN_LEN
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hash(token: &Secret) -> [u8; 32] {
    Sha256::digest(token.expose().as_bytes()).into()
}

fn encode(record: &Record) -> Result<Vec<u8>, SessionError> {
    serde_json::to_vec(record)
        .map_err(|e| SessionError::Storage(format!("cannot encode a session: {e}")))
}

/// Decodes a record; an unreadable one is logged by its id (never its content) and treated as absent.
fn decode(key: &[u8], value: &[u8]) -> Option<Record> {
    match serde_json::from_slice(value) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(
                session = %hex::encode(key),
                error_kind = ?e.classify(),
                "unreadable session record"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::lockout::ManualClock;

    fn store() -> (
        tempfile::TempDir,
        crate::store::Db,
        Arc<ManualClock>,
        SessionStore,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
        let clock = Arc::new(ManualClock::new());
        let store = SessionStore::open(&db).unwrap().with_clock(clock.clone());
        (dir, db, clock, store)
    }

    #[test]
    fn tokens_are_random_prefixed_and_stored_only_hashed() {
        let (_dir, db, _clock, store) = store();
        let (token, session) = store.create("alice", &["dev".into()], false).unwrap();
        let (other, _) = store.create("alice", &[], false).unwrap();
        assert_ne!(token, other);
        assert!(token.expose().starts_with("idfs_"));
        assert_eq!(token.expose().len(), TOKEN_LEN);
        assert_eq!(
            session.id,
            hex::encode(Sha256::digest(token.expose().as_bytes()))
        );
        let tree = db.open_tree(SESSIONS_TREE).unwrap();
        assert_eq!(tree.len().unwrap(), 2);
        let secret_part = &token.expose()[TOKEN_PREFIX.len()..];
        for entry in tree.iter() {
            let (key, value) = entry.unwrap();
            assert_eq!(key.len(), 32);
            for bytes in [&key[..], &value[..]] {
                let text = String::from_utf8_lossy(bytes);
                assert!(!text.contains(secret_part), "{text}");
            }
        }
        assert!(!format!("{token:?} {session:?}").contains(secret_part));
    }

    #[test]
    fn get_delete_and_expiry() {
        let (_dir, _db, clock, store) = store();
        let store = store.with_ttl(Duration::from_secs(3600));
        let (token, session) = store.create("alice", &["dev".into()], true).unwrap();
        assert_eq!(session.expires, session.created + Duration::from_secs(3600));
        assert_eq!(store.get(&token).unwrap(), Some(session.clone()));
        assert_eq!(store.get(&Secret::new("idfs_nonsense")).unwrap(), None);
        let mut forged = token.expose().to_owned();
        forged.replace_range(TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + 1, "#");
        assert_eq!(store.get(&Secret::new(forged)).unwrap(), None);

        clock.advance(Duration::from_secs(3599));
        assert!(store.get(&token).unwrap().is_some());
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.get(&token).unwrap(), None, "expired");
        assert!(store.is_empty().unwrap(), "and removed");

        let (token, _) = store.create("alice", &[], false).unwrap();
        store.delete(&token).unwrap();
        assert_eq!(store.get(&token).unwrap(), None);
        store.delete(&token).unwrap();
    }

    #[test]
    fn delete_user_and_purge() {
        let (_dir, _db, clock, store) = store();
        let (a1, _) = store.create("alice", &[], false).unwrap();
        let (a2, _) = store.create("alice", &[], false).unwrap();
        let (b, _) = store.create("bob", &[], false).unwrap();
        assert_eq!(store.list_user("alice").unwrap().len(), 2);
        assert_eq!(store.delete_user("alice").unwrap(), 2);
        assert_eq!(store.get(&a1).unwrap(), None);
        assert_eq!(store.get(&a2).unwrap(), None);
        assert!(store.get(&b).unwrap().is_some());

        clock.advance(DEFAULT_SESSION_TTL - Duration::from_secs(1));
        let (c, _) = store.create("carol", &[], false).unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.purge_expired().unwrap(), 1);
        assert_eq!(store.len().unwrap(), 1);
        assert!(store.get(&c).unwrap().is_some());
    }

    #[test]
    fn group_updates_never_bring_a_session_back() {
        let (_dir, _db, clock, store) = store();
        let (token, session) = store.create("alice", &["dev".into()], false).unwrap();
        clock.advance(Duration::from_secs(10));
        let checked = clock.now();
        let updated = store
            .update_groups(&session.id, &["ops".into()], true, checked)
            .unwrap()
            .unwrap();
        assert_eq!(updated.groups, ["ops"]);
        assert!(updated.is_admin);
        assert_eq!(updated.groups_checked, checked);
        assert_eq!(store.get(&token).unwrap(), Some(updated));
        store.delete(&token).unwrap();
        assert_eq!(
            store
                .update_groups(&session.id, &[], false, checked)
                .unwrap(),
            None
        );
        assert!(store.is_empty().unwrap());
    }

    #[test]
    fn sessions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let token = {
            let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
            SessionStore::open(&db)
                .unwrap()
                .create("alice", &[], false)
                .unwrap()
                .0
        };
        let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
        let store = SessionStore::open(&db).unwrap();
        assert_eq!(store.get(&token).unwrap().unwrap().user, "alice");
    }
}
