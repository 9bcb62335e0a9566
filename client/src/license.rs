//! Signed licenses: a JWT signed with Ed25519 (`alg: EdDSA`), verified
//! against a set of published keys (`GET /api/v1/public-keys`, a JWK set).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The issuer every Seatkeeper license names.
const ISSUER: &str = "seatkeeper";

/// Verifying keys by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<String, [u8; 32]>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    kid: String,
    x: String,
}

impl KeySet {
    /// Reads a JWK set (what `GET /api/v1/public-keys` answers); keys that
    /// are not Ed25519 are left out. `None` when it is not a JWK set.
    pub fn from_jwks(json: &str) -> Option<KeySet> {
        let jwks: Jwks = serde_json::from_str(json).ok()?;
        let keys = jwks
            .keys
            .into_iter()
            .filter(|jwk| jwk.kty == "OKP" && jwk.crv == "Ed25519")
            .filter_map(|jwk| {
                let x: [u8; 32] = URL_SAFE_NO_PAD.decode(&jwk.x).ok()?.try_into().ok()?;
                VerifyingKey::from_bytes(&x).ok()?;
                Some((jwk.kid, x))
            })
            .collect();
        Some(KeySet { keys })
    }

    /// As a JWK set.
    pub fn to_jwks(&self) -> String {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|(kid, x)| serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": URL_SAFE_NO_PAD.encode(x)}))
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// This set with `other`'s keys added.
    pub fn merged(&self, other: &KeySet) -> KeySet {
        let mut keys = self.keys.clone();
        keys.extend(other.keys.iter().map(|(kid, x)| (kid.clone(), *x)));
        KeySet { keys }
    }

    /// The set of just the key `kid`, if this set has it.
    pub fn only(&self, kid: &str) -> Option<KeySet> {
        let x = *self.keys.get(kid)?;
        Some(KeySet { keys: BTreeMap::from([(kid.to_owned(), x)]) })
    }
}

/// What a license says, once verified.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub org: String,
    pub product: String,
    pub serial: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default)]
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

/// What a license must be for: a product key's fingerprint (the `aud`), a
/// product, a serial and, for a fresh answer, the nonce sent.
pub struct Expected<'a> {
    pub audience: &'a str,
    pub product: &'a str,
    pub serial: &'a str,
    pub nonce: Option<&'a str>,
    /// Now, in Unix seconds, and the clock skew tolerated either way.
    pub now: i64,
    pub skew: i64,
}

/// Why a license was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not a JWT of this kind.
    Malformed,
    /// Signed with a key not in the set (its id).
    UnknownKey(String),
    BadSignature,
    /// A claim is not what was expected (its name).
    Claim(&'static str),
    Expired,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Malformed => f.write_str("the license is not a signed license"),
            Refused::UnknownKey(kid) => write!(f, "the license is signed with an unknown key ({kid})"),
            Refused::BadSignature => f.write_str("the license's signature does not verify"),
            Refused::Claim(claim) => write!(f, "the license's {claim} is not this app's"),
            Refused::Expired => f.write_str("the license has expired"),
        }
    }
}

/// The key id a license names, without verifying anything.
pub fn key_id(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    Some(header.kid)
}

/// Verifies a license with `keys` and checks that it is what `expected`
/// says; its claims if so.
pub fn verify(token: &str, keys: &KeySet, expected: &Expected<'_>) -> Result<Claims, Refused> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Refused::Malformed);
    };
    let decoded: Header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Refused::Malformed)?;
    if decoded.alg != "EdDSA" {
        return Err(Refused::Malformed);
    }
    let x = keys.keys.get(&decoded.kid).ok_or_else(|| Refused::UnknownKey(decoded.kid.clone()))?;
    let key = VerifyingKey::from_bytes(x).map_err(|_| Refused::BadSignature)?;
    let signature: [u8; 64] =
        URL_SAFE_NO_PAD.decode(signature).ok().and_then(|bytes| bytes.try_into().ok()).ok_or(Refused::Malformed)?;
    key.verify_strict(format!("{header}.{claims}").as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| Refused::BadSignature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(claims)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Refused::Malformed)?;
    let checks: [(&'static str, bool); 5] = [
        ("issuer", claims.iss == ISSUER),
        ("audience", claims.aud == expected.audience),
        ("product", claims.product == expected.product),
        ("serial", claims.serial == expected.serial),
        ("nonce", expected.nonce.is_none_or(|nonce| claims.nonce.as_deref() == Some(nonce))),
    ];
    if let Some((claim, _)) = checks.iter().find(|(_, holds)| !holds) {
        return Err(Refused::Claim(claim));
    }
    if claims.iat > expected.now + expected.skew {
        return Err(Refused::Claim("issue time"));
    }
    if claims.exp <= expected.now - expected.skew {
        return Err(Refused::Expired);
    }
    Ok(claims)
}

/// A product key's fingerprint, a license's `aud`: the lowercase hex SHA-256
/// of the key.
pub fn audience(product_key: &str) -> String {
    hex::encode(Sha256::digest(product_key.as_bytes()))
}
