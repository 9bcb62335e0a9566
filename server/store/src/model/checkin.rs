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
