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
async fn an_address_that_keeps_failing_to_authenticate_is_refused_further_attempts_with_unknown_keys() {
    let limits = Limits::new(Rate::OFF, Rate { per_second: 5.0 / 60.0, burst: 5.0 }, Limits::DEFAULT_REQUEST_TIMEOUT);
    let app = TestApp::with_limits(TestDatabase::sqlite(), limits).await;
    let acme = app.org("acme", &[("editor", 10, true)]).await;
    let admin = |key: &str| Request::get("/api/v1/admin/products").header(header::AUTHORIZATION, format!("Bearer {key}")).body(Body::empty()).unwrap();

    for _ in 0..5 {
        let reply = app.send(from("10.0.0.7:5000", admin("sk_admin_guess"))).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let refused = app.send(from("10.0.0.7:5001", admin("sk_admin_guess_again"))).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(refused.headers[header::RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let wrong_check_in = app.send(from("10.0.0.7:5002", check_in_request("sk_prod_guess", "SN-1"))).await;
    wrong_check_in.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let no_key = Request::post("/api/v1/checkin").header(header::CONTENT_TYPE, "application/json").body(Body::from("{}")).unwrap();
    assert_eq!(app.send(from("10.0.0.7:5003", no_key)).await.status, StatusCode::TOO_MANY_REQUESTS, "no key is no better");

    // The innocent behind the same address are not locked out: valid keys,
    // sessions and the health check go through.
    assert_eq!(app.send(from("10.0.0.7:5004", admin(&acme.admin_key))).await.status, StatusCode::OK, "a valid admin key");
    let licensed = app.send(from("10.0.0.7:5005", check_in_request(&acme.product_key, "SN-1"))).await;
    assert_eq!(licensed.json()["licensed"], true, "a valid product key");
    let health = Request::get("/healthz").body(Body::empty()).unwrap();
    assert_eq!(app.send(from("10.0.0.7:5006", health)).await.status, StatusCode::OK, "/healthz is never throttled");
    assert_eq!(app.send(from("10.0.0.7:5007", admin("sk_admin_guess"))).await.status, StatusCode::TOO_MANY_REQUESTS, "still refused");

    let other = app.send(from("10.0.0.8:5000", admin("sk_admin_typo"))).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "other addresses have budgets of their own");
    for _ in 0..10 {
        assert_eq!(app.send(from("10.0.0.9:5000", admin(&acme.admin_key))).await.status, StatusCode::OK, "successes do not count");
    }
}

#[tokio::test]
async fn failed_sign_ins_through_the_plain_form_count_too() {
    use leptos::server_fn::ServerFn;
    let limits = Limits::new(Rate::OFF, Rate { per_second: 3.0 / 60.0, burst: 3.0 }, Limits::DEFAULT_REQUEST_TIMEOUT);
    let app = TestApp::with_limits(TestDatabase::sqlite(), limits).await;
    let acme = app.org("acme", &[("editor", 10, true)]).await;
    // As a browser without JavaScript posts it: answered with a redirect
    // back to the dialog, not with a 401.
    let sign_in = |key: &str| {
        Request::post(app::auth::SignIn::PATH)
            .header(header::HOST, "seats.example")
            .header(header::ORIGIN, "https://seats.example")
            .header(header::ACCEPT, "text/html")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("key={key}&next=%2F")))
            .unwrap()
    };
    for _ in 0..3 {
        let reply = app.send(from("10.0.0.7:5000", sign_in("sk_admin_guess"))).await;
        assert!(reply.status.is_redirection(), "{:?}", reply.status);
        assert!(reply.headers[header::LOCATION].to_str().unwrap().contains("error=invalid_key"));
    }
    let refused = app.send(from("10.0.0.7:5000", sign_in("sk_admin_guess"))).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "the fourth failed sign-in from this address");
    let signed_in = app.send(from("10.0.0.7:5000", sign_in(&acme.admin_key))).await;
    assert!(signed_in.status.is_redirection() && signed_in.headers.contains_key(header::SET_COOKIE), "the right key still signs in");
}

#[tokio::test]
async fn ipv6_addresses_share_a_budget_per_64() {
    let limits = Limits::new(Rate::OFF, Rate { per_second: 3.0 / 60.0, burst: 3.0 }, Limits::DEFAULT_REQUEST_TIMEOUT);
    let app = TestApp::with_limits(TestDatabase::sqlite(), limits).await;
    let guess = || check_in_request("sk_prod_guess", "SN-1");
    for host in 1..=3 {
        assert_eq!(app.send(from(&format!("[2001:db8:5:6::{host}]:4000"), guess())).await.status, StatusCode::UNAUTHORIZED);
    }
    let same_64 = app.send(from("[2001:db8:5:6:ffff::9]:4000", guess())).await;
    assert_eq!(same_64.status, StatusCode::TOO_MANY_REQUESTS, "another address of the same /64");
    let next_64 = app.send(from("[2001:db8:5:7::1]:4000", guess())).await;
    assert_eq!(next_64.status, StatusCode::UNAUTHORIZED, "the next /64 is another client");
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    use seatkeeper::client_address::TrustedProxies;
    let limits = |proxies: TrustedProxies| {
        let rate = Rate { per_second: 2.0 / 60.0, burst: 2.0 };
        let limits = Limits::new(Rate::OFF, rate, Limits::DEFAULT_REQUEST_TIMEOUT);
        let mut limits = std::sync::Arc::into_inner(limits).unwrap();
        limits.trusted_proxies = proxies;
        std::sync::Arc::new(limits)
    };
    let guess = |forwarded_for: &str| {
        let mut request = check_in_request("sk_prod_guess", "SN-1");
        request.headers_mut().insert("x-forwarded-for", forwarded_for.parse().unwrap());
        request
    };

    // Behind a trusted proxy each client has its own budget.
    let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let app = TestApp::with_limits(TestDatabase::sqlite(), limits(trusted)).await;
    for client in ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"] {
        assert_eq!(app.send(from("10.0.0.2:4000", guess(client))).await.status, StatusCode::UNAUTHORIZED, "{client}");
    }
    assert_eq!(app.send(from("10.0.0.2:4000", guess("203.0.113.1"))).await.status, StatusCode::TOO_MANY_REQUESTS);
    // A client cannot dodge its budget by writing the header itself.
    assert_eq!(app.send(from("10.0.0.2:4000", guess("198.51.100.7, 203.0.113.1"))).await.status, StatusCode::TOO_MANY_REQUESTS);

    // Without the opt-in the header is ignored: the peer is the client.
    let app = TestApp::with_limits(TestDatabase::sqlite(), limits(TrustedProxies::default())).await;
    for client in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(app.send(from("10.0.0.2:4000", guess(client))).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.send(from("10.0.0.2:4000", guess("203.0.113.3"))).await.status, StatusCode::TOO_MANY_REQUESTS);
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
