//! Operating the server: Prometheus metrics through the real router on both
//! backends, request ids on every answer, and JSON logs from the real binary
//! that name the request on every line.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use common::process::{Server, check_in};
use serde_json::{Value, json};
use store::testing::TestDatabase;
use tower::ServiceExt;

on_both_backends!(metrics_count_check_ins_requests_seats_and_connections, every_answer_carries_a_request_id,);

fn metric<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

async fn metrics_count_check_ins_requests_seats_and_connections(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true)]).await;
    assert_eq!(app.check_in(&acme.product_key, "editor", "SN-1").await.json()["licensed"], true);
    assert_eq!(app.check_in(&acme.product_key, "editor", "SN-1").await.json()["licensed"], true);
    assert_eq!(app.check_in(&acme.product_key, "editor", "SN-2").await.json()["reason"], "no_seats_available");
    app.check_in("sk_prod_nope", "editor", "SN-3").await;

    let reply = app.call(Method::GET, "/metrics", Some(common::METRICS_TOKEN), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert_eq!(metric(&text, r#"seatkeeper_checkins_total{outcome="licensed"}"#), Some("2"), "{text}");
    assert_eq!(metric(&text, r#"seatkeeper_checkins_total{outcome="no_seats_available"}"#), Some("1"));
    assert_eq!(metric(&text, r#"seatkeeper_checkins_total{outcome="revoked_by_admin"}"#), Some("0"));
    let route = r#"method="POST",route="/api/v1/checkin""#;
    assert_eq!(metric(&text, &format!(r#"seatkeeper_request_duration_seconds_count{{{route},status="2xx"}}"#)), Some("3"));
    assert_eq!(metric(&text, &format!(r#"seatkeeper_request_duration_seconds_count{{{route},status="4xx"}}"#)), Some("1"));
    assert_eq!(metric(&text, &format!(r#"seatkeeper_request_duration_seconds_bucket{{{route},status="2xx",le="+Inf"}}"#)), Some("3"));
    assert_eq!(metric(&text, r#"seatkeeper_product_seats{organization="acme",product="editor"}"#), Some("1"));
    assert_eq!(metric(&text, r#"seatkeeper_product_assigned{organization="acme",product="editor"}"#), Some("1"));
    assert!(text.lines().any(|line| line.starts_with("seatkeeper_db_connections{pool=")), "{text}");
    // Made-up methods share one label, so clients cannot grow the series.
    for method in ["BREW", "WHEN", "PROPFIND"] {
        let request = Request::builder().method(method).uri("/healthz").body(Body::empty()).unwrap();
        app.send(request).await;
    }
    let text = String::from_utf8(app.call(Method::GET, "/metrics", Some(common::METRICS_TOKEN), None).await.body.to_vec()).unwrap();
    assert!(!text.contains("BREW") && !text.contains("PROPFIND"), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
    // Every sample line is `name{labels} value` with a number.
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let value = line.rsplit_once(' ').map(|(_, value)| value).unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    // The metrics name every organization: the main address shows them
    // only to the operator's token, and without one configured not at all.
    app.call(Method::GET, "/metrics", None, None).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    app.call(Method::GET, "/metrics", Some("test-metrics-token-0123456788"), None).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    app.call(Method::GET, "/metrics", Some(&acme.admin_key), None).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    let state = seatkeeper::AppState::new(app.store.clone(), "127.0.0.1:0".parse().unwrap());
    let main = seatkeeper::router(state.clone());
    let reply = main.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    // `--metrics-addr` serves them without a token, on an address of their own.
    let alone = seatkeeper::metrics_router(state);
    let reply = alone.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
}

async fn every_answer_carries_a_request_id(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true)]).await;
    let mut ids = Vec::new();
    for uri in ["/healthz", "/api/v1/nope", "/", "/api/v1/public-keys"] {
        let reply = app.call(Method::GET, uri, None, None).await;
        let id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{uri}: {id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each request its own id");

    let sent = Request::post("/api/v1/checkin")
        .header("authorization", format!("Bearer {}", acme.product_key))
        .header("content-type", "application/json")
        .header("x-request-id", "client-7f3a:retry.2")
        .body(Body::from(json!({"product": "editor", "serial": "SN-1"}).to_string()))
        .unwrap();
    assert_eq!(app.send(sent).await.headers["x-request-id"], "client-7f3a:retry.2", "a sane id of the client is kept");
    let odd = Request::get("/healthz").header("x-request-id", "has spaces; and more").body(Body::empty()).unwrap();
    assert_ne!(app.send(odd).await.headers["x-request-id"], "has spaces; and more", "an odd one is replaced");
}

#[tokio::test]
async fn json_logs_name_the_request_on_every_line() {
    let db = TestDatabase::sqlite();
    let server = Server::start_with(&db, "debug,sqlx=warn,hyper=warn", &["--log-format", "json"]);
    let client = reqwest::Client::new();
    let reply = client.get(format!("{}/api/v1/public-keys", server.base)).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(reply.headers()["x-request-id"], "trace-me-42");
    let (status, _) = check_in(&server.base, "sk_prod_nope", "demo", "SN-1").await;
    assert_eq!(status, 401);
    let log = server.log.clone();
    server.stop();

    // The log is read by a thread of the harness: wait for the last line.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !log.lock().unwrap().contains("\"stopped\"") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = log.lock().unwrap().clone();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() > 3, "{log}");
    let traced: Vec<&Value> = lines.iter().filter(|line| line["span"]["request_id"] == "trace-me-42").collect();
    assert!(!traced.is_empty(), "the request's lines carry its id: {log}");
    assert!(traced.iter().any(|line| line["fields"]["message"] == "answered" && line["fields"]["status"] == 200), "{log}");
    assert!(traced.iter().all(|line| line["span"]["path"] == "/api/v1/public-keys"));
    let answered = lines.iter().filter(|line| line["fields"]["message"] == "answered").count();
    assert_eq!(answered, 2, "one line per request at debug: {log}");
    assert!(!log.contains("sk_prod_nope"), "keys never reach the log");
}
