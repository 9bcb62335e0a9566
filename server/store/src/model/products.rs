//! Products, their seats and their policies.

#[allow(unused_imports)]
use super::*;

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
    /// How its seats are held: `assigned` until freed, or `floating` (leased
    /// while the device keeps checking in). For a floating product,
    /// `assigned` counts the leases in use now. Not part of the product's
    /// JSON, whose fields docs/contract.md fixes: the policy says it.
    #[serde(skip)]
    pub seat_model: SeatModel,
    /// The last day (UTC) of the organization's subscription to the
    /// product, which its vendor sets; from the day after, check-ins are
    /// refused with `subscription_expired`. Absent: no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub valid_until: Option<chrono::NaiveDate>,
}

/// How a product's seats are held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeatModel {
    /// A seat belongs to its device until an admin, a delete or the
    /// idle-seat reclaim frees it.
    #[default]
    Assigned,
    /// A seat is leased: held while its device keeps checking in, and free
    /// for the next device that asks once the lease has ended.
    Floating,
}

impl SeatModel {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatModel::Assigned => "assigned",
            SeatModel::Floating => "floating",
        }
    }

    pub fn parse(name: &str) -> Option<SeatModel> {
        match name {
            "assigned" => Some(SeatModel::Assigned),
            "floating" => Some(SeatModel::Floating),
            _ => None,
        }
    }
}

/// The product columns both backends select, in the order of
/// [`ProductColumns`]. `assigned` is the column itself (`product_columns!()`:
/// the rows in `assignments`, which the seat decisions count) or the
/// backend's expression for the seats in use now (`product_columns!(in_use)`,
/// for what an admin sees: a floating product's ended leases left out).
macro_rules! product_columns {
    () => {
        "code, name, seats, assigned, auto_assign, seat_model, valid_until"
    };
    ($assigned:expr) => {
        concat!("code, name, seats, ", $assigned, " as assigned, auto_assign, seat_model, valid_until")
    };
}
pub(crate) use product_columns;

/// A row of [`product_columns!`].
pub(crate) type ProductColumns = (String, String, i64, i64, bool, String, Option<chrono::NaiveDate>);

impl From<ProductColumns> for Product {
    fn from((code, name, seats, assigned, auto_assign, seat_model, valid_until): ProductColumns) -> Self {
        Product {
            code,
            name,
            seats,
            assigned,
            available: (seats - assigned).max(0),
            auto_assign,
            seat_model: SeatModel::parse(&seat_model).unwrap_or_default(),
            valid_until,
        }
    }
}

/// Whether a subscription that ends on `valid_until` has ended at `now`:
/// from the day after it (UTC).
pub fn term_ended(valid_until: Option<chrono::NaiveDate>, now: Timestamp) -> bool {
    valid_until.is_some_and(|last_day| now.date_naive() > last_day)
}

/// The end of a subscription's last day: the first moment it has ended.
pub fn end_of_term(valid_until: chrono::NaiveDate) -> Timestamp {
    let next = valid_until.succ_opt().unwrap_or(valid_until);
    Timestamp::from(next.and_time(chrono::NaiveTime::MIN).and_utc())
}

impl Product {
    /// Whether its subscription has ended at `now`.
    pub fn term_ended(&self, now: Timestamp) -> bool {
        term_ended(self.valid_until, now)
    }

    /// More seats are assigned than the organization owns: the operator lowered
    /// the seat count and nothing is revoked automatically.
    pub fn over_allocated(&self) -> bool {
        self.assigned > self.seats
    }
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
    /// `assigned` (a seat belongs to its device until freed) or `floating`
    /// (a seat is leased while its device keeps checking in).
    pub seat_model: SeatModel,
    /// How long a floating seat's lease lasts after the check-in that renews
    /// it; kept, unused, while the product's seats are assigned.
    #[schema(minimum = 5, maximum = 1440)]
    pub lease_minutes: i64,
    /// An alert when the seats in use reach this share of the seats (`null`:
    /// none).
    #[schema(required = true, minimum = 1, maximum = 100)]
    pub alert_at_percent: Option<i64>,
}

impl ProductPolicy {
    /// Whether `product`'s seats in use have reached the alert's share.
    pub fn alerts_for(&self, product: &Product) -> bool {
        self.alert_at_percent.is_some_and(|percent| product.seats > 0 && product.assigned * 100 >= percent * product.seats)
    }
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
        if self.seat_model != after.seat_model {
            changes.push(format!("seat_model {} → {}", self.seat_model.as_str(), after.seat_model.as_str()));
        }
        if self.lease_minutes != after.lease_minutes {
            changes.push(format!("lease_minutes {} → {}", self.lease_minutes, after.lease_minutes));
        }
        if self.alert_at_percent != after.alert_at_percent {
            let percent = |p: Option<i64>| p.map_or_else(|| "none".to_owned(), |p| format!("{p}%"));
            changes.push(format!("alert_at_percent {} → {}", percent(self.alert_at_percent), percent(after.alert_at_percent)));
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
    #[serde(default, deserialize_with = "whole_days")]
    #[schema(minimum = 1, maximum = 365)]
    pub license_days: Option<i64>,
    /// Days after which idle seats are freed; `null` (`Some(None)`) turns
    /// reclaiming off, left out it stays as it is.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 3650)]
    pub reclaim_after_days: Option<Option<i64>>,
    /// `assigned` or `floating`; left out or `null`, it stays as it is.
    #[serde(default)]
    pub seat_model: Option<SeatModel>,
    /// Minutes a floating seat's lease lasts; left out or `null`, it stays
    /// as it is.
    #[serde(default, deserialize_with = "whole_days")]
    #[schema(minimum = 5, maximum = 1440)]
    pub lease_minutes: Option<i64>,
    /// The alert's share of seats in use, 1 to 100 percent; `null` turns the
    /// alert off, left out it stays as it is.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub alert_at_percent: Option<Option<i64>>,
}

/// A field that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<i64>>, D::Error> {
    whole_days(deserializer).map(Some)
}

/// A number of days (or minutes): a whole number, which JSON may also write
/// `30.0`.
fn whole_days<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Whole(i64),
        Written(f64),
    }
    match Option::<Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Number::Whole(days)) => Ok(Some(days)),
        Some(Number::Written(days)) if days.fract() == 0.0 && days.abs() < 1e15 => Ok(Some(days as i64)),
        Some(Number::Written(days)) => Err(serde::de::Error::custom(format!("{days} is not a whole number"))),
    }
}

impl PolicyUpdate {
    pub fn is_empty(&self) -> bool {
        self.license_days.is_none()
            && self.reclaim_after_days.is_none()
            && self.seat_model.is_none()
            && self.lease_minutes.is_none()
            && self.alert_at_percent.is_none()
    }

    pub(crate) fn validate(&self) -> Result<(), crate::StoreError> {
        if let Some(days) = self.license_days {
            crate::validate::license_days(days)?;
        }
        if let Some(Some(days)) = self.reclaim_after_days {
            crate::validate::reclaim_after_days(days)?;
        }
        if let Some(minutes) = self.lease_minutes {
            crate::validate::lease_minutes(minutes)?;
        }
        if let Some(Some(percent)) = self.alert_at_percent {
            crate::validate::alert_at_percent(percent)?;
        }
        Ok(())
    }
}

/// What a signed license says beyond the device and the product, and how
/// long the product's subscription lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseTerms {
    pub organization: String,
    pub license_days: i64,
    pub valid_until: Option<chrono::NaiveDate>,
}
