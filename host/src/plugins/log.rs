//! Plugin log output (`idfed:policy/log` and the guest's stderr): lines are size-capped, control
//! characters escaped, tagged with plugin, binding and connector, and rate-limited per binding by a token
//! bucket, so that a plugin cannot flood the host's log, memory or disk. Dropped lines are counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How plugin log output is limited.
#[derive(Clone, Debug)]
pub struct LogLimits {
    /// The longest line kept, in bytes; longer lines are cut.
    pub max_line_bytes: usize,
    /// The most lines one evaluation may write.
    pub max_lines_per_call: u32,
    /// Lines a binding may write in a burst.
    pub burst: u32,
    /// Lines per second a binding may write after its burst.
    pub per_second: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_line_bytes: 1024,
            max_lines_per_call: 32,
            burst: 200,
            per_second: 20,
        }
    }
}

/// The level of a plugin log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Per-binding token buckets, shared by every evaluation.
#[derive(Clone, Default)]
pub(crate) struct LogBuckets {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl LogBuckets {
    fn take(&self, binding: &str, limits: &LogLimits) -> bool {
        let mut buckets = self.buckets.lock().unwrap();
        let now = Instant::now();
        let bucket = buckets.entry(binding.to_owned()).or_insert_with(|| Bucket {
            tokens: f64::from(limits.burst),
            refilled: now,
        });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * f64::from(limits.per_second)).min(f64::from(limits.burst));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Where one evaluation's log lines go: tagged, limited, counted.
pub(crate) struct LogSink {
    pub plugin: Arc<str>,
    pub binding: Arc<str>,
    pub connector: Arc<str>,
    pub request_id: Arc<str>,
    limits: Arc<LogLimits>,
    buckets: LogBuckets,
    written: u32,
    pub dropped: u32,
}

impl LogSink {
    pub fn new(
        plugin: Arc<str>,
        binding: Arc<str>,
        connector: Arc<str>,
        request_id: Arc<str>,
        limits: Arc<LogLimits>,
        buckets: LogBuckets,
    ) -> Self {
        LogSink {
            plugin,
            binding,
            connector,
            request_id,
            limits,
            buckets,
            written: 0,
            dropped: 0,
        }
    }

    /// Writes one line, or counts it as dropped.
    pub fn write(&mut self, level: Level, message: &str) {
        if self.written >= self.limits.max_lines_per_call
            || !self.buckets.take(&self.binding, &self.limits)
        {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.written += 1;
        let line = sanitize(message, self.limits.max_line_bytes);
        let (plugin, binding, connector, request_id) = (
            &*self.plugin,
            &*self.binding,
            &*self.connector,
            &*self.request_id,
        );
        match level {
            Level::Debug => {
                tracing::debug!(target: "idfed::plugin", plugin, binding, connector, request_id, "{line}")
            }
            Level::Info => {
                tracing::info!(target: "idfed::plugin", plugin, binding, connector, request_id, "{line}")
            }
            Level::Warn => {
                tracing::warn!(target: "idfed::plugin", plugin, binding, connector, request_id, "{line}")
            }
            Level::Error => {
                tracing::error!(target: "idfed::plugin", plugin, binding, connector, request_id, "{line}")
            }
        }
    }

    /// Reports lines dropped during the evaluation, once.
    pub fn finish(&mut self) {
        if self.dropped > 0 {
            let (plugin, binding, connector, dropped) = (
                &*self.plugin,
                &*self.binding,
                &*self.connector,
                self.dropped,
            );
            tracing::warn!(target: "idfed::plugin", plugin, binding, connector, dropped, "plugin log lines dropped by the host's limits");
            self.dropped = 0;
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary and escapes control characters, so a plugin
/// cannot forge log lines or terminal escapes.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut line = String::with_capacity(cut);
    for c in text[..cut].chars() {
        if c.is_control() {
            line.extend(c.escape_debug());
        } else {
            line.push(c);
        }
    }
    if cut < text.len() {
        line.push_str(" …[truncated]");
    }
    line
}

/// The duration after which an idle binding's bucket would be full again; used by tests.
#[cfg(test)]
fn refill_time(limits: &LogLimits) -> std::time::Duration {
    std::time::Duration::from_secs_f64(f64::from(limits.burst) / f64::from(limits.per_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(buckets: &LogBuckets, limits: LogLimits) -> LogSink {
        LogSink::new(
            "p".into(),
            "b".into(),
            "c".into(),
            "r".into(),
            Arc::new(limits),
            buckets.clone(),
        )
    }

    #[test]
    fn lines_are_cut_on_a_char_boundary_and_control_characters_escaped() {
        assert_eq!(sanitize("héllo", 2), "h …[truncated]");
        assert_eq!(
            sanitize("a\nfake line\u{1b}[31m", 100),
            "a\\nfake line\\u{1b}[31m"
        );
        assert_eq!(sanitize("short", 100), "short");
    }

    #[test]
    fn a_call_writes_at_most_its_line_budget() {
        let buckets = LogBuckets::default();
        let mut s = sink(
            &buckets,
            LogLimits {
                max_lines_per_call: 3,
                ..LogLimits::default()
            },
        );
        for _ in 0..10 {
            s.write(Level::Info, "x");
        }
        assert_eq!((s.written, s.dropped), (3, 7));
    }

    #[test]
    fn the_bucket_limits_a_binding_across_calls_and_refills() {
        let buckets = LogBuckets::default();
        let limits = LogLimits {
            max_lines_per_call: 100,
            burst: 5,
            per_second: 1000,
            ..LogLimits::default()
        };
        let mut first = sink(&buckets, limits.clone());
        for _ in 0..8 {
            first.write(Level::Info, "x");
        }
        assert_eq!((first.written, first.dropped), (5, 3));
        std::thread::sleep(refill_time(&limits) + std::time::Duration::from_millis(5));
        let mut second = sink(&buckets, limits);
        second.write(Level::Info, "x");
        assert_eq!(second.written, 1);
    }
}
