//! Signed licenses through the real router on both backends: a licensed
//! answer carries a JWT that a device verifies with nothing but the key from
//! `GET /api/v1/public-keys` (checked here with ed25519-dalek directly, not
//! with the server's own code), a nonce is echoed, a touched token fails, the
//! product's policy sets the validity, and a rotated key leaves old licenses
//! verifiable.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::TestApp;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Value, json};

on_both_backends!(
    a_licensed_answer_carries_a_license_that_verifies_with_the_published_key,
    a_license_names_the_product_key_it_was_issued_to,
    a_touched_license_does_not_verify,
    a_nonce_is_echoed_and_a_bad_one_changes_nothing,
    a_denied_answer_carries_no_license,
    the_product_policy_sets_how_long_a_license_lasts,
    a_rotated_key_signs_new_licenses_and_old_ones_still_verify,
    the_signing_key_is_kept_with_the_data,
    signing_keys_are_sealed_with_the_secrets_key_and_refused_without_it,
);

const DAY: i64 = 86_400;

async fn public_keys(app: &TestApp) -> Vec<Value> {
    let reply = app.call(Method::GET, "/api/v1/public-keys", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "public keys need no API key");
    reply.json()["keys"].as_array().expect("a JWK set").clone()
}

/// What a device does offline: find the key by `kid`, check the Ed25519
/// signature over `header.claims`, then read the claims.
fn verify(token: &str, keys: &[Value]) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts[..] else { return Err(format!("not three parts: {token}")) };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "EdDSA" {
        return Err(format!("unexpected alg: {header}"));
    }
    let jwk = keys.iter().find(|key| key["kid"] == header["kid"]).ok_or("no published key with this kid")?;
    assert_eq!((&jwk["kty"], &jwk["crv"]), (&json!("OKP"), &json!("Ed25519")));
    let public: [u8; 32] = decode(jwk["x"].as_str().unwrap())?.try_into().map_err(|_| "x is not 32 bytes")?;
    let signature: [u8; 64] = decode(signature)?.try_into().map_err(|_| "signature is not 64 bytes")?;
    let signed = &token[..token.rfind('.').unwrap()];
    VerifyingKey::from_bytes(&public)
        .map_err(|e| e.to_string())?
        .verify_strict(signed.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|e| format!("signature: {e}"))?;
    let claims = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    Ok((header, claims))
}

/// The README's example, word for word: it must keep working.
mod readme {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use ed25519_dalek::{Signature, VerifyingKey};
    use sha2::{Digest, Sha256};

    /// `x` is the published key's `x`, `product_key` the key this app was set up
    /// with; returns the claims when the signature holds and the license was
    /// issued to that key (its `aud` is the key's hex SHA-256).
    pub fn verify(token: &str, x: &str, product_key: &str) -> Option<serde_json::Value> {
        let (signed, signature) = token.rsplit_once('.')?;
        let key = VerifyingKey::from_bytes(&B64.decode(x).ok()?.try_into().ok()?).ok()?;
        let signature = Signature::from_bytes(&B64.decode(signature).ok()?.try_into().ok()?);
        key.verify_strict(signed.as_bytes(), &signature).ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&B64.decode(signed.split_once('.')?.1).ok()?).ok()?;
        let audience = hex::encode(Sha256::digest(product_key.as_bytes()));
        (claims["aud"] == audience.as_str()).then_some(claims)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn a_licensed_answer_carries_a_license_that_verifies_with_the_published_key(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let answer = app.check_in(&acme.product_key, "editor", "SN-1").await.json();
    assert_eq!(answer["licensed"], true);
    let token = answer["license"].as_str().expect("a licensed answer carries a license");

    let keys = public_keys(&app).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!((&keys[0]["alg"], &keys[0]["use"], &keys[0]["retired_at"]), (&json!("EdDSA"), &json!("sig"), &Value::Null));
    let (header, claims) = verify(token, &keys).expect("the license verifies");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(
        (&claims["iss"], &claims["org"], &claims["product"], &claims["serial"]),
        (&json!("seatkeeper"), &json!("acme"), &json!("editor"), &json!("SN-1"))
    );
    let iat = claims["iat"].as_i64().unwrap();
    assert!((now() - iat).abs() <= 5, "issued now: {claims}");
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 7 * DAY, "seven days by default");
    assert!(claims.get("nonce").is_none(), "no nonce asked, none given: {claims}");
    let x = keys[0]["x"].as_str().unwrap();
    assert_eq!(readme::verify(token, x, &acme.product_key), Some(claims.clone()), "the README's way agrees");
    assert_eq!(readme::verify(&token.replace(".ey", ".eZ"), x, &acme.product_key), None);
    assert_eq!(readme::verify(token, x, "sk_prod_of_another_organization"), None, "issued to another key");

    // A device holding its seat gets a fresh license at every check-in.
    let again = app.check_in(&acme.product_key, "editor", "SN-1").await.json();
    let (_, claims) = verify(again["license"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(claims["serial"], "SN-1");
}

/// What a device computes from the product key it was configured with, and
/// compares with a license's `aud` (the README's words: the SHA-256 of the
/// key, in lowercase hex).
fn audience_of(product_key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(product_key.as_bytes()))
}

async fn a_license_names_the_product_key_it_was_issued_to(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let globex = app.org("globex", &[("editor", 2, true)]).await;
    let keys = public_keys(&app).await;
    let own = app.check_in(&acme.product_key, "editor", "ACME-1").await.json();
    let (_, claims) = verify(own["license"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(claims["aud"], audience_of(&acme.product_key), "{claims}");

    // Another organization can ask for the same serial and product code and
    // get a license that verifies; its audience tells the device it is not its own.
    let minted = app.check_in(&globex.product_key, "editor", "ACME-1").await.json();
    let (_, claims) = verify(minted["license"].as_str().unwrap(), &keys).expect("it is a genuine license");
    assert_eq!((&claims["serial"], &claims["product"]), (&json!("ACME-1"), &json!("editor")));
    assert_ne!(claims["aud"], audience_of(&acme.product_key), "a device of acme must be able to refuse it");
    assert_eq!(claims["aud"], audience_of(&globex.product_key));
}

async fn a_touched_license_does_not_verify(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let answer = app.check_in(&acme.product_key, "editor", "SN-1").await.json();
    let token = answer["license"].as_str().unwrap();
    let keys = public_keys(&app).await;
    let (header, claims) = verify(token, &keys).unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    // Another serial, a later expiry: the claims no longer match the signature.
    for change in [json!({"serial": "SN-2"}), json!({"exp": claims["exp"].as_i64().unwrap() + 365 * DAY})] {
        let mut forged = claims.clone();
        forged.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
        let forged = URL_SAFE_NO_PAD.encode(forged.to_string());
        let token = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert!(verify(&token, &keys).is_err(), "a forged claim must fail");
    }
    // One bit of the signature flipped.
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[10] ^= 1;
    let token = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(signature));
    assert!(verify(&token, &keys).is_err());
    // A key that is not the server's.
    let stranger = seatkeeper::licensing::generate_key(None);
    let wrong = vec![json!({"kty": "OKP", "crv": "Ed25519", "kid": header["kid"], "x": URL_SAFE_NO_PAD.encode(stranger.public)})];
    assert!(verify(token.as_str(), &wrong).is_err());
    assert!(verify(answer["license"].as_str().unwrap(), &wrong).is_err());
}

async fn a_nonce_is_echoed_and_a_bad_one_changes_nothing(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let body = json!({"product": "editor", "serial": "SN-1", "nonce": "c0ffee-42 ~ok"});
    let answer = app.call(Method::POST, "/api/v1/checkin", Some(&acme.product_key), Some(body)).await.json();
    let (_, claims) = verify(answer["license"].as_str().unwrap(), &public_keys(&app).await).unwrap();
    assert_eq!(claims["nonce"], "c0ffee-42 ~ok");

    let longest = "n".repeat(64);
    let body = json!({"product": "editor", "serial": "SN-1", "nonce": longest});
    let answer = app.call(Method::POST, "/api/v1/checkin", Some(&acme.product_key), Some(body)).await.json();
    let (_, claims) = verify(answer["license"].as_str().unwrap(), &public_keys(&app).await).unwrap();
    assert_eq!(claims["nonce"], longest.as_str());

    for nonce in [json!(""), json!("n".repeat(65)), json!("tab\there"), json!("ünïcode"), json!(42)] {
        let body = json!({"product": "editor", "serial": "SN-NEW", "nonce": nonce});
        let reply = app.call(Method::POST, "/api/v1/checkin", Some(&acme.product_key), Some(body)).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let unknown = app.admin(Method::GET, "/devices/SN-NEW", &acme.admin_key).await;
    unknown.assert_error(StatusCode::NOT_FOUND, "unknown_device");
    let product = app.admin(Method::GET, "/products/editor", &acme.admin_key).await.json();
    assert_eq!(product["assigned"], 1, "a refused check-in takes no seat");
}

async fn a_denied_answer_carries_no_license(app: TestApp) {
    let acme = app.org("acme", &[("editor", 0, true)]).await;
    let body = json!({"product": "editor", "serial": "SN-1", "nonce": "abc"});
    let answer = app.call(Method::POST, "/api/v1/checkin", Some(&acme.product_key), Some(body)).await.json();
    assert_eq!((&answer["licensed"], &answer["reason"]), (&json!(false), &json!("no_seats_available")));
    let mut fields: Vec<&str> = answer.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["first_seen", "last_seen", "licensed", "product", "reason", "serial"]);
}

async fn the_product_policy_sets_how_long_a_license_lasts(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let admin = Some(acme.admin_key.as_str());
    let policy = app.call(Method::GET, "/api/v1/admin/products/editor/policy", admin, None).await;
    assert_eq!((policy.status, policy.json()), (StatusCode::OK, json!({"license_days": 7, "reclaim_after_days": null, "seat_model": "assigned", "lease_minutes": 20, "alert_at_percent": null})));

    let changed = app.call(Method::PATCH, "/api/v1/admin/products/editor/policy", admin, Some(json!({"license_days": 30, "reclaim_after_days": null}))).await;
    assert_eq!((changed.status, changed.json()), (StatusCode::OK, json!({"license_days": 30, "reclaim_after_days": null, "seat_model": "assigned", "lease_minutes": 20, "alert_at_percent": null})));
    let answer = app.check_in(&acme.product_key, "editor", "SN-1").await.json();
    let (_, claims) = verify(answer["license"].as_str().unwrap(), &public_keys(&app).await).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 30 * DAY, "applies at once");

    for bad in [json!({"license_days": 0}), json!({"license_days": 366}), json!({"license_days": "7"}), json!({"license_days": 1.5}), json!({}), json!({"seats": 9})] {
        let reply = app.call(Method::PATCH, "/api/v1/admin/products/editor/policy", admin, Some(bad.clone())).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let policy = app.call(Method::GET, "/api/v1/admin/products/editor/policy", admin, None).await.json();
    assert_eq!(policy, json!({"license_days": 30, "reclaim_after_days": null, "seat_model": "assigned", "lease_minutes": 20, "alert_at_percent": null}), "refused changes change nothing");

    let reclaim = app.call(Method::PATCH, "/api/v1/admin/products/editor/policy", admin, Some(json!({"reclaim_after_days": 90}))).await;
    assert_eq!(reclaim.json(), json!({"license_days": 30, "reclaim_after_days": 90, "seat_model": "assigned", "lease_minutes": 20, "alert_at_percent": null}), "one field changes, the other stays");
    for bad in [json!({"reclaim_after_days": 0}), json!({"reclaim_after_days": 3651}), json!({"reclaim_after_days": "90"})] {
        let reply = app.call(Method::PATCH, "/api/v1/admin/products/editor/policy", admin, Some(bad)).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let never = app.call(Method::PATCH, "/api/v1/admin/products/editor/policy", admin, Some(json!({"reclaim_after_days": null}))).await;
    assert_eq!(never.json(), json!({"license_days": 30, "reclaim_after_days": null, "seat_model": "assigned", "lease_minutes": 20, "alert_at_percent": null}), "null turns reclaiming off");

    let missing = app.call(Method::PATCH, "/api/v1/admin/products/nope/policy", admin, Some(json!({"license_days": 3}))).await;
    missing.assert_error(StatusCode::NOT_FOUND, "unknown_product");
    let product_key = app.call(Method::GET, "/api/v1/admin/products/editor/policy", Some(&acme.product_key), None).await;
    product_key.assert_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    let globex = app.org("globex", &[]).await;
    let theirs = app.call(Method::PATCH, "/api/v1/admin/products/editor/policy", Some(&globex.admin_key), Some(json!({"license_days": 1}))).await;
    theirs.assert_error(StatusCode::NOT_FOUND, "unknown_product");

    // The product itself keeps exactly the fields of docs/contract.md.
    let product = app.call(Method::GET, "/api/v1/admin/products/editor", admin, None).await.json();
    assert_eq!(product, json!({"code": "editor", "name": "editor app", "seats": 2, "assigned": 1, "available": 1, "auto_assign": true}));
}

async fn a_rotated_key_signs_new_licenses_and_old_ones_still_verify(app: TestApp) {
    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let before = app.check_in(&acme.product_key, "editor", "SN-1").await.json()["license"].as_str().unwrap().to_owned();
    let first_keys = public_keys(&app).await;
    let (old_header, _) = verify(&before, &first_keys).unwrap();

    // As `seatkeeper signing-key rotate` does, from another process.
    let new_key = seatkeeper::licensing::rotate(&app.store, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let after = app.check_in(&acme.product_key, "editor", "SN-1").await.json()["license"].as_str().unwrap().to_owned();
    let keys = public_keys(&app).await;
    let (new_header, _) = verify(&after, &keys).expect("the new license verifies");
    assert_eq!(new_header["kid"], new_key.kid.as_str(), "the server switched within a second");
    assert_ne!(new_header["kid"], old_header["kid"]);

    assert_eq!(keys.len(), 2);
    assert_eq!((&keys[0]["kid"], &keys[0]["retired_at"]), (&json!(new_key.kid), &Value::Null), "the signing key first");
    assert_eq!(keys[1]["kid"], old_header["kid"]);
    assert!(keys[1]["retired_at"].is_string(), "{keys:?}");
    verify(&before, &keys).expect("a license signed before the rotation still verifies");
}

async fn the_signing_key_is_kept_with_the_data(app: TestApp) {
    let first = public_keys(&app).await;
    // Another server process on the same database: the same key.
    let other = seatkeeper::licensing::Licenser::new(app.store.clone(), None);
    other.load().await.unwrap();
    let seen = other.public_keys().await.unwrap();
    assert_eq!(seen.keys.len(), 1);
    assert_eq!(json!(seen.keys[0].kid), first[0]["kid"]);
}

/// With `--secrets-key-file`, a copy of the database holds no signing secret
/// in the clear: keys stored before are sealed at the first start with it,
/// new ones are made sealed, licenses verify as before, and a server
/// without the key (or with another) refuses to start instead of signing.
async fn signing_keys_are_sealed_with_the_secrets_key_and_refused_without_it(app: TestApp) {
    use seatkeeper::licensing::{Licenser, rotate};
    use store::prelude::*;
    use store::sealed::{SealingKey, is_sealed};

    let acme = app.org("acme", &[("editor", 2, true)]).await;
    let plain = app.check_in(&acme.product_key, "editor", "SN-1").await.json();
    let stored = app.store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!is_sealed(&stored[0].secret), "no secrets key yet");
    let secret = stored[0].secret.clone();

    let sealing = SealingKey::new([42; 32]);
    let sealed_server = Licenser::new(app.store.clone(), Some(sealing.clone()));
    sealed_server.load().await.expect("the first start with the key seals");
    let stored = app.store.signing_keys().await.unwrap();
    assert!(is_sealed(&stored[0].secret), "sealed in place");
    assert!(!stored[0].secret.windows(secret.len()).any(|w| w == secret.as_slice()), "the secret does not show");
    assert_eq!(sealed_server.public_keys().await.unwrap().keys[0].kid, stored[0].kid, "the same key, still published");

    // Licenses signed before and after verify with the same published key.
    let keys = public_keys(&app).await;
    verify(plain["license"].as_str().unwrap(), &keys).expect("a license from before");
    let org = app.store.organization_by_name("acme").await.unwrap().id;
    let check_in = app.store.check_in(org, "editor", "SN-1").await.unwrap();
    let token = sealed_server.issue(org, &acme.product_key, &check_in, None).await.unwrap();
    verify(&token, &keys).expect("signed with the opened key");

    // A rotation with the key makes a sealed key.
    let new_key = rotate(&app.store, Some(&sealing)).await.unwrap();
    assert!(is_sealed(&new_key.secret));
    sealed_server.load().await.unwrap();

    for (what, sealing) in [("no key", None), ("another key", Some(SealingKey::new([7; 32])))] {
        let refused = Licenser::new(app.store.clone(), sealing).load().await.expect_err(what);
        let message = refused.to_string();
        assert!(message.contains(&new_key.kid), "{what}: {message}");
        assert!(message.contains("--secrets-key-file") || message.contains("cannot be opened"), "{what}: {message}");
    }
}
