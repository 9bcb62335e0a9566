//! Webhook delivery: the sender that takes messages from the store's outbox
//! and POSTs them, signed, to their endpoints, and the alerts' heartbeat.
//!
//! A message is written to the outbox by the transaction of the change it
//! tells of (see the store's `audit.rs`), so a crash neither loses nor
//! invents one. The sender claims the first waiting message of each
//! endpoint for a while (several processes on PostgreSQL never send one
//! message at once), POSTs it, and records the attempt: delivered on a 2xx
//! answer, else tried again with exponential backoff for a day
//! (`store::webhooks::retry_after`). An endpoint's next message waits until
//! the one before it is done, so each endpoint gets its messages in order;
//! a slow or failing endpoint holds up only itself. A sender killed
//! mid-delivery leaves its claim, which runs out: the message is sent again
//! (at least once).
//!
//! Each delivery follows Standard Webhooks: a JSON body `{"type",
//! "timestamp", "data"}` and the headers `webhook-id` (the same on every
//! attempt), `webhook-timestamp` (Unix seconds of the attempt) and
//! `webhook-signature: v1,<base64 of HMAC-SHA256("{id}.{timestamp}.{body}")>`
//! keyed with the secret's bytes. Only public addresses are connected to
//! (a name is resolved at each delivery, and no redirect is followed),
//! unless the server runs with `--allow-private-webhooks`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use store::prelude::*;
use store::webhooks::{Destinations, retry_after};
use store::{Attempted, OutboxMessage, Store, Timestamp};
use tokio::sync::{Notify, Semaphore};

/// Deliveries under way at once in one process.
const IN_FLIGHT: usize = 32;

/// How often the outbox is looked at when nothing in this process woke
/// the sender (another process's changes, retries coming due).
const POLL: Duration = Duration::from_secs(1);

/// How often the alerts are looked at.
const ALERTS_EVERY: Duration = Duration::from_secs(1);

/// Delivery attempts are listed for this long.
const ATTEMPTS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Starts the sender and the alerts' heartbeat. `timeout`: how long an
/// endpoint has to answer one delivery.
pub fn spawn(store: Store, timeout: Duration) {
    let client = client(store.webhook_destinations(), timeout);
    tokio::spawn(send_forever(store.clone(), client, timeout));
    tokio::spawn(raise_alerts_forever(store));
}

/// The HTTP client of deliveries: no proxy, no redirect, public addresses
/// only (unless private ones are allowed), and `timeout` for the whole
/// exchange.
fn client(destinations: Destinations, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(PublicNames(destinations)))
        .user_agent(concat!("Seatkeeper-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the webhook client's settings are valid")
}

/// Resolves a name to the addresses a delivery may connect to, so that a
/// name that points at this machine or its network (now, or after the URL
/// was checked) is never reached.
struct PublicNames(Destinations);

impl reqwest::dns::Resolve for PublicNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let allowed: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|address| destinations.allows(address.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

async fn send_forever(store: Store, client: reqwest::Client, timeout: Duration) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // Woken when a delivery ends: its endpoint's next message may go now.
    let done = Arc::new(Notify::new());
    let mut pruned_at: Option<Timestamp> = None;
    loop {
        tokio::select! {
            _ = store.outbox_written() => {}
            _ = done.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        let free = slots.available_permits();
        if free == 0 {
            continue;
        }
        let now = store::now();
        // Long enough for the delivery and for its attempt to be recorded.
        let claim_until = now + chrono::TimeDelta::from_std(timeout).unwrap_or_default() + chrono::TimeDelta::seconds(10);
        let claimed = match store.claim_messages(now, claim_until, free as i64).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "reading the webhook outbox failed; trying again");
                continue;
            }
        };
        for message in claimed {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let (store, client, done) = (store.clone(), client.clone(), done.clone());
            tokio::spawn(async move {
                let attempted = deliver(&store, &client, &message).await;
                if let Err(error) = store.finish_message(&message, &attempted).await {
                    // The claim runs out and the message is sent again.
                    tracing::warn!(%error, message = message.message_id(), "recording a webhook delivery failed");
                }
                drop(slot);
                done.notify_one();
            });
        }
        if pruned_at.is_none_or(|at| now - at > chrono::TimeDelta::hours(1)) {
            pruned_at = Some(now);
            if let Err(error) = store.prune_webhook_attempts(now - ATTEMPTS_KEPT).await {
                tracing::warn!(%error, "forgetting old webhook delivery attempts failed");
            }
        }
    }
}

async fn raise_alerts_forever(store: Store) {
    let mut every = tokio::time::interval(ALERTS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(error) = store.raise_alerts(store::now()).await {
            tracing::warn!(%error, "looking at the alerts failed; trying again");
        }
    }
}

/// One attempt to deliver a message, and when to try again if it failed.
async fn deliver(store: &Store, client: &reqwest::Client, message: &OutboxMessage) -> Attempted {
    let sent_at = store::now();
    let failed = |status: Option<i64>, error: String| {
        let retry_at = retry_after(message.at, message.attempts, store::now());
        let error = if retry_at.is_none() { format!("{error}; given up: no delivery within a day") } else { error };
        Attempted { at: sent_at, status, error: Some(error), retry_at }
    };
    let secret = match store.webhook_secret(message) {
        Ok(secret) => secret,
        Err(error) => return failed(None, error),
    };
    // The URL is checked again: private addresses may have been allowed
    // when it was added.
    let parsed = reqwest::Url::parse(&message.url).map_err(|error| store::StoreError::Invalid(error.to_string()));
    if let Err(error) = parsed.and_then(|url| store.webhook_destinations().check_parsed(url)) {
        return failed(None, error.to_string());
    }
    let body = body(&message.event, message.at, &message.data);
    let timestamp = sent_at.timestamp().to_string();
    let id = message.message_id();
    let request = client
        .post(&message.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", &timestamp)
        .header("webhook-signature", signature(&secret, &id, &timestamp, &body))
        .body(body);
    match request.send().await {
        Ok(answer) if answer.status().is_success() => store::webhooks::delivered(sent_at, i64::from(answer.status().as_u16())),
        Ok(answer) => {
            let status = answer.status().as_u16();
            failed(Some(i64::from(status)), format!("the endpoint answered {status}"))
        }
        Err(error) => failed(None, describe(&error)),
    }
}

/// The delivery's body: `{"type", "timestamp", "data"}`, `data` as the
/// change wrote it.
fn body(event: &str, at: Timestamp, data: &str) -> String {
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    format!(r#"{{"type":{},"timestamp":{},"data":{}}}"#, quoted(event), quoted(&at.rfc3339()), data)
}

/// `v1,` and the base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`.
pub fn signature(secret: &[u8], id: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// A failed request in a few words for the deliveries list (no URL: the
/// list shows which endpoint it was).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error;
    if error.is_timeout() {
        return "no answer within the delivery timeout".to_owned();
    }
    let mut words = if error.is_connect() { "could not connect".to_owned() } else { "the request failed".to_owned() };
    let mut source = error.source();
    while let Some(cause) = source {
        words = format!("{words}: {cause}");
        source = cause.source();
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn signatures_follow_standard_webhooks() {
        let secret = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_body_carries_the_type_the_time_and_the_data_as_written() {
        let at = Timestamp::from_millis(1_700_000_000_123);
        let written = body("seat.assigned", at, r#"{"product":"cad","serial":"A\"1"}"#);
        let body: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "seat.assigned", "timestamp": "2023-11-14T22:13:20.123Z", "data": {"product": "cad", "serial": "A\"1"}})
        );
    }
}
