//! What one evaluation's `Store` holds: an empty WASI context with captured, size-capped stdio, the
//! memory limiter, the CPU-deadline counter, and the host imports (`log`, `clock`, `kv`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings;
use super::kv::{BindingKv, KvError};
use super::log::{Level, LogSink};

/// The data of one evaluation's store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub log: LogSink,
    pub kv: BindingKv,
    pub stderr: CapturedOutput,
    /// Epoch callbacks left before the deadline trips.
    pub ticks_left: u64,
    pub timed_out: bool,
}

impl HostState {
    pub fn new(
        memory_limit: usize,
        log: LogSink,
        kv: BindingKv,
        stdio_bytes: usize,
        ticks: u64,
    ) -> Self {
        let stderr = CapturedOutput::new(stdio_bytes);
        // Nothing but what the builder gives by default: no preopens, no env, no args, stdin closed,
        // sockets denied for every address, name lookup off. Only stderr is kept, to explain a panic.
        let wasi = WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(stderr.clone())
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: memory_limit,
                exceeded: false,
            },
            log,
            kv,
            stderr,
            ticks_left: ticks,
            timed_out: false,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps one store's linear memory and remembers that the cap was hit, so the trap that follows can be told
/// apart from any other.
pub(crate) struct MemoryLimiter {
    pub limit: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A guest output stream that keeps the first `capacity` bytes and silently discards the rest, so a guest
/// writing without end neither fails (a failed `eprintln!` would panic) nor grows the host's memory.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    capacity: usize,
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl CapturedOutput {
    fn new(capacity: usize) -> Self {
        CapturedOutput {
            capacity,
            buffer: Arc::default(),
        }
    }

    /// What was kept, as text.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }

    fn keep(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap();
        let room = self.capacity.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(CapturedWriter(self.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

struct CapturedWriter(CapturedOutput);

impl tokio::io::AsyncWrite for CapturedWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.keep(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Implements one contract version's generated import traits (`log`, `clock`, `kv`, and the empty
/// `types`) by delegating to the one implementation: the store's [`LogSink`] and [`BindingKv`].
macro_rules! host_imports {
    ($version:ident) => {
        const _: () = {
            use bindings::$version::idfed::policy as wit;

            impl wit::types::Host for HostState {}

            impl wit::log::Host for HostState {
                fn write(&mut self, level: wit::log::Level, message: String) {
                    let level = match level {
                        wit::log::Level::Debug => Level::Debug,
                        wit::log::Level::Info => Level::Info,
                        wit::log::Level::Warn => Level::Warn,
                        wit::log::Level::Error => Level::Error,
                    };
                    self.log_line(level, &message);
                }
            }

            impl wit::clock::Host for HostState {
                fn now(&mut self) -> wit::types::Timestamp {
                    bindings::$version::timestamp(SystemTime::now())
                }
            }

            impl wit::kv::Host for HostState {
                fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit::kv::KvError> {
                    self.kv_get(&key).map_err(Into::into)
                }

                fn set(
                    &mut self,
                    key: String,
                    value: Vec<u8>,
                    ttl: Option<u32>,
                ) -> Result<(), wit::kv::KvError> {
                    self.kv_set(&key, &value, ttl).map_err(Into::into)
                }

                fn delete(&mut self, key: String) -> Result<(), wit::kv::KvError> {
                    self.kv_delete(&key).map_err(Into::into)
                }

                fn increment(
                    &mut self,
                    key: String,
                    delta: i64,
                    ttl: Option<u32>,
                ) -> Result<i64, wit::kv::KvError> {
                    self.kv_increment(&key, delta, ttl).map_err(Into::into)
                }
            }

            impl From<KvError> for wit::kv::KvError {
                fn from(e: KvError) -> Self {
                    match e {
                        KvError::InvalidKey => wit::kv::KvError::InvalidKey,
                        KvError::ValueTooLarge => wit::kv::KvError::ValueTooLarge,
                        KvError::QuotaExceeded => wit::kv::KvError::QuotaExceeded,
                        KvError::NotACounter => wit::kv::KvError::NotACounter,
                        KvError::Unavailable(why) => wit::kv::KvError::Unavailable(why),
                    }
                }
            }
        };
    };
}

host_imports!(v0_1);
host_imports!(v0_2);

/// The one implementation of the imports, whatever the contract version.
impl HostState {
    fn log_line(&mut self, level: Level, message: &str) {
        self.log.write(level, message);
    }

    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.kv.get(key).map_err(hide_unavailable)
    }

    fn kv_set(&mut self, key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), KvError> {
        self.kv
            .set(key, value, ttl.map(|s| Duration::from_secs(s.into())))
            .map_err(hide_unavailable)
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        self.kv.delete(key).map_err(hide_unavailable)
    }

    fn kv_increment(&mut self, key: &str, delta: i64, ttl: Option<u32>) -> Result<i64, KvError> {
        self.kv
            .increment(key, delta, ttl.map(|s| Duration::from_secs(s.into())))
            .map_err(hide_unavailable)
    }
}

/// The host's store failing is logged here; the plugin is told only that it is unavailable.
fn hide_unavailable(e: KvError) -> KvError {
    match e {
        KvError::Unavailable(why) => {
            tracing::error!(error = %why, "plugin key-value store unavailable");
            KvError::Unavailable("the host's store is unavailable".into())
        }
        other => other,
    }
}
