//! idfed: an identity broker that authenticates people against a directory and vends temporary AWS
//! credentials through STS, with per-connector policy plugins run in a WebAssembly sandbox.

pub mod cli;
pub mod plugins;
