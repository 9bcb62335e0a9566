//! What the HTTP and CLI tests share: a router on a throwaway database, and a
//! small client for it.

#![allow(dead_code)]

pub mod process;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use seatkeeper::{AppState, router};
use serde_json::Value;
use store::testing::TestDatabase;
use store::prelude::*;
use store::{Actor, NewProduct, Store};
use tower::ServiceExt;

/// Runs each test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::common::TestApp::new(store::testing::TestDatabase::sqlite()).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(db) = store::testing::TestDatabase::postgres().await else { return };
                    super::$test(super::common::TestApp::new(db).await).await;
                }
            )*
        }
    };
}

/// The operator's token for `GET /metrics` on the main address of a [`TestApp`].
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// An organization made for a test, with its keys.
pub struct Org {
    pub name: String,
    pub admin_key: String,
    pub product_key: String,
}

pub struct TestApp {
    pub store: Store,
    router: Router,
    _db: TestDatabase,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a documented API error and returns its message.
    pub fn assert_error(&self, status: StatusCode, code: &str) -> String {
        let json = self.json();
        assert_eq!((self.status, json["error"]["code"].as_str()), (status, Some(code)), "{json}");
        let message = json["error"]["message"].as_str().expect("a message").to_owned();
        assert!(!message.is_empty());
        message
    }
}

impl TestApp {
    pub async fn new(db: TestDatabase) -> Self {
        TestApp::with_limits(db, seatkeeper::limits::Limits::off()).await
    }

    pub async fn with_limits(db: TestDatabase, limits: std::sync::Arc<seatkeeper::limits::Limits>) -> Self {
        let store = db.open().await;
        let state = AppState::new(store.clone(), "127.0.0.1:0".parse().unwrap())
            .with_limits(limits)
            .with_metrics_token(seatkeeper::observe::MetricsToken::new(METRICS_TOKEN));
        TestApp { store, router: router(state), _db: db }
    }

    pub async fn org(&self, name: &str, products: &[(&str, i64, bool)]) -> Org {
        let created = self.store.create_organization(name).await.unwrap();
        let id = self.store.organization_by_name(name).await.unwrap().id;
        for &(code, seats, auto_assign) in products {
            let product = NewProduct { code: code.into(), name: format!("{code} app"), seats, auto_assign };
            self.store.add_product(id, &product, Actor::Operator).await.unwrap();
        }
        Org { name: name.into(), admin_key: created.admin_key, product_key: created.product_key }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("a body").to_bytes();
        Reply { status, headers, body }
    }

    /// A JSON request with an optional bearer key.
    pub async fn call(&self, method: Method, uri: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    pub async fn check_in(&self, key: &str, product: &str, serial: &str) -> Reply {
        let body = serde_json::json!({"product": product, "serial": serial});
        self.call(Method::POST, "/api/v1/checkin", Some(key), Some(body)).await
    }

    /// Posts a form to a server function as a page of this site does, in
    /// the browser session `session`, asking for JSON.
    pub async fn post_form(&self, path: &str, form: &str, session: &str) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, "127.0.0.1:3000")
            .header(header::ORIGIN, "http://127.0.0.1:3000")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, format!("seatkeeper_session={session}"))
            .body(Body::from(form.to_owned()))
            .unwrap();
        self.send(request).await
    }

    /// A browser session of the organization named `org`.
    pub async fn session(&self, org: &str) -> String {
        let id = self.store.organization_by_name(org).await.unwrap().id;
        self.store.create_session(id, std::time::Duration::from_secs(600)).await.unwrap()
    }

    pub async fn admin(&self, method: Method, uri: &str, key: &str) -> Reply {
        self.call(method, &format!("/api/v1/admin{uri}"), Some(key), None).await
    }
}

/// A path segment percent-encoded the way a client library would.
#[allow(unused_imports)]
pub use app::ui::encode_segment as encode;

/// A small deterministic generator, so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}
