//! Floating seats: leased while a device keeps checking in, free for the
//! next device once the lease has ended, given back at once by a release.

use super::*;

/// A check-in the way the check-in API makes it: the first look, then the
/// answer from the seat it found or the full decision.
pub(super) async fn check_in_as_a_device(store: &Store, key: &str, code: &str, serial: &str) -> CheckIn {
    match store.first_look(key, code, serial).await.expect("first look") {
        FirstLook::Arrived { held: Some(seat), .. } => store.check_in_held(code, serial, seat).await.expect("held"),
        FirstLook::Arrived { org, held: None } => store.check_in(org, code, serial).await.expect("check-in"),
        FirstLook::UnknownKey => panic!("the product key is known"),
    }
}

/// An organization with a floating product of `seats` and 20-minute leases;
/// its id and product key.
async fn floating_product(store: &Store, seats: i64) -> (OrgId, String) {
    let org = org_with_product(store, "acme", "editor", seats, true).await;
    let floating = PolicyUpdate { seat_model: Some(SeatModel::Floating), lease_minutes: Some(20), ..PolicyUpdate::default() };
    store.update_policy(org, "editor", &floating, Actor::Operator).await.expect("floating");
    (org, store.settings(org).await.expect("settings").product_key)
}

/// `at` is `minutes` from now, give or take the test's own time.
fn about_minutes_ahead(at: Option<Timestamp>, minutes: i64) -> bool {
    let Some(at) = at else { return false };
    let ahead = at - now();
    ahead <= chrono::Duration::minutes(minutes) && ahead > chrono::Duration::minutes(minutes) - chrono::Duration::seconds(30)
}

fn minutes(minutes: i64) -> chrono::Duration {
    chrono::Duration::minutes(minutes)
}

pub(super) async fn a_floating_seat_is_held_while_its_device_checks_in_and_free_once_its_lease_ends(store: Store) {
    let (org, key) = floating_product(&store, 2).await;
    let first = check_in_as_a_device(&store, &key, "editor", "A").await;
    assert!(first.licensed, "{first:?}");
    assert!(about_minutes_ahead(first.lease_expires_at, 20), "{first:?}");
    let again = check_in_as_a_device(&store, &key, "editor", "A").await;
    assert!(again.licensed);
    assert!(again.lease_expires_at >= first.lease_expires_at, "a lease never shrinks: {again:?}");
    assert!(check_in_as_a_device(&store, &key, "editor", "B").await.licensed);
    let refused = check_in_as_a_device(&store, &key, "editor", "C").await;
    assert_eq!(refused.reason, Some(Denial::NoSeatsAvailable));
    assert_eq!(refused.lease_expires_at, None, "a refusal carries no lease");
    let product = store.product(org, "editor").await.unwrap();
    assert_eq!((product.seat_model, product.assigned, product.available), (SeatModel::Floating, 2, 0));
    let holders = store.holders(org, "editor", &PageRequest::first(10)).await.unwrap().items;
    assert!(holders.iter().all(|holder| about_minutes_ahead(holder.lease_expires_at, 20)), "{holders:?}");

    // Both devices stop checking in; once their leases have ended, the next
    // device that asks gets a seat at once.
    store.pass_time(org, "editor", minutes(20) + chrono::Duration::seconds(10)).await.unwrap();
    let product = store.product(org, "editor").await.unwrap();
    assert_eq!((product.assigned, product.available), (0, 2), "no lease is in use");
    assert!(store.holders(org, "editor", &PageRequest::first(10)).await.unwrap().items.is_empty());
    let c = check_in_as_a_device(&store, &key, "editor", "C").await;
    assert!(c.licensed && about_minutes_ahead(c.lease_expires_at, 20), "{c:?}");
    // A returns to a free seat; B, last, finds none.
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed);
    assert_eq!(check_in_as_a_device(&store, &key, "editor", "B").await.reason, Some(Denial::NoSeatsAvailable));
    assert_eq!(holders_of(&store, org, "editor").await, ["A", "C"]);

    let freed = store.activity(org, &ActivityFilter { kind: Some(ActivityKind::SeatReclaimed), limit: 50, ..Default::default() }).await.unwrap();
    let mut freed: Vec<_> = freed.items.iter().map(|a| (a.serial.clone().unwrap(), a.actor, a.detail.clone().unwrap())).collect();
    freed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        freed,
        [("A".to_owned(), Actor::Reclaim, "lease ended".to_owned()), ("B".to_owned(), Actor::Reclaim, "lease ended".to_owned())]
    );
}

pub(super) async fn a_lease_is_answered_as_written_until_half_of_it_is_left_then_renewed(store: Store) {
    let (org, key) = floating_product(&store, 5).await;
    let first = check_in_as_a_device(&store, &key, "editor", "A").await.lease_expires_at.unwrap();
    for _ in 0..3 {
        let answer = check_in_as_a_device(&store, &key, "editor", "A").await;
        assert_eq!(answer.lease_expires_at, Some(first), "answered with the lease as written");
    }
    // Nine minutes on, more than half is left: still the same lease.
    store.pass_time(org, "editor", minutes(9)).await.unwrap();
    let answer = check_in_as_a_device(&store, &key, "editor", "A").await;
    assert_eq!(answer.lease_expires_at, Some(first - minutes(9)));
    // Two more, and less than half is left: the check-in writes a new one.
    store.pass_time(org, "editor", minutes(2)).await.unwrap();
    let renewed = check_in_as_a_device(&store, &key, "editor", "A").await;
    assert!(renewed.licensed && about_minutes_ahead(renewed.lease_expires_at, 20), "{renewed:?}");
    let holders = store.holders(org, "editor", &PageRequest::first(10)).await.unwrap().items;
    assert_eq!(holders[0].lease_expires_at, renewed.lease_expires_at, "as written");
    // The renewal is no new seat and no change in the audit log.
    let seats = store.activity(org, &ActivityFilter { serial: Some("A".into()), limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(seats.items.iter().map(|a| a.kind).collect::<Vec<_>>(), [ActivityKind::SeatAutoAssigned]);
}

pub(super) async fn a_release_frees_a_floating_seat_at_once_and_nothing_else(store: Store) {
    let (org, key) = floating_product(&store, 1).await;
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed);
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed, "answered from the seat held");
    assert_eq!(check_in_as_a_device(&store, &key, "editor", "B").await.reason, Some(Denial::NoSeatsAvailable));

    assert!(store.release(org, "editor", "A").await.unwrap());
    assert!(!store.release(org, "editor", "A").await.unwrap(), "a second release finds nothing");
    assert!(check_in_as_a_device(&store, &key, "editor", "B").await.licensed, "the seat is free at once");
    let a = check_in_as_a_device(&store, &key, "editor", "A").await;
    assert_eq!(a.reason, Some(Denial::NoSeatsAvailable), "A's seat is not answered from anywhere: {a:?}");
    assert_eq!(holders_of(&store, org, "editor").await, ["B"]);

    let released = store.activity(org, &ActivityFilter { kind: Some(ActivityKind::SeatReleased), limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(released.items.len(), 1);
    assert_eq!((released.items[0].actor, released.items[0].serial.as_deref()), (Actor::Device, Some("A")));

    // Nothing to release: an unknown device, an assigned seat; and refusals.
    assert!(!store.release(org, "editor", "NEVER-SEEN").await.unwrap());
    let viewer = NewProduct { code: "viewer".into(), name: "Viewer".into(), seats: 1, auto_assign: true };
    store.add_product(org, &viewer, Actor::Operator).await.unwrap();
    assert!(check_in_as_a_device(&store, &key, "viewer", "A").await.licensed);
    assert!(!store.release(org, "viewer", "A").await.unwrap(), "an assigned seat is not released by its device");
    assert_eq!(holders_of(&store, org, "viewer").await, ["A"]);
    assert!(matches!(store.release(org, "nope", "A").await, Err(StoreError::UnknownProduct(_))));
    assert!(matches!(store.release(org, "editor", "bad\u{7}serial").await, Err(StoreError::Invalid(_))));
    let globex = org_with_product(&store, "globex", "editor", 1, true).await;
    assert!(!store.release(globex, "editor", "B").await.unwrap(), "another organization's device is not found");
    assert_eq!(holders_of(&store, org, "editor").await, ["B"]);
}

pub(super) async fn changing_the_seat_model_turns_held_seats_into_leases_and_back(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 3, true).await;
    let key = store.settings(org).await.unwrap().product_key;
    for serial in ["A", "B"] {
        let answer = check_in_as_a_device(&store, &key, "editor", serial).await;
        assert!(answer.licensed && answer.lease_expires_at.is_none(), "an assigned seat has no lease: {answer:?}");
    }
    let policy = store.policy(org, "editor").await.unwrap();
    assert_eq!((policy.seat_model, policy.lease_minutes), (SeatModel::Assigned, 20), "the defaults");

    let floating = PolicyUpdate { seat_model: Some(SeatModel::Floating), lease_minutes: Some(30), ..PolicyUpdate::default() };
    let policy = store.update_policy(org, "editor", &floating, Actor::AdminApi).await.unwrap();
    assert_eq!((policy.seat_model, policy.lease_minutes, policy.license_days), (SeatModel::Floating, 30, 7));
    let holders = store.holders(org, "editor", &PageRequest::first(10)).await.unwrap().items;
    assert!(holders.iter().all(|h| about_minutes_ahead(h.lease_expires_at, 30)), "held seats are leased from now: {holders:?}");
    let a = check_in_as_a_device(&store, &key, "editor", "A").await;
    assert!(about_minutes_ahead(a.lease_expires_at, 30), "{a:?}");

    // B stops checking in; A does not. Back to assigned seats: B's ended
    // lease is freed, A keeps its seat, now with no end.
    store.pass_time(org, "editor", minutes(31)).await.unwrap();
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed);
    let assigned = PolicyUpdate { seat_model: Some(SeatModel::Assigned), ..PolicyUpdate::default() };
    store.update_policy(org, "editor", &assigned, Actor::AdminApi).await.unwrap();
    let holders = store.holders(org, "editor", &PageRequest::first(10)).await.unwrap().items;
    assert_eq!(holders.iter().map(|h| (h.serial.as_str(), h.lease_expires_at)).collect::<Vec<_>>(), [("A", None)]);
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 1);
    let a = check_in_as_a_device(&store, &key, "editor", "A").await;
    assert!(a.licensed && a.lease_expires_at.is_none(), "{a:?}");

    // Out of range, or nothing at all: refused, nothing changed.
    for minutes in [4, 1441, -1] {
        let update = PolicyUpdate { lease_minutes: Some(minutes), ..PolicyUpdate::default() };
        assert!(matches!(store.update_policy(org, "editor", &update, Actor::AdminApi).await, Err(StoreError::Invalid(_))));
    }
    assert_eq!(store.policy(org, "editor").await.unwrap().lease_minutes, 30);
    let changes = store.activity(org, &ActivityFilter { kind: Some(ActivityKind::PolicyChanged), limit: 50, ..Default::default() }).await.unwrap();
    let details: Vec<_> = changes.items.iter().rev().filter_map(|a| a.detail.clone()).collect();
    assert_eq!(details, ["seat_model assigned → floating, lease_minutes 20 → 30", "seat_model floating → assigned"]);
}

/// Devices racing for the seats of a floating product whose leases have all
/// ended, checking in and releasing through two server processes on
/// PostgreSQL (one on SQLite, which serves one): no more seats are ever
/// held than there are, every device told "licensed" holds one at the end
/// unless it released it, and the count agrees with the holders.
pub(super) async fn racing_for_ended_leases_never_holds_more_seats_than_exist(stores: [Store; 2]) {
    const SEATS: i64 = 5;
    const DEVICES: usize = 40;
    let store = &stores[0];
    let (org, key) = floating_product(store, SEATS).await;
    for i in 0..SEATS {
        assert!(check_in_as_a_device(store, &key, "editor", &format!("OLD-{i}")).await.licensed);
    }
    store.pass_time(org, "editor", minutes(21)).await.unwrap();
    let tasks: Vec<_> = (0..DEVICES * 2)
        .map(|i| {
            let (store, key) = (stores[i % 2].clone(), key.clone());
            tokio::spawn(async move {
                let serial = format!("NEW-{:02}", i % DEVICES);
                let answer = check_in_as_a_device(&store, &key, "editor", &serial).await;
                // Every seventh device gives its seat straight back.
                let released = answer.licensed && i % 7 == 0 && store.release(org, "editor", &serial).await.unwrap();
                (serial, answer, released)
            })
        })
        .collect();
    let mut licensed = HashSet::new();
    let mut released = HashSet::new();
    for task in tasks {
        let (serial, answer, gave_back) = task.await.expect("no panic");
        match answer.licensed {
            true => licensed.insert(serial.clone()),
            false => {
                assert_eq!(answer.reason, Some(Denial::NoSeatsAvailable));
                false
            }
        };
        if gave_back {
            released.insert(serial);
        }
    }
    let holders: HashSet<String> = holders_of(store, org, "editor").await.into_iter().collect();
    assert!(holders.len() as i64 <= SEATS, "{holders:?}");
    assert!(holders.iter().all(|serial| serial.starts_with("NEW-")), "the ended leases went: {holders:?}");
    let kept: HashSet<String> = licensed.difference(&released).cloned().collect();
    assert!(kept.is_subset(&holders), "every device told licensed holds its seat: {kept:?} ⊄ {holders:?}");
    assert_eq!(holders_of(&stores[1], org, "editor").await.len(), holders.len(), "both processes agree");
}

pub(super) async fn an_ended_lease_shows_as_no_seat_and_an_admin_assign_starts_it_again(store: Store) {
    let (org, key) = floating_product(&store, 1).await;
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed);
    let device = store.device(org, "A").await.unwrap();
    assert_eq!(device.device.seats_assigned, 1);
    store.pass_time(org, "editor", minutes(21)).await.unwrap();
    let device = store.device(org, "A").await.unwrap();
    assert_eq!(device.device.seats_assigned, 0, "an ended lease holds no seat");
    assert!(device.licenses.iter().all(|license| !license.assigned), "{device:?}");
    assert_eq!(store.devices(org, None, &PageRequest::first(10)).await.unwrap().items[0].seats_assigned, 0);
    store.snapshot_usage(now()).await.unwrap();
    let usage = store.usage(org, day_of(now())).await.unwrap();
    assert_eq!(usage.iter().map(|(_, point)| point.assigned).collect::<Vec<_>>(), [0], "nor in the day's reading");

    assert_eq!(store.assign(org, "A", "editor", Actor::AdminApi).await.unwrap(), Assigned::Newly);
    let holders = store.holders(org, "editor", &PageRequest::first(10)).await.unwrap().items;
    assert!(about_minutes_ahead(holders[0].lease_expires_at, 20), "a new lease: {holders:?}");
    assert_eq!(store.assign(org, "A", "editor", Actor::AdminApi).await.unwrap(), Assigned::Already);
    assert_eq!(check_in_as_a_device(&store, &key, "editor", "B").await.reason, Some(Denial::NoSeatsAvailable));
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed);
}

pub(super) async fn an_ended_subscription_refuses_check_ins_and_extending_it_restores_every_seat(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    let key = store.settings(org).await.unwrap().product_key;
    for serial in ["A", "B"] {
        assert!(check_in_as_a_device(&store, &key, "editor", serial).await.licensed);
    }
    let today = now().date_naive();
    let product = store.set_term(org, "editor", Some(today + chrono::Days::new(12)), Actor::Operator).await.unwrap();
    assert_eq!(product.valid_until, Some(today + chrono::Days::new(12)));
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed, "the term runs");
    let last_day = store.set_term(org, "editor", Some(today), Actor::Operator).await.unwrap();
    assert!(!last_day.term_ended(now()), "its last day is still in the term");
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed);

    store.set_term(org, "editor", Some(today - chrono::Days::new(1)), Actor::Operator).await.unwrap();
    for serial in ["A", "B", "C"] {
        let answer = check_in_as_a_device(&store, &key, "editor", serial).await;
        assert_eq!((answer.licensed, answer.reason), (false, Some(Denial::SubscriptionExpired)), "{answer:?}");
        assert!(answer.last_seen.is_some(), "the check-in is still recorded");
    }
    assert_eq!(store.check_in_or_wait(org, "editor", "D", true).await.unwrap().queue_position, None, "no line for an ended term");
    assert_eq!(holders_of(&store, org, "editor").await, ["A", "B"], "nothing is deleted");

    store.set_term(org, "editor", None, Actor::Operator).await.unwrap();
    assert!(check_in_as_a_device(&store, &key, "editor", "A").await.licensed, "every seat as it was");
    assert!(check_in_as_a_device(&store, &key, "editor", "B").await.licensed);
    assert_eq!(check_in_as_a_device(&store, &key, "editor", "C").await.reason, Some(Denial::NoSeatsAvailable));

    let changes = store.activity(org, &ActivityFilter { kind: Some(ActivityKind::TermChanged), limit: 50, ..Default::default() }).await.unwrap();
    let details: Vec<_> = changes.items.iter().rev().map(|a| (a.actor, a.detail.clone().unwrap())).collect();
    let day = |d: chrono::NaiveDate| d.to_string();
    assert_eq!(
        details,
        [
            (Actor::Operator, format!("valid until no end → {}", day(today + chrono::Days::new(12)))),
            (Actor::Operator, format!("valid until {} → {}", day(today + chrono::Days::new(12)), day(today))),
            (Actor::Operator, format!("valid until {} → {}", day(today), day(today - chrono::Days::new(1)))),
            (Actor::Operator, format!("valid until {} → no end", day(today - chrono::Days::new(1)))),
        ]
    );
    assert!(matches!(store.set_term(org, "nope", None, Actor::Operator).await, Err(StoreError::UnknownProduct(_))));
    for far in [chrono::NaiveDate::from_ymd_opt(1999, 12, 31), chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)] {
        assert!(matches!(store.set_term(org, "editor", far, Actor::Operator).await, Err(StoreError::Invalid(_))), "{far:?}");
    }
    assert_eq!(store.product(org, "editor").await.unwrap().valid_until, None, "refused, nothing changed");
}
