//! Seatkeeper's license store: the one place that reads and writes
//! organizations, products, devices, seats and the ignore list.
//!
//! [`LicenseStore`] is the interface; [`sqlite::SqliteStore`] and
//! [`postgres::PgStore`] implement it, and [`Store`] is whichever one the
//! database URL names. Every domain rule of docs/contract.md that touches data lives
//! behind this interface, and the seat invariant (assignments never exceed
//! seats) is held by the database's own atomicity in each backend, never by a
//! read in Rust followed by a write.

#![allow(async_fn_in_trait)]

mod audit;
pub mod bulk;
mod error;
pub mod keys;
pub mod sealed;
mod group;
mod memory;
mod model;
pub mod postgres;
pub mod sqlite;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;
pub mod webhooks;

pub use error::{ErrorCode, StoreError};
pub use model::*;
pub use store::Store;
pub(crate) use audit::Change;

use std::str::FromStr;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Organizations and their keys: what the operator creates and what a key opens.
pub trait Organizations {
    /// On a database with no organization at all, creates `default` with a demo
    /// product and returns its keys; otherwise does nothing. Safe to race.
    async fn bootstrap(&self) -> Result<Option<NewOrganization>>;

    async fn create_organization(&self, name: &str) -> Result<NewOrganization>;

    async fn organizations(&self) -> Result<Vec<OrganizationSummary>>;

    async fn organization_by_name(&self, name: &str) -> Result<Organization>;

    /// The organization whose administration key this is.
    async fn authenticate_admin(&self, admin_key: &str) -> Result<Option<Organization>>;

    /// The organization whose product key this is.
    async fn authenticate_product(&self, product_key: &str) -> Result<Option<OrgId>>;

    async fn settings(&self, org: OrgId) -> Result<Settings>;

    /// Issues a new product key; the old one stops working at once.
    async fn rotate_product_key(&self, org: OrgId, by: Actor) -> Result<String>;

    /// Issues a new administration key; the old one stops working at once,
    /// and so does every browser session it signed in.
    async fn rotate_admin_key(&self, org: OrgId, by: Actor) -> Result<String>;
}

/// Browser sessions that an administration key signed in.
pub trait Sessions {
    /// Signs a browser in for the organization; returns the session id for its
    /// cookie. Only a digest of the id is stored.
    async fn create_session(&self, org: OrgId, lifetime: std::time::Duration) -> Result<String>;

    /// The organization of a live (unexpired, not ended) session.
    async fn session(&self, session_id: &str) -> Result<Option<Organization>>;

    /// Signs the browser out.
    async fn end_session(&self, session_id: &str) -> Result<()>;

    /// Leaves a one-time message (sealed by the caller) for this session's
    /// next page; a later one replaces it.
    async fn set_session_flash(&self, session_id: &str, flash: &[u8]) -> Result<()>;

    /// This session's message, if one waits, and forgets it.
    async fn take_session_flash(&self, session_id: &str) -> Result<Option<Vec<u8>>>;
}

/// Products, their seats and policies, and who holds their seats.
pub trait Products {
    async fn add_product(&self, org: OrgId, product: &NewProduct, by: Actor) -> Result<Product>;

    /// Sets the seat count. Lowering it below what is assigned revokes nothing.
    async fn set_seats(&self, org: OrgId, code: &str, seats: i64, by: Actor) -> Result<Product>;

    /// The organization's products, ordered by name.
    async fn products(&self, org: OrgId) -> Result<Vec<Product>>;

    async fn product(&self, org: OrgId, code: &str) -> Result<Product>;

    async fn set_auto_assign(&self, org: OrgId, code: &str, auto_assign: bool, by: Actor) -> Result<Product>;

    async fn policy(&self, org: OrgId, code: &str) -> Result<ProductPolicy>;

    /// Every product's policy, by product code.
    async fn policies(&self, org: OrgId) -> Result<Vec<(String, ProductPolicy)>>;

    /// Changes what the update names of the product's policy.
    async fn update_policy(&self, org: OrgId, code: &str, update: &PolicyUpdate, by: Actor) -> Result<ProductPolicy>;

    /// Sets the last day (UTC) of the organization's subscription to the
    /// product (`None`: no end); the vendor's, through the operator's command
    /// line. Nothing is deleted when it passes, so extending it restores
    /// every seat as it was.
    async fn set_term(&self, org: OrgId, code: &str, valid_until: Option<chrono::NaiveDate>, by: Actor) -> Result<Product>;

    /// The organization's name, the product's license validity and its
    /// subscription's last day: what a signed license says.
    async fn license_terms(&self, org: OrgId, code: &str) -> Result<LicenseTerms>;

    /// The devices holding a seat of the product, by serial.
    async fn holders(&self, org: OrgId, code: &str, page: &PageRequest) -> Result<Page<Holder>>;
}

/// Devices and the ignore list.
pub trait Devices {
    /// Devices by serial; `query` keeps those whose serial contains it
    /// (ignoring ASCII case).
    async fn devices(&self, org: OrgId, query: Option<&str>, page: &PageRequest) -> Result<Page<Device>>;

    async fn device(&self, org: OrgId, serial: &str) -> Result<DeviceDetail>;

    /// Removes the device and frees every seat it held.
    async fn delete_device(&self, org: OrgId, serial: &str, by: Actor) -> Result<()>;

    /// Removes the device (if known) and puts its serial on the ignore list;
    /// says whether a recorded device was removed.
    async fn ignore_device(&self, org: OrgId, serial: &str, by: Actor) -> Result<bool>;

    async fn ignored(&self, org: OrgId, page: &PageRequest) -> Result<Page<IgnoredSerial>>;

    async fn unignore(&self, org: OrgId, serial: &str, by: Actor) -> Result<()>;
}

/// Seats an admin or the idle-seat reclaim gives and takes.
pub trait Seats {
    /// An admin gives the device a seat of the product, if one is free. Clears
    /// an earlier revoke.
    async fn assign(&self, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<Assigned>;

    /// An admin takes the product's seat from the device. Auto-assign will not
    /// hand it back until an admin assigns it again or the device is deleted.
    async fn unassign(&self, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<()>;

    /// A bulk action's changes (`product` for assign and unassign), each
    /// device through the same rules as alone, in transactions of
    /// [`bulk::SLICE`] devices: one commit for a slice instead of one per
    /// device. Each device's outcome (`Newly` for one done, `Already` for a
    /// seat already held); a database failure stops the run after the last
    /// slice committed.
    async fn bulk(&self, org: OrgId, action: bulk::BulkAction, product: &str, serials: &[String], by: Actor)
    -> Result<Vec<Result<Assigned>>>;

    /// The devices waiting in the product's line that still ask, longest
    /// first (at most 1,000).
    async fn waiting_line(&self, org: OrgId, code: &str) -> Result<Vec<Waiting>>;

    /// Takes the device out of the product's waiting line; says whether it
    /// was in it. Asking to wait again puts it at the back.
    async fn remove_from_line(&self, org: OrgId, code: &str, serial: &str, by: Actor) -> Result<bool>;

    /// Frees the seats of devices that have not checked in for their
    /// product's `reclaim_after_days` as of `now`, recording each as
    /// reclaimed (not revoked: auto-assign may give it back). Says how many.
    async fn reclaim_idle_seats(&self, now: Timestamp) -> Result<u64>;
}

/// Check-ins: the hot path.
pub trait CheckIns {
    /// A check-in's first look, which writes nothing: the organization of
    /// the product key it carries and, if the device already holds its seat
    /// of the product, that seat. The check-in API looks first, then applies
    /// the organization's rate limit, then answers with [`Self::check_in_held`]
    /// or [`Self::check_in`]; a check-in refused in between leaves no trace.
    async fn first_look(&self, product_key: &str, code: &str, serial: &str) -> Result<FirstLook>;

    /// Answers the check-in of a device that [`Self::first_look`] found holding
    /// its seat: licensed, its `last seen` now (written within a second,
    /// shown at once by this process's reads).
    async fn check_in_held(&self, code: &str, serial: &str, seat: HeldSeat) -> Result<CheckIn>;

    /// A device checks in for a product: it is recorded (or its last seen
    /// updated) and learns whether it holds a seat, getting one from
    /// auto-assign when the rules allow.
    async fn check_in(&self, org: OrgId, code: &str, serial: &str) -> Result<CheckIn> {
        self.check_in_or_wait(org, code, serial, false).await
    }

    /// [`Self::check_in`], and with `queue`, a device refused for want of a
    /// seat waits in the product's line (see `group::decide`): a freed seat
    /// goes to the device that has waited longest and still asks.
    async fn check_in_or_wait(&self, org: OrgId, code: &str, serial: &str, queue: bool) -> Result<CheckIn>;

    /// A device gives back its floating seat of the product, which is free
    /// at once for the next device; says whether it held one. An assigned
    /// seat is not given back this way (`false`).
    async fn release(&self, org: OrgId, code: &str, serial: &str) -> Result<bool>;
}

/// The audit log: every change, who made it, when.
pub trait AuditLog {
    /// The organization's changes that pass the filter, newest first; a
    /// page's `next` is the id to continue before.
    async fn activity(&self, org: OrgId, filter: &ActivityFilter) -> Result<Page<Activity>>;

    /// Deletes changes recorded before `before`; says how many.
    async fn prune_activity(&self, before: Timestamp) -> Result<u64>;
}

/// Seat usage over time, and now.
pub trait Usage {
    /// Records every product's seats and assignments as of `now` for its day
    /// (a later reading the same day replaces it). Says how many products.
    async fn snapshot_usage(&self, now: Timestamp) -> Result<u64>;

    /// The organization's products' daily readings from `since_day` on, by
    /// product code, oldest first.
    async fn usage(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, UsagePoint)>>;

    /// Every product of every organization with its seats and assignments.
    async fn seat_totals(&self) -> Result<Vec<SeatTotal>>;

    /// The organization's products' refusals for want of a seat from
    /// `since_day` on, by product code, oldest first (days with none left out).
    async fn refusals(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, Refusals)>>;

    /// How many distinct devices each of the organization's products refused
    /// for want of a seat from `since_day` on, by product code (products with
    /// none left out).
    async fn refused_devices(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, i64)>>;
}

/// Webhooks: an organization's endpoints, the outbox of messages waiting
/// for each, and every delivery attempt. A change that tells webhooks of
/// itself writes its messages in its own transaction (see `audit.rs`); the
/// server's dispatcher claims them, delivers them and says how it went.
pub trait Webhooks {
    /// Adds an endpoint (its URL checked by [`Store::create_webhook`]) with
    /// its secret as stored (sealed when the server has a secrets key).
    async fn add_webhook(&self, org: OrgId, url: &str, events: &[WebhookEvent], secret: &[u8], by: Actor) -> Result<Webhook>;

    /// The organization's endpoints, oldest first.
    async fn webhooks(&self, org: OrgId) -> Result<Vec<Webhook>>;

    /// Deletes an endpoint with its waiting messages and its attempts.
    async fn delete_webhook(&self, org: OrgId, id: i64, by: Actor) -> Result<()>;

    /// An endpoint's delivery attempts, newest first; a page's `next` is the
    /// attempt to continue before.
    async fn delivery_attempts(&self, org: OrgId, id: i64, page: &PageRequest) -> Result<Page<DeliveryAttempt>>;

    /// Claims, until `claim_until`, the first waiting message of each
    /// endpoint that is due by `now` and not claimed by another sender (at
    /// most `limit`): an endpoint's messages go out one at a time, in order.
    async fn claim_messages(&self, now: Timestamp, claim_until: Timestamp, limit: i64) -> Result<Vec<OutboxMessage>>;

    /// Records an attempt to deliver a claimed message: delivered or given
    /// up on (no `retry_at`), it leaves the outbox; otherwise it waits
    /// until `retry_at`, unclaimed.
    async fn finish_message(&self, message: &OutboxMessage, attempted: &Attempted) -> Result<()>;

    /// Tells webhooks of what the alerts found since the last call, each
    /// once: a product's seats taken reaching its `alert_at_percent`,
    /// refusals for want of a seat (at most one message a minute per
    /// product), a subscription ending within 14 days. Says how many.
    async fn raise_alerts(&self, now: Timestamp) -> Result<u64>;

    /// Forgets delivery attempts made before `before`; says how many.
    async fn prune_webhook_attempts(&self, before: Timestamp) -> Result<u64>;
}

/// The server's keys that sign licenses.
pub trait SigningKeys {
    /// Every signing key, the active one (if any) first, then the newest.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>>;

    /// Stores a new signing key. With `retire_active`, the active key is
    /// retired in the same transaction (a rotation); without, the key is
    /// added only if none is active (the first start; safe to race), and the
    /// answer says whether it was.
    async fn add_signing_key(&self, key: &StoredSigningKey, retire_active: bool) -> Result<bool>;

    /// Replaces a signing key's stored secret with `new` (the same key,
    /// sealed), if it is still `old`; says whether it did.
    async fn replace_signing_secret(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool>;
}

/// The alert on seats taken: whether `assigned` of `seats` is at or above
/// `alert_at_percent` (never for a product without seats).
pub(crate) fn at_alert_threshold(seats: i64, assigned: i64, alert_at_percent: Option<i64>) -> bool {
    match alert_at_percent {
        Some(percent) if seats > 0 => assigned.saturating_mul(100) >= seats.saturating_mul(percent),
        _ => false,
    }
}

/// Every area at once: what [`Store`] and each backend implement.
pub trait LicenseStore:
    Organizations + Sessions + Products + Devices + Seats + CheckIns + AuditLog + Usage + Webhooks + SigningKeys
{
}

impl<T> LicenseStore for T where
    T: Organizations + Sessions + Products + Devices + Seats + CheckIns + AuditLog + Usage + Webhooks + SigningKeys
{
}

/// The store's traits, for callers: `use store::prelude::*;`.
pub mod prelude {
    pub use crate::{AuditLog, CheckIns, Devices, LicenseStore, Organizations, Products, Seats, Sessions, SigningKeys, Usage, Webhooks};
}

/// The check-in rule for a known device, before any seat is taken: the one
/// place both backends learn what docs/contract.md says a check-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeatRule {
    /// It holds a seat: licensed.
    Holds,
    /// Not licensed, for this reason.
    Denied(Denial),
    /// Auto-assign may give it a free seat; without one, `NoSeatsAvailable`.
    TakeFreeSeat,
}

impl SeatRule {
    pub(crate) fn for_device(holds_seat: bool, revoked_by_admin: bool, auto_assign: bool) -> SeatRule {
        if holds_seat {
            SeatRule::Holds
        } else if revoked_by_admin {
            // An admin's revoke sticks until an admin assigns again.
            SeatRule::Denied(Denial::RevokedByAdmin)
        } else if !auto_assign {
            SeatRule::Denied(Denial::AutoAssignDisabled)
        } else {
            SeatRule::TakeFreeSeat
        }
    }
}

/// The organization and demo product a fresh database starts with, so that a
/// newcomer can sign in and check a device in at once.
pub const DEFAULT_ORGANIZATION: &str = "default";

/// When a session signed in now for `lifetime` expires.
pub(crate) fn expiry(now: Timestamp, lifetime: std::time::Duration) -> Timestamp {
    chrono::Duration::from_std(lifetime).ok().and_then(|d| now.checked_add(d)).unwrap_or(now)
}

pub(crate) fn pool_stats<DB: sqlx::Database>(name: &'static str, pool: &sqlx::Pool<DB>) -> PoolStats {
    PoolStats {
        name,
        size: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        max: pool.options().get_max_connections(),
    }
}

/// A policy's columns, as both backends select them ([`PolicyColumns`]).
macro_rules! policy_columns {
    () => {
        "license_days, reclaim_after_days, seat_model, lease_minutes, alert_at_percent"
    };
}
pub(crate) use policy_columns;

pub(crate) type PolicyColumns = (i64, Option<i64>, String, i64, Option<i64>);

pub(crate) fn policy_from((license_days, reclaim_after_days, seat_model, lease_minutes, alert_at_percent): PolicyColumns) -> ProductPolicy {
    ProductPolicy {
        license_days,
        reclaim_after_days,
        seat_model: SeatModel::parse(&seat_model).unwrap_or_default(),
        lease_minutes,
        alert_at_percent,
    }
}

pub(crate) fn seat_total((organization, product, seats, assigned): (String, String, i64, i64)) -> SeatTotal {
    SeatTotal { organization, product, seats, assigned }
}

/// Rows of the audit log as both backends read them, with unknown names
/// (written by a newer version) left out rather than failing the page.
pub(crate) fn activity_page(rows: Vec<ActivityRow>, limit: i64) -> Page<Activity> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let items: Vec<Activity> = rows
        .into_iter()
        .take(limit)
        .filter_map(|(id, at, actor, kind, product, serial, detail)| {
            Some(Activity {
                id,
                at,
                actor: Actor::parse(&actor)?,
                kind: ActivityKind::parse(&kind)?,
                product,
                serial,
                detail,
            })
        })
        .collect();
    let next = if more { items.last().map(|last| last.id.to_string()) } else { None };
    Page { items, next }
}

/// The audit-log query for a filter, the same on both backends but for how
/// each stores a time (`at`): milliseconds on SQLite, `timestamptz` on
/// PostgreSQL, which `time` converts to.
pub(crate) fn activity_query<'q, DB, T>(
    org: OrgId,
    filter: &ActivityFilter,
    limit: i64,
    time: fn(Timestamp) -> T,
) -> sqlx::QueryBuilder<'q, DB>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    T: sqlx::Encode<'q, DB> + sqlx::Type<DB> + 'q,
{
    let mut select = sqlx::QueryBuilder::new("select id, at, actor, kind, product, serial, detail from activity where org_id = ");
    select.push_bind(org.0);
    if let Some(product) = &filter.product {
        select.push(" and product = ").push_bind(product.clone());
    }
    if let Some(serial) = &filter.serial {
        select.push(" and serial = ").push_bind(serial.clone());
    }
    if let Some(kind) = filter.kind {
        select.push(" and kind = ").push_bind(kind.as_str().to_owned());
    }
    if let Some(actor) = filter.actor {
        select.push(" and actor = ").push_bind(actor.as_str().to_owned());
    }
    if let Some(since) = filter.since {
        select.push(" and at >= ").push_bind(time(since));
    }
    if let Some(until) = filter.until {
        select.push(" and at < ").push_bind(time(until));
    }
    if let Some(before) = filter.before {
        select.push(" and id < ").push_bind(before);
    }
    select.push(" order by id desc limit ").push_bind(limit + 1);
    select
}

pub(crate) type ActivityRow = (i64, Timestamp, String, String, Option<String>, Option<String>, Option<String>);

pub(crate) fn demo_product() -> NewProduct {
    NewProduct { code: "demo".into(), name: "Demo App".into(), seats: 5, auto_assign: true }
}

/// Parses a `sqlite:` URL's options; shared by the backend and its tests.
pub(crate) fn sqlite_options(url: &str) -> Result<sqlx::sqlite::SqliteConnectOptions> {
    sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(StoreError::from)
}
