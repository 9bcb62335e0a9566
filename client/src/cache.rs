//! The offline cache: the last verified license of a product and serial,
//! with the published keys it was verified against, in a file of the cache
//! folder. Nothing in it is trusted as stored: the file carries an HMAC
//! keyed with the product key (which the folder does not hold), and the
//! license is verified again, signature and claims, on every use.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::license::KeySet;

#[derive(Serialize, Deserialize)]
struct Stored {
    license: String,
    /// The JWK set of the key that signed it.
    keys: String,
    /// HMAC-SHA256 over the two, keyed with the product key, in hex.
    mac: String,
}

/// A license read back from the cache, its keys vouched for by the product
/// key; still to be verified.
pub struct Cached {
    pub license: String,
    pub keys: KeySet,
}

/// The cache file of a product and serial: a digest names it, so that any
/// serial is a safe file name.
pub fn file(folder: &Path, product: &str, serial: &str) -> PathBuf {
    let name = hex::encode(&Sha256::digest(format!("{product}\0{serial}").as_bytes())[..16]);
    folder.join(format!("{name}.license.json"))
}

fn mac(product_key: &str, license: &str, keys: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(product_key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(license.as_bytes());
    mac.update(b"\n");
    mac.update(keys.as_bytes());
    mac
}

/// Keeps a verified license (written whole or not at all).
pub fn store(path: &Path, product_key: &str, license: &str, keys: &KeySet) -> std::io::Result<()> {
    let keys = keys.to_jwks();
    let mac = hex::encode(mac(product_key, license, &keys).finalize().into_bytes());
    let text = serde_json::to_string(&Stored { license: license.to_owned(), keys, mac }).map_err(std::io::Error::other)?;
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

/// The license kept at `path`, if there is one and its file is as it was
/// written for this product key.
pub fn load(path: &Path, product_key: &str) -> Option<Cached> {
    let stored: Stored = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let tag = hex::decode(&stored.mac).ok()?;
    mac(product_key, &stored.license, &stored.keys).verify_slice(&tag).ok()?;
    Some(Cached { license: stored.license, keys: KeySet::from_jwks(&stored.keys)? })
}

pub fn forget(path: &Path) {
    let _ = std::fs::remove_file(path);
}
