//! Serving a router on a listener, with the connection timeouts `axum::serve` lacks: a
//! connection that sends nothing, half a request head, or half a body would otherwise stay
//! open for ever, and a few hundred of them take every file descriptor the process has.
//!
//! Each connection has a clock (`Clock`) fed by its socket, its requests and their bodies,
//! with the semantics of Go's `ReadHeaderTimeout` and `IdleTimeout`:
//! - a request's head must be complete within `header_timeout` of its first byte (of the
//!   connection's opening, for the first request);
//! - between requests, the next must start within `idle_timeout`;
//! - while a handler waits for more of a request's body, a byte must come within
//!   `idle_timeout`.
//!
//! A handler that takes its time (an upload being stored, an event stream) is not timed here.
//! When the clock runs out the connection is dropped; on shutdown every connection finishes
//! its request in flight and closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a connection may keep the server waiting (see the module comment).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// Accept and serve connections until `stop` fires; then stop accepting, let every
/// connection finish its request in flight, and return when all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: ConnectionTimeouts,
    stop: CancellationToken,
) {
    // Every connection task holds a receiver; `closed()` resolves when the last is gone.
    let (all_closed, open) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                backoff_after(e).await;
                continue;
            }
        };
        let (app, stop, open) = (app.clone(), stop.clone(), open.clone());
        tokio::spawn(async move {
            serve_connection(stream, peer, app, timeouts, stop).await;
            drop(open);
        });
    }
    drop(open);
    drop(listener);
    all_closed.closed().await;
}

/// An accept error is the peer's (it went away) or the process's (out of descriptors): in
/// the second case, retrying at once would spin while timeouts free descriptors.
async fn backoff_after(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::warn!(error = %e, "cannot accept a connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    timeouts: ConnectionTimeouts,
    stop: CancellationToken,
) {
    let clock = Arc::new(Clock::new(timeouts));
    let io = TokioIo::new(Watched {
        inner: stream,
        clock: clock.clone(),
    });
    let service = {
        let clock = clock.clone();
        hyper::service::service_fn(move |req| handle(app.clone(), clock.clone(), peer, req))
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            _ = clock.expired() => {
                tracing::debug!(%peer, "closing a connection that kept the server waiting");
                return;
            }
            _ = stop.cancelled(), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}

/// One request through the router, timed by the connection's clock from its head to the
/// end of its response.
async fn handle(
    app: Router,
    clock: Arc<Clock>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    let in_flight = InFlight::start(clock.clone());
    let mut req = req.map(|inner| Body::new(WatchedBody { inner, clock }));
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = app.oneshot(req).await?;
    Ok(resp.map(|inner| {
        Body::new(UntilSent {
            inner,
            _in_flight: in_flight,
        })
    }))
}

/// Where a connection stands, and by when the client must have done its part.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// A request head is due by `deadline`.
    Head { deadline: Instant },
    /// Between requests: the next is due by `deadline`.
    Idle { deadline: Instant },
    /// `requests` are being served; `body_due`: a handler waits for body bytes until then.
    Busy {
        requests: usize,
        body_due: Option<Instant>,
    },
}

struct Clock {
    timeouts: ConnectionTimeouts,
    phase: Mutex<Phase>,
    /// Wakes `expired` when a deadline appears or moves earlier.
    changed: Notify,
}

impl Clock {
    fn new(timeouts: ConnectionTimeouts) -> Clock {
        Clock {
            timeouts,
            phase: Mutex::new(Phase::Head {
                deadline: Instant::now() + timeouts.header,
            }),
            changed: Notify::new(),
        }
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        // A poisoned lock only means a panic elsewhere mid-update; the phase is still whole.
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = change(*phase);
        self.changed.notify_one();
    }

    fn deadline(&self) -> Option<Instant> {
        match *self.phase.lock().unwrap_or_else(|e| e.into_inner()) {
            Phase::Head { deadline } | Phase::Idle { deadline } => Some(deadline),
            Phase::Busy { body_due, .. } => body_due,
        }
    }

    /// Bytes came in: between requests, that starts the next head's clock.
    fn bytes_read(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                deadline: Instant::now() + self.timeouts.header,
            };
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.update(|phase| match phase {
            Phase::Busy { requests, body_due } => Phase::Busy {
                requests: requests + 1,
                body_due,
            },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy {
                requests: 1,
                body_due: None,
            },
        });
    }

    fn request_finished(&self) {
        let idle = self.timeouts.idle;
        self.update(|phase| match phase {
            Phase::Busy { requests, body_due } if requests > 1 => Phase::Busy {
                requests: requests - 1,
                body_due,
            },
            _ => Phase::Idle {
                deadline: Instant::now() + idle,
            },
        });
    }

    /// A handler waits for body bytes: they are due within the idle timeout.
    fn body_waiting(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Busy { body_due, .. } = &mut *phase
            && body_due.is_none()
        {
            *body_due = Some(Instant::now() + self.timeouts.idle);
            self.changed.notify_one();
        }
    }

    /// Body bytes (or its end) arrived: nothing is due until the handler waits again.
    fn body_moved(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Busy { body_due, .. } = &mut *phase {
            *body_due = None;
        }
    }

    /// Resolves once the client has kept the server waiting past a deadline.
    async fn expired(&self) {
        loop {
            match self.deadline() {
                Some(due) if due <= Instant::now() => return,
                Some(due) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// Marks a request in flight until its response is sent (or dropped).
struct InFlight(Arc<Clock>);

impl InFlight {
    fn start(clock: Arc<Clock>) -> InFlight {
        clock.request_started();
        InFlight(clock)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request in flight until hyper has sent it.
struct UntilSent {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for UntilSent {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that tells the clock when its handler waits for the client.
struct WatchedBody {
    inner: Incoming,
    clock: Arc<Clock>,
}

impl http_body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Pending => self.clock.body_waiting(),
            Poll::Ready(_) => self.clock.body_moved(),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, telling the clock when bytes come in.
struct Watched {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
