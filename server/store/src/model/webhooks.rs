//! Webhooks: the endpoints an organization has Seatkeeper tell of changes,
//! the events they subscribe to, and each delivery attempt.

use super::*;
use crate::OrgId;

/// What a webhook may be told of. Stored as one bit each (see
/// [`WebhookEvent::bit`]); a bit, once given, is never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum WebhookEvent {
    /// A product's seats in use reached its `alert_at_percent`.
    #[serde(rename = "seats.threshold_reached")]
    SeatsThresholdReached,
    /// Check-ins were refused for want of a seat (at most one message a
    /// minute per product, with the count).
    #[serde(rename = "checkin.refused")]
    CheckinRefused,
    /// A product's subscription ends within 14 days.
    #[serde(rename = "subscription.expiring")]
    SubscriptionExpiring,
    /// A device got a seat, from an admin or from auto-assign.
    #[serde(rename = "seat.assigned")]
    SeatAssigned,
    /// An admin revoked a device's seat.
    #[serde(rename = "seat.revoked")]
    SeatRevoked,
    #[serde(rename = "device.deleted")]
    DeviceDeleted,
    #[serde(rename = "device.ignored")]
    DeviceIgnored,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 7] = [
        WebhookEvent::SeatsThresholdReached,
        WebhookEvent::CheckinRefused,
        WebhookEvent::SubscriptionExpiring,
        WebhookEvent::SeatAssigned,
        WebhookEvent::SeatRevoked,
        WebhookEvent::DeviceDeleted,
        WebhookEvent::DeviceIgnored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::SeatsThresholdReached => "seats.threshold_reached",
            WebhookEvent::CheckinRefused => "checkin.refused",
            WebhookEvent::SubscriptionExpiring => "subscription.expiring",
            WebhookEvent::SeatAssigned => "seat.assigned",
            WebhookEvent::SeatRevoked => "seat.revoked",
            WebhookEvent::DeviceDeleted => "device.deleted",
            WebhookEvent::DeviceIgnored => "device.ignored",
        }
    }

    pub fn parse(name: &str) -> Option<WebhookEvent> {
        WebhookEvent::ALL.into_iter().find(|event| event.as_str() == name)
    }

    /// Its bit in `webhooks.events`.
    pub fn bit(self) -> i64 {
        1 << match self {
            WebhookEvent::SeatsThresholdReached => 0,
            WebhookEvent::CheckinRefused => 1,
            WebhookEvent::SubscriptionExpiring => 2,
            WebhookEvent::SeatAssigned => 3,
            WebhookEvent::SeatRevoked => 4,
            WebhookEvent::DeviceDeleted => 5,
            WebhookEvent::DeviceIgnored => 6,
        }
    }

    pub fn bits(events: &[WebhookEvent]) -> i64 {
        events.iter().fold(0, |bits, event| bits | event.bit())
    }

    /// What the Settings screen calls it.
    pub fn label(self) -> &'static str {
        match self {
            WebhookEvent::SeatsThresholdReached => "Seats in use reach the alert threshold",
            WebhookEvent::CheckinRefused => "Check-ins refused for want of a seat",
            WebhookEvent::SubscriptionExpiring => "A subscription ends within 14 days",
            WebhookEvent::SeatAssigned => "A seat is assigned",
            WebhookEvent::SeatRevoked => "An admin revokes a seat",
            WebhookEvent::DeviceDeleted => "A device is deleted",
            WebhookEvent::DeviceIgnored => "A device is ignored",
        }
    }
}

/// An organization's webhook endpoint. Its signing secret is shown once,
/// when it is added ([`NewWebhook`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub created_at: Timestamp,
}

/// A webhook just added, with its signing secret (`whsec_` and the base64
/// of its bytes): shown only now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewWebhook {
    pub id: i64,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub created_at: Timestamp,
    pub secret: String,
}

/// One attempt to deliver a message to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    /// The message's id (its `webhook-id` header): the same on every
    /// attempt of one message.
    pub message_id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event: String,
    /// 1 for the first attempt of the message, 2 for the next…
    pub attempt: i64,
    /// When it was made.
    pub time: Timestamp,
    /// The endpoint's HTTP status; `null` when none came back.
    #[schema(required = true)]
    pub status: Option<i64>,
    /// What went wrong; `null` for a delivery (a 2xx answer).
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A message of the outbox claimed for delivery by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub org: OrgId,
    pub webhook_id: i64,
    pub url: String,
    /// The endpoint's secret as stored (sealed when the server has a
    /// secrets key): [`crate::Store::webhook_secret`] opens it.
    pub secret: Vec<u8>,
    pub event: String,
    pub at: Timestamp,
    /// The event's `data`, as JSON text.
    pub data: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl OutboxMessage {
    /// Its `webhook-id`: the same on every attempt.
    pub fn message_id(&self) -> String {
        format!("msg_{}", self.id)
    }
}

/// How an attempt to deliver a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub at: Timestamp,
    pub status: Option<i64>,
    /// `None`: delivered.
    pub error: Option<String>,
    /// When to try again; `None` once delivered or given up on.
    pub retry_at: Option<Timestamp>,
}
