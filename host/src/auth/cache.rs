//! In-memory caches in front of the directory: successful password checks (short-lived) and users'
//! groups, with hit and miss counters for metrics.
//!
//! A password check is cached under `SHA-256(salt ‖ len(user) ‖ user ‖ password)`, the salt drawn at
//! random when the cache is made (so per process, never stored); the password itself is never kept, and
//! a different password (or user name) gives a different key. An entry holds only the user's name as
//! the directory spells it: the groups come from the group cache, so that however the two TTLs are set,
//! groups are never older than the group TTL. A password changed in the directory is still accepted
//! until its cached check expires (the password TTL, 60 s by default).
//!
//! Both caches are bounded: when full, expired entries are dropped, then the oldest tenth.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::lockout::Clock;
use crate::secret::Secret;

/// Hits and misses, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Password checks answered from the cache.
    pub auth_hits: u64,
    /// Password checks that went to the directory (the cache being enabled or not; counted by
    /// [`AuthCache::record_auth_miss`]).
    pub auth_misses: u64,
    /// Group lookups answered from the cache.
    pub group_hits: u64,
    /// Group lookups that went to the directory.
    pub group_misses: u64,
}

/// How long entries live and how many there may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a successful password check is reused (default 60 s; zero: never).
    pub auth_ttl: Duration,
    /// How long a user's groups are reused (default 5 min; zero: never).
    pub group_ttl: Duration,
    /// The most entries in each cache (default 10,000).
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            auth_ttl: Duration::from_secs(60),
            group_ttl: Duration::from_secs(5 * 60),
            max_entries: 10_000,
        }
    }
}

/// The cache key of a (user, password) pair: a salted hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordKey([u8; 32]);

impl std::fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordKey(***)")
    }
}

struct Timed<T> {
    value: T,
    at: Instant,
}

/// The password and group caches.
pub struct AuthCache {
    config: CacheConfig,
    clock: std::sync::Arc<dyn Clock>,
    salt: Zeroizing<[u8; 32]>,
    /// Password key → the user's name as the directory spells it.
    auth: Mutex<HashMap<PasswordKey, Timed<String>>>,
    /// User name (as the directory spells it) → groups.
    groups: Mutex<HashMap<String, Timed<Vec<String>>>>,
    auth_hits: AtomicU64,
    auth_misses: AtomicU64,
    group_hits: AtomicU64,
    group_misses: AtomicU64,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AuthCache {
    /// Empty caches, with a fresh random salt.
    pub fn new(
        config: CacheConfig,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Result<Self, getrandom::Error> {
        let mut salt = Zeroizing::new([0u8; 32]);
        getrandom::fill(salt.as_mut())?;
        Ok(AuthCache {
            config,
            clock,
            salt,
            auth: Mutex::default(),
            groups: Mutex::default(),
            auth_hits: AtomicU64::new(0),
            auth_misses: AtomicU64::new(0),
            group_hits: AtomicU64::new(0),
            group_misses: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The key a (user, password) pair is cached under.
    pub fn password_key(&self, user: &str, password: &Secret) -> PasswordKey {
        let mut hash = Sha256::new();
        hash.update(self.salt.as_ref());
        hash.update((user.len() as u64).to_be_bytes());
        hash.update(user.as_bytes());
        hash.update(password.expose().as_bytes());
        PasswordKey(hash.finalize().into())
    }

    /// The user (as the directory spells the name) whose password check under `key` is still fresh.
    /// Counts a hit; a miss is counted when the check goes to the directory ([`Self::record_auth_miss`]),
    /// as a request may look twice (before and after waiting for a concurrent check of the same key).
    pub fn get_auth(&self, key: &PasswordKey) -> Option<String> {
        let found = self.lookup(&self.auth, key, self.config.auth_ttl);
        if found.is_some() {
            self.auth_hits.fetch_add(1, Ordering::Relaxed);
        }
        found.map(|(name, _)| name)
    }

    /// Counts a password check that went to the directory.
    pub fn record_auth_miss(&self) {
        self.auth_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Remembers a successful password check (nothing when the TTL is zero).
    pub fn put_auth(&self, key: PasswordKey, user: &str) {
        self.store(&self.auth, key, user.to_owned(), self.config.auth_ttl);
    }

    /// The user's cached groups, and how old they are. Counts a hit or a miss.
    pub fn get_groups(&self, user: &str) -> Option<(Vec<String>, Duration)> {
        let found = self.lookup(&self.groups, user, self.config.group_ttl);
        count(found.is_some(), &self.group_hits, &self.group_misses);
        found
    }

    /// Remembers a user's groups, fresh from the directory (nothing when the TTL is zero).
    pub fn put_groups(&self, user: &str, groups: Vec<String>) {
        self.store(&self.groups, user.to_owned(), groups, self.config.group_ttl);
    }

    /// Forgets everything about a user (gone from the directory, or inactive).
    pub fn forget_user(&self, user: &str) {
        self.auth.lock().unwrap().retain(|_, e| e.value != user);
        self.groups.lock().unwrap().remove(user);
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            auth_hits: self.auth_hits.load(Ordering::Relaxed),
            auth_misses: self.auth_misses.load(Ordering::Relaxed),
            group_hits: self.group_hits.load(Ordering::Relaxed),
            group_misses: self.group_misses.load(Ordering::Relaxed),
        }
    }

    /// How many entries the two caches hold (expired ones not yet dropped included).
    pub fn len(&self) -> (usize, usize) {
        (
            self.auth.lock().unwrap().len(),
            self.groups.lock().unwrap().len(),
        )
    }

    fn lookup<K, Q, V>(
        &self,
        map: &Mutex<HashMap<K, Timed<V>>>,
        key: &Q,
        ttl: Duration,
    ) -> Option<(V, Duration)>
    where
        K: std::borrow::Borrow<Q> + Eq + std::hash::Hash,
        Q: Eq + std::hash::Hash + ?Sized,
        V: Clone,
    {
        let now = self.clock.instant();
        let mut map = map.lock().unwrap();
        let entry = map.get(key)?;
        let age = now.saturating_duration_since(entry.at);
        if age >= ttl {
            map.remove(key);
            return None;
        }
        Some((entry.value.clone(), age))
    }

    fn store<K: Eq + std::hash::Hash, V>(
        &self,
        map: &Mutex<HashMap<K, Timed<V>>>,
        key: K,
        value: V,
        ttl: Duration,
    ) {
        if ttl.is_zero() {
            return;
        }
        let now = self.clock.instant();
        let max = self.config.max_entries.max(1);
        let mut map = map.lock().unwrap();
        if map.len() >= max && !map.contains_key(&key) {
            map.retain(|_, e| now.saturating_duration_since(e.at) < ttl);
            if map.len() >= max {
                // Still full of live entries: drop the oldest tenth.
                let mut ages: Vec<Instant> = map.values().map(|e| e.at).collect();
                ages.sort_unstable();
                let drop = (map.len() + 1 - max).max(max / 10).min(ages.len());
                let cutoff = ages[drop - 1];
                map.retain(|_, e| e.at > cutoff);
            }
        }
        map.insert(key, Timed { value, at: now });
    }
}

fn count(hit: bool, hits: &AtomicU64, misses: &AtomicU64) {
    if hit { hits } else { misses }.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::lockout::ManualClock;

    fn cache(config: CacheConfig) -> (Arc<ManualClock>, AuthCache) {
        let clock = Arc::new(ManualClock::new());
        let cache = AuthCache::new(config, clock.clone()).unwrap();
        (clock, cache)
    }

    #[test]
    fn keys_depend_on_user_password_and_salt() {
        let (_clock, c) = cache(CacheConfig::default());
        let key = c.password_key("alice", &Secret::new("pw"));
        assert_eq!(key, c.password_key("alice", &Secret::new("pw")));
        assert_ne!(key, c.password_key("alice", &Secret::new("pw2")));
        assert_ne!(key, c.password_key("alic", &Secret::new("epw")));
        let (_clock, other) = cache(CacheConfig::default());
        assert_ne!(key, other.password_key("alice", &Secret::new("pw")));
        assert!(!format!("{key:?}").contains(&hex::encode(key.0)));
    }

    #[test]
    fn entries_expire_and_are_counted() {
        let (clock, c) = cache(CacheConfig::default());
        let key = c.password_key("alice", &Secret::new("pw"));
        assert_eq!(c.get_auth(&key), None);
        c.record_auth_miss();
        c.put_auth(key, "Alice");
        c.put_groups("Alice", vec!["dev".into()]);
        assert_eq!(c.get_auth(&key).as_deref(), Some("Alice"));
        clock.advance(Duration::from_secs(30));
        assert_eq!(
            c.get_groups("Alice"),
            Some((vec!["dev".to_owned()], Duration::from_secs(30)))
        );
        clock.advance(Duration::from_secs(30));
        assert_eq!(c.get_auth(&key), None, "60 s: expired");
        c.record_auth_miss();
        clock.advance(Duration::from_secs(240));
        assert_eq!(c.get_groups("Alice"), None, "5 min: expired");
        assert_eq!(
            c.stats(),
            CacheStats {
                auth_hits: 1,
                auth_misses: 2,
                group_hits: 1,
                group_misses: 1
            }
        );
        assert_eq!(c.len(), (0, 0), "expired entries are dropped when met");
    }

    #[test]
    fn a_zero_ttl_disables() {
        let (_clock, c) = cache(CacheConfig {
            auth_ttl: Duration::ZERO,
            group_ttl: Duration::ZERO,
            max_entries: 10,
        });
        let key = c.password_key("alice", &Secret::new("pw"));
        c.put_auth(key, "alice");
        c.put_groups("alice", vec![]);
        assert_eq!(c.get_auth(&key), None);
        assert_eq!(c.get_groups("alice"), None);
        assert_eq!(c.len(), (0, 0));
    }

    #[test]
    fn bounded_dropping_expired_then_oldest() {
        let (clock, c) = cache(CacheConfig {
            max_entries: 10,
            ..CacheConfig::default()
        });
        for i in 0..10 {
            c.put_groups(&format!("u{i}"), vec![]);
            clock.advance(Duration::from_secs(1));
        }
        c.put_groups("new", vec![]);
        assert_eq!(c.len().1, 10);
        assert_eq!(c.get_groups("u0"), None, "the oldest went");
        assert!(c.get_groups("u1").is_some());
        assert!(c.get_groups("new").is_some());
        clock.advance(Duration::from_secs(300));
        c.put_groups("later", vec![]);
        assert_eq!(c.len().1, 1, "full: the expired went first");
    }

    #[test]
    fn forget_user_drops_both() {
        let (_clock, c) = cache(CacheConfig::default());
        let key = c.password_key("ALICE", &Secret::new("pw"));
        c.put_auth(key, "alice");
        c.put_groups("alice", vec![]);
        c.forget_user("alice");
        assert_eq!(c.get_auth(&key), None);
        assert_eq!(c.get_groups("alice"), None);
    }
}
