//! What axum itself can carry on this machine: `GET /healthz` answering "ok"
//! through `axum::serve`, on the same runtime as the server's (tokio's
//! multi-threaded one, a worker per core), with no middleware, no state and
//! no logging. `bench/run.sh` measures the server's check-ins against it as
//! well as against the server's own `/healthz`, which carries every layer.
//!
//!     seatkeeper-ceiling [ADDR]    (default 127.0.0.1:3999)

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3999".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app).await
}
