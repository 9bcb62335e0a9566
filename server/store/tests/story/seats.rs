//! Seats that admins and the idle-seat reclaim give and take.

use super::*;

pub(super) async fn revoked_seat_is_not_reassigned_by_auto_assign(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 3, true).await;
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);
    store.unassign(org, "SN-1", "editor", Actor::Operator).await.unwrap();
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 0, "the seat is freed at once");

    let answer = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert!(!answer.licensed);
    assert_eq!(answer.reason, Some(Denial::RevokedByAdmin));
    assert!(store.check_in(org, "editor", "SN-2").await.unwrap().licensed, "the seat went to another device");

    // The admin's decision holds until an admin assigns again.
    store.assign(org, "SN-1", "editor", Actor::Operator).await.unwrap();
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);
    assert_eq!(holders_of(&store, org, "editor").await, ["SN-1", "SN-2"]);
}

pub(super) async fn assign_without_a_free_seat_fails_and_changes_nothing(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 1, false).await;
    store.check_in(org, "editor", "SN-1").await.unwrap();
    store.check_in(org, "editor", "SN-2").await.unwrap();
    assert_eq!(store.assign(org, "SN-1", "editor", Actor::Operator).await.unwrap(), Assigned::Newly);
    assert_eq!(store.assign(org, "SN-1", "editor", Actor::Operator).await.unwrap(), Assigned::Already);
    assert!(matches!(store.assign(org, "SN-2", "editor", Actor::Operator).await, Err(StoreError::NoSeatsAvailable)));
    assert_eq!(holders_of(&store, org, "editor").await, ["SN-1"]);
    assert_eq!(store.device(org, "SN-2").await.unwrap().device.seats_assigned, 0);

    assert!(matches!(store.assign(org, "SN-9", "editor", Actor::Operator).await, Err(StoreError::UnknownDevice(_))));
    assert!(matches!(store.assign(org, "SN-1", "nope", Actor::Operator).await, Err(StoreError::UnknownProduct(_))));
    assert!(matches!(store.unassign(org, "SN-9", "editor", Actor::Operator).await, Err(StoreError::UnknownDevice(_))));
}

pub(super) async fn unassign_of_a_seat_not_held_still_blocks_auto_assign(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 3, false).await;
    store.check_in(org, "editor", "SN-1").await.unwrap();
    store.unassign(org, "SN-1", "editor", Actor::Operator).await.unwrap();
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 0);
    store.set_auto_assign(org, "editor", true, Actor::Operator).await.unwrap();
    let answer = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert_eq!(answer.reason, Some(Denial::RevokedByAdmin));
}

pub(super) async fn lowering_seats_below_assigned_revokes_nothing_and_gives_no_new_seat(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 3, true).await;
    for serial in ["SN-1", "SN-2", "SN-3"] {
        assert!(store.check_in(org, "editor", serial).await.unwrap().licensed);
    }
    let product = store.set_seats(org, "editor", 1, Actor::Operator).await.unwrap();
    assert_eq!((product.seats, product.assigned, product.available), (1, 3, 0));
    assert!(product.over_allocated());
    assert!(store.check_in(org, "editor", "SN-2").await.unwrap().licensed, "held seats stay held");
    assert_eq!(store.check_in(org, "editor", "SN-4").await.unwrap().reason, Some(Denial::NoSeatsAvailable));

    store.delete_device(org, "SN-1", Actor::Operator).await.unwrap();
    store.delete_device(org, "SN-2", Actor::Operator).await.unwrap();
    assert_eq!(store.check_in(org, "editor", "SN-4").await.unwrap().reason, Some(Denial::NoSeatsAvailable), "still at the limit");
    store.delete_device(org, "SN-3", Actor::Operator).await.unwrap();
    assert!(store.check_in(org, "editor", "SN-4").await.unwrap().licensed, "below the limit again");
}

pub(super) async fn idle_seats_are_reclaimed_and_auto_assign_gives_them_back(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    let viewer = NewProduct { code: "viewer".into(), name: "Viewer".into(), seats: 2, auto_assign: true };
    store.add_product(org, &viewer, Actor::Operator).await.unwrap();
    for serial in ["SN-1", "SN-2"] {
        store.check_in(org, "editor", serial).await.unwrap();
        store.check_in(org, "viewer", serial).await.unwrap();
    }
    // Answered from memory on SQLite from now on.
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);

    let thirty = PolicyUpdate { reclaim_after_days: Some(Some(30)), ..Default::default() };
    assert_eq!(store.update_policy(org, "editor", &thirty, Actor::AdminApi).await.unwrap().reclaim_after_days, Some(30));
    let day = chrono::Duration::days(1);
    assert_eq!(store.reclaim_idle_seats(now() + day * 29).await.unwrap(), 0, "seen 29 days ago: not idle yet");
    assert_eq!(store.reclaim_idle_seats(now() + day * 31).await.unwrap(), 2, "both editor seats");
    assert_eq!(store.reclaim_idle_seats(now() + day * 31).await.unwrap(), 0, "nothing left to do");
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 0);
    assert_eq!(store.product(org, "viewer").await.unwrap().assigned, 2, "a product without the policy keeps its seats");
    assert!(holders_of(&store, org, "editor").await.is_empty());

    let reclaimed = store
        .activity(org, &ActivityFilter { kind: Some(ActivityKind::SeatReclaimed), ..activity_filter() })
        .await
        .unwrap()
        .items;
    assert_eq!(reclaimed.len(), 2);
    assert!(reclaimed.iter().all(|a| a.actor == Actor::Reclaim && a.detail.as_deref() == Some("not seen for 30 days")));

    // Not an admin's revoke: with auto-assign on, the device gets a seat back
    // when it returns; with it off, it is told so (not answered from memory).
    store.set_auto_assign(org, "editor", false, Actor::AdminApi).await.unwrap();
    let back = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert_eq!((back.licensed, back.reason), (false, Some(Denial::AutoAssignDisabled)));
    store.set_auto_assign(org, "editor", true, Actor::AdminApi).await.unwrap();
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);

    // Turning it off: nothing is reclaimed however long the device is away.
    let never = PolicyUpdate { reclaim_after_days: Some(None), ..Default::default() };
    assert_eq!(store.update_policy(org, "editor", &never, Actor::AdminApi).await.unwrap().reclaim_after_days, None);
    assert_eq!(store.reclaim_idle_seats(now() + day * 3000).await.unwrap(), 0);
    for bad in [0, 3651, -5] {
        let refused = store.update_policy(org, "editor", &PolicyUpdate { reclaim_after_days: Some(Some(bad)), ..Default::default() }, Actor::AdminApi).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{bad}");
    }
}

pub(super) async fn bulk_actions_say_what_they_did_and_why_they_skipped(store: Store) {
    use store::bulk::{BulkAction, apply, matching};
    let org = org_with_product(&store, "acme", "editor", 3, false).await;
    for i in 1..=5 {
        store.check_in(org, "editor", &format!("SN-{i}")).await.unwrap();
    }
    let serials = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let by = Actor::AdminApi;

    let assigned = apply(&store, org, BulkAction::Assign, Some("editor"), &serials(&["SN-1", "SN-2", "SN-3", "SN-4", "SN-5", "NOPE"]), by).await.unwrap();
    assert_eq!((assigned.selected, assigned.done), (6, 3));
    assert_eq!(assigned.skipped.get("no_seats_available"), Some(&2));
    assert_eq!(assigned.skipped.get("unknown_device"), Some(&1));
    assert_eq!(assigned.summary, "assigned 3, 3 skipped: 2 no seats left, 1 no such device");
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 3, "the seat rule holds");

    let again = apply(&store, org, BulkAction::Assign, Some("editor"), &serials(&["SN-1"]), by).await.unwrap();
    assert_eq!(again.summary, "assigned 0, 1 skipped: 1 already assigned");
    let unassigned = apply(&store, org, BulkAction::Unassign, Some("editor"), &serials(&["SN-1", "SN-2"]), by).await.unwrap();
    assert_eq!((unassigned.done, unassigned.summary.as_str()), (2, "unassigned 2"));
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 1);

    // Refused before anything changes.
    for (action, product, list) in [
        (BulkAction::Assign, None, serials(&["SN-4"])),
        (BulkAction::Delete, Some("editor"), serials(&["SN-4"])),
        (BulkAction::Assign, Some("editor"), serials(&["SN-4", ""])),
    ] {
        let refused = apply(&store, org, action, product, &list, by).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
    }
    let unknown = apply(&store, org, BulkAction::Assign, Some("nope"), &serials(&["SN-4"]), by).await;
    assert!(matches!(unknown, Err(StoreError::UnknownProduct(_))));
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 1, "nothing changed");

    // Every device matching a search.
    let other = org_with_product(&store, "globex", "viewer", 1, true).await;
    store.check_in(other, "viewer", "SN-9").await.unwrap();
    assert_eq!(matching(&store, org, Some("SN-")).await.unwrap().len(), 5, "only this organization's devices");
    let deleted = apply(&store, org, BulkAction::Delete, None, &matching(&store, org, Some("SN-")).await.unwrap(), by).await.unwrap();
    assert_eq!(deleted.summary, "deleted 5");
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 0, "their seats are freed");
    assert!(store.devices(other, None, &PageRequest::first(10)).await.unwrap().items.len() == 1, "globex keeps its device");
    let ignored = apply(&store, org, BulkAction::Ignore, None, &serials(&["SN-1", "NEW-1"]), by).await.unwrap();
    assert_eq!(ignored.summary, "ignored 2");
    let kinds = store.activity(org, &ActivityFilter { kind: Some(ActivityKind::DeviceDeleted), ..activity_filter() }).await.unwrap();
    assert_eq!(kinds.items.len(), 5, "each device in the audit log, by who asked");
    assert!(kinds.items.iter().all(|a| a.actor == Actor::AdminApi));
}

pub(super) async fn concurrent_admin_actions_and_check_ins_keep_the_seat_count_exact(store: Store) {
    const SEATS: i64 = 5;
    let org = org_with_product(&store, "acme", "editor", SEATS, true).await;
    for i in 0..10 {
        store.check_in(org, "editor", &format!("ADMIN-{i}")).await.unwrap();
    }
    let mut tasks = Vec::new();
    for round in 0..4 {
        for i in 0..10 {
            let store = store.clone();
            let serial = format!("ADMIN-{i}");
            tasks.push(tokio::spawn(async move {
                let done = match (round + i) % 4 {
                    0 => store.unassign(org, &serial, "editor", Actor::Operator).await.map(drop),
                    1 => store.assign(org, &serial, "editor", Actor::Operator).await.map(drop),
                    2 => store.check_in(org, "editor", &format!("NEW-{round}-{i}")).await.map(drop),
                    _ => store.delete_device(org, &serial, Actor::Operator).await,
                };
                // A device deleted by an earlier action, or a full product, is an
                // answer, not a failure.
                match done {
                    Err(StoreError::UnknownDevice(_) | StoreError::NoSeatsAvailable) => Ok(()),
                    other => other,
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("no panic").expect("no action fails unexpectedly");
    }
    let holders = holders_of(&store, org, "editor").await;
    assert!(holders.len() as i64 <= SEATS, "{} holders for {SEATS} seats", holders.len());
}

/// A revoke, a delete or an ignore dropped at any point, before, during or
/// after its commit: the seat is either still the device's or free, and
/// never both (SQLite's memory of held seats must not outlive the commit).
pub(super) async fn a_seat_taken_away_by_a_dropped_request_is_never_answered_twice(store: Store) {
    let by = Actor::AdminApi;
    for action in ["revoke", "delete", "ignore"] {
        let change = |org: OrgId| {
            let store = store.clone();
            async move {
                let _ = match action {
                    "revoke" => store.unassign(org, "HOLDER", "editor", by).await,
                    "delete" => store.delete_device(org, "HOLDER", by).await,
                    _ => store.ignore_device(org, "HOLDER", by).await.map(drop),
                };
            }
        };
        let holding = async |name: &str| {
            let org = org_with_product(&store, name, "editor", 1, true).await;
            for _ in 0..2 {
                assert!(store.check_in(org, "editor", "HOLDER").await.unwrap().licensed);
            }
            org
        };
        // How many polls the change takes when left alone, then a drop after each.
        let mut polls = 0;
        let whole = holding(&format!("{action}-whole")).await;
        let mut left_alone = std::pin::pin!(change(whole));
        while futures::poll!(left_alone.as_mut()).is_pending() {
            polls += 1;
            tokio::task::yield_now().await;
        }
        let step = (polls / 40).max(1);
        for dropped_after in (0..=polls + 1).step_by(step) {
            let org = holding(&format!("{action}-{dropped_after}")).await;
            drop_after(change(org), dropped_after).await;
            // Whatever the database was given finishes meanwhile.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let newcomer = store.check_in(org, "editor", "NEWCOMER").await.unwrap();
            let holder = store.check_in(org, "editor", "HOLDER").await.unwrap();
            assert!(
                !(newcomer.licensed && holder.licensed),
                "{action} dropped after {dropped_after} of {polls} polls: one seat answered licensed to both"
            );
            // The dropped change may still be finishing in its own task; once
            // it has, the counter and the holders agree, within the one seat.
            let mut settled = None;
            for _ in 0..200 {
                let holders = store.holders(org, "editor", &PageRequest::first(10)).await.unwrap().items.len() as i64;
                if store.product(org, "editor").await.unwrap().assigned == holders {
                    settled = Some(holders);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(settled.is_some_and(|holders| holders <= 1), "{action} dropped after {dropped_after}: {settled:?}");
        }
    }
}
