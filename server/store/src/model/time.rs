//! Time as Seatkeeper records it: UTC to the millisecond, RFC 3339 in JSON.

#[allow(unused_imports)]
use super::*;

/// Every timestamp Seatkeeper records: UTC, millisecond precision on both databases.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to the millisecond so that both backends store
/// and return exactly the same value.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

/// Timestamps in JSON: RFC 3339 in UTC, always with milliseconds
/// (`2026-11-28T19:48:08.123Z`).
pub mod rfc3339 {
    use super::Timestamp;
    use chrono::SecondsFormat;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        Timestamp::deserialize(deserializer)
    }

    pub mod option {
        use super::Timestamp;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(at: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
            Option::<Timestamp>::deserialize(deserializer)
        }
    }
}
