//! What goes over the wire compressed, through the real router: the screens
//! as gzip to browsers that accept it, the bundle and the CSS as the copies
//! `scripts/build.sh` compressed (brotli or gzip, as accepted), and never the
//! JSON APIs.

mod common;

use std::io::Read;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::TestApp;
use http_body_util::BodyExt;
use seatkeeper::{AppState, router};
use store::testing::TestDatabase;
use tower::ServiceExt;

async fn get(app: &axum::Router, path: &str, accept: Option<&str>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::get(path);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT_ENCODING, accept);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).expect("gzip");
    text
}

/// A page with its scripts' nonce (in `nonce="…"`, and where Leptos repeats
/// it) replaced by a placeholder.
fn without_nonces(page: &str) -> String {
    let value = page.split("nonce=\"").nth(1).and_then(|rest| rest.split('"').next()).filter(|value| !value.is_empty());
    match value {
        Some(value) => page.replace(value, "NONCE"),
        None => page.to_owned(),
    }
}

on_both_backends!(pages_are_gzipped_for_browsers_that_accept_it, the_json_apis_are_never_compressed);

async fn pages_are_gzipped_for_browsers_that_accept_it(app: TestApp) {
    let org = app.org("Acme", &[("editor", 5, true)]).await;
    for i in 0..40 {
        app.check_in(&org.product_key, "editor", &format!("LAPTOP-{i:03}")).await;
    }
    let session = app.session("Acme").await;
    let page = |accept: Option<&'static str>| {
        let mut request = Request::get("/devices").header(header::COOKIE, format!("seatkeeper_session={session}"));
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT_ENCODING, accept);
        }
        app.send(request.body(Body::empty()).unwrap())
    };
    let plain = page(None).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.headers.get(header::CONTENT_ENCODING), None, "no Accept-Encoding, no compression");
    let plain = String::from_utf8(plain.body.to_vec()).unwrap();
    assert!(plain.contains("LAPTOP-039"), "the signed-in Devices page");

    let gzipped = page(Some("gzip, deflate, br")).await;
    assert_eq!(gzipped.status, StatusCode::OK);
    assert_eq!(gzipped.headers.get(header::CONTENT_ENCODING).unwrap(), "gzip");
    assert!(gzipped.body.len() * 4 < plain.len(), "{} bytes compressed of {}", gzipped.body.len(), plain.len());
    let unpacked = gunzip(&gzipped.body);
    // The same page, whole: only the scripts' nonce differs from one answer to the next.
    assert_eq!(without_nonces(&unpacked), without_nonces(&plain));
}

async fn the_json_apis_are_never_compressed(app: TestApp) {
    let org = app.org("Acme", &[("editor", 5, true)]).await;
    for i in 0..30 {
        app.check_in(&org.product_key, "editor", &format!("LAPTOP-{i:03}")).await;
    }
    let request = Request::get("/api/v1/admin/devices?limit=100")
        .header(header::AUTHORIZATION, format!("Bearer {}", org.admin_key))
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers.get(header::CONTENT_ENCODING), None);
    assert_eq!(reply.json()["items"].as_array().unwrap().len(), 30);
}

/// The site folder as the build leaves it: each file beside its `.gz` and `.br`.
#[tokio::test]
async fn the_bundle_is_sent_as_the_copy_the_browser_accepts() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    std::fs::write(pkg.join("seatkeeper.css"), "body { margin: 0 }").unwrap();
    std::fs::write(pkg.join("seatkeeper.css.gz"), "gzip copy").unwrap();
    std::fs::write(pkg.join("seatkeeper.css.br"), "brotli copy").unwrap();
    let db = TestDatabase::sqlite();
    let state = AppState::new(db.open().await, "127.0.0.1:0".parse().unwrap()).with_site_root(site.path().to_str().unwrap());
    let app = router(state);

    let (status, headers, body) = get(&app, "/pkg/seatkeeper.css", Some("gzip, deflate, br")).await;
    assert_eq!((status, headers.get(header::CONTENT_ENCODING).unwrap().to_str().unwrap()), (StatusCode::OK, "br"));
    assert_eq!(body, b"brotli copy");
    assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "text/css");
    assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-cache");

    let (_, headers, body) = get(&app, "/pkg/seatkeeper.css", Some("gzip")).await;
    assert_eq!((headers.get(header::CONTENT_ENCODING).unwrap().to_str().unwrap(), body.as_slice()), ("gzip", &b"gzip copy"[..]));

    let (_, headers, body) = get(&app, "/pkg/seatkeeper.css", None).await;
    assert_eq!((headers.get(header::CONTENT_ENCODING), body.as_slice()), (None, &b"body { margin: 0 }"[..]));

    // Anything but a file of the folder is 404, whatever the file system
    // would make of the name.
    let long = format!("/pkg/{}", "a".repeat(5000));
    for path in ["/pkg/nothing.js", "/pkg/seatkeeper.css/x", "/pkg/", "/pkg/%2e%2e/Cargo.toml", "/pkg/.hidden", "/pkg/a%00b", long.as_str()] {
        let (status, _, _) = get(&app, path, Some("gzip")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{}", &path[..path.len().min(40)]);
    }
}
