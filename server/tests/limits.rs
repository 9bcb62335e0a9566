//! Rate limits, refusals of addresses that keep failing to authenticate, and
//! the security headers, through the real router.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::TestApp;
use seatkeeper::limits::{Limits, Rate};
use serde_json::json;
use store::testing::TestDatabase;

fn from(address: &str, mut request: Request<Body>) -> Request<Body> {
    let address: SocketAddr = address.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(address));
    request
}

fn check_in_request(key: &str, serial: &str) -> Request<Body> {
    Request::post("/api/v1/checkin")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"product": "editor", "serial": serial}).to_string()))
        .unwrap()
}

#[tokio::test]
async fn check_ins_beyond_an_organizations_rate_answer_429_with_retry_after() {
    let limits = Limits::new(Rate { per_second: 0.5, burst: 3.0 }, Rate::OFF, Limits::DEFAULT_REQUEST_TIMEOUT);
    let app = TestApp::with_limits(TestDatabase::sqlite(), limits).await;
    let acme = app.org("acme", &[("editor", 10, true)]).await;
    let globex = app.org("globex", &[("editor", 10, true)]).await;
    for i in 0..3 {
        assert_eq!(app.send(check_in_request(&acme.product_key, &format!("SN-{i}"))).await.status, StatusCode::OK);
    }
    let refused = app.send(check_in_request(&acme.product_key, "SN-LATE")).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = refused.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    app.admin(Method::GET, "/devices/SN-LATE", &acme.admin_key).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    assert_eq!(app.send(check_in_request(&globex.product_key, "SN-1")).await.status, StatusCode::OK, "another organization has its own rate");
}

/// A device that holds its seat is answered from the store's first look,
/// which writes nothing: refused by the rate limit, its `last seen` stays.
async fn a_held_device_refused_by_the_rate_limit_is_not_seen(db: TestDatabase) {
    let limits = Limits::new(Rate { per_second: 0.01, burst: 2.0 }, Rate::OFF, Limits::DEFAULT_REQUEST_TIMEOUT);
    let app = TestApp::with_limits(db, limits).await;
    let acme = app.org("acme", &[("editor", 10, true)]).await;
    assert_eq!(app.send(check_in_request(&acme.product_key, "SN-1")).await.json()["licensed"], true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let held = app.send(check_in_request(&acme.product_key, "SN-1")).await.json();
    assert_eq!(held["licensed"], true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.send(check_in_request(&acme.product_key, "SN-1")).await.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let device = app.admin(Method::GET, "/devices/SN-1", &acme.admin_key).await.json();
    assert_eq!(device["last_seen"], held["last_seen"], "the refused check-in left no trace");
}

#[tokio::test]
async fn a_held_device_refused_by_the_rate_limit_is_not_seen_on_sqlite() {
    a_held_device_refused_by_the_rate_limit_is_not_seen(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn a_held_device_refused_by_the_rate_limit_is_not_seen_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else { return };
    a_held_device_refused_by_the_rate_limit_is_not_seen(db).await;
}

#[tokio::test]
async fn an_address_that_keeps_failing_to_authenticate_is_refused_for_a_while() {
    let limits = Limits::new(Rate::OFF, Rate { per_second: 5.0 / 60.0, burst: 5.0 }, Limits::DEFAULT_REQUEST_TIMEOUT);
    let app = TestApp::with_limits(TestDatabase::sqlite(), limits).await;
    let acme = app.org("acme", &[("editor", 10, true)]).await;
    let admin = |key: &str| Request::get("/api/v1/admin/products").header(header::AUTHORIZATION, format!("Bearer {key}")).body(Body::empty()).unwrap();

    for _ in 0..5 {
        let reply = app.send(from("10.0.0.7:5000", admin("sk_admin_guess"))).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let refused = app.send(from("10.0.0.7:5001", admin(&acme.admin_key))).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(refused.headers[header::RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let wrong_check_in = app.send(from("10.0.0.7:5002", check_in_request("sk_prod_guess", "SN-1"))).await;
    assert_eq!(wrong_check_in.status, StatusCode::TOO_MANY_REQUESTS, "every route, for that address");

    let other = app.send(from("10.0.0.8:5000", admin(&acme.admin_key))).await;
    assert_eq!(other.status, StatusCode::OK, "other addresses are not affected");
    for _ in 0..10 {
        assert_eq!(app.send(from("10.0.0.9:5000", admin(&acme.admin_key))).await.status, StatusCode::OK, "successes do not count");
    }
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_with_their_script_nonce() {
    let app = TestApp::new(TestDatabase::sqlite()).await;
    let page = app.call(Method::GET, "/", None, None).await;
    let policy = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    let html = String::from_utf8_lossy(&page.body);
    let nonce = html.split("nonce=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("the hydration script has a nonce");
    assert!(policy.contains(&format!("'nonce-{nonce}'")), "{policy}");
    for directive in ["default-src 'self'", "frame-ancestors 'none'", "'wasm-unsafe-eval'"] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    let again = app.call(Method::GET, "/", None, None).await;
    assert_ne!(again.headers[header::CONTENT_SECURITY_POLICY], page.headers[header::CONTENT_SECURITY_POLICY], "a new nonce per response");

    for uri in ["/", "/api/v1/admin/products", "/healthz"] {
        let reply = app.call(Method::GET, uri, None, None).await;
        assert_eq!(reply.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY", "{uri}");
        assert_eq!(reply.headers[header::REFERRER_POLICY], "same-origin", "{uri}");
    }
}

#[tokio::test]
async fn a_request_whose_body_never_finishes_times_out_with_408() {
    let limits = Limits::new(Rate::OFF, Rate::OFF, std::time::Duration::from_millis(300));
    let app = TestApp::with_limits(TestDatabase::sqlite(), limits).await;
    let acme = app.org("acme", &[("editor", 10, true)]).await;
    let first = futures::stream::iter([Ok::<_, std::io::Error>("{\"product\": \"editor\", ")]);
    let stalled = Body::from_stream(futures::StreamExt::chain(first, futures::stream::pending()));
    let request = Request::post("/api/v1/checkin")
        .header(header::AUTHORIZATION, format!("Bearer {}", acme.product_key))
        .header(header::CONTENT_TYPE, "application/json")
        .body(stalled)
        .unwrap();
    let started = std::time::Instant::now();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
