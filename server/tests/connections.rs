//! The accept loop's limits, over real sockets: oversized request heads, a
//! client that never finishes its headers, and the cap on open connections.

use std::net::SocketAddr;
use std::time::Duration;

use seatkeeper::limits::{Connections, Limits, Rate};
use seatkeeper::{AppState, serve};
use store::testing::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDatabase,
}

async fn start(connections: Connections) -> Server {
    let db = TestDatabase::sqlite();
    let store = db.open().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits::with_connections(Rate::OFF, Rate::OFF, Limits::DEFAULT_REQUEST_TIMEOUT, connections);
    let state = AppState::new(store, addr).with_limits(limits);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop: Some(stop), task, _db: db }
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("the server stops within 5 s")
            .unwrap()
            .unwrap();
    }
}

/// Sends `head` on a fresh connection and reads the status line of the answer.
async fn status_of(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    read_status(&mut stream).await
}

async fn read_status(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_request_head_larger_than_the_limit_is_refused_with_431() {
    let server = start(Connections { max_header_bytes: 8192, ..Connections::default() }).await;
    let fits = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\nconnection: close\r\n\r\n", "a".repeat(4000));
    assert_eq!(status_of(server.addr, &fits).await, "HTTP/1.1 200 OK");
    let too_big = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(status_of(server.addr, &too_big).await, "HTTP/1.1 431 Request Header Fields Too Large");
    let many: String = (0..80).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let too_many = format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    assert_eq!(status_of(server.addr, &too_many).await, "HTTP/1.1 431 Request Header Fields Too Large");
    // The server is still there for everyone else.
    assert_eq!(status_of(server.addr, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let server = start(Connections { header_read_timeout: Duration::from_millis(300), ..Connections::default() }).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buffer))
        .await
        .expect("the server hangs up within 5 s, not the test");
    // hyper answers 408 or simply closes; either way the connection ends.
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 408"), "{:?}", &buffer[..n]),
    }
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let server = start(Connections { max: 2, ..Connections::default() }).await;
    let keep_alive = "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(keep_alive.as_bytes()).await.unwrap();
    assert_eq!(read_status(&mut first).await, "HTTP/1.1 200 OK");
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(keep_alive.as_bytes()).await.unwrap();
    assert_eq!(read_status(&mut second).await, "HTTP/1.1 200 OK");

    // The kernel completes the third handshake, but the server does not take
    // the connection while two are open.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(keep_alive.as_bytes()).await.unwrap();
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(400), third.read(&mut buffer)).await;
    assert!(early.is_err(), "the third connection was answered while two were open");

    drop(first);
    assert_eq!(read_status(&mut third).await, "HTTP/1.1 200 OK", "answered once a slot is free");
    drop(second);
    drop(third);
    server.stop().await;
}
