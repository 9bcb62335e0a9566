//! `GET /api/v1/openapi.json` against the real router: the description names
//! every route the APIs answer and nothing else, and what the routes really
//! take and answer fits what it says, on both backends.
//!
//! The router and the description come from the same `#[utoipa::path]`
//! attributes, so a route cannot be in one and not the other; these tests
//! check what that cannot: that the schemas, statuses, parameters and limits
//! described are the ones the handlers use. Every request below is checked
//! against its operation's request schema and every answer against the schema
//! of its status, strictly (an answer's field the description does not name
//! fails), and every operation must be called successfully at least once.

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode, header};
use common::{Reply, TestApp, encode};
use serde_json::{Value, json};

on_both_backends!(every_operation_answers_as_described);

#[tokio::test]
async fn the_description_is_openapi_3_1_and_whole() {
    let app = TestApp::new(store::testing::TestDatabase::sqlite()).await;
    let reply = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    let doc = Doc(reply.json());
    assert_eq!(doc.0["openapi"], "3.1.0");
    assert_eq!(doc.0["info"]["version"], env!("CARGO_PKG_VERSION"));

    // Every reference resolves, every operation has its own id, a tag the
    // description lists, and only security schemes it defines.
    doc.each_ref(&doc.0, &mut |reference| assert!(doc.target(reference).is_some(), "{reference} resolves"));
    let tags: BTreeSet<&str> = doc.0["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    let schemes = doc.0["components"]["securitySchemes"].as_object().unwrap();
    let mut ids = BTreeSet::new();
    for (method, path, operation) in doc.operations() {
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has an id"));
        assert!(ids.insert(id), "{id} is used once");
        assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path} says what it does");
        for tag in operation["tags"].as_array().unwrap() {
            assert!(tags.contains(tag.as_str().unwrap()), "{method} {path}: tag {tag} is listed");
        }
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(scheme), "{method} {path}: scheme {scheme} is defined");
            }
        }
        // Every path parameter is described, and only those.
        let in_path: BTreeSet<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
        let described: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(in_path, described, "{method} {path}: path parameters");
    }
}

/// the contract of docs/contract.md and the features beyond it, as routes: each is in
/// the description. (The description has nothing more: see the next test.)
#[tokio::test]
async fn the_description_has_the_documented_routes_and_no_others() {
    let app = TestApp::new(store::testing::TestDatabase::sqlite()).await;
    let doc = Doc(app.call(Method::GET, "/api/v1/openapi.json", None, None).await.json());
    let described: BTreeSet<(String, String)> =
        doc.operations().map(|(method, path, _)| (method.to_string(), path.to_owned())).collect();
    let documented: BTreeSet<(String, String)> = [
        ("POST", "/api/v1/checkin"),
        ("POST", "/api/v1/checkin/release"),
        ("GET", "/api/v1/public-keys"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/admin/products"),
        ("GET", "/api/v1/admin/products/{code}"),
        ("PATCH", "/api/v1/admin/products/{code}"),
        ("GET", "/api/v1/admin/products/{code}/policy"),
        ("PATCH", "/api/v1/admin/products/{code}/policy"),
        ("GET", "/api/v1/admin/products/{code}/devices"),
        ("GET", "/api/v1/admin/products/{code}/usage"),
        ("GET", "/api/v1/admin/products/{code}/queue"),
        ("DELETE", "/api/v1/admin/products/{code}/queue/{serial}"),
        ("GET", "/api/v1/admin/devices"),
        ("GET", "/api/v1/admin/devices.csv"),
        ("GET", "/api/v1/admin/devices/{serial}"),
        ("DELETE", "/api/v1/admin/devices/{serial}"),
        ("POST", "/api/v1/admin/devices/{serial}/ignore"),
        ("PUT", "/api/v1/admin/devices/{serial}/licenses/{code}"),
        ("DELETE", "/api/v1/admin/devices/{serial}/licenses/{code}"),
        ("POST", "/api/v1/admin/bulk"),
        ("GET", "/api/v1/admin/activity"),
        ("GET", "/api/v1/admin/activity.csv"),
        ("GET", "/api/v1/admin/ignored"),
        ("DELETE", "/api/v1/admin/ignored/{serial}"),
        ("GET", "/api/v1/admin/settings"),
        ("POST", "/api/v1/admin/settings/product-key/rotate"),
        ("POST", "/api/v1/admin/settings/admin-key/rotate"),
        ("GET", "/api/v1/admin/webhooks"),
        ("POST", "/api/v1/admin/webhooks"),
        ("DELETE", "/api/v1/admin/webhooks/{id}"),
        ("GET", "/api/v1/admin/webhooks/{id}/deliveries"),
    ]
    .into_iter()
    .map(|(method, path)| (method.to_owned(), path.to_owned()))
    .collect();
    assert_eq!(described, documented);
}

/// Each described operation is answered by its route (a key-less request
/// meets the key check, not the API's 404), and every other method on a
/// described path is 405: the description leaves no method of a path out.
#[tokio::test]
async fn every_described_operation_is_routed_and_no_other_method_is() {
    let app = TestApp::new(store::testing::TestDatabase::sqlite()).await;
    let doc = Doc(app.call(Method::GET, "/api/v1/openapi.json", None, None).await.json());
    for (path, item) in doc.0["paths"].as_object().unwrap() {
        let uri = path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let reply = app.call(method.clone(), &uri, None, None).await;
            match item.get(method.as_str().to_ascii_lowercase()) {
                Some(operation) if operation.get("security").is_some() => {
                    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
                }
                Some(_) => assert_eq!(reply.status, StatusCode::OK, "{method} {uri} is public"),
                None => assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri} is not described"),
            }
        }
    }
}

/// Calls each operation as a script would, in a story that uses them all,
/// checking requests and answers against the description.
async fn every_operation_answers_as_described(app: TestApp) {
    let doc = Doc(app.call(Method::GET, "/api/v1/openapi.json", None, None).await.json());
    let acme = app.org("acme", &[("editor", 2, true), ("manual", 1, false), ("floating", 1, true)]).await;
    let mut api = Described { app: &app, doc: &doc, called: BTreeSet::new() };
    let admin = Some(acme.admin_key.as_str());
    let product = Some(acme.product_key.as_str());
    use Method as M;

    // The public API: a licensed answer (with a license), a denied one, errors.
    let checkin = "/api/v1/checkin";
    let licensed = api.call(M::POST, checkin, &[], "", product, Some(json!({"product": "editor", "serial": "SN-1", "nonce": "n-1"}))).await;
    assert!(licensed.json()["license"].is_string());
    api.call(M::POST, checkin, &[], "", product, Some(json!({"product": "editor", "serial": "SN-2"}))).await;
    let denied = api.call(M::POST, checkin, &[], "", product, Some(json!({"product": "manual", "serial": "SN-1"}))).await;
    assert_eq!(denied.json()["reason"], "auto_assign_disabled");
    api.call(M::POST, checkin, &[], "", product, Some(json!({"product": "nope", "serial": "SN-1"}))).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    api.call(M::POST, checkin, &[], "", product, Some(json!({"product": "editor", "serial": ""}))).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.call(M::POST, checkin, &[], "", admin, Some(json!({"product": "editor", "serial": "SN-1"}))).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    api.call(M::GET, "/api/v1/public-keys", &[], "", None, None).await;
    api.call(M::GET, "/api/v1/openapi.json", &[], "", None, None).await;

    // Products and their policies.
    let admin_api = |path: &str| format!("/api/v1/admin{path}");
    api.call(M::GET, &admin_api("/products"), &[], "", admin, None).await;
    api.call(M::GET, &admin_api("/products/{code}"), &["editor"], "", admin, None).await;
    api.call(M::GET, &admin_api("/products/{code}"), &["nope"], "", admin, None).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    api.call(M::PATCH, &admin_api("/products/{code}"), &["manual"], "", admin, Some(json!({"auto_assign": true}))).await;
    api.call(M::PATCH, &admin_api("/products/{code}"), &["manual"], "", admin, Some(json!({"auto_assign": "yes"}))).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.call(M::GET, &admin_api("/products/{code}/policy"), &["editor"], "", admin, None).await;
    let policy = api.call(M::PATCH, &admin_api("/products/{code}/policy"), &["editor"], "", admin, Some(json!({"license_days": 3, "reclaim_after_days": 30}))).await;
    assert_eq!(policy.json(), json!({"license_days": 3, "reclaim_after_days": 30, "seat_model": "assigned", "lease_minutes": 20, "alert_at_percent": null}));
    // A floating product: a lease on the answer, a seat given back.
    api.call(M::PATCH, &admin_api("/products/{code}/policy"), &["floating"], "", admin, Some(json!({"seat_model": "floating", "lease_minutes": 5}))).await;
    let leased = api.call(M::POST, checkin, &[], "", product, Some(json!({"product": "floating", "serial": "SN-1"}))).await.json();
    assert!(leased["lease_expires_at"].is_string(), "{leased}");
    api.call(M::GET, &admin_api("/products/{code}/devices"), &["floating"], "", admin, None).await;
    let release = "/api/v1/checkin/release";
    let released = api.call(M::POST, release, &[], "", product, Some(json!({"product": "floating", "serial": "SN-1"}))).await;
    assert_eq!(released.json(), json!({"released": true}));
    api.call(M::POST, release, &[], "", product, Some(json!({"product": "nope", "serial": "SN-1"}))).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    api.call(M::POST, release, &[], "", product, Some(json!({"product": "floating"}))).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.call(M::POST, release, &[], "", admin, Some(json!({"product": "floating", "serial": "SN-1"}))).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    // The waiting line: a place on the refusal, the line, a removal.
    api.call(M::POST, checkin, &[], "", product, Some(json!({"product": "floating", "serial": "SN-2"}))).await;
    let waiting = api.call(M::POST, checkin, &[], "", product, Some(json!({"product": "floating", "serial": "SN-3", "queue": true}))).await.json();
    assert_eq!(waiting["queue_position"], 1, "{waiting}");
    let usage = api.call(M::GET, &admin_api("/products/{code}/usage"), &["floating"], "days=7", admin, None).await.json();
    assert_eq!(usage["days"][0]["refused"], 1, "{usage}");
    api.call(M::GET, &admin_api("/products/{code}/usage"), &["floating"], "days=0", admin, None).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let line = api.call(M::GET, &admin_api("/products/{code}/queue"), &["floating"], "", admin, None).await.json();
    assert_eq!(line["items"][0]["serial"], "SN-3");
    api.call(M::GET, &admin_api("/products/{code}/queue"), &["nope"], "", admin, None).await.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    let removed = api.call(M::DELETE, &admin_api("/products/{code}/queue/{serial}"), &["floating", "SN-3"], "", admin, None).await;
    assert_eq!(removed.json(), json!({"removed": true}));
    api.call(M::PATCH, &admin_api("/products/{code}/policy"), &["editor"], "", admin, Some(json!({"reclaim_after_days": null}))).await;
    api.call(M::PATCH, &admin_api("/products/{code}/policy"), &["editor"], "", admin, Some(json!({"license_days": 0}))).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.call(M::GET, &admin_api("/products/{code}/devices"), &["editor"], "limit=1", admin, None).await;

    // Devices: lists, a search, one device, CSV, assign and unassign.
    let page = api.call(M::GET, &admin_api("/devices"), &[], "limit=1", admin, None).await.json();
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    api.call(M::GET, &admin_api("/devices"), &[], &format!("cursor={cursor}&q=sn"), admin, None).await;
    api.call(M::GET, &admin_api("/devices"), &[], "limit=0", admin, None).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.call(M::GET, &admin_api("/devices.csv"), &[], "q=SN", admin, None).await;
    api.call(M::GET, &admin_api("/devices/{serial}"), &["SN-1"], "", admin, None).await;
    api.call(M::GET, &admin_api("/devices/{serial}"), &["SN-9"], "", admin, None).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    api.call(M::PUT, &admin_api("/devices/{serial}/licenses/{code}"), &["SN-1", "manual"], "", admin, None).await;
    api.call(M::PUT, &admin_api("/devices/{serial}/licenses/{code}"), &["SN-2", "manual"], "", admin, None).await.assert_error(StatusCode::CONFLICT, "no_seats_available");
    api.call(M::DELETE, &admin_api("/devices/{serial}/licenses/{code}"), &["SN-1", "manual"], "", admin, None).await;
    let outcome = api.call(M::POST, &admin_api("/bulk"), &[], "", admin, Some(json!({"action": "assign", "product": "manual", "serials": ["SN-1", "SN-2", "SN-9"]}))).await;
    assert_eq!(outcome.json()["done"], 1);
    api.call(M::POST, &admin_api("/bulk"), &[], "", admin, Some(json!({"action": "unassign", "product": "manual", "matching": "SN"}))).await;
    api.call(M::POST, &admin_api("/bulk"), &[], "", admin, Some(json!({"action": "delete"}))).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    // Ignore, the ignore list, unignore, delete.
    api.call(M::POST, &admin_api("/devices/{serial}/ignore"), &["SN-2"], "", admin, None).await;
    api.call(M::POST, &admin_api("/devices/{serial}/ignore"), &["SN 3/odd"], "", admin, None).await;
    api.call(M::GET, &admin_api("/ignored"), &[], "limit=1", admin, None).await;
    api.call(M::DELETE, &admin_api("/ignored/{serial}"), &["SN 3/odd"], "", admin, None).await;
    api.call(M::DELETE, &admin_api("/ignored/{serial}"), &["SN 3/odd"], "", admin, None).await.assert_error(StatusCode::NOT_FOUND, "not_ignored");
    api.call(M::DELETE, &admin_api("/devices/{serial}"), &["SN-1"], "", admin, None).await;
    api.call(M::DELETE, &admin_api("/devices/{serial}"), &["SN-1"], "", admin, None).await.assert_error(StatusCode::NOT_FOUND, "unknown_device");

    // The audit log of all of the above.
    let log = api.call(M::GET, &admin_api("/activity"), &[], "limit=2&actor=admin_api", admin, None).await.json();
    let cursor = log["next_cursor"].as_str().expect("more than two changes").to_owned();
    api.call(M::GET, &admin_api("/activity"), &[], &format!("cursor={cursor}&kind=seat_assigned&since=2020-01-01"), admin, None).await;
    api.call(M::GET, &admin_api("/activity"), &[], "kind=nope", admin, None).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.call(M::GET, &admin_api("/activity.csv"), &[], "product=editor", admin, None).await;

    // Webhooks: one added, listed, its deliveries, deleted.
    let hook = json!({"url": "https://hooks.example.com/seatkeeper", "events": ["seat.assigned", "device.deleted"]});
    let added = api.call(M::POST, &admin_api("/webhooks"), &[], "", admin, Some(hook)).await.json();
    assert!(added["secret"].as_str().is_some_and(|secret| secret.starts_with("whsec_")), "{added}");
    let id = added["id"].to_string();
    api.call(M::POST, &admin_api("/webhooks"), &[], "", admin, Some(json!({"url": "https://127.0.0.1/", "events": ["seat.assigned"]}))).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    api.call(M::GET, &admin_api("/webhooks"), &[], "", admin, None).await;
    api.call(M::GET, &admin_api("/webhooks/{id}/deliveries"), &[&id], "limit=10", admin, None).await;
    api.call(M::DELETE, &admin_api("/webhooks/{id}"), &[&id], "", admin, None).await;
    api.call(M::DELETE, &admin_api("/webhooks/{id}"), &[&id], "", admin, None).await.assert_error(StatusCode::NOT_FOUND, "unknown_webhook");

    // Settings, and the keys turned over.
    api.call(M::GET, &admin_api("/settings"), &[], "", admin, None).await;
    api.call(M::POST, &admin_api("/settings/product-key/rotate"), &[], "", admin, None).await;
    let rotated = api.call(M::POST, &admin_api("/settings/admin-key/rotate"), &[], "", admin, None).await.json();
    api.call(M::GET, &admin_api("/settings"), &[], "", admin, None).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    api.call(M::GET, &admin_api("/settings"), &[], "", rotated["admin_key"].as_str(), None).await;

    // The limits the description states are the server's.
    let limit = &doc.parameter("get", "/api/v1/admin/devices", "limit")["schema"];
    let (min, max) = (limit["minimum"].as_u64().unwrap(), limit["maximum"].as_u64().unwrap());
    let key = rotated["admin_key"].as_str();
    for (value, fits) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
        let reply = api.call(M::GET, &admin_api("/devices"), &[], &format!("limit={value}"), key, None).await;
        assert_eq!(reply.status.is_success(), fits, "limit={value}");
    }

    let policy = &doc.0["components"]["schemas"]["PolicyUpdate"]["properties"];
    for field in ["license_days", "reclaim_after_days", "lease_minutes", "alert_at_percent"] {
        let (min, max) = (policy[field]["minimum"].as_i64().unwrap(), policy[field]["maximum"].as_i64().unwrap());
        for (value, fits) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
            let body = json!({ field: value });
            let reply = api.call(M::PATCH, &admin_api("/products/{code}/policy"), &["editor"], "", key, Some(body)).await;
            assert_eq!(reply.status.is_success(), fits, "{field} = {value}");
        }
    }

    let every: BTreeSet<String> = doc.operations().map(|(method, path, _)| format!("{method} {path}")).collect();
    let missed: Vec<&String> = every.difference(&api.called).collect();
    assert!(missed.is_empty(), "operations never answered with success here: {missed:?}");
}

/// The test app, with each call checked against the description.
struct Described<'a> {
    app: &'a TestApp,
    doc: &'a Doc,
    /// Operations answered with a success, as `METHOD /path/{template}`.
    called: BTreeSet<String>,
}

impl Described<'_> {
    /// Calls the operation at `template`, its `{parameters}` filled in order
    /// with `args` (percent-encoded), and checks both ways.
    async fn call(&mut self, method: Method, template: &str, args: &[&str], query: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        let name = format!("{method} {template}");
        let operation = self.doc.operation(method.as_str(), template).unwrap_or_else(|| panic!("{name} is described"));
        let mut args = args.iter();
        let mut uri = template
            .split('/')
            .map(|segment| match segment.starts_with('{') {
                true => encode(args.next().unwrap_or_else(|| panic!("an argument for {segment}"))),
                false => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        if !query.is_empty() {
            uri = format!("{uri}?{query}");
        }
        // Whether the body fits the described request schema: a body that
        // does not must be refused, so whatever is accepted fits.
        let fits = body.as_ref().map(|body| {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            assert!(!schema.is_null(), "{name} describes a JSON body");
            self.doc.check(schema, body, Strict::No).is_empty()
        });
        let reply = self.app.call(method.clone(), &uri, key, body.clone()).await;
        if fits == Some(false) {
            assert!(reply.status.is_client_error(), "{name} took a body its schema does not allow: {body:?}");
        }
        let status = reply.status.as_u16().to_string();
        let response = &operation["responses"][&status];
        assert!(!response.is_null(), "{name} answered {status}, which is not described: {}", String::from_utf8_lossy(&reply.body));
        let content = response["content"].as_object().unwrap_or_else(|| panic!("{name} {status} describes its content"));
        let content_type = reply.headers[header::CONTENT_TYPE].to_str().unwrap();
        let essence = content_type.split(';').next().unwrap().trim();
        let media = content.get(essence).unwrap_or_else(|| panic!("{name} {status} answered {essence}, described: {:?}", content.keys()));
        if essence == "application/json" {
            let errors = self.doc.check(&media["schema"], &reply.json(), Strict::Yes);
            let answer: String = reply.json().to_string().chars().take(2000).collect();
            assert!(errors.is_empty(), "{name} {status} fits its schema: {errors:#?}\n{answer}");
        }
        if reply.status.is_success() {
            self.called.insert(name);
        }
        reply
    }
}

/// Whether objects may have fields their schemas do not name. Answers may
/// not: a field the description forgets is drift.
#[derive(Clone, Copy, PartialEq)]
enum Strict {
    Yes,
    No,
}

/// The served description, and a checker for the part of JSON Schema it uses.
struct Doc(Value);

impl Doc {
    fn operations(&self) -> impl Iterator<Item = (String, &str, &Value)> {
        self.0["paths"].as_object().unwrap().iter().flat_map(|(path, item)| {
            item.as_object().unwrap().iter().map(move |(method, operation)| (method.to_ascii_uppercase(), path.as_str(), operation))
        })
    }

    fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        self.0["paths"].get(path)?.get(method.to_ascii_lowercase())
    }

    fn parameter(&self, method: &str, path: &str, name: &str) -> &Value {
        let operation = self.operation(method, path).unwrap();
        operation["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()
    }

    fn target(&self, reference: &str) -> Option<&Value> {
        self.0.pointer(reference.strip_prefix('#')?)
    }

    fn each_ref(&self, value: &Value, f: &mut impl FnMut(&str)) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    f(reference);
                }
                map.values().for_each(|v| self.each_ref(v, f));
            }
            Value::Array(items) => items.iter().for_each(|v| self.each_ref(v, f)),
            _ => {}
        }
    }

    /// What is wrong with `value` as an instance of `schema`; empty if nothing.
    fn check(&self, schema: &Value, value: &Value, strict: Strict) -> Vec<String> {
        let mut errors = Vec::new();
        self.check_at("$", schema, value, strict, false, &mut errors);
        errors
    }

    /// `part`: the schema is one part of an `allOf`.
    fn check_at(&self, at: &str, schema: &Value, value: &Value, strict: Strict, part: bool, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else { panic!("{at}: a schema is an object: {schema}") };
        for keyword in keywords.keys() {
            const KNOWN: &[&str] = &[
                "type", "enum", "format", "minimum", "maximum", "properties", "required", "additionalProperties",
                "propertyNames", "items", "allOf", "oneOf", "anyOf", "$ref", "description", "title", "default", "examples",
                "pattern", "minLength", "maxLength", "minItems", "maxItems", "minProperties", "not",
            ];
            assert!(KNOWN.contains(&keyword.as_str()), "{at}: the checker does not know {keyword:?}; teach it");
        }
        if let Some(Value::String(reference)) = keywords.get("$ref") {
            let target = self.target(reference).unwrap_or_else(|| panic!("{reference} resolves"));
            self.check_at(at, target, value, strict, part, errors);
        }
        for each in keywords.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.check_at(at, each, value, strict, true, errors);
        }
        if let Some(parts) = keywords.get("oneOf").and_then(Value::as_array) {
            let fits = parts.iter().filter(|part| self.check(part, value, strict).is_empty()).count();
            if fits != 1 {
                errors.push(format!("{at}: fits {fits} of oneOf, not exactly 1"));
            }
        }
        if let Some(part) = keywords.get("not")
            && self.check(part, value, Strict::No).is_empty()
        {
            errors.push(format!("{at}: fits what `not` excludes: {part}"));
        }
        if let Some(parts) = keywords.get("anyOf").and_then(Value::as_array)
            && !parts.iter().any(|part| self.check(part, value, strict).is_empty())
        {
            errors.push(format!("{at}: fits none of anyOf"));
        }
        if let Some(types) = keywords.get("type") {
            let types: Vec<&str> = match types {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().map(|t| t.as_str().unwrap()).collect(),
                other => panic!("{at}: type {other}"),
            };
            let fits = |t: &str| match t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                other => panic!("{at}: unknown type {other}"),
            };
            if !types.iter().any(|t| fits(t)) {
                errors.push(format!("{at}: {value} is not {types:?}"));
                return;
            }
        }
        if let Some(allowed) = keywords.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let (Some("date-time"), Some(text)) = (keywords.get("format").and_then(Value::as_str), value.as_str())
            && chrono::DateTime::parse_from_rfc3339(text).is_err()
        {
            errors.push(format!("{at}: {text:?} is not an RFC 3339 time"));
        }
        if let Some(text) = value.as_str() {
            let chars = text.chars().count() as u64;
            if let Some(pattern) = keywords.get("pattern").and_then(Value::as_str) {
                let regex = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{at}: pattern {pattern:?}: {e}"));
                if !regex.is_match(text) {
                    errors.push(format!("{at}: {text:?} does not match {pattern:?}"));
                }
            }
            if keywords.get("minLength").and_then(Value::as_u64).is_some_and(|min| chars < min) {
                errors.push(format!("{at}: {text:?} is shorter than minLength"));
            }
            if keywords.get("maxLength").and_then(Value::as_u64).is_some_and(|max| chars > max) {
                errors.push(format!("{at}: {text:?} is longer than maxLength"));
            }
        }
        if let Value::Array(items) = value {
            if keywords.get("minItems").and_then(Value::as_u64).is_some_and(|min| (items.len() as u64) < min) {
                errors.push(format!("{at}: fewer items than minItems"));
            }
            if keywords.get("maxItems").and_then(Value::as_u64).is_some_and(|max| (items.len() as u64) > max) {
                errors.push(format!("{at}: more items than maxItems"));
            }
        }
        if let Value::Object(fields) = value
            && keywords.get("minProperties").and_then(Value::as_u64).is_some_and(|min| (fields.len() as u64) < min)
        {
            errors.push(format!("{at}: fewer fields than minProperties"));
        }
        if let Some(number) = value.as_f64() {
            if keywords.get("minimum").and_then(Value::as_f64).is_some_and(|min| number < min) {
                errors.push(format!("{at}: {number} is below the minimum"));
            }
            if keywords.get("maximum").and_then(Value::as_f64).is_some_and(|max| number > max) {
                errors.push(format!("{at}: {number} is above the maximum"));
            }
        }
        if let Value::Array(items) = value
            && let Some(item_schema) = keywords.get("items")
        {
            for (i, item) in items.iter().enumerate() {
                self.check_at(&format!("{at}[{i}]"), item_schema, item, strict, false, errors);
            }
        }
        if let Value::Object(fields) = value {
            // A part of an `allOf` names only some of the fields; the whole
            // is checked for the others.
            let here = if part { Strict::No } else { strict };
            self.check_object(at, keywords, fields, strict, here, errors);
        }
    }

    fn check_object(&self, at: &str, keywords: &serde_json::Map<String, Value>, fields: &serde_json::Map<String, Value>, strict: Strict, here: Strict, errors: &mut Vec<String>) {
        for name in keywords.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !fields.contains_key(name.as_str().unwrap()) {
                errors.push(format!("{at}: required field {name} is missing"));
            }
        }
        let properties = keywords.get("properties").and_then(Value::as_object);
        for (name, field) in fields {
            let at = format!("{at}.{name}");
            match (properties.and_then(|p| p.get(name)), keywords.get("additionalProperties")) {
                (Some(schema), _) => self.check_at(&at, schema, field, strict, false, errors),
                (None, Some(Value::Bool(false))) => errors.push(format!("{at}: not allowed")),
                (None, Some(schema @ Value::Object(_))) => self.check_at(&at, schema, field, strict, false, errors),
                (None, _) if here == Strict::Yes && !self.names(keywords, name) => {
                    errors.push(format!("{at}: answered but not described"));
                }
                (None, _) => {}
            }
        }
    }

    /// Whether a schema (with its `allOf` parts) names a field. One that
    /// describes no fields at all (`{"type": "object"}`) allows any.
    fn names(&self, keywords: &serde_json::Map<String, Value>, name: &str) -> bool {
        let free_form = ["properties", "additionalProperties", "allOf"].iter().all(|k| !keywords.contains_key(*k));
        free_form
            || keywords.get("properties").and_then(Value::as_object).is_some_and(|p| p.contains_key(name))
            || keywords.get("additionalProperties").is_some_and(|a| a != &Value::Bool(false))
            || keywords
                .get("allOf")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|part| self.resolve(part).as_object())
                .any(|part| self.names(part, name))
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) if schema.as_object().is_some_and(|s| s.len() == 1) => {
                self.resolve(self.target(reference).unwrap_or_else(|| panic!("{reference} resolves")))
            }
            _ => schema,
        }
    }
}
