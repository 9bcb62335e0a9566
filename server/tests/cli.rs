//! The operator's command line, run as the real `seatkeeper` binary, alone and
//! beside a running server on the same database.

mod common;

use std::process::{Command, Output};

use common::process::{Server, bin, check_in, json_of, seatkeeper};
use serde_json::{Value, json};
use store::testing::TestDatabase;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn sqlite_operator_commands_manage_organizations_products_and_keys() {
    operator_commands_manage_organizations_products_and_keys(TestDatabase::sqlite());
}

#[tokio::test]
async fn postgres_operator_commands_manage_organizations_products_and_keys() {
    if let Some(db) = TestDatabase::postgres().await {
        operator_commands_manage_organizations_products_and_keys(db);
    }
}

fn operator_commands_manage_organizations_products_and_keys(db: TestDatabase) {
    let created = json_of(&db, &["org", "create", "Acme Corp"]);
    assert_eq!(created["name"], "Acme Corp");
    let admin_key = created["admin_key"].as_str().unwrap();
    let product_key = created["product_key"].as_str().unwrap();
    assert!(admin_key.starts_with("sk_admin_") && product_key.starts_with("sk_prod_"));

    let human = seatkeeper(&db, &["org", "create", "Globex"]);
    assert!(human.status.success());
    let text = stdout(&human);
    assert!(text.contains("Globex") && text.contains("sk_admin_") && text.contains("sk_prod_"), "{text}");

    let product = json_of(&db, &["product", "add", "--org", "Acme Corp", "--code", "editor", "--name", "Editor Pro", "--seats", "3", "--auto-assign"]);
    assert_eq!(
        product,
        json!({"organization": "Acme Corp", "code": "editor", "name": "Editor Pro", "seats": 3, "assigned": 0, "available": 3, "auto_assign": true})
    );
    let manual = json_of(&db, &["product", "add", "--org", "Acme Corp", "--code", "viewer", "--name", "Viewer", "--seats", "0"]);
    assert_eq!(manual["auto_assign"], false);

    let seats = json_of(&db, &["product", "set-seats", "--org", "Acme Corp", "--code", "editor", "--seats", "10"]);
    assert_eq!((&seats["seats"], &seats["available"]), (&json!(10), &json!(10)));

    let listed = json_of(&db, &["org", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!((&listed[0]["name"], &listed[0]["products"]), (&json!("Acme Corp"), &json!(2)));
    assert!(stdout(&seatkeeper(&db, &["org", "list"])).contains("Globex"));

    let rotated = json_of(&db, &["keys", "rotate", "--org", "Acme Corp", "--product"]);
    let new_product_key = rotated["product_key"].as_str().unwrap();
    assert!(new_product_key.starts_with("sk_prod_") && new_product_key != product_key);
    assert!(rotated.get("admin_key").is_none());
    let rotated = json_of(&db, &["keys", "rotate", "--org", "Acme Corp", "--admin"]);
    assert!(rotated["admin_key"].as_str().unwrap().starts_with("sk_admin_"));
}

#[test]
fn operator_mistakes_fail_clearly_and_change_nothing() {
    let db = TestDatabase::sqlite();
    json_of(&db, &["org", "create", "acme"]);
    json_of(&db, &["product", "add", "--org", "acme", "--code", "editor", "--name", "Editor", "--seats", "2"]);

    let cases: &[(&[&str], &str)] = &[
        (&["org", "create", "acme"], "already exists"),
        (&["product", "add", "--org", "nobody", "--code", "x", "--name", "X", "--seats", "1"], "no organization named \"nobody\""),
        (&["product", "add", "--org", "acme", "--code", "Bad Code", "--name", "X", "--seats", "1"], "product code"),
        (&["product", "add", "--org", "acme", "--code", "editor", "--name", "Again", "--seats", "1"], "already exists"),
        (&["product", "set-seats", "--org", "acme", "--code", "editor", "--seats", "-3"], "seats"),
        (&["product", "set-seats", "--org", "acme", "--code", "nope", "--seats", "3"], "no product"),
        (&["keys", "rotate", "--org", "nobody", "--admin"], "no organization"),
    ];
    for (args, message) in cases {
        let output = seatkeeper(&db, args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let output = seatkeeper(&db, &["product", "set-seats", "--org", "acme", "--code", "nope", "--seats", "3", "--json"]);
    let error: Value = serde_json::from_slice(&output.stdout).expect("a JSON error");
    assert_eq!(error["error"]["code"], "unknown_product");

    for usage in [&["keys", "rotate", "--org", "acme"][..], &["keys", "rotate", "--org", "acme", "--admin", "--product"], &["product", "add", "--org", "acme"], &["fly"]] {
        assert_eq!(seatkeeper(&db, usage).status.code(), Some(2), "{usage:?} is a usage error");
    }
    let product = json_of(&db, &["product", "set-seats", "--org", "acme", "--code", "editor", "--seats", "2"]);
    assert_eq!((&product["name"], &product["seats"]), (&json!("Editor"), &json!(2)), "nothing changed");
    let bad_url = Command::new(bin()).args(["org", "list"]).env("DATABASE_URL", "mysql://nowhere").output().unwrap();
    assert_eq!(bad_url.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("sqlite:"));
}

#[tokio::test]
async fn sqlite_a_running_server_honours_operator_changes_at_once() {
    a_running_server_honours_operator_changes_at_once(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn postgres_a_running_server_honours_operator_changes_at_once() {
    if let Some(db) = TestDatabase::postgres().await {
        a_running_server_honours_operator_changes_at_once(db).await;
    }
}

async fn a_running_server_honours_operator_changes_at_once(db: TestDatabase) {
    let server = Server::start(&db);
    let default = json_of(&db, &["org", "list"]);
    assert_eq!(default[0]["name"], "default", "the first start creates the default organization");

    let acme = json_of(&db, &["org", "create", "acme"]);
    let key = acme["product_key"].as_str().unwrap().to_owned();
    let (status, body) = check_in(&server.base, &key, "editor", "SN-1").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("unknown_product")));

    json_of(&db, &["product", "add", "--org", "acme", "--code", "editor", "--name", "Editor", "--seats", "1", "--auto-assign"]);
    assert_eq!(check_in(&server.base, &key, "editor", "SN-1").await.1["licensed"], true);
    assert_eq!(check_in(&server.base, &key, "editor", "SN-2").await.1["reason"], "no_seats_available");

    json_of(&db, &["product", "set-seats", "--org", "acme", "--code", "editor", "--seats", "2"]);
    assert_eq!(check_in(&server.base, &key, "editor", "SN-2").await.1["licensed"], true);

    // The server now remembers the key (it skips the lookup while the
    // database is unchanged); the operator's rotation must still end it.
    for _ in 0..3 {
        assert_eq!(check_in(&server.base, &key, "editor", "SN-1").await.1["licensed"], true);
    }
    let rotated = json_of(&db, &["keys", "rotate", "--org", "acme", "--product"]);
    assert_eq!(check_in(&server.base, &key, "editor", "SN-1").await.0, 401);
    let key = rotated["product_key"].as_str().unwrap().to_owned();
    assert_eq!(check_in(&server.base, &key, "editor", "SN-1").await.0, 200);

    let printed = server.stop();
    assert!(printed.contains("sk_admin_") && printed.contains("sk_prod_"), "first start prints the default keys: {printed:?}");
    let demo_key = printed.split_whitespace().find(|w| w.starts_with("sk_prod_")).unwrap().to_owned();

    let again = Server::start(&db);
    let (status, body) = check_in(&again.base, &demo_key, "demo", "NEWCOMER").await;
    assert_eq!((status, &body["licensed"]), (200, &json!(true)), "the demo product and its key work");
    assert_eq!(check_in(&again.base, &key, "editor", "SN-2").await.1["licensed"], true, "nothing was lost");
    let printed = again.stop();
    assert!(!printed.contains("sk_"), "keys are printed only on the very first start: {printed:?}");
}

#[tokio::test]
async fn sqlite_the_operator_rotates_the_signing_key_beside_a_running_server() {
    the_operator_rotates_the_signing_key_beside_a_running_server(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn postgres_the_operator_rotates_the_signing_key_beside_a_running_server() {
    if let Some(db) = TestDatabase::postgres().await {
        the_operator_rotates_the_signing_key_beside_a_running_server(db).await;
    }
}

async fn the_operator_rotates_the_signing_key_beside_a_running_server(db: TestDatabase) {
    let none = seatkeeper(&db, &["signing-key", "list"]);
    assert!(stdout(&none).contains("No signing key yet"), "{}", stdout(&none));

    let server = Server::start(&db);
    let listed = json_of(&db, &["signing-key", "list"]);
    let first = listed[0]["kid"].as_str().expect("the first start made a key").to_owned();
    assert_eq!((listed.as_array().unwrap().len(), &listed[0]["active"]), (1, &json!(true)));
    assert!(listed[0].get("secret").is_none() && !listed.to_string().contains("secret"));

    let acme = json_of(&db, &["org", "create", "acme"]);
    json_of(&db, &["product", "add", "--org", "acme", "--code", "editor", "--name", "Editor", "--seats", "1", "--auto-assign"]);
    let key = acme["product_key"].as_str().unwrap();
    let kid_of = |answer: &Value| {
        use base64::Engine;
        let header = answer["license"].as_str().expect("a license").split('.').next().unwrap().to_owned();
        let header: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    assert_eq!(kid_of(&check_in(&server.base, key, "editor", "SN-1").await.1), first);

    let rotated = json_of(&db, &["signing-key", "rotate"]);
    let second = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let human = stdout(&seatkeeper(&db, &["signing-key", "list"]));
    assert!(human.contains(&second) && human.contains("active") && human.contains("retired"), "{human}");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(kid_of(&check_in(&server.base, key, "editor", "SN-1").await.1), second, "the server switched within a second");
    let published: Value = reqwest::get(format!("{}/api/v1/public-keys", server.base)).await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = published["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [second.as_str(), first.as_str()]);
    server.stop();
}

#[tokio::test]
async fn keys_and_session_ids_never_reach_the_log() {
    use app::auth::SignIn;
    use leptos::server_fn::ServerFn;

    let db = TestDatabase::sqlite();
    let acme = json_of(&db, &["org", "create", "acme"]);
    json_of(&db, &["product", "add", "--org", "acme", "--code", "editor", "--name", "Editor", "--seats", "2", "--auto-assign"]);
    let (admin_key, product_key) = (acme["admin_key"].as_str().unwrap(), acme["product_key"].as_str().unwrap());
    let server = Server::start_logging(&db, "trace");
    let client = reqwest::Client::new();

    check_in(&server.base, product_key, "editor", "SN-1").await;
    check_in(&server.base, "sk_prod_000000000000000000000000000000000000000000000000", "editor", "SN-1").await;
    let devices = client.get(format!("{}/api/v1/admin/devices", server.base)).bearer_auth(admin_key).send().await.unwrap();
    assert_eq!(devices.status(), 200);
    let signed_in = client
        .post(format!("{}{}", server.base, SignIn::PATH))
        .header("accept", "application/json")
        .header("origin", &server.base)
        .form(&[("key", admin_key), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().trim_start_matches("seatkeeper_session=").to_owned();
    let page = client.get(format!("{}/devices", server.base)).header("cookie", format!("seatkeeper_session={session}")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("SN-1"), "the session works");
    let rotated: Value = client
        .post(format!("{}/api/v1/admin/settings/product-key/rotate", server.base))
        .bearer_auth(admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let log = server.log.clone();
    server.stop();
    let log = log.lock().unwrap().clone();
    assert!(log.len() > 1000, "the trace log is not empty ({} bytes)", log.len());
    for secret in [admin_key, product_key, session.as_str(), rotated["product_key"].as_str().unwrap()] {
        assert!(!log.contains(secret), "a secret ({}…) is in the log", &secret[..12]);
    }
}

/// A SQLite database is served by one process (its check-in memory would
/// not see another server's changes); a second server is refused clearly and
/// the first keeps serving. PostgreSQL takes any number (tests/resilience.rs).
#[tokio::test]
async fn a_second_server_on_one_sqlite_database_is_refused() {
    let db = TestDatabase::sqlite();
    let first = Server::start(&db);
    let second = Command::new(bin())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run seatkeeper");
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("another Seatkeeper server is serving"), "{said}");
    let health = reqwest::get(format!("{}/healthz", first.base)).await.unwrap();
    assert_eq!(health.status(), 200);
    first.stop();

    // The lock goes with the process.
    let again = Server::start(&db);
    again.stop();
}

#[tokio::test]
async fn sqlite_signing_keys_are_sealed_with_a_secrets_key_file() {
    signing_keys_are_sealed_with_a_secrets_key_file(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn postgres_signing_keys_are_sealed_with_a_secrets_key_file() {
    let Some(db) = TestDatabase::postgres().await else { return };
    signing_keys_are_sealed_with_a_secrets_key_file(db).await;
}

/// `--secrets-key-file`: a server started with it seals the key it made
/// before, `signing-key rotate` makes sealed keys, a server without the file
/// refuses to start rather than fail at the first license, and a file that
/// is missing or malformed is a clear error.
async fn signing_keys_are_sealed_with_a_secrets_key_file(db: TestDatabase) {
    let folder = tempfile::tempdir().unwrap();
    let key_file = folder.path().join("secrets.key");
    std::fs::write(&key_file, format!("{}\n", "5a".repeat(32))).unwrap();
    let key_file = key_file.to_str().unwrap();
    let acme = json_of(&db, &["org", "create", "acme"]);
    json_of(&db, &["product", "add", "--org", "acme", "--code", "editor", "--name", "Editor", "--seats", "2", "--auto-assign"]);
    let product_key = acme["product_key"].as_str().unwrap();

    Server::start(&db).stop(); // makes the first key, in the clear
    assert_eq!(json_of(&db, &["signing-key", "list"])[0]["sealed"], false);
    let server = Server::start_with(&db, "info", &["--secrets-key-file", key_file]);
    let (status, answer) = check_in(&server.base, product_key, "editor", "SN-1").await;
    assert_eq!((status, &answer["licensed"]), (200, &json!(true)));
    server.stop();
    assert_eq!(json_of(&db, &["signing-key", "list"])[0]["sealed"], true, "sealed at the first start with the file");
    let rotated = json_of(&db, &["signing-key", "rotate", "--secrets-key-file", key_file]);
    assert_eq!(rotated["sealed"], true);

    let without = Command::new(bin()).args(["serve", "--addr", "127.0.0.1:0"]).env("DATABASE_URL", &db.url).output().unwrap();
    assert!(!without.status.success());
    let said = String::from_utf8_lossy(&without.stderr);
    assert!(said.contains("is sealed") && said.contains("--secrets-key-file"), "{said}");

    let missing = seatkeeper(&db, &["--secrets-key-file", "/nonexistent/secrets.key", "signing-key", "rotate"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reading the secrets key file"));
    std::fs::write(folder.path().join("bad.key"), "not hex").unwrap();
    let bad = folder.path().join("bad.key");
    let malformed = seatkeeper(&db, &["--secrets-key-file", bad.to_str().unwrap(), "signing-key", "rotate"]);
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("64 hexadecimal digits"));
    assert_eq!(json_of(&db, &["signing-key", "list"]).as_array().unwrap().len(), 2, "the refused rotations made no key");

    let server = Server::start_with(&db, "info", &["--secrets-key-file", key_file]);
    let (_, answer) = check_in(&server.base, product_key, "editor", "SN-1").await;
    assert_eq!(answer["licensed"], true, "signs with the sealed key");
    server.stop();
}

#[tokio::test]
async fn sqlite_a_subscription_term_set_by_the_operator_reaches_a_running_server_within_a_second() {
    a_subscription_term_set_by_the_operator_reaches_a_running_server_within_a_second(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn postgres_a_subscription_term_set_by_the_operator_reaches_a_running_server_within_a_second() {
    if let Some(db) = TestDatabase::postgres().await {
        a_subscription_term_set_by_the_operator_reaches_a_running_server_within_a_second(db).await;
    }
}

/// Polls check-ins of `serial` until one answers `reason` (or none does
/// within two seconds); says how long it took.
async fn until_answered(base: &str, key: &str, serial: &str, reason: Value) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = check_in(base, key, "editor", serial).await;
        assert_eq!(status, 200, "{body}");
        if body["reason"] == reason {
            return started.elapsed();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "still {body} after 2 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn a_subscription_term_set_by_the_operator_reaches_a_running_server_within_a_second(db: TestDatabase) {
    let server = Server::start(&db);
    let acme = json_of(&db, &["org", "create", "acme"]);
    let key = acme["product_key"].as_str().unwrap().to_owned();
    json_of(&db, &["product", "add", "--org", "acme", "--code", "editor", "--name", "Editor", "--seats", "2", "--auto-assign"]);
    assert_eq!(check_in(&server.base, &key, "editor", "SN-1").await.1["licensed"], true);

    let today = chrono::Utc::now().date_naive();
    let term = json_of(&db, &["product", "set-term", "--org", "acme", "--code", "editor", "--valid-until", &today.to_string()]);
    assert_eq!(term["valid_until"], today.to_string());
    let human = stdout(&seatkeeper(&db, &["product", "set-term", "--org", "acme", "--code", "editor", "--valid-until", &today.to_string()]));
    assert!(human.contains(&format!("valid until {today}")), "{human}");
    let (_, body) = check_in(&server.base, &key, "editor", "SN-1").await;
    assert_eq!(body["licensed"], true, "its last day is in the term: {body}");

    let yesterday = today.pred_opt().unwrap().to_string();
    json_of(&db, &["product", "set-term", "--org", "acme", "--code", "editor", "--valid-until", &yesterday]);
    let took = until_answered(&server.base, &key, "SN-1", json!("subscription_expired")).await;
    assert!(took < std::time::Duration::from_millis(1500), "applied within a second (polled every 50 ms): {took:?}");
    assert_eq!(check_in(&server.base, &key, "editor", "SN-NEW").await.1["reason"], "subscription_expired");
    let cleared = json_of(&db, &["product", "set-term", "--org", "acme", "--code", "editor", "--clear"]);
    assert!(cleared.get("valid_until").is_none(), "{cleared}");
    until_answered(&server.base, &key, "SN-1", Value::Null).await;
    assert_eq!(check_in(&server.base, &key, "editor", "SN-1").await.1["licensed"], true, "the seat as it was");

    for usage in [
        &["product", "set-term", "--org", "acme", "--code", "editor"][..],
        &["product", "set-term", "--org", "acme", "--code", "editor", "--clear", "--valid-until", "2030-01-01"],
        &["product", "set-term", "--org", "acme", "--code", "editor", "--valid-until", "2030-13-01"],
        &["product", "set-term", "--org", "acme", "--code", "editor", "--valid-until", "next year"],
    ] {
        assert_eq!(seatkeeper(&db, usage).status.code(), Some(2), "{usage:?} is a usage error");
    }
    let missing = seatkeeper(&db, &["product", "set-term", "--org", "acme", "--code", "nope", "--clear"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no product"));
    server.stop();
}
