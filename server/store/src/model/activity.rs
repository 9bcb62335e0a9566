//! The audit log as the store hands it out, and its filters.

#[allow(unused_imports)]
use super::*;

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
    TermChanged,
    SeatAssigned,
    SeatAutoAssigned,
    SeatRevoked,
    SeatReclaimed,
    SeatReleased,
    RemovedFromQueue,
    DeviceDeleted,
    DeviceIgnored,
    DeviceUnignored,
    ProductKeyRotated,
    AdminKeyRotated,
    WebhookAdded,
    WebhookDeleted,
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
    TermChanged => "term_changed",
    SeatAssigned => "seat_assigned",
    SeatAutoAssigned => "seat_auto_assigned",
    SeatRevoked => "seat_revoked",
    SeatReclaimed => "seat_reclaimed",
    SeatReleased => "seat_released",
    RemovedFromQueue => "removed_from_queue",
    DeviceDeleted => "device_deleted",
    DeviceIgnored => "device_ignored",
    DeviceUnignored => "device_unignored",
    ProductKeyRotated => "product_key_rotated",
    AdminKeyRotated => "admin_key_rotated",
    WebhookAdded => "webhook_added",
    WebhookDeleted => "webhook_deleted",
});

/// One change in an organization's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Activity {
    pub id: i64,
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
    at.filter(|at| (1..=10_000).contains(&at.year())).map(Timestamp::from).ok_or_else(|| {
        crate::StoreError::invalid(format!("{what} must be a date (2026-11-29) or an RFC 3339 time, in the years 1 to 9999"))
    })
}
