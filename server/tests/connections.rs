//! The accept loop's limits, over real sockets: oversized request heads, a
//! client that never finishes its headers, the caps on open connections (in
//! all and per client address), and the deadlines that close connections
//! holding a slot without a request under way.

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
    store: store::Store,
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
    let state = AppState::new(store.clone(), addr).with_limits(limits);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server { addr, store, stop: Some(stop), task, _db: db }
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

/// A connection to the server from `source`, one of the loopback range's
/// many addresses, so that a test can be several clients.
async fn connect_from(source: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(server).await
}

/// Whether the server closes `stream` within `limit`: reads (and drops)
/// whatever it sends until the end of the stream.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// A check-in over a fresh connection from `source`, with its status line.
async fn check_in_from(source: &str, server: SocketAddr, product_key: &str) -> String {
    let mut stream = connect_from(source, server).await.unwrap();
    let body = r#"{"product": "editor", "serial": "SN-1"}"#;
    let request = format!(
        "POST /api/v1/checkin HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {product_key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    read_status(&mut stream).await
}

async fn product_key(server: &Server) -> String {
    use store::prelude::*;
    use store::{Actor, NewProduct};
    let created = server.store.create_organization("acme").await.unwrap();
    let org = server.store.organization_by_name("acme").await.unwrap().id;
    let editor = NewProduct { code: "editor".into(), name: "Editor".into(), seats: 10, auto_assign: true };
    server.store.add_product(org, &editor, Actor::Operator).await.unwrap();
    created.product_key
}

/// 5,000 connections that never send a byte, from one address, and a
/// slowloris writer (one header byte a second) from another: neither keeps a
/// third client from being answered at once, and every one of them is closed
/// by the server's deadlines, with the defaults an operator gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_do_not_stall_the_others_and_are_closed() {
    let server = start(Connections::default()).await;
    let key = product_key(&server).await;
    let opened = std::time::Instant::now();

    let mut silent = Vec::new();
    for _ in 0..50 {
        let batch = (0..100).map(|_| connect_from("127.0.0.2", server.addr));
        for stream in futures::future::join_all(batch).await {
            silent.push(stream.expect("the kernel takes the connection"));
        }
    }
    let mut slowloris = connect_from("127.0.0.3", server.addr).await.unwrap();
    slowloris.write_all(b"POST /api/v1/checkin HTTP/1.1\r\nhost: x\r\nx-slow: ").await.unwrap();
    let (slow_reader, mut slow_writer) = slowloris.into_split();
    let dripping = tokio::spawn(async move {
        let mut sent = 0;
        while slow_writer.write_all(b"a").await.is_ok() && sent < 60 {
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        sent
    });
    let mut h2_silence = connect_from("127.0.0.3", server.addr).await.unwrap();
    let h2_opened = std::time::Instant::now();
    h2_silence.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();

    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(1), check_in_from("127.0.0.4", server.addr, &key))
        .await
        .expect("a check-in from another address is answered within 1 s");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(started.elapsed() < Duration::from_secs(1));

    let deadline = Duration::from_secs(30).saturating_sub(opened.elapsed());
    let closes = silent.iter_mut().map(|stream| closed_within(stream, deadline));
    let closed = futures::future::join_all(closes).await;
    let open = closed.iter().filter(|closed| !**closed).count();
    assert_eq!(open, 0, "silent connections still open 30 s after they were made");
    let h2_deadline = Duration::from_secs(30).saturating_sub(h2_opened.elapsed());
    assert!(closed_within(&mut h2_silence, h2_deadline).await, "the HTTP/2 preface alone buys no more time");
    let sent = tokio::time::timeout(Duration::from_secs(5), dripping).await.expect("the slowloris writer was cut off").unwrap();
    assert!(sent < 30, "the slowloris writer sent {sent} bytes before it was cut off");
    drop(slow_reader);
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let server = start(Connections { max_per_address: 3, ..Connections::default() }).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = connect_from("127.0.0.2", server.addr).await.unwrap();
    assert!(closed_within(&mut fourth, Duration::from_secs(2)).await, "the fourth from the same address is closed at once");
    let mut other = connect_from("127.0.0.3", server.addr).await.unwrap();
    other.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_status(&mut other).await, "HTTP/1.1 200 OK", "another address is served");

    // A closed connection gives its place back.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from("127.0.0.2", server.addr).await.unwrap();
    again.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(read_status(&mut again).await, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_with_no_request_under_way_is_closed_after_the_idle_timeout() {
    let connections = Connections { idle_timeout: Duration::from_millis(500), ..Connections::default() };
    let server = start(connections).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..3 {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        assert_eq!(read_status(&mut stream).await, "HTTP/1.1 200 OK", "kept alive between requests");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idle = std::time::Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    assert!(idle.elapsed() >= Duration::from_millis(250), "not before the idle timeout: {:?}", idle.elapsed());
    server.stop().await;
}
