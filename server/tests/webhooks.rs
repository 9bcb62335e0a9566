//! Webhooks end to end: real `seatkeeper` processes deliver to real HTTP
//! receivers this test runs (one that answers 200, one that fails and then
//! recovers, one that hangs past the delivery timeout), through a SIGKILL;
//! and the admin API's webhook routes through the router, on both databases.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use common::process::{Server, json_of};
use common::{Org, TestApp};
use serde_json::{Value, json};
use store::testing::TestDatabase;

/// How a receiver answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    Ok,
    /// 500 to this many requests, then 200.
    FailFirst(usize),
    /// Never within the delivery timeout.
    Hang,
    /// 503 until told otherwise.
    Down,
}

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// An HTTP receiver on a random local port, keeping every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    answer: Arc<Mutex<Answer>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Receiver { url, answer: Arc::new(Mutex::new(answer)), received: Arc::default() };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let answer = {
                        let mut received = state.received.lock().unwrap();
                        received.push(Received { headers, body });
                        *state.answer.lock().unwrap()
                    };
                    match answer {
                        Answer::Ok => StatusCode::OK,
                        Answer::FailFirst(n) if state.received.lock().unwrap().len() <= n => StatusCode::INTERNAL_SERVER_ERROR,
                        Answer::FailFirst(_) => StatusCode::NO_CONTENT,
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            StatusCode::OK
                        }
                        Answer::Down => StatusCode::SERVICE_UNAVAILABLE,
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until it has received `n` requests (at most `within`).
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= n || Instant::now() > deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks a delivery's Standard Webhooks headers and signature; its id and
/// JSON body.
fn verified(received: &Received, secret: &str) -> (String, Value) {
    let header = |name: &str| received.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name}")).to_owned();
    let (id, timestamp, signature) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let sent_at: i64 = timestamp.parse().expect("Unix seconds");
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 120, "a current timestamp");
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").expect("whsec_")).unwrap();
    let expected = seatkeeper::webhooks::signature(&key, &id, &timestamp, &received.body);
    assert_eq!(signature, expected, "signed with the endpoint's secret");
    assert_eq!(header("content-type"), "application/json");
    (id, serde_json::from_str(&received.body).expect("a JSON body"))
}

fn acme(db: &TestDatabase, seats: i64) -> (String, String) {
    let acme = json_of(db, &["org", "create", "acme"]);
    json_of(db, &["product", "add", "--org", "acme", "--code", "editor", "--name", "Editor", "--seats", &seats.to_string(), "--auto-assign"]);
    (acme["admin_key"].as_str().unwrap().to_owned(), acme["product_key"].as_str().unwrap().to_owned())
}

async fn add_webhook(base: &str, admin_key: &str, url: &str, events: &[&str]) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/admin/webhooks"))
        .bearer_auth(admin_key)
        .json(&json!({"url": url, "events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn admin(method: reqwest::Method, base: &str, path: &str, admin_key: &str) -> Value {
    let response = reqwest::Client::new().request(method, format!("{base}/api/v1/admin{path}")).bearer_auth(admin_key).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// A webhook's attempts, newest first, once there are at least `n`.
async fn attempts(base: &str, admin_key: &str, id: i64, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = admin(reqwest::Method::GET, base, &format!("/webhooks/{id}/deliveries"), admin_key).await;
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= n || Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

macro_rules! on_both_databases {
    ($($test:ident),* $(,)?) => {
        mod processes_on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(store::testing::TestDatabase::sqlite()).await;
                }
            )*
        }
        mod processes_on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(db) = store::testing::TestDatabase::postgres().await else { return };
                    super::$test(db).await;
                }
            )*
        }
    };
}

on_both_databases!(
    changes_are_delivered_signed_in_order_and_listed,
    a_failing_endpoint_is_retried_until_it_recovers_and_a_hanging_one_holds_up_only_itself,
    messages_waiting_when_the_server_is_killed_are_delivered_after_it_restarts_none_lost_none_invented,
);

const PRIVATE: [&str; 4] = ["--allow-private-webhooks", "--webhook-timeout", "2", "--checkin-rate=0"];

async fn changes_are_delivered_signed_in_order_and_listed(db: TestDatabase) {
    let (admin_key, product_key) = acme(&db, 5);
    let server = Server::start_with(&db, "info", &PRIVATE);
    let receiver = Receiver::start(Answer::Ok).await;
    let hook = add_webhook(&server.base, &admin_key, &receiver.url, &["seat.assigned", "seat.revoked", "device.deleted"]).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert_eq!(hook["events"], json!(["seat.assigned", "seat.revoked", "device.deleted"]));

    let (status, answer) = common::process::check_in(&server.base, &product_key, "editor", "PC-1").await;
    assert_eq!((status, answer["licensed"].as_bool()), (200, Some(true)));
    admin(reqwest::Method::DELETE, &server.base, "/devices/PC-1/licenses/editor", &admin_key).await;
    admin(reqwest::Method::DELETE, &server.base, "/devices/PC-1", &admin_key).await;
    // Not subscribed: not sent.
    admin(reqwest::Method::POST, &server.base, "/devices/PC-2/ignore", &admin_key).await;

    let received = receiver.wait_for(3, Duration::from_secs(15)).await;
    let told: Vec<(String, Value)> = received.iter().map(|r| verified(r, &secret)).collect();
    let kinds: Vec<(&str, &Value)> = told.iter().map(|(_, body)| (body["type"].as_str().unwrap(), &body["data"])).collect();
    assert_eq!(
        kinds,
        [
            ("seat.assigned", &json!({"product": "editor", "serial": "PC-1", "by": "device"})),
            ("seat.revoked", &json!({"product": "editor", "serial": "PC-1", "by": "admin_api"})),
            ("device.deleted", &json!({"serial": "PC-1", "by": "admin_api"})),
        ]
    );
    for (_, body) in &told {
        assert!(body["timestamp"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{body}");
    }
    let ids: std::collections::HashSet<&str> = told.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 3, "one id per message");

    let listed = attempts(&server.base, &admin_key, hook["id"].as_i64().unwrap(), 3).await;
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["type"], "device.deleted", "newest first");
    for attempt in &listed {
        assert_eq!((attempt["status"].as_i64(), attempt["error"].is_null(), attempt["attempt"].as_i64()), (Some(200), true, Some(1)));
        assert!(attempt["time"].is_string() && attempt["message_id"].is_string());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3, "nothing sent twice, nothing unsubscribed");
    server.stop();
}

async fn a_failing_endpoint_is_retried_until_it_recovers_and_a_hanging_one_holds_up_only_itself(db: TestDatabase) {
    let (admin_key, _) = acme(&db, 5);
    let server = Server::start_with(&db, "info", &PRIVATE);
    let steady = Receiver::start(Answer::Ok).await;
    let flaky = Receiver::start(Answer::FailFirst(2)).await;
    let hanging = Receiver::start(Answer::Hang).await;
    let mut hooks = Vec::new();
    for receiver in [&steady, &flaky, &hanging] {
        hooks.push(add_webhook(&server.base, &admin_key, &receiver.url, &["device.ignored"]).await);
    }
    admin(reqwest::Method::POST, &server.base, "/devices/LAB-1/ignore", &admin_key).await;
    admin(reqwest::Method::POST, &server.base, "/devices/LAB-2/ignore", &admin_key).await;

    // The steady endpoint has both while the hanging one is still waiting.
    let started = Instant::now();
    assert_eq!(steady.wait_for(2, Duration::from_secs(5)).await.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(2), "not held up by the others: {:?}", started.elapsed());

    // The flaky one: 500, 500 (1 s, 2 s apart), then delivered; the same
    // message each time, then the next one.
    let received = flaky.wait_for(4, Duration::from_secs(20)).await;
    let secret = hooks[1]["secret"].as_str().unwrap();
    let told: Vec<(String, Value)> = received.iter().map(|r| verified(r, secret)).collect();
    assert_eq!(told.len(), 4, "{told:?}");
    assert!(told[0].0 == told[1].0 && told[1].0 == told[2].0, "retries carry the message's id");
    assert_ne!(told[2].0, told[3].0);
    let serials: Vec<&str> = told.iter().map(|(_, body)| body["data"]["serial"].as_str().unwrap()).collect();
    assert_eq!(serials, ["LAB-1", "LAB-1", "LAB-1", "LAB-2"], "in order");
    let listed = attempts(&server.base, &admin_key, hooks[1]["id"].as_i64().unwrap(), 4).await;
    let outcomes: Vec<(Option<i64>, Option<&str>, Option<i64>)> =
        listed.iter().map(|a| (a["status"].as_i64(), a["error"].as_str(), a["attempt"].as_i64())).collect();
    assert_eq!(
        outcomes,
        [
            (Some(204), None, Some(1)),
            (Some(204), None, Some(3)),
            (Some(500), Some("the endpoint answered 500"), Some(2)),
            (Some(500), Some("the endpoint answered 500"), Some(1)),
        ]
    );

    // The hanging one: no answer within the 2-second timeout is a failed
    // attempt, tried again; its second message still waits for the first.
    let listed = attempts(&server.base, &admin_key, hooks[2]["id"].as_i64().unwrap(), 1).await;
    assert!(!listed.is_empty());
    assert_eq!((listed[0]["status"].as_i64(), listed[0]["error"].as_str()), (None, Some("no answer within the delivery timeout")));
    let serials: Vec<String> = hanging
        .received()
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["data"]["serial"].as_str().unwrap().to_owned())
        .collect();
    assert!(serials.iter().all(|s| s == "LAB-1"), "{serials:?}");
    server.stop();
}

async fn messages_waiting_when_the_server_is_killed_are_delivered_after_it_restarts_none_lost_none_invented(db: TestDatabase) {
    let (admin_key, _) = acme(&db, 5);
    let server = Server::start_with(&db, "info", &PRIVATE);
    let receiver = Receiver::start(Answer::Down).await;
    let hook = add_webhook(&server.base, &admin_key, &receiver.url, &["device.ignored"]).await;
    for n in 1..=3 {
        admin(reqwest::Method::POST, &server.base, &format!("/devices/GONE-{n}/ignore"), &admin_key).await;
    }
    receiver.wait_for(1, Duration::from_secs(10)).await;
    server.kill();

    receiver.set(Answer::Ok);
    let again = Server::start_with(&db, "info", &PRIVATE);
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let received = receiver.received();
        let ok: Vec<(String, Value)> = received.iter().map(|r| verified(r, hook["secret"].as_str().unwrap())).collect();
        let serials: std::collections::BTreeSet<String> =
            ok.iter().map(|(_, body)| body["data"]["serial"].as_str().unwrap().to_owned()).collect();
        if serials.len() == 3 || Instant::now() > deadline {
            break ok;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Each message at least once, in order, under one id each; none other.
    let mut ids: Vec<(String, String)> =
        delivered.iter().map(|(id, body)| (id.clone(), body["data"]["serial"].as_str().unwrap().to_owned())).collect();
    ids.dedup();
    let serials: Vec<&str> = ids.iter().map(|(_, serial)| serial.as_str()).collect();
    assert_eq!(serials, ["GONE-1", "GONE-2", "GONE-3"], "{delivered:?}");
    let distinct: std::collections::HashSet<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(distinct.len(), 3);
    again.stop();
}

// The admin API's webhook routes, through the router.

on_both_backends!(
    webhooks_are_added_listed_and_deleted_within_their_organization,
    webhooks_to_private_or_plain_http_addresses_and_unknown_events_are_refused,
);

async fn webhooks_are_added_listed_and_deleted_within_their_organization(app: TestApp) {
    let Org { admin_key, .. } = app.org("acme", &[("cad", 5, true)]).await;
    let other = app.org("globex", &[("cad", 5, true)]).await;
    let body = json!({"url": "https://hooks.example.com/seatkeeper", "events": ["seat.assigned", "checkin.refused"]});
    let created = app.call(Method::POST, "/api/v1/admin/webhooks", Some(&admin_key), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    let created = created.json();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["url"], "https://hooks.example.com/seatkeeper");
    assert_eq!(created["events"], json!(["seat.assigned", "checkin.refused"]));
    let secret = created["secret"].as_str().unwrap();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap().len(), 32);

    let listed = app.admin(Method::GET, "/webhooks", &admin_key).await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], id);
    assert!(listed["items"][0].get("secret").is_none(), "the secret is shown only once");
    assert_eq!(listed["next_cursor"], Value::Null);
    let deliveries = app.admin(Method::GET, &format!("/webhooks/{id}/deliveries"), &admin_key).await.json();
    assert_eq!(deliveries, json!({"items": [], "next_cursor": null}));

    // Another organization sees none of it.
    assert_eq!(app.admin(Method::GET, "/webhooks", &other.admin_key).await.json()["items"], json!([]));
    app.admin(Method::DELETE, &format!("/webhooks/{id}"), &other.admin_key).await.assert_error(StatusCode::NOT_FOUND, "unknown_webhook");
    app.admin(Method::GET, &format!("/webhooks/{id}/deliveries"), &other.admin_key)
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown_webhook");
    app.admin(Method::DELETE, "/webhooks/not-a-number", &admin_key).await.assert_error(StatusCode::NOT_FOUND, "unknown_webhook");
    app.admin(Method::GET, &format!("/webhooks/{id}/deliveries?limit=0"), &admin_key)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(app.call(Method::GET, "/api/v1/admin/webhooks", None, None).await.status, StatusCode::UNAUTHORIZED);

    let deleted = app.admin(Method::DELETE, &format!("/webhooks/{id}"), &admin_key).await;
    assert_eq!((deleted.status, deleted.json()), (StatusCode::OK, json!({"id": id, "deleted": true})));
    app.admin(Method::DELETE, &format!("/webhooks/{id}"), &admin_key).await.assert_error(StatusCode::NOT_FOUND, "unknown_webhook");
    let log = app.admin(Method::GET, "/activity?kind=webhook_added", &admin_key).await.json();
    assert_eq!(log["items"][0]["detail"], "https://hooks.example.com/seatkeeper");
}

async fn webhooks_to_private_or_plain_http_addresses_and_unknown_events_are_refused(app: TestApp) {
    let Org { admin_key, .. } = app.org("acme", &[("cad", 5, true)]).await;
    for (url, events, words) in [
        ("http://hooks.example.com/", json!(["seat.assigned"]), "https://"),
        ("https://127.0.0.1:8443/", json!(["seat.assigned"]), "public address"),
        ("https://localhost/", json!(["seat.assigned"]), "public address"),
        ("https://10.0.0.7/", json!(["seat.assigned"]), "public address"),
        ("https://169.254.169.254/latest/meta-data/", json!(["seat.assigned"]), "public address"),
        ("https://[::1]/", json!(["seat.assigned"]), "public address"),
        ("https://[fd12::1]/", json!(["seat.assigned"]), "public address"),
        ("https://hooks.example.com/", json!([]), "at least one"),
        ("https://hooks.example.com/", json!(["seat.stolen"]), "unknown event"),
        ("https://hooks.example.com/", json!("seat.assigned"), ""),
        ("\u{0}", json!(["seat.assigned"]), "control characters"),
        ("https://hooks.example.com/\u{0}", json!(["seat.assigned"]), "control characters"),
    ] {
        let reply = app.call(Method::POST, "/api/v1/admin/webhooks", Some(&admin_key), Some(json!({"url": url, "events": events}))).await;
        let message = reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(message.contains(words), "{url} {events}: {message}");
    }
    let reply = app.call(Method::POST, "/api/v1/admin/webhooks", Some(&admin_key), Some(json!({"url": "https://hooks.example.com/", "events": ["seat.assigned"], "secret": "mine"}))).await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let listed = app.admin(Method::GET, "/webhooks", &admin_key).await.json();
    assert_eq!(listed["items"], json!([]), "nothing added: {listed}");
}
