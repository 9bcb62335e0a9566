//! A check-in's answer and what the store finds on the way to it.

#[allow(unused_imports)]
use super::*;

/// Why a check-in was answered "not licensed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
    AutoAssignDisabled,
    NoSeatsAvailable,
    RevokedByAdmin,
    DeviceIgnored,
    /// The organization's subscription to the product has ended (its
    /// `valid_until` has passed); its seats are kept for when it is extended.
    SubscriptionExpired,
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
    #[schema(required = true)]
    pub first_seen: Option<Timestamp>,
    #[schema(required = true)]
    pub last_seen: Option<Timestamp>,
    /// On a licensed answer for a floating seat only: when its lease ends
    /// unless the device checks in again before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
    /// On a refusal for want of a seat, of a device waiting in line (it asked
    /// with `"queue": true`): its place, 1 being next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub queue_position: Option<i64>,
}

impl CheckIn {
    /// The answer to a device that already holds its seat of the product.
    pub(crate) fn held(product: &str, serial: &str, seat: &HeldSeat, last_seen: Timestamp) -> Self {
        CheckIn {
            product: product.to_owned(),
            serial: serial.to_owned(),
            licensed: true,
            reason: None,
            first_seen: Some(seat.first_seen),
            last_seen: Some(last_seen),
            lease_expires_at: seat.lease.map(|lease| lease.until),
            queue_position: None,
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
    /// A floating seat's lease, as written.
    pub(crate) lease: Option<Lease>,
    /// On SQLite, the generation of the memory it was read from (see
    /// `memory::HeldSeats::unchanged_since`); unused on PostgreSQL.
    pub(crate) seen: u64,
}

/// A floating seat's lease as written: the seat is the device's until
/// `until`, whatever any process decides meanwhile. A check-in answers with
/// it as it stands until half of it is left; from `renew_from` on, a check-in
/// takes the full decision, which writes a new lease before answering. So an
/// answer never promises more of a lease than the database holds, and a
/// device checking in every few minutes renews its lease once per half
/// lease, not at every check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub until: Timestamp,
    pub renew_from: Timestamp,
}

impl Lease {
    /// The lease a decision at `now` writes for `minutes`.
    pub(crate) fn starting(now: Timestamp, minutes: i64) -> Lease {
        let until = now.checked_add(chrono::Duration::minutes(minutes)).unwrap_or(now);
        Lease::ending(until, minutes)
    }

    /// A lease written to end at `until`, for `minutes`.
    pub(crate) fn ending(until: Timestamp, minutes: i64) -> Lease {
        let renew_from = until.checked_sub(chrono::Duration::seconds(minutes * 30)).unwrap_or(until);
        Lease { until, renew_from }
    }

    /// Whether a check-in at `now` may be answered with this lease as it stands.
    pub(crate) fn holds_at(&self, now: Timestamp) -> bool {
        now < self.renew_from
    }
}

/// What an admin's assign did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    Newly,
    Already,
}
