//! Serving the app: plain HTTP or TLS (rustls, from PEM files), HTTP/1.1 on hyper behind the
//! [`super::http_guard`], with the client's address as `ConnectInfo<SocketAddr>`, and a graceful shutdown
//! that lets requests in flight finish.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower::ServiceExt;

use super::http_guard::Guarded;
use super::{AppState, app};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS acceptor from a PEM certificate chain and a PEM private key; the error names the file.
pub fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls_cert {}: no certificate in the file",
            cert.display()
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("server.tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| format!("server.tls_key {}: {e}", key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves the app on `listener` (TLS when `tls` is given) until `shutdown` completes, then lets the
/// requests in flight finish. The caller flushes the service afterwards ([`crate::service::Service::shutdown`]).
///
/// Each connection is HTTP/1.1 behind [`Guarded`] (what hyper's parser would refuse is answered as JSON),
/// half-closable (a client that shuts its side after sending still gets its answer), in its own task;
/// TLS handshakes run in the connection's task too, at most `limits.max_tls_handshakes` at once and each
/// for at most 10 s, so that neither a slow client nor a flood of handshakes holds up the others.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let handshakes = Arc::new(Semaphore::new(state.limits.max_tls_handshakes));
    let router = if tls.is_some() {
        // Served over TLS: browsers are told to use nothing else from now on.
        app(state).layer(axum::middleware::from_fn(
            super::web::strict_transport_security,
        ))
    } else {
        app(state)
    };
    let mut http = http1::Builder::new();
    http.half_close(true).timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshakes = handshakes.clone();
        tokio::spawn(async move {
            let served =
                match tls {
                    None => {
                        let connection =
                            http.serve_connection(TokioIo::new(Guarded::new(stream)), service);
                        watcher.watch(connection).await
                    }
                    Some(acceptor) => {
                        let Ok(_permit) = handshakes.acquire_owned().await else {
                            return;
                        };
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        drop(_permit);
                        let connection =
                            http.serve_connection(TokioIo::new(Guarded::new(stream)), service);
                        watcher.watch(connection).await
                    }
                };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
