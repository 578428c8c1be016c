//! HTTP/1.1 over plain TCP to one deployment, with each connection driven by the task that
//! uses it.
//!
//! A pooled client (hyper-util's, under reqwest) runs every connection in a task of its own
//! and hands the request, the response head and each body frame across channels between that
//! task and the request's. On a multi-threaded runtime the two tasks land on different workers,
//! so a request cost several cross-thread wake-ups (futex calls) and a stream one per frame:
//! profiling put them at a tenth to a fifth of moat's CPU. Here the request's own task polls
//! the connection while it waits for the answer and while it reads the body, so frames the
//! upstream sent together are read together, and nothing crosses threads.
//!
//! Only plain `http://` deployments use this: self-hosted servers on the company's network,
//! where the rate is highest. TLS deployments keep the shared client, which negotiates HTTP/2.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long an unused connection stays in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a request could not be sent.
#[derive(Debug)]
pub(crate) enum DirectError {
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// The connection was refused, or the host did not resolve.
    Connect,
    /// The connection broke before the answer's head arrived.
    Broken,
}

/// One open connection: the handle requests are sent through and the connection itself, which
/// whoever holds it must poll.
struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    connection: http1::Connection<TokioIo<TcpStream>, Full<Bytes>>,
    /// The connection future has completed (closed or failed) and must not be polled again.
    finished: bool,
    idle_since: Instant,
}

impl Conn {
    /// Lets the connection make progress: write the request, read the answer, notice a close.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.finished && Pin::new(&mut self.connection).poll(cx).is_ready() {
            self.finished = true;
        }
    }

    /// Drives the connection once without arranging to be woken: for a connection that nobody
    /// is waiting on (in the pool, or just put back), so that no finished task is kept alive
    /// by a waker left with its socket.
    fn drive_detached(&mut self) {
        self.drive(&mut Context::from_waker(Waker::noop()));
    }

    /// Whether a new request can go out on it now.
    fn reusable(&mut self) -> bool {
        self.drive_detached();
        !self.finished && self.send.is_ready()
    }
}

/// The connections to one deployment.
pub(crate) struct DirectPool {
    /// `host:port`, for connecting.
    authority: String,
    connect_timeout: Duration,
    /// Idle connections, oldest first; the newest is reused first, so the old ones age out.
    idle: Mutex<VecDeque<Conn>>,
}

impl std::fmt::Debug for DirectPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectPool").field("authority", &self.authority).finish_non_exhaustive()
    }
}

impl DirectPool {
    /// A pool for the deployment at `authority` (`host:port`).
    pub(crate) fn new(authority: String, connect_timeout: Duration) -> Self {
        DirectPool { authority, connect_timeout, idle: Mutex::new(VecDeque::new()) }
    }

    /// Sends `request` and waits for the answer's head, driving the connection meanwhile. A
    /// pooled connection that turns out to have been closed by the server before the request
    /// went out is replaced by a new one, once.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), DirectError> {
        let (mut conn, mut reused) = match self.checkout() {
            Some(conn) => (conn, true),
            None => (self.connect().await?, false),
        };
        loop {
            let mut answer = std::pin::pin!(conn.send.try_send_request(request));
            let outcome = poll_fn(|cx| {
                conn.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            match outcome {
                Ok(response) => return Ok((response, Lease { pool: Arc::clone(self), conn: Some(conn) })),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if reused => {
                        request = unsent;
                        conn = self.connect().await?;
                        reused = false;
                    }
                    _ => return Err(DirectError::Broken),
                },
            }
        }
    }

    /// The most recently used idle connection that is still open, if any.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut conn) = idle.pop_back() {
            if conn.idle_since.elapsed() < IDLE_TIMEOUT && conn.reusable() {
                return Some(conn);
            }
        }
        None
    }

    /// Puts a connection whose answer has been read in full back in the pool, and lets go of
    /// connections idle for too long.
    fn checkin(&self, mut conn: Conn) {
        if !conn.reusable() {
            return;
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while idle.front().is_some_and(|oldest| oldest.idle_since.elapsed() >= IDLE_TIMEOUT) {
            idle.pop_front();
        }
        idle.push_back(conn);
    }

    async fn connect(&self) -> Result<Conn, DirectError> {
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.authority)).await {
            Err(_) => return Err(DirectError::ConnectTimeout),
            Ok(Err(_)) => return Err(DirectError::Connect),
            Ok(Ok(stream)) => stream,
        };
        // Frames of a stream go out as they come; Nagle would hold them for an ACK.
        stream.set_nodelay(true).map_err(|_| DirectError::Connect)?;
        let (send, connection) =
            http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(|_| DirectError::Broken)?;
        Ok(Conn { send, connection, finished: false, idle_since: Instant::now() })
    }
}

/// The connection an answer is being read from: polled along with the body, and back in the
/// pool once the body has been read to its end. Dropped earlier (the client went away, or an
/// error), it closes the connection, which tells the upstream to stop generating.
pub(crate) struct Lease {
    pool: Arc<DirectPool>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("pool", &self.pool).field("held", &self.conn.is_some()).finish()
    }
}

impl Lease {
    /// Lets the connection read more of the answer.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.conn {
            conn.drive(cx);
        }
    }

    /// The body has been read to its end: the connection can carry another request.
    pub(crate) fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.checkin(conn);
        }
    }
}

/// Reads frames of `body` while driving the connection of `lease`, if it has one; at the end of
/// the body the connection goes back to its pool.
pub(crate) fn poll_body(
    body: &mut Incoming,
    lease: &mut Option<Lease>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, hyper::Error>>> {
    use hyper::body::Body as _;
    loop {
        if let Some(lease) = lease.as_mut() {
            lease.drive(cx);
        }
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // Trailers carry nothing moat relays.
                let Ok(data) = frame.into_data() else { continue };
                if body.is_end_stream()
                    && let Some(lease) = lease.take()
                {
                    lease.release();
                }
                return Poll::Ready(Some(Ok(data)));
            }
            Poll::Ready(Some(Err(e))) => {
                *lease = None;
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Ready(None) => {
                if let Some(lease) = lease.take() {
                    lease.release();
                }
                return Poll::Ready(None);
            }
            Poll::Pending => return Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers each request on a connection with a fixed body, counting the
    /// connections it accepted; it closes a connection after `per_connection` answers.
    async fn server(per_connection: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        #[allow(clippy::disallowed_methods, reason = "the server lives as long as the test's runtime")]
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                #[allow(clippy::disallowed_methods, reason = "ends with its connection")]
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    for _ in 0..per_connection {
                        let mut read = 0;
                        while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buffer[read..]).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => read += n,
                            }
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    fn request(authority: &str) -> Request<Full<Bytes>> {
        Request::post("/v1/x")
            .header(http::header::HOST, authority)
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request")
    }

    async fn read_all(pool: &Arc<DirectPool>, authority: &str) -> Vec<u8> {
        let (response, lease) = pool.send(request(authority)).await.expect("answer");
        let (_, mut body) = response.into_parts();
        let mut lease = Some(lease);
        let mut bytes = Vec::new();
        while let Some(chunk) = poll_fn(|cx| poll_body(&mut body, &mut lease, cx)).await {
            bytes.extend_from_slice(&chunk.expect("chunk"));
        }
        bytes
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_carries_the_next_request() {
        let (authority, accepted) = server(usize::MAX).await;
        let pool = Arc::new(DirectPool::new(authority.clone(), Duration::from_secs(1)));
        for _ in 0..5 {
            assert_eq!(read_all(&pool, &authority).await, b"ok");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_without_failing_the_request() {
        let (authority, accepted) = server(1).await;
        let pool = Arc::new(DirectPool::new(authority.clone(), Duration::from_secs(1)));
        for _ in 0..3 {
            assert_eq!(read_all(&pool, &authority).await, b"ok");
            // Lets the server's close reach this side before the next checkout.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_answer_dropped_before_its_end_does_not_return_its_connection() {
        let (authority, accepted) = server(usize::MAX).await;
        let pool = Arc::new(DirectPool::new(authority.clone(), Duration::from_secs(1)));
        let (response, lease) = pool.send(request(&authority)).await.expect("answer");
        drop((response, lease));
        assert_eq!(read_all(&pool, &authority).await, b"ok");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let authority = listener.local_addr().expect("address").to_string();
        drop(listener);
        let pool = Arc::new(DirectPool::new(authority.clone(), Duration::from_secs(1)));
        assert!(matches!(pool.send(request(&authority)).await, Err(DirectError::Connect)));
    }
}
