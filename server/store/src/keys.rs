//! API keys: how they look, how they are made and how they are stored.
//!
//! A key is `sk_admin_`, `sk_prod_` or `sk_session_` followed by 48 hex digits (192 bits from
//! the operating system's generator), so a leaked one is recognisable at a
//! glance. The store keeps only a SHA-256 digest of an administration key and
//! looks every key up by its digest: a lookup never compares secret bytes, so
//! its timing says nothing about how much of a guess was right. A fast digest is
//! enough because the keys are random, not passwords.

use sha2::{Digest, Sha256};

pub const ADMIN_PREFIX: &str = "sk_admin_";
pub const PRODUCT_PREFIX: &str = "sk_prod_";
pub const SESSION_PREFIX: &str = "sk_session_";
const RANDOM_BYTES: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Admin,
    Product,
    /// A browser session's id, held in its cookie.
    Session,
}

impl KeyKind {
    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Admin => ADMIN_PREFIX,
            KeyKind::Product => PRODUCT_PREFIX,
            KeyKind::Session => SESSION_PREFIX,
        }
    }
}

/// A fresh random key of the given kind.
pub fn generate(kind: KeyKind) -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is unavailable");
    format!("{}{}", kind.prefix(), hex::encode(bytes))
}

/// Whether `key` has the shape of a key of this kind. Anything else is refused
/// before the database is asked.
pub fn well_formed(kind: KeyKind, key: &str) -> bool {
    key.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == RANDOM_BYTES * 2 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The digest under which a key is stored and looked up.
pub fn digest(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_typed_well_formed_and_distinct() {
        let admin = generate(KeyKind::Admin);
        let product = generate(KeyKind::Product);
        assert!(admin.starts_with("sk_admin_") && well_formed(KeyKind::Admin, &admin));
        assert!(product.starts_with("sk_prod_") && well_formed(KeyKind::Product, &product));
        assert!(!well_formed(KeyKind::Product, &admin));
        assert!(!well_formed(KeyKind::Admin, &product));
        assert_ne!(generate(KeyKind::Admin), admin);
    }

    #[test]
    fn malformed_keys_are_refused() {
        for key in ["", "sk_admin_", "sk_admin_XYZ", "Bearer sk_admin_00", &format!("sk_admin_{}", "0".repeat(47))] {
            assert!(!well_formed(KeyKind::Admin, key), "{key:?}");
        }
    }
}
