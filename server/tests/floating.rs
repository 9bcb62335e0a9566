//! Floating seats through the real router: the policy's seat model, the
//! lease on a licensed answer and in its signed license, a device giving its
//! seat back (`POST /api/v1/checkin/release`), and the Product screen's form.

mod common;

use app::licenses::ListProducts;
use app::product::{LoadProduct, SetAlertPercent, SetSeatModel};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use common::{Reply, TestApp};
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};
use store::prelude::*;

on_both_backends!(
    the_policy_names_the_seat_model_and_refuses_what_it_cannot_be,
    a_floating_answer_carries_its_lease_and_its_license_ends_with_it,
    a_device_gives_its_floating_seat_back_and_the_next_one_gets_it,
    a_release_answers_for_its_key_and_body_first_and_changes_nothing_then,
    an_ended_lease_frees_its_seat_for_the_next_device_that_asks,
    the_product_screen_switches_seat_models_and_shows_each_lease,
    a_subscription_term_shows_on_the_product_bounds_each_license_and_refuses_once_past,
    alerts_for_seats_refusals_and_terms_show_on_the_licenses_screen,
);

const POLICY: &str = "/api/v1/admin/products/editor/policy";
const RELEASE: &str = "/api/v1/checkin/release";

async fn patch_policy(app: &TestApp, admin: &str, change: Value) -> Reply {
    app.call(Method::PATCH, POLICY, Some(admin), Some(change)).await
}

async fn release(app: &TestApp, key: &str, product: &str, serial: &str) -> Reply {
    app.call(Method::POST, RELEASE, Some(key), Some(json!({"product": product, "serial": serial}))).await
}

/// An organization whose product "editor" has `seats` floating seats with
/// 20-minute leases.
async fn floating(app: &TestApp, seats: i64) -> common::Org {
    let acme = app.org("acme", &[("editor", seats, true)]).await;
    let reply = patch_policy(app, &acme.admin_key, json!({"seat_model": "floating", "lease_minutes": 20})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());
    acme
}

fn seconds_ahead(rfc3339: &Value) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("an RFC 3339 time")).expect("RFC 3339");
    at.timestamp() - chrono::Utc::now().timestamp()
}

fn claims(answer: &Value) -> Value {
    let token = answer["license"].as_str().expect("a license");
    let claims = token.split('.').nth(1).expect("claims");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

async fn the_policy_names_the_seat_model_and_refuses_what_it_cannot_be(app: TestApp) {
    let acme = app.org("acme", &[("editor", 3, true)]).await;
    let admin = acme.admin_key.as_str();
    let policy = app.call(Method::GET, POLICY, Some(admin), None).await;
    assert_eq!(
        (policy.status, policy.json()),
        (StatusCode::OK, json!({"license_days": 7, "reclaim_after_days": null, "seat_model": "assigned", "lease_minutes": 20, "alert_at_percent": null}))
    );
    let changed = patch_policy(&app, admin, json!({"seat_model": "floating"})).await;
    assert_eq!(changed.json(), json!({"license_days": 7, "reclaim_after_days": null, "seat_model": "floating", "lease_minutes": 20, "alert_at_percent": null}));
    let changed = patch_policy(&app, admin, json!({"lease_minutes": 45.0})).await;
    assert_eq!(changed.json()["lease_minutes"], 45, "a whole number may be written 45.0");
    for bad in [
        json!({"lease_minutes": 4}),
        json!({"lease_minutes": 1441}),
        json!({"lease_minutes": 20.5}),
        json!({"lease_minutes": "20"}),
        json!({"seat_model": "concurrent"}),
        json!({"seat_model": "Floating"}),
        json!({"seat_model": null}),
        json!({"seat_model": "assigned", "lease_minutes": 0}),
    ] {
        let reply = patch_policy(&app, admin, bad.clone()).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let policy = app.call(Method::GET, POLICY, Some(admin), None).await.json();
    assert_eq!((policy["seat_model"].clone(), policy["lease_minutes"].clone()), (json!("floating"), json!(45)), "refusals change nothing");
}

async fn a_floating_answer_carries_its_lease_and_its_license_ends_with_it(app: TestApp) {
    let acme = floating(&app, 1).await;
    let answer = app.check_in(&acme.product_key, "editor", "LAPTOP-1").await.json();
    assert_eq!(answer["licensed"], true, "{answer}");
    let ahead = seconds_ahead(&answer["lease_expires_at"]);
    assert!((20 * 60 - 30..=20 * 60).contains(&ahead), "{answer}");
    let lease_end = chrono::DateTime::parse_from_rfc3339(answer["lease_expires_at"].as_str().unwrap()).unwrap().timestamp();
    let signed = claims(&answer);
    assert!(signed["exp"].as_i64().unwrap() <= lease_end, "the license ends with the lease: {signed}");
    assert!(signed["exp"].as_i64().unwrap() >= lease_end - 1, "and not sooner: {signed}");

    let again = app.check_in(&acme.product_key, "editor", "LAPTOP-1").await.json();
    assert_eq!(again["lease_expires_at"], answer["lease_expires_at"], "the lease as written");
    let refused = app.check_in(&acme.product_key, "editor", "LAPTOP-2").await.json();
    assert_eq!(
        refused.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["first_seen", "last_seen", "licensed", "product", "reason", "serial"],
        "a refusal carries no lease and no license: {refused}"
    );
    assert_eq!(refused["reason"], "no_seats_available");

    // An assigned seat has no lease; its license lasts license_days.
    let globex = app.org("globex", &[("editor", 1, true)]).await;
    let assigned = app.check_in(&globex.product_key, "editor", "LAPTOP-1").await.json();
    assert!(assigned.get("lease_expires_at").is_none(), "{assigned}");
    let signed = claims(&assigned);
    assert_eq!(signed["exp"].as_i64().unwrap() - signed["iat"].as_i64().unwrap(), 7 * 86_400);
}

async fn a_device_gives_its_floating_seat_back_and_the_next_one_gets_it(app: TestApp) {
    let acme = floating(&app, 1).await;
    let key = acme.product_key.as_str();
    assert_eq!(app.check_in(key, "editor", "LAPTOP-1").await.json()["licensed"], true);
    assert_eq!(app.check_in(key, "editor", "LAPTOP-2").await.json()["reason"], "no_seats_available");
    let released = release(&app, key, "editor", "LAPTOP-1").await;
    assert_eq!((released.status, released.json()), (StatusCode::OK, json!({"released": true})));
    let again = release(&app, key, "editor", "LAPTOP-1").await;
    assert_eq!((again.status, again.json()), (StatusCode::OK, json!({"released": false})), "safe to repeat");
    assert_eq!(app.check_in(key, "editor", "LAPTOP-2").await.json()["licensed"], true, "free at once");
    assert_eq!(app.check_in(key, "editor", "LAPTOP-1").await.json()["reason"], "no_seats_available");
    let activity = app.admin(Method::GET, "/activity?kind=seat_released", &acme.admin_key).await.json();
    assert_eq!(activity["items"][0]["actor"], "device");
    assert_eq!(activity["items"][0]["serial"], "LAPTOP-1");

    // An assigned seat is not given back this way; unknown devices have nothing.
    let globex = app.org("globex", &[("editor", 1, true)]).await;
    assert_eq!(app.check_in(&globex.product_key, "editor", "LAPTOP-1").await.json()["licensed"], true);
    assert_eq!(release(&app, &globex.product_key, "editor", "LAPTOP-1").await.json(), json!({"released": false}));
    assert_eq!(app.admin(Method::GET, "/products/editor", &globex.admin_key).await.json()["assigned"], 1);
    assert_eq!(release(&app, key, "editor", "NEVER-SEEN").await.json(), json!({"released": false}));
}

async fn a_release_answers_for_its_key_and_body_first_and_changes_nothing_then(app: TestApp) {
    let acme = floating(&app, 2).await;
    let key = acme.product_key.as_str();
    assert_eq!(app.check_in(key, "editor", "LAPTOP-1").await.json()["licensed"], true);
    let body = json!({"product": "editor", "serial": "LAPTOP-1"});
    app.call(Method::POST, RELEASE, None, Some(body.clone())).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    app.call(Method::POST, RELEASE, Some("sk_prod_nope"), Some(body.clone())).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    app.call(Method::POST, RELEASE, Some(&acme.admin_key), Some(body.clone())).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    for bad in [json!({"product": "editor"}), json!({"serial": "LAPTOP-1"}), json!({"product": "editor", "serial": ""}), json!({"product": "editor", "serial": "a\u{0}b"}), json!([1])] {
        app.call(Method::POST, RELEASE, Some(key), Some(bad)).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    release(&app, key, "nope", "LAPTOP-1").await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    release(&app, key, "bad code!", "LAPTOP-1").await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    let text = Request::builder()
        .method(Method::POST)
        .uri(RELEASE)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(text).await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let big = json!({"product": "editor", "serial": "LAPTOP-1", "pad": "x".repeat(20_000)});
    app.call(Method::POST, RELEASE, Some(key), Some(big)).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let product = app.admin(Method::GET, "/products/editor", &acme.admin_key).await.json();
    assert_eq!(product["assigned"], 1, "nothing was released: {product}");
}

async fn an_ended_lease_frees_its_seat_for_the_next_device_that_asks(app: TestApp) {
    let acme = floating(&app, 1).await;
    let key = acme.product_key.as_str();
    assert_eq!(app.check_in(key, "editor", "LAPTOP-1").await.json()["licensed"], true);
    assert_eq!(app.check_in(key, "editor", "LAPTOP-2").await.json()["reason"], "no_seats_available");
    let org = app.store.organization_by_name("acme").await.unwrap().id;
    app.store.pass_time(org, "editor", chrono::Duration::minutes(21)).await.unwrap();
    let product = app.admin(Method::GET, "/products/editor", &acme.admin_key).await.json();
    assert_eq!((product["assigned"].clone(), product["available"].clone()), (json!(0), json!(1)), "no lease in use: {product}");
    let next = app.check_in(key, "editor", "LAPTOP-2").await.json();
    assert_eq!(next["licensed"], true, "{next}");
    let holders = app.admin(Method::GET, "/products/editor/devices", &acme.admin_key).await.json();
    assert_eq!(holders["items"].as_array().unwrap().len(), 1);
    assert_eq!(holders["items"][0]["serial"], "LAPTOP-2");
    assert_eq!(holders["items"][0]["lease_expires_at"], next["lease_expires_at"]);
    let reclaimed = app.admin(Method::GET, "/activity?kind=seat_reclaimed", &acme.admin_key).await.json();
    assert_eq!((reclaimed["items"][0]["serial"].clone(), reclaimed["items"][0]["detail"].clone()), (json!("LAPTOP-1"), json!("lease ended")));
}


async fn the_product_screen_switches_seat_models_and_shows_each_lease(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    assert_eq!(app.check_in(&acme.product_key, "editor", "LAPTOP-1").await.json()["licensed"], true);
    let session = app.session("acme").await;

    let screen = app.post_form(LoadProduct::PATH, "code=editor", &session).await.json();
    assert_eq!((screen["floating"].clone(), screen["holders"][0]["lease_ends"].clone()), (json!(false), Value::Null));
    let reply = app.post_form(SetSeatModel::PATH, "code=editor&model=floating&minutes=30", &session).await;
    assert!(reply.status.is_success(), "{:?} {}", reply.status, String::from_utf8_lossy(&reply.body));
    let policy = app.call(Method::GET, POLICY, Some(&acme.admin_key), None).await.json();
    assert_eq!((policy["seat_model"].clone(), policy["lease_minutes"].clone()), (json!("floating"), json!(30)));
    let screen = app.post_form(LoadProduct::PATH, "code=editor", &session).await.json();
    assert_eq!(screen["floating"], true);
    assert_eq!(screen["holders"][0]["lease_ends"]["ago"], "in 30 min", "{screen}");

    for bad in ["model=concurrent&minutes=30", "model=floating&minutes=4", "model=floating&minutes=soon"] {
        let reply = app.post_form(SetSeatModel::PATH, &format!("code=editor&{bad}"), &session).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.json()["code"], "invalid_seat_model", "{bad}");
    }
    // Empty minutes keep the lease as it is.
    let reply = app.post_form(SetSeatModel::PATH, "code=editor&model=assigned&minutes=", &session).await;
    assert!(reply.status.is_success());
    let policy = app.call(Method::GET, POLICY, Some(&acme.admin_key), None).await.json();
    assert_eq!((policy["seat_model"].clone(), policy["lease_minutes"].clone()), (json!("assigned"), json!(30)));
}

async fn a_subscription_term_shows_on_the_product_bounds_each_license_and_refuses_once_past(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let admin = acme.admin_key.as_str();
    let org = app.store.organization_by_name("acme").await.unwrap().id;
    let product = app.admin(Method::GET, "/products/editor", admin).await.json();
    assert!(product.get("valid_until").is_none(), "no term, no field: {product}");

    let today = chrono::Utc::now().date_naive();
    app.store.set_term(org, "editor", Some(today), store::Actor::Operator).await.unwrap();
    let product = app.admin(Method::GET, "/products/editor", admin).await.json();
    assert_eq!(product["valid_until"], today.to_string());
    assert_eq!(app.admin(Method::GET, "/products", admin).await.json()["items"][0]["valid_until"], today.to_string());
    let answer = app.check_in(&acme.product_key, "editor", "LAPTOP-1").await.json();
    assert_eq!(answer["licensed"], true);
    let end_of_today = today.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    assert_eq!(claims(&answer)["exp"].as_i64().unwrap(), end_of_today, "the license ends with the term's last day");

    let change = app.call(Method::PATCH, "/api/v1/admin/products/editor", Some(admin), Some(json!({"valid_until": "2099-12-31"}))).await;
    change.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let policy = app.call(Method::PATCH, POLICY, Some(admin), Some(json!({"valid_until": "2099-12-31"}))).await;
    policy.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(app.admin(Method::GET, "/products/editor", admin).await.json()["valid_until"], today.to_string(), "an admin cannot change it");

    let session = app.session("acme").await;
    app.store.set_term(org, "editor", Some(today + chrono::Days::new(12)), store::Actor::Operator).await.unwrap();
    let listed = app.post_form(ListProducts::PATH, "", &session).await.json();
    assert_eq!((listed[0]["term"].clone(), listed[0]["expired"].clone()), (json!("Subscription expires in 12 days"), json!(false)));

    let yesterday = today.pred_opt().unwrap();
    app.store.set_term(org, "editor", Some(yesterday), store::Actor::Operator).await.unwrap();
    let refused = app.check_in(&acme.product_key, "editor", "LAPTOP-1").await.json();
    assert_eq!((refused["licensed"].clone(), refused["reason"].clone()), (json!(false), json!("subscription_expired")));
    assert!(refused.get("license").is_none());
    let screen = app.post_form(LoadProduct::PATH, "code=editor", &session).await.json();
    assert_eq!(screen["product"]["term"], format!("Subscription expired on {yesterday}"));
    assert_eq!(screen["product"]["expired"], true);
    assert_eq!(screen["holders"].as_array().unwrap().len(), 1, "its seat is kept");
    let log = app.admin(Method::GET, "/activity?kind=term_changed", admin).await.json();
    assert_eq!(log["items"][0]["actor"], "operator");
}

async fn alerts_for_seats_refusals_and_terms_show_on_the_licenses_screen(app: TestApp) {
    let acme = app.org("acme", &[("editor", 4, true), ("viewer", 1, true)]).await;
    let (key, admin) = (acme.product_key.as_str(), acme.admin_key.as_str());
    let changed = patch_policy(&app, admin, json!({"alert_at_percent": 50})).await;
    assert_eq!(changed.json()["alert_at_percent"], 50);
    for bad in [json!({"alert_at_percent": 0}), json!({"alert_at_percent": 101}), json!({"alert_at_percent": "50"}), json!({"alert_at_percent": 50.5})] {
        patch_policy(&app, admin, bad).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let session = app.session("acme").await;
    let alerts = |listed: &Value| -> Vec<String> {
        listed.as_array().unwrap().iter().flat_map(|p| p["alerts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned())).collect()
    };
    assert_eq!(app.check_in(key, "editor", "A").await.json()["licensed"], true);
    assert!(alerts(&app.post_form(ListProducts::PATH, "", &session).await.json()).is_empty(), "1 of 4 is below 50%");
    assert_eq!(app.check_in(key, "editor", "B").await.json()["licensed"], true);
    assert_eq!(
        alerts(&app.post_form(ListProducts::PATH, "", &session).await.json()),
        ["editor app: 2 of 4 seats in use, at or above the alert at 50%"]
    );

    assert_eq!(app.check_in(key, "viewer", "A").await.json()["licensed"], true);
    assert_eq!(app.check_in(key, "viewer", "B").await.json()["reason"], "no_seats_available");
    let today = chrono::Utc::now().date_naive();
    let org = app.store.organization_by_name("acme").await.unwrap().id;
    app.store.set_term(org, "viewer", Some(today + chrono::Days::new(5)), store::Actor::Operator).await.unwrap();
    let listed = app.post_form(ListProducts::PATH, "", &session).await.json();
    assert_eq!(
        alerts(&listed),
        [
            "editor app: 2 of 4 seats in use, at or above the alert at 50%",
            "viewer app: 1 device refused this week for want of a seat",
            "viewer app: Subscription expires in 5 days",
        ]
    );

    // The Product screen sets the alert's share, and empties it.
    let reply = app.post_form(SetAlertPercent::PATH, "code=editor&percent=75", &session).await;
    assert!(reply.status.is_success());
    assert_eq!(app.post_form(LoadProduct::PATH, "code=editor", &session).await.json()["alert_at_percent"], 75);
    let reply = app.post_form(SetAlertPercent::PATH, "code=editor&percent=0", &session).await;
    assert_eq!((reply.status, reply.json()["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_alert_percent")));
    app.post_form(SetAlertPercent::PATH, "code=editor&percent=", &session).await;
    let policy = app.call(Method::GET, POLICY, Some(admin), None).await.json();
    assert_eq!(policy["alert_at_percent"], Value::Null);
    let log = app.admin(Method::GET, "/activity?kind=policy_changed", admin).await.json();
    assert_eq!(log["items"][0]["detail"], "alert_at_percent 75% → none");
}
