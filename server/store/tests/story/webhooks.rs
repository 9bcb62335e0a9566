//! Webhooks: the changes that tell of themselves write their messages with
//! the change, an endpoint's messages go out one at a time in order, and
//! the alerts tell each thing once.

use super::*;
use serde_json::Value;

/// Private destinations allowed, so that no name is looked up.
fn with_webhooks(store: Store) -> Store {
    store.with_webhooks(store::webhooks::Destinations { allow_private: true }, None)
}

async fn endpoint(store: &Store, org: OrgId, url: &str, events: &[&str]) -> NewWebhook {
    let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    store.create_webhook(org, url, &events, Actor::AdminApi).await.expect("create webhook")
}

const ALL: [&str; 7] = [
    "seats.threshold_reached",
    "checkin.refused",
    "subscription.expiring",
    "seat.assigned",
    "seat.revoked",
    "device.deleted",
    "device.ignored",
];

/// Delivers every waiting message as `at` would, oldest first per endpoint:
/// (endpoint, type, data).
async fn drain(store: &Store, at: Timestamp) -> Vec<(i64, String, Value)> {
    let mut told = Vec::new();
    loop {
        let claimed = store.claim_messages(at, at + chrono::Duration::seconds(30), 100).await.expect("claim");
        if claimed.is_empty() {
            return told;
        }
        for message in claimed {
            told.push((message.webhook_id, message.event.clone(), serde_json::from_str(&message.data).expect("JSON data")));
            store.finish_message(&message, &store::webhooks::delivered(at, 200)).await.expect("finish");
        }
    }
}

pub(super) async fn changes_tell_the_endpoints_that_subscribe_one_message_at_a_time_in_order(store: Store) {
    let store = with_webhooks(store);
    let org = org_with_product(&store, "acme", "cad", 3, true).await;
    let other = org_with_product(&store, "globex", "cad", 3, true).await;
    let everything = endpoint(&store, org, "https://hooks.example.com/all", &ALL).await;
    assert!(everything.secret.starts_with("whsec_"));
    let deletions = endpoint(&store, org, "https://hooks.example.com/deleted", &["device.deleted"]).await;
    let theirs = endpoint(&store, other, "https://hooks.example.net/", &ALL).await;
    assert_eq!(deletions.events, [WebhookEvent::DeviceDeleted]);
    let listed = store.webhooks(org).await.unwrap();
    assert_eq!(listed.iter().map(|w| w.id).collect::<Vec<_>>(), [everything.id, deletions.id]);

    let key = store.settings(org).await.unwrap().product_key;
    assert!(floating::check_in_as_a_device(&store, &key, "cad", "D1").await.licensed);
    floating::check_in_as_a_device(&store, &key, "cad", "D2").await;
    store.unassign(org, "D2", "cad", Actor::AdminApi).await.unwrap();
    store.assign(org, "D2", "cad", Actor::AdminSession).await.unwrap();
    store.unassign(org, "NEVER-HELD", "cad", Actor::AdminApi).await.unwrap_err();
    store.delete_device(org, "D1", Actor::AdminApi).await.unwrap();
    store.ignore_device(org, "D3", Actor::AdminApi).await.unwrap();

    // One message at a time per endpoint: the first of each is claimed, the
    // next waits until it is done.
    let at = now();
    let first = store.claim_messages(at, at + chrono::Duration::seconds(30), 100).await.unwrap();
    let heads: Vec<(i64, &str)> = first.iter().map(|m| (m.webhook_id, m.event.as_str())).collect();
    assert_eq!(heads, [(everything.id, "seat.assigned"), (deletions.id, "device.deleted")]);
    assert!(store.claim_messages(at, at + chrono::Duration::seconds(30), 100).await.unwrap().is_empty(), "claimed already");

    // A failed attempt waits for its retry; the endpoint's later messages wait with it.
    let failed = Attempted { at, status: Some(503), error: Some("the endpoint answered 503".into()), retry_at: Some(at + chrono::Duration::seconds(60)) };
    store.finish_message(&first[0], &failed).await.unwrap();
    store.finish_message(&first[1], &store::webhooks::delivered(at, 204)).await.unwrap();
    assert!(store.claim_messages(at, at + chrono::Duration::seconds(30), 100).await.unwrap().is_empty(), "not due yet");

    let later = at + chrono::Duration::seconds(61);
    let told = drain(&store, later).await;
    let told: Vec<(String, Value)> = told.into_iter().map(|(id, event, data)| { assert_eq!(id, everything.id); (event, data) }).collect();
    assert_eq!(
        told,
        [
            ("seat.assigned".to_owned(), serde_json::json!({"product": "cad", "serial": "D1", "by": "device"})),
            ("seat.assigned".to_owned(), serde_json::json!({"product": "cad", "serial": "D2", "by": "device"})),
            ("seat.revoked".to_owned(), serde_json::json!({"product": "cad", "serial": "D2", "by": "admin_api"})),
            ("seat.assigned".to_owned(), serde_json::json!({"product": "cad", "serial": "D2", "by": "admin_session"})),
            ("device.deleted".to_owned(), serde_json::json!({"serial": "D1", "by": "admin_api"})),
            ("device.ignored".to_owned(), serde_json::json!({"serial": "D3", "by": "admin_api", "removed": false})),
        ],
        "in order, and a revoke of a seat not held tells nothing"
    );

    // Every attempt is listed, newest first, in pages.
    let attempts = store.delivery_attempts(org, everything.id, &PageRequest::first(4)).await.unwrap();
    assert_eq!(attempts.items.len(), 4);
    assert_eq!(attempts.items[0].event, "device.ignored");
    let rest = store.delivery_attempts(org, everything.id, &PageRequest { after: attempts.next.clone(), limit: 10 }).await.unwrap();
    assert_eq!(rest.next, None);
    let nowhere = store.delivery_attempts(org, everything.id, &PageRequest { after: Some("not-an-attempt".into()), limit: 10 }).await.unwrap();
    assert_eq!((nowhere.items.len(), nowhere.next), (0, None), "a cursor that names no attempt is the end of the list");
    let oldest = rest.items.last().unwrap();
    assert_eq!((oldest.attempt, oldest.status, oldest.error.as_deref()), (1, Some(503), Some("the endpoint answered 503")));
    let retried = &rest.items[rest.items.len() - 2];
    assert_eq!((retried.message_id.as_str(), retried.attempt, retried.status, retried.error.as_deref()), (oldest.message_id.as_str(), 2, Some(200), None));

    // Another organization sees and deletes none of these.
    assert!(matches!(store.delete_webhook(other, everything.id, Actor::AdminApi).await, Err(StoreError::UnknownWebhook(_))));
    assert!(matches!(store.delivery_attempts(other, everything.id, &PageRequest::first(5)).await, Err(StoreError::UnknownWebhook(_))));
    assert_eq!(store.webhooks(other).await.unwrap().iter().map(|w| w.id).collect::<Vec<_>>(), [theirs.id]);

    // Deleting an endpoint drops what waited for it, and is in the audit log.
    store.delete_device(org, "D2", Actor::AdminApi).await.unwrap();
    store.delete_webhook(org, everything.id, Actor::AdminSession).await.unwrap();
    let told = drain(&store, later).await;
    assert_eq!(told.iter().map(|(id, event, _)| (*id, event.as_str())).collect::<Vec<_>>(), [(deletions.id, "device.deleted")]);
    assert!(matches!(store.delivery_attempts(org, everything.id, &PageRequest::first(5)).await, Err(StoreError::UnknownWebhook(_))));
    let log = store.activity(org, &ActivityFilter { limit: 100, ..Default::default() }).await.unwrap().items;
    let kinds: Vec<(ActivityKind, Option<&str>)> = log
        .iter()
        .filter(|a| matches!(a.kind, ActivityKind::WebhookAdded | ActivityKind::WebhookDeleted))
        .map(|a| (a.kind, a.detail.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ActivityKind::WebhookDeleted, Some("https://hooks.example.com/all")),
            (ActivityKind::WebhookAdded, Some("https://hooks.example.com/deleted")),
            (ActivityKind::WebhookAdded, Some("https://hooks.example.com/all")),
        ]
    );
}

pub(super) async fn bad_webhooks_are_refused_and_add_nothing(store: Store) {
    let org = org_with_product(&store, "acme", "cad", 3, true).await;
    let strict = store.clone();
    for (url, events) in [
        ("http://hooks.example.com/", vec!["seat.assigned"]),
        ("https://127.0.0.1/", vec!["seat.assigned"]),
        ("https://localhost/", vec!["seat.assigned"]),
        ("https://[::1]:8443/", vec!["seat.assigned"]),
        ("https://169.254.169.254/", vec!["seat.assigned"]),
        ("https://hooks.example.com/", vec![]),
        ("https://hooks.example.com/", vec!["seat.stolen"]),
        ("hooks.example.com", vec!["seat.assigned"]),
    ] {
        let events: Vec<String> = events.into_iter().map(str::to_owned).collect();
        let refused = strict.create_webhook(org, url, &events, Actor::AdminApi).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{url} {events:?}: {refused:?}");
    }
    assert!(store.webhooks(org).await.unwrap().is_empty());
    let store = with_webhooks(store);
    for n in 0..20 {
        endpoint(&store, org, &format!("http://127.0.0.1:9/{n}"), &["seat.assigned"]).await;
    }
    let one_more = store.create_webhook(org, "http://127.0.0.1:9/x", &["seat.assigned".into()], Actor::AdminApi).await;
    assert!(matches!(one_more, Err(StoreError::Conflict(_))), "{one_more:?}");
}

pub(super) async fn alerts_tell_each_crossing_each_minutes_refusals_and_an_ending_term_once(store: Store) {
    let store = with_webhooks(store);
    let org = org_with_product(&store, "acme", "cad", 4, true).await;
    let hook = endpoint(&store, org, "https://hooks.example.com/", &["seats.threshold_reached", "checkin.refused", "subscription.expiring"]).await;
    let policy = PolicyUpdate { alert_at_percent: Some(Some(50)), ..PolicyUpdate::default() };
    store.update_policy(org, "cad", &policy, Actor::AdminApi).await.unwrap();
    let key = store.settings(org).await.unwrap().product_key;
    let at = now();
    assert_eq!(store.raise_alerts(at).await.unwrap(), 0);

    floating::check_in_as_a_device(&store, &key, "cad", "A").await;
    assert_eq!(store.raise_alerts(at).await.unwrap(), 0, "1 of 4 is below 50%");
    floating::check_in_as_a_device(&store, &key, "cad", "B").await;
    assert_eq!(store.raise_alerts(at).await.unwrap(), 1);
    assert_eq!(store.raise_alerts(at).await.unwrap(), 0, "told once");
    let told = drain(&store, at).await;
    assert_eq!(told.len(), 1);
    assert_eq!((told[0].0, told[0].1.as_str()), (hook.id, "seats.threshold_reached"));
    assert_eq!(told[0].2, serde_json::json!({"product": "cad", "seats": 4, "in_use": 2, "alert_at_percent": 50}));

    // Falling below re-arms it; crossing again tells again.
    store.unassign(org, "B", "cad", Actor::AdminApi).await.unwrap();
    assert_eq!(store.raise_alerts(at).await.unwrap(), 0);
    store.assign(org, "B", "cad", Actor::AdminApi).await.unwrap();
    assert_eq!(store.raise_alerts(at).await.unwrap(), 1);

    // Refusals: counted with the check-ins, told at most once a minute.
    for serial in ["C", "D"] {
        floating::check_in_as_a_device(&store, &key, "cad", serial).await;
    }
    for serial in ["E", "F", "E"] {
        assert_eq!(floating::check_in_as_a_device(&store, &key, "cad", serial).await.reason, Some(Denial::NoSeatsAvailable));
    }
    assert_eq!(store.raise_alerts(at).await.unwrap(), 1);
    floating::check_in_as_a_device(&store, &key, "cad", "G").await;
    assert_eq!(store.raise_alerts(at + chrono::Duration::seconds(30)).await.unwrap(), 0, "within the minute");
    assert_eq!(store.raise_alerts(at + chrono::Duration::seconds(61)).await.unwrap(), 1);
    let refused: Vec<Value> = drain(&store, at + chrono::Duration::seconds(61))
        .await
        .into_iter()
        .filter(|(_, event, _)| event == "checkin.refused")
        .map(|(_, _, data)| data)
        .collect();
    assert_eq!(refused.len(), 2);
    assert_eq!((refused[0]["count"].as_i64(), refused[0]["since"].is_null()), (Some(3), true));
    assert_eq!(refused[1]["count"], 1);
    assert_eq!(refused[1]["since"].as_str().map(|s| s.starts_with(&at.date_naive().to_string())), Some(true));

    // A term ending within 14 days is told once per last day.
    let last_day = at.date_naive() + chrono::Days::new(10);
    store.set_term(org, "cad", Some(last_day), Actor::Operator).await.unwrap();
    assert_eq!(store.raise_alerts(at).await.unwrap(), 1);
    assert_eq!(store.raise_alerts(at).await.unwrap(), 0);
    let expiring = drain(&store, at).await;
    assert_eq!(expiring[0].2, serde_json::json!({"product": "cad", "valid_until": last_day.to_string(), "days_left": 10}));
    store.set_term(org, "cad", Some(last_day + chrono::Days::new(2)), Actor::Operator).await.unwrap();
    assert_eq!(store.raise_alerts(at).await.unwrap(), 1, "a new last day is told again");
}

/// A sender that stops (a process killed) leaves its claim; once the claim
/// has run out the message is sent again: at least once, never lost.
pub(super) async fn a_message_claimed_by_a_sender_that_died_is_sent_again(store: Store) {
    let store = with_webhooks(store);
    let org = org_with_product(&store, "acme", "cad", 3, true).await;
    let hook = endpoint(&store, org, "https://hooks.example.com/", &["device.ignored"]).await;
    store.ignore_device(org, "X", Actor::AdminApi).await.unwrap();
    let at = now();
    let claimed = store.claim_messages(at, at + chrono::Duration::seconds(15), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(store.claim_messages(at + chrono::Duration::seconds(10), at + chrono::Duration::seconds(25), 10).await.unwrap().is_empty());
    let again = store.claim_messages(at + chrono::Duration::seconds(16), at + chrono::Duration::seconds(31), 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].webhook_id, again[0].message_id()), (claimed[0].id, hook.id, claimed[0].message_id()));
}

/// Two processes sending at once: each message is claimed by one of them,
/// and an endpoint's messages still go out in order.
pub(super) async fn two_senders_share_the_outbox_without_sending_a_message_twice(stores: [Store; 2]) {
    let [one, two] = stores.map(with_webhooks);
    let org = org_with_product(&one, "acme", "cad", 3, true).await;
    endpoint(&one, org, "https://hooks.example.com/", &["device.ignored"]).await;
    for n in 0..30 {
        one.ignore_device(org, &format!("S{n:02}"), Actor::AdminApi).await.unwrap();
    }
    // Noted when claimed: a message is claimed only once the one before it is done.
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let send = |store: Store, sent: std::sync::Arc<std::sync::Mutex<Vec<String>>>| async move {
        for _ in 0..200 {
            let at = now();
            for message in store.claim_messages(at, at + chrono::Duration::seconds(30), 10).await.unwrap() {
                let data: Value = serde_json::from_str(&message.data).unwrap();
                sent.lock().unwrap().push(data["serial"].as_str().unwrap().to_owned());
                store.finish_message(&message, &store::webhooks::delivered(at, 200)).await.unwrap();
            }
            tokio::task::yield_now().await;
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(send(one.clone(), sent.clone())), tokio::spawn(send(two.clone(), sent.clone())));
    (a.unwrap(), b.unwrap());
    let expected: Vec<String> = (0..30).map(|n| format!("S{n:02}")).collect();
    assert_eq!(*sent.lock().unwrap(), expected, "each once, in the order they were written");
}
