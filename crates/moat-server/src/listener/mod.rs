//! The HTTP listener: accepting connections under limits, TLS termination, and closing
//! connections gracefully at shutdown.
//!
//! moat serves connections itself (hyper-util's HTTP/1 + HTTP/2 server) rather than through
//! `axum::serve`, because that is where a gateway facing untrusted clients needs limits:
//! connections open at once, time to send the request head (slowloris), header count and size,
//! and the TLS handshake. Each accepted connection runs on its own task; at shutdown the accept
//! loop stops, every connection is told to finish its requests in flight and close, and
//! `serve` returns once they all have.

pub(crate) mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

pub use tls::TlsSettings;

use crate::state::AppState;

/// Limits on what one client may hold or send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Connections open at once; more are closed when accepted.
    pub max_connections: usize,
    /// Time to send a request's head (and to finish a TLS handshake).
    pub header_read_timeout: Duration,
    /// Header fields per request.
    pub max_headers: usize,
    /// Bytes of a request head.
    pub max_header_bytes: usize,
    /// TLS termination, when configured.
    pub tls: Option<TlsSettings>,
}

/// Marks a request that arrived over TLS (HSTS is sent only then).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverTls;

/// Accepts connections on `listener` and serves `app` on them until `stop` is cancelled;
/// then closes every connection gracefully and returns when all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ListenerSettings,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let builder = http_builder(&settings);
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    backoff_after(&error).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            state.metrics.observe_connection_refused();
            tracing::warn!(%remote, limit = settings.max_connections, "connection refused: server.max_connections reached");
            drop(tcp);
            continue;
        };
        // Stream frames are small writes: without TCP_NODELAY, Nagle's algorithm holds each
        // one back until the client acknowledges the last (tens of milliseconds per frame
        // with delayed acknowledgements).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY could not be set");
        }
        let connection = Connection {
            builder: builder.clone(),
            app: app.clone(),
            remote,
            handshake_timeout: settings.header_read_timeout,
            closing: closing.clone(),
            state: state.clone(),
        };
        let tls = tls.clone();
        connections.spawn(async move {
            connection.run(tcp, tls).await;
            drop(permit);
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

fn http_builder(settings: &ListenerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_headers(settings.max_headers)
        .max_buf_size(settings.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        // A client that stops answering pings is gone; its streams are cancelled.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Accept errors: a connection reset before it was accepted is nothing; running out of file
/// descriptors or memory is waited out briefly rather than spun on.
async fn backoff_after(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(error.kind(), ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; pausing before the next");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One accepted connection.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    remote: SocketAddr,
    handshake_timeout: Duration,
    closing: CancellationToken,
    state: Arc<AppState>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let _open = self.state.metrics.connection_opened();
        match tls {
            None => self.serve(TokioIo::new(tcp), false).await,
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp));
                let stream = tokio::select! {
                    done = handshake => done,
                    () = self.closing.cancelled() => return,
                };
                match stream {
                    Ok(Ok(stream)) => self.serve(TokioIo::new(stream), true).await,
                    Ok(Err(error)) => tracing::debug!(remote = %self.remote, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(remote = %self.remote, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve<I>(&self, io: I, over_tls: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let app = self.app.clone();
        let remote = self.remote;
        let service = tower::service_fn(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            if over_tls {
                request.extensions_mut().insert(OverTls);
            }
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.oneshot(request).await.unwrap_or_else(|never| match never {})) }
        });
        let connection = self.builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        let mut connection = std::pin::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = self.closing.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = result {
            // Clients that hang up, send garbage or exceed a limit end here; hyper has already
            // answered what could be answered (400, 431, 408).
            tracing::debug!(remote = %remote, %error, "connection ended with an error");
        }
    }
}
