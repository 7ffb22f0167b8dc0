//! idfed: an identity broker that authenticates people against a directory and vends temporary AWS
//! credentials through STS, with per-connector policy plugins run in a WebAssembly sandbox.

pub mod api;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod container_server;
pub mod exec;
pub mod metrics;
pub mod model;
pub mod percent;
pub mod plugins;
pub mod secret;
pub mod service;
pub mod store;
pub mod sts;
pub mod vend;
