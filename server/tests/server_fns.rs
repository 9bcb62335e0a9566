//! The screens' server functions, called as the browser calls them, through
//! the real router: each one authenticates by itself, and a session of one
//! organization can neither see nor change another's data.

mod common;

use app::auth::{CurrentOrg, SignIn, SignOut};
use app::device::{LoadDevice, SetLicense};
use app::devices::{BulkDevices, DeleteDevice, IgnoreDevice, ListDevices};
use app::licenses::{ListProducts, SetAutoAssign};
use app::activity::LoadActivity;
use app::product::{LoadProduct, RemoveFromQueue, RevokeSeat, SetAlertPercent, SetLicenseDays, SetSeatModel};
use app::settings::{AddWebhook, DeleteWebhook, LoadSettings, RotateAdminKey, RotateProductKey, Unignore};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Reply, TestApp};
use leptos::server_fn::ServerFn;
use serde_json::Value;

on_both_backends!(
    every_server_function_refuses_without_a_session,
    a_session_of_one_organization_changes_nothing_of_another,
    sign_in_sets_a_strict_http_only_session_cookie_that_is_not_the_key,
    rotating_the_admin_key_ends_other_sessions_but_keeps_this_one,
    forms_posted_without_javascript_come_back_to_their_page,
    forms_sent_by_another_site_are_refused,
    a_validity_set_on_the_product_screen_applies_to_the_next_license_at_once,
);

/// Every server function behind a page or a form, with arguments naming data
/// of the organization "acme".
fn protected_calls() -> Vec<(&'static str, &'static str)> {
    vec![
        (ListProducts::PATH, ""),
        (LoadActivity::PATH, ""),
        (SetAutoAssign::PATH, "code=editor&auto_assign=on"),
        (LoadProduct::PATH, "code=editor"),
        (RevokeSeat::PATH, "code=editor&serial=ACME-1"),
        (SetLicenseDays::PATH, "code=editor&days=3"),
        (SetSeatModel::PATH, "code=editor&model=floating&minutes=30"),
        (RemoveFromQueue::PATH, "code=editor&serial=ACME-1"),
        (SetAlertPercent::PATH, "code=editor&percent=80"),
        (ListDevices::PATH, ""),
        (DeleteDevice::PATH, "serial=ACME-1"),
        (LoadDevice::PATH, "serial=ACME-1"),
        (SetLicense::PATH, "serial=ACME-1&product=editor"),
        (LoadSettings::PATH, ""),
        (RotateProductKey::PATH, ""),
        (RotateAdminKey::PATH, ""),
        (Unignore::PATH, "serial=IGNORED-1"),
        // acme's webhook is the first.
        (DeleteWebhook::PATH, "id=1"),
        (AddWebhook::PATH, "url=https%3A%2F%2Fhooks.example.com%2Fx&events[]=seat.assigned"),
        (BulkDevices::PATH, "action=delete&serials[]=ACME-1"),
        // Last: ignoring a serial never seen puts it on the caller's own list.
        (IgnoreDevice::PATH, "serial=ACME-1"),
    ]
}

/// The host the tests' browser reaches the server at, and the origin of its
/// pages: a browser sends `Origin` with every form and `fetch` post.
const SITE: &str = "127.0.0.1:3000";
const ORIGIN: &str = "http://127.0.0.1:3000";

/// Posts a form to a server function as a page of this site does.
async fn call(app: &TestApp, path: &str, form: &str, session: Option<&str>) -> Reply {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, SITE)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(session) = session {
        request = request.header(header::COOKIE, format!("seatkeeper_session={session}"));
    }
    app.send(request.body(Body::from(form.to_owned())).unwrap()).await
}

fn error_code(reply: &Reply) -> String {
    reply.json()["code"].as_str().unwrap_or_default().to_owned()
}

/// Signs in and returns the session id from the cookie.
async fn sign_in(app: &TestApp, admin_key: &str) -> String {
    let reply = call(app, SignIn::PATH, &format!("key={admin_key}&next=%2F"), None).await;
    assert!(reply.status.is_success() || reply.status.is_redirection(), "{:?}", reply.status);
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().trim_start_matches("seatkeeper_session=").to_owned()
}

/// acme with a device holding a seat, an ignored serial and a webhook;
/// globex with its own product.
async fn two_organizations(app: &TestApp) -> (common::Org, common::Org) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let globex = app.org("globex", &[("viewer", 2, true)]).await;
    app.check_in(&acme.product_key, "editor", "ACME-1").await;
    app.admin(Method::POST, "/devices/IGNORED-1/ignore", &acme.admin_key).await;
    let hook = serde_json::json!({"url": "https://hooks.example.com/acme", "events": ["seat.assigned"]});
    let hook = app.call(Method::POST, "/api/v1/admin/webhooks", Some(&acme.admin_key), Some(hook)).await;
    assert_eq!(hook.json()["id"], 1);
    (acme, globex)
}

async fn acme_is_untouched(app: &TestApp, acme: &common::Org) {
    let device = app.admin(Method::GET, "/devices/ACME-1", &acme.admin_key).await;
    assert_eq!(device.status, StatusCode::OK, "acme's device still exists");
    assert_eq!(device.json()["seats_assigned"], 1);
    assert_eq!(app.admin(Method::GET, "/products/editor", &acme.admin_key).await.json()["auto_assign"], true);
    assert_eq!(app.admin(Method::GET, "/ignored", &acme.admin_key).await.json()["items"][0]["serial"], "IGNORED-1");
    let settings = app.admin(Method::GET, "/settings", &acme.admin_key).await;
    assert_eq!(settings.json()["product_key"], acme.product_key.as_str(), "acme's keys are unchanged");
    let webhooks = app.admin(Method::GET, "/webhooks", &acme.admin_key).await.json();
    assert_eq!(webhooks["items"][0]["url"], "https://hooks.example.com/acme", "acme's webhook is there");
}

async fn every_server_function_refuses_without_a_session(app: TestApp) {
    let (acme, _) = two_organizations(&app).await;
    for session in [None, Some("sk_session_forged"), Some(acme.admin_key.as_str())] {
        for (path, form) in protected_calls() {
            let reply = call(&app, path, form, session).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} with {session:?}");
            assert_eq!(error_code(&reply), "signed_out", "{path}");
        }
    }
    assert_eq!(call(&app, CurrentOrg::PATH, "", None).await.json(), Value::Null);
    acme_is_untouched(&app, &acme).await;
}

async fn a_session_of_one_organization_changes_nothing_of_another(app: TestApp) {
    let (acme, globex) = two_organizations(&app).await;
    let session = sign_in(&app, &globex.admin_key).await;
    assert_eq!(call(&app, CurrentOrg::PATH, "", Some(&session)).await.json(), "globex");
    for (path, form) in protected_calls() {
        if [RotateProductKey::PATH, RotateAdminKey::PATH].contains(&path) {
            continue; // they act on the session's own organization, tested below
        }
        let reply = call(&app, path, form, Some(&session)).await;
        if reply.status.is_success() {
            let body = String::from_utf8_lossy(&reply.body);
            assert!(!body.contains("ACME-1") && !body.contains("editor"), "{path} showed acme's data: {body}");
        } else {
            assert!(["unknown_product", "unknown_device", "not_ignored", "unknown_webhook"].contains(&error_code(&reply).as_str()), "{path}: {}", error_code(&reply));
        }
    }
    // Rotations change globex's keys, never acme's.
    assert!(call(&app, RotateProductKey::PATH, "", Some(&session)).await.status.is_success());
    acme_is_untouched(&app, &acme).await;
    let theirs = app.admin(Method::GET, "/settings", &globex.admin_key).await.json();
    assert_ne!(theirs["product_key"], globex.product_key.as_str());
}

async fn sign_in_sets_a_strict_http_only_session_cookie_that_is_not_the_key(app: TestApp) {
    let (acme, _) = two_organizations(&app).await;
    let wrong = call(&app, SignIn::PATH, "key=sk_admin_wrong&next=%2F", None).await;
    assert_eq!((wrong.status, error_code(&wrong).as_str()), (StatusCode::UNAUTHORIZED, "invalid_key"));
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let product_key = call(&app, SignIn::PATH, &format!("key={}&next=%2F", acme.product_key), None).await;
    assert_eq!(error_code(&product_key), "invalid_key", "a product key does not sign in");

    let reply = call(&app, SignIn::PATH, &format!("key={}&next=%2Fdevices", acme.admin_key), None).await;
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains(&acme.admin_key), "the cookie never holds the key");
    assert!(cookie.starts_with("seatkeeper_session=sk_session_"));
    let session = cookie.split(';').next().unwrap().trim_start_matches("seatkeeper_session=");
    assert_eq!(call(&app, ListProducts::PATH, "", Some(session)).await.json()[0]["code"], "editor");

    assert!(!cookie.contains("Secure"), "plain HTTP: a Secure cookie would never come back");
    let behind_tls = Request::post(SignIn::PATH)
        .header(header::HOST, "seats.acme.test")
        .header(header::ORIGIN, "https://seats.acme.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .header("x-forwarded-proto", "https")
        .body(Body::from(format!("key={}&next=%2F", acme.admin_key)))
        .unwrap();
    let secure = app.send(behind_tls).await;
    assert!(secure.headers[header::SET_COOKIE].to_str().unwrap().contains("; Secure"), "Secure when served over HTTPS");

    let out = call(&app, SignOut::PATH, "", Some(session)).await;
    assert!(out.headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let after = call(&app, ListProducts::PATH, "", Some(session)).await;
    assert_eq!(error_code(&after), "signed_out", "the session ended on the server, not only in the browser");
}

async fn rotating_the_admin_key_ends_other_sessions_but_keeps_this_one(app: TestApp) {
    let (acme, _) = two_organizations(&app).await;
    let other = sign_in(&app, &acme.admin_key).await;
    let this = sign_in(&app, &acme.admin_key).await;
    let reply = call(&app, RotateAdminKey::PATH, "", Some(&this)).await;
    let new_key = reply.json().as_str().unwrap().to_owned();
    assert!(new_key.starts_with("sk_admin_"));
    let this = reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("seatkeeper_session=").map(|rest| rest.split(';').next().unwrap().to_owned()))
        .expect("this browser gets a new session");
    assert_eq!(error_code(&call(&app, ListProducts::PATH, "", Some(&other)).await), "signed_out");
    assert!(call(&app, ListProducts::PATH, "", Some(&this)).await.status.is_success());
    // The new key never travels in a cookie: the next settings page shows it
    // once, from the server, to this session only.
    for cookie in reply.headers.get_all(header::SET_COOKIE) {
        assert!(!cookie.to_str().unwrap().contains(&new_key), "a cookie holds the key: {cookie:?}");
    }
    let elsewhere = sign_in(&app, &new_key).await;
    assert_eq!(call(&app, LoadSettings::PATH, "", Some(&elsewhere)).await.json()["new_admin_key"], Value::Null);
    assert_eq!(call(&app, LoadSettings::PATH, "", Some(&this)).await.json()["new_admin_key"], new_key.as_str());
    assert_eq!(call(&app, LoadSettings::PATH, "", Some(&this)).await.json()["new_admin_key"], Value::Null, "shown once");
    assert_eq!(app.admin(Method::GET, "/settings", &new_key).await.status, StatusCode::OK);
    assert_eq!(app.admin(Method::GET, "/settings", &acme.admin_key).await.status, StatusCode::UNAUTHORIZED);
}

async fn forms_posted_without_javascript_come_back_to_their_page(app: TestApp) {
    let acme = app.org("acme", &[("viewer", 1, false)]).await;
    app.check_in(&acme.product_key, "viewer", "SN-1").await;
    app.check_in(&acme.product_key, "viewer", "SN-2").await;
    let session = sign_in(&app, &acme.admin_key).await;
    let form_post = |form: &str, referer: &str| {
        Request::post(SetLicense::PATH)
            .header(header::HOST, SITE)
            .header(header::ORIGIN, ORIGIN)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .header(header::REFERER, referer)
            .header(header::COOKIE, format!("seatkeeper_session={session}"))
            .body(Body::from(form.to_owned()))
            .unwrap()
    };
    let ok = app.send(form_post("serial=SN-1&product=viewer&assigned=on", "http://127.0.0.1:3000/devices/SN-1?error=x&form=y")).await;
    assert_eq!(ok.status, StatusCode::FOUND);
    assert_eq!(ok.headers[header::LOCATION], "/devices/SN-1", "back to the page, without an old error");

    let full = app.send(form_post("serial=SN-2&product=viewer&assigned=on", "http://127.0.0.1:3000/devices/SN-2")).await;
    assert_eq!(full.status, StatusCode::FOUND);
    assert_eq!(full.headers[header::LOCATION], "/devices/SN-2?error=no_seats_available&form=license-viewer");
    assert_eq!(app.admin(Method::GET, "/devices/SN-2", &acme.admin_key).await.json()["seats_assigned"], 0);

    let elsewhere = app.send(form_post("serial=SN-1&product=viewer", "https://evil.example/phish")).await;
    assert_eq!(elsewhere.headers[header::LOCATION], "/phish", "never redirected off this site");

    // Without a Referer the form's own `?back=` (its action URL) names the
    // page: what a browser that keeps referrers to itself still sends.
    let unreferred = |back: &str| {
        Request::post(format!("{}?back={back}", SetLicense::PATH))
            .header(header::HOST, SITE)
            .header(header::ORIGIN, ORIGIN)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "text/html")
            .header(header::COOKIE, format!("seatkeeper_session={session}"))
            .body(Body::from("serial=SN-2&product=nope&assigned=on"))
            .unwrap()
    };
    let named = app.send(unreferred("%2Fdevices%2FSN-2%3Fq%3Dsn")).await;
    assert_eq!(named.status, StatusCode::FOUND);
    assert_eq!(named.headers[header::LOCATION], "/devices/SN-2?q=sn&error=unknown_product&form=license-nope");
    let off_site = app.send(unreferred("%2F%2Fevil.example")).await;
    assert_eq!(off_site.headers[header::LOCATION], "/?error=unknown_product&form=license-nope");

    // A form's id carries what was posted: it goes back percent-encoded.
    let odd = app.send(form_post("serial=SN-1&product=%01%0A%22", "http://127.0.0.1:3000/devices/SN-1")).await;
    assert_eq!(odd.status, StatusCode::FOUND);
    assert_eq!(odd.headers[header::LOCATION], "/devices/SN-1?error=invalid_request&form=license-%01%0A%22");

    // Deleting from a device's own page goes on to `next`: only ever a path
    // of this site, whatever was posted.
    let delete = |form: &str| {
        Request::post(DeleteDevice::PATH)
            .header(header::HOST, SITE)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "text/html")
            .header(header::REFERER, "http://127.0.0.1:3000/devices/SN-2")
            .header(header::COOKIE, format!("seatkeeper_session={session}"))
            .body(Body::from(form.to_owned()))
            .unwrap()
    };
    for (next, to) in [
        ("%2F%2Fevil.example", "/"),
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("%2Fdevices%01", "/"),
        ("https%3A%2F%2Fevil.example%2Fdevices", "/devices"),
    ] {
        let reply = app.send(delete(&format!("serial=NOT-THERE&next={next}"))).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{next}");
        assert_eq!(reply.headers[header::LOCATION], format!("{to}?error=unknown_device&form=device-actions"), "{next}");
    }
    let gone = app.send(delete("serial=SN-2&next=%2Fdevices")).await;
    assert_eq!(gone.headers[header::LOCATION], "/devices", "on to the list, the device's page is gone");
    app.admin(Method::GET, "/devices/SN-2", &acme.admin_key).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
}

async fn forms_sent_by_another_site_are_refused(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    app.check_in(&acme.product_key, "editor", "SN-1").await;
    let session = sign_in(&app, &acme.admin_key).await;
    let post = |origin: Option<(&str, &str)>| {
        let mut request = Request::post(DeleteDevice::PATH)
            .header(header::HOST, "seats.acme.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("seatkeeper_session={session}"));
        if let Some((name, value)) = origin {
            request = request.header(name, value);
        }
        request.body(Body::from("serial=SN-1")).unwrap()
    };
    for forged in [("origin", "https://evil.example"), ("referer", "https://evil.example/page"), ("origin", "null")] {
        let reply = app.send(post(Some(forged))).await;
        reply.assert_error(StatusCode::FORBIDDEN, "cross_site_request");
    }
    app.send(post(None)).await.assert_error(StatusCode::FORBIDDEN, "cross_site_request");
    assert_eq!(app.admin(Method::GET, "/devices/SN-1", &acme.admin_key).await.status, StatusCode::OK, "nothing deleted");
    let same_site = app.send(post(Some(("origin", "https://seats.acme.test")))).await;
    assert!(same_site.status.is_success(), "{:?}", same_site.status);
    app.admin(Method::GET, "/devices/SN-1", &acme.admin_key).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");

    // Signing in too: another site must not sign a victim's browser in to
    // the attacker's organization (login CSRF), with or without a cookie.
    let sign_in_from = |origin: Option<&str>| {
        let mut request = Request::post(SignIn::PATH)
            .header(header::HOST, "seats.acme.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "text/html");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(Body::from(format!("key={}&next=%2F", acme.admin_key))).unwrap()
    };
    for origin in [Some("https://evil.example"), None] {
        let reply = app.send(sign_in_from(origin)).await;
        reply.assert_error(StatusCode::FORBIDDEN, "cross_site_request");
        assert!(reply.headers.get(header::SET_COOKIE).is_none(), "{origin:?}: no session");
    }
    let own = app.send(sign_in_from(Some("https://seats.acme.test"))).await;
    assert!(own.headers.get(header::SET_COOKIE).is_some(), "from this site it signs in");
}

/// The screens' policy change is the store's one operation, as the admin
/// API's is: the next license says the new validity at once, though the
/// server had the old one in memory from a license just issued.
async fn a_validity_set_on_the_product_screen_applies_to_the_next_license_at_once(app: TestApp) {
    use base64::Engine;
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let days = |answer: Value| {
        let token = answer["license"].as_str().expect("a license").to_owned();
        let claims = token.split('.').nth(1).expect("claims");
        let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        (claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()) / 86_400
    };
    assert_eq!(days(app.check_in(&acme.product_key, "editor", "SN-1").await.json()), 7);
    let session = sign_in(&app, &acme.admin_key).await;
    let reply = call(&app, SetLicenseDays::PATH, "code=editor&days=30", Some(&session)).await;
    assert!(reply.status.is_success(), "{:?}", reply.status);
    assert_eq!(days(app.check_in(&acme.product_key, "editor", "SN-1").await.json()), 30);
}
