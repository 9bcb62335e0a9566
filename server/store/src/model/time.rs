//! Time as Seatkeeper records it: UTC to the millisecond, RFC 3339 in JSON.

use std::ops::{Add, Deref, Sub};

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every time Seatkeeper records: UTC to the millisecond on both databases;
/// in JSON RFC 3339 with milliseconds (`2026-11-28T19:48:08.123Z`), and in
/// the OpenAPI description a `date-time` string. One type, so that no field
/// can forget how it is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Timestamp(DateTime<Utc>);

/// The current time, truncated to the millisecond so that both backends store
/// and return exactly the same value.
pub fn now() -> Timestamp {
    Timestamp(Utc::now().trunc_subsecs(3))
}

impl Timestamp {
    /// Milliseconds since 1970 (how SQLite stores times) as a time; out of
    /// range is 1970.
    pub fn from_millis(ms: i64) -> Timestamp {
        DateTime::from_timestamp_millis(ms).map(Timestamp).unwrap_or_default()
    }

    pub fn millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    /// As JSON writes it.
    pub fn rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn checked_add(self, delta: TimeDelta) -> Option<Timestamp> {
        self.0.checked_add_signed(delta).map(Timestamp)
    }

    pub fn checked_sub(self, delta: TimeDelta) -> Option<Timestamp> {
        self.0.checked_sub_signed(delta).map(Timestamp)
    }
}

impl Deref for Timestamp {
    type Target = DateTime<Utc>;

    fn deref(&self) -> &DateTime<Utc> {
        &self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Timestamp(at)
    }
}

impl Add<TimeDelta> for Timestamp {
    type Output = Timestamp;

    fn add(self, delta: TimeDelta) -> Timestamp {
        Timestamp(self.0 + delta)
    }
}

impl Sub<TimeDelta> for Timestamp {
    type Output = Timestamp;

    fn sub(self, delta: TimeDelta) -> Timestamp {
        Timestamp(self.0 - delta)
    }
}

impl Sub for Timestamp {
    type Output = TimeDelta;

    fn sub(self, earlier: Timestamp) -> TimeDelta {
        self.0 - earlier.0
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        DateTime::<Utc>::deserialize(deserializer).map(Timestamp)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("UTC, RFC 3339 with milliseconds"))
            .examples(["2026-11-28T19:48:08.123Z"])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}
