//! Signed licenses: every check-in answered `licensed: true` carries a token
//! a device can verify offline with the server's public key, and trust until
//! it expires.
//!
//! The token is a JWT (RFC 7519) signed with Ed25519 (`alg: EdDSA`, RFC 8037),
//! so a device app can verify it with any JWT library or with a few lines of
//! its own: `base64url(header).base64url(claims).base64url(signature)`. The
//! claims name the organization, the product, the serial, the issue and expiry
//! times (seconds since the Unix epoch), the audience and, when the device
//! sent one, its nonce. The audience (`aud`) is [`audience`] of the product
//! key the check-in was made with: a device compares it with the one of its
//! own key, so that a license minted with another organization's key (any
//! organization can ask for any serial and product code) is refused. `GET /api/v1/public-keys` publishes every key as a JWK set, the
//! retired ones too, so tokens signed before a rotation still verify.
//!
//! The keys live in the database (`signing_keys`): generated on the first
//! start, shared by every server process of a PostgreSQL fleet, replaced by
//! `seatkeeper signing-key rotate`. Running servers pick up a rotation, and a
//! product's new license validity, within a second. With a key-encryption
//! key (`--secrets-key-file`) the secrets are stored sealed (`store::sealed`,
//! the key id as associated data), those stored before are sealed at the
//! first start with it, and a server without it refuses to start on sealed
//! keys: read access to a backup is then not enough to forge licenses.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::sealed::{self, SealingKey};
use store::prelude::*;
use store::{CheckIn, OrgId, Store, StoreError, StoredSigningKey, Timestamp};

/// The longest nonce a check-in may carry.
pub const NONCE_MAX_CHARS: usize = 64;

/// How long the keys are trusted before they are read again: the delay with
/// which a rotation from another process reaches this one. (A product's
/// terms are the store's to keep: `Store::license_terms`.)
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The `iss` claim of every token.
pub const ISSUER: &str = "seatkeeper";

/// Signs licenses for one server process.
pub struct Licenser {
    store: Store,
    /// The key-encryption key the signing secrets are sealed with, if any.
    sealing: Option<SealingKey>,
    ring: RwLock<Option<Arc<KeyRing>>>,
    /// One reload at a time; the others go on with the keys they have.
    reloading: tokio::sync::Mutex<()>,
}

/// The keys as last read: the one that signs, and every one to publish.
struct KeyRing {
    read_at: Instant,
    kid: String,
    signer: SigningKey,
    /// `base64url({"alg":"EdDSA","typ":"JWT","kid":…})`, the same for every token.
    header: String,
    published: Vec<PublicKey>,
}

/// One public key as a JWK (RFC 8037), with when it was made and retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicKey {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// The key id a license's header names.
    pub kid: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    pub created_at: Timestamp,
    #[schema(required = true)]
    pub retired_at: Option<Timestamp>,
}

/// `GET /api/v1/public-keys`: a JWK set, the signing key first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicKeys {
    pub keys: Vec<PublicKey>,
}

/// What a license token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// [`audience`] of the product key the license was issued to.
    pub aud: String,
    pub org: String,
    pub product: String,
    pub serial: String,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, in seconds since the Unix epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// A license's `exp`: `license_days` after it is issued, and no later than
/// a floating seat's lease or the end of the subscription's last day (a
/// device holds no seat beyond either).
fn expiry(iat: i64, terms: &store::LicenseTerms, lease_expires_at: Option<store::Timestamp>) -> i64 {
    let term_end = terms.valid_until.map(|last_day| store::end_of_term(last_day).timestamp());
    [Some(iat + terms.license_days * 86_400), lease_expires_at.map(|lease| lease.timestamp()), term_end]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(iat)
}

/// A product key's public fingerprint, a license's `aud`: the SHA-256 of the
/// key's UTF-8 bytes, in lowercase hex. It names the key without revealing
/// it, and a device computes it from the key it was configured with.
pub fn audience(product_key: &str) -> String {
    hex::encode(Sha256::digest(product_key.as_bytes()))
}

/// Checks a check-in's nonce: 1 to 64 printable ASCII characters.
pub fn validate_nonce(nonce: &str) -> Result<(), StoreError> {
    let printable = nonce.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if nonce.is_empty() || nonce.len() > NONCE_MAX_CHARS || !printable {
        return Err(StoreError::Invalid(format!(
            "nonce must be 1 to {NONCE_MAX_CHARS} printable ASCII characters"
        )));
    }
    Ok(())
}

/// A fresh Ed25519 key, as the store keeps it (its secret sealed with
/// `sealing` when given). Its id is the first 16 hex digits of the SHA-256
/// of the public key.
pub fn generate_key(sealing: Option<&SealingKey>) -> StoredSigningKey {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random generator is unavailable");
    let public = SigningKey::from_bytes(&secret).verifying_key().to_bytes();
    let kid = hex::encode(&Sha256::digest(public)[..8]);
    let secret = match sealing {
        Some(sealing) => sealing.seal(&secret, kid.as_bytes()),
        None => secret.to_vec(),
    };
    StoredSigningKey { kid, secret, public: public.to_vec(), created_at: store::now(), retired_at: None }
}

/// Replaces the signing key: the new one signs from now on (in every server
/// within a second); the old one stays published for verification.
pub async fn rotate(store: &Store, sealing: Option<&SealingKey>) -> Result<StoredSigningKey, StoreError> {
    let key = generate_key(sealing);
    store.add_signing_key(&key, true).await?;
    Ok(key)
}

/// Seals every signing secret still stored in the clear; the first start
/// with a key-encryption key does this.
async fn seal_plain_keys(store: &Store, sealing: &SealingKey) -> Result<(), StoreError> {
    for key in store.signing_keys().await? {
        if !sealed::is_sealed(&key.secret) {
            let sealed = sealing.seal(&key.secret, key.kid.as_bytes());
            // Another server sealing it at the same moment is as good.
            store.replace_signing_secret(&key.kid, &key.secret, &sealed).await?;
        }
    }
    Ok(())
}

impl Licenser {
    /// Signs with the keys in `store`, whose secrets are sealed with
    /// `sealing` when it is given.
    pub fn new(store: Store, sealing: Option<SealingKey>) -> Arc<Self> {
        Arc::new(Licenser {
            store,
            sealing,
            ring: RwLock::new(None),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads the keys, creating the first one on a database that has none,
    /// and seals those stored in the clear when a sealing key is given. The
    /// server calls this at start; the first license would otherwise.
    pub async fn load(&self) -> Result<(), StoreError> {
        if let Some(sealing) = &self.sealing {
            seal_plain_keys(&self.store, sealing).await?;
        }
        self.reload().await.map(drop)
    }

    /// A signed license for a check-in answered `licensed: true`, made with
    /// `product_key`.
    pub async fn issue(
        &self,
        org: OrgId,
        product_key: &str,
        check_in: &CheckIn,
        nonce: Option<&str>,
    ) -> Result<String, StoreError> {
        let terms = self.store.license_terms(org, &check_in.product).await?;
        let ring = self.ring().await?;
        let iat = chrono::Utc::now().timestamp();
        let exp = expiry(iat, &terms, check_in.lease_expires_at);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: audience(product_key),
            org: terms.organization,
            product: check_in.product.clone(),
            serial: check_in.serial.clone(),
            iat,
            exp,
            nonce: nonce.map(str::to_owned),
        };
        Ok(ring.sign(&claims))
    }

    /// Every key, for `GET /api/v1/public-keys`.
    pub async fn public_keys(&self) -> Result<PublicKeys, StoreError> {
        Ok(PublicKeys { keys: self.ring().await?.published.clone() })
    }

    /// The keys, read again when older than [`REFRESH_EVERY`].
    async fn ring(&self) -> Result<Arc<KeyRing>, StoreError> {
        let current = self.ring.read().unwrap_or_else(PoisonError::into_inner).clone();
        match current {
            Some(ring) if ring.read_at.elapsed() < REFRESH_EVERY => Ok(ring),
            // Another request is reading them: sign with these meanwhile.
            Some(ring) if self.reloading.try_lock().is_err() => Ok(ring),
            _ => self.reload().await,
        }
    }

    async fn reload(&self) -> Result<Arc<KeyRing>, StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let mut keys = self.store.signing_keys().await?;
        if keys.first().is_none_or(|key| key.retired_at.is_some()) {
            // A database without an active key: make one. Servers racing here
            // store only one (the others' inserts find it and do nothing).
            self.store.add_signing_key(&generate_key(self.sealing.as_ref()), false).await?;
            keys = self.store.signing_keys().await?;
        }
        let ring = Arc::new(KeyRing::from_stored(&keys, self.sealing.as_ref())?);
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Some(ring.clone());
        Ok(ring)
    }
}

impl KeyRing {
    fn from_stored(keys: &[StoredSigningKey], sealing: Option<&SealingKey>) -> Result<Self, StoreError> {
        let broken = |kid: &str| StoreError::Unavailable(format!("signing key {kid} in the database is damaged"));
        let active = keys
            .first()
            .filter(|key| key.retired_at.is_none())
            .ok_or_else(|| StoreError::Unavailable("no active signing key".to_owned()))?;
        let secret = match (sealed::is_sealed(&active.secret), sealing) {
            (false, _) => active.secret.clone(),
            (true, None) => {
                return Err(StoreError::Unavailable(format!(
                    "signing key {} is sealed: start with --secrets-key-file naming the key that sealed it",
                    active.kid
                )));
            }
            (true, Some(sealing)) => sealing.open(&active.secret, active.kid.as_bytes()).ok_or_else(|| {
                StoreError::Unavailable(format!("signing key {} cannot be opened with this secrets key file", active.kid))
            })?,
        };
        let secret: [u8; 32] = secret.as_slice().try_into().map_err(|_| broken(&active.kid))?;
        let signer = SigningKey::from_bytes(&secret);
        if signer.verifying_key().as_bytes().as_slice() != active.public.as_slice() {
            return Err(broken(&active.kid));
        }
        let header = serde_json::to_vec(&Header { alg: "EdDSA", typ: "JWT", kid: &active.kid })
            .map_err(|error| StoreError::Unavailable(error.to_string()))?;
        let published = keys
            .iter()
            .map(|key| PublicKey {
                kty: "OKP".to_owned(),
                crv: "Ed25519".to_owned(),
                alg: "EdDSA".to_owned(),
                use_: "sig".to_owned(),
                kid: key.kid.clone(),
                x: URL_SAFE_NO_PAD.encode(&key.public),
                created_at: key.created_at,
                retired_at: key.retired_at,
            })
            .collect();
        Ok(KeyRing {
            read_at: Instant::now(),
            kid: active.kid.clone(),
            signer,
            header: URL_SAFE_NO_PAD.encode(header),
            published,
        })
    }

    fn sign(&self, claims: &Claims) -> String {
        // Serializing plain strings and numbers cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 90);
        token.push_str(&self.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.signer.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        token
    }
}

impl std::fmt::Debug for Licenser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kid = self.ring.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|ring| ring.kid.clone());
        f.debug_struct("Licenser").field("signing_kid", &kid).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verifies a token with a public key alone, as a device would: the
    /// signature over `header.claims`, then the claims (`exp` and the nonce
    /// are the device's to compare).
    fn verify(token: &str, public_key: &[u8; 32]) -> Result<Claims, &'static str> {
        use ed25519_dalek::{Signature, VerifyingKey};
        let (signed, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
        let (_header, payload) = signed.split_once('.').ok_or("not a JWT")?;
        let signature: [u8; 64] =
            URL_SAFE_NO_PAD.decode(signature).ok().and_then(|bytes| bytes.try_into().ok()).ok_or("bad signature encoding")?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| "bad public key")?;
        key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&signature)).map_err(|_| "signature does not match")?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "bad claims encoding")?;
        serde_json::from_slice(&payload).map_err(|_| "bad claims")
    }

    #[test]
    fn the_audience_is_the_hex_sha256_of_the_product_key() {
        // echo -n sk_prod_example | sha256sum
        assert_eq!(audience("sk_prod_example"), "020add9105c6d5da384a3cd8d35cc33b1dbe8b6618ec1b8c7e913fb4c26ee9a1");
        assert_ne!(audience("sk_prod_example"), audience("sk_prod_other"));
    }

    #[test]
    fn nonces_are_short_printable_ascii() {
        for ok in ["a", "0123456789abcdef", " spaced ~!", &"n".repeat(64)] {
            assert!(validate_nonce(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", &"n".repeat(65), "tab\t", "é", "nul\0"] {
            assert!(validate_nonce(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_token_verifies_with_its_public_key_and_fails_when_touched() {
        let stored = generate_key(None);
        let ring = KeyRing::from_stored(std::slice::from_ref(&stored), None).unwrap();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: audience("sk_prod_example"),
            org: "acme".into(),
            product: "editor".into(),
            serial: "SN-1".into(),
            iat: 1_800_000_000,
            exp: 1_800_604_800,
            nonce: Some("n-1".into()),
        };
        let token = ring.sign(&claims);
        let public: [u8; 32] = stored.public.clone().try_into().unwrap();
        assert_eq!(verify(&token, &public), Ok(claims.clone()));

        let other: [u8; 32] = generate_key(None).public.try_into().unwrap();
        assert!(verify(&token, &other).is_err(), "another key must not verify it");

        let (head, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let forged = Claims { serial: "SN-2".into(), ..claims };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_ne!(forged_payload, payload);
        assert!(verify(&format!("{head}.{forged_payload}.{signature}"), &public).is_err());
    }
}
