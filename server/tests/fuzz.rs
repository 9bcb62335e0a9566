//! The admin API and the screens' server functions under a stream of odd
//! input, through the real router on both backends: every path, query and
//! body string may hold NUL and other control characters, percent-encoded
//! garbage, huge or negative numbers, far dates, FTS5 and LIKE syntax. Each
//! request gets a documented answer (never a 5xx, always the error shape),
//! and afterwards the seat counts still hold.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, header};
use common::{Rng, TestApp};
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};

on_both_backends!(the_admin_api_answers_odd_input_without_a_5xx, the_server_functions_answer_odd_input_without_a_5xx);

/// Strings a user, a script or an attacker might send anywhere.
const ODD: [&str; 24] = [
    "", "SN-1", "SN-2", "editor", "viewer", "%00", "a%00b", "%0A", "%09", "%7F", "%C2%85", "%E2%80%AE", "%FF%FE", "%25",
    "%2F..%2F", "%22%20OR%201", "NEAR(a%20b)", "*", "_", "%5C", "-100000-01-01", "99999999999999999999", "-1", "🔑",
];

fn odd(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => "x".repeat(100 + rng.below(200)),
        1 => format!("{}{}", rng.pick(&ODD), rng.pick(&ODD)),
        _ => rng.pick(&ODD).to_owned(),
    }
}

/// A JSON value that may or may not be what a route expects.
fn odd_json(rng: &mut Rng) -> Value {
    let text = decoded(&odd(rng));
    match rng.below(8) {
        0 => json!(null),
        1 => json!(rng.next() as i64),
        2 => json!(-1),
        3 => json!(true),
        4 => json!([text]),
        5 => json!({"nested": text}),
        _ => json!(text),
    }
}

/// The odd strings as a JSON body carries them: NUL, newline and tab themselves.
fn decoded(text: &str) -> String {
    text.replace("%00", "\0").replace("%0A", "\n").replace("%09", "\t")
}

async fn acme_with_devices(app: &TestApp) -> common::Org {
    let acme = app.org("acme", &[("editor", 2, true), ("viewer", 1, false)]).await;
    for serial in ["SN-1", "SN-2", "SN-3"] {
        app.check_in(&acme.product_key, "editor", serial).await;
    }
    acme
}

/// The seat counts after the storm: never more holders than seats, and each
/// product's count agrees with its holders.
async fn seats_still_hold(app: &TestApp, admin_key: &str) {
    for product in app.admin(Method::GET, "/products", admin_key).await.json()["items"].as_array().unwrap() {
        let code = product["code"].as_str().unwrap();
        let holders = app.admin(Method::GET, &format!("/products/{code}/devices?limit=1000"), admin_key).await.json();
        let holders = holders["items"].as_array().unwrap().len() as i64;
        assert_eq!(product["assigned"].as_i64(), Some(holders), "{code}");
        assert!(holders <= product["seats"].as_i64().unwrap(), "{code}: {holders} holders");
    }
}

async fn the_admin_api_answers_odd_input_without_a_5xx(app: TestApp) {
    let acme = acme_with_devices(&app).await;
    let mut rng = Rng(0x0dd_1bad_5eed_0002);
    let routes: [(Method, &str); 14] = [
        (Method::GET, "/products/{}"),
        (Method::PATCH, "/products/{}"),
        (Method::GET, "/products/{}/devices"),
        (Method::GET, "/products/{}/policy"),
        (Method::PATCH, "/products/{}/policy"),
        (Method::GET, "/devices/{}"),
        (Method::DELETE, "/devices/{}"),
        (Method::POST, "/devices/{}/ignore"),
        (Method::PUT, "/devices/{}/licenses/{}"),
        (Method::DELETE, "/devices/{}/licenses/{}"),
        (Method::DELETE, "/ignored/{}"),
        (Method::GET, "/devices"),
        (Method::GET, "/activity"),
        (Method::POST, "/bulk"),
    ];
    let params = ["q", "limit", "cursor", "product", "serial", "kind", "actor", "since", "until"];
    for round in 0..1200 {
        let (method, template) = &routes[rng.below(routes.len())];
        let mut path = template.to_string();
        while path.contains("{}") {
            path = path.replacen("{}", &odd(&mut rng), 1);
        }
        let query: Vec<String> = (0..rng.below(4)).map(|_| format!("{}={}", rng.pick(&params), odd(&mut rng))).collect();
        let uri = format!("/api/v1/admin{path}{}{}", if query.is_empty() { "" } else { "?" }, query.join("&"));
        let body = match (method.clone(), rng.below(3)) {
            (Method::GET | Method::DELETE, _) | (_, 0) => None,
            _ if path == "/bulk" => {
                let action = ["assign", "unassign", "delete", "ignore", "explode"][rng.below(5)];
                let which = ["serials", "matching"][rng.below(2)];
                let devices = if rng.below(2) == 0 { json!([odd_json(&mut rng), "SN-1"]) } else { odd_json(&mut rng) };
                let mut body = json!({"action": action, "product": odd_json(&mut rng)});
                body[which] = devices;
                Some(body)
            }
            _ => Some(json!({
                "auto_assign": odd_json(&mut rng),
                "license_days": odd_json(&mut rng),
                "reclaim_after_days": odd_json(&mut rng),
            })),
        };
        if uri.parse::<axum::http::Uri>().is_err() {
            continue; // not even a URI: the HTTP layer refuses it before us
        }
        let reply = app.call(method.clone(), &uri, Some(&acme.admin_key), body).await;
        assert!(!reply.status.is_server_error(), "round {round}: {method} {uri}: {} {}", reply.status, String::from_utf8_lossy(&reply.body));
        if !reply.status.is_success() && !reply.body.is_empty() {
            let answer = reply.json();
            assert!(answer["error"]["code"].is_string(), "{method} {uri}: {answer}");
        }
    }
    seats_still_hold(&app, &acme.admin_key).await;
}

async fn the_server_functions_answer_odd_input_without_a_5xx(app: TestApp) {
    use app::activity::LoadActivity;
    use app::device::{LoadDevice, SetLicense};
    use app::devices::{BulkDevices, DeleteDevice, IgnoreDevice, ListDevices};
    use app::licenses::SetAutoAssign;
    use app::product::{LoadProduct, RevokeSeat, SetLicenseDays};
    use app::settings::Unignore;

    let acme = acme_with_devices(&app).await;
    let signed_in = app
        .send(
            Request::post(app::auth::SignIn::PATH)
                .header(header::HOST, "seats.test")
                .header(header::ORIGIN, "https://seats.test")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body(Body::from(format!("key={}&next=%2F", acme.admin_key)))
                .unwrap(),
        )
        .await;
    let cookie = signed_in.headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let calls: [(&str, &[&str]); 11] = [
        (LoadActivity::PATH, &["product", "serial", "kind", "actor", "since", "until", "before"]),
        (SetAutoAssign::PATH, &["code", "auto_assign"]),
        (LoadProduct::PATH, &["code", "days", "after"]),
        (RevokeSeat::PATH, &["code", "serial"]),
        (SetLicenseDays::PATH, &["code", "days"]),
        (ListDevices::PATH, &["q", "after", "limit"]),
        (LoadDevice::PATH, &["serial"]),
        (SetLicense::PATH, &["serial", "product", "assigned"]),
        (DeleteDevice::PATH, &["serial", "next"]),
        (BulkDevices::PATH, &["action", "product", "serials[]", "matching", "all"]),
        (Unignore::PATH, &["serial"]),
    ];
    let mut rng = Rng(0x0dd_1bad_5eed_0003);
    for round in 0..600 {
        let (path, fields) = calls[rng.below(calls.len())];
        let mut form = Vec::new();
        for field in fields {
            if rng.below(4) != 0 {
                form.push(format!("{field}={}", odd(&mut rng)));
            }
        }
        let accept = if rng.below(2) == 0 { "application/json" } else { "text/html" };
        let request = Request::post(path)
            .header(header::HOST, "seats.test")
            .header(header::ORIGIN, "https://seats.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, accept)
            .header(header::COOKIE, &cookie)
            .body(Body::from(form.join("&")))
            .unwrap();
        let reply = app.send(request).await;
        assert!(!reply.status.is_server_error(), "round {round}: {path} {form:?}: {} {}", reply.status, String::from_utf8_lossy(&reply.body));
    }
    // IgnoreDevice last, as it may put odd serials on the list.
    for _ in 0..50 {
        let request = Request::post(IgnoreDevice::PATH)
            .header(header::HOST, "seats.test")
            .header(header::ORIGIN, "https://seats.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, &cookie)
            .body(Body::from(format!("serial={}", odd(&mut rng))))
            .unwrap();
        assert!(!app.send(request).await.status.is_server_error());
    }
    seats_still_hold(&app, &acme.admin_key).await;
}
