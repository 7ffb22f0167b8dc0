//! [`Authenticator`]: logins, sessions and password checks over a [`Directory`], with the caches and the
//! lockout in front of it.
//!
//! A password check runs: lockout check (per user name and per source address) → the password cache →
//! the directory. Concurrent checks of the *same* (user, password) wait for the first and take its
//! answer from the cache, so a client sending many requests at once makes one directory call; different
//! passwords each reserve a slot in the lockout, so a burst of guesses cannot outrun the limit. A wrong
//! password, an unknown user and an inactive account are the same [`AuthError::InvalidCredentials`] and
//! are counted the same way; [`AuthError::Unavailable`] is neither counted nor ever turned into an allow.
//!
//! A session carries the user's groups as last checked; once they are older than the group cache TTL they
//! are checked again (through the group cache, so never older than that TTL), and the administrator flag
//! is worked out again on every request. A user the directory no longer knows, or an inactive one, has
//! all their sessions ended; if the directory is unavailable during a re-check, the request fails with
//! `Unavailable`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::cache::{AuthCache, CacheConfig, CacheStats, PasswordKey};
use super::lockout::Lockout;
pub use super::lockout::{Clock, LockoutConfig, ManualClock, SystemClock};
use super::session::{DEFAULT_SESSION_TTL, SessionError, SessionStore};
use super::{AuthError, Directory, Person};
use crate::model::Identity;
use crate::secret::Secret;

/// How often expired sessions are swept (at a login).
const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// The authenticator's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// Members of these groups are administrators (compared case-insensitively).
    pub admin_groups: Vec<String>,
    /// These users are administrators whatever their groups (for a first start). Compared exactly with
    /// the name as the directory spells it.
    pub bootstrap_admins: Vec<String>,
    /// How long a session lasts (default 8 h), from its login; use does not extend it.
    pub session_ttl: Duration,
    /// How long a successful password check is reused (default 60 s; zero: never).
    pub auth_cache_ttl: Duration,
    /// How long a user's groups are reused, by password checks and sessions alike (default 5 min).
    pub group_cache_ttl: Duration,
    /// Failed-attempt limits.
    pub lockout: LockoutConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            admin_groups: Vec::new(),
            bootstrap_admins: Vec::new(),
            session_ttl: DEFAULT_SESSION_TTL,
            auth_cache_ttl: CacheConfig::default().auth_ttl,
            group_cache_ttl: CacheConfig::default().group_ttl,
            lockout: LockoutConfig::default(),
        }
    }
}

type Flights = Mutex<HashMap<PasswordKey, Arc<AsyncMutex<()>>>>;

/// Authenticates people and keeps their sessions.
pub struct Authenticator {
    directory: Arc<dyn Directory>,
    config: AuthConfig,
    clock: Arc<dyn Clock>,
    sessions: SessionStore,
    cache: AuthCache,
    lockout: Lockout,
    /// Password checks under way, by cache key.
    flights: Flights,
    last_purge: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("directory", &self.directory.kind())
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over `directory`, its sessions in `db` (tree `sessions`).
    pub fn new(
        directory: Arc<dyn Directory>,
        db: &crate::store::Db,
        config: AuthConfig,
    ) -> Result<Self, SessionError> {
        Self::with_clock(directory, db, config, Arc::new(SystemClock))
    }

    /// The same, reading the time from `clock` (tests).
    pub fn with_clock(
        directory: Arc<dyn Directory>,
        db: &crate::store::Db,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SessionError> {
        let sessions = SessionStore::open(db)?
            .with_ttl(config.session_ttl)
            .with_clock(clock.clone());
        let cache = AuthCache::new(
            CacheConfig {
                auth_ttl: config.auth_cache_ttl,
                group_ttl: config.group_cache_ttl,
                ..CacheConfig::default()
            },
            clock.clone(),
        )
        .map_err(|e| SessionError::Randomness(format!("for the password cache's salt: {e}")))?;
        let mut lockout = Lockout::new(config.lockout.clone(), clock.clone());
        // Several replicas count failed logins together.
        if let crate::store::Db::Postgres(_) = db {
            lockout = lockout.shared(db.open_tree(super::lockout::LOCKOUTS_TREE)?);
        }
        Ok(Authenticator {
            directory,
            config,
            clock,
            sessions,
            cache,
            lockout,
            flights: Mutex::default(),
            last_purge: Mutex::new(None),
        })
    }

    /// The directory's kind (`crowd`, `static`).
    pub fn directory_kind(&self) -> &'static str {
        self.directory.kind()
    }

    /// The groups whose members are administrators, as configured (compared case-insensitively).
    pub fn admin_groups(&self) -> &[String] {
        &self.config.admin_groups
    }

    /// Every group the directory has, at most `limit`, sorted (see [`Directory::list_groups`]): for an
    /// administrator picking a connector's groups, never for authorization. Asks the directory each time
    /// (nothing cached). `Unsupported` when the directory cannot list its groups.
    pub async fn list_groups(&self, limit: usize) -> Result<Vec<String>, AuthError> {
        match self.directory.list_groups(limit).await {
            Ok(mut groups) => {
                groups.truncate(limit);
                Ok(groups)
            }
            Err(AuthError::Unavailable(detail)) => {
                tracing::warn!(directory = self.directory.kind(), %detail, "directory unavailable for listing groups");
                Err(AuthError::Unavailable(detail))
            }
            Err(other) => Err(other),
        }
    }

    /// The sessions (for administration: listing, ending a user's).
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// Checks a password and starts a session: its token and the identity.
    pub async fn login(
        &self,
        user: &str,
        password: &Secret,
        source_ip: Option<&str>,
    ) -> Result<(Secret, Identity), AuthError> {
        let identity = self
            .authenticate_password(user, password, source_ip)
            .await?;
        let token = self.start_session(&identity, "password")?;
        Ok((token, identity))
    }

    /// Checks a password without starting a session (HTTP Basic on the API, the CLI).
    pub async fn authenticate_password(
        &self,
        user: &str,
        password: &Secret,
        source_ip: Option<&str>,
    ) -> Result<Identity, AuthError> {
        self.lockout.check(user, source_ip)?;
        let key = self.cache.password_key(user, password);
        if let Some(identity) = self.cached_check(&key, user).await? {
            return Ok(identity);
        }

        let mut flight = self.flight(key);
        flight.guard = Some(flight.lock.clone().lock_owned().await);
        if let Some(identity) = self.cached_check(&key, user).await? {
            // Another request with the same password has just been answered by the directory.
            return Ok(identity);
        }

        let attempt = self.lockout.begin(user, source_ip)?;
        let result = if password.is_empty() {
            Err(AuthError::InvalidCredentials)
        } else {
            self.cache.record_auth_miss();
            self.directory.authenticate(user, password).await
        };
        match result {
            Ok(person) if person.active => {
                attempt.succeeded();
                self.cache.put_groups(&person.name, person.groups.clone());
                self.cache.put_auth(key, &person.name);
                tracing::debug!(user = %person.name, directory = self.directory.kind(), "password accepted");
                Ok(self.identity(person.name, person.groups))
            }
            Ok(person) => {
                attempt.failed();
                tracing::info!(user = %person.name, source_ip, "login refused: inactive account");
                Err(AuthError::InvalidCredentials)
            }
            Err(AuthError::InvalidCredentials) => {
                attempt.failed();
                tracing::info!(
                    user,
                    source_ip,
                    "login refused: wrong password or unknown user"
                );
                Err(AuthError::InvalidCredentials)
            }
            Err(AuthError::Unavailable(detail)) => {
                drop(attempt);
                tracing::warn!(directory = self.directory.kind(), %detail, "directory unavailable for a login");
                Err(AuthError::Unavailable(detail))
            }
            Err(other) => {
                drop(attempt);
                Err(other)
            }
        }
    }

    /// The identity a session token stands for, its groups re-checked once older than the group TTL.
    pub async fn session(&self, token: &Secret) -> Result<Identity, AuthError> {
        let session = self
            .sessions
            .get(token)
            .map_err(store_unavailable)?
            .ok_or(AuthError::InvalidSession)?;
        let now = self.clock.now();
        let fresh = now
            .duration_since(session.groups_checked)
            .is_ok_and(|age| age < self.config.group_cache_ttl);
        if fresh {
            return Ok(self.identity(session.user, session.groups));
        }
        let (groups, age) = match self.current_groups(&session.user).await {
            Ok(found) => found,
            Err(AuthError::InvalidCredentials) => return Err(AuthError::InvalidSession),
            Err(other) => return Err(other),
        };
        let is_admin = self.is_admin(&session.user, &groups);
        let checked = now.checked_sub(age).unwrap_or(now);
        match self
            .sessions
            .update_groups(&session.id, &groups, is_admin, checked)
        {
            Ok(Some(_)) => {}
            Ok(None) => return Err(AuthError::InvalidSession),
            Err(e) => tracing::warn!(error = %e, "cannot record a session's group check"),
        }
        Ok(self.identity(session.user, groups))
    }

    /// Validates a directory SSO token (Crowd's cookie) and starts a session. An unknown, expired or
    /// inactive user's token is `InvalidSession`. Not subject to the lockout: SSO tokens are not
    /// guessable, and a browser's stale cookie must not lock its address out of password logins.
    pub async fn login_sso(
        &self,
        directory_token: &Secret,
        source_ip: Option<&str>,
    ) -> Result<(Secret, Identity), AuthError> {
        let person: Person = match self
            .directory
            .validate_sso_token(directory_token, source_ip)
            .await
        {
            Ok(person) if person.active => person,
            Ok(_) | Err(AuthError::InvalidCredentials | AuthError::InvalidSession) => {
                tracing::info!(source_ip, "SSO token refused");
                return Err(AuthError::InvalidSession);
            }
            Err(other) => return Err(other),
        };
        self.cache.put_groups(&person.name, person.groups.clone());
        let identity = self.identity(person.name, person.groups);
        let token = self.start_session(&identity, "sso")?;
        Ok((token, identity))
    }

    /// Ends a session (logout); an unknown token is no error.
    pub fn logout(&self, token: &Secret) -> Result<(), AuthError> {
        self.sessions.delete(token).map_err(store_unavailable)
    }

    /// Ends every session of a user and forgets their cached checks; how many sessions.
    pub fn end_user_sessions(&self, user: &str) -> Result<usize, AuthError> {
        self.cache.forget_user(user);
        self.sessions.delete_user(user).map_err(store_unavailable)
    }

    /// The caches' hits and misses.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Whether `user` with `groups` is an administrator.
    pub fn is_admin(&self, user: &str, groups: &[String]) -> bool {
        self.config.bootstrap_admins.iter().any(|b| b == user)
            || groups.iter().any(|g| {
                self.config
                    .admin_groups
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(g))
            })
    }

    fn identity(&self, name: String, groups: Vec<String>) -> Identity {
        let is_admin = self.is_admin(&name, &groups);
        Identity::User {
            name,
            groups,
            is_admin,
        }
    }

    fn start_session(&self, identity: &Identity, method: &str) -> Result<Secret, AuthError> {
        let Identity::User {
            name,
            groups,
            is_admin,
        } = identity
        else {
            unreachable!("sessions are for people");
        };
        self.maybe_purge();
        let (token, session) = self
            .sessions
            .create(name, groups, *is_admin)
            .map_err(store_unavailable)?;
        tracing::info!(user = %name, session = %&session.id[..12], method, "session started");
        Ok(token)
    }

    /// An answer from the password cache: the user, with their groups (from the group cache or, if
    /// expired there, the directory). `None` on a miss, or when the user is gone from the directory.
    async fn cached_check(
        &self,
        key: &PasswordKey,
        user: &str,
    ) -> Result<Option<Identity>, AuthError> {
        let Some(name) = self.cache.get_auth(key) else {
            return Ok(None);
        };
        match self.current_groups(&name).await {
            Ok((groups, _)) => {
                self.lockout.record_success(user);
                Ok(Some(self.identity(name, groups)))
            }
            // Gone or inactive: the directory will say so again, and the failure will be counted.
            Err(AuthError::InvalidCredentials) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// A user's groups and how old they are: from the cache, else the directory. A user the directory
    /// does not know (or an inactive one) is forgotten and their sessions ended.
    /// `user`'s groups as the directory says them now, not from any cache (for decisions that must hold
    /// at the moment they are made: an approval). The group cache is refreshed with them.
    pub async fn groups_now(&self, user: &str) -> Result<Vec<String>, AuthError> {
        let groups = self.directory.groups(user).await?;
        self.cache.put_groups(user, groups.clone());
        Ok(groups)
    }

    async fn current_groups(&self, user: &str) -> Result<(Vec<String>, Duration), AuthError> {
        if let Some(found) = self.cache.get_groups(user) {
            return Ok(found);
        }
        match self.directory.groups(user).await {
            Ok(groups) => {
                self.cache.put_groups(user, groups.clone());
                Ok((groups, Duration::ZERO))
            }
            Err(AuthError::InvalidCredentials) => {
                let ended = self.end_user_sessions(user);
                tracing::info!(user, ended = ?ended, "user unknown to the directory or inactive: sessions ended");
                Err(AuthError::InvalidCredentials)
            }
            Err(AuthError::Unavailable(detail)) => {
                tracing::warn!(directory = self.directory.kind(), %detail, "directory unavailable for a group check");
                Err(AuthError::Unavailable(detail))
            }
            Err(other) => Err(other),
        }
    }

    fn flight(&self, key: PasswordKey) -> Flight<'_> {
        let mut flights = self.flights.lock().unwrap();
        let lock = flights.entry(key).or_default().clone();
        Flight {
            flights: &self.flights,
            key,
            lock,
            guard: None,
        }
    }

    fn maybe_purge(&self) {
        let now = self.clock.instant();
        {
            let mut last = self.last_purge.lock().unwrap();
            if last.is_some_and(|at| now.saturating_duration_since(at) < PURGE_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        match self.sessions.purge_expired() {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
        }
    }
}

/// One password check under way for a cache key; others with the same key wait for it.
struct Flight<'a> {
    flights: &'a Flights,
    key: PasswordKey,
    lock: Arc<AsyncMutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.guard = None;
        if let Ok(mut flights) = self.flights.lock()
            && Arc::strong_count(&self.lock) == 2
        {
            flights.remove(&self.key);
        }
    }
}

fn store_unavailable(e: SessionError) -> AuthError {
    tracing::error!(error = %e, "session store failed");
    AuthError::StoreUnavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use sha2::Digest as _;

    use crate::auth::session::SESSIONS_TREE;
    use crate::sts::BoxFuture;

    #[derive(Clone)]
    struct TestUser {
        password: String,
        groups: Vec<String>,
        active: bool,
    }

    /// An in-memory directory that counts its calls.
    #[derive(Default)]
    struct TestDirectory {
        users: Mutex<HashMap<String, TestUser>>,
        sso_tokens: Mutex<HashMap<String, String>>,
        unavailable: AtomicBool,
        /// Makes `authenticate` take a little while (for the concurrency tests).
        slow: AtomicBool,
        auth_calls: AtomicUsize,
        group_calls: AtomicUsize,
        /// The `limit`s `list_groups` was called with.
        list_limits: Mutex<Vec<usize>>,
        /// Makes `list_groups` answer `Unsupported`, as a directory without a listing does.
        cannot_list: AtomicBool,
    }

    impl TestDirectory {
        fn with(users: &[(&str, &str, &[&str])]) -> Arc<Self> {
            let dir = TestDirectory::default();
            for (name, password, groups) in users {
                dir.set_user(name, password, groups, true);
            }
            Arc::new(dir)
        }

        fn set_user(&self, name: &str, password: &str, groups: &[&str], active: bool) {
            self.users.lock().unwrap().insert(
                name.to_owned(),
                TestUser {
                    password: password.to_owned(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                    active,
                },
            );
        }

        fn person(&self, name: &str) -> Option<Person> {
            let users = self.users.lock().unwrap();
            let user = users.get(name)?;
            Some(Person {
                name: name.to_owned(),
                display_name: name.to_uppercase(),
                email: None,
                active: user.active,
                groups: user.groups.clone(),
            })
        }

        fn check(&self) -> Result<(), AuthError> {
            if self.unavailable.load(Ordering::SeqCst) {
                Err(AuthError::Unavailable("test directory down".into()))
            } else {
                Ok(())
            }
        }

        fn auth_calls(&self) -> usize {
            self.auth_calls.load(Ordering::SeqCst)
        }

        fn group_calls(&self) -> usize {
            self.group_calls.load(Ordering::SeqCst)
        }
    }

    impl Directory for TestDirectory {
        fn kind(&self) -> &'static str {
            "test"
        }

        fn authenticate<'a>(
            &'a self,
            user: &'a str,
            password: &'a Secret,
        ) -> BoxFuture<'a, Result<Person, AuthError>> {
            Box::pin(async move {
                self.auth_calls.fetch_add(1, Ordering::SeqCst);
                if self.slow.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                self.check()?;
                let right = self
                    .users
                    .lock()
                    .unwrap()
                    .get(user)
                    .is_some_and(|u| u.password == password.expose());
                match self.person(user) {
                    Some(person) if right => Ok(person),
                    _ => Err(AuthError::InvalidCredentials),
                }
            })
        }

        fn groups<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<String>, AuthError>> {
            Box::pin(async move {
                self.group_calls.fetch_add(1, Ordering::SeqCst);
                self.check()?;
                match self.person(user) {
                    Some(person) if person.active => Ok(person.groups),
                    _ => Err(AuthError::InvalidCredentials),
                }
            })
        }

        fn validate_sso_token<'a>(
            &'a self,
            token: &'a Secret,
            _remote_address: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Person, AuthError>> {
            Box::pin(async move {
                self.check()?;
                let user = self.sso_tokens.lock().unwrap().get(token.expose()).cloned();
                user.and_then(|u| self.person(&u))
                    .ok_or(AuthError::InvalidSession)
            })
        }

        /// Every user's groups (inactive users' too), sorted, ignoring `limit` (the authenticator enforces it).
        fn list_groups<'a>(
            &'a self,
            limit: usize,
        ) -> BoxFuture<'a, Result<Vec<String>, AuthError>> {
            Box::pin(async move {
                self.list_limits.lock().unwrap().push(limit);
                if self.cannot_list.load(Ordering::SeqCst) {
                    return Err(AuthError::Unsupported);
                }
                self.check()?;
                let mut groups: Vec<String> = self
                    .users
                    .lock()
                    .unwrap()
                    .values()
                    .flat_map(|u| u.groups.clone())
                    .collect();
                crate::auth::sort_group_names(&mut groups);
                Ok(groups)
            })
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        db: crate::store::Db,
        clock: Arc<ManualClock>,
        directory: Arc<TestDirectory>,
        auth: Authenticator,
    }

    fn fixture(config: AuthConfig) -> Fixture {
        let directory = TestDirectory::with(&[
            ("alice", "alice-pw", &["dev", "Idfed-Admins"]),
            ("bob", "bob-pw", &["dev"]),
            ("root", "root-pw", &[]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
        let clock = Arc::new(ManualClock::new());
        let auth =
            Authenticator::with_clock(directory.clone(), &db, config, clock.clone()).unwrap();
        Fixture {
            _dir: dir,
            db,
            clock,
            directory,
            auth,
        }
    }

    fn config() -> AuthConfig {
        AuthConfig {
            admin_groups: vec!["idfed-admins".into()],
            bootstrap_admins: vec!["root".into()],
            ..AuthConfig::default()
        }
    }

    fn pw(s: &str) -> Secret {
        Secret::new(s)
    }

    fn user(identity: &Identity) -> (&str, &[String], bool) {
        match identity {
            Identity::User {
                name,
                groups,
                is_admin,
            } => (name, groups, *is_admin),
            other => panic!("{other:?}"),
        }
    }

    fn retry_after<T: std::fmt::Debug>(result: Result<T, AuthError>) -> Duration {
        match result {
            Err(AuthError::TooManyAttempts { retry_after }) => retry_after,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[tokio::test]
    async fn admin_by_group_case_insensitively_and_by_bootstrap_name() {
        let f = fixture(config());
        let alice = f
            .auth
            .authenticate_password("alice", &pw("alice-pw"), None)
            .await
            .unwrap();
        assert_eq!(
            user(&alice),
            (
                "alice",
                &["dev".to_owned(), "Idfed-Admins".to_owned()][..],
                true
            )
        );
        let bob = f
            .auth
            .authenticate_password("bob", &pw("bob-pw"), None)
            .await
            .unwrap();
        assert!(!user(&bob).2);
        let root = f
            .auth
            .authenticate_password("root", &pw("root-pw"), None)
            .await
            .unwrap();
        assert!(user(&root).2, "bootstrap administrator without groups");
        assert!(!f.auth.is_admin("Root", &[]), "bootstrap names are exact");
    }

    #[test]
    fn admin_groups_are_those_configured() {
        let f = fixture(config());
        assert_eq!(f.auth.admin_groups(), ["idfed-admins"]);
        let f = fixture(AuthConfig::default());
        assert!(f.auth.admin_groups().is_empty());
    }

    #[tokio::test]
    async fn listing_groups_asks_the_directory_each_time_and_keeps_to_the_limit() {
        let f = fixture(config());
        // alice: dev, Idfed-Admins; bob: dev; root: none.
        assert_eq!(
            f.auth.list_groups(100).await.unwrap(),
            ["dev", "Idfed-Admins"]
        );
        f.directory.set_user("carol", "carol-pw", &["audit"], false);
        assert_eq!(
            f.auth.list_groups(100).await.unwrap(),
            ["audit", "dev", "Idfed-Admins"]
        );
        // The directory here ignores the limit: the authenticator keeps to it all the same.
        assert_eq!(f.auth.list_groups(2).await.unwrap(), ["audit", "dev"]);
        assert!(f.auth.list_groups(0).await.unwrap().is_empty());
        assert_eq!(*f.directory.list_limits.lock().unwrap(), [100, 100, 2, 0]);

        f.directory.unavailable.store(true, Ordering::SeqCst);
        assert!(matches!(
            f.auth.list_groups(10).await,
            Err(AuthError::Unavailable(_))
        ));
        f.directory.unavailable.store(false, Ordering::SeqCst);
        f.directory.cannot_list.store(true, Ordering::SeqCst);
        assert_eq!(f.auth.list_groups(10).await, Err(AuthError::Unsupported));
        // Listing is not a login: nothing counted, nothing cached.
        assert_eq!(f.auth.lockout.len(), 0);
        assert_eq!(
            (f.directory.auth_calls(), f.directory.group_calls()),
            (0, 0)
        );
    }

    #[tokio::test]
    async fn a_cache_hit_avoids_the_directory_but_not_for_another_password() {
        let f = fixture(config());
        for _ in 0..3 {
            f.auth
                .authenticate_password("bob", &pw("bob-pw"), None)
                .await
                .unwrap();
        }
        assert_eq!(f.directory.auth_calls(), 1);
        assert_eq!(
            f.directory.group_calls(),
            0,
            "groups came with the password check"
        );
        assert_eq!(
            f.auth
                .authenticate_password("bob", &pw("bob-pw "), None)
                .await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(
            f.auth.authenticate_password("bob", &pw(""), None).await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(
            f.directory.auth_calls(),
            2,
            "an empty password never reaches the directory"
        );
        let stats = f.auth.stats();
        assert_eq!((stats.auth_hits, stats.auth_misses), (2, 2));

        // The password changes: the old one still works until its cached check expires.
        f.directory.set_user("bob", "new-pw", &["dev"], true);
        f.auth
            .authenticate_password("bob", &pw("bob-pw"), None)
            .await
            .unwrap();
        f.clock.advance(Duration::from_secs(60));
        assert_eq!(
            f.auth
                .authenticate_password("bob", &pw("bob-pw"), None)
                .await,
            Err(AuthError::InvalidCredentials)
        );
        f.auth
            .authenticate_password("bob", &pw("new-pw"), None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_zero_ttl_disables_the_password_cache() {
        let f = fixture(AuthConfig {
            auth_cache_ttl: Duration::ZERO,
            ..config()
        });
        for _ in 0..3 {
            f.auth.login("bob", &pw("bob-pw"), None).await.unwrap();
        }
        assert_eq!(f.directory.auth_calls(), 3);
    }

    #[tokio::test]
    async fn removal_from_a_group_takes_effect_once_the_group_cache_expires() {
        let f = fixture(config());
        let (token, identity) = f.auth.login("alice", &pw("alice-pw"), None).await.unwrap();
        assert!(user(&identity).2);
        f.directory.set_user("alice", "alice-pw", &["dev"], true);

        f.clock.advance(Duration::from_secs(299));
        assert!(
            user(&f.auth.session(&token).await.unwrap()).2,
            "not checked yet"
        );
        // A cached password check within the TTL gives the cached groups too.
        assert_eq!(f.directory.group_calls(), 0);

        f.clock.advance(Duration::from_secs(1));
        let now = f.auth.session(&token).await.unwrap();
        assert_eq!(user(&now), ("alice", &["dev".to_owned()][..], false));
        assert_eq!(f.directory.group_calls(), 1);
        // Checked: not again before another TTL.
        f.clock.advance(Duration::from_secs(299));
        f.auth.session(&token).await.unwrap();
        assert_eq!(f.directory.group_calls(), 1);
        f.clock.advance(Duration::from_secs(1));
        f.auth.session(&token).await.unwrap();
        assert_eq!(f.directory.group_calls(), 2);

        // A password check from the cache does not outlive the groups either.
        let f = fixture(AuthConfig {
            auth_cache_ttl: Duration::from_secs(600),
            ..config()
        });
        f.auth
            .authenticate_password("alice", &pw("alice-pw"), None)
            .await
            .unwrap();
        f.directory.set_user("alice", "alice-pw", &["dev"], true);
        f.clock.advance(Duration::from_secs(300));
        let identity = f
            .auth
            .authenticate_password("alice", &pw("alice-pw"), None)
            .await
            .unwrap();
        assert!(!user(&identity).2);
        assert_eq!(
            (f.directory.auth_calls(), f.directory.group_calls()),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn a_user_gone_from_the_directory_or_inactive_loses_their_sessions() {
        let f = fixture(config());
        let (t1, _) = f.auth.login("bob", &pw("bob-pw"), None).await.unwrap();
        let (t2, _) = f.auth.login("bob", &pw("bob-pw"), None).await.unwrap();
        let (alice, _) = f.auth.login("alice", &pw("alice-pw"), None).await.unwrap();
        f.directory.set_user("bob", "bob-pw", &["dev"], false);
        f.clock.advance(Duration::from_secs(300));
        assert_eq!(f.auth.session(&t1).await, Err(AuthError::InvalidSession));
        // Active again: the sessions stay ended.
        f.directory.set_user("bob", "bob-pw", &["dev"], true);
        assert_eq!(f.auth.session(&t2).await, Err(AuthError::InvalidSession));
        f.auth.session(&alice).await.unwrap();

        f.directory.users.lock().unwrap().remove("alice");
        f.clock.advance(Duration::from_secs(300));
        assert_eq!(f.auth.session(&alice).await, Err(AuthError::InvalidSession));
        assert!(f.auth.sessions().is_empty().unwrap());
    }

    #[tokio::test]
    async fn an_inactive_account_is_refused_like_a_wrong_password() {
        let f = fixture(config());
        f.directory.set_user("bob", "bob-pw", &["dev"], false);
        assert_eq!(
            f.auth.login("bob", &pw("bob-pw"), None).await,
            Err(AuthError::InvalidCredentials)
        );
    }

    /// Fails `user` with a wrong password, waiting out any delay first; the answer.
    async fn fail(f: &Fixture, user: &str, ip: Option<&str>) -> Result<Identity, AuthError> {
        if let Err(AuthError::TooManyAttempts { retry_after }) = f.auth.lockout.check(user, ip) {
            f.clock.advance(retry_after);
        }
        f.auth.authenticate_password(user, &pw("wrong"), ip).await
    }

    #[tokio::test]
    async fn lockout_after_n_failures_the_same_for_unknown_users_and_recovery() {
        let f = fixture(config());
        let mut answers = HashMap::new();
        for name in ["bob", "nobody"] {
            let mut seen = Vec::new();
            for _ in 0..5 {
                seen.push(fail(&f, name, None).await);
            }
            assert!(
                seen.iter()
                    .all(|a| *a == Err(AuthError::InvalidCredentials))
            );
            // Locked: even the right password is refused, without asking the directory.
            let calls = f.directory.auth_calls();
            let password = if name == "bob" { "bob-pw" } else { "any" };
            seen.push(
                f.auth
                    .login(name, &pw(password), None)
                    .await
                    .map(|(_, i)| i),
            );
            assert_eq!(f.directory.auth_calls(), calls);
            answers.insert(name, seen);
        }
        assert_eq!(answers["bob"], answers["nobody"]);
        assert_eq!(
            answers["bob"][5],
            Err(AuthError::TooManyAttempts {
                retry_after: Duration::from_secs(300)
            })
        );

        // Others are not affected; bob recovers once the lockout ends, and a success resets his count.
        f.auth.login("alice", &pw("alice-pw"), None).await.unwrap();
        let wait = retry_after(f.auth.login("bob", &pw("bob-pw"), None).await);
        f.clock.advance(wait - Duration::from_secs(1));
        retry_after(f.auth.login("bob", &pw("bob-pw"), None).await);
        f.clock.advance(Duration::from_secs(1));
        f.auth.login("bob", &pw("bob-pw"), None).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                fail(&f, "bob", None).await,
                Err(AuthError::InvalidCredentials)
            );
        }
        f.auth.login("bob", &pw("bob-pw"), None).await.unwrap();
    }

    #[tokio::test]
    async fn a_cached_password_does_not_get_past_a_lockout() {
        let f = fixture(config());
        f.auth.login("bob", &pw("bob-pw"), None).await.unwrap();
        for _ in 0..5 {
            fail(&f, "bob", None).await.unwrap_err();
        }
        retry_after(f.auth.login("bob", &pw("bob-pw"), None).await);
    }

    #[tokio::test]
    async fn per_address_lockout_across_user_names() {
        let f = fixture(AuthConfig {
            lockout: LockoutConfig {
                max_failures_per_address: 8,
                ..LockoutConfig::default()
            },
            ..config()
        });
        let ip = Some("192.0.2.7");
        for i in 0..8 {
            assert_eq!(
                fail(&f, &format!("user{i}"), ip).await,
                Err(AuthError::InvalidCredentials)
            );
        }
        // The address is locked for every name, right password or not; other addresses are not.
        retry_after(f.auth.login("bob", &pw("bob-pw"), ip).await);
        f.auth
            .login("bob", &pw("bob-pw"), Some("192.0.2.8"))
            .await
            .unwrap();
        f.auth.login("bob", &pw("bob-pw"), None).await.unwrap();
        // A success by one user does not clear the address.
        retry_after(f.auth.login("bob", &pw("bob-pw"), ip).await);
        f.clock.advance(Duration::from_secs(300));
        f.auth.login("bob", &pw("bob-pw"), ip).await.unwrap();
    }

    #[tokio::test]
    async fn unavailable_is_not_counted_and_never_allows() {
        let f = fixture(config());
        let (token, _) = f.auth.login("bob", &pw("bob-pw"), None).await.unwrap();
        f.directory.unavailable.store(true, Ordering::SeqCst);
        for password in ["wrong", "alice-pw", "x"].iter().cycle().take(20) {
            let answer = f
                .auth
                .authenticate_password("alice", &pw(password), Some("192.0.2.1"))
                .await;
            assert!(
                matches!(answer, Err(AuthError::Unavailable(_))),
                "{answer:?}"
            );
        }
        // A session due for its group check cannot be used while the directory is down.
        f.clock.advance(Duration::from_secs(300));
        assert!(matches!(
            f.auth.session(&token).await,
            Err(AuthError::Unavailable(_))
        ));
        assert!(matches!(
            f.auth.login_sso(&pw("anything"), None).await,
            Err(AuthError::Unavailable(_))
        ));

        f.directory.unavailable.store(false, Ordering::SeqCst);
        // Nothing was counted: not even a delay.
        assert_eq!(f.auth.lockout.len(), 0);
        f.auth
            .login("alice", &pw("alice-pw"), Some("192.0.2.1"))
            .await
            .unwrap();
        f.auth.session(&token).await.unwrap();
    }

    #[tokio::test]
    async fn sessions_expire_logout_ends_them_and_tokens_are_stored_hashed() {
        let f = fixture(AuthConfig {
            session_ttl: Duration::from_secs(3600),
            ..config()
        });
        let (token, identity) = f.auth.login("alice", &pw("alice-pw"), None).await.unwrap();
        assert!(token.expose().starts_with("idfs_"));
        assert_eq!(f.auth.session(&token).await.unwrap(), identity);
        assert_eq!(
            f.auth.session(&pw("idfs_forged")).await,
            Err(AuthError::InvalidSession)
        );

        let tree = f.db.open_tree(SESSIONS_TREE).unwrap();
        for entry in tree.iter() {
            let (key, value) = entry.unwrap();
            assert_eq!(
                &key[..],
                &sha2::Sha256::digest(token.expose().as_bytes())[..]
            );
            assert!(!String::from_utf8_lossy(&value).contains(&token.expose()[5..]));
        }

        f.clock.advance(Duration::from_secs(3600));
        assert_eq!(f.auth.session(&token).await, Err(AuthError::InvalidSession));
        assert!(f.auth.sessions().is_empty().unwrap());

        let (token, _) = f.auth.login("alice", &pw("alice-pw"), None).await.unwrap();
        f.auth.logout(&token).unwrap();
        assert_eq!(f.auth.session(&token).await, Err(AuthError::InvalidSession));
        f.auth.logout(&token).unwrap();
    }

    #[tokio::test]
    async fn sso_login() {
        let f = fixture(config());
        f.directory
            .sso_tokens
            .lock()
            .unwrap()
            .insert("crowd-token".into(), "alice".into());
        let (token, identity) = f
            .auth
            .login_sso(&pw("crowd-token"), Some("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(user(&identity).0, "alice");
        assert_eq!(f.auth.session(&token).await.unwrap(), identity);
        assert_eq!(
            f.auth.login_sso(&pw("stale"), None).await,
            Err(AuthError::InvalidSession)
        );
        f.directory.set_user("alice", "alice-pw", &[], false);
        assert_eq!(
            f.auth.login_sso(&pw("crowd-token"), None).await,
            Err(AuthError::InvalidSession)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_of_one_password_make_one_call_and_guesses_cannot_outrun_the_limit() {
        let f = Arc::new(fixture(config()));
        f.directory.slow.store(true, Ordering::SeqCst);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let f = f.clone();
                tokio::spawn(async move {
                    f.auth
                        .authenticate_password("bob", &pw("bob-pw"), None)
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(f.directory.auth_calls(), 1);
        assert!(f.auth.flights.lock().unwrap().is_empty());

        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let f = f.clone();
                tokio::spawn(async move {
                    f.auth
                        .authenticate_password("alice", &pw(&format!("guess{i}")), None)
                        .await
                })
            })
            .collect();
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Err(AuthError::InvalidCredentials) => {}
                Err(AuthError::TooManyAttempts { .. }) => refused += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(
            f.directory.auth_calls() <= 1 + 5,
            "{}",
            f.directory.auth_calls()
        );
        assert!(refused >= 15);
        retry_after(f.auth.login("alice", &pw("alice-pw"), None).await);
    }
}
