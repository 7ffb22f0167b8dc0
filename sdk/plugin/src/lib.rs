//! Write idfed policy plugins in Rust.
//!
//! A policy plugin is a WebAssembly component that sees every credential request made to the connectors it is
//! bound to, and may refuse it or narrow it (shorter duration, smaller session policy, extra session tags). The
//! host runs each call in a fresh, sandboxed instance.
//!
//! A plugin is a struct, an implementation of [`Policy`] and one [`export_policy!`] line:
//!
//! ```
//! use idfed_sdk::{export_policy, ConfigError, Decision, PluginError, Policy, Request};
//! use serde::Deserialize;
//!
//! /// Refuses credentials to callers outside a list of groups.
//! struct GroupGate;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     /// Callers must belong to one of these groups.
//!     groups: Vec<String>,
//! }
//!
//! impl Policy for GroupGate {
//!     type Config = Config;
//!
//!     fn check_config(config: &Config) -> Result<(), ConfigError> {
//!         if config.groups.is_empty() {
//!             return Err(ConfigError::at("/groups", "list at least one group"));
//!         }
//!         Ok(())
//!     }
//!
//!     fn evaluate(config: &Config, request: &Request) -> Result<Decision, PluginError> {
//!         if request.caller.groups.iter().any(|g| config.groups.contains(g)) {
//!             Ok(Decision::allow_unchanged(request))
//!         } else {
//!             idfed_sdk::log!(info, "refused {:?}", request.caller.user_name);
//!             Ok(Decision::deny(format!("you must belong to one of: {}", config.groups.join(", "))))
//!         }
//!     }
//! }
//!
//! export_policy!(GroupGate);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`); see the README for the
//! whole workflow and the limits the host enforces.
//!
//! The SDK builds plugins of the contract `idfed:policy@0.2.0` (`wit/since_v0.2.0/`): besides what 0.1.0 had,
//! a [`Request`] carries the caller's `justification` and `ticket`, its [`Purpose`], the [`Approval`] of a
//! request that was approved and, for a workload caller, its [`WorkloadIdentity`] (`request.caller.workload`,
//! see [`Request::workload_claim`]); a plugin may answer [`Decision::needs_approval`].
//!
//! Besides the plugin contract, the crate has [`iam`], a pure-Rust model of IAM policy documents (parsing,
//! STS limits, wildcard-aware action queries and a conservative "allows nothing more" check), which the host
//! uses natively as well.
//!
//! On targets other than `wasm32` the host imports ([`log`](mod@log), [`kv`], [`clock`]) are served by an in-memory
//! test double (see [`testing`]), so plugins can unit-test their logic with a plain `cargo test`.
#![deny(missing_docs)]

extern crate self as idfed_sdk;

mod config;
mod helpers;

pub mod clock;
pub mod iam;
pub mod kv;
pub mod log;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// The generated bindings. Not part of the public API: use the re-exports at the crate root.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod __private {
    pub use wit_bindgen;

    wit_bindgen::generate!({
        path: "../../wit/since_v0.2.0",
        world: "policy-plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "::idfed_sdk::__private",
        runtime_path: "::idfed_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
    });
}

pub use config::parse_config;

pub use __private::idfed::policy::kv::KvError;
/// The types of the plugin contract (`idfed:policy/types@0.2.0`).
pub use __private::idfed::policy::types::{
    Approval, ApprovalRequirement, Caller, Claim, ConfigError, Connector, Decision, Denial, Grant,
    PluginError, PrincipalType, Purpose, Request, SessionTag, Timestamp, WorkloadIdentity,
};

/// The version of the plugin contract (`idfed:policy`) this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// Configuration type for plugins that take none: accepts (and ignores) any JSON configuration.
pub type NoConfig = serde::de::IgnoredAny;

/// A policy plugin.
///
/// The functions take no `self`: every call runs in a fresh WebAssembly instance, so nothing kept in memory
/// survives from one call to the next (use [`kv`] for state that must).
pub trait Policy {
    /// The binding's configuration, deserialized from its JSON text (empty text counts as `{}`).
    ///
    /// Use [`NoConfig`] for a plugin without configuration.
    type Config: serde::de::DeserializeOwned;

    /// Checks a configuration beyond what deserialization checks. Called when an administrator binds the plugin
    /// (`validate-config`) and again before every [`evaluate`](Policy::evaluate), so `evaluate` can rely on it.
    fn check_config(config: &Self::Config) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Decides on one credential request: deny it, or allow it with a grant that may only narrow the request.
    fn evaluate(config: &Self::Config, request: &Request) -> Result<Decision, PluginError>;
}

/// Runs the plugin's configuration check on JSON text, as the exported `validate-config` does.
///
/// Useful in a plugin's native unit tests.
pub fn validate_config<P: Policy + ?Sized>(config: &str) -> Result<(), ConfigError> {
    let parsed: P::Config = parse_config(config)?;
    P::check_config(&parsed)
}

/// Parses and checks the JSON configuration, then evaluates the request, as the exported `evaluate` does.
///
/// A configuration that fails to parse or check yields [`PluginError::InvalidConfig`]. Useful in a plugin's
/// native unit tests.
pub fn evaluate<P: Policy + ?Sized>(
    config: &str,
    request: &Request,
) -> Result<Decision, PluginError> {
    let parsed: P::Config =
        parse_config(config).map_err(|e| PluginError::InvalidConfig(e.to_text()))?;
    P::check_config(&parsed).map_err(|e| PluginError::InvalidConfig(e.to_text()))?;
    P::evaluate(&parsed, request)
}

/// Exports a [`Policy`] implementation as the component's `idfed:policy/policy` interface.
///
/// Use it exactly once, at the top level of the plugin crate (a `cdylib`):
///
/// ```ignore
/// idfed_sdk::export_policy!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_policy {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __IdfedPolicyExport;

        impl $crate::__private::exports::idfed::policy::policy::Guest for __IdfedPolicyExport {
            fn validate_config(config: ::std::string::String) -> ::std::result::Result<(), $crate::ConfigError> {
                $crate::validate_config::<$plugin>(&config)
            }

            fn evaluate(
                config: ::std::string::String,
                request: $crate::Request,
            ) -> ::std::result::Result<$crate::Decision, $crate::PluginError> {
                $crate::evaluate::<$plugin>(&config, &request)
            }
        }

        // Only WebAssembly builds export: natively (unit tests) the component export names, which contain `:`,
        // would break the linker's symbol list for a cdylib.
        #[cfg(target_arch = "wasm32")]
        $crate::__private::export!(__IdfedPolicyExport with_types_in $crate::__private);
    };
}
