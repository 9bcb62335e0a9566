//! Devices, the seats they hold and the ignore list.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub serial: String,
    /// The first check-in.
    pub first_seen: Timestamp,
    /// The latest check-in (it may lag a check-in by up to a second).
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
    pub assigned_at: Timestamp,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// For a floating seat: when its lease ends unless the device checks in
    /// again before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
}

/// A device waiting in a product's line for a seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Waiting {
    /// 1 is next.
    pub position: i64,
    pub serial: String,
    pub waiting_since: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IgnoredSerial {
    pub serial: String,
    pub ignored_at: Timestamp,
}
