//! The generated host bindings, one module per version of the plugin contract (`wit/since_v<version>/`),
//! each converting the host's own request into its version's types. The version strings live in those
//! modules only; everything else names a version by [`ContractVersion`].
//!
//! A plugin's answers are not lifted by these bindings but by `lift`, with limits.

pub mod v0_1;
pub mod v0_2;

use wasmtime::Engine;
use wasmtime::component::Component;

/// The version of the `idfed:policy` contract a component targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ContractVersion {
    /// `idfed:policy@0.1.0`, frozen (`wit/since_v0.1.0/`).
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `idfed:policy@0.2.0` (`wit/since_v0.2.0/`).
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl ContractVersion {
    /// Every version the host loads, oldest first.
    pub const ALL: [ContractVersion; 2] = [ContractVersion::V0_1, ContractVersion::V0_2];

    /// The package's version: `0.1.0`.
    pub fn version(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => v0_1::VERSION,
            ContractVersion::V0_2 => v0_2::VERSION,
        }
    }

    /// The package with its version: `idfed:policy@0.1.0`.
    pub fn package(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => v0_1::PACKAGE,
            ContractVersion::V0_2 => v0_2::PACKAGE,
        }
    }

    /// The interface a plugin of this version exports: `idfed:policy/policy@0.1.0`.
    pub fn policy_export(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => v0_1::POLICY_EXPORT,
            ContractVersion::V0_2 => v0_2::POLICY_EXPORT,
        }
    }

    /// The version whose policy interface `component` exports, if it exports one of them.
    pub fn of(component: &Component, engine: &Engine) -> Option<ContractVersion> {
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        // The newest first: a component exporting both is a plugin of the newer contract.
        ContractVersion::ALL
            .into_iter()
            .rev()
            .find(|version| exports.iter().any(|e| e == version.policy_export()))
    }

    /// Every package the host links, for messages: `idfed:policy@0.1.0 or idfed:policy@0.2.0`.
    pub fn all_packages() -> String {
        ContractVersion::ALL
            .map(ContractVersion::package)
            .join(" or ")
    }

    /// Every policy interface the host loads, for messages.
    pub fn all_policy_exports() -> String {
        ContractVersion::ALL
            .map(|v| format!("`{}`", v.policy_export()))
            .join(" or ")
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.package())
    }
}

/// Seconds and nanoseconds since the Unix epoch, as every version's `timestamp` holds them.
pub(crate) fn since_epoch(time: std::time::SystemTime) -> (u64, u32) {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(std::time::Duration::ZERO);
    (since.as_secs(), since.subsec_nanos())
}
