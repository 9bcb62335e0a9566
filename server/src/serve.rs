//! The accept loop: hyper's HTTP/1 and HTTP/2 server over the router, with
//! the limits that keep clients without a key from taking the server down,
//! and a graceful shutdown.
//!
//! `axum::serve` offers none of these knobs, so the loop is ours:
//! - a cap on open connections: a slot is taken before accepting (at the cap
//!   the listener waits and the kernel's backlog holds newcomers) and given
//!   back when the connection closes;
//! - a cap per client address, so that one address cannot take every slot:
//!   its connections beyond the cap are closed at once;
//! - deadlines, so that a slot held by a silent or slow client comes back: a
//!   new connection must deliver its first request head within the header
//!   deadline (hyper's own timer starts only once it knows the protocol), and
//!   a connection with no request under way is closed after the idle timeout;
//! - caps on the size of a request's head, and HTTP/2 keep-alive pings.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::client_address::{self, TrustedProxies};
use crate::limits::Connections;

/// Serves `app` until `shutdown` completes; then closes the listener (new
/// connections are refused), lets requests in flight finish and closes idle
/// connections.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    connections: Connections,
    trusted_proxies: TrustedProxies,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = http_builder(&connections);
    let slots = Arc::new(Semaphore::new(connections.max.max(1)));
    let per_address = PerAddress::new(connections.max_per_address.max(1));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after_accept_error(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let address_slot = match trusted_proxies.trusts(remote.ip()) {
            true => None,
            false => match per_address.take(client_address::key(remote.ip())) {
                Some(taken) => Some(taken),
                None => {
                    tracing::debug!(%remote, "closing a connection over the cap for its address");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);

        // Each request learns the client's address, as `ConnectInfo`, and
        // tells the connection's watchdog when it starts and ends.
        let activity = Arc::new(Activity::new());
        let app = app.clone();
        let service = hyper::service::service_fn({
            let activity = activity.clone();
            move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                let under_way = activity.request_started();
                let answer = app.clone().oneshot(request);
                async move {
                    let response = answer.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(Watched { body, _under_way: under_way })))
                }
            }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        let deadlines = Deadlines { first_request: connections.header_read_timeout, idle: connections.idle_timeout };
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!(%remote, %error, "connection ended with an error");
                },
                () = activity.idle_too_long(deadlines) => {
                    tracing::debug!(%remote, "closing a connection that sent no request in time");
                }
            }
            drop(address_slot);
            drop(slot);
        });
    }

    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn http_builder(connections: &Connections) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(connections.header_read_timeout)
        // hyper answers 431 when a request's head does not fit its buffer,
        // which cannot be smaller than 8 KiB.
        .max_buf_size(connections.max_header_bytes.max(8192))
        .max_headers(connections.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(connections.idle_timeout / 2)
        .keep_alive_timeout(connections.header_read_timeout)
        .max_header_list_size(u32::try_from(connections.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// How long a connection may go without a request under way.
#[derive(Clone, Copy)]
struct Deadlines {
    /// From the accept to the first request's complete head.
    first_request: Duration,
    /// From the end of one answer to the next request's complete head.
    idle: Duration,
}

/// What a connection's watchdog knows: how many requests are under way (from
/// their complete head to the end of their answer's body), whether any has
/// come yet, and when the count last moved. Requests only write it; the
/// watchdog reads it when its deadline comes, so a busy connection costs the
/// watchdog one wake-up per deadline, not two per request.
struct Activity {
    opened: Instant,
    under_way: AtomicUsize,
    started: AtomicU64,
    /// Milliseconds since `opened` at the last start or end of a request.
    last_change_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            under_way: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            last_change_ms: AtomicU64::new(0),
        }
    }

    fn request_started(self: &Arc<Self>) -> UnderWay {
        self.under_way.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.touch();
        UnderWay(self.clone())
    }

    fn touch(&self) {
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_change_ms.store(now, Ordering::SeqCst);
    }

    /// Resolves once the connection has had no request under way for longer
    /// than its deadline: it sleeps until the deadline as last known, and
    /// there looks again, since requests may have moved it on meanwhile.
    /// Requests only ever move the deadline later, but for the first: it
    /// changes the deadline from the first request's to the idle one, which
    /// may be shorter, so no sleep is longer than the idle deadline.
    async fn idle_too_long(&self, deadlines: Deadlines) {
        loop {
            let now = Instant::now();
            let limit = match self.started.load(Ordering::Relaxed) {
                0 => deadlines.first_request,
                _ => deadlines.idle,
            };
            let due = match self.under_way.load(Ordering::SeqCst) {
                // A request under way: its end is at least a deadline away.
                0 => self.opened + Duration::from_millis(self.last_change_ms.load(Ordering::SeqCst)) + limit,
                _ => now + limit,
            };
            if now >= due && self.under_way.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep_until(due.min(now + deadlines.idle)).await;
        }
    }
}

/// One request under way; its end is when this is dropped, with the answer's body.
struct UnderWay(Arc<Activity>);

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.0.under_way.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// An answer's body that keeps its request counted as under way until the
/// body is sent or dropped (a download streamed to a slow reader is not idle).
struct Watched {
    body: Body,
    _under_way: UnderWay,
}

impl hyper::body::Body for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Open connections by client address (see [`client_address::key`]).
#[derive(Clone)]
struct PerAddress {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its address's count, given back when dropped.
struct AddressSlot {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        PerAddress { max, open: Arc::default() }
    }

    fn take(&self, address: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { address, open: self.open.clone() })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// A failed accept is either one client's trouble (it hung up before we got
/// to it) or the process running out of file descriptors; in the second case
/// wait a little rather than spin.
async fn pause_after_accept_error(error: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(error.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    tracing::warn!(%error, "accepting a connection failed; pausing");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
