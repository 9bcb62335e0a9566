//! The fair waiting line through the real router: `"queue": true` on a
//! check-in, `queue_position` on its refusal, the line in the admin API, and
//! the Product screen's list with its remove.

mod common;

use app::licenses::ListProducts;
use app::product::{LoadProduct, RemoveFromQueue};
use axum::http::{Method, StatusCode};
use common::TestApp;
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};

on_both_backends!(
    a_check_in_that_asks_to_wait_is_told_its_place_and_served_in_turn,
    the_line_is_listed_and_trimmed_through_the_admin_api,
    the_product_screen_lists_the_line_and_removes_from_it,
    refusals_are_counted_in_the_product_usage_and_on_the_screens,
);

async fn check_in(app: &TestApp, key: &str, serial: &str, queue: Option<Value>) -> Value {
    let mut body = json!({"product": "editor", "serial": serial});
    if let Some(queue) = queue {
        body["queue"] = queue;
    }
    let reply = app.call(Method::POST, "/api/v1/checkin", Some(key), Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

async fn a_check_in_that_asks_to_wait_is_told_its_place_and_served_in_turn(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true)]).await;
    let key = acme.product_key.as_str();
    assert_eq!(check_in(&app, key, "A", None).await["licensed"], true);
    let b = check_in(&app, key, "B", Some(json!(true))).await;
    assert_eq!((b["licensed"].clone(), b["reason"].clone(), b["queue_position"].clone()), (json!(false), json!("no_seats_available"), json!(1)));
    assert_eq!(check_in(&app, key, "C", Some(json!(true))).await["queue_position"], 2);
    let d = check_in(&app, key, "D", Some(json!(false))).await;
    assert!(d.get("queue_position").is_none(), "not waiting: {d}");
    for bad in [json!("yes"), json!(1), json!(null)] {
        let body = json!({"product": "editor", "serial": "E", "queue": bad});
        let reply = app.call(Method::POST, "/api/v1/checkin", Some(key), Some(body)).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }

    let freed = app.call(Method::DELETE, "/api/v1/admin/devices/A/licenses/editor", Some(&acme.admin_key), None).await;
    assert_eq!(freed.status, StatusCode::OK);
    assert_eq!(check_in(&app, key, "D", None).await["reason"], "no_seats_available", "D did not wait");
    assert_eq!(check_in(&app, key, "C", Some(json!(true))).await["queue_position"], 2, "C is behind B");
    let b = check_in(&app, key, "B", Some(json!(true))).await;
    assert_eq!(b["licensed"], true, "{b}");
    assert!(b.get("queue_position").is_none());
    assert_eq!(check_in(&app, key, "C", Some(json!(true))).await["queue_position"], 1);
}

async fn the_line_is_listed_and_trimmed_through_the_admin_api(app: TestApp) {
    let acme = app.org("acme", &[("editor", 0, true)]).await;
    let (key, admin) = (acme.product_key.as_str(), acme.admin_key.as_str());
    for serial in ["B", "C", "D E/F"] {
        check_in(&app, key, serial, Some(json!(true))).await;
    }
    let line = app.admin(Method::GET, "/products/editor/queue", admin).await;
    assert_eq!(line.status, StatusCode::OK);
    let line = line.json();
    let items: Vec<(Value, Value)> = line["items"].as_array().unwrap().iter().map(|w| (w["position"].clone(), w["serial"].clone())).collect();
    assert_eq!(items, [(json!(1), json!("B")), (json!(2), json!("C")), (json!(3), json!("D E/F"))]);
    assert!(line["items"][0]["waiting_since"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    assert_eq!(line["next_cursor"], Value::Null);

    let removed = app.admin(Method::DELETE, &format!("/products/editor/queue/{}", common::encode("D E/F")), admin).await;
    assert_eq!((removed.status, removed.json()), (StatusCode::OK, json!({"removed": true})));
    let again = app.admin(Method::DELETE, "/products/editor/queue/B", admin).await;
    assert_eq!(again.json(), json!({"removed": true}));
    assert_eq!(app.admin(Method::DELETE, "/products/editor/queue/B", admin).await.json(), json!({"removed": false}));
    let line = app.admin(Method::GET, "/products/editor/queue", admin).await.json();
    assert_eq!(line["items"].as_array().unwrap().len(), 1);
    assert_eq!((line["items"][0]["position"].clone(), line["items"][0]["serial"].clone()), (json!(1), json!("C")));
    let log = app.admin(Method::GET, "/activity?kind=removed_from_queue", admin).await.json();
    assert_eq!(log["items"].as_array().unwrap().len(), 2);
    assert_eq!(log["items"][0]["actor"], "admin_api");

    app.admin(Method::GET, "/products/nope/queue", admin).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    app.admin(Method::DELETE, "/products/nope/queue/C", admin).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    app.admin(Method::DELETE, "/products/editor/queue/a%00b", admin).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.admin(Method::GET, "/products/editor/queue", key).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    let globex = app.org("globex", &[("editor", 0, true)]).await;
    assert_eq!(app.admin(Method::GET, "/products/editor/queue", &globex.admin_key).await.json()["items"], json!([]));
    assert_eq!(app.admin(Method::DELETE, "/products/editor/queue/C", &globex.admin_key).await.json(), json!({"removed": false}));
    assert_eq!(app.admin(Method::GET, "/products/editor/queue", admin).await.json()["items"].as_array().unwrap().len(), 1);
}


async fn the_product_screen_lists_the_line_and_removes_from_it(app: TestApp) {
    let acme = app.org("acme", &[("editor", 0, true)]).await;
    for serial in ["B", "C"] {
        check_in(&app, &acme.product_key, serial, Some(json!(true))).await;
    }
    let session = app.session("acme").await;
    let screen = app.post_form(LoadProduct::PATH, "code=editor", &session).await.json();
    let waiting: Vec<(Value, Value, Value)> = screen["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["position"].clone(), w["serial"].clone(), w["since"]["ago"].clone()))
        .collect();
    assert_eq!(waiting, [(json!(1), json!("B"), json!("just now")), (json!(2), json!("C"), json!("just now"))]);
    let reply = app.post_form(RemoveFromQueue::PATH, "code=editor&serial=B", &session).await;
    assert!(reply.status.is_success(), "{:?}", reply.status);
    let screen = app.post_form(LoadProduct::PATH, "code=editor", &session).await.json();
    assert_eq!(screen["waiting"].as_array().unwrap().len(), 1);
    assert_eq!(screen["waiting"][0]["serial"], "C");
    let log = app.admin(Method::GET, "/activity?kind=removed_from_queue", &acme.admin_key).await.json();
    assert_eq!(log["items"][0]["actor"], "admin_session");
}

async fn refusals_are_counted_in_the_product_usage_and_on_the_screens(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true)]).await;
    let (key, admin) = (acme.product_key.as_str(), acme.admin_key.as_str());
    assert_eq!(check_in(&app, key, "A", None).await["licensed"], true);
    for serial in ["B", "B", "C", "B"] {
        assert_eq!(check_in(&app, key, serial, None).await["reason"], "no_seats_available");
    }
    let usage = app.admin(Method::GET, "/products/editor/usage?days=30", admin).await;
    assert_eq!(usage.status, StatusCode::OK);
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(
        usage.json(),
        json!({"days": [{"date": today, "seats": 1, "assigned": 1, "refused": 4, "refused_devices": 2}]}),
        "a new product's history is today, live"
    );
    assert_eq!(app.admin(Method::GET, "/products/editor/usage", admin).await.json()["days"].as_array().unwrap().len(), 1);
    for bad in ["days=0", "days=367", "days=ten", "days=-1"] {
        app.admin(Method::GET, &format!("/products/editor/usage?{bad}"), admin).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    app.admin(Method::GET, "/products/nope/usage", admin).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");

    let session = app.session("acme").await;
    let listed = app.post_form(ListProducts::PATH, "", &session).await.json();
    assert_eq!(listed[0]["refused_this_week"], 2);
    let screen = app.post_form(LoadProduct::PATH, "code=editor", &session).await.json();
    let points = screen["usage"].as_array().unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!((points[0]["refused"].clone(), points[0]["assigned"].clone()), (json!(2), json!(1)));
}
