//! The credential cache of connectors with `credential_cache` on, and the coalescing of identical misses.
//!
//! An entry is keyed by everything that decides what STS would be asked and for whom: the caller (user name,
//! groups and admin flag, or the API key's id), the connector's id and revision (its bindings included), the
//! account's stored state (its sealed secret included) and the final STS request (after plugins and the
//! caller's own narrowing: policy, ARNs, tags, names, duration). Any change to one of them is another key,
//! so a stale entry can never be handed out; entries are also removed when their connector or account
//! changes, when their caller is refused the connector, and on a flush.
//!
//! An entry is handed out while it has at least `max(min_remaining, min_remaining_fraction × duration)`
//! left. Entries live in memory only; their secrets are zeroed when dropped ([`crate::secret::Secret`]).
//! The count is bounded: when full, entries too old to be handed out go first, then those expiring soonest.
//!
//! Concurrent misses of one key make one STS call ([`CredentialCache::issue_once`]): the first caller makes
//! it, the others wait for its answer — credentials or error — and share it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::model::{Account, Caller, Connector, Identity};
use crate::sts::{IssueKind, IssuedCredentials, SessionTag, StsError};

/// When cached credentials may be handed out, and how many are kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CacheSettings {
    /// The least life an entry must have left (default 15 minutes).
    pub min_remaining: Duration,
    /// The least share of the duration asked for it must have left (default ½).
    pub min_remaining_fraction: f64,
    /// The most entries kept (default 10,000).
    pub max_entries: usize,
    /// The most entries one caller may have (default 1,000): past it, the caller's own entry that expires
    /// soonest goes, never another caller's.
    pub max_entries_per_caller: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            min_remaining: Duration::from_secs(15 * 60),
            min_remaining_fraction: 0.5,
            max_entries: 10_000,
            max_entries_per_caller: 1_000,
        }
    }
}

/// What the cache counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests that found nothing usable.
    pub misses: u64,
    /// Misses that shared another request's STS call.
    pub coalesced: u64,
    /// Entries removed: too old, over the bound, or ended by a change or a flush.
    pub evictions: u64,
    /// Entries now.
    pub entries: u64,
}

/// A cache key: a SHA-256 over everything that decides the credentials (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of `caller` asking `connector` (over `account`) for `kind` lasting `duration_seconds`.
    pub fn new(
        caller: &Caller,
        connector: &Connector,
        account: &Account,
        kind: &IssueKind,
        duration_seconds: u32,
    ) -> CacheKey {
        CacheKey::of(
            caller,
            connector.id,
            &StoredState::fingerprint(connector, account),
            kind,
            duration_seconds,
        )
    }

    fn of(
        caller: &Caller,
        connector: Uuid,
        stored: &[u8; 32],
        kind: &IssueKind,
        duration_seconds: u32,
    ) -> CacheKey {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        match &caller.identity {
            Identity::User {
                name,
                groups,
                is_admin,
            } => {
                field(b"user");
                field(name.as_bytes());
                field(&[u8::from(*is_admin)]);
                let mut groups: Vec<String> = groups.iter().map(|g| g.to_lowercase()).collect();
                groups.sort();
                groups.dedup();
                for group in &groups {
                    field(group.as_bytes());
                }
            }
            Identity::System { key_id, .. } => {
                field(b"system");
                field(key_id.as_bytes());
            }
            Identity::Workload(workload) => {
                field(b"workload");
                field(workload.issuer.as_bytes());
                field(workload.subject.as_bytes());
                field(workload.name.as_bytes());
            }
        }
        field(connector.as_bytes());
        field(stored);
        field(&duration_seconds.to_le_bytes());
        hash_kind(kind, &mut field);
        CacheKey(hash.finalize().into())
    }
}

/// Feeds every field of `kind` to `field`, each list preceded by its length and each option by whether
/// it is there, so that no two requests feed the same fields. Every field is named: a field added to
/// [`IssueKind`] does not compile here until it is hashed too.
fn hash_kind(kind: &IssueKind, field: &mut impl FnMut(&[u8])) {
    fn option(value: &Option<String>, field: &mut impl FnMut(&[u8])) {
        match value {
            Some(value) => {
                field(b"some");
                field(value.as_bytes());
            }
            None => field(b"none"),
        }
    }
    fn list(values: &[String], field: &mut impl FnMut(&[u8])) {
        field(&(values.len() as u64).to_le_bytes());
        for value in values {
            field(value.as_bytes());
        }
    }
    fn tags(tags: &[SessionTag], field: &mut impl FnMut(&[u8])) {
        field(&(tags.len() as u64).to_le_bytes());
        for SessionTag { key, value } in tags {
            field(key.as_bytes());
            field(value.as_bytes());
        }
    }
    match kind {
        IssueKind::FederationToken {
            name,
            policy,
            policy_arns,
            tags: session_tags,
        } => {
            field(b"federation-token");
            field(name.as_bytes());
            option(policy, field);
            list(policy_arns, field);
            tags(session_tags, field);
        }
        IssueKind::SessionToken => field(b"session-token"),
        IssueKind::AssumeRole {
            role_arn,
            session_name,
            external_id,
            policy,
            policy_arns,
            tags: session_tags,
            source_identity,
        } => {
            field(b"assume-role");
            field(role_arn.as_bytes());
            field(session_name.as_bytes());
            option(external_id, field);
            option(policy, field);
            list(policy_arns, field);
            tags(session_tags, field);
            option(source_identity, field);
        }
    }
}

/// The connector's and account's stored state as one SHA-256 (the connector's revision, bindings
/// included, and the account as stored, sealed secret included), computed once per state: each vend
/// compares what it read with the state the fingerprint was taken of, which costs less than serializing
/// both again.
#[derive(Default)]
struct StoredState {
    by_connector: Mutex<HashMap<Uuid, Fingerprinted>>,
}

/// A connector and its account as read, and their fingerprint.
type Fingerprinted = (Connector, Account, [u8; 32]);

impl StoredState {
    /// Fingerprints kept at most (one a connector in use; a full table starts afresh).
    const MAX: usize = 4096;

    fn fingerprint(connector: &Connector, account: &Account) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(connector.revision().as_bytes());
        hash.update(serde_json::to_vec(account).unwrap_or_default());
        hash.finalize().into()
    }

    fn get(&self, connector: &Connector, account: &Account) -> [u8; 32] {
        if let Some((c, a, fingerprint)) = lock(&self.by_connector).get(&connector.id)
            && c == connector
            && a == account
        {
            return *fingerprint;
        }
        let fingerprint = StoredState::fingerprint(connector, account);
        let mut table = lock(&self.by_connector);
        if table.len() >= StoredState::MAX {
            table.clear();
        }
        table.insert(
            connector.id,
            (connector.clone(), account.clone(), fingerprint),
        );
        fingerprint
    }
}

struct Entry {
    connector: Uuid,
    account: String,
    caller: String,
    credentials: IssuedCredentials,
}

/// An STS call in flight, shared by the identical requests that join it, with the cache's generation
/// when it began: a flush since then keeps its credentials out of the cache and new requests out of it.
struct InFlight {
    generation: u64,
    outcome: OnceCell<Result<IssuedCredentials, StsError>>,
}

type Flight = Arc<InFlight>;

/// Credentials issued, kept for reuse, and the STS calls in flight.
pub struct CredentialCache {
    settings: CacheSettings,
    entries: Mutex<HashMap<CacheKey, Entry>>,
    in_flight: Mutex<HashMap<CacheKey, Flight>>,
    stored: StoredState,
    /// Bumped by every flush, under the `entries` lock.
    generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Where a miss's credentials came from.
#[derive(Debug)]
pub struct Issued {
    /// The credentials.
    pub credentials: IssuedCredentials,
    /// Whether another request's STS call issued them.
    pub shared: bool,
}

impl CredentialCache {
    /// An empty cache.
    pub fn new(settings: CacheSettings) -> Self {
        CredentialCache {
            settings,
            entries: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            stored: StoredState::default(),
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// [`CacheKey::new`], from a fingerprint of the connector's and account's state kept while they stay
    /// the same.
    pub fn key(
        &self,
        caller: &Caller,
        connector: &Connector,
        account: &Account,
        kind: &IssueKind,
        duration_seconds: u32,
    ) -> CacheKey {
        let stored = self.stored.get(connector, account);
        CacheKey::of(caller, connector.id, &stored, kind, duration_seconds)
    }

    /// The settings.
    pub fn settings(&self) -> CacheSettings {
        self.settings
    }

    /// The least life credentials of `duration_seconds` must have left to be handed out.
    pub fn min_remaining(&self, duration_seconds: u32) -> Duration {
        let share = Duration::from_secs_f64(
            f64::from(duration_seconds) * self.settings.min_remaining_fraction.clamp(0.0, 1.0),
        );
        self.settings.min_remaining.max(share)
    }

    /// The credentials cached under `key`, if they have enough life left at `now` for `duration_seconds`.
    /// An entry with too little left is removed.
    pub fn get(
        &self,
        key: &CacheKey,
        duration_seconds: u32,
        now: SystemTime,
    ) -> Option<IssuedCredentials> {
        let needed = self.min_remaining(duration_seconds);
        let mut entries = lock(&self.entries);
        let usable = entries
            .get(key)
            .map(|entry| usable_for(&entry.credentials, needed, now));
        match usable {
            Some(true) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                entries.get(key).map(|entry| entry.credentials.clone())
            }
            Some(false) => {
                entries.remove(key);
                self.evictions.fetch_add(1, Ordering::Relaxed);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Runs `issue` for `key` unless a call for it is already in flight, in which case its outcome is
    /// shared. Credentials from the call that have enough life left are cached (on behalf of `caller`, of
    /// `connector` over `account`); errors are shared with the waiting requests but never cached.
    pub async fn issue_once<F, Fut>(
        &self,
        key: CacheKey,
        owner: (&Connector, &Caller),
        duration_seconds: u32,
        issue: F,
    ) -> Result<Issued, StsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedCredentials, StsError>>,
    {
        let flight = {
            let mut in_flight = lock(&self.in_flight);
            let generation = self.generation.load(Ordering::Acquire);
            match in_flight.get(&key) {
                Some(flight) if flight.generation == generation => flight.clone(),
                _ => {
                    // A call that ended between this request's miss and now left its entry (it is
                    // inserted before the flight is removed): take it rather than call again.
                    if let Some(credentials) = self.usable(&key, duration_seconds) {
                        self.coalesced.fetch_add(1, Ordering::Relaxed);
                        return Ok(Issued {
                            credentials,
                            shared: true,
                        });
                    }
                    let flight = Arc::new(InFlight {
                        generation,
                        outcome: OnceCell::new(),
                    });
                    in_flight.insert(key, flight.clone());
                    flight
                }
            }
        };
        let led = AtomicBool::new(false);
        let outcome = flight
            .outcome
            .get_or_init(|| async {
                led.store(true, Ordering::Relaxed);
                issue().await
            })
            .await
            .clone();
        let led = led.load(Ordering::Relaxed);
        if led {
            let (connector, caller) = owner;
            if let Ok(credentials) = &outcome {
                let needed = self.min_remaining(duration_seconds);
                if usable_for(credentials, needed, SystemTime::now()) {
                    self.insert(
                        key,
                        flight.generation,
                        Entry {
                            connector: connector.id,
                            account: connector.account.clone(),
                            caller: caller.display_name(),
                            credentials: credentials.clone(),
                        },
                    );
                }
            }
            // After the insert: a request arriving now finds the entry or this flight, never neither.
            let mut in_flight = lock(&self.in_flight);
            if in_flight.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                in_flight.remove(&key);
            }
        } else {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        outcome.map(|credentials| Issued {
            credentials,
            shared: !led,
        })
    }

    /// The entry's credentials if they have enough life left now (counting nothing).
    fn usable(&self, key: &CacheKey, duration_seconds: u32) -> Option<IssuedCredentials> {
        let needed = self.min_remaining(duration_seconds);
        let entries = lock(&self.entries);
        entries
            .get(key)
            .filter(|entry| usable_for(&entry.credentials, needed, SystemTime::now()))
            .map(|entry| entry.credentials.clone())
    }

    /// Caches `entry` unless a flush came since `generation` (checked under the lock flushes take).
    fn insert(&self, key: CacheKey, generation: u64, entry: Entry) {
        let mut entries = lock(&self.entries);
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if let Some(existing) = entries.get_mut(&key) {
            *existing = entry;
            return;
        }
        // A caller asking for ever different credentials pushes out only its own.
        let mine: Vec<(CacheKey, SystemTime)> = entries
            .iter()
            .filter(|(_, e)| e.caller == entry.caller)
            .map(|(k, e)| (*k, e.credentials.expiration))
            .collect();
        if mine.len() >= self.settings.max_entries_per_caller.max(1)
            && let Some((soonest, _)) = mine.iter().min_by_key(|(_, expiration)| *expiration)
        {
            entries.remove(soonest);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        if entries.len() >= self.settings.max_entries.max(1) {
            let now = SystemTime::now();
            let floor = self.settings.min_remaining;
            let before = entries.len();
            entries.retain(|_, e| remaining(&e.credentials, now) >= floor);
            let mut evicted = before - entries.len();
            if entries.len() >= self.settings.max_entries.max(1) {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.credentials.expiration)
                    .map(|(k, _)| *k);
                if let Some(soonest) = soonest {
                    entries.remove(&soonest);
                    evicted += 1;
                }
            }
            self.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
        }
        entries.insert(key, entry);
    }

    /// Ends the entries `doomed` picks, and keeps calls in flight now from caching theirs.
    fn flush_where(&self, doomed: impl Fn(&Entry) -> bool) -> usize {
        let mut entries = lock(&self.entries);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let before = entries.len();
        entries.retain(|_, e| !doomed(e));
        let removed = before - entries.len();
        self.evictions.fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    fn remove_where(&self, doomed: impl Fn(&Entry) -> bool) -> usize {
        let mut entries = lock(&self.entries);
        let before = entries.len();
        entries.retain(|_, e| !doomed(e));
        let removed = before - entries.len();
        self.evictions.fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    /// Ends every entry of a connector; how many there were.
    pub fn flush_connector(&self, connector: Uuid) -> usize {
        self.flush_where(|e| e.connector == connector)
    }

    /// Ends every entry of connectors over `account`.
    pub fn flush_account(&self, account: &str) -> usize {
        self.flush_where(|e| e.account == account)
    }

    /// Ends a caller's entries of a connector (the caller was refused it).
    pub fn flush_caller(&self, connector: Uuid, caller: &str) -> usize {
        // Not a flush of the calls in flight: a caller refused again and again must not keep everyone
        // else's credentials out of the cache. (A call of theirs already in flight may still fill it; they
        // are refused before the cache is consulted for as long as they lack the group.)
        self.remove_where(|e| e.connector == connector && e.caller == caller)
    }

    /// Ends every entry.
    pub fn flush_all(&self) -> usize {
        self.flush_where(|_| true)
    }

    /// Removes the entries too old to be handed out at `now` (how many), and the flights nobody waits
    /// for any more (their leader was cancelled, e.g. by a client that hung up, before anyone joined).
    pub fn sweep(&self, now: SystemTime) -> usize {
        lock(&self.in_flight).retain(|_, flight| Arc::strong_count(flight) > 1);
        let floor = self.settings.min_remaining;
        self.remove_where(|e| remaining(&e.credentials, now) < floor)
    }

    /// The counts.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: lock(&self.entries).len() as u64,
        }
    }
}

/// Whether credentials have at least `needed` life left at `now`, and some life at all.
fn usable_for(credentials: &IssuedCredentials, needed: Duration, now: SystemTime) -> bool {
    let left = remaining(credentials, now);
    left > Duration::ZERO && left >= needed
}

fn remaining(credentials: &IssuedCredentials, now: SystemTime) -> Duration {
    credentials
        .expiration
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
}

/// The maps stay consistent whatever a panicking holder was doing: every change is one call.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountSource, Principal};
    use crate::secret::Secret;
    use crate::sts::StsErrorKind;

    fn user(name: &str, groups: &[&str]) -> Caller {
        Caller {
            identity: Identity::User {
                name: name.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                is_admin: false,
            },
            source_ip: None,
            user_agent: None,
        }
    }

    fn connector(name: &str) -> Connector {
        Connector {
            id: Uuid::new_v4(),
            name: name.into(),
            description: String::new(),
            account: "main".into(),
            principal: Principal::IamUser,
            policy: None,
            policy_arns: vec![],
            default_duration_seconds: None,
            max_duration_seconds: None,
            groups: vec!["devs".into()],
            system_scope: false,
            enabled: true,
            credential_cache: true,
            bindings: vec![],
        }
    }

    fn account() -> Account {
        Account {
            name: "main".into(),
            description: String::new(),
            source: AccountSource::HostCredentials,
            region: None,
            sts_endpoint: None,
        }
    }

    fn credentials(id: &str, life: Duration) -> IssuedCredentials {
        IssuedCredentials {
            access_key_id: id.into(),
            secret_access_key: Secret::new("secret"),
            session_token: Secret::new("token"),
            expiration: SystemTime::now() + life,
            principal_arn: None,
            packed_policy_size: None,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn keys_differ_with_every_part() {
        let alice = user("alice", &["devs", "ops"]);
        let c = connector("dev");
        let a = account();
        let kind = IssueKind::SessionToken;
        let key = CacheKey::new(&alice, &c, &a, &kind, 3600);
        // Group order and case do not matter.
        assert_eq!(
            key,
            CacheKey::new(&user("alice", &["OPS", "devs"]), &c, &a, &kind, 3600)
        );
        let mut changed = c.clone();
        changed.description = "edited".into();
        let mut other_account = a.clone();
        other_account.region = Some("eu-west-1".into());
        for other in [
            CacheKey::new(&user("bob", &["devs", "ops"]), &c, &a, &kind, 3600),
            CacheKey::new(&user("alice", &["devs"]), &c, &a, &kind, 3600),
            CacheKey::new(&alice, &changed, &a, &kind, 3600),
            CacheKey::new(&alice, &c, &other_account, &kind, 3600),
            CacheKey::new(&alice, &c, &a, &kind, 7200),
            CacheKey::new(
                &alice,
                &c,
                &a,
                &IssueKind::FederationToken {
                    name: "alice".into(),
                    policy: None,
                    policy_arns: vec![],
                    tags: vec![],
                },
                3600,
            ),
        ] {
            assert_ne!(key, other);
        }
    }

    #[test]
    fn keys_differ_with_every_field_of_the_request() {
        let alice = user("alice", &["devs"]);
        let (c, a) = (connector("dev"), account());
        let role = || IssueKind::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/dev".into(),
            session_name: "alice".into(),
            external_id: None,
            policy: None,
            policy_arns: vec!["arn:aws:iam::aws:policy/ab".into()],
            tags: vec![SessionTag {
                key: "team".into(),
                value: "devs".into(),
            }],
            source_identity: None,
        };
        let key = |kind: &IssueKind| CacheKey::new(&alice, &c, &a, kind, 3600);
        let base = key(&role());
        let mut variants = Vec::new();
        for change in 0..9 {
            let mut kind = role();
            let IssueKind::AssumeRole {
                role_arn,
                session_name,
                external_id,
                policy,
                policy_arns,
                tags,
                source_identity,
            } = &mut kind
            else {
                unreachable!()
            };
            match change {
                0 => role_arn.push('2'),
                1 => session_name.push('2'),
                2 => *external_id = Some(String::new()),
                3 => *policy = Some("{}".into()),
                // The same bytes cut differently, or in another field, are another request.
                4 => *policy_arns = vec!["arn:aws:iam::aws:policy/a".into(), "b".into()],
                5 => policy_arns.clear(),
                6 => tags[0].value = "ops".into(),
                7 => {
                    tags[0] = SessionTag {
                        key: "teamdevs".into(),
                        value: String::new(),
                    }
                }
                _ => *source_identity = Some("alice".into()),
            }
            variants.push(key(&kind));
        }
        for (i, variant) in variants.iter().enumerate() {
            assert_ne!(*variant, base, "change {i}");
            for (j, other) in variants.iter().enumerate().skip(i + 1) {
                assert_ne!(variant, other, "changes {i} and {j}");
            }
        }
        // The same request, the same key.
        assert_eq!(key(&role()), base);
    }

    #[test]
    fn the_remembered_fingerprint_follows_every_change() {
        let cache = CredentialCache::new(CacheSettings::default());
        let alice = user("alice", &["devs"]);
        let (c, a, kind) = (connector("dev"), account(), IssueKind::SessionToken);
        let key = |c: &Connector, a: &Account| {
            let remembered = cache.key(&alice, c, a, &kind, 3600);
            assert_eq!(remembered, CacheKey::new(&alice, c, a, &kind, 3600));
            remembered
        };
        let first = key(&c, &a);
        assert_eq!(key(&c, &a), first);
        let mut changed = c.clone();
        changed.description = "edited".into();
        assert_ne!(key(&changed, &a), first);
        let mut other_account = a.clone();
        other_account.region = Some("eu-west-1".into());
        assert_ne!(key(&changed, &other_account), key(&changed, &a));
        // Back to the first state: the first key again.
        assert_eq!(key(&c, &a), first);
    }

    #[test]
    fn the_margin_is_the_larger_of_the_floor_and_the_share() {
        let cache = CredentialCache::new(CacheSettings::default());
        assert_eq!(cache.min_remaining(900), Duration::from_secs(900));
        assert_eq!(cache.min_remaining(3600), Duration::from_secs(1800));
        assert_eq!(cache.min_remaining(43_200), Duration::from_secs(21_600));
    }

    #[tokio::test]
    async fn hits_misses_and_the_margin() {
        let cache = CredentialCache::new(CacheSettings::default());
        let (alice, c) = (user("alice", &["devs"]), connector("dev"));
        let key = CacheKey::new(&alice, &c, &account(), &IssueKind::SessionToken, 3600);
        let now = SystemTime::now();
        assert!(cache.get(&key, 3600, now).is_none());
        let issued = cache
            .issue_once(key, (&c, &alice), 3600, || async {
                Ok(credentials("ASIAONE", HOUR))
            })
            .await
            .unwrap();
        assert!(!issued.shared);
        // A request that missed just before that call ended takes its entry rather than call again.
        let late = cache
            .issue_once(key, (&c, &alice), 3600, || async {
                panic!("a second STS call for an entry in the cache")
            })
            .await
            .unwrap();
        assert!(late.shared);
        assert_eq!(late.credentials.access_key_id, "ASIAONE");
        assert_eq!(cache.get(&key, 3600, now).unwrap().access_key_id, "ASIAONE");
        // 31 minutes on, less than half the hour is left: removed, a miss.
        assert!(
            cache
                .get(&key, 3600, now + Duration::from_secs(31 * 60))
                .is_none()
        );
        assert!(cache.get(&key, 3600, now).is_none());
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                misses: 3,
                coalesced: 1,
                evictions: 1,
                entries: 0
            }
        );
        // Credentials too short-lived to be handed out again are not kept.
        cache
            .issue_once(key, (&c, &alice), 3600, || async {
                Ok(credentials("ASIASHORT", Duration::from_secs(600)))
            })
            .await
            .unwrap();
        assert_eq!(cache.stats().entries, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_share_one_call_and_its_error() {
        let cache = Arc::new(CredentialCache::new(CacheSettings::default()));
        let calls = Arc::new(AtomicU64::new(0));
        let (alice, c) = (user("alice", &["devs"]), connector("dev"));
        let key = CacheKey::new(&alice, &c, &account(), &IssueKind::SessionToken, 3600);
        let run = |fail: bool| {
            let tasks: Vec<_> = (0..100)
                .map(|_| {
                    let (cache, calls, alice, c) =
                        (cache.clone(), calls.clone(), alice.clone(), c.clone());
                    tokio::spawn(async move {
                        cache
                            .issue_once(key, (&c, &alice), 3600, || async {
                                calls.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(500)).await;
                                if fail {
                                    Err(StsError::new(StsErrorKind::Unavailable, "down"))
                                } else {
                                    Ok(credentials("ASIASHARED", HOUR))
                                }
                            })
                            .await
                    })
                })
                .collect();
            tasks
        };
        let mut failed = 0;
        for task in run(true) {
            let outcome = task.await.unwrap();
            assert_eq!(outcome.unwrap_err().code(), "sts_unavailable");
            failed += 1;
        }
        assert_eq!(failed, 100);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for 100 misses");
        assert_eq!(cache.stats().entries, 0, "errors are never cached");
        let mut shared = 0;
        for task in run(false) {
            let issued = task.await.unwrap().unwrap();
            assert_eq!(issued.credentials.access_key_id, "ASIASHARED");
            shared += usize::from(issued.shared);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(shared, 99);
        assert_eq!(cache.stats().coalesced, 198);
        assert!(lock(&cache.in_flight).is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_call_is_taken_over_or_swept() {
        let cache = CredentialCache::new(CacheSettings::default());
        let (alice, c) = (user("alice", &["devs"]), connector("dev"));
        let key = CacheKey::new(&alice, &c, &account(), &IssueKind::SessionToken, 3600);
        // The leader's request is dropped mid-call (its client hung up): nothing waits for its flight.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(20),
            cache.issue_once(key, (&c, &alice), 3600, || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(credentials("ASIANEVER", HOUR))
            }),
        )
        .await;
        assert!(abandoned.is_err());
        assert_eq!(lock(&cache.in_flight).len(), 1);
        // The next identical request leads a call of its own.
        let next = cache
            .issue_once(key, (&c, &alice), 3600, || async {
                Ok(credentials("ASIANEXT", HOUR))
            })
            .await
            .unwrap();
        assert_eq!(next.credentials.access_key_id, "ASIANEXT");
        assert!(lock(&cache.in_flight).is_empty());
        // An abandoned flight of a key nobody asks for again is swept.
        let other = CacheKey::new(&alice, &c, &account(), &IssueKind::SessionToken, 7200);
        let _ = tokio::time::timeout(
            Duration::from_millis(20),
            cache.issue_once(other, (&c, &alice), 7200, || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(credentials("ASIANEVER", HOUR))
            }),
        )
        .await;
        assert_eq!(lock(&cache.in_flight).len(), 1);
        cache.sweep(SystemTime::now());
        assert!(lock(&cache.in_flight).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_ends_the_calls_in_flight_too() {
        let cache = Arc::new(CredentialCache::new(CacheSettings::default()));
        let (alice, c) = (user("alice", &["devs"]), connector("dev"));
        let key = CacheKey::new(&alice, &c, &account(), &IssueKind::SessionToken, 3600);
        let (started, call_started) = tokio::sync::oneshot::channel::<()>();
        let (finish, may_finish) = tokio::sync::oneshot::channel::<()>();
        let before = {
            let (cache, alice, c) = (cache.clone(), alice.clone(), c.clone());
            tokio::spawn(async move {
                cache
                    .issue_once(key, (&c, &alice), 3600, || async move {
                        started.send(()).unwrap();
                        may_finish.await.unwrap();
                        Ok(credentials("ASIABEFORE", HOUR))
                    })
                    .await
            })
        };
        call_started.await.unwrap();
        // An administrator flushes while the call is in flight.
        cache.flush_connector(c.id);
        // A request after the flush does not join the call made before it.
        let after = cache
            .issue_once(key, (&c, &alice), 3600, || async {
                Ok(credentials("ASIAAFTER", HOUR))
            })
            .await
            .unwrap();
        assert_eq!(after.credentials.access_key_id, "ASIAAFTER");
        assert!(!after.shared);
        finish.send(()).unwrap();
        let before = before.await.unwrap().unwrap();
        assert_eq!(before.credentials.access_key_id, "ASIABEFORE");
        // What the earlier call issued is not cached over the later one's.
        assert_eq!(
            cache
                .get(&key, 3600, SystemTime::now())
                .unwrap()
                .access_key_id,
            "ASIAAFTER"
        );
        assert!(lock(&cache.in_flight).is_empty());
    }

    #[test]
    fn expired_credentials_are_never_usable() {
        let cache = CredentialCache::new(CacheSettings {
            min_remaining: Duration::ZERO,
            min_remaining_fraction: 0.0,
            ..CacheSettings::default()
        });
        let expired = credentials("ASIAOLD", Duration::ZERO);
        assert!(!usable_for(
            &expired,
            cache.min_remaining(3600),
            SystemTime::now() + Duration::from_secs(1)
        ));
    }

    #[tokio::test]
    async fn one_caller_cannot_push_out_anothers_entries() {
        let cache = CredentialCache::new(CacheSettings {
            max_entries: 10,
            max_entries_per_caller: 3,
            ..CacheSettings::default()
        });
        let (alice, mallory, c) = (
            user("alice", &["devs"]),
            user("mallory", &["devs"]),
            connector("dev"),
        );
        let key_of = |caller: &Caller, duration: u32| {
            CacheKey::new(caller, &c, &account(), &IssueKind::SessionToken, duration)
        };
        let alices = key_of(&alice, 3600);
        cache
            .issue_once(alices, (&c, &alice), 3600, || async {
                Ok(credentials("ASIAALICE", HOUR))
            })
            .await
            .unwrap();
        // Mallory asks for twenty different durations.
        for i in 0..20u32 {
            let duration = 3600 + i;
            cache
                .issue_once(
                    key_of(&mallory, duration),
                    (&c, &mallory),
                    duration,
                    || async move {
                        Ok(credentials(
                            &format!("ASIAM{i}"),
                            HOUR + Duration::from_secs(u64::from(i)),
                        ))
                    },
                )
                .await
                .unwrap();
        }
        assert_eq!(
            cache.stats().entries,
            4,
            "alice's one and mallory's last three"
        );
        assert!(cache.get(&alices, 3600, SystemTime::now()).is_some());
        assert!(
            cache
                .get(&key_of(&mallory, 3619), 3619, SystemTime::now())
                .is_some()
        );
        assert!(
            cache
                .get(&key_of(&mallory, 3600), 3600, SystemTime::now())
                .is_none()
        );
    }

    #[tokio::test]
    async fn bounded_and_flushed() {
        let cache = CredentialCache::new(CacheSettings {
            max_entries: 3,
            ..CacheSettings::default()
        });
        let (alice, bob) = (user("alice", &["devs"]), user("bob", &["devs"]));
        let (dev, prod) = (connector("dev"), connector("prod"));
        let mut keys = Vec::new();
        for (i, (caller, c)) in [(&alice, &dev), (&bob, &dev), (&alice, &prod), (&bob, &prod)]
            .into_iter()
            .enumerate()
        {
            let key = CacheKey::new(caller, c, &account(), &IssueKind::SessionToken, 3600);
            let life = HOUR + Duration::from_secs(60 * i as u64);
            cache
                .issue_once(key, (c, caller), 3600, || async move {
                    Ok(credentials(&format!("ASIA{i}"), life))
                })
                .await
                .unwrap();
            keys.push(key);
        }
        let now = SystemTime::now();
        assert_eq!(cache.stats().entries, 3);
        assert!(
            cache.get(&keys[0], 3600, now).is_none(),
            "the soonest to expire went"
        );
        assert_eq!(cache.stats().evictions, 1);
        assert_eq!(cache.flush_caller(prod.id, "bob"), 1);
        assert_eq!(cache.flush_connector(dev.id), 1);
        assert_eq!(cache.flush_account("main"), 1);
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().evictions, 4);
    }
}
