//! Policy plugins: WebAssembly components of the `idfed:policy` world (see `wit/`: the frozen 0.1.0 and
//! 0.2.0 side by side, one set of bindings each in `bindings`) that see each credential request of the
//! connectors they are bound to and may narrow it, refuse it, or (0.2.0) ask for an approval.
//!
//! Each evaluation runs in a fresh store from a pre-instantiated component, under a deadline counted both
//! in CPU time and in wall-clock time, a memory cap and a per-binding share of the instance pool, with WASI
//! linked to an empty context; its answer is read with STS's limits checked before anything is copied. Whatever a plugin does — trap, hang, exhaust its
//! memory, return a grant wider than its request — the outcome is a deny, never an allow, and never a
//! crash of the host.

mod bindings;
mod engine;
mod fault;
pub mod kv;
mod lift;
mod log;
mod narrowing;
pub mod new_project;
mod request;
mod runtime;
mod state;

pub use bindings::ContractVersion;
pub use engine::{CompileSource, ImportNote, import_note};
pub use fault::{BindError, LoadError, PluginFault};
pub use kv::KvStore;
pub use log::LogLimits;
pub use narrowing::{check_grant, check_tag_keys};
pub use request::{
    Approval, Caller, Claim, ConnectorInfo, Decision, Grant, MAX_JUSTIFICATION_BYTES,
    MAX_TICKET_BYTES, PolicyRequest, PrincipalType, Purpose, SessionTag, WorkloadIdentity,
};
pub use runtime::{
    BindOptions, Binding, ChainOutcome, Limits, Plugin, PluginRuntime, RuntimeConfig,
};
