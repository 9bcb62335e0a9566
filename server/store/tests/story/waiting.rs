//! The fair waiting line: a freed seat goes to the device that has waited
//! longest and still asks, not to whichever asks first.

use super::*;

async fn wait(store: &Store, org: OrgId, code: &str, serial: &str) -> CheckIn {
    store.check_in_or_wait(org, code, serial, true).await.expect("check-in")
}

async fn line(store: &Store, org: OrgId, code: &str) -> Vec<(i64, String)> {
    store.waiting_line(org, code).await.unwrap().into_iter().map(|w| (w.position, w.serial)).collect()
}

pub(super) async fn a_freed_seat_goes_to_the_longest_waiting_device_not_the_first_to_ask(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 1, true).await;
    assert!(store.check_in(org, "editor", "A").await.unwrap().licensed);
    let b = wait(&store, org, "editor", "B").await;
    assert_eq!((b.reason, b.queue_position), (Some(Denial::NoSeatsAvailable), Some(1)));
    assert_eq!(wait(&store, org, "editor", "C").await.queue_position, Some(2));
    assert_eq!(wait(&store, org, "editor", "B").await.queue_position, Some(1), "asking again keeps its place");
    let d = store.check_in(org, "editor", "D").await.unwrap();
    assert_eq!((d.reason, d.queue_position), (Some(Denial::NoSeatsAvailable), None), "not waiting: no place");
    assert_eq!(line(&store, org, "editor").await, [(1, "B".to_owned()), (2, "C".to_owned())]);
    let since = store.waiting_line(org, "editor").await.unwrap()[0].waiting_since;
    assert!(now() - since < chrono::Duration::seconds(30));

    // A's seat frees: neither D (who did not wait) nor C (behind B) gets it.
    store.unassign(org, "A", "editor", Actor::AdminApi).await.unwrap();
    assert_eq!(store.check_in(org, "editor", "D").await.unwrap().reason, Some(Denial::NoSeatsAvailable));
    let c = wait(&store, org, "editor", "C").await;
    assert_eq!((c.reason, c.queue_position), (Some(Denial::NoSeatsAvailable), Some(2)));
    let b = store.check_in(org, "editor", "B").await.unwrap();
    assert!(b.licensed && b.queue_position.is_none(), "{b:?}");
    assert_eq!(line(&store, org, "editor").await, [(1, "C".to_owned())], "B left the line with its seat");
    assert_eq!(wait(&store, org, "editor", "C").await.queue_position, Some(1));

    // An admin takes C out of the line; asking again puts it at the back.
    assert!(store.remove_from_line(org, "editor", "C", Actor::AdminSession).await.unwrap());
    assert!(!store.remove_from_line(org, "editor", "C", Actor::AdminSession).await.unwrap());
    assert!(line(&store, org, "editor").await.is_empty());
    let removed = store.activity(org, &ActivityFilter { kind: Some(ActivityKind::RemovedFromQueue), limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(removed.items.iter().map(|a| (a.actor, a.serial.clone())).collect::<Vec<_>>(), [(Actor::AdminSession, Some("C".to_owned()))]);
    assert_eq!(wait(&store, org, "editor", "D").await.queue_position, Some(1));
    assert_eq!(wait(&store, org, "editor", "C").await.queue_position, Some(2));

    // An admin's assign to a device in line takes it out of the line.
    store.set_seats(org, "editor", 2, Actor::Operator).await.unwrap();
    store.assign(org, "C", "editor", Actor::AdminApi).await.unwrap();
    assert_eq!(line(&store, org, "editor").await, [(1, "D".to_owned())]);
    assert!(matches!(store.remove_from_line(org, "nope", "D", Actor::AdminApi).await, Err(StoreError::UnknownProduct(_))));
    assert!(!store.remove_from_line(org, "editor", "NEVER-SEEN", Actor::AdminApi).await.unwrap());
    let globex = org_with_product(&store, "globex", "editor", 1, true).await;
    assert!(store.waiting_line(globex, "editor").await.unwrap().is_empty(), "another organization's line is its own");
    assert!(!store.remove_from_line(globex, "editor", "D", Actor::AdminApi).await.unwrap());
}

pub(super) async fn a_device_that_stops_asking_leaves_the_line_after_a_lease_or_an_hour(store: Store) {
    // Floating seats: after one lease.
    let org = org_with_product(&store, "acme", "editor", 1, true).await;
    let floating = PolicyUpdate { seat_model: Some(SeatModel::Floating), lease_minutes: Some(20), ..PolicyUpdate::default() };
    store.update_policy(org, "editor", &floating, Actor::Operator).await.unwrap();
    assert!(store.check_in(org, "editor", "A").await.unwrap().licensed);
    assert_eq!(wait(&store, org, "editor", "B").await.queue_position, Some(1));
    store.pass_time(org, "editor", chrono::Duration::minutes(21)).await.unwrap();
    assert!(line(&store, org, "editor").await.is_empty(), "B stopped asking a lease ago");
    assert!(store.check_in(org, "editor", "C").await.unwrap().licensed, "A's ended lease goes to C, B no longer waits");
    let b = wait(&store, org, "editor", "B").await;
    assert_eq!(b.queue_position, Some(1));
    let since = store.waiting_line(org, "editor").await.unwrap()[0].waiting_since;
    assert!(now() - since < chrono::Duration::seconds(30), "B starts again at the back, from now");

    // Assigned seats: after an hour.
    let viewer = NewProduct { code: "viewer".into(), name: "Viewer".into(), seats: 0, auto_assign: true };
    store.add_product(org, &viewer, Actor::Operator).await.unwrap();
    assert_eq!(wait(&store, org, "viewer", "X").await.queue_position, Some(1));
    assert_eq!(wait(&store, org, "viewer", "Y").await.queue_position, Some(2));
    store.pass_time(org, "viewer", chrono::Duration::minutes(59)).await.unwrap();
    assert_eq!(wait(&store, org, "viewer", "Y").await.queue_position, Some(2), "X still counts after 59 minutes");
    store.pass_time(org, "viewer", chrono::Duration::minutes(2)).await.unwrap();
    assert_eq!(line(&store, org, "viewer").await, [(1, "Y".to_owned())], "X stopped asking an hour ago; Y asked since");
    store.set_seats(org, "viewer", 1, Actor::Operator).await.unwrap();
    assert_eq!(store.check_in(org, "viewer", "X").await.unwrap().reason, Some(Denial::NoSeatsAvailable), "Y waits ahead of X");
    assert!(store.check_in(org, "viewer", "Y").await.unwrap().licensed);
}

/// Many devices waiting at once, checking in concurrently while seats free
/// one by one: each seat goes to the head of the line, in order.
pub(super) async fn seats_freed_one_by_one_go_down_the_line_in_order(store: Store) {
    const WAITERS: usize = 12;
    let org = org_with_product(&store, "acme", "editor", 1, true).await;
    assert!(store.check_in(org, "editor", "HOLDER").await.unwrap().licensed);
    for i in 0..WAITERS {
        assert_eq!(wait(&store, org, "editor", &format!("W-{i:02}")).await.queue_position, Some(i as i64 + 1));
    }
    let mut served = Vec::new();
    let mut holder = "HOLDER".to_owned();
    for _ in 0..4 {
        store.delete_device(org, &holder, Actor::AdminApi).await.unwrap();
        // Everyone asks at once, in a shuffled order.
        let tasks: Vec<_> = (0..WAITERS)
            .rev()
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { wait(&store, org, "editor", &format!("W-{i:02}")).await })
            })
            .collect();
        let mut licensed = Vec::new();
        for task in tasks {
            let answer = task.await.unwrap();
            if answer.licensed {
                licensed.push(answer.serial);
            }
        }
        assert_eq!(licensed.len(), 1, "{licensed:?}");
        holder = licensed.pop().unwrap();
        served.push(holder.clone());
    }
    assert_eq!(served, ["W-00", "W-01", "W-02", "W-03"], "down the line, in order");
    assert_eq!(line(&store, org, "editor").await.first(), Some(&(1, "W-04".to_owned())));
}

pub(super) async fn refusals_are_counted_per_product_day_and_device_without_a_row_per_check_in(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 1, true).await;
    let viewer = NewProduct { code: "viewer".into(), name: "Viewer".into(), seats: 5, auto_assign: false };
    store.add_product(org, &viewer, Actor::Operator).await.unwrap();
    assert!(store.check_in(org, "editor", "A").await.unwrap().licensed);
    for _ in 0..3 {
        assert_eq!(store.check_in(org, "editor", "B").await.unwrap().reason, Some(Denial::NoSeatsAvailable));
    }
    for _ in 0..2 {
        assert_eq!(wait(&store, org, "editor", "C").await.reason, Some(Denial::NoSeatsAvailable));
    }
    // Refused for another reason: not a refusal for want of a seat.
    assert_eq!(store.check_in(org, "viewer", "B").await.unwrap().reason, Some(Denial::AutoAssignDisabled));
    // Refusals at once, in one group or several.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.check_in(org, "editor", &format!("RUSH-{}", i % 4)).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().reason, Some(Denial::NoSeatsAvailable));
    }

    let today = day_of(now());
    let counted = store.refusals(org, today).await.unwrap();
    assert_eq!(counted, [("editor".to_owned(), Refusals { day: today, refused: 25, devices: 6 })]);
    assert_eq!(store.refused_devices(org, today - 6).await.unwrap(), [("editor".to_owned(), 6)]);
    store.delete_device(org, "B", Actor::AdminApi).await.unwrap();
    assert_eq!(store.refused_devices(org, today - 6).await.unwrap(), [("editor".to_owned(), 6)], "history stays");

    let days = store.product_usage(org, "editor", 30).await.unwrap();
    assert_eq!(
        days,
        [UsageDay { day: today, date: now().date_naive().to_string(), seats: 1, assigned: 1, refused: 25, refused_devices: 6 }],
        "a new product's history starts today"
    );
    let globex = org_with_product(&store, "globex", "editor", 1, true).await;
    assert!(store.refusals(globex, today).await.unwrap().is_empty(), "another organization's are its own");
    assert!(matches!(store.product_usage(org, "nope", 30).await, Err(StoreError::UnknownProduct(_))));
}
