//! The client against the real Seatkeeper server (its router, in this
//! process, over real HTTP), on SQLite and on PostgreSQL: every answer, a
//! key rotation, the server gone, a tampered or foreign cache, a forged
//! answer from a fake server, a 429 waited out, and the command line.

use std::path::Path;
use std::sync::Arc;

mod common;
use common::{Running, acme};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use seatkeeper::limits::{Limits, Rate};
use seatkeeper_client::{AsyncClient, Client, Decision, Error, Options, Source};
use serde_json::{Value, json};
use store::prelude::*;
use store::{Actor, Store};

fn client(base: &str, key: &str, product: &str, options: Options) -> AsyncClient {
    AsyncClient::new(Client::with_options(base, key, product, options).unwrap())
}

fn reason(decision: &Decision) -> Option<&str> {
    decision.reason.as_deref()
}

/// A clock the test moves: the system's, plus `ahead` seconds.
fn movable_clock() -> (Arc<AtomicI64>, Arc<dyn Fn() -> SystemTime + Send + Sync>) {
    let ahead = Arc::new(AtomicI64::new(0));
    let read = ahead.clone();
    let clock = move || SystemTime::now() + Duration::from_secs(read.load(Ordering::Relaxed).max(0) as u64);
    (ahead, Arc::new(clock))
}

macro_rules! on_both_databases {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = store::testing::TestDatabase::sqlite();
                    super::$test(db.open().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(db) = store::testing::TestDatabase::postgres().await else { return };
                    super::$test(db.open().await).await;
                }
            )*
        }
    };
}

on_both_databases!(
    a_licensed_answer_and_every_refusal_reach_the_app_verified,
    a_rotated_key_is_fetched_and_licenses_signed_before_still_verify_from_the_cache,
    without_the_server_the_cache_answers_until_the_license_expires,
    a_tampered_or_foreign_cache_file_is_ignored,
    a_forged_or_replayed_answer_is_refused,
    a_429_is_waited_out_as_its_retry_after_says,
    the_command_line_prints_the_decision_and_exits_by_it,
);

async fn a_licensed_answer_and_every_refusal_reach_the_app_verified(store: Store) {
    let (org, key) = acme(&store).await;
    let server = Running::start(&store, Limits::off()).await;
    let editor = client(&server.base, &key, "editor", Options::default());

    let licensed = editor.check_in("LAPTOP-1").await.unwrap();
    assert!(licensed.licensed && licensed.source == Source::Server, "{licensed:?}");
    let in_a_week = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64 + 7 * 86_400;
    assert!((licensed.license_expires_at.unwrap() - in_a_week).abs() < 60, "{licensed:?}");
    assert_eq!(reason(&editor.check_in("LAPTOP-2").await.unwrap()), Some("no_seats_available"));
    let viewer = client(&server.base, &key, "viewer", Options::default());
    assert_eq!(reason(&viewer.check_in("LAPTOP-1").await.unwrap()), Some("auto_assign_disabled"));
    store.unassign(org, "LAPTOP-1", "editor", Actor::AdminApi).await.unwrap();
    assert_eq!(reason(&editor.check_in("LAPTOP-1").await.unwrap()), Some("revoked_by_admin"));
    store.ignore_device(org, "LAPTOP-3", Actor::AdminApi).await.unwrap();
    assert_eq!(reason(&editor.check_in("LAPTOP-3").await.unwrap()), Some("device_ignored"));
    let yesterday = chrono_yesterday();
    store.set_term(org, "viewer", Some(yesterday), Actor::Operator).await.unwrap();
    assert_eq!(reason(&viewer.check_in("LAPTOP-1").await.unwrap()), Some("subscription_expired"));

    // A floating seat: its lease, given back at once.
    let studio = client(&server.base, &key, "studio", Options::default());
    let leased = studio.check_in("LAPTOP-1").await.unwrap();
    assert!(leased.licensed && leased.lease_expires_at.is_some(), "{leased:?}");
    assert_eq!(studio.release("LAPTOP-1").await, Ok(true));
    assert_eq!(studio.release("LAPTOP-1").await, Ok(false));
    assert_eq!(editor.release("LAPTOP-2").await, Ok(false), "an assigned seat is not released");

    assert_eq!(client(&server.base, &key, "nope", Options::default()).check_in("X").await, Err(Error::UnknownProduct));
    assert_eq!(client(&server.base, "sk_prod_wrong", "editor", Options::default()).check_in("X").await, Err(Error::InvalidKey));
    assert!(matches!(editor.check_in("").await, Err(Error::InvalidRequest(_))));
    let shown = format!("{:?}", Client::new(&server.base, &key, "editor").unwrap());
    assert!(!shown.contains(&key), "the key is never shown: {shown}");
    server.stop().await;
}

fn chrono_yesterday() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive().pred_opt().unwrap()
}

async fn a_rotated_key_is_fetched_and_licenses_signed_before_still_verify_from_the_cache(store: Store) {
    let (org, key) = acme(&store).await;
    store.set_seats(org, "editor", 5, Actor::Operator).await.unwrap();
    let server = Running::start(&store, Limits::off()).await;
    let cache = tempfile::tempdir().unwrap();
    let options = Options { cache_dir: Some(cache.path().to_owned()), ..Options::default() };
    let editor = client(&server.base, &key, "editor", options);
    assert!(editor.check_in("BEFORE").await.unwrap().licensed);

    seatkeeper::licensing::rotate(&store, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // running servers switch within a second
    let after = editor.check_in("AFTER").await.unwrap();
    assert!(after.licensed && after.source == Source::Server, "signed with the new key, fetched: {after:?}");

    server.stop().await;
    let cached = editor.check_in("BEFORE").await.unwrap();
    assert_eq!((cached.licensed, cached.source), (true, Source::Cache), "the old key's license still verifies");
}

async fn without_the_server_the_cache_answers_until_the_license_expires(store: Store) {
    let (_, key) = acme(&store).await;
    let server = Running::start(&store, Limits::off()).await;
    let cache = tempfile::tempdir().unwrap();
    let (ahead, clock) = movable_clock();
    let options = Options { cache_dir: Some(cache.path().to_owned()), clock, ..Options::default() };
    let editor = client(&server.base, &key, "editor", options);
    let fresh = editor.check_in("LAPTOP-1").await.unwrap();
    assert_eq!(fresh.source, Source::Server);
    let base = server.base.clone();
    server.stop().await;

    for _ in 0..3 {
        let offline = editor.check_in("LAPTOP-1").await.unwrap();
        assert_eq!((offline.licensed, offline.source, offline.license_expires_at), (true, Source::Cache, fresh.license_expires_at));
    }
    assert!(matches!(editor.check_in("LAPTOP-2").await, Err(Error::Unreachable(_))), "no license of its own");

    // Within the tolerated skew after exp it still answers; beyond, it refuses.
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let exp = fresh.license_expires_at.unwrap();
    ahead.store(exp - now + 4 * 60, Ordering::Relaxed);
    assert!(editor.check_in("LAPTOP-1").await.unwrap().licensed, "four minutes late: within the skew");
    ahead.store(exp - now + 6 * 60, Ordering::Relaxed);
    let expired = editor.check_in("LAPTOP-1").await.unwrap_err();
    assert!(matches!(&expired, Error::Unreachable(why) if why.contains("expired")), "{expired:?}");

    // A client that never reached the server and has no cache says so.
    let lonely = client(&base, &key, "editor", Options::default());
    assert!(matches!(lonely.check_in("LAPTOP-1").await, Err(Error::Unreachable(_))));
}

/// The one cache file written since `before` was listed.
fn new_file(folder: &Path, before: &[std::path::PathBuf]) -> std::path::PathBuf {
    let now: Vec<_> = std::fs::read_dir(folder).unwrap().map(|entry| entry.unwrap().path()).collect();
    let new: Vec<_> = now.into_iter().filter(|path| !before.contains(path)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    new[0].clone()
}

async fn a_tampered_or_foreign_cache_file_is_ignored(store: Store) {
    let (org, key) = acme(&store).await;
    store.set_seats(org, "editor", 5, Actor::Operator).await.unwrap();
    let server = Running::start(&store, Limits::off()).await;
    let cache = tempfile::tempdir().unwrap();
    let options = Options { cache_dir: Some(cache.path().to_owned()), ..Options::default() };
    let editor = client(&server.base, &key, "editor", options.clone());
    editor.check_in("A").await.unwrap();
    let a = new_file(cache.path(), &[]);
    editor.check_in("B").await.unwrap();
    let b = new_file(cache.path(), &[a.clone()]);
    editor.check_in("C").await.unwrap();
    let c = new_file(cache.path(), &[a.clone(), b.clone()]);
    server.stop().await;

    // B's file copied over from A: A's license, not B's.
    std::fs::copy(&a, &b).unwrap();
    assert!(matches!(editor.check_in("B").await, Err(Error::Unreachable(why)) if why.contains("serial")));
    // C's file edited: its seal no longer holds.
    let text = std::fs::read_to_string(&c).unwrap();
    let mut stored: Value = serde_json::from_str(&text).unwrap();
    let license = stored["license"].as_str().unwrap().to_owned();
    let (head, rest) = license.split_once('.').unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(rest.split('.').next().unwrap()).unwrap()).unwrap();
    let mut longer = claims.clone();
    longer["exp"] = json!(claims["exp"].as_i64().unwrap() + 365 * 86_400);
    let forged = format!("{head}.{}.{}", URL_SAFE_NO_PAD.encode(longer.to_string()), rest.split('.').nth(1).unwrap());
    stored["license"] = json!(forged);
    std::fs::write(&c, stored.to_string()).unwrap();
    assert!(matches!(editor.check_in("C").await, Err(Error::Unreachable(why)) if why.contains("no cached license")));
    // A is untouched and still answers.
    assert_eq!(editor.check_in("A").await.unwrap().source, Source::Cache);
    // Another product's client finds nothing for A.
    let viewer = client("http://127.0.0.1:9", &key, "viewer", options.clone());
    assert!(matches!(viewer.check_in("A").await, Err(Error::Unreachable(_))));

    // A cache file sealed with the product key but signed by a key no one
    // published: with pinned keys, never trusted.
    let (fake_key, fake_jwks) = fake_signer();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let audience = seatkeeper_client::license::audience(&key);
    let token = sign(&fake_key, json!({"iss": "seatkeeper", "aud": audience, "org": "acme", "product": "editor", "serial": "A", "iat": now, "exp": now + 86_400}));
    let keys = seatkeeper_client::KeySet::from_jwks(&fake_jwks).unwrap();
    seatkeeper_client::cache_license(cache.path(), &key, "editor", "A", &token, &keys).unwrap();
    let pinned = Options { pinned_keys: Some(real_keys(&store).await), fetch_keys: false, ..options };
    let strict = client("http://127.0.0.1:9", &key, "editor", pinned);
    assert!(matches!(strict.check_in("A").await, Err(Error::Unreachable(why)) if why.contains("unknown key")));
}

/// The real server's published keys, as a vendor pins them at build time.
async fn real_keys(store: &Store) -> String {
    let server = Running::start(store, Limits::off()).await;
    let base = server.base.clone();
    let jwks = tokio::task::spawn_blocking(move || ureq_get(&format!("{base}/api/v1/public-keys"))).await.unwrap();
    server.stop().await;
    jwks
}

fn ureq_get(url: &str) -> String {
    ureq::get(url).call().unwrap().into_string().unwrap()
}

fn fake_signer() -> (ed25519_dalek::SigningKey, String) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    (key, json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "fake", "x": x}]}).to_string())
}

fn sign(key: &ed25519_dalek::SigningKey, claims: Value) -> String {
    let head = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": "fake"}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode(key.sign(format!("{head}.{body}").as_bytes()).to_bytes());
    format!("{head}.{body}.{signature}")
}

/// A fake server on another port that answers every check-in "licensed"
/// with `license(request)`, and publishes its own key.
async fn fake_server(license: impl Fn(&Value) -> String + Send + Sync + 'static) -> String {
    let license = Arc::new(license);
    let (_, jwks) = fake_signer();
    let app = axum::Router::new()
        .route(
            "/api/v1/checkin",
            axum::routing::post(move |axum::Json(request): axum::Json<Value>| {
                let license = license.clone();
                async move { axum::Json(json!({"product": request["product"], "serial": request["serial"], "licensed": true, "reason": null, "license": license(&request)})) }
            }),
        )
        .route("/api/v1/public-keys", axum::routing::get(move || async move { jwks.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn a_forged_or_replayed_answer_is_refused(store: Store) {
    let (_, key) = acme(&store).await;
    let pinned = real_keys(&store).await;
    let audience = seatkeeper_client::license::audience(&key);
    let (fake_key, _) = fake_signer();
    let forger = fake_server(move |request| {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        sign(&fake_key, json!({"iss": "seatkeeper", "aud": audience, "org": "acme", "product": request["product"],
            "serial": request["serial"], "nonce": request["nonce"], "iat": now, "exp": now + 86_400}))
    })
    .await;
    let options = Options { pinned_keys: Some(pinned.clone()), fetch_keys: false, ..Options::default() };
    let fooled = client(&forger, &key, "editor", options.clone()).check_in("LAPTOP-1").await;
    assert!(matches!(&fooled, Err(Error::Forged(why)) if why.contains("unknown key")), "{fooled:?}");

    // A real license, captured and replayed to a later check-in: its nonce is not the one sent.
    let server = Running::start(&store, Limits::off()).await;
    let captured = {
        let (base, key) = (server.base.clone(), key.clone());
        tokio::task::spawn_blocking(move || captured_license(&base, &key)).await.unwrap()
    };
    server.stop().await;
    let replayer = fake_server(move |_| captured.clone()).await;
    let replayed = client(&replayer, &key, "editor", options).check_in("LAPTOP-1").await;
    assert!(matches!(&replayed, Err(Error::Forged(why)) if why.contains("nonce")), "{replayed:?}");
}

/// A license the real server issued for LAPTOP-1 with the nonce "captured".
fn captured_license(base: &str, key: &str) -> String {
    let answer: Value = ureq::post(&format!("{base}/api/v1/checkin"))
        .set("authorization", &format!("Bearer {key}"))
        .send_json(json!({"product": "editor", "serial": "LAPTOP-1", "nonce": "captured"}))
        .unwrap()
        .into_json()
        .unwrap();
    answer["license"].as_str().unwrap().to_owned()
}

async fn a_429_is_waited_out_as_its_retry_after_says(store: Store) {
    let (org, key) = acme(&store).await;
    store.set_seats(org, "editor", 5, Actor::Operator).await.unwrap();
    let limits = Limits::new(Rate { per_second: 1.0, burst: 1.0 }, Rate::OFF, Duration::from_secs(30));
    let server = Running::start(&store, limits).await;
    let editor = client(&server.base, &key, "editor", Options::default());
    assert!(editor.check_in("A").await.unwrap().licensed);
    let started = Instant::now();
    let second = editor.check_in("B").await.unwrap();
    assert!(second.licensed && second.source == Source::Server, "{second:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited for Retry-After: {:?}", started.elapsed());

    // A wait longer than allowed is not made: the cache (none here) answers.
    let impatient = client(&server.base, &key, "editor", Options { max_wait: Duration::ZERO, ..Options::default() });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(impatient.check_in("C").await.unwrap().licensed, "the bucket refilled meanwhile");
    assert!(matches!(impatient.check_in("D").await, Err(Error::Unreachable(why)) if why.contains("429")));
    server.stop().await;
}

async fn the_command_line_prints_the_decision_and_exits_by_it(store: Store) {
    let (_, key) = acme(&store).await;
    let server = Running::start(&store, Limits::off()).await;
    let cache = tempfile::tempdir().unwrap();
    let folder = cache.path().to_str().unwrap().to_owned();
    let run = |args: Vec<String>| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_seatkeeper-client")).args(&args).output().unwrap();
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (output.status.code(), json)
    };
    let args = move |command: &str, base: &str, key: &str, product: &str, serial: &str| -> Vec<String> {
        [command, "--server", base, "--key", key, "--product", product, "--serial", serial, "--cache", folder.as_str()]
            .map(str::to_owned)
            .to_vec()
    };
    let base = server.base.clone();
    let (k, b) = (key.clone(), base.clone());
    let (args_now, args) = (args.clone(), args);
    let results = tokio::task::spawn_blocking(move || {
        let args = args_now;
        (
            run(args("check-in", &b, &k, "editor", "LAPTOP-1")),
            run(args("check-in", &b, &k, "editor", "LAPTOP-2")),
            run(args("check-in", &b, "sk_prod_wrong", "editor", "LAPTOP-1")),
            run(args("release", &b, &k, "studio", "LAPTOP-1")),
        )
    })
    .await
    .unwrap();
    let (licensed, refused, bad_key, release) = results;
    assert_eq!((licensed.0, &licensed.1["licensed"], &licensed.1["source"]), (Some(0), &json!(true), &json!("server")), "{licensed:?}");
    assert!(licensed.1["license_expires_at"].is_i64());
    assert_eq!((refused.0, &refused.1["reason"]), (Some(1), &json!("no_seats_available")));
    assert_eq!((bad_key.0, &bad_key.1["error"]["code"]), (Some(2), &json!("invalid_api_key")));
    assert_eq!((release.0, &release.1["released"]), (Some(1), &json!(false)));
    server.stop().await;

    let offline = tokio::task::spawn_blocking(move || {
        (run(args("check-in", &base, &key, "editor", "LAPTOP-1")), run(args("check-in", &base, &key, "editor", "LAPTOP-9")))
    })
    .await
    .unwrap();
    assert_eq!((offline.0.0, &offline.0.1["source"]), (Some(0), &json!("cache")), "{offline:?}");
    assert_eq!((offline.1.0, &offline.1.1["error"]["code"]), (Some(2), &json!("unreachable")));
}
