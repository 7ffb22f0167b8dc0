//! What can go wrong with a plugin: load errors (at upload or start-up) and faults (while evaluating), each
//! with a stable code. A fault always means the request is denied.

use std::time::Duration;

/// Why a file could not be used as a policy plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component (a core module, or not WebAssembly at all).
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// A component, but not of the `policy-plugin` world of a contract version the host loads.
    #[error(
        "not a policy plugin of {packages}: {0}",
        packages = super::bindings::ContractVersion::all_packages()
    )]
    Incompatible(String),
    /// The plugin file is larger than the configured maximum.
    #[error("plugin is {size} bytes, more than the maximum of {max} bytes")]
    TooLarge {
        /// The file's size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The compiled-component cache could not be read or written.
    #[error("compiled-component cache: {0}")]
    Cache(String),
}

impl From<LoadError> for PluginFault {
    fn from(e: LoadError) -> Self {
        PluginFault::Incompatible(e.to_string())
    }
}

impl LoadError {
    /// A stable code for API errors and logs.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::NotAComponent(_) => "plugin_not_a_component",
            LoadError::Incompatible(_) => "plugin_incompatible",
            LoadError::TooLarge { .. } => "plugin_too_large",
            LoadError::Cache(_) => "plugin_cache_error",
        }
    }
}

/// A plugin malfunction while checking a configuration or evaluating a request.
///
/// Never an allow: the request is denied, and the fault is logged and audited with its binding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFault {
    /// The plugin ran past its deadline: in CPU time, or in wall-clock time (waiting counts too).
    #[error("{}", timeout_message(*deadline, *waiting))]
    Timeout {
        /// The binding's deadline.
        deadline: Duration,
        /// Whether the wall-clock deadline stopped it (it was waiting, or the host was busy) rather than
        /// the CPU deadline.
        waiting: bool,
    },
    /// The plugin tried to grow its memory past the binding's cap.
    #[error("plugin exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// The binding's cap.
        limit_bytes: usize,
    },
    /// The plugin trapped: a panic, an `unreachable`, an out-of-bounds access…
    #[error("plugin trapped: {message}")]
    Trap {
        /// The trap, with the tail of the plugin's stderr when it wrote one (a panic message).
        message: String,
    },
    /// The plugin reported an error itself (`plugin-error`).
    #[error("plugin reported an error: {message}")]
    PluginError {
        /// The plugin's own message.
        message: String,
    },
    /// The grant would widen the request (longer duration, more policies, changed tags…).
    #[error("plugin returned a grant that widens the request: {0}")]
    WidenedGrant(String),
    /// The grant is malformed (a policy that is not a valid IAM policy, a zero duration…).
    #[error("plugin returned an invalid grant: {0}")]
    InvalidGrant(String),
    /// The binding's plugin could not be loaded (e.g. a stored component of another world or version).
    /// Raised by whoever builds a connector's chain, naming the binding, so the request is denied rather
    /// than vended without the plugin.
    #[error("plugin cannot be used: {0}")]
    Incompatible(String),
    /// No instance could be created (the host is out of resources).
    #[error("plugin could not be instantiated: {0}")]
    Instantiate(String),
    /// No slot came free in time: the binding runs as many evaluations as it may at once, or every
    /// instance of the pool is in use. The request may be tried again shortly.
    #[error("plugin is busy: {message}")]
    Busy {
        /// Which limit was reached.
        message: String,
    },
}

fn timeout_message(deadline: Duration, waiting: bool) -> String {
    if waiting {
        format!(
            "plugin had not returned at its deadline of {} ms (time spent waiting counts too)",
            deadline.as_millis()
        )
    } else {
        format!(
            "plugin exceeded its CPU deadline of {} ms",
            deadline.as_millis()
        )
    }
}

impl PluginFault {
    /// A stable code for API errors, logs and the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            PluginFault::Timeout { .. } => "plugin_timeout",
            PluginFault::MemoryLimit { .. } => "plugin_memory_limit",
            PluginFault::Trap { .. } => "plugin_trap",
            PluginFault::PluginError { .. } => "plugin_error",
            PluginFault::WidenedGrant(_) => "plugin_widened_grant",
            PluginFault::InvalidGrant(_) => "plugin_invalid_grant",
            PluginFault::Incompatible(_) => "plugin_incompatible",
            PluginFault::Instantiate(_) => "plugin_instantiate_failed",
            PluginFault::Busy { .. } => "plugin_busy",
        }
    }
}

/// Why a binding's configuration was refused at bind time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// The plugin's `validate-config` refused the configuration.
    #[error("configuration refused by the plugin: {message}{}", pointer.as_deref().map(|p| format!(" (at {p})")).unwrap_or_default())]
    ConfigRefused {
        /// The plugin's explanation.
        message: String,
        /// Where in the JSON the problem is, if the plugin said.
        pointer: Option<String>,
    },
    /// The configuration is not JSON at all, or too large.
    #[error("configuration is not valid: {0}")]
    InvalidConfig(String),
    /// The limits asked for are out of the allowed range.
    #[error("limits out of range: {0}")]
    InvalidLimits(String),
    /// A tag key the binding would let its plugin add breaks STS's rules, or is listed twice.
    #[error("tag keys: {0}")]
    InvalidTagKeys(String),
    /// The plugin malfunctioned while checking the configuration.
    #[error(transparent)]
    Fault(#[from] PluginFault),
}

impl BindError {
    /// A stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            BindError::ConfigRefused { .. } => "plugin_config_refused",
            BindError::InvalidConfig(_) => "plugin_config_invalid",
            BindError::InvalidLimits(_) => "plugin_limits_invalid",
            BindError::InvalidTagKeys(_) => "plugin_tag_keys_invalid",
            BindError::Fault(fault) => fault.code(),
        }
    }
}
