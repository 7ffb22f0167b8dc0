//! Writing to idfed's log.
//!
//! The host tags every line with the plugin, the binding and the connector, caps each line's size and limits
//! how many lines a binding may write; lines over the limit are counted and dropped. Use the [`log!`](crate::log!)
//! macro for formatted lines:
//!
//! ```
//! idfed_sdk::log!(warn, "tag {} already set, leaving it", "team");
//! ```

/// How important a log line is.
pub use crate::__private::idfed::policy::log::Level;

/// Writes one line at the given level.
pub fn write(level: Level, message: impl AsRef<str>) {
    #[cfg(target_arch = "wasm32")]
    crate::__private::idfed::policy::log::write(level, message.as_ref());
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::record_log(level, message.as_ref());
}

/// Writes a debug line: detail for whoever debugs the plugin.
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message)
}

/// Writes an info line: normal operation.
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message)
}

/// Writes a warning: something unexpected that the plugin could handle.
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message)
}

/// Writes an error line: something the plugin could not handle.
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message)
}

/// Formats and writes one log line: `log!(LEVEL, "format", args...)` where `LEVEL` is `debug`, `info`, `warn`
/// or `error`.
///
/// ```
/// let user = "alice";
/// idfed_sdk::log!(info, "granted {user} {} seconds", 3600);
/// ```
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::$level(::std::format!($($arg)+))
    };
}
