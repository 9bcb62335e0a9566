//! Seeing the server run: a request id on every request, its response and
//! every log line it causes, and Prometheus metrics at `GET /metrics`.
//!
//! The metrics are kept in atomics with fixed label sets (check-in outcomes;
//! request latency by method, matched route and status class), so recording
//! one costs a few atomic adds; the seat gauges and the database pools are
//! read from the store when Prometheus scrapes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use store::prelude::*;
use store::{CheckIn, Denial, Store};
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Check-in outcomes, in the order of [`Metrics::checkins`].
const OUTCOMES: [&str; 6] =
    ["licensed", "auto_assign_disabled", "no_seats_available", "revoked_by_admin", "device_ignored", "subscription_expired"];

/// What one server process has counted since it started.
pub struct Metrics {
    started: Instant,
    checkins: [AtomicU64; OUTCOMES.len()],
    /// Request latency by matched route, then by method and status class.
    /// A request finds its histogram by borrowing its labels and counts into
    /// it under the read lock: no copy of the route, no reference count.
    requests: RwLock<HashMap<Box<str>, ByClass>>,
    /// Request ids made here: a random start, then counting.
    next_id: AtomicU64,
}

/// One route's histograms, by method and status class (`("GET", "2xx")`).
type ByClass = HashMap<(&'static str, &'static str), Histogram>;

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64, nanos: u64) {
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Metrics {
            started: Instant::now(),
            checkins: Default::default(),
            requests: RwLock::default(),
            next_id: AtomicU64::new(u64::from_le_bytes(seed) >> 16),
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// Counts a check-in's answer.
    pub fn check_in(&self, answer: &CheckIn) {
        let outcome = match answer.reason {
            None => 0,
            Some(Denial::AutoAssignDisabled) => 1,
            Some(Denial::NoSeatsAvailable) => 2,
            Some(Denial::RevokedByAdmin) => 3,
            Some(Denial::DeviceIgnored) => 4,
            Some(Denial::SubscriptionExpired) => 5,
        };
        self.checkins[outcome].fetch_add(1, Relaxed);
    }

    fn request(&self, route: &str, method: &'static str, status: &'static str, started: Instant) {
        let elapsed = started.elapsed();
        let (seconds, nanos) = (elapsed.as_secs_f64(), u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        {
            let requests = self.requests.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(histogram) = requests.get(route).and_then(|by_class| by_class.get(&(method, status))) {
                return histogram.observe(seconds, nanos);
            }
        }
        // A label set seen for the first time.
        let mut requests = self.requests.write().unwrap_or_else(PoisonError::into_inner);
        requests.entry(route.into()).or_default().entry((method, status)).or_default().observe(seconds, nanos);
    }

    /// A new request id: twelve hex digits, written straight into the header.
    fn request_id(&self) -> HeaderValue {
        let id = format!("{:012x}", self.next_id.fetch_add(1, Relaxed) & 0xffff_ffff_ffff);
        HeaderValue::from_maybe_shared(axum::body::Bytes::from(id)).expect("hex digits are a header value")
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub async fn render(&self, store: &Store) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(out, "# HELP seatkeeper_build_info The running version.\n# TYPE seatkeeper_build_info gauge");
        let _ = writeln!(out, "seatkeeper_build_info{{version=\"{}\",backend=\"{}\"}} 1", env!("CARGO_PKG_VERSION"), store.backend_name());
        let _ = writeln!(out, "# HELP seatkeeper_uptime_seconds Seconds since this process started.\n# TYPE seatkeeper_uptime_seconds gauge");
        let _ = writeln!(out, "seatkeeper_uptime_seconds {:.3}", self.started.elapsed().as_secs_f64());

        let _ = writeln!(out, "# HELP seatkeeper_checkins_total Check-ins answered, by outcome.\n# TYPE seatkeeper_checkins_total counter");
        for (outcome, count) in OUTCOMES.iter().zip(&self.checkins) {
            let _ = writeln!(out, "seatkeeper_checkins_total{{outcome=\"{outcome}\"}} {}", count.load(Relaxed));
        }

        let _ = writeln!(
            out,
            "# HELP seatkeeper_request_duration_seconds Time to answer a request, by method, route and status class.\n\
             # TYPE seatkeeper_request_duration_seconds histogram"
        );
        {
            let requests = self.requests.read().unwrap_or_else(PoisonError::into_inner);
            for (route, by_class) in requests.iter() {
                for ((method, status), histogram) in by_class {
                    let base = format!("method=\"{method}\",route=\"{}\",status=\"{status}\"", escape(route));
                    let mut cumulative = 0;
                    for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                        cumulative += bucket.load(Relaxed);
                        let _ = writeln!(out, "seatkeeper_request_duration_seconds_bucket{{{base},le=\"{bound}\"}} {cumulative}");
                    }
                    let count = histogram.count.load(Relaxed);
                    let _ = writeln!(out, "seatkeeper_request_duration_seconds_bucket{{{base},le=\"+Inf\"}} {count}");
                    let sum = histogram.sum_nanos.load(Relaxed) as f64 / 1e9;
                    let _ = writeln!(out, "seatkeeper_request_duration_seconds_sum{{{base}}} {sum:.6}");
                    let _ = writeln!(out, "seatkeeper_request_duration_seconds_count{{{base}}} {count}");
                }
            }
        }

        match store.seat_totals().await {
            Ok(totals) => {
                let _ = writeln!(out, "# HELP seatkeeper_product_seats Seats an organization owns of a product.\n# TYPE seatkeeper_product_seats gauge");
                for total in &totals {
                    let _ = writeln!(out, "seatkeeper_product_seats{{{}}} {}", product_labels(&total.organization, &total.product), total.seats);
                }
                let _ = writeln!(out, "# HELP seatkeeper_product_assigned Seats of a product assigned to devices.\n# TYPE seatkeeper_product_assigned gauge");
                for total in &totals {
                    let _ = writeln!(out, "seatkeeper_product_assigned{{{}}} {}", product_labels(&total.organization, &total.product), total.assigned);
                }
            }
            Err(error) => tracing::warn!(%error, "reading the seat totals for /metrics failed"),
        }

        let _ = writeln!(out, "# HELP seatkeeper_db_connections Database connections of this process, by pool and state.\n# TYPE seatkeeper_db_connections gauge");
        for pool in store.pool_stats() {
            let busy = pool.size.saturating_sub(pool.idle);
            let _ = writeln!(out, "seatkeeper_db_connections{{pool=\"{}\",state=\"idle\"}} {}", pool.name, pool.idle);
            let _ = writeln!(out, "seatkeeper_db_connections{{pool=\"{}\",state=\"busy\"}} {busy}", pool.name);
            let _ = writeln!(out, "seatkeeper_db_connections_max{{pool=\"{}\"}} {}", pool.name, pool.max);
        }
        out
    }
}

fn product_labels(organization: &str, product: &str) -> String {
    format!("organization=\"{}\",product=\"{}\"", escape(organization), escape(product))
}

/// A label value as Prometheus reads it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `GET /metrics`.
pub async fn metrics(State(metrics): State<Arc<Metrics>>, State(store): State<Store>) -> Response {
    let body = metrics.render(&store).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// The operator's token for `GET /metrics` on the main address, where anyone
/// could ask: the metrics name every organization and its seats. Never
/// printed, compared in constant time.
#[derive(Clone)]
pub struct MetricsToken(Arc<str>);

impl MetricsToken {
    /// At least 16 printable ASCII characters, or nothing.
    pub fn new(token: &str) -> Option<Self> {
        let fine = token.len() >= 16 && token.bytes().all(|b| b.is_ascii_graphic());
        fine.then(|| MetricsToken(token.into()))
    }

    fn admits(&self, given: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        // Digests first, so that the comparison's time says nothing of the length either.
        Sha256::digest(self.0.as_bytes()).ct_eq(&Sha256::digest(given.as_bytes())).into()
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(…)")
    }
}

/// Lets through only requests bearing the metrics token; others get the API's
/// 401, which the failed-authentication throttle counts.
pub async fn require_metrics_token(State(token): State<MetricsToken>, request: Request, next: Next) -> Response {
    match crate::auth::bearer(request.headers()) {
        Some(given) if token.admits(given) => next.run(request).await,
        _ => crate::error::ApiError::invalid_api_key().into_response(),
    }
}

/// A request id a client sent that is safe to repeat in logs and headers.
fn acceptable_id(value: &HeaderValue) -> Option<&str> {
    let id = value.to_str().ok()?;
    let fine = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    fine.then_some(id)
}

/// Gives the request an id (the client's `X-Request-Id` when it is sane, a
/// new one otherwise), runs it inside a span that names the id so every log
/// line it causes carries it, answers with the id, and times it.
pub async fn observe(State(metrics): State<Arc<Metrics>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = match request.headers().get(REQUEST_ID) {
        Some(sent) if acceptable_id(sent).is_some() => sent.clone(),
        _ => {
            let id = metrics.request_id();
            request.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    // Known methods only: a client's made-up ones must not grow the label set.
    let method = match request.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    // The matched route keeps the label set small: `/api/v1/admin/devices/{serial}`.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let span = tracing::info_span!(
        "request",
        request_id = %id.to_str().unwrap_or_default(),
        method = %method,
        path = %request.uri().path()
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.in_scope(|| tracing::debug!(status = status.as_u16(), micros = started.elapsed().as_micros() as u64, "answered"));
    response.headers_mut().insert(REQUEST_ID, id);
    metrics.request(route.as_ref().map_or("other", MatchedPath::as_str), method, status_class(status), started);
    response
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn only_sane_request_ids_are_kept() {
        for ok in ["abc", "0f3c-11:22.x_y", &"a".repeat(64)] {
            assert_eq!(acceptable_id(&HeaderValue::from_str(ok).unwrap()), Some(ok));
        }
        for bad in ["", &"a".repeat(65), "with space", "semi;colon", "quote\""] {
            assert_eq!(acceptable_id(&HeaderValue::from_str(bad).unwrap()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_histogram_counts_into_the_first_bucket_that_holds_it() {
        let histogram = Histogram::default();
        histogram.observe(0.0004, 400_000);
        histogram.observe(0.003, 3_000_000);
        histogram.observe(60.0, 60_000_000_000);
        assert_eq!(histogram.buckets[0].load(Relaxed), 1);
        assert_eq!(histogram.buckets[3].load(Relaxed), 1);
        assert_eq!(histogram.count.load(Relaxed), 3, "+Inf holds the slow one");
    }
}
