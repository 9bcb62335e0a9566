//! The things the store hands out, in the product's words.
//!
//! These are plain data: no SQL and no secrets beyond the keys an operator or
//! admin is meant to see at that moment.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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

/// An organization's row id. Only the store makes these, after resolving a key
/// or a name, so holding one means the organization exists (or did a moment ago).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgId(pub(crate) i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
}

/// What `org list` shows of each organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganizationSummary {
    pub name: String,
    pub products: i64,
    pub devices: i64,
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
}

/// A newly created organization with both of its keys, shown in full once.
#[derive(Debug, Clone, Serialize)]
pub struct NewOrganization {
    pub name: String,
    pub admin_key: String,
    pub product_key: String,
}

/// What the operator gives to create a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub code: String,
    pub name: String,
    pub seats: i64,
    pub auto_assign: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub code: String,
    pub name: String,
    /// Seats the organization owns.
    pub seats: i64,
    /// Seats held by devices; above `seats` when the operator lowered them.
    pub assigned: i64,
    /// Seats free to assign: `seats - assigned`, never below 0.
    pub available: i64,
    /// Whether a device checking in gets a free seat without an admin.
    pub auto_assign: bool,
}

/// The product columns both backends select, in the order of [`ProductColumns`].
macro_rules! product_columns {
    () => {
        "code, name, seats, assigned, auto_assign"
    };
}
pub(crate) use product_columns;

/// A row of [`product_columns!`].
pub(crate) type ProductColumns = (String, String, i64, i64, bool);

impl From<ProductColumns> for Product {
    fn from((code, name, seats, assigned, auto_assign): ProductColumns) -> Self {
        Product { code, name, seats, assigned, available: (seats - assigned).max(0), auto_assign }
    }
}

impl Product {

    /// More seats are assigned than the organization owns: the operator lowered
    /// the seat count and nothing is revoked automatically.
    pub fn over_allocated(&self) -> bool {
        self.assigned > self.seats
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub serial: String,
    /// The first check-in.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: Timestamp,
    /// The latest check-in (it may lag a check-in by up to a second).
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Timestamp,
    /// How many products' seats the device holds.
    pub seats_assigned: i64,
}

/// One product of the organization as seen from one device: the Device
/// screen's *Assigned Licenses* list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceLicense {
    pub product: String,
    pub name: String,
    pub assigned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    pub licenses: Vec<DeviceLicense>,
}

/// A device holding a seat of one product: a row of the Product screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Holder {
    pub serial: String,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub assigned_at: Timestamp,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: Timestamp,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IgnoredSerial {
    pub serial: String,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ignored_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub organization_name: String,
    pub product_key: String,
}

/// How a product's licenses behave beyond its seats. Kept apart from
/// [`Product`], whose fields docs/contract.md fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductPolicy {
    /// Days a signed license stays valid after the check-in that issued it.
    #[schema(minimum = 1, maximum = 365)]
    pub license_days: i64,
    /// Seats of devices not seen for this many days are freed (`null`: never).
    #[schema(required = true, minimum = 1, maximum = 3650)]
    pub reclaim_after_days: Option<i64>,
}

impl ProductPolicy {
    /// The audit log's words for a change from `self` to `after`.
    pub(crate) fn changes_to(&self, after: &ProductPolicy) -> String {
        let days = |days: Option<i64>| days.map_or_else(|| "never".to_owned(), |days| days.to_string());
        let mut changes = Vec::new();
        if self.license_days != after.license_days {
            changes.push(format!("license_days {} → {}", self.license_days, after.license_days));
        }
        if self.reclaim_after_days != after.reclaim_after_days {
            changes.push(format!("reclaim_after_days {} → {}", days(self.reclaim_after_days), days(after.reclaim_after_days)));
        }
        if changes.is_empty() { "unchanged".to_owned() } else { changes.join(", ") }
    }
}

/// What an admin changes of a product's policy at once; a field left out
/// (`None`) stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    /// Days a signed license stays valid; left out or `null`, it stays as it is.
    #[schema(minimum = 1, maximum = 365)]
    pub license_days: Option<i64>,
    /// Days after which idle seats are freed; `null` (`Some(None)`) turns
    /// reclaiming off, left out it stays as it is.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 3650)]
    pub reclaim_after_days: Option<Option<i64>>,
}

/// A field that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(deserializer).map(Some)
}

impl PolicyUpdate {
    pub fn is_empty(&self) -> bool {
        self.license_days.is_none() && self.reclaim_after_days.is_none()
    }

    pub(crate) fn validate(&self) -> Result<(), crate::StoreError> {
        if let Some(days) = self.license_days {
            crate::validate::license_days(days)?;
        }
        if let Some(Some(days)) = self.reclaim_after_days {
            crate::validate::reclaim_after_days(days)?;
        }
        Ok(())
    }
}

/// What a signed license says beyond the device and the product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseTerms {
    pub organization: String,
    pub license_days: i64,
}

/// One of the server's Ed25519 signing keys as stored. The secret never
/// leaves the server; the public half is published.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
    pub public: Vec<u8>,
    pub created_at: Timestamp,
    /// `None` for the key that signs now.
    pub retired_at: Option<Timestamp>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Why a check-in was answered "not licensed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
    AutoAssignDisabled,
    NoSeatsAvailable,
    RevokedByAdmin,
    DeviceIgnored,
}

/// The answer to a device's check-in. An ignored device is not recorded, so
/// it has no first or last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckIn {
    pub product: String,
    pub serial: String,
    pub licensed: bool,
    /// Why not, when `licensed` is false.
    #[schema(required = true)]
    pub reason: Option<Denial>,
    /// `null` for an ignored device, which is not recorded.
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub first_seen: Option<Timestamp>,
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_seen: Option<Timestamp>,
}

impl CheckIn {
    /// The answer to a device that already holds its seat of the product.
    pub(crate) fn held(product: &str, serial: &str, first_seen: Timestamp, last_seen: Timestamp) -> Self {
        CheckIn {
            product: product.to_owned(),
            serial: serial.to_owned(),
            licensed: true,
            reason: None,
            first_seen: Some(first_seen),
            last_seen: Some(last_seen),
        }
    }
}

/// What a check-in's first look found (see `CheckIns::first_look`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLook {
    /// No organization has this product key.
    UnknownKey,
    /// The key's organization, and the device's seat if it already holds one
    /// of the product.
    Arrived { org: OrgId, held: Option<HeldSeat> },
}

/// A seat a device was found holding, as its check-in's answer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldSeat {
    pub(crate) org: OrgId,
    pub(crate) device_id: i64,
    pub(crate) first_seen: Timestamp,
    /// On SQLite, the generation of the memory it was read from (see
    /// `memory::HeldSeats::unchanged_since`); unused on PostgreSQL.
    pub(crate) seen: u64,
}

/// What an admin's assign did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    Newly,
    Already,
}

/// One page of a list ordered by serial. `next` is the serial to continue
/// after, `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Where a page of a serial-ordered list starts and how long it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Continue after this serial (exclusive).
    pub after: Option<String>,
    pub limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn first(limit: u32) -> Self {
        PageRequest { after: None, limit }
    }

    /// The serial to continue after; every serial is greater than "", so the
    /// first page needs no separate query.
    pub(crate) fn after_serial(&self) -> &str {
        self.after.as_deref().unwrap_or("")
    }

    /// The limit, clamped to what one query may return. One row more than this
    /// is fetched to learn whether another page follows.
    pub(crate) fn clamped_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, Self::MAX_LIMIT))
    }
}

/// A search of 1 or 2 characters, which no trigram index can serve, walks
/// at most this many devices of the serial index per page: a search that
/// matches little of a million devices then costs each request a bounded
/// walk instead of the whole fleet. Such a page may hold fewer matches than
/// asked, even none, with a `next` where its walk stopped.
pub(crate) const SHORT_SEARCH_WALK: i64 = 10_000;

/// Whether a search is short enough to be walked in steps of [`SHORT_SEARCH_WALK`].
pub(crate) fn is_short_search(query: &str) -> bool {
    (1..3).contains(&query.chars().count())
}

impl<T> Page<T> {
    /// A page of a walk that stopped at `walked_to` (the last serial it
    /// looked at) without filling the page: it goes on from there.
    pub(crate) fn walked_to(mut self, walked_to: Option<String>) -> Self {
        if self.next.is_none() {
            self.next = walked_to;
        }
        self
    }

    /// Builds a page from `limit + 1` fetched rows: the extra row only says that
    /// there is more.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: i64, serial: impl Fn(&T) -> &str) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| serial(last).to_owned())
        } else {
            None
        };
        Page { items: rows, next }
    }
}

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

/// Who made a change, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The operator's command line.
    Operator,
    /// An admin signed in to the screens.
    AdminSession,
    /// A script with the administration API key.
    AdminApi,
    /// A device checking in (auto-assign).
    Device,
    /// The background task that frees idle seats.
    Reclaim,
}

/// What changed, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    ProductAdded,
    SeatsChanged,
    AutoAssignChanged,
    PolicyChanged,
    SeatAssigned,
    SeatAutoAssigned,
    SeatRevoked,
    SeatReclaimed,
    DeviceDeleted,
    DeviceIgnored,
    DeviceUnignored,
    ProductKeyRotated,
    AdminKeyRotated,
}

/// Both enums are stored and filtered by their snake_case names.
macro_rules! named {
    ($type:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $type {
            pub const ALL: &[$type] = &[$($type::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($type::$variant => $name),* }
            }

            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some($type::$variant),)* _ => None }
            }
        }
    };
}

named!(Actor {
    Operator => "operator",
    AdminSession => "admin_session",
    AdminApi => "admin_api",
    Device => "device",
    Reclaim => "reclaim",
});

named!(ActivityKind {
    ProductAdded => "product_added",
    SeatsChanged => "seats_changed",
    AutoAssignChanged => "auto_assign_changed",
    PolicyChanged => "policy_changed",
    SeatAssigned => "seat_assigned",
    SeatAutoAssigned => "seat_auto_assigned",
    SeatRevoked => "seat_revoked",
    SeatReclaimed => "seat_reclaimed",
    DeviceDeleted => "device_deleted",
    DeviceIgnored => "device_ignored",
    DeviceUnignored => "device_unignored",
    ProductKeyRotated => "product_key_rotated",
    AdminKeyRotated => "admin_key_rotated",
});

/// One change in an organization's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Activity {
    pub id: i64,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: Actor,
    pub kind: ActivityKind,
    #[schema(required = true)]
    pub product: Option<String>,
    #[schema(required = true)]
    pub serial: Option<String>,
    /// What changed, in words: `seats 10 → 5`, `auto-assign off`.
    #[schema(required = true)]
    pub detail: Option<String>,
}

/// Which changes to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    pub product: Option<String>,
    pub serial: Option<String>,
    pub kind: Option<ActivityKind>,
    pub actor: Option<Actor>,
    /// From this time on (inclusive).
    pub since: Option<Timestamp>,
    /// Before this time (exclusive).
    pub until: Option<Timestamp>,
    /// Continue with changes older than this id (a page's `next`).
    pub before: Option<i64>,
    pub limit: u32,
}

/// The audit log's filters as people and scripts type them (query
/// parameters); empty means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Changes to this product (its code).
    pub product: Option<String>,
    /// Changes to this device (its serial).
    pub serial: Option<String>,
    /// One kind of change.
    #[param(value_type = Option<ActivityKind>)]
    pub kind: Option<String>,
    /// Changes by one kind of actor.
    #[param(value_type = Option<Actor>)]
    pub actor: Option<String>,
    /// A date (`2026-11-29`, from its start) or an RFC 3339 time.
    pub since: Option<String>,
    /// A date (`2026-11-29`, through its end) or an RFC 3339 time.
    pub until: Option<String>,
}

impl ActivityQuery {
    /// The filter these words describe, or what is wrong with them.
    pub fn filter(&self, before: Option<i64>, limit: u32) -> Result<ActivityFilter, crate::StoreError> {
        let given = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let named = |what: &str, value: &Option<String>, names: &[&str]| -> Result<Option<String>, crate::StoreError> {
            match given(value) {
                Some(name) if !names.contains(&name.as_str()) => {
                    Err(crate::StoreError::invalid(format!("{what} must be one of: {}", names.join(", "))))
                }
                name => Ok(name),
            }
        };
        let kinds: Vec<&str> = ActivityKind::ALL.iter().map(|k| k.as_str()).collect();
        let actors: Vec<&str> = Actor::ALL.iter().map(|a| a.as_str()).collect();
        let filter = ActivityFilter {
            product: given(&self.product),
            serial: given(&self.serial),
            kind: named("kind", &self.kind, &kinds)?.as_deref().and_then(ActivityKind::parse),
            actor: named("actor", &self.actor, &actors)?.as_deref().and_then(Actor::parse),
            since: given(&self.since).map(|at| moment("since", &at, false)).transpose()?,
            until: given(&self.until).map(|at| moment("until", &at, true)).transpose()?,
            before,
            limit,
        };
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since >= until
        {
            return Err(crate::StoreError::invalid("since must be before until"));
        }
        Ok(filter)
    }
}

/// `2026-11-29` (its start, or with `end_of_day` the start of the next day)
/// or an RFC 3339 time.
/// Years 1 to 9999 only: both databases store them, and PostgreSQL refuses
/// some that chrono reads (`-100000-01-01`).
fn moment(what: &str, text: &str, end_of_day: bool) -> Result<Timestamp, crate::StoreError> {
    use chrono::Datelike;
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => Some(at.with_timezone(&Utc)),
        Err(_) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|day| if end_of_day { day.succ_opt() } else { Some(day) })
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|at| at.and_utc()),
    };
    at.filter(|at| (1..=10_000).contains(&at.year())).ok_or_else(|| {
        crate::StoreError::invalid(format!("{what} must be a date (2026-11-29) or an RFC 3339 time, in the years 1 to 9999"))
    })
}
