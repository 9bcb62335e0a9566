//! The audit log and the CSV downloads through the real router on both
//! backends: the admin API's list with its filters and cursors, CSV with the
//! same filters, the screens' download links by session, and tenant isolation.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::TestApp;
use serde_json::{Value, json};
use store::prelude::*;
use store::Actor;

on_both_backends!(
    the_admin_api_lists_changes_newest_first_with_filters_and_cursors,
    bad_filters_are_refused_with_400,
    activity_and_devices_download_as_csv,
    the_screens_download_links_need_a_session,
    one_organization_never_sees_anothers_changes,
    bulk_actions_through_the_admin_api,
    downloads_of_many_pages_hold_every_row_once,
);

/// More rows than one page of the store (1,000): the download streams page
/// after page, each row once, in order.
async fn downloads_of_many_pages_hold_every_row_once(app: TestApp) {
    let acme = app.org("acme", &[("editor", 5000, true)]).await;
    let org = app.store.organization_by_name("acme").await.unwrap().id;
    let serials: Vec<String> = (0..2345).map(|i| format!("SN-{i:05}")).collect();
    for chunk in serials.chunks(250) {
        let check_ins = chunk.iter().map(|serial| app.store.check_in(org, "editor", serial));
        for answer in futures::future::join_all(check_ins).await {
            assert!(answer.unwrap().licensed);
        }
    }
    let reply = app.admin(Method::GET, "/devices.csv", &acme.admin_key).await;
    assert!(reply.headers.get(header::CONTENT_LENGTH).is_none(), "streamed, not built whole");
    let lines = csv_lines(&reply);
    assert_eq!(lines[0], "serial,first_seen,last_seen,seats_assigned");
    let listed: Vec<&str> = lines[1..].iter().map(|line| line.split(',').next().unwrap()).collect();
    assert_eq!(listed, serials, "every device once, by serial");

    let assigned = csv_lines(&app.admin(Method::GET, "/activity.csv?kind=seat_auto_assigned", &acme.admin_key).await);
    assert_eq!(assigned.len(), 1 + serials.len());
    let mut seen: Vec<&str> = assigned[1..].iter().map(|line| line.split(',').nth(4).unwrap()).collect();
    seen.sort();
    assert_eq!(seen, serials, "every change once");
}

async fn bulk_actions_through_the_admin_api(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, false)]).await;
    for serial in ["LAB-1", "LAB-2", "LAB-3", "DESK-1"] {
        app.check_in(&acme.product_key, "editor", serial).await;
    }
    let key = Some(acme.admin_key.as_str());
    let reply = app
        .call(Method::POST, "/api/v1/admin/bulk", key, Some(json!({"action": "assign", "product": "editor", "matching": "LAB-"})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(
        reply.json(),
        json!({"action": "assign", "product": "editor", "selected": 3, "done": 2,
               "skipped": {"no_seats_available": 1}, "summary": "assigned 2, 1 skipped: 1 no seats left"})
    );
    let reply = app.call(Method::POST, "/api/v1/admin/bulk", key, Some(json!({"action": "ignore", "serials": ["DESK-1", "LAB-3"]}))).await;
    assert_eq!(reply.json()["summary"], "ignored 2");
    assert_eq!(app.admin(Method::GET, "/ignored", &acme.admin_key).await.json()["items"].as_array().unwrap().len(), 2);

    for bad in [
        json!({"action": "explode", "serials": ["LAB-1"]}),
        json!({"action": "assign", "serials": ["LAB-1"]}),
        json!({"action": "delete", "product": "editor", "serials": ["LAB-1"]}),
        json!({"action": "delete", "serials": []}),
        json!({"action": "delete"}),
        json!({"action": "delete", "serials": ["LAB-1"], "matching": "LAB"}),
        json!({"action": "delete", "serials": ["LAB-1", ""]}),
    ] {
        let reply = app.call(Method::POST, "/api/v1/admin/bulk", key, Some(bad.clone())).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let unknown = app.call(Method::POST, "/api/v1/admin/bulk", key, Some(json!({"action": "assign", "product": "nope", "serials": ["LAB-1"]}))).await;
    unknown.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    assert_eq!(app.admin(Method::GET, "/devices/LAB-1", &acme.admin_key).await.status, StatusCode::OK, "refused: nothing changed");
    // The most devices a bulk action takes, with the longest serials, fit in
    // its body; one more device is refused before anything is done.
    let most: Vec<String> = (0..store::bulk::MAX_DEVICES).map(|i| format!("{i:0>128}")).collect();
    let reply = app.call(Method::POST, "/api/v1/admin/bulk", key, Some(json!({"action": "unassign", "product": "editor", "serials": most}))).await;
    assert_eq!((reply.status, &reply.json()["selected"]), (StatusCode::OK, &json!(store::bulk::MAX_DEVICES)));
    let one_more: Vec<String> = (0..=store::bulk::MAX_DEVICES).map(|i| format!("{i:0>128}")).collect();
    let reply = app.call(Method::POST, "/api/v1/admin/bulk", key, Some(json!({"action": "unassign", "product": "editor", "serials": one_more}))).await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    let globex = app.org("globex", &[]).await;
    let theirs = app.call(Method::POST, "/api/v1/admin/bulk", Some(&globex.admin_key), Some(json!({"action": "delete", "matching": ""}))).await;
    assert_eq!(theirs.json()["summary"], "deleted 0");
    assert_eq!(app.admin(Method::GET, "/devices/LAB-1", &acme.admin_key).await.status, StatusCode::OK, "globex cannot touch acme's devices");
}

async fn list(app: &TestApp, key: &str, query: &str) -> Value {
    let reply = app.admin(Method::GET, &format!("/activity{query}"), key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

fn kinds(list: &Value) -> Vec<&str> {
    list["items"].as_array().unwrap().iter().map(|item| item["kind"].as_str().unwrap()).collect()
}

async fn the_admin_api_lists_changes_newest_first_with_filters_and_cursors(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true), ("viewer", 5, false)]).await;
    let admin = &acme.admin_key;
    app.check_in(&acme.product_key, "editor", "SN-1").await;
    app.admin(Method::DELETE, "/devices/SN-1/licenses/editor", admin).await;
    app.call(Method::PATCH, "/api/v1/admin/products/viewer", Some(admin), Some(json!({"auto_assign": true}))).await;

    let all = list(&app, admin, "").await;
    assert_eq!(kinds(&all), ["auto_assign_changed", "seat_revoked", "seat_auto_assigned", "product_added", "product_added"]);
    let newest = &all["items"][0];
    assert_eq!(
        (&newest["actor"], &newest["product"], &newest["serial"], &newest["detail"]),
        (&json!("admin_api"), &json!("viewer"), &Value::Null, &json!("auto-assign on"))
    );
    let mut fields: Vec<&str> = newest.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["actor", "at", "detail", "id", "kind", "product", "serial"]);
    assert_eq!(all["items"][2]["actor"], "device");

    assert_eq!(kinds(&list(&app, admin, "?serial=SN-1").await), ["seat_revoked", "seat_auto_assigned"]);
    assert_eq!(kinds(&list(&app, admin, "?product=viewer").await), ["auto_assign_changed", "product_added"]);
    assert_eq!(kinds(&list(&app, admin, "?kind=seat_revoked&actor=admin_api").await), ["seat_revoked"]);
    assert_eq!(kinds(&list(&app, admin, "?since=2000-01-01&until=2000-01-31").await), Vec::<&str>::new());
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(kinds(&list(&app, admin, &format!("?since={today}&until={today}")).await).len(), 5, "a day, through its end");

    let first = list(&app, admin, "?limit=2").await;
    assert_eq!(kinds(&first), ["auto_assign_changed", "seat_revoked"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = list(&app, admin, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(kinds(&second), ["seat_auto_assigned", "product_added"]);
    let last = list(&app, admin, &format!("?limit=2&cursor={}", second["next_cursor"].as_str().unwrap())).await;
    assert_eq!((kinds(&last), &last["next_cursor"]), (vec!["product_added"], &Value::Null));
}

async fn bad_filters_are_refused_with_400(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true)]).await;
    for query in ["?kind=exploded", "?actor=root", "?since=yesterday", "?since=2026-12-01&until=2026-11-01", "?limit=0", "?cursor=%%%", "?cursor=bm90LWFuLWlk"] {
        let reply = app.admin(Method::GET, &format!("/activity{query}"), &acme.admin_key).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        let csv = app.admin(Method::GET, &format!("/activity.csv{query}"), &acme.admin_key).await;
        if !query.contains("limit") && !query.contains("cursor") {
            csv.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
    let product_key = app.admin(Method::GET, "/activity", &acme.product_key).await;
    product_key.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
}

fn csv_lines(reply: &common::Reply) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(reply.headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    String::from_utf8(reply.body.to_vec()).unwrap().split("\r\n").filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

async fn activity_and_devices_download_as_csv(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true)]).await;
    app.check_in(&acme.product_key, "editor", "=HYPERLINK(\"x\")").await;
    app.check_in(&acme.product_key, "editor", "SN, with comma").await;

    let lines = csv_lines(&app.admin(Method::GET, "/activity.csv", &acme.admin_key).await);
    assert_eq!(lines[0], "at,actor,kind,product,serial,detail");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].contains(",device,seat_auto_assigned,editor,\"'=HYPERLINK(\"\"x\"\")\","), "a formula is defused: {}", lines[1]);
    assert!(lines[2].ends_with(",operator,product_added,editor,,1 seats, auto-assign on") || lines[2].contains("\"1 seats, auto-assign on\""), "{}", lines[2]);
    let filtered = csv_lines(&app.admin(Method::GET, "/activity.csv?kind=product_added", &acme.admin_key).await);
    assert_eq!(filtered.len(), 2);

    let devices = csv_lines(&app.admin(Method::GET, "/devices.csv", &acme.admin_key).await);
    assert_eq!(devices[0], "serial,first_seen,last_seen,seats_assigned");
    assert_eq!(devices.len(), 3);
    assert!(devices[1].starts_with("\"'=HYPERLINK(\"\"x\"\")\",") && devices[1].ends_with(",1"), "{}", devices[1]);
    assert!(devices[2].starts_with("\"SN, with comma\",") && devices[2].ends_with(",0"), "{}", devices[2]);
    let searched = csv_lines(&app.admin(Method::GET, "/devices.csv?q=comma", &acme.admin_key).await);
    assert_eq!(searched.len(), 2);

    // More rows than one page of the store.
    let org = app.store.organization_by_name("acme").await.unwrap().id;
    for i in 0..1200 {
        app.store.ignore_device(org, &format!("IGN-{i:04}"), Actor::AdminApi).await.unwrap();
    }
    let all = csv_lines(&app.admin(Method::GET, "/activity.csv?kind=device_ignored", &acme.admin_key).await);
    assert_eq!(all.len(), 1201, "every change, across pages");
}

async fn the_screens_download_links_need_a_session(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true)]).await;
    app.check_in(&acme.product_key, "editor", "SN-1").await;
    for path in ["/activity.csv", "/devices.csv"] {
        let anonymous = app.call(Method::GET, path, None, None).await;
        anonymous.assert_error(StatusCode::UNAUTHORIZED, "signed_out");
        let forged = app
            .send(Request::get(path).header(header::COOKIE, "seatkeeper_session=sk_session_000000000000000000000000000000000000000000000000").body(Body::empty()).unwrap())
            .await;
        forged.assert_error(StatusCode::UNAUTHORIZED, "signed_out");
    }
    let org = app.store.organization_by_name("acme").await.unwrap().id;
    let session = app.store.create_session(org, std::time::Duration::from_secs(60)).await.unwrap();
    let cookie = format!("seatkeeper_session={session}");
    let activity = app.send(Request::get("/activity.csv?serial=SN-1").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(csv_lines(&activity).len(), 2);
    let devices = app.send(Request::get("/devices.csv").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(csv_lines(&devices).len(), 2);
}

async fn one_organization_never_sees_anothers_changes(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true)]).await;
    let globex = app.org("globex", &[]).await;
    app.check_in(&acme.product_key, "editor", "SN-1").await;
    assert_eq!(list(&app, &globex.admin_key, "").await["items"], json!([]));
    assert_eq!(list(&app, &globex.admin_key, "?serial=SN-1").await["items"], json!([]));
    assert_eq!(csv_lines(&app.admin(Method::GET, "/activity.csv", &globex.admin_key).await).len(), 1, "only the header");
    assert_eq!(csv_lines(&app.admin(Method::GET, "/devices.csv", &globex.admin_key).await).len(), 1);
}
