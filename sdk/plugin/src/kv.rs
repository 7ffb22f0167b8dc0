//! A small key-value store private to one binding (one plugin bound to one connector), kept by the host across
//! requests and restarts.
//!
//! Limits: keys are 1 to 256 bytes, values at most 16 KiB; a binding holds at most 4,096 live keys and may make
//! at most 32 writes (`set`, `delete`, `increment`) in one call. Natively (in unit tests) the store is an
//! in-memory double, see [`testing`](crate::testing).
//!
//! ```no_run
//! # fn f() -> Result<(), idfed_sdk::KvError> {
//! use idfed_sdk::kv;
//! let n = kv::increment("user:alice", 1, Some(3600))?; // a counter over a fixed one-hour window
//! kv::set("last-user", "alice", None)?;
//! assert_eq!(kv::get_string("last-user")?.as_deref(), Some("alice"));
//! # Ok(()) }
//! ```

pub use crate::KvError;

#[cfg(target_arch = "wasm32")]
use crate::__private::idfed::policy::kv as imp;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::kv as imp;

/// Reads a key; `None` if it is absent or has expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    imp::get(key)
}

/// Reads a key as text (invalid UTF-8 is replaced with U+FFFD); `None` if it is absent or has expired.
pub fn get_string(key: &str) -> Result<Option<String>, KvError> {
    Ok(get(key)?.map(|v| match String::from_utf8(v) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

/// Writes a key, replacing any value. With `ttl_seconds`, the key expires after that many seconds.
pub fn set(key: &str, value: impl AsRef<[u8]>, ttl_seconds: Option<u32>) -> Result<(), KvError> {
    imp::set(key, value.as_ref(), ttl_seconds)
}

/// Removes a key; removing an absent key is not an error.
pub fn delete(key: &str) -> Result<(), KvError> {
    imp::delete(key)
}

/// Adds `delta` to the counter at `key` atomically and returns the new value.
///
/// An absent or expired key counts from 0 and, with `ttl_seconds`, expires that many seconds after this call; an
/// existing key keeps its expiry, so a counter with a TTL counts over a fixed window.
pub fn increment(key: &str, delta: i64, ttl_seconds: Option<u32>) -> Result<i64, KvError> {
    imp::increment(key, delta, ttl_seconds)
}
