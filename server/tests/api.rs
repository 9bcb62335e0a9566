//! The public check-in API and the admin API, driven through the real router
//! on both backends: every status and reason of docs/contract.md, tenant
//! isolation and which keys open which doors.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{TestApp, encode};
use serde_json::{Value, json};

on_both_backends!(
    check_in_answers_with_exactly_the_documented_fields,
    check_in_gives_every_documented_reason,
    check_in_refuses_missing_malformed_unknown_and_admin_keys,
    check_in_of_an_unknown_product_is_404,
    check_in_refuses_malformed_bodies_with_400_and_records_nothing,
    check_in_refuses_bodies_over_16_kib_with_413,
    check_in_refuses_other_media_types_with_415,
    admin_products_show_seats_and_switch_auto_assign,
    admin_device_list_pages_with_cursors_and_searches,
    admin_device_detail_lists_every_product_and_handles_odd_serials,
    admin_assign_and_unassign_follow_the_seat_rules,
    admin_delete_and_ignore_remove_devices,
    admin_settings_show_and_rotate_keys,
    organizations_cannot_see_or_change_each_other,
    every_admin_route_refuses_product_keys_and_missing_keys,
    every_admin_route_with_another_organizations_key_leaves_this_one_alone,
    unknown_api_routes_answer_json_404,
    control_characters_and_impossible_dates_anywhere_are_400_and_change_nothing,
);

/// A NUL byte (which PostgreSQL refuses in text) or another control
/// character in any path, query or body string of the admin API, a date
/// outside what both databases store, and FTS5 syntax in a search: each is a
/// 400 `invalid_request` or an ordinary answer, never a 500, and nothing changes.
async fn control_characters_and_impossible_dates_anywhere_are_400_and_change_nothing(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    app.check_in(&acme.product_key, "editor", "SN-1").await;
    let refused = [
        (Method::GET, "/devices/a%00"),
        (Method::GET, "/devices/SN-1%0A"),
        (Method::DELETE, "/devices/a%00"),
        (Method::POST, "/devices/a%00/ignore"),
        (Method::PUT, "/devices/a%00/licenses/editor"),
        (Method::PUT, "/devices/SN-1/licenses/edi%00tor"),
        (Method::DELETE, "/devices/SN-1/licenses/edi%00tor"),
        (Method::DELETE, "/ignored/a%00"),
        (Method::GET, "/products/edi%00tor"),
        (Method::GET, "/products/edi%00tor/devices"),
        (Method::PATCH, "/products/edi%00tor"),
        (Method::GET, "/devices?q=abc%00"),
        (Method::GET, "/devices?q=%00"),
        (Method::GET, "/devices.csv?q=abc%00"),
        (Method::GET, "/activity?serial=%00"),
        (Method::GET, "/activity?product=edi%00tor"),
        (Method::GET, "/activity.csv?serial=a%00b"),
        (Method::GET, "/activity?since=-100000-01-01"),
        (Method::GET, "/activity?until=99999-01-01"),
        (Method::GET, "/activity?since=%2B275760-09-13T00:00:00Z"),
    ];
    for (method, uri) in refused {
        let body = (method == Method::PATCH).then(|| json!({"auto_assign": false}));
        let reply = app.call(method.clone(), &format!("/api/v1/admin{uri}"), Some(&acme.admin_key), body).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let bulk = [
        json!({"action": "delete", "matching": "SN\u{0}"}),
        json!({"action": "delete", "serials": ["SN-1", "a\u{0}"]}),
        json!({"action": "assign", "product": "edi\u{0}tor", "serials": ["SN-1"]}),
    ];
    for body in bulk {
        let reply = app.call(Method::POST, "/api/v1/admin/bulk", Some(&acme.admin_key), Some(body.clone())).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let nul_check_in = json!({"product": "editor", "serial": "SN\u{0}"});
    app.call(Method::POST, "/api/v1/checkin", Some(&acme.product_key), Some(nul_check_in)).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // FTS5's own syntax is only text to search for.
    for q in ["%22", "a%22b", "NEAR(a%20b)", "a%20OR%20b", "*", "sn-1%20AND%20x", "%5E", "%7B%7D"] {
        let reply = app.admin(Method::GET, &format!("/devices?q={q}"), &acme.admin_key).await;
        assert_eq!(reply.status, StatusCode::OK, "q={q}: {}", String::from_utf8_lossy(&reply.body));
    }
    let device = app.admin(Method::GET, "/devices/SN-1", &acme.admin_key).await.json();
    assert_eq!(device["licenses"][0]["assigned"], true, "nothing changed");
    assert_eq!(app.admin(Method::GET, "/products/editor", &acme.admin_key).await.json()["auto_assign"], true);
}

async fn check_in_answers_with_exactly_the_documented_fields(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let reply = app.check_in(&acme.product_key, "editor", "SN-1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    let body = reply.json();
    let mut fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    // the fields of docs/contract.md, and the signed license a licensed answer carries
    // (server/tests/licenses.rs; a denied answer has exactly the contract's fields).
    assert_eq!(fields, ["first_seen", "last_seen", "license", "licensed", "product", "reason", "serial"]);
    assert_eq!((&body["product"], &body["serial"], &body["licensed"], &body["reason"]), (&json!("editor"), &json!("SN-1"), &json!(true), &Value::Null));
    let first_seen = body["first_seen"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(first_seen).is_ok(), "{first_seen}");
    assert!(first_seen.ends_with('Z') && first_seen.len() == "2026-01-01T00:00:00.000Z".len(), "{first_seen}");
}

async fn check_in_gives_every_documented_reason(app: TestApp) {
    let acme = app.org("acme", &[("editor", 1, true), ("manual", 5, false)]).await;
    let key = &acme.product_key;
    assert_eq!(app.check_in(key, "editor", "SN-1").await.json()["licensed"], true);

    let full = app.check_in(key, "editor", "SN-2").await.json();
    assert_eq!((&full["licensed"], &full["reason"]), (&json!(false), &json!("no_seats_available")));

    let manual = app.check_in(key, "manual", "SN-1").await.json();
    assert_eq!(manual["reason"], "auto_assign_disabled");

    let admin = &acme.admin_key;
    assert_eq!(app.admin(Method::DELETE, "/devices/SN-1/licenses/editor", admin).await.status, StatusCode::OK);
    let revoked = app.check_in(key, "editor", "SN-1").await.json();
    assert_eq!((&revoked["licensed"], &revoked["reason"]), (&json!(false), &json!("revoked_by_admin")));
    assert_eq!(app.check_in(key, "editor", "SN-2").await.json()["licensed"], true, "the freed seat is given");

    assert_eq!(app.admin(Method::POST, "/devices/SN-2/ignore", admin).await.status, StatusCode::OK);
    let ignored = app.check_in(key, "editor", "SN-2").await.json();
    assert_eq!(
        (&ignored["licensed"], &ignored["reason"], &ignored["first_seen"], &ignored["last_seen"]),
        (&json!(false), &json!("device_ignored"), &Value::Null, &Value::Null)
    );
}

async fn check_in_refuses_missing_malformed_unknown_and_admin_keys(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let body = json!({"product": "editor", "serial": "SN-1"}).to_string();
    let unknown = format!("sk_prod_{}", "0".repeat(48));
    let authorizations = [
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(acme.product_key.clone()),
        Some(format!("Basic {}", acme.product_key)),
        Some(format!("Bearer {}x", acme.product_key)),
        Some(format!("Bearer {unknown}")),
        Some(format!("Bearer {}", acme.admin_key)),
        Some("Bearer ' or 1=1 --".into()),
    ];
    for authorization in authorizations {
        let mut request = Request::post("/api/v1/checkin").header(header::CONTENT_TYPE, "application/json");
        if let Some(value) = &authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let reply = app.send(request.body(Body::from(body.clone())).unwrap()).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
        assert!(!String::from_utf8_lossy(&reply.body).contains(&acme.product_key), "keys are never echoed");
    }
    // The scheme is case-insensitive, as HTTP says.
    let request = Request::post("/api/v1/checkin")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("bearer {}", acme.product_key))
        .body(Body::from(body))
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::OK);
    assert_eq!(app.admin(Method::GET, "/devices", &acme.admin_key).await.json()["items"].as_array().unwrap().len(), 1);
}

async fn check_in_of_an_unknown_product_is_404(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let _other = app.org("other", &[("viewer", 2, true)]).await;
    for product in ["viewer", "nope", "Editor", "", "../editor", "editor'--"] {
        app.check_in(&acme.product_key, product, "SN-1").await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    }
    assert!(app.admin(Method::GET, "/devices", &acme.admin_key).await.json()["items"].as_array().unwrap().is_empty());
}

async fn check_in_refuses_malformed_bodies_with_400_and_records_nothing(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies = [
        String::new(),
        "{".into(),
        "null".into(),
        "[]".into(),
        "\"editor\"".into(),
        json!({"product": "editor"}).to_string(),
        json!({"serial": "SN-1"}).to_string(),
        json!({"product": "editor", "serial": 42}).to_string(),
        json!({"product": ["editor"], "serial": "SN-1"}).to_string(),
        json!({"product": "editor", "serial": null}).to_string(),
        json!({"product": "editor", "serial": ""}).to_string(),
        json!({"product": "editor", "serial": "x".repeat(129)}).to_string(),
        json!({"product": "editor", "serial": "line\nbreak"}).to_string(),
        json!({"product": "editor", "serial": "nul\u{0}"}).to_string(),
        json!({"product": "editor", "serial": "esc\u{1b}[0m"}).to_string(),
        r#"{"product": "editor", "serial": "\ud800"}"#.into(),
        deep,
        format!(r#"{{"product": "editor", "serial": 1{}}}"#, "0".repeat(400)),
        r#"{"product": "editor", "serial": 1e400}"#.into(),
        r#"["editor", "SN-1"]"#.into(),
    ];
    for body in bodies {
        let request = Request::post("/api/v1/checkin")
            .header(header::AUTHORIZATION, format!("Bearer {}", acme.product_key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:.80}");
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        // The key is answered for first: an unknown one is 401 whatever the body.
        let request = Request::post("/api/v1/checkin")
            .header(header::AUTHORIZATION, format!("Bearer sk_prod_{}", "0".repeat(48)))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        app.send(request).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    }
    let devices = app.admin(Method::GET, "/devices", &acme.admin_key).await.json();
    assert_eq!(devices["items"], json!([]), "nothing was recorded");

    // Extra fields are tolerated, 128 characters (not bytes) are fine, and
    // non-UTF-8 bytes are refused.
    let ok = json!({"product": "editor", "serial": "é".repeat(128), "app_version": "2.1"});
    assert_eq!(app.call(Method::POST, "/api/v1/checkin", Some(&acme.product_key), Some(ok)).await.status, StatusCode::OK);
    let request = Request::post("/api/v1/checkin")
        .header(header::AUTHORIZATION, format!("Bearer {}", acme.product_key))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(b"{\"product\": \"editor\", \"serial\": \"\xff\xfe\"}".to_vec()))
        .unwrap();
    app.send(request).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

async fn check_in_refuses_bodies_over_16_kib_with_413(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let padded = |total: usize| {
        let skeleton = json!({"product": "editor", "serial": "SN-1", "pad": ""}).to_string();
        json!({"product": "editor", "serial": "SN-1", "pad": "p".repeat(total - skeleton.len())}).to_string()
    };
    let at_limit = padded(16 * 1024);
    assert_eq!(at_limit.len(), 16 * 1024);
    let request = |body: String| {
        Request::post("/api/v1/checkin")
            .header(header::AUTHORIZATION, format!("Bearer {}", acme.product_key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    assert_eq!(app.send(request(at_limit)).await.status, StatusCode::OK, "16 KiB exactly is allowed");
    app.send(request(padded(16 * 1024 + 1))).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    app.send(request(padded(5 * 1024 * 1024))).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // A streamed body with no Content-Length is cut off the same way.
    let chunks: Vec<Result<String, std::io::Error>> = (0..40).map(|_| Ok("x".repeat(1024))).collect();
    let streamed = Request::post("/api/v1/checkin")
        .header(header::AUTHORIZATION, format!("Bearer {}", acme.product_key))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    app.send(streamed).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

async fn check_in_refuses_other_media_types_with_415(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let body = json!({"product": "editor", "serial": "SN-1"}).to_string();
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/jsonx"), Some("multipart/form-data")] {
        let mut request = Request::post("/api/v1/checkin").header(header::AUTHORIZATION, format!("Bearer {}", acme.product_key));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let reply = app.send(request.body(Body::from(body.clone())).unwrap()).await;
        reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let request = Request::post("/api/v1/checkin")
            .header(header::AUTHORIZATION, format!("Bearer {}", acme.product_key))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.clone()))
            .unwrap();
        assert_eq!(app.send(request).await.status, StatusCode::OK, "{content_type}");
    }
}

async fn admin_products_show_seats_and_switch_auto_assign(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true), ("viewer", 1, false)]).await;
    app.check_in(&acme.product_key, "editor", "SN-1").await;
    let key = &acme.admin_key;
    let list = app.admin(Method::GET, "/products", key).await.json();
    assert_eq!(list["next_cursor"], Value::Null);
    assert_eq!(
        list["items"][0],
        json!({"code": "editor", "name": "editor app", "seats": 2, "assigned": 1, "available": 1, "auto_assign": true})
    );
    assert_eq!(list["items"][1]["code"], "viewer");
    assert_eq!(app.admin(Method::GET, "/products/viewer", key).await.json()["available"], 1);
    app.admin(Method::GET, "/products/nope", key).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");

    let switched = app.call(Method::PATCH, "/api/v1/admin/products/viewer", Some(key), Some(json!({"auto_assign": true}))).await;
    assert_eq!((switched.status, &switched.json()["auto_assign"]), (StatusCode::OK, &json!(true)));
    assert_eq!(app.check_in(&acme.product_key, "viewer", "SN-1").await.json()["licensed"], true);

    for bad in [json!({}), json!({"auto_assign": "yes"}), json!({"auto_assign": true, "seats": 100}), json!([true])] {
        let reply = app.call(Method::PATCH, "/api/v1/admin/products/viewer", Some(key), Some(bad.clone())).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let missing = app.call(Method::PATCH, "/api/v1/admin/products/nope", Some(key), Some(json!({"auto_assign": false}))).await;
    missing.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    assert_eq!(app.admin(Method::GET, "/products/viewer", key).await.json()["seats"], 1, "seats are the operator's");

    let holders = app.admin(Method::GET, "/products/editor/devices", key).await.json();
    assert_eq!(holders["items"].as_array().unwrap().len(), 1);
    assert_eq!(holders["items"][0]["serial"], "SN-1");
    assert!(holders["items"][0]["assigned_at"].is_string());
    app.admin(Method::GET, "/products/nope/devices", key).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
}

async fn admin_device_list_pages_with_cursors_and_searches(app: TestApp) {
    let acme = app.org("acme", &[("editor", 100, true)]).await;
    for i in 0..23 {
        app.check_in(&acme.product_key, "editor", &format!("PC-{i:02}")).await;
    }
    app.check_in(&acme.product_key, "editor", "mac-1").await;
    let key = &acme.admin_key;

    let mut serials = Vec::new();
    let mut uri = "/devices?limit=10".to_string();
    loop {
        let page = app.admin(Method::GET, &uri, key).await.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 10);
        for item in items {
            let mut fields: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
            fields.sort();
            assert_eq!(fields, ["first_seen", "last_seen", "seats_assigned", "serial"]);
            serials.push(item["serial"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/devices?limit=10&cursor={}", encode(cursor)),
            None => break,
        }
    }
    assert_eq!(serials.len(), 24);
    assert!(serials.windows(2).all(|w| w[0] < w[1]), "ordered by serial, none twice");

    let found = app.admin(Method::GET, "/devices?q=pc-1", key).await.json();
    assert_eq!(found["items"].as_array().unwrap().len(), 10);
    let found = app.admin(Method::GET, "/devices?q=MAC", key).await.json();
    assert_eq!(found["items"][0]["serial"], "mac-1");
    let found = app.admin(Method::GET, "/devices?q=nothing-like-this", key).await.json();
    assert_eq!(found, json!({"items": [], "next_cursor": null}));

    for bad in ["/devices?limit=0", "/devices?limit=-1", "/devices?limit=abc", "/devices?limit=100000", "/devices?cursor=***", "/devices?cursor=%FF%FE"] {
        app.admin(Method::GET, bad, key).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

async fn admin_device_detail_lists_every_product_and_handles_odd_serials(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true), ("viewer", 2, false)]).await;
    let serial = "Büro 7/α #1?x=1&y=%20";
    app.check_in(&acme.product_key, "editor", serial).await;
    let key = &acme.admin_key;
    let device = app.admin(Method::GET, &format!("/devices/{}", encode(serial)), key).await;
    assert_eq!(device.status, StatusCode::OK);
    let device = device.json();
    assert_eq!(device["serial"], serial);
    assert_eq!(device["seats_assigned"], 1);
    assert_eq!(
        device["licenses"],
        json!([{"product": "editor", "name": "editor app", "assigned": true}, {"product": "viewer", "name": "viewer app", "assigned": false}])
    );
    app.admin(Method::GET, "/devices/unknown", key).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
}

async fn admin_assign_and_unassign_follow_the_seat_rules(app: TestApp) {
    let acme = app.org("acme", &[("viewer", 1, false)]).await;
    for serial in ["SN-1", "SN-2"] {
        app.check_in(&acme.product_key, "viewer", serial).await;
    }
    let key = &acme.admin_key;
    let assigned = app.admin(Method::PUT, "/devices/SN-1/licenses/viewer", key).await;
    assert_eq!(assigned.status, StatusCode::OK);
    assert_eq!(assigned.json(), json!({"serial": "SN-1", "product": "viewer", "assigned": true}));
    assert_eq!(app.admin(Method::PUT, "/devices/SN-1/licenses/viewer", key).await.status, StatusCode::OK, "idempotent");
    app.admin(Method::PUT, "/devices/SN-2/licenses/viewer", key).await.assert_error(StatusCode::CONFLICT, "no_seats_available");
    assert_eq!(app.admin(Method::GET, "/devices/SN-2", key).await.json()["seats_assigned"], 0, "nothing changed");
    app.admin(Method::PUT, "/devices/SN-9/licenses/viewer", key).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    app.admin(Method::PUT, "/devices/SN-1/licenses/nope", key).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");

    let unassigned = app.admin(Method::DELETE, "/devices/SN-1/licenses/viewer", key).await;
    assert_eq!(unassigned.json(), json!({"serial": "SN-1", "product": "viewer", "assigned": false}));
    assert_eq!(app.admin(Method::GET, "/products/viewer", key).await.json()["assigned"], 0);
    assert_eq!(app.admin(Method::PUT, "/devices/SN-2/licenses/viewer", key).await.status, StatusCode::OK);
    assert_eq!(app.check_in(&acme.product_key, "viewer", "SN-2").await.json()["licensed"], true);
}

async fn admin_delete_and_ignore_remove_devices(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    for serial in ["SN-1", "SN-2"] {
        app.check_in(&acme.product_key, "editor", serial).await;
    }
    let key = &acme.admin_key;
    assert_eq!(app.admin(Method::DELETE, "/devices/SN-1", key).await.status, StatusCode::OK);
    app.admin(Method::GET, "/devices/SN-1", key).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    app.admin(Method::DELETE, "/devices/SN-1", key).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    assert_eq!(app.admin(Method::GET, "/products/editor", key).await.json()["assigned"], 1);

    assert_eq!(app.admin(Method::POST, "/devices/SN-2/ignore", key).await.status, StatusCode::OK);
    assert_eq!(app.admin(Method::GET, "/products/editor", key).await.json()["assigned"], 0);
    let ignored = app.admin(Method::GET, "/ignored", key).await.json();
    assert_eq!(ignored["items"].as_array().unwrap().len(), 1);
    assert_eq!(ignored["items"][0]["serial"], "SN-2");
    assert!(ignored["items"][0]["ignored_at"].is_string());
    assert_eq!(app.check_in(&acme.product_key, "editor", "SN-2").await.json()["reason"], "device_ignored");
    app.admin(Method::POST, &format!("/devices/{}/ignore", encode("bad\tserial")), key).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    assert_eq!(app.admin(Method::DELETE, "/ignored/SN-2", key).await.status, StatusCode::OK);
    app.admin(Method::DELETE, "/ignored/SN-2", key).await.assert_error(StatusCode::NOT_FOUND, "not_ignored");
    assert_eq!(app.check_in(&acme.product_key, "editor", "SN-2").await.json()["licensed"], true);
}

async fn admin_settings_show_and_rotate_keys(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let settings = app.admin(Method::GET, "/settings", &acme.admin_key).await.json();
    assert_eq!(settings["organization_name"], "acme");
    assert_eq!(settings["product_key"], acme.product_key.as_str());

    let rotated = app.admin(Method::POST, "/settings/product-key/rotate", &acme.admin_key).await.json();
    let product_key = rotated["product_key"].as_str().unwrap().to_owned();
    assert!(product_key.starts_with("sk_prod_") && product_key != acme.product_key);
    app.check_in(&acme.product_key, "editor", "SN-1").await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_eq!(app.check_in(&product_key, "editor", "SN-1").await.status, StatusCode::OK);

    let rotated = app.admin(Method::POST, "/settings/admin-key/rotate", &acme.admin_key).await.json();
    let admin_key = rotated["admin_key"].as_str().unwrap().to_owned();
    assert!(admin_key.starts_with("sk_admin_") && admin_key != acme.admin_key);
    app.admin(Method::GET, "/settings", &acme.admin_key).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_eq!(app.admin(Method::GET, "/settings", &admin_key).await.json()["product_key"], product_key.as_str());
}

async fn organizations_cannot_see_or_change_each_other(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let globex = app.org("globex", &[("other", 2, true)]).await;
    app.check_in(&acme.product_key, "editor", "ACME-1").await;
    app.check_in(&globex.product_key, "editor", "ACME-1").await.assert_error(StatusCode::NOT_FOUND, "unknown_product");

    let them = &globex.admin_key;
    assert_eq!(app.admin(Method::GET, "/devices", them).await.json()["items"], json!([]));
    assert_eq!(app.admin(Method::GET, "/products", them).await.json()["items"].as_array().unwrap().len(), 1);
    app.admin(Method::GET, "/devices/ACME-1", them).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    app.admin(Method::DELETE, "/devices/ACME-1", them).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    app.admin(Method::DELETE, "/devices/ACME-1/licenses/editor", them).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    app.admin(Method::GET, "/products/editor", them).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    app.admin(Method::GET, "/products/editor/devices", them).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    let patch = app.call(Method::PATCH, "/api/v1/admin/products/editor", Some(them), Some(json!({"auto_assign": false}))).await;
    patch.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    assert_eq!(app.admin(Method::POST, "/devices/ACME-1/ignore", them).await.status, StatusCode::OK, "their own list");
    assert_ne!(app.admin(Method::GET, "/settings", them).await.json()["product_key"], acme.product_key.as_str());

    let ours = app.admin(Method::GET, "/devices/ACME-1", &acme.admin_key).await.json();
    assert_eq!(ours["seats_assigned"], 1, "acme's device is untouched");
    assert_eq!(app.admin(Method::GET, "/products/editor", &acme.admin_key).await.json()["auto_assign"], true);
    assert_eq!(app.admin(Method::GET, "/ignored", &acme.admin_key).await.json()["items"], json!([]));
    assert_eq!(app.check_in(&acme.product_key, "editor", "ACME-1").await.json()["licensed"], true);
}

/// Every admin route, with a method that would change something where it can.
const ADMIN_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/products"),
    (Method::GET, "/products/editor"),
    (Method::PATCH, "/products/editor"),
    (Method::GET, "/products/editor/devices"),
    (Method::GET, "/products/editor/policy"),
    (Method::PATCH, "/products/editor/policy"),
    (Method::GET, "/devices"),
    (Method::GET, "/devices.csv"),
    (Method::GET, "/activity"),
    (Method::POST, "/bulk"),
    (Method::GET, "/activity.csv"),
    (Method::GET, "/devices/SN-1"),
    (Method::DELETE, "/devices/SN-1"),
    (Method::POST, "/devices/SN-1/ignore"),
    (Method::PUT, "/devices/SN-1/licenses/editor"),
    (Method::DELETE, "/devices/SN-1/licenses/editor"),
    (Method::GET, "/ignored"),
    (Method::DELETE, "/ignored/SN-1"),
    (Method::GET, "/settings"),
    (Method::POST, "/settings/product-key/rotate"),
    (Method::POST, "/settings/admin-key/rotate"),
];

async fn every_admin_route_refuses_product_keys_and_missing_keys(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, false)]).await;
    app.check_in(&acme.product_key, "editor", "SN-1").await;
    let body = Some(json!({"auto_assign": true}));
    for (method, route) in ADMIN_ROUTES {
        let uri = format!("/api/v1/admin{route}");
        for key in [Some(acme.product_key.as_str()), None, Some("sk_admin_nope")] {
            let reply = app.call(method.clone(), &uri, key, body.clone()).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {route} with {key:?}");
            reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
        }
    }
    // Nothing changed: the keys still work and the device is as it was.
    assert_eq!(app.check_in(&acme.product_key, "editor", "SN-1").await.json()["reason"], "auto_assign_disabled");
    let device = app.admin(Method::GET, "/devices/SN-1", &acme.admin_key).await;
    assert_eq!(device.status, StatusCode::OK);
}

async fn unknown_api_routes_answer_json_404(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    app.call(Method::GET, "/api/v1/nope", None, None).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    app.admin(Method::GET, "/nope", &acme.admin_key).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((health.status, &health.body[..]), (StatusCode::OK, &b"ok"[..]));
    let page = app.call(Method::GET, "/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("Administration API key") && html.contains("Sign in"), "signed out, / is the sign-in dialog");
}

async fn every_admin_route_with_another_organizations_key_leaves_this_one_alone(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, false)]).await;
    let globex = app.org("globex", &[]).await;
    app.check_in(&acme.product_key, "editor", "SN-1").await;
    app.admin(Method::PUT, "/devices/SN-1/licenses/editor", &acme.admin_key).await;
    app.admin(Method::POST, "/devices/SN-IGNORED/ignore", &acme.admin_key).await;
    async fn snapshot(app: &TestApp, key: &str) -> (Value, Value, usize, Value) {
        (
            app.admin(Method::GET, "/products", key).await.json(),
            app.admin(Method::GET, "/devices/SN-1", key).await.json(),
            app.admin(Method::GET, "/ignored", key).await.json()["items"].as_array().unwrap().len(),
            app.admin(Method::GET, "/settings", key).await.json()["product_key"].clone(),
        )
    }
    let acme_before = snapshot(&app, &acme.admin_key).await;
    let body = Some(json!({"auto_assign": true}));
    for (method, route) in ADMIN_ROUTES {
        let own_lists = ["/products", "/devices", "/devices.csv", "/ignored", "/activity", "/activity.csv", "/bulk"];
        if route.starts_with("/settings") || own_lists.contains(route) || route.ends_with("/ignore") {
            continue; // these act on the caller's own data (ignoring a serial puts it on the caller's own list)
        }
        let route = route.replace("SN-1", if route.starts_with("/ignored") { "SN-IGNORED" } else { "SN-1" });
        let body = if route.ends_with("/policy") { Some(json!({"license_days": 3})) } else { body.clone() };
        let reply = app.call(method.clone(), &format!("/api/v1/admin{route}"), Some(&globex.admin_key), body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {route} with globex's key: {}", String::from_utf8_lossy(&reply.body));
    }
    let ignored = app.admin(Method::POST, "/devices/SN-1/ignore", &globex.admin_key).await;
    assert_eq!(ignored.json(), json!({"serial": "SN-1", "deleted": false, "ignored": true}), "globex had no such device");
    app.admin(Method::DELETE, "/ignored/SN-1", &globex.admin_key).await;
    // Globex's own lists and settings show none of acme's data.
    for route in ["/products", "/devices", "/ignored"] {
        assert_eq!(app.admin(Method::GET, route, &globex.admin_key).await.json()["items"], json!([]), "{route}");
    }
    assert_ne!(app.admin(Method::GET, "/settings", &globex.admin_key).await.json()["product_key"], acme_before.3);
    assert_eq!(snapshot(&app, &acme.admin_key).await, acme_before, "acme is exactly as it was");
}
