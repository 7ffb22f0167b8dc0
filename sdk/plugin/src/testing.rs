//! Native test doubles for the host imports (only on targets other than `wasm32`).
//!
//! On `wasm32` the [`log`](mod@crate::log), [`kv`](crate::kv) and [`clock`](crate::clock) modules call the host. Natively
//! they use per-thread in-memory state kept here, so a plugin's logic can be unit-tested with `cargo test`:
//! log lines are recorded ([`logs`]), the store honours TTLs against the mock clock ([`set_now`], [`advance`]) and
//! the host's key and value size limits, and [`fail_kv`] makes every store call fail.
//!
//! Rust runs each test on its own thread, so tests do not see each other's state.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::log::Level;
use crate::{Caller, Connector, KvError, PrincipalType, Purpose, Request, Timestamp};

#[derive(Clone)]
enum Value {
    Bytes(Vec<u8>),
    Counter(i64),
}

#[derive(Default)]
struct State {
    logs: Vec<(Level, String)>,
    kv: HashMap<String, (Value, Option<u64>)>,
    now: Option<Timestamp>,
    kv_failure: Option<KvError>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Clears this thread's log lines, store, mock time and injected store failure.
pub fn reset() {
    STATE.with(|s| *s.borrow_mut() = State::default());
}

/// Sets the mock clock returned by [`clock::now`](crate::clock::now) and used for store TTLs.
pub fn set_now(time: Timestamp) {
    STATE.with(|s| s.borrow_mut().now = Some(time));
}

/// Moves the mock clock forward (setting it from the system clock first if it was not set).
pub fn advance(seconds: u64) {
    let t = now();
    set_now(Timestamp {
        seconds: t.seconds + seconds,
        nanoseconds: t.nanoseconds,
    });
}

/// Makes every store call fail with this error (or, with `None`, work again).
pub fn fail_kv(error: Option<KvError>) {
    STATE.with(|s| s.borrow_mut().kv_failure = error);
}

/// The log lines written so far on this thread.
pub fn logs() -> Vec<(Level, String)> {
    STATE.with(|s| s.borrow().logs.clone())
}

/// Returns and clears the log lines written so far on this thread.
pub fn take_logs() -> Vec<(Level, String)> {
    STATE.with(|s| std::mem::take(&mut s.borrow_mut().logs))
}

/// A realistic request to start tests from: user `alice` in groups `developers` and `team-payments`, on an
/// `assumed-role` connector `prod`, one hour, no policy or tags, at 2024-01-03T10:00:00Z (a Wednesday), for
/// credentials, with no justification, ticket or approval.
pub fn sample_request() -> Request {
    Request {
        request_id: "req-1".into(),
        caller: Caller {
            user_name: Some("alice".into()),
            groups: vec!["developers".into(), "team-payments".into()],
            is_admin: false,
            is_system_scope: false,
            source_ip: Some("192.0.2.10".into()),
            user_agent: Some("idfed-cli/0.1".into()),
            workload: None,
        },
        connector: Connector {
            name: "prod".into(),
            principal_type: PrincipalType::AssumedRole,
            account_name: "main".into(),
            role_arn: Some("arn:aws:iam::123456789012:role/developer".into()),
            default_duration_seconds: Some(3600),
            max_duration_seconds: Some(43200),
        },
        requested_duration_seconds: None,
        duration_seconds: 3600,
        policy: None,
        policy_arns: Vec::new(),
        tags: Vec::new(),
        time: Timestamp {
            seconds: 1_704_276_000,
            nanoseconds: 0,
        },
        justification: None,
        ticket: None,
        purpose: Purpose::Credentials,
        approval: None,
    }
}

pub(crate) fn record_log(level: Level, message: &str) {
    STATE.with(|s| s.borrow_mut().logs.push((level, message.to_string())));
}

pub(crate) fn now() -> Timestamp {
    STATE
        .with(|s| s.borrow().now)
        .unwrap_or_else(|| Timestamp::from_system_time(std::time::SystemTime::now()))
}

pub(crate) mod kv {
    use super::*;

    const MAX_KEY: usize = 256;
    const MAX_VALUE: usize = 16 * 1024;
    const MAX_KEYS: usize = 4096;

    fn with_store<T>(
        key: &str,
        f: impl FnOnce(&mut State, u64) -> Result<T, KvError>,
    ) -> Result<T, KvError> {
        let now = super::now().seconds;
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(e) = &s.kv_failure {
                return Err(e.clone());
            }
            if key.is_empty() || key.len() > MAX_KEY {
                return Err(KvError::InvalidKey);
            }
            s.kv.retain(|_, (_, exp)| exp.is_none_or(|e| e > now));
            f(&mut s, now)
        })
    }

    fn check_room(s: &State, key: &str) -> Result<(), KvError> {
        if !s.kv.contains_key(key) && s.kv.len() >= MAX_KEYS {
            return Err(KvError::QuotaExceeded);
        }
        Ok(())
    }

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        with_store(key, |s, _| {
            Ok(s.kv.get(key).map(|(v, _)| match v {
                Value::Bytes(b) => b.clone(),
                Value::Counter(n) => n.to_string().into_bytes(),
            }))
        })
    }

    pub fn set(key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), KvError> {
        with_store(key, |s, now| {
            if value.len() > MAX_VALUE {
                return Err(KvError::ValueTooLarge);
            }
            check_room(s, key)?;
            s.kv.insert(
                key.to_string(),
                (
                    Value::Bytes(value.to_vec()),
                    ttl.map(|t| now + u64::from(t)),
                ),
            );
            Ok(())
        })
    }

    pub fn delete(key: &str) -> Result<(), KvError> {
        with_store(key, |s, _| {
            s.kv.remove(key);
            Ok(())
        })
    }

    pub fn increment(key: &str, delta: i64, ttl: Option<u32>) -> Result<i64, KvError> {
        with_store(key, |s, now| {
            check_room(s, key)?;
            match s.kv.get_mut(key) {
                Some((Value::Counter(n), _)) => {
                    *n = n.wrapping_add(delta);
                    Ok(*n)
                }
                Some((Value::Bytes(_), _)) => Err(KvError::NotACounter),
                None => {
                    s.kv.insert(
                        key.to_string(),
                        (Value::Counter(delta), ttl.map(|t| now + u64::from(t))),
                    );
                    Ok(delta)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock, kv, log};

    #[test]
    fn kv_double_honours_ttl_and_counters() {
        reset();
        set_now(Timestamp::from_seconds(1000));
        assert_eq!(kv::increment("c", 1, Some(10)).unwrap(), 1);
        assert_eq!(kv::increment("c", 2, Some(10)).unwrap(), 3);
        advance(9);
        assert_eq!(kv::increment("c", 1, Some(10)).unwrap(), 4);
        advance(1);
        assert_eq!(kv::increment("c", 1, Some(10)).unwrap(), 1);
        kv::set("s", "hello", None).unwrap();
        assert_eq!(kv::get_string("s").unwrap().as_deref(), Some("hello"));
        assert_eq!(kv::increment("s", 1, None), Err(KvError::NotACounter));
        kv::delete("s").unwrap();
        assert_eq!(kv::get("s").unwrap(), None);
        assert_eq!(kv::get(""), Err(KvError::InvalidKey));
        assert_eq!(
            kv::set("big", vec![0u8; 16 * 1024 + 1], None),
            Err(KvError::ValueTooLarge)
        );
        fail_kv(Some(KvError::Unavailable("down".into())));
        assert!(kv::get("c").is_err());
        assert_eq!(clock::now().seconds, 1010);
    }

    #[test]
    fn logs_are_recorded() {
        reset();
        log::info("one");
        crate::log!(warn, "two {}", 2);
        assert_eq!(
            take_logs(),
            vec![
                (Level::Info, "one".to_string()),
                (Level::Warn, "two 2".to_string())
            ]
        );
        assert!(logs().is_empty());
    }
}
