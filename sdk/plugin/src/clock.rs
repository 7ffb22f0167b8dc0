//! The wall clock.
//!
//! Prefer the request's own `time` where you have a request: it is when idfed received it, and it makes tests
//! deterministic.

use crate::Timestamp;

/// The current time (UTC).
///
/// Natively (in unit tests) this is the time set with [`testing::set_now`](crate::testing::set_now), else the
/// system clock.
pub fn now() -> Timestamp {
    #[cfg(target_arch = "wasm32")]
    return crate::__private::idfed::policy::clock::now();
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::now();
}
