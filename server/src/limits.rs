//! Limits that keep one client from crowding out the rest: a check-in rate per
//! organization (its product key), a budget of failed authentications per
//! client address, and what the accept loop allows each connection. The two
//! budgets are token buckets held in memory by each server process;
//! exceeding one answers 429 with `Retry-After`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::server::CredentialsRefused;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use store::OrgId;

use crate::error::ApiError;
use crate::client_address::TrustedProxies;

/// How much a bucket holds and how fast it refills. A rate of 0 turns the
/// limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub const OFF: Rate = Rate { per_second: 0.0, burst: 0.0 };

    fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by key. The map is pruned of full buckets when it grows, so
/// a stream of one-off keys (addresses) cannot make it grow without bound.
pub struct RateLimiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

const PRUNE_ABOVE: usize = 10_000;

impl<K: Eq + Hash + Copy> RateLimiter<K> {
    pub fn new(rate: Rate) -> Self {
        RateLimiter { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key`, or says how long until one is there.
    pub fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        match self.bucket(key, now, true) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// How long `key` must wait for its next token, if it has none now;
    /// takes nothing.
    pub fn wait(&self, key: K, now: Instant) -> Option<Duration> {
        self.bucket(key, now, false)
    }

    /// Refills `key`'s bucket, takes a token from it if asked and one is
    /// there, and returns the wait when there is none.
    fn bucket(&self, key: K, now: Instant, take: bool) -> Option<Duration> {
        if self.rate.is_off() {
            return None;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let rate = self.rate;
            buckets.retain(|_, b| refilled(*b, rate, now).tokens < rate.burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.rate.burst, updated: now });
        *bucket = refilled(*bucket, self.rate, now);
        if bucket.tokens < 1.0 {
            return Some(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate.per_second));
        }
        if take {
            bucket.tokens -= 1.0;
        }
        None
    }
}

fn refilled(bucket: Bucket, rate: Rate, now: Instant) -> Bucket {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    Bucket { tokens: (bucket.tokens + elapsed * rate.per_second).min(rate.burst), updated: now }
}

/// Every limit of one server process.
pub struct Limits {
    pub checkins: RateLimiter<OrgId>,
    pub failed_auth: RateLimiter<IpAddr>,
    /// How long one request may take, reading its body included (408 after).
    pub request_timeout: Duration,
    pub connections: Connections,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
}

/// What the accept loop (`crate::serve`) allows each connection.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// Connections open at once; at the cap new ones wait in the listen queue.
    pub max: usize,
    /// Connections open at once from one client address (an IPv6 /64);
    /// more are closed at once. Trusted proxies are not held to it.
    pub max_per_address: usize,
    /// Bytes of a request's line and headers (431 above; at least 8 KiB).
    pub max_header_bytes: usize,
    /// Header fields of one request (431 above).
    pub max_headers: usize,
    /// How long a client may take to send its request line and headers,
    /// and, on a new connection, its first request's.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request under way.
    pub idle_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max: 4096,
            max_per_address: 256,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn new(checkins: Rate, failed_auth: Rate, request_timeout: Duration) -> Arc<Self> {
        Self::with_connections(checkins, failed_auth, request_timeout, Connections::default())
    }

    pub fn with_connections(
        checkins: Rate,
        failed_auth: Rate,
        request_timeout: Duration,
        connections: Connections,
    ) -> Arc<Self> {
        Arc::new(Limits {
            checkins: RateLimiter::new(checkins),
            failed_auth: RateLimiter::new(failed_auth),
            request_timeout,
            connections,
            trusted_proxies: TrustedProxies::default(),
        })
    }

    /// No limits at all, for tests of other things.
    pub fn off() -> Arc<Self> {
        Limits::new(Rate::OFF, Rate::OFF, Self::DEFAULT_REQUEST_TIMEOUT)
    }
}

pub fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many requests; retry in {seconds} s"))
            .into_response();
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
    response
}

/// Counts every refused credential (a 401, or a sign-in form sent back with
/// its error) against the client's budget, and once that is spent answers
/// further refused attempts with 429 instead. A request with a valid key or
/// session is never refused here, whatever its address did before: one
/// misconfigured device behind an office's address must not lock out the
/// rest of the office.
pub async fn throttle_failed_auth(State(limits): State<Arc<Limits>>, mut request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| limits.trusted_proxies.client(peer.ip(), request.headers()));
    let refused = CredentialsRefused::default();
    request.extensions_mut().insert(refused.clone());
    let response = next.run(request).await;
    let failed = response.status() == StatusCode::UNAUTHORIZED || refused.is_set();
    match client {
        Some(client) if failed => match limits.failed_auth.take(client, Instant::now()) {
            Ok(()) => response,
            Err(wait) => rate_limited(wait),
        },
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(Rate { per_second: 2.0, burst: 3.0 });
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(1, start), Ok(()));
        }
        let wait = limiter.take(1, start).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert_eq!(limiter.take(2, start), Ok(()), "keys have buckets of their own");
        assert_eq!(limiter.take(1, start + Duration::from_millis(500)), Ok(()), "refilled at the rate");
        assert!(limiter.take(1, start + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let limiter = RateLimiter::new(Rate::OFF);
        let now = Instant::now();
        assert!((0..10_000).all(|_| limiter.take(1, now).is_ok()));
        assert_eq!(limiter.wait(1, now), None);
    }

    #[test]
    fn one_off_keys_do_not_grow_the_map_without_bound() {
        let limiter = RateLimiter::new(Rate { per_second: 1000.0, burst: 1.0 });
        let start = Instant::now();
        for key in 0..(3 * PRUNE_ABOVE as u32) {
            let _ = limiter.take(key, start + Duration::from_millis(u64::from(key)));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= PRUNE_ABOVE + 1);
    }
}
