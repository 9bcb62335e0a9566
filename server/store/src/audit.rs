//! The audit log's entries, each change worded once: both backends record
//! what these functions make, inside the transaction that makes the change,
//! and with it the webhook message the change tells of, if any (written to
//! the outbox by the same transaction: see `record` in each backend).

use serde_json::json;

use crate::keys::KeyKind;
use crate::{ActivityKind, Actor, Product, ProductPolicy, WebhookEvent};

/// A change about to be recorded, inside the transaction that makes it.
pub(crate) struct Change<'a> {
    pub by: Actor,
    pub kind: ActivityKind,
    pub product: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub detail: Option<String>,
    /// The webhook message this change sends: its event and `data`.
    pub tells: Option<(WebhookEvent, serde_json::Value)>,
}

impl<'a> Change<'a> {
    pub(crate) fn new(by: Actor, kind: ActivityKind) -> Self {
        Change { by, kind, product: None, serial: None, detail: None, tells: None }
    }

    fn tells(self, event: WebhookEvent, data: serde_json::Value) -> Self {
        Change { tells: Some((event, data)), ..self }
    }

    pub(crate) fn product(self, code: &'a str) -> Self {
        Change { product: Some(code), ..self }
    }

    pub(crate) fn serial(self, serial: &'a str) -> Self {
        Change { serial: Some(serial), ..self }
    }

    pub(crate) fn detail(self, detail: impl Into<String>) -> Self {
        Change { detail: Some(detail.into()), ..self }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

pub(crate) fn product_added(by: Actor, product: &Product) -> Change<'_> {
    let detail = format!("{} seats, auto-assign {}", product.seats, on_off(product.auto_assign));
    Change::new(by, ActivityKind::ProductAdded).product(&product.code).detail(detail)
}

pub(crate) fn seats_changed(by: Actor, code: &str, before: i64, after: i64) -> Change<'_> {
    Change::new(by, ActivityKind::SeatsChanged).product(code).detail(format!("seats {before} → {after}"))
}

pub(crate) fn auto_assign_changed(by: Actor, code: &str, on: bool) -> Change<'_> {
    Change::new(by, ActivityKind::AutoAssignChanged).product(code).detail(format!("auto-assign {}", on_off(on)))
}

pub(crate) fn policy_changed<'a>(by: Actor, code: &'a str, before: &ProductPolicy, after: &ProductPolicy) -> Change<'a> {
    Change::new(by, ActivityKind::PolicyChanged).product(code).detail(before.changes_to(after))
}

/// The vendor set (or cleared) the last day of a product's subscription.
pub(crate) fn term_changed(by: Actor, code: &str, before: Option<chrono::NaiveDate>, after: Option<chrono::NaiveDate>) -> Change<'_> {
    let day = |day: Option<chrono::NaiveDate>| day.map_or_else(|| "no end".to_owned(), |day| day.to_string());
    Change::new(by, ActivityKind::TermChanged).product(code).detail(format!("valid until {} → {}", day(before), day(after)))
}

pub(crate) fn key_rotated(by: Actor, kind: KeyKind) -> Change<'static> {
    let kind = if kind == KeyKind::Admin { ActivityKind::AdminKeyRotated } else { ActivityKind::ProductKeyRotated };
    Change::new(by, kind)
}

pub(crate) fn seat_assigned<'a>(by: Actor, code: &'a str, serial: &'a str) -> Change<'a> {
    Change::new(by, ActivityKind::SeatAssigned)
        .product(code)
        .serial(serial)
        .tells(WebhookEvent::SeatAssigned, json!({"product": code, "serial": serial, "by": by.as_str()}))
}

/// `freed`: whether the device held the seat; an admin may also revoke a
/// seat not held, to keep auto-assign from giving it.
pub(crate) fn seat_revoked<'a>(by: Actor, code: &'a str, serial: &'a str, freed: bool) -> Change<'a> {
    let change = Change::new(by, ActivityKind::SeatRevoked).product(code).serial(serial);
    if freed {
        change.tells(WebhookEvent::SeatRevoked, json!({"product": code, "serial": serial, "by": by.as_str()}))
    } else {
        change.detail("held no seat; auto-assign blocked")
    }
}

pub(crate) fn seat_reclaimed<'a>(code: &'a str, serial: &'a str, days: i64) -> Change<'a> {
    Change::new(Actor::Reclaim, ActivityKind::SeatReclaimed).product(code).serial(serial).detail(format!("not seen for {days} days"))
}

/// A floating seat freed for another device because its lease had ended.
pub(crate) fn lease_ended<'a>(code: &'a str, serial: &'a str) -> Change<'a> {
    Change::new(Actor::Reclaim, ActivityKind::SeatReclaimed).product(code).serial(serial).detail("lease ended")
}

/// A device gave its floating seat back.
pub(crate) fn seat_released<'a>(code: &'a str, serial: &'a str) -> Change<'a> {
    Change::new(Actor::Device, ActivityKind::SeatReleased).product(code).serial(serial)
}

/// An admin took a device out of a product's waiting line.
pub(crate) fn removed_from_queue<'a>(by: Actor, code: &'a str, serial: &'a str) -> Change<'a> {
    Change::new(by, ActivityKind::RemovedFromQueue).product(code).serial(serial)
}

pub(crate) fn device_deleted(by: Actor, serial: &str) -> Change<'_> {
    Change::new(by, ActivityKind::DeviceDeleted)
        .serial(serial)
        .tells(WebhookEvent::DeviceDeleted, json!({"serial": serial, "by": by.as_str()}))
}

/// `removed`: whether a recorded device was deleted with it.
pub(crate) fn device_ignored(by: Actor, serial: &str, removed: bool) -> Change<'_> {
    let change = Change::new(by, ActivityKind::DeviceIgnored)
        .serial(serial)
        .tells(WebhookEvent::DeviceIgnored, json!({"serial": serial, "by": by.as_str(), "removed": removed}));
    if removed { change.detail("the recorded device was removed") } else { change }
}

pub(crate) fn device_unignored(by: Actor, serial: &str) -> Change<'_> {
    Change::new(by, ActivityKind::DeviceUnignored).serial(serial)
}

pub(crate) fn webhook_added(by: Actor, url: &str) -> Change<'static> {
    Change::new(by, ActivityKind::WebhookAdded).detail(url)
}

pub(crate) fn webhook_deleted(by: Actor, url: &str) -> Change<'static> {
    Change::new(by, ActivityKind::WebhookDeleted).detail(url)
}

