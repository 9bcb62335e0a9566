//! The device side of Seatkeeper, so that a vendor's app checks in correctly
//! by default:
//!
//! ```no_run
//! let client = seatkeeper_client::Client::new("https://licenses.example.com", "sk_prod_…", "editor")?;
//! let decision = client.check_in("LAPTOP-0042")?;
//! if decision.licensed { /* run */ } else { /* say why: decision.reason */ }
//! # Ok::<(), seatkeeper_client::Error>(())
//! ```
//!
//! - Every check-in sends a fresh random nonce, and an answer is accepted only
//!   when its license verifies with a trusted published key and names this
//!   product key (`aud`), product, serial and nonce, and has not expired.
//! - Trusted keys are the ones pinned at build time ([`Options::pinned_keys`],
//!   the JWK set of `GET /api/v1/public-keys`) and, unless only pinned keys
//!   are to be used, the keys fetched from the server itself (over HTTPS);
//!   a license signed with a key not yet known makes the client fetch the
//!   keys again, so a rotation is picked up by itself.
//! - The last verified license is kept in the cache folder with the key that
//!   signed it. When the server cannot be reached (refused, timed out, 5xx),
//!   `check_in` answers from it while its `exp` is ahead, verifying it again
//!   each time; a cache file that was edited, copied from another serial or
//!   product, or signed by an unknown key is ignored. Clock skew of up to
//!   five minutes either way is tolerated.
//! - A good citizen: `Retry-After` on 429 is waited out (up to
//!   [`Options::max_wait`]) and on 503 honoured; after a failure the server is
//!   left alone for a while that doubles with each failure (1 s to 60 s, with
//!   jitter), answering from the cache meanwhile; one check-in at a time per
//!   serial; keys are never logged or shown by `Debug`.

mod cache;
pub mod ffi;
pub mod license;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use license::KeySet;

/// Clock skew tolerated between the device and the server, either way.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// How a [`Client`] behaves; [`Options::default`] suits most apps.
#[derive(Clone)]
pub struct Options {
    /// Where the last verified license of each serial is kept for offline
    /// use; `None` keeps nothing (every check-in then needs the server).
    pub cache_dir: Option<PathBuf>,
    /// The JWK set (`GET /api/v1/public-keys`) to trust, pinned when the app
    /// is built.
    pub pinned_keys: Option<String>,
    /// Whether to trust keys fetched from the server as well. Without pinned
    /// keys it must be on; with them, leave it off to trust only the pinned
    /// ones (a server impersonator then cannot sign), or turn it on to pick
    /// up rotations without a new build.
    pub fetch_keys: bool,
    /// How long one request may take.
    pub timeout: Duration,
    /// How long a check-in may wait out a 429's `Retry-After`.
    pub max_wait: Duration,
    /// The time now; the system's clock by default (for tests, or an app
    /// with a better clock).
    pub clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_dir: None,
            pinned_keys: None,
            fetch_keys: true,
            timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(30),
            clock: Arc::new(SystemTime::now),
        }
    }
}

/// Writes a license into a cache folder as a client of this product key
/// would: for tests, and for tools that hand a device its license.
#[doc(hidden)]
pub fn cache_license(folder: &std::path::Path, product_key: &str, product: &str, serial: &str, license: &str, keys: &KeySet) -> std::io::Result<()> {
    cache::store(&cache::file(folder, product, serial), product_key, license, keys)
}

/// Where a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The server's answer, just now.
    Server,
    /// The cached license: the server could not be reached.
    Cache,
}

/// The answer to a check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub licensed: bool,
    /// Why not, when not licensed: `auto_assign_disabled`,
    /// `no_seats_available`, `revoked_by_admin`, `device_ignored`,
    /// `subscription_expired` (docs/contract.md).
    pub reason: Option<String>,
    /// When the verified license expires (Unix seconds); licensed only.
    pub license_expires_at: Option<i64>,
    /// When a floating seat's lease ends unless the device checks in again
    /// (RFC 3339); from the server only.
    pub lease_expires_at: Option<String>,
    /// The device's place in the product's waiting line (1 is next).
    pub queue_position: Option<u32>,
    pub source: Source,
}

/// What a call could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The server does not know the product key.
    InvalidKey,
    /// The server has no product of this code in the key's organization.
    UnknownProduct,
    /// The server refused the request as malformed (a bad serial, …).
    InvalidRequest(String),
    /// The server could not be reached and no valid cached license could
    /// answer instead.
    Unreachable(String),
    /// An answer that claimed a license which does not verify: not from the
    /// server, or tampered with on the way.
    Forged(String),
    /// The client was set up wrongly (a bad URL, no keys to trust).
    Config(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidKey => f.write_str("the server does not know this product key"),
            Error::UnknownProduct => f.write_str("the server has no product of this code for this key"),
            Error::InvalidRequest(why) => write!(f, "the server refused the request: {why}"),
            Error::Unreachable(why) => write!(f, "the server could not be reached ({why}) and no valid cached license answers instead"),
            Error::Forged(why) => write!(f, "an answer did not verify: {why}"),
            Error::Config(why) => write!(f, "the client is set up wrongly: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Checks devices in for one product with one product key.
pub struct Client {
    server: String,
    product_key: String,
    product: String,
    audience: String,
    options: Options,
    pinned: KeySet,
    agent: ureq::Agent,
    /// Keys fetched from the server.
    fetched: Mutex<KeySet>,
    /// One check-in at a time per serial.
    serials: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    backoff: Mutex<Backoff>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Client").field("server", &self.server).field("product", &self.product).finish_non_exhaustive()
    }
}

/// When the server may be asked again, after failures.
#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

/// What the server answered, or why it did not.
enum Answered {
    Json(serde_json::Value),
    Refused { status: u16, retry_after: Option<Duration>, message: String },
    Unreachable(String),
}

#[derive(Deserialize)]
struct CheckInAnswer {
    licensed: bool,
    reason: Option<String>,
    license: Option<String>,
    lease_expires_at: Option<String>,
    queue_position: Option<u32>,
}

impl Client {
    /// A client with [`Options::default`]: keys fetched from the server, no
    /// cache.
    pub fn new(server_url: &str, product_key: &str, product_code: &str) -> Result<Client, Error> {
        Client::with_options(server_url, product_key, product_code, Options::default())
    }

    pub fn with_options(server_url: &str, product_key: &str, product_code: &str, options: Options) -> Result<Client, Error> {
        let server = server_url.trim_end_matches('/').to_owned();
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(Error::Config("the server URL must start with https:// (or http://)".into()));
        }
        if product_key.is_empty() || product_code.is_empty() {
            return Err(Error::Config("a product key and a product code are needed".into()));
        }
        let pinned = match &options.pinned_keys {
            Some(jwks) => KeySet::from_jwks(jwks).ok_or_else(|| Error::Config("the pinned keys are not a JWK set".into()))?,
            None => KeySet::default(),
        };
        if pinned.is_empty() && !options.fetch_keys {
            return Err(Error::Config("no keys to trust: pin some, or let the client fetch them".into()));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout(options.timeout)
            .redirects(0)
            .user_agent(concat!("seatkeeper-client/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            server,
            audience: license::audience(product_key),
            product_key: product_key.to_owned(),
            product: product_code.to_owned(),
            options,
            pinned,
            agent,
            fetched: Mutex::default(),
            serials: Mutex::default(),
            backoff: Mutex::default(),
        })
    }

    /// Asks whether this device holds a seat; see the crate's documentation
    /// for what is checked, and when the cache answers instead.
    pub fn check_in(&self, serial: &str) -> Result<Decision, Error> {
        self.check_in_or_wait(serial, false)
    }

    /// [`Self::check_in`], and when no seat is free, wait in the product's
    /// line for one (`queue_position` says where).
    pub fn check_in_or_wait(&self, serial: &str, queue: bool) -> Result<Decision, Error> {
        let one_at_a_time = self.serial_lock(serial);
        let _held = one_at_a_time.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(wait) = self.backing_off() {
            return self.from_cache(serial, &format!("backing off for {} s after failures", wait.as_secs().max(1)));
        }
        let nonce = nonce();
        let body = serde_json::json!({"product": self.product, "serial": serial, "nonce": nonce, "queue": queue});
        let mut waited = Duration::ZERO;
        loop {
            match self.post("/api/v1/checkin", &body) {
                Answered::Json(answer) => {
                    self.succeeded();
                    return self.accept(serial, &nonce, answer);
                }
                Answered::Refused { status: 429, retry_after, .. } => {
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    if waited + wait <= self.options.max_wait {
                        std::thread::sleep(wait);
                        waited += wait;
                        continue;
                    }
                    self.failed(Some(wait));
                    return self.from_cache(serial, "the server asks to wait longer than allowed (429)");
                }
                Answered::Refused { status, retry_after, message } if status >= 500 => {
                    self.failed(retry_after);
                    return self.from_cache(serial, &format!("the server answered {status}: {message}"));
                }
                Answered::Refused { status, message, .. } => {
                    self.succeeded();
                    return Err(refusal(status, message));
                }
                Answered::Unreachable(why) => {
                    self.failed(None);
                    return self.from_cache(serial, &why);
                }
            }
        }
    }

    /// Gives this device's floating seat back at once; says whether it held
    /// one. Its cached license is forgotten either way.
    pub fn release(&self, serial: &str) -> Result<bool, Error> {
        let one_at_a_time = self.serial_lock(serial);
        let _held = one_at_a_time.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(path) = self.cache_file(serial) {
            cache::forget(&path);
        }
        let body = serde_json::json!({"product": self.product, "serial": serial});
        match self.post("/api/v1/checkin/release", &body) {
            Answered::Json(answer) => Ok(answer["released"].as_bool().unwrap_or(false)),
            Answered::Refused { status, message, .. } if status < 500 && status != 429 => Err(refusal(status, message)),
            Answered::Refused { status, message, .. } => Err(Error::Unreachable(format!("the server answered {status}: {message}"))),
            Answered::Unreachable(why) => Err(Error::Unreachable(why)),
        }
    }

    /// Takes the server's answer: a licensed one only with a license that
    /// verifies, which is then kept for offline use.
    fn accept(&self, serial: &str, nonce: &str, answer: serde_json::Value) -> Result<Decision, Error> {
        let answer: CheckInAnswer =
            serde_json::from_value(answer).map_err(|e| Error::Forged(format!("not a check-in answer: {e}")))?;
        if !answer.licensed {
            // The server says no: an earlier license must not answer offline.
            if let Some(path) = self.cache_file(serial) {
                cache::forget(&path);
            }
            return Ok(Decision {
                licensed: false,
                reason: answer.reason,
                license_expires_at: None,
                lease_expires_at: None,
                queue_position: answer.queue_position,
                source: Source::Server,
            });
        }
        let token = answer.license.ok_or_else(|| Error::Forged("a licensed answer without a license".into()))?;
        let (claims, keys) = self.verify_fresh(&token, serial, nonce)?;
        if let Some(path) = self.cache_file(serial) {
            // A license that cannot be kept still answers now.
            let _ = cache::store(&path, &self.product_key, &token, &keys);
        }
        Ok(Decision {
            licensed: true,
            reason: None,
            license_expires_at: Some(claims.exp),
            lease_expires_at: answer.lease_expires_at,
            queue_position: None,
            source: Source::Server,
        })
    }

    /// Verifies a license the server just sent, fetching the server's keys
    /// when it names a key not yet trusted (a rotation); its claims and the
    /// key that signed it.
    fn verify_fresh(&self, token: &str, serial: &str, nonce: &str) -> Result<(license::Claims, KeySet), Error> {
        let expected = self.expected(serial, Some(nonce));
        let kid = license::key_id(token).ok_or_else(|| Error::Forged("the license is not a signed license".into()))?;
        if !self.trusted().contains(&kid) && self.options.fetch_keys {
            self.fetch_keys()?;
        }
        let trusted = self.trusted();
        let claims = license::verify(token, &trusted, &expected).map_err(|refused| Error::Forged(refused.to_string()))?;
        let signer = trusted.only(&kid).unwrap_or_default();
        Ok((claims, signer))
    }

    /// The cached license of this serial, verified again, as the answer
    /// while the server cannot be reached.
    fn from_cache(&self, serial: &str, why: &str) -> Result<Decision, Error> {
        let unreachable = |more: &str| Error::Unreachable(format!("{why}{more}"));
        let Some(path) = self.cache_file(serial) else { return Err(unreachable("")) };
        let Some(cached) = cache::load(&path, &self.product_key) else { return Err(unreachable("; no cached license")) };
        // With pinned keys only, a cached key must be one of them too.
        let keys = if self.options.fetch_keys { cached.keys.merged(&self.pinned) } else { self.pinned.clone() };
        match license::verify(&cached.license, &keys, &self.expected(serial, None)) {
            Ok(claims) => Ok(Decision {
                licensed: true,
                reason: None,
                license_expires_at: Some(claims.exp),
                lease_expires_at: None,
                queue_position: None,
                source: Source::Cache,
            }),
            Err(refused) => Err(unreachable(&format!("; the cached license is not valid: {refused}"))),
        }
    }

    fn expected<'a>(&'a self, serial: &'a str, nonce: Option<&'a str>) -> license::Expected<'a> {
        let now = (self.options.clock)().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        license::Expected { audience: &self.audience, product: &self.product, serial, nonce, now, skew: CLOCK_SKEW.as_secs() as i64 }
    }

    fn trusted(&self) -> KeySet {
        if self.options.fetch_keys {
            self.pinned.merged(&self.fetched.lock().unwrap_or_else(PoisonError::into_inner))
        } else {
            self.pinned.clone()
        }
    }

    fn fetch_keys(&self) -> Result<(), Error> {
        let url = format!("{}/api/v1/public-keys", self.server);
        let text = match self.agent.get(&url).call() {
            Ok(answer) => answer.into_string().map_err(|e| Error::Forged(format!("reading the published keys: {e}")))?,
            Err(error) => return Err(Error::Forged(format!("fetching the published keys: {error}"))),
        };
        let keys = KeySet::from_jwks(&text).ok_or_else(|| Error::Forged("the published keys are not a JWK set".into()))?;
        *self.fetched.lock().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> Answered {
        let request = self
            .agent
            .post(&format!("{}{path}", self.server))
            .set("authorization", &format!("Bearer {}", self.product_key));
        match request.send_json(body) {
            Ok(answer) => match answer.into_json::<serde_json::Value>() {
                Ok(json) => Answered::Json(json),
                Err(error) => Answered::Unreachable(format!("an answer that is not JSON: {error}")),
            },
            Err(ureq::Error::Status(status, answer)) => {
                let retry_after = answer.header("retry-after").and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs);
                let message = answer
                    .into_json::<serde_json::Value>()
                    .ok()
                    .and_then(|json| json["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                Answered::Refused { status, retry_after, message }
            }
            Err(ureq::Error::Transport(error)) => Answered::Unreachable(error.to_string()),
        }
    }

    fn cache_file(&self, serial: &str) -> Option<PathBuf> {
        Some(cache::file(self.options.cache_dir.as_deref()?, &self.product, serial))
    }

    fn serial_lock(&self, serial: &str) -> Arc<Mutex<()>> {
        self.serials.lock().unwrap_or_else(PoisonError::into_inner).entry(serial.to_owned()).or_default().clone()
    }

    /// How long the server is still to be left alone, if it is.
    fn backing_off(&self) -> Option<Duration> {
        let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.not_before.and_then(|at| at.checked_duration_since(Instant::now())).filter(|wait| !wait.is_zero())
    }

    /// After a failure: leave the server alone for `retry_after` when it said
    /// so, else 1 s, 2 s, 4 s… up to 60 s, each with up to half again at random.
    fn failed(&self, retry_after: Option<Duration>) {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.failures = backoff.failures.saturating_add(1);
        let wait = retry_after.unwrap_or_else(|| {
            let base = Duration::from_secs(1 << backoff.failures.saturating_sub(1).min(6)).min(Duration::from_secs(60));
            base + base.mul_f64(jitter() / 2.0)
        });
        backoff.not_before = Some(Instant::now() + wait);
    }

    fn succeeded(&self) {
        *self.backoff.lock().unwrap_or_else(PoisonError::into_inner) = Backoff::default();
    }
}

fn refusal(status: u16, message: String) -> Error {
    match status {
        401 => Error::InvalidKey,
        404 => Error::UnknownProduct,
        _ => Error::InvalidRequest(if message.is_empty() { format!("HTTP {status}") } else { message }),
    }
}

/// 16 random bytes in hex: a fresh nonce for each check-in.
fn nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is unavailable");
    hex::encode(bytes)
}

/// A number from 0 to 1, at random.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// The same calls for async code: each runs on tokio's blocking pool.
#[cfg(feature = "async")]
#[derive(Clone, Debug)]
pub struct AsyncClient(Arc<Client>);

#[cfg(feature = "async")]
impl AsyncClient {
    pub fn new(client: Client) -> Self {
        AsyncClient(Arc::new(client))
    }

    pub async fn check_in(&self, serial: &str) -> Result<Decision, Error> {
        let (client, serial) = (self.0.clone(), serial.to_owned());
        tokio::task::spawn_blocking(move || client.check_in(&serial))
            .await
            .unwrap_or_else(|e| Err(Error::Unreachable(format!("the check-in stopped: {e}"))))
    }

    pub async fn release(&self, serial: &str) -> Result<bool, Error> {
        let (client, serial) = (self.0.clone(), serial.to_owned());
        tokio::task::spawn_blocking(move || client.release(&serial))
            .await
            .unwrap_or_else(|e| Err(Error::Unreachable(format!("the release stopped: {e}"))))
    }
}
