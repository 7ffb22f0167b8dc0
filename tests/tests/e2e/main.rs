//! idfed's end-to-end tests, in one test binary: each module is one area, run against real parts (moto's
//! STS, the AWS CLI and boto3, headless Chromium, the built `idfed` binary) on loopback ports.
//!
//! One binary rather than one per file: every integration test binary links the whole host (wasmtime,
//! the AWS SDK, axum), so two dozen of them cost two dozen links and many gigabytes of disk. Run one area
//! with `cargo test -p idfed-tests --test e2e vend::`.

mod admin_api;
mod admin_cli;
mod api;
mod approvals;
mod auth;
mod aws_clients;
mod behind_a_proxy;
mod client;
mod console;
mod container_server;
mod credential_cache;
mod crowd;
mod durability;
mod exec;
mod http_edges;
mod justification;
mod migrate_store;
mod openapi;
mod plugin_containment;
mod plugin_new;
mod plugins;
mod postgres_cluster;
mod python_plugins;
mod quickstart;
mod replicas;
mod service_tokens;
mod store;
mod store_db;
mod sts;
mod sts_standin;
mod tls;
mod vend;
mod web_session;
mod web_ui;
mod web_ui_sso;
mod workload;
