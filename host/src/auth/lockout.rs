//! Brute-force protection: failed password attempts counted per user name and per source address.
//!
//! Each key (a user name, lower-cased, or an address) keeps the times of its recent failures. Within
//! [`LockoutConfig::window`], once more than half of the allowed failures are used up, every further
//! failure imposes a growing delay (1 s, 2 s, 4 s… by default) before the next attempt is accepted; the
//! last allowed failure locks the key for [`LockoutConfig::lockout`], doubled on every repeated lockout
//! up to [`LockoutConfig::max_lockout`]. An attempt refused this way is answered with
//! [`AuthError::TooManyAttempts`] and is not itself counted. A key forgets its history once it has been
//! quiet (no failure, no block) for a whole window.
//!
//! The caller never says whether the user exists: unknown users and wrong passwords are counted, and
//! answered, the same way. A success resets the user's key, not the address's (else one valid account
//! would let an address guess the passwords of others without end).
//!
//! Attempts in flight count too: [`Lockout::begin`] reserves a slot on both keys, and refuses when the
//! failures plus the attempts under way would reach the limit, so a burst of concurrent guesses cannot
//! get past the limit before the first failures are recorded. (The authenticator coalesces concurrent
//! attempts with the *same* password, so a client sending many requests at once is not refused.)
//!
//! State is in memory and bounded ([`LockoutConfig::max_entries`]): when full, forgotten keys are dropped
//! first, then the keys quiet for longest. The clock is injected ([`Clock`]) so that tests need not sleep.
//!
//! With several replicas ([`Lockout::shared`], on PostgreSQL) the failures, blocks and lockout counts are
//! kept in the shared database too (tree `lockouts`, times as wall-clock milliseconds): every attempt
//! reads them first and every failure is added to them atomically, so failures on two replicas count
//! together. Attempts in flight stay each replica's own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::store::db::Tree;

/// The tree of shared failure records (PostgreSQL).
pub const LOCKOUTS_TREE: &str = "lockouts";

/// Where the authentication code reads the time: the system, or a test's hand-driven clock.
pub trait Clock: Send + Sync {
    /// The wall-clock time (stored times: sessions).
    fn now(&self) -> SystemTime;
    /// A monotonic time (in-memory times: caches, lockouts).
    fn instant(&self) -> Instant;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to (for tests).
#[derive(Debug)]
pub struct ManualClock {
    start: SystemTime,
    start_instant: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the present moment.
    pub fn new() -> Self {
        ManualClock {
            start: SystemTime::now(),
            start_instant: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap() += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.start + *self.elapsed.lock().unwrap()
    }

    fn instant(&self) -> Instant {
        self.start_instant + *self.elapsed.lock().unwrap()
    }
}

/// How failed attempts are limited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failures per user name within the window that lock the name (default 5).
    pub max_failures: u32,
    /// Failures per source address within the window that lock the address (default 20: an office
    /// behind one NAT address, or a proxy that hides the callers' addresses, must not be locked out by
    /// a handful of typos).
    pub max_failures_per_address: u32,
    /// The window failures are counted in (default 15 min).
    pub window: Duration,
    /// The first delay, doubled on each further failure, imposed once more than half of the allowed
    /// failures are used (default 1 s; zero: no delays, only the lockout).
    pub delay: Duration,
    /// The first lockout (default 5 min).
    pub lockout: Duration,
    /// The longest lockout, however often it repeats (default 1 h).
    pub max_lockout: Duration,
    /// How many keys (user names and addresses) are tracked at most (default 100,000).
    pub max_entries: usize,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures: 5,
            max_failures_per_address: 20,
            window: Duration::from_secs(15 * 60),
            delay: Duration::from_secs(1),
            lockout: Duration::from_secs(5 * 60),
            max_lockout: Duration::from_secs(60 * 60),
            max_entries: 100_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(String),
}

impl Key {
    fn user(name: &str) -> Key {
        Key::User(name.to_lowercase())
    }

    /// The key's name in the shared tree.
    fn stored(&self) -> Vec<u8> {
        match self {
            Key::User(name) => format!("user:{name}"),
            Key::Address(address) => format!("address:{address}"),
        }
        .into_bytes()
    }
}

/// An [`Entry`] as the replicas share it: wall-clock milliseconds since the epoch.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SharedEntry {
    failures: Vec<u64>,
    blocked_until: Option<u64>,
    lockouts: u32,
    last_event: Option<u64>,
}

/// Converts between this process's monotonic instants and wall-clock milliseconds, at one moment.
struct Moment {
    instant: Instant,
    wall_ms: u64,
}

impl Moment {
    fn now(clock: &dyn Clock) -> Self {
        Moment {
            instant: clock.instant(),
            wall_ms: clock
                .now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    fn to_wall(&self, at: Instant) -> u64 {
        if at >= self.instant {
            self.wall_ms + (at - self.instant).as_millis() as u64
        } else {
            self.wall_ms
                .saturating_sub((self.instant - at).as_millis() as u64)
        }
    }

    fn to_instant(&self, wall_ms: u64) -> Instant {
        if wall_ms >= self.wall_ms {
            self.instant + Duration::from_millis(wall_ms - self.wall_ms)
        } else {
            self.instant
                .checked_sub(Duration::from_millis(self.wall_ms - wall_ms))
                .unwrap_or(self.instant)
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    /// Failures within the window, oldest first.
    failures: VecDeque<Instant>,
    /// No attempt is accepted before this.
    blocked_until: Option<Instant>,
    /// How many lockouts in a row (for the doubling).
    lockouts: u32,
    /// Attempts under way.
    in_flight: u32,
    /// The last failure or the end of the last block, whichever is later.
    last_event: Option<Instant>,
}

impl Entry {
    /// Takes the shared record's failures, block and lockouts (keeping the attempts in flight here).
    fn take_shared(&mut self, shared: &SharedEntry, moment: &Moment) {
        self.failures = shared
            .failures
            .iter()
            .map(|t| moment.to_instant(*t))
            .collect();
        self.blocked_until = shared.blocked_until.map(|t| moment.to_instant(t));
        self.lockouts = shared.lockouts;
        self.last_event = shared.last_event.map(|t| moment.to_instant(t));
    }

    fn to_shared(&self, moment: &Moment) -> SharedEntry {
        SharedEntry {
            failures: self.failures.iter().map(|t| moment.to_wall(*t)).collect(),
            blocked_until: self.blocked_until.map(|t| moment.to_wall(t)),
            lockouts: self.lockouts,
            last_event: self.last_event.map(|t| moment.to_wall(t)),
        }
    }

    /// Counts a failure at `now` against `limit`: a delay past half of it, a (doubling) block at it.
    fn record_failure(&mut self, now: Instant, limit: u32, config: &LockoutConfig) {
        self.prune(now, config.window);
        self.failures.push_back(now);
        let count = self.failures.len() as u32;
        let block = if count >= limit {
            // Locked: the failures are spent, the lockout remembered for the next one's doubling.
            self.failures.clear();
            let doubling = self.lockouts.min(31);
            self.lockouts = self.lockouts.saturating_add(1);
            Some(
                config
                    .lockout
                    .saturating_mul(1 << doubling)
                    .min(config.max_lockout.max(config.lockout)),
            )
        } else if count > limit / 2 && !config.delay.is_zero() {
            let doubling = (count - limit / 2 - 1).min(31);
            Some(
                config
                    .delay
                    .saturating_mul(1 << doubling)
                    .min(config.lockout),
            )
        } else {
            None
        };
        if let Some(block) = block {
            let until = now + block;
            self.blocked_until = Some(self.blocked_until.map_or(until, |u| u.max(until)));
        }
        self.last_event = Some(self.blocked_until.unwrap_or(now).max(now));
    }

    fn prune(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.failures.pop_front();
        }
        if self.blocked_until.is_some_and(|until| until <= now) {
            self.blocked_until = None;
        }
        if self.forgettable(now, window) {
            // Quiet for a whole window: the next lockout starts again from the first length.
            self.lockouts = 0;
        }
    }

    /// Nothing to remember.
    fn idle(&self) -> bool {
        self.failures.is_empty()
            && self.lockouts == 0
            && self.in_flight == 0
            && self.blocked_until.is_none()
    }

    fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.blocked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Quiet for a whole window, nothing under way: nothing worth remembering.
    fn forgettable(&self, now: Instant, window: Duration) -> bool {
        self.in_flight == 0
            && self
                .last_event
                .is_none_or(|t| now.saturating_duration_since(t) >= window)
            && self.blocked_until.is_none_or(|until| until <= now)
    }
}

/// The failed-attempt counters.
pub struct Lockout {
    config: LockoutConfig,
    clock: std::sync::Arc<dyn Clock>,
    entries: Mutex<HashMap<Key, Entry>>,
    /// The replicas' shared records, when there are several.
    shared: Option<Tree>,
}

impl std::fmt::Debug for Lockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockout")
            .field("config", &self.config)
            .field("tracked", &self.len())
            .finish_non_exhaustive()
    }
}

impl Lockout {
    /// Counters with this configuration and clock.
    pub fn new(config: LockoutConfig, clock: std::sync::Arc<dyn Clock>) -> Self {
        Lockout {
            config,
            clock,
            entries: Mutex::default(),
            shared: None,
        }
    }

    /// Shares the records with other replicas through `tree` (see the module docs).
    pub fn shared(mut self, tree: Tree) -> Self {
        self.shared = Some(tree);
        self
    }

    /// Brings the local records of `keys` up to the shared ones (when shared). A shared record that
    /// cannot be read refuses the attempt: the store is unavailable, and no guess is made.
    fn sync_in(
        &self,
        entries: &mut HashMap<Key, Entry>,
        keys: &[Key],
        moment: &Moment,
    ) -> Result<(), AuthError> {
        let Some(tree) = &self.shared else {
            return Ok(());
        };
        for key in keys {
            let stored = tree
                .get(key.stored())
                .map_err(|e| AuthError::StoreUnavailable(e.to_string()))?;
            let shared = stored
                .and_then(|v| serde_json::from_slice::<SharedEntry>(&v).ok())
                .unwrap_or_default();
            match entries.get_mut(key) {
                Some(entry) => entry.take_shared(&shared, moment),
                None if shared.failures.is_empty() && shared.blocked_until.is_none() => {}
                None => {
                    self.make_room(entries, moment.instant, key);
                    entries
                        .entry(key.clone())
                        .or_default()
                        .take_shared(&shared, moment);
                }
            }
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &LockoutConfig {
        &self.config
    }

    /// Whether an attempt for `user` from `address` would be refused now, and for how long: the longer
    /// of the two keys' waits. Reserves nothing (for answers from the cache).
    pub fn check(&self, user: &str, address: Option<&str>) -> Result<(), AuthError> {
        let moment = Moment::now(self.clock.as_ref());
        let now = moment.instant;
        let mut entries = self.entries.lock().unwrap();
        self.sync_in(&mut entries, &keys(user, address), &moment)?;
        let mut wait = Duration::ZERO;
        for key in keys(user, address) {
            if let Some(entry) = entries.get_mut(&key) {
                entry.prune(now, self.config.window);
                wait = wait.max(entry.retry_after(now).unwrap_or_default());
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(AuthError::TooManyAttempts { retry_after: wait })
        }
    }

    /// Starts an attempt that will be checked with the directory: refused if either key is blocked, or
    /// if the failures plus the attempts already under way would reach the key's limit. The returned
    /// [`Attempt`] must be ended with [`Attempt::failed`] or [`Attempt::succeeded`]; dropped without
    /// either (the directory was unavailable, the request was cancelled), it counts for nothing.
    pub fn begin(&self, user: &str, address: Option<&str>) -> Result<Attempt<'_>, AuthError> {
        let moment = Moment::now(self.clock.as_ref());
        let now = moment.instant;
        let keys = keys(user, address);
        let mut entries = self.entries.lock().unwrap();
        self.sync_in(&mut entries, &keys, &moment)?;
        let mut wait = Duration::ZERO;
        for key in &keys {
            let limit = self.limit(key);
            if let Some(entry) = entries.get_mut(key) {
                entry.prune(now, self.config.window);
                if let Some(retry_after) = entry.retry_after(now) {
                    wait = wait.max(retry_after);
                } else if entry.failures.len() as u64 + u64::from(entry.in_flight)
                    >= u64::from(limit)
                {
                    // Enough attempts are under way to reach the limit: wait for their outcome.
                    wait = wait.max(self.config.delay.max(Duration::from_secs(1)));
                }
            }
        }
        if !wait.is_zero() {
            return Err(AuthError::TooManyAttempts { retry_after: wait });
        }
        for key in &keys {
            self.make_room(&mut entries, now, key);
            entries.entry(key.clone()).or_default().in_flight += 1;
        }
        Ok(Attempt {
            lockout: self,
            keys,
            ended: false,
        })
    }

    /// Forgets a user name's failures (after a success that did not need the directory).
    pub fn record_success(&self, user: &str) {
        self.entries.lock().unwrap().remove(&Key::user(user));
        self.forget_shared(&Key::user(user));
    }

    fn forget_shared(&self, key: &Key) {
        if let Some(tree) = &self.shared
            && let Err(e) = tree.remove(key.stored())
        {
            tracing::warn!(error = %e, "cannot clear a shared failure record");
        }
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::User(_) => self.config.max_failures,
            Key::Address(_) => self.config.max_failures_per_address,
        }
        .max(1)
    }

    fn end(&self, keys: &[Key], failed: bool) {
        let moment = Moment::now(self.clock.as_ref());
        let now = moment.instant;
        let mut entries = self.entries.lock().unwrap();
        for key in keys {
            let limit = self.limit(key);
            let Some(entry) = entries.get_mut(key) else {
                continue;
            };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if !failed {
                continue;
            }
            match &self.shared {
                None => entry.record_failure(now, limit, &self.config),
                Some(tree) => {
                    // Counted in the shared record, atomically with the other replicas' failures.
                    let mut recorded = None;
                    let updated = tree.update_and_fetch(key.stored(), |old| {
                        let shared = old
                            .and_then(|v| serde_json::from_slice::<SharedEntry>(v).ok())
                            .unwrap_or_default();
                        let mut merged = Entry::default();
                        merged.take_shared(&shared, &moment);
                        merged.record_failure(now, limit, &self.config);
                        let shared = merged.to_shared(&moment);
                        let bytes = serde_json::to_vec(&shared).ok();
                        recorded = Some(shared);
                        bytes
                    });
                    match (updated, recorded) {
                        (Ok(_), Some(shared)) => entry.take_shared(&shared, &moment),
                        (result, _) => {
                            if let Err(e) = result {
                                tracing::warn!(error = %e, "cannot share a failed attempt; counted here");
                            }
                            entry.record_failure(now, limit, &self.config);
                        }
                    }
                }
            }
        }
        for key in keys {
            let reset = !failed && matches!(key, Key::User(_));
            if reset {
                self.forget_shared(key);
            }
            if reset || entries.get(key).is_some_and(Entry::idle) {
                // A success clears the user's record (not the address's); an empty record goes.
                entries.remove(key);
            }
        }
    }

    /// Keeps the map under its bound before `key` is added.
    fn make_room(&self, entries: &mut HashMap<Key, Entry>, now: Instant, key: &Key) {
        let max = self.config.max_entries.max(1);
        if entries.len() < max || entries.contains_key(key) {
            return;
        }
        let window = self.config.window;
        entries.retain(|_, entry| {
            entry.prune(now, window);
            !entry.forgettable(now, window)
        });
        if entries.len() < max {
            return;
        }
        // Still full: drop the tenth quiet for longest (nothing under way is dropped).
        let mut candidates: Vec<(Option<Instant>, Key)> = entries
            .iter()
            .filter(|(_, e)| e.in_flight == 0)
            .map(|(k, e)| (e.last_event, k.clone()))
            .collect();
        candidates.sort_by_key(|(last, _)| *last);
        let excess = entries.len() + 1 - max;
        let drop = excess.max(max / 10).min(candidates.len());
        tracing::warn!(
            dropped = drop,
            "too many failed-attempt records: dropping the oldest"
        );
        for (_, key) in candidates.into_iter().take(drop) {
            entries.remove(&key);
        }
    }
}

fn keys(user: &str, address: Option<&str>) -> Vec<Key> {
    let mut keys = vec![Key::user(user)];
    if let Some(address) = address.filter(|a| !a.is_empty()) {
        keys.push(Key::Address(address.to_owned()));
    }
    keys
}

/// An attempt under way (see [`Lockout::begin`]).
#[must_use = "an attempt ends as failed or succeeded"]
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    keys: Vec<Key>,
    ended: bool,
}

impl Attempt<'_> {
    /// The password was wrong, or the user unknown: counted on both keys.
    pub fn failed(mut self) {
        self.ended = true;
        self.lockout.end(&self.keys, true);
    }

    /// The password was right: the user's failures are forgotten.
    pub fn succeeded(mut self) {
        self.ended = true;
        self.lockout.end(&self.keys, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.ended {
            // Neither a success nor a failure (directory unavailable, request cancelled).
            let now = self.lockout.clock.instant();
            let mut entries = self.lockout.entries.lock().unwrap();
            for key in &self.keys {
                if let Some(entry) = entries.get_mut(key) {
                    entry.in_flight = entry.in_flight.saturating_sub(1);
                    entry.prune(now, self.lockout.config.window);
                    if entry.idle() {
                        entries.remove(key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn lockout(config: LockoutConfig) -> (Arc<ManualClock>, Lockout) {
        let clock = Arc::new(ManualClock::new());
        (clock.clone(), Lockout::new(config, clock))
    }

    fn fail(l: &Lockout, user: &str, address: Option<&str>) {
        l.begin(user, address).unwrap().failed();
    }

    fn retry_after(result: Result<impl Sized, AuthError>) -> Duration {
        match result {
            Err(AuthError::TooManyAttempts { retry_after }) => retry_after,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("not refused"),
        }
    }

    #[test]
    fn delays_grow_then_lock_then_double_up_to_the_cap() {
        let (clock, l) = lockout(LockoutConfig::default());
        fail(&l, "alice", None);
        fail(&l, "alice", None);
        l.check("alice", None).unwrap();
        fail(&l, "alice", None);
        assert_eq!(retry_after(l.check("alice", None)), Duration::from_secs(1));
        assert_eq!(retry_after(l.begin("alice", None)), Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        fail(&l, "alice", None);
        assert_eq!(retry_after(l.check("alice", None)), Duration::from_secs(2));
        clock.advance(Duration::from_secs(2));
        fail(&l, "alice", None);
        assert_eq!(
            retry_after(l.check("ALICE", None)),
            Duration::from_secs(300)
        );
        // Names are compared without case; others are not affected.
        l.check("bob", None).unwrap();

        // Once it ends, five more failures lock for twice as long, and so on up to the cap.
        let mut expected = 600;
        for _ in 0..5 {
            for _ in 0..5 {
                clock.advance(retry_after_or_zero(&l));
                fail(&l, "alice", None);
            }
            assert_eq!(
                retry_after(l.check("alice", None)),
                Duration::from_secs(expected.min(3600))
            );
            expected *= 2;
        }
    }

    fn retry_after_or_zero(l: &Lockout) -> Duration {
        l.check("alice", None)
            .err()
            .map_or(Duration::ZERO, |e| retry_after(Err::<(), _>(e)))
    }

    #[test]
    fn failures_outside_the_window_and_quiet_keys_are_forgotten() {
        let (clock, l) = lockout(LockoutConfig::default());
        for _ in 0..2 {
            fail(&l, "alice", None);
        }
        clock.advance(Duration::from_secs(15 * 60));
        for _ in 0..2 {
            fail(&l, "alice", None);
        }
        l.check("alice", None).unwrap();
        clock.advance(Duration::from_secs(15 * 60));
        // Locked once; quiet for a window after it ends: the next lockout is the first length again.
        for _ in 0..5 {
            clock.advance(Duration::from_secs(10));
            fail(&l, "alice", None);
        }
        assert_eq!(
            retry_after(l.check("alice", None)),
            Duration::from_secs(300)
        );
        clock.advance(Duration::from_secs(300 + 15 * 60));
        for _ in 0..5 {
            clock.advance(Duration::from_secs(10));
            fail(&l, "alice", None);
        }
        assert_eq!(
            retry_after(l.check("alice", None)),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn a_success_resets_the_user_not_the_address() {
        let (_clock, l) = lockout(LockoutConfig {
            max_failures_per_address: 4,
            delay: Duration::ZERO,
            ..LockoutConfig::default()
        });
        for _ in 0..3 {
            fail(&l, "alice", Some("10.0.0.1"));
        }
        l.begin("alice", Some("10.0.0.1")).unwrap().succeeded();
        fail(&l, "alice", Some("10.0.0.1"));
        // The address has had four failures: locked, for every name.
        retry_after(l.check("bob", Some("10.0.0.1")));
        l.check("bob", Some("10.0.0.2")).unwrap();
        l.check("alice", None).unwrap();
    }

    #[test]
    fn attempts_in_flight_count_towards_the_limit_and_a_dropped_one_for_nothing() {
        let (_clock, l) = lockout(LockoutConfig {
            delay: Duration::ZERO,
            ..LockoutConfig::default()
        });
        let attempts: Vec<_> = (0..5).map(|_| l.begin("alice", None).unwrap()).collect();
        retry_after(l.begin("alice", None));
        l.check("alice", None).unwrap();
        drop(attempts);
        assert!(l.is_empty(), "dropped attempts leave nothing");
        let held = l.begin("alice", None).unwrap();
        for _ in 0..4 {
            fail(&l, "alice", None);
        }
        retry_after(l.begin("alice", None));
        drop(held);
        l.begin("alice", None).unwrap().failed();
        assert_eq!(
            retry_after(l.check("alice", None)),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn bounded() {
        let (clock, l) = lockout(LockoutConfig {
            max_entries: 100,
            ..LockoutConfig::default()
        });
        for i in 0..1000 {
            fail(&l, &format!("u{i}"), None);
            clock.advance(Duration::from_millis(10));
        }
        assert!(l.len() <= 100, "{}", l.len());
        clock.advance(Duration::from_secs(15 * 60));
        fail(&l, "late", None);
        assert_eq!(l.len(), 1, "quiet keys went first");
    }
}
