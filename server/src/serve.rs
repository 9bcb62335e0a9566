//! The accept loop: hyper's HTTP/1 and HTTP/2 server over the router, with a
//! cap on open connections, a cap on the size of a request's headers, a
//! deadline for reading them, and a graceful shutdown.
//!
//! `axum::serve` offers none of these knobs, so the loop is ours: it takes a
//! connection slot before it accepts (at the cap the listener waits and the
//! kernel's backlog holds newcomers), and gives the slot back when the
//! connection closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::limits::Connections;

/// Serves `app` until `shutdown` completes; then closes the listener (new
/// connections are refused), lets requests in flight finish and closes idle
/// connections.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    connections: Connections,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = http_builder(&connections);
    let slots = Arc::new(Semaphore::new(connections.max.max(1)));
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
        let _ = stream.set_nodelay(true);

        // Each request learns the client's address, as `ConnectInfo`.
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            app.clone().oneshot(request)
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
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
        .max_header_list_size(u32::try_from(connections.max_header_bytes).unwrap_or(u32::MAX));
    builder
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
