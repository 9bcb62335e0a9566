//! Secrets kept sealed with a key the database does not hold: the license
//! signing keys under the operator's key-encryption key
//! (`--secrets-key-file`), and a browser's one-time message under a key
//! derived from its session id, which only the browser has. A copy of the
//! database then reveals neither.
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): a random 24-byte
//! nonce per seal, so no counter has to be kept, and the tag refuses a
//! sealed value that was changed, moved to another row (the associated
//! data names what it belongs to) or sealed with another key.

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// What every sealed value starts with, so that a plain one (a signing key
/// stored before sealing was turned on) is told apart.
const MAGIC: &[u8] = b"sk-sealed-1:";
const NONCE_LEN: usize = 24;

/// A 256-bit key that seals and opens. Never printed.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(…)")
    }
}

impl SealingKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        SealingKey(bytes)
    }

    /// Reads a key file: 64 hexadecimal digits (`openssl rand -hex 32`),
    /// surrounding whitespace allowed.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading the secrets key file {}: {e}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| format!("the secrets key file {} must hold 64 hexadecimal digits (openssl rand -hex 32)", path.display()))?;
        Ok(SealingKey(bytes))
    }

    /// A key of its own for `purpose`, from a secret the caller holds.
    pub fn derive(purpose: &str, secret: &[u8]) -> Self {
        let mut digest = Sha256::new();
        digest.update(b"seatkeeper sealing key\0");
        digest.update(purpose.as_bytes());
        digest.update(b"\0");
        digest.update(secret);
        SealingKey(digest.finalize().into())
    }

    /// `plaintext`, sealed for the place `belongs_to` names.
    pub fn seal(&self, plaintext: &[u8], belongs_to: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random generator is unavailable");
        let sealed = XChaCha20Poly1305::new(&self.0.into())
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: belongs_to })
            .expect("sealing in memory cannot fail");
        [MAGIC, &nonce, &sealed].concat()
    }

    /// The plaintext of a value [`seal`](Self::seal)ed with this key for
    /// `belongs_to`, or `None` for anything else.
    pub fn open(&self, sealed: &[u8], belongs_to: &[u8]) -> Option<Vec<u8>> {
        let rest = sealed.strip_prefix(MAGIC)?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        XChaCha20Poly1305::new(&self.0.into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: belongs_to })
            .ok()
    }
}

/// Whether `value` was sealed (by any key).
pub fn is_sealed(value: &[u8]) -> bool {
    value.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_for_its_place_untouched() {
        let key = SealingKey::new([7; 32]);
        let sealed = key.seal(b"signing secret", b"kid-1");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(14).any(|w| w == b"signing secret"), "the plaintext does not show");
        assert_eq!(key.open(&sealed, b"kid-1").as_deref(), Some(&b"signing secret"[..]));
        assert_eq!(key.open(&sealed, b"kid-2"), None, "moved to another row");
        assert_eq!(SealingKey::new([8; 32]).open(&sealed, b"kid-1"), None, "another key");
        let mut touched = sealed.clone();
        *touched.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&touched, b"kid-1"), None, "changed");
        assert_ne!(key.seal(b"signing secret", b"kid-1"), sealed, "a fresh nonce every time");
        assert_eq!(key.open(b"plain", b"kid-1"), None);
        assert!(!is_sealed(&[1; 32]));
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_secret() {
        let sealed = SealingKey::derive("flash", b"session-a").seal(b"x", b"");
        assert!(SealingKey::derive("flash", b"session-a").open(&sealed, b"").is_some());
        assert!(SealingKey::derive("flash", b"session-b").open(&sealed, b"").is_none());
        assert!(SealingKey::derive("other", b"session-a").open(&sealed, b"").is_none());
    }

    #[test]
    fn a_key_file_holds_64_hex_digits() {
        let folder = std::env::temp_dir().join(format!("sk-sealed-test-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let good = folder.join("good");
        std::fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
        assert!(SealingKey::from_file(&good).is_ok());
        let bad = folder.join("bad");
        std::fs::write(&bad, "not a key").unwrap();
        assert!(SealingKey::from_file(&bad).unwrap_err().contains("64 hexadecimal digits"));
        assert!(SealingKey::from_file(&folder.join("missing")).is_err());
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
