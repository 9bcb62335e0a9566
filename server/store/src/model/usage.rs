//! Seat usage over time, and the connection pools.

#[allow(unused_imports)]
use super::*;

/// A product's seats and assignments on one day (the day's last reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePoint {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub seats: i64,
    pub assigned: i64,
}

/// The day (since the Unix epoch, UTC) a moment falls on.
pub fn day_of(at: Timestamp) -> i64 {
    at.timestamp().div_euclid(86_400)
}

/// One product's seats, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatTotal {
    pub organization: String,
    pub product: String,
    pub seats: i64,
    pub assigned: i64,
}

/// A database connection pool of this process, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub name: &'static str,
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}
