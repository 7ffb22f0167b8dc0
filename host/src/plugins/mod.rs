//! Policy plugins: WebAssembly components of the `idfed:policy@0.1.0` world (see `wit/`) that see each
//! credential request of the connectors they are bound to and may narrow or refuse it.
//!
//! Each evaluation runs in a fresh store from a pre-instantiated component, under a CPU deadline and a
//! memory cap, with WASI linked to an empty context. Whatever a plugin does — trap, hang, exhaust its
//! memory, return a grant wider than its request — the outcome is a deny, never an allow, and never a
//! crash of the host.

mod bindings;
mod engine;
mod fault;
pub mod kv;
mod log;
mod narrowing;
mod request;
mod runtime;
mod state;

pub use engine::CompileSource;
pub use fault::{BindError, LoadError, PluginFault};
pub use kv::KvStore;
pub use log::LogLimits;
pub use narrowing::check_grant;
pub use request::{
    Caller, ConnectorInfo, Decision, Grant, PolicyRequest, PrincipalType, SessionTag,
};
pub use runtime::{Binding, ChainOutcome, Limits, Plugin, PluginRuntime, RuntimeConfig};
