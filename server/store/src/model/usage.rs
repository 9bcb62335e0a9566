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

/// A product's refusals for want of a seat on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    /// Check-ins refused.
    pub refused: i64,
    /// Distinct devices among them.
    pub devices: i64,
}

/// One day of a product's usage, as the admin API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageDay {
    /// Days since the Unix epoch (UTC), for drawing; not in the JSON.
    #[serde(skip)]
    pub day: i64,
    /// `YYYY-MM-DD` (UTC).
    #[schema(format = Date)]
    pub date: String,
    /// Seats owned, at the day's last reading (today: now).
    pub seats: i64,
    /// Seats held (for floating seats: leases in use), likewise.
    pub assigned: i64,
    /// Check-ins refused for want of a seat that day.
    pub refused: i64,
    /// Distinct devices among them.
    pub refused_devices: i64,
}

/// A product's usage day by day, oldest first, today last and live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductUsage {
    pub days: Vec<UsageDay>,
}

/// `YYYY-MM-DD` of a day since the Unix epoch.
pub fn date_of_day(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0).map_or_else(String::new, |at| at.format("%Y-%m-%d").to_string())
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
