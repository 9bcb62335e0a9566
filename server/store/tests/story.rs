//! The store's behaviour, written once and run on both backends: every domain
//! rule of docs/contract.md, tenant isolation and the seat invariant under a race.

use std::collections::HashSet;
use std::time::Duration;

use store::*;

/// Runs each story on SQLite and on PostgreSQL.
macro_rules! stories {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    let db = store::testing::TestDatabase::sqlite();
                    super::$story(db.open().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    let Some(db) = store::testing::TestDatabase::postgres().await else { return };
                    super::$story(db.open().await).await;
                }
            )*
        }
    };
}

stories!(
    first_check_in_records_the_device_and_auto_assigns_a_seat,
    a_known_device_keeps_first_seen_and_moves_last_seen,
    a_flush_writes_every_waiting_last_seen,
    auto_assign_off_leaves_new_devices_unlicensed,
    a_full_product_answers_no_seats_available,
    revoked_seat_is_not_reassigned_by_auto_assign,
    a_device_answered_from_memory_loses_its_seat_at_once,
    assign_without_a_free_seat_fails_and_changes_nothing,
    unassign_of_a_seat_not_held_still_blocks_auto_assign,
    deleting_a_device_frees_its_seats_and_it_returns_as_new,
    an_ignored_device_is_not_recorded_until_unignored,
    lowering_seats_below_assigned_revokes_nothing_and_gives_no_new_seat,
    organizations_never_see_or_change_each_others_data,
    keys_identify_their_organization_and_rotation_retires_the_old_key,
    device_list_pages_by_serial_and_searches_by_substring,
    the_product_screen_lists_its_holders_in_pages,
    bad_input_is_refused_and_records_nothing,
    operator_conflicts_are_reported_not_overwritten,
    a_product_policy_changes_only_what_is_named_and_refuses_bad_values,
    servers_racing_to_make_the_first_signing_key_store_one_and_rotation_retires_it,
    every_change_is_recorded_with_who_made_it_and_nothing_else_is,
    the_audit_log_filters_pages_and_forgets_old_changes,
    idle_seats_are_reclaimed_and_auto_assign_gives_them_back,
    daily_snapshots_keep_each_days_last_reading_per_product,
    bulk_actions_say_what_they_did_and_why_they_skipped,
    bootstrap_creates_the_default_organization_only_once,
    many_concurrent_check_ins_never_take_more_seats_than_exist,
    concurrent_admin_actions_and_check_ins_keep_the_seat_count_exact,
    browser_sessions_end_on_sign_out_expiry_and_admin_key_rotation,
    ignoring_a_serial_while_it_checks_in_leaves_it_unrecorded,
    held_seats_checking_in_at_once_are_all_answered_and_see_every_revoke,
    check_ins_needing_a_decision_at_once_are_each_answered_by_the_rule,
    a_check_ins_first_look_finds_the_key_and_a_held_seat_and_writes_nothing,
    a_seat_taken_away_by_a_dropped_request_is_never_answered_twice,
    a_short_search_walks_a_large_fleet_in_bounded_steps,
);

/// A search of one or two characters, which no trigram index serves, walks
/// at most 10,000 devices per page: a search matching nothing in 25,000
/// devices answers three pages (empty, with a cursor where each walk
/// stopped), and one matching a device at the end finds it by following
/// the cursors. Searches that match often fill their pages as before.
async fn a_short_search_walks_a_large_fleet_in_bounded_steps(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 0, false).await;
    let serials: Vec<String> = (0..25_000).map(|i| format!("SN-{i:05}")).collect();
    for chunk in serials.chunks(1000) {
        let check_ins = chunk.iter().map(|serial| store.check_in(org, "editor", serial));
        for answer in futures::future::join_all(check_ins).await {
            answer.unwrap();
        }
    }
    store.check_in(org, "editor", "ZZ-LAST").await.unwrap();

    let walk = async |query: &str| {
        let mut page = PageRequest::first(50);
        let mut pages = Vec::new();
        loop {
            let found = store.devices(org, Some(query), &page).await.unwrap();
            pages.push(found.items.iter().map(|d| d.serial.clone()).collect::<Vec<_>>());
            match found.next {
                Some(next) => page.after = Some(next),
                None => return pages,
            }
        }
    };
    let nothing = walk("Q").await;
    assert_eq!(nothing.len(), 3, "three walks of at most 10,000 devices");
    assert!(nothing.iter().all(Vec::is_empty));
    let last = walk("Z").await;
    assert_eq!(last.concat(), ["ZZ-LAST"]);
    assert_eq!(last.len(), 3);
    let nines = walk("99").await.concat();
    assert_eq!(nines.len(), serials.iter().filter(|s| s.contains("99")).count(), "every match, once");
    assert!(nines.windows(2).all(|w| w[0] < w[1]));
    let first = store.devices(org, Some("0"), &PageRequest::first(50)).await.unwrap();
    assert_eq!(first.items.len(), 50, "a search that matches often fills its page");
}

async fn org_with_product(store: &Store, org: &str, code: &str, seats: i64, auto_assign: bool) -> OrgId {
    store.create_organization(org).await.expect("create organization");
    let id = store.organization_by_name(org).await.expect("find organization").id;
    let product = NewProduct { code: code.into(), name: format!("{code} app"), seats, auto_assign };
    store.add_product(id, &product, Actor::Operator).await.expect("add product");
    id
}

/// Every assignment counted by walking the holders list, which must agree with
/// the product's own counter.
async fn holders_of(store: &Store, org: OrgId, code: &str) -> Vec<String> {
    let mut serials = Vec::new();
    let mut page = PageRequest::first(7);
    loop {
        let got = store.holders(org, code, &page).await.expect("holders");
        serials.extend(got.items.into_iter().map(|h| h.serial));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    let product = store.product(org, code).await.expect("product");
    assert_eq!(product.assigned, serials.len() as i64, "the seat counter agrees with the assignments");
    serials
}

async fn first_check_in_records_the_device_and_auto_assigns_a_seat(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    let answer = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert!(answer.licensed);
    assert_eq!(answer.reason, None);
    assert_eq!((answer.product.as_str(), answer.serial.as_str()), ("editor", "SN-1"));
    assert_eq!(answer.first_seen, answer.last_seen);
    assert!(answer.first_seen.is_some());

    let device = store.device(org, "SN-1").await.unwrap();
    assert_eq!(device.device.seats_assigned, 1);
    assert_eq!(device.licenses, vec![DeviceLicense { product: "editor".into(), name: "editor app".into(), assigned: true }]);
    let product = store.product(org, "editor").await.unwrap();
    assert_eq!((product.seats, product.assigned, product.available), (2, 1, 1));

    // The same device again keeps its one seat.
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 1);
}

async fn a_known_device_keeps_first_seen_and_moves_last_seen(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    let first = store.check_in(org, "editor", "SN-1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(15)).await;
    let second = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert_eq!(second.first_seen, first.first_seen);
    assert!(second.last_seen > first.last_seen, "{second:?} after {first:?}");
    let device = store.device(org, "SN-1").await.unwrap().device;
    assert_eq!((Some(device.first_seen), Some(device.last_seen)), (second.first_seen, second.last_seen));
    assert_eq!(device.last_seen.timestamp_subsec_nanos() % 1_000_000, 0, "stored to the millisecond");
}

/// A flush writes every `last seen` that waits, however many wait: more than
/// one statement's worth on either backend.
async fn a_flush_writes_every_waiting_last_seen(store: Store) {
    const DEVICES: usize = 2_100;
    let org = org_with_product(&store, "acme", "editor", DEVICES as i64, true).await;
    let check_in_all = || {
        let tasks: Vec<_> = (0..DEVICES)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.check_in(org, "editor", &format!("SN-{i:05}")).await.unwrap() })
            })
            .collect();
        async move {
            let mut answers = Vec::with_capacity(DEVICES);
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        }
    };
    let first = check_in_all().await;
    assert!(first.iter().all(|answer| answer.licensed));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = check_in_all().await;
    store.flush().await.unwrap();
    for (first, again) in first.iter().zip(&again) {
        assert!(again.last_seen > first.last_seen, "{again:?} after {first:?}");
        let device = store.device(org, &again.serial).await.unwrap().device;
        assert_eq!(Some(device.last_seen), again.last_seen, "{}", again.serial);
    }
}

async fn auto_assign_off_leaves_new_devices_unlicensed(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 5, false).await;
    let answer = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert!(!answer.licensed);
    assert_eq!(answer.reason, Some(Denial::AutoAssignDisabled));
    assert!(answer.first_seen.is_some(), "the device is still recorded");
    assert_eq!(store.device(org, "SN-1").await.unwrap().device.seats_assigned, 0);

    // An admin assigns by hand; the device is then licensed.
    assert_eq!(store.assign(org, "SN-1", "editor", Actor::Operator).await.unwrap(), Assigned::Newly);
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);

    // Switching auto-assign on takes effect at once.
    let product = store.set_auto_assign(org, "editor", true, Actor::Operator).await.unwrap();
    assert!(product.auto_assign);
    assert!(store.check_in(org, "editor", "SN-2").await.unwrap().licensed);
}

async fn a_full_product_answers_no_seats_available(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 1, true).await;
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);
    let answer = store.check_in(org, "editor", "SN-2").await.unwrap();
    assert!(!answer.licensed);
    assert_eq!(answer.reason, Some(Denial::NoSeatsAvailable));
    assert_eq!(holders_of(&store, org, "editor").await, ["SN-1"]);

    // A freed seat goes to the next device that asks.
    store.delete_device(org, "SN-1", Actor::Operator).await.unwrap();
    assert!(store.check_in(org, "editor", "SN-2").await.unwrap().licensed);
}

async fn revoked_seat_is_not_reassigned_by_auto_assign(store: Store) {
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

/// On SQLite a device that holds its seat is answered from memory after its
/// first check-in (`known.rs`); whatever takes the seat away must end that.
async fn a_device_answered_from_memory_loses_its_seat_at_once(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 5, true).await;
    let twice = async |serial: &str| {
        assert!(store.check_in(org, "editor", serial).await.unwrap().licensed);
        store.check_in(org, "editor", serial).await.unwrap()
    };

    assert!(twice("SN-1").await.licensed);
    store.unassign(org, "SN-1", "editor", Actor::Operator).await.unwrap();
    let revoked = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert_eq!((revoked.licensed, revoked.reason), (false, Some(Denial::RevokedByAdmin)));
    store.assign(org, "SN-1", "editor", Actor::Operator).await.unwrap();

    let before_delete = twice("SN-1").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.delete_device(org, "SN-1", Actor::Operator).await.unwrap();
    let returned = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert!(returned.licensed);
    assert!(returned.first_seen > before_delete.first_seen, "answered as a new device, not from memory");

    twice("SN-1").await;
    store.ignore_device(org, "SN-1", Actor::Operator).await.unwrap();
    let ignored = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert_eq!((ignored.licensed, ignored.reason), (false, Some(Denial::DeviceIgnored)));
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 0);

    // Last seen moves with every check-in, in every list, at once and after
    // it is written.
    let last = twice("SN-2").await.last_seen.unwrap();
    let listed = store.devices(org, None, &PageRequest::first(10)).await.unwrap().items;
    assert_eq!(listed.iter().map(|d| d.last_seen).collect::<Vec<_>>(), [last]);
    let holders = store.holders(org, "editor", &PageRequest::first(10)).await.unwrap().items;
    assert_eq!(holders.iter().map(|h| h.last_seen).collect::<Vec<_>>(), [last]);
    store.flush().await.unwrap();
    assert_eq!(store.device(org, "SN-2").await.unwrap().device.last_seen, last);
}

/// Polls `change` `polls` times, yielding between polls so that the database
/// makes progress, then drops it wherever it is: a client gone, a timeout.
async fn drop_after<F: std::future::Future>(change: F, polls: usize) -> bool {
    let mut change = std::pin::pin!(change);
    for _ in 0..polls {
        if futures::poll!(change.as_mut()).is_ready() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

/// A revoke, a delete or an ignore dropped at any point, before, during or
/// after its commit: the seat is either still the device's or free, and
/// never both (SQLite's memory of held seats must not outlive the commit).
async fn a_seat_taken_away_by_a_dropped_request_is_never_answered_twice(store: Store) {
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

async fn assign_without_a_free_seat_fails_and_changes_nothing(store: Store) {
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

async fn unassign_of_a_seat_not_held_still_blocks_auto_assign(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 3, false).await;
    store.check_in(org, "editor", "SN-1").await.unwrap();
    store.unassign(org, "SN-1", "editor", Actor::Operator).await.unwrap();
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 0);
    store.set_auto_assign(org, "editor", true, Actor::Operator).await.unwrap();
    let answer = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert_eq!(answer.reason, Some(Denial::RevokedByAdmin));
}

async fn deleting_a_device_frees_its_seats_and_it_returns_as_new(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    let viewer = NewProduct { code: "viewer".into(), name: "Viewer".into(), seats: 1, auto_assign: true };
    store.add_product(org, &viewer, Actor::Operator).await.unwrap();
    let first = store.check_in(org, "editor", "SN-1").await.unwrap();
    store.check_in(org, "viewer", "SN-1").await.unwrap();
    store.unassign(org, "SN-1", "editor", Actor::Operator).await.unwrap();
    store.assign(org, "SN-1", "editor", Actor::Operator).await.unwrap();
    assert_eq!(store.device(org, "SN-1").await.unwrap().device.seats_assigned, 2);

    tokio::time::sleep(Duration::from_millis(15)).await;
    store.delete_device(org, "SN-1", Actor::Operator).await.unwrap();
    assert!(matches!(store.device(org, "SN-1").await, Err(StoreError::UnknownDevice(_))));
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 0);
    assert_eq!(store.product(org, "viewer").await.unwrap().assigned, 0);
    assert!(matches!(store.delete_device(org, "SN-1", Actor::Operator).await, Err(StoreError::UnknownDevice(_))));

    let again = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert!(again.licensed, "a deleted device's revokes are forgotten with it");
    assert!(again.first_seen > first.first_seen, "it reappears as a new device");
}

async fn an_ignored_device_is_not_recorded_until_unignored(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    store.check_in(org, "editor", "SN-1").await.unwrap();
    assert!(store.ignore_device(org, "SN-1", Actor::Operator).await.unwrap(), "a recorded device was removed");
    assert_eq!(store.product(org, "editor").await.unwrap().assigned, 0, "its seat is freed");
    assert!(matches!(store.device(org, "SN-1").await, Err(StoreError::UnknownDevice(_))));

    let answer = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert_eq!(
        (answer.licensed, answer.reason, answer.first_seen, answer.last_seen),
        (false, Some(Denial::DeviceIgnored), None, None)
    );
    assert!(matches!(store.device(org, "SN-1").await, Err(StoreError::UnknownDevice(_))), "not recorded");

    // A serial never seen can be ignored ahead of time; ignoring twice is harmless.
    assert!(!store.ignore_device(org, "SN-2", Actor::Operator).await.unwrap(), "nothing to remove");
    assert!(!store.ignore_device(org, "SN-2", Actor::Operator).await.unwrap());
    let listed: Vec<String> = store.ignored(org, &PageRequest::first(10)).await.unwrap().items.into_iter().map(|i| i.serial).collect();
    assert_eq!(listed, ["SN-1", "SN-2"]);

    store.unignore(org, "SN-1", Actor::Operator).await.unwrap();
    assert!(matches!(store.unignore(org, "SN-1", Actor::Operator).await, Err(StoreError::NotIgnored(_))));
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);
}

async fn lowering_seats_below_assigned_revokes_nothing_and_gives_no_new_seat(store: Store) {
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

async fn organizations_never_see_or_change_each_others_data(store: Store) {
    let acme = org_with_product(&store, "acme", "editor", 2, true).await;
    let globex = org_with_product(&store, "globex", "editor", 2, true).await;
    store.check_in(acme, "editor", "SHARED").await.unwrap();
    store.check_in(acme, "editor", "ACME-ONLY").await.unwrap();

    // The same serial in another organization is another device.
    let theirs = store.check_in(globex, "editor", "SHARED").await.unwrap();
    assert!(theirs.licensed);
    assert_eq!(holders_of(&store, globex, "editor").await, ["SHARED"]);
    assert!(matches!(store.device(globex, "ACME-ONLY").await, Err(StoreError::UnknownDevice(_))));
    assert!(matches!(store.delete_device(globex, "ACME-ONLY", Actor::Operator).await, Err(StoreError::UnknownDevice(_))));
    assert!(matches!(store.unassign(globex, "ACME-ONLY", "editor", Actor::Operator).await, Err(StoreError::UnknownDevice(_))));
    let globex_devices = store.devices(globex, None, &PageRequest::first(50)).await.unwrap();
    assert_eq!(globex_devices.items.iter().map(|d| d.serial.as_str()).collect::<Vec<_>>(), ["SHARED"]);

    store.ignore_device(globex, "ACME-ONLY", Actor::Operator).await.unwrap();
    assert!(store.check_in(acme, "editor", "ACME-ONLY").await.unwrap().licensed, "another org's ignore list");
    store.set_auto_assign(globex, "editor", false, Actor::Operator).await.unwrap();
    assert!(store.product(acme, "editor").await.unwrap().auto_assign);
    assert_eq!(holders_of(&store, acme, "editor").await, ["ACME-ONLY", "SHARED"]);
}

async fn keys_identify_their_organization_and_rotation_retires_the_old_key(store: Store) {
    let acme = store.create_organization("acme").await.unwrap();
    let globex = store.create_organization("globex").await.unwrap();
    assert!(acme.admin_key.starts_with("sk_admin_") && acme.product_key.starts_with("sk_prod_"));
    let acme_id = store.authenticate_admin(&acme.admin_key).await.unwrap().expect("admin key").id;
    assert_eq!(store.authenticate_product(&acme.product_key).await.unwrap(), Some(acme_id));
    assert_ne!(store.authenticate_product(&globex.product_key).await.unwrap(), Some(acme_id));
    assert_eq!(store.authenticate_admin(&acme.product_key).await.unwrap(), None, "a product key is no admin key");
    assert_eq!(store.authenticate_product(&acme.admin_key).await.unwrap(), None, "an admin key is no product key");
    assert_eq!(store.authenticate_admin("sk_admin_0000").await.unwrap(), None);
    assert_eq!(store.settings(acme_id).await.unwrap(), Settings { organization_name: "acme".into(), product_key: acme.product_key.clone() });

    let new_product_key = store.rotate_product_key(acme_id, Actor::Operator).await.unwrap();
    assert_eq!(store.authenticate_product(&acme.product_key).await.unwrap(), None);
    assert_eq!(store.authenticate_product(&new_product_key).await.unwrap(), Some(acme_id));
    assert_eq!(store.settings(acme_id).await.unwrap().product_key, new_product_key);

    let new_admin_key = store.rotate_admin_key(acme_id, Actor::Operator).await.unwrap();
    assert_eq!(store.authenticate_admin(&acme.admin_key).await.unwrap(), None);
    assert_eq!(store.authenticate_admin(&new_admin_key).await.unwrap().map(|o| o.name), Some("acme".into()));
    assert!(store.authenticate_admin(&globex.admin_key).await.unwrap().is_some(), "others keep their keys");
}

async fn device_list_pages_by_serial_and_searches_by_substring(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 3, true).await;
    let serials: Vec<String> = (0..25).map(|i| format!("LAPTOP-{i:02}")).chain(["desk_1".into(), "DESK%2".into()]).collect();
    for serial in &serials {
        store.check_in(org, "editor", serial).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(10);
    loop {
        let got = store.devices(org, None, &page).await.unwrap();
        assert!(got.items.len() <= 10);
        seen.extend(got.items.into_iter().map(|d| d.serial));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    let mut sorted = serials.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "every device once, in serial order");

    let found = store.devices(org, Some("laptop-1"), &PageRequest::first(50)).await.unwrap();
    assert_eq!(found.items.len(), 10, "search ignores ASCII case");
    assert_eq!(found.next, None);
    let found = store.devices(org, Some("%"), &PageRequest::first(50)).await.unwrap();
    assert_eq!(found.items.iter().map(|d| d.serial.as_str()).collect::<Vec<_>>(), ["DESK%2"], "wildcards are literal");
    let found = store.devices(org, Some("_"), &PageRequest::first(50)).await.unwrap();
    assert_eq!(found.items.iter().map(|d| d.serial.as_str()).collect::<Vec<_>>(), ["desk_1"]);
    let seats: i64 = store.devices(org, None, &PageRequest::first(100)).await.unwrap().items.iter().map(|d| d.seats_assigned).sum();
    assert_eq!(seats, 3);
}

async fn the_product_screen_lists_its_holders_in_pages(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 20, true).await;
    for i in 0..15 {
        store.check_in(org, "editor", &format!("SN-{i:02}")).await.unwrap();
    }
    store.unassign(org, "SN-03", "editor", Actor::Operator).await.unwrap();
    let holders = holders_of(&store, org, "editor").await;
    assert_eq!(holders.len(), 14);
    assert!(!holders.contains(&"SN-03".to_string()));
    assert!(matches!(store.holders(org, "nope", &PageRequest::first(5)).await, Err(StoreError::UnknownProduct(_))));
}

async fn bad_input_is_refused_and_records_nothing(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    let long = "x".repeat(129);
    for serial in ["", "tab\tinside", "new\nline", "nul\0", long.as_str()] {
        assert!(matches!(store.check_in(org, "editor", serial).await, Err(StoreError::Invalid(_))), "{serial:?}");
    }
    assert!(matches!(store.check_in(org, "missing", "SN-1").await, Err(StoreError::UnknownProduct(_))));
    assert!(store.devices(org, None, &PageRequest::first(10)).await.unwrap().items.is_empty(), "nothing recorded");

    // SQL meta-characters and unicode are only data.
    for serial in ["'; drop table devices; --", "ünïcødé 🔑", &"é".repeat(128), " spaced "] {
        assert!(store.check_in(org, "editor", serial).await.unwrap().first_seen.is_some());
        assert_eq!(store.device(org, serial).await.unwrap().device.serial, serial);
    }

    for code in ["", "Upper", "-lead", "has space", &"a".repeat(65)] {
        let product = NewProduct { code: code.into(), name: "X".into(), seats: 1, auto_assign: false };
        assert!(matches!(store.add_product(org, &product, Actor::Operator).await, Err(StoreError::Invalid(_))), "{code:?}");
    }
    let negative = NewProduct { code: "neg".into(), name: "Neg".into(), seats: -1, auto_assign: false };
    assert!(matches!(store.add_product(org, &negative, Actor::Operator).await, Err(StoreError::Invalid(_))));
    let blank = NewProduct { code: "blank".into(), name: "  ".into(), seats: 1, auto_assign: false };
    assert!(matches!(store.add_product(org, &blank, Actor::Operator).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.set_seats(org, "editor", -5, Actor::Operator).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.create_organization("").await, Err(StoreError::Invalid(_))));
    assert_eq!(store.products(org).await.unwrap().len(), 1);
    assert_eq!(store.product(org, "editor").await.unwrap().seats, 2);
}

async fn operator_conflicts_are_reported_not_overwritten(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    assert!(matches!(store.create_organization("acme").await, Err(StoreError::Conflict(_))));
    let again = NewProduct { code: "editor".into(), name: "Other".into(), seats: 9, auto_assign: false };
    assert!(matches!(store.add_product(org, &again, Actor::Operator).await, Err(StoreError::Conflict(_))));
    let product = store.product(org, "editor").await.unwrap();
    assert_eq!((product.name.as_str(), product.seats), ("editor app", 2));
    assert!(matches!(store.organization_by_name("nobody").await, Err(StoreError::UnknownOrganization(_))));
    assert!(matches!(store.set_seats(org, "nope", 3, Actor::Operator).await, Err(StoreError::UnknownProduct(_))));

    let listed = store.organizations().await.unwrap();
    assert_eq!(listed.iter().map(|o| (o.name.as_str(), o.products)).collect::<Vec<_>>(), [("acme", 1)]);
}

async fn bootstrap_creates_the_default_organization_only_once(store: Store) {
    let created = store.bootstrap().await.unwrap().expect("an empty database gets the default organization");
    assert_eq!(created.name, "default");
    let org = store.authenticate_admin(&created.admin_key).await.unwrap().expect("its admin key works").id;
    assert_eq!(store.authenticate_product(&created.product_key).await.unwrap(), Some(org));
    let demo = store.products(org).await.unwrap();
    assert_eq!(demo.len(), 1);
    assert!(demo[0].auto_assign && demo[0].seats > 0);
    assert!(store.check_in(org, &demo[0].code, "NEWCOMER-1").await.unwrap().licensed);
    assert!(store.bootstrap().await.unwrap().is_none(), "never twice");
}

async fn many_concurrent_check_ins_never_take_more_seats_than_exist(store: Store) {
    const SEATS: i64 = 7;
    const DEVICES: usize = 120;
    let org = org_with_product(&store, "acme", "editor", SEATS, true).await;
    let tasks: Vec<_> = (0..DEVICES)
        .map(|i| {
            let store = store.clone();
            // Every device checks in twice, so a device also races itself.
            tokio::spawn(async move {
                let serial = format!("RACE-{:03}", i / 2 % (DEVICES / 2));
                store.check_in(org, "editor", &serial).await
            })
        })
        .collect();
    let mut licensed = HashSet::new();
    for task in tasks {
        let answer = task.await.expect("no panic").expect("no check-in fails");
        if answer.licensed {
            licensed.insert(answer.serial);
        } else {
            assert_eq!(answer.reason, Some(Denial::NoSeatsAvailable));
        }
    }
    let holders: HashSet<String> = holders_of(&store, org, "editor").await.into_iter().collect();
    assert_eq!(holders.len() as i64, SEATS, "every seat taken, none twice");
    assert_eq!(licensed, holders, "every device told licensed holds a seat");
}

async fn concurrent_admin_actions_and_check_ins_keep_the_seat_count_exact(store: Store) {
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

/// Devices that hold their seats checking in all at once, the same device
/// twice and for two products among them (PostgreSQL answers such check-ins
/// in shared statements, SQLite from memory): every one is licensed with its
/// own times, and a revoke that has returned is seen by the next check-in.
async fn held_seats_checking_in_at_once_are_all_answered_and_see_every_revoke(store: Store) {
    const DEVICES: usize = 40;
    let org = org_with_product(&store, "acme", "editor", 100, true).await;
    let viewer = NewProduct { code: "viewer".into(), name: "viewer app".into(), seats: 100, auto_assign: true };
    store.add_product(org, &viewer, Actor::Operator).await.unwrap();
    let serial = |i: usize| format!("HELD-{:02}", i % DEVICES);
    let mut first_seen = std::collections::HashMap::new();
    for i in 0..DEVICES {
        for code in ["editor", "viewer"] {
            let answer = store.check_in(org, code, &serial(i)).await.unwrap();
            assert!(answer.licensed);
            first_seen.entry(serial(i)).or_insert(answer.first_seen);
        }
    }
    let at_once = |round: usize| {
        (0..DEVICES * 6).map(move |i| (i, if (i + round).is_multiple_of(3) { "viewer" } else { "editor" })).map(|(i, code)| {
            let store = store.clone();
            tokio::spawn(async move { store.check_in(org, code, &format!("HELD-{:02}", i % DEVICES)).await.unwrap() })
        })
    };
    let started = now();
    let batches_before = store.batch_counts();
    for task in at_once(0).collect::<Vec<_>>() {
        let answer = task.await.unwrap();
        assert!(answer.licensed, "{answer:?}");
        assert_eq!(answer.first_seen, first_seen[&answer.serial], "{answer:?}");
        assert!(answer.last_seen.unwrap() >= started, "{answer:?}");
    }
    // On PostgreSQL the shared statements did the work (a device another
    // statement holds is skipped to the full decision, so not all of it).
    if let (Some((found_before, failed_before)), Some((found, failed))) = (batches_before, store.batch_counts()) {
        assert_eq!(failed, failed_before, "no shared statement failed");
        assert!(found - found_before >= DEVICES as u64, "{} of {} answered by shared statements", found - found_before, DEVICES * 6);
    }

    store.unassign(org, &serial(0), "editor", Actor::Operator).await.unwrap();
    store.delete_device(org, &serial(1), Actor::Operator).await.unwrap();
    for task in at_once(1).collect::<Vec<_>>() {
        let answer = task.await.unwrap();
        match (answer.serial.as_str(), answer.product.as_str()) {
            ("HELD-00", "editor") => assert_eq!(answer.reason, Some(Denial::RevokedByAdmin)),
            // Deleted, it came back as a new device and took a free seat.
            ("HELD-01", _) => assert!(answer.licensed && answer.first_seen > first_seen["HELD-01"], "{answer:?}"),
            _ => assert!(answer.licensed && answer.first_seen == first_seen[&answer.serial], "{answer:?}"),
        }
    }
    assert_eq!(holders_of(&store, org, "editor").await.len(), DEVICES - 1);
    assert_eq!(holders_of(&store, org, "viewer").await.len(), DEVICES);
}

/// Check-ins that need a seat decision, all at once (both backends decide
/// such check-ins in groups, one transaction each): new devices racing for
/// the last seats, each device twice and some for two products, a revoked
/// device, an ignored serial, a product that does not exist and one without
/// auto-assign. Each is answered as if it had come alone, and every seat
/// given is counted and in the audit log once.
async fn check_ins_needing_a_decision_at_once_are_each_answered_by_the_rule(store: Store) {
    const SEATS: usize = 10;
    const DEVICES: usize = 30;
    let org = org_with_product(&store, "acme", "editor", SEATS as i64, true).await;
    for (code, auto_assign) in [("viewer", true), ("manual", false)] {
        let product = NewProduct { code: code.into(), name: format!("{code} app"), seats: 100, auto_assign };
        store.add_product(org, &product, Actor::Operator).await.unwrap();
    }
    assert!(store.check_in(org, "editor", "REVOKED").await.unwrap().licensed);
    store.unassign(org, "REVOKED", "editor", Actor::Operator).await.unwrap();
    store.ignore_device(org, "IGNORED", Actor::Operator).await.unwrap();
    let changes_before = changes(&store, org).await.len();
    let batches_before = store.batch_counts();

    let mut asked: Vec<(&str, String)> = Vec::new();
    for i in 0..DEVICES {
        asked.push(("editor", format!("NEW-{i:02}")));
        asked.push(("editor", format!("NEW-{i:02}")));
        asked.push(("viewer", format!("NEW-{i:02}")));
    }
    for (code, serial) in [("editor", "REVOKED"), ("editor", "IGNORED"), ("nope", "NEW-00"), ("manual", "NEW-01")] {
        asked.push((code, serial.to_owned()));
        asked.push((code, serial.to_owned()));
    }
    let tasks: Vec<_> = asked
        .into_iter()
        .map(|(code, serial)| {
            let store = store.clone();
            tokio::spawn(async move { (code, serial.clone(), store.check_in(org, code, &serial).await) })
        })
        .collect();

    let mut editors: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    let mut first_seen = std::collections::HashMap::new();
    for task in tasks {
        let (code, serial, answer) = task.await.expect("no panic");
        let answer = match (code, answer) {
            ("nope", Err(StoreError::UnknownProduct(unknown))) => {
                assert_eq!(unknown, "nope");
                continue;
            }
            (_, answer) => answer.unwrap_or_else(|error| panic!("{code} {serial}: {error}")),
        };
        assert_eq!((answer.product.as_str(), answer.serial.as_str()), (code, serial.as_str()));
        match (code, serial.as_str()) {
            (_, "REVOKED") => assert_eq!(answer.reason, Some(Denial::RevokedByAdmin)),
            (_, "IGNORED") => {
                assert_eq!(answer.reason, Some(Denial::DeviceIgnored));
                assert_eq!((answer.first_seen, answer.last_seen), (None, None));
            }
            ("manual", _) => assert_eq!(answer.reason, Some(Denial::AutoAssignDisabled)),
            ("viewer", _) => assert!(answer.licensed, "{answer:?}"),
            _ => {
                if !answer.licensed {
                    assert_eq!(answer.reason, Some(Denial::NoSeatsAvailable));
                }
                let earlier = editors.insert(serial.clone(), answer.licensed);
                assert!(earlier.is_none_or(|earlier| earlier == answer.licensed), "{serial} was answered both ways");
            }
        }
        if let Some(seen) = answer.first_seen {
            let first = *first_seen.entry(serial.clone()).or_insert(seen);
            assert_eq!(first, seen, "{serial} has one first seen");
        }
    }

    let licensed: HashSet<String> = editors.into_iter().filter(|(_, licensed)| *licensed).map(|(serial, _)| serial).collect();
    assert_eq!(licensed.len(), SEATS, "every free seat given, none twice");
    let holders: HashSet<String> = holders_of(&store, org, "editor").await.into_iter().collect();
    assert_eq!(holders, licensed, "every device told licensed holds a seat");
    assert_eq!(holders_of(&store, org, "viewer").await.len(), DEVICES);
    assert!(holders_of(&store, org, "manual").await.is_empty());
    assert!(matches!(store.device(org, "IGNORED").await, Err(StoreError::UnknownDevice(_))), "an ignored serial is not recorded");

    let given: Vec<_> = changes(&store, org).await.split_off(changes_before);
    let mut expected: Vec<_> = licensed.iter().map(|serial| ("editor".to_owned(), serial.clone())).collect();
    expected.extend((0..DEVICES).map(|i| ("viewer".to_owned(), format!("NEW-{i:02}"))));
    expected.sort();
    let mut recorded: Vec<_> = given
        .into_iter()
        .map(|(by, kind, product, serial)| {
            assert_eq!((by, kind), (Actor::Device, ActivityKind::SeatAutoAssigned));
            (product.unwrap(), serial.unwrap())
        })
        .collect();
    recorded.sort();
    assert_eq!(recorded, expected, "each seat given is in the audit log once");
    if let (Some((_, failed_before)), Some((_, failed))) = (batches_before, store.batch_counts()) {
        assert_eq!(failed, failed_before, "no group failed");
    }
}

/// The check-in API's first look (`first_look`) finds the product key's
/// organization and the seat the device holds, and writes nothing; the
/// answer from that seat (`check_in_held`) moves `last seen`, which reads
/// show at once.
async fn a_check_ins_first_look_finds_the_key_and_a_held_seat_and_writes_nothing(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 5, true).await;
    let manual = NewProduct { code: "viewer".into(), name: "viewer app".into(), seats: 5, auto_assign: false };
    store.add_product(org, &manual, Actor::Operator).await.unwrap();
    let globex = org_with_product(&store, "globex", "editor", 5, true).await;
    let key = store.settings(org).await.unwrap().product_key;
    let globex_key = store.settings(globex).await.unwrap().product_key;
    let first = store.check_in(org, "editor", "SN-1").await.unwrap();
    assert!(first.licensed);

    tokio::time::sleep(Duration::from_millis(5)).await;
    let FirstLook::Arrived { org: found, held: Some(seat) } = store.first_look(&key, "editor", "SN-1").await.unwrap() else {
        panic!("SN-1 holds its editor seat");
    };
    assert_eq!(found, org);
    assert_eq!(store.first_look(&key, "viewer", "SN-1").await.unwrap(), FirstLook::Arrived { org, held: None });
    assert_eq!(store.first_look(&key, "nope", "SN-1").await.unwrap(), FirstLook::Arrived { org, held: None });
    assert_eq!(store.first_look(&key, "editor", "SN-NEW").await.unwrap(), FirstLook::Arrived { org, held: None });
    assert_eq!(store.first_look(&globex_key, "editor", "SN-1").await.unwrap(), FirstLook::Arrived { org: globex, held: None });
    assert_eq!(store.first_look(&format!("sk_prod_{}", "0".repeat(48)), "editor", "SN-1").await.unwrap(), FirstLook::UnknownKey);
    assert_eq!(store.first_look("not a key", "editor", "SN-1").await.unwrap(), FirstLook::UnknownKey);
    // Nothing was written by looking.
    assert!(matches!(store.device(org, "SN-NEW").await, Err(StoreError::UnknownDevice(_))));
    assert_eq!(store.device(org, "SN-1").await.unwrap().device.last_seen, first.last_seen.unwrap());

    let answer = store.check_in_held("editor", "SN-1", seat).await.unwrap();
    assert!(answer.licensed && answer.reason.is_none());
    assert_eq!(answer.first_seen, first.first_seen);
    assert!(answer.last_seen > first.last_seen, "{answer:?}");
    let last_seen = answer.last_seen.unwrap();
    assert_eq!(store.device(org, "SN-1").await.unwrap().device.last_seen, last_seen, "shown at once");
    let listed = store.devices(org, None, &PageRequest::first(10)).await.unwrap();
    assert_eq!(listed.items[0].last_seen, last_seen);
    let holders = store.holders(org, "editor", &PageRequest::first(10)).await.unwrap();
    assert_eq!(holders.items[0].last_seen, last_seen);
    store.flush().await.unwrap();
    assert_eq!(store.device(org, "SN-1").await.unwrap().device.last_seen, last_seen, "and written");

    store.unassign(org, "SN-1", "editor", Actor::Operator).await.unwrap();
    assert_eq!(store.first_look(&key, "editor", "SN-1").await.unwrap(), FirstLook::Arrived { org, held: None });
}

/// Two server processes on one PostgreSQL database deciding new devices at
/// once, each device checking in through both, in opposite orders: the seats
/// are given out exactly once between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_processes_deciding_the_same_new_devices_give_each_seat_once() {
    let Some(db) = store::testing::TestDatabase::postgres().await else { return };
    let (one, two) = (db.open().await, db.open().await);
    const SEATS: usize = 25;
    const DEVICES: usize = 60;
    let org = org_with_product(&one, "acme", "editor", SEATS as i64, true).await;
    let tasks: Vec<_> = (0..DEVICES * 2)
        .map(|i| {
            let (store, device) = if i % 2 == 0 { (one.clone(), i / 2) } else { (two.clone(), DEVICES - 1 - i / 2) };
            tokio::spawn(async move { store.check_in(org, "editor", &format!("RACE-{device:02}")).await.unwrap() })
        })
        .collect();
    let mut answers: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    for task in tasks {
        let answer = task.await.unwrap();
        if let Some(earlier) = answers.insert(answer.serial.clone(), answer.licensed) {
            assert_eq!(earlier, answer.licensed, "{} was answered both ways", answer.serial);
        }
    }
    let licensed: HashSet<String> = answers.into_iter().filter(|(_, licensed)| *licensed).map(|(serial, _)| serial).collect();
    let holders: HashSet<String> = holders_of(&one, org, "editor").await.into_iter().collect();
    assert_eq!(licensed.len(), SEATS);
    assert_eq!(holders, licensed);
}

/// Two server processes on one PostgreSQL database: check-ins in one see a
/// revoke made in the other as soon as it returns, while both answer held
/// seats of the same devices in shared statements at once; the same for
/// product keys and their rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_processes_share_held_devices_and_see_each_others_revokes() {
    let Some(db) = store::testing::TestDatabase::postgres().await else { return };
    let (one, two) = (db.open().await, db.open().await);
    const DEVICES: usize = 30;
    let org = org_with_product(&one, "acme", "editor", 100, true).await;
    for i in 0..DEVICES {
        assert!(two.check_in(org, "editor", &format!("BOTH-{i:02}")).await.unwrap().licensed);
    }
    let before = (one.batch_counts().unwrap(), two.batch_counts().unwrap());
    for round in 0..3 {
        // Both processes check the same devices in, in opposite orders.
        let tasks: Vec<_> = (0..DEVICES * 4)
            .map(|i| {
                let (store, i) = if i % 2 == 0 { (one.clone(), i / 2) } else { (two.clone(), DEVICES * 2 - 1 - i / 2) };
                tokio::spawn(async move { store.check_in(org, "editor", &format!("BOTH-{:02}", i % DEVICES)).await.unwrap() })
            })
            .collect();
        for task in tasks {
            let answer = task.await.unwrap();
            let revoked = answer.serial.as_str() < format!("BOTH-{round:02}").as_str();
            assert_eq!(answer.licensed, !revoked, "{answer:?}");
        }
        one.unassign(org, &format!("BOTH-{round:02}"), "editor", Actor::Operator).await.unwrap();
        let answer = two.check_in(org, "editor", &format!("BOTH-{round:02}")).await.unwrap();
        assert_eq!(answer.reason, Some(Denial::RevokedByAdmin));
    }
    assert_eq!(holders_of(&two, org, "editor").await.len(), DEVICES - 3);
    let after = (one.batch_counts().unwrap(), two.batch_counts().unwrap());
    assert_eq!((after.0.1, after.1.1), (before.0.1, before.1.1), "no shared statement failed");
    assert!(after.0.0 > before.0.0 && after.1.0 > before.1.0, "both processes answered from shared statements");

    // Product keys looked up at once (in shared statements) each find their
    // own organization, or none; a rotation in one process ends the old key
    // in the other as soon as it returns.
    let acme = one.settings(org).await.unwrap().product_key;
    let globex = one.create_organization("globex").await.unwrap().product_key;
    let globex_org = one.organization_by_name("globex").await.unwrap().id;
    // Well formed, so it is looked up, but nobody's.
    let unknown = format!("sk_prod_{}", "0".repeat(48));
    let keys = [(acme.clone(), Some(org)), (globex.clone(), Some(globex_org)), (unknown, None)];
    let lookups: Vec<_> = (0..90)
        .map(|i| {
            let (store, (key, owner)) = (if i % 2 == 0 { one.clone() } else { two.clone() }, keys[i % 3].clone());
            tokio::spawn(async move { (store.authenticate_product(&key).await.unwrap(), owner) })
        })
        .collect();
    for lookup in lookups {
        let (found, owner) = lookup.await.unwrap();
        assert_eq!(found, owner);
    }
    let rotated = one.rotate_product_key(org, Actor::Operator).await.unwrap();
    assert_eq!(two.authenticate_product(&acme).await.unwrap(), None);
    assert_eq!(two.authenticate_product(&rotated).await.unwrap(), Some(org));
    assert_eq!(two.first_look(&acme, "editor", "BOTH-10").await.unwrap(), FirstLook::UnknownKey);

    // A held device's check-in answered in one process: its `last seen` is
    // written within a second, for the other process to see.
    let FirstLook::Arrived { held: Some(seat), .. } = one.first_look(&rotated, "editor", "BOTH-10").await.unwrap() else {
        panic!("BOTH-10 holds its seat");
    };
    let answer = one.check_in_held("editor", "BOTH-10", seat).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(two.device(org, "BOTH-10").await.unwrap().device.last_seen, answer.last_seen.unwrap());
}

async fn browser_sessions_end_on_sign_out_expiry_and_admin_key_rotation(store: Store) {
    let acme = org_with_product(&store, "acme", "editor", 1, true).await;
    let globex = org_with_product(&store, "globex", "editor", 1, true).await;
    let hour = Duration::from_secs(3600);
    let session = store.create_session(acme, hour).await.unwrap();
    assert!(session.starts_with("sk_session_"));
    assert_eq!(store.session(&session).await.unwrap().map(|o| o.name), Some("acme".into()));
    assert_eq!(store.session("sk_session_nope").await.unwrap(), None);
    assert_eq!(store.session("").await.unwrap(), None);

    store.end_session(&session).await.unwrap();
    assert_eq!(store.session(&session).await.unwrap(), None, "signed out");

    let short = store.create_session(acme, Duration::from_millis(30)).await.unwrap();
    assert!(store.session(&short).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(store.session(&short).await.unwrap(), None, "expired");

    let first = store.create_session(acme, hour).await.unwrap();
    let second = store.create_session(acme, hour).await.unwrap();
    let theirs = store.create_session(globex, hour).await.unwrap();
    store.rotate_product_key(acme, Actor::Operator).await.unwrap();
    assert!(store.session(&first).await.unwrap().is_some(), "a product key rotation keeps sessions");
    store.rotate_admin_key(acme, Actor::Operator).await.unwrap();
    assert_eq!(store.session(&first).await.unwrap(), None);
    assert_eq!(store.session(&second).await.unwrap(), None);
    assert_eq!(store.session(&theirs).await.unwrap().map(|o| o.name), Some("globex".into()), "other organizations keep theirs");
}

async fn ignoring_a_serial_while_it_checks_in_leaves_it_unrecorded(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 5, true).await;
    for round in 0..5 {
        let serial = format!("NEVER-SEEN-{round}");
        let check_ins: Vec<_> = (0..20)
            .map(|_| {
                let (store, serial) = (store.clone(), serial.clone());
                tokio::spawn(async move { store.check_in(org, "editor", &serial).await })
            })
            .collect();
        store.ignore_device(org, &serial, Actor::Operator).await.unwrap();
        for check_in in check_ins {
            check_in.await.unwrap().unwrap();
        }
        assert!(matches!(store.device(org, &serial).await, Err(StoreError::UnknownDevice(_))), "{serial} came back");
        assert_eq!(store.check_in(org, "editor", &serial).await.unwrap().reason, Some(Denial::DeviceIgnored));
    }
    assert_eq!(holders_of(&store, org, "editor").await, Vec::<String>::new(), "no seat held by an ignored serial");
}

async fn a_product_policy_changes_only_what_is_named_and_refuses_bad_values(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    assert_eq!(store.policy(org, "editor").await.unwrap(), ProductPolicy { license_days: 7, reclaim_after_days: None });
    let terms = store.license_terms(org, "editor").await.unwrap();
    assert_eq!(terms, LicenseTerms { organization: "acme".into(), license_days: 7 });

    let changed = store.update_policy(org, "editor", &PolicyUpdate { license_days: Some(365), ..Default::default() }, Actor::Operator).await.unwrap();
    assert_eq!(changed.license_days, 365);
    assert_eq!(store.update_policy(org, "editor", &PolicyUpdate::default(), Actor::Operator).await.unwrap().license_days, 365);
    for bad in [0, -1, 366, i64::MAX] {
        let refused = store.update_policy(org, "editor", &PolicyUpdate { license_days: Some(bad), ..Default::default() }, Actor::Operator).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{bad}: {refused:?}");
    }
    assert_eq!(store.license_terms(org, "editor").await.unwrap().license_days, 365);
    let every = store.policies(org).await.unwrap();
    assert_eq!(every, vec![("editor".to_owned(), ProductPolicy { license_days: 365, reclaim_after_days: None })]);
    let product = store.product(org, "editor").await.unwrap();
    assert_eq!((product.seats, product.auto_assign), (2, true), "the policy leaves the seats alone");

    let other = org_with_product(&store, "globex", "viewer", 1, false).await;
    assert!(matches!(store.policy(other, "editor").await, Err(StoreError::UnknownProduct(_))));
    assert!(matches!(
        store.update_policy(other, "editor", &PolicyUpdate { license_days: Some(1), ..Default::default() }, Actor::Operator).await,
        Err(StoreError::UnknownProduct(_))
    ));
    assert!(matches!(store.license_terms(other, "editor").await, Err(StoreError::UnknownProduct(_))));
}

fn signing_key(kid: &str) -> StoredSigningKey {
    StoredSigningKey { kid: kid.into(), secret: vec![1; 32], public: vec![2; 32], created_at: now(), retired_at: None }
}

async fn servers_racing_to_make_the_first_signing_key_store_one_and_rotation_retires_it(store: Store) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    let racers = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.add_signing_key(&signing_key(&format!("first-{i}")), false).await.unwrap() })
    });
    let added = futures_count(racers).await;
    assert_eq!(added, 1, "exactly one first key is stored");
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    let first = keys[0].kid.clone();
    assert_eq!((keys[0].secret.clone(), keys[0].retired_at), (vec![1; 32], None));

    assert!(!store.add_signing_key(&signing_key("not-first"), false).await.unwrap(), "a key exists already");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(store.add_signing_key(&signing_key("second"), true).await.unwrap());
    let keys = store.signing_keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|key| key.kid.as_str()).collect();
    assert_eq!(kids, ["second", first.as_str()], "the active key first");
    assert!(keys[0].retired_at.is_none() && keys[1].retired_at.is_some());
}

/// Awaits the tasks and counts those that answered `true`.
async fn futures_count(tasks: impl Iterator<Item = tokio::task::JoinHandle<bool>>) -> usize {
    let mut count = 0;
    for task in tasks {
        count += usize::from(task.await.unwrap());
    }
    count
}

fn activity_filter() -> ActivityFilter {
    ActivityFilter { limit: 100, ..ActivityFilter::default() }
}

/// (who, what, product, serial) of the organization's changes, oldest first.
async fn changes(store: &Store, org: OrgId) -> Vec<(Actor, ActivityKind, Option<String>, Option<String>)> {
    let page = store.activity(org, &activity_filter()).await.unwrap();
    page.items.into_iter().rev().map(|a| (a.actor, a.kind, a.product, a.serial)).collect()
}

async fn every_change_is_recorded_with_who_made_it_and_nothing_else_is(store: Store) {
    use ActivityKind::*;
    let org = store.create_organization("acme").await.unwrap();
    let org = store.organization_by_name(&org.name).await.unwrap().id;
    let editor = NewProduct { code: "editor".into(), name: "Editor".into(), seats: 1, auto_assign: true };
    store.add_product(org, &editor, Actor::Operator).await.unwrap();
    store.check_in(org, "editor", "SN-1").await.unwrap();
    store.check_in(org, "editor", "SN-1").await.unwrap(); // holds its seat: no change
    store.check_in(org, "editor", "SN-2").await.unwrap(); // no seat left: no change
    assert!(store.assign(org, "SN-2", "editor", Actor::AdminApi).await.is_err(), "refused: recorded nothing");
    store.set_seats(org, "editor", 3, Actor::Operator).await.unwrap();
    store.assign(org, "SN-2", "editor", Actor::AdminSession).await.unwrap();
    store.assign(org, "SN-2", "editor", Actor::AdminSession).await.unwrap(); // already: no change
    store.unassign(org, "SN-1", "editor", Actor::AdminApi).await.unwrap();
    store.set_auto_assign(org, "editor", false, Actor::AdminSession).await.unwrap();
    store.update_policy(org, "editor", &PolicyUpdate { license_days: Some(30), ..Default::default() }, Actor::AdminApi).await.unwrap();
    store.delete_device(org, "SN-2", Actor::AdminApi).await.unwrap();
    store.ignore_device(org, "SN-1", Actor::AdminSession).await.unwrap();
    store.unignore(org, "SN-1", Actor::AdminSession).await.unwrap();
    store.rotate_product_key(org, Actor::Operator).await.unwrap();
    store.rotate_admin_key(org, Actor::AdminApi).await.unwrap();

    let e = || Some("editor".to_owned());
    let sn = |s: &str| Some(s.to_owned());
    assert_eq!(
        changes(&store, org).await,
        vec![
            (Actor::Operator, ProductAdded, e(), None),
            (Actor::Device, SeatAutoAssigned, e(), sn("SN-1")),
            (Actor::Operator, SeatsChanged, e(), None),
            (Actor::AdminSession, SeatAssigned, e(), sn("SN-2")),
            (Actor::AdminApi, SeatRevoked, e(), sn("SN-1")),
            (Actor::AdminSession, AutoAssignChanged, e(), None),
            (Actor::AdminApi, PolicyChanged, e(), None),
            (Actor::AdminApi, DeviceDeleted, None, sn("SN-2")),
            (Actor::AdminSession, DeviceIgnored, None, sn("SN-1")),
            (Actor::AdminSession, DeviceUnignored, None, sn("SN-1")),
            (Actor::Operator, ProductKeyRotated, None, None),
            (Actor::AdminApi, AdminKeyRotated, None, None),
        ]
    );
    let details: Vec<Option<String>> =
        store.activity(org, &activity_filter()).await.unwrap().items.into_iter().rev().map(|a| a.detail).collect();
    assert_eq!(details[0].as_deref(), Some("1 seats, auto-assign on"));
    assert_eq!(details[2].as_deref(), Some("seats 1 → 3"));
    assert_eq!(details[5].as_deref(), Some("auto-assign off"));
    assert_eq!(details[6].as_deref(), Some("license_days 7 → 30"));
    assert_eq!(details[8].as_deref(), Some("the recorded device was removed"));

    let other = org_with_product(&store, "globex", "viewer", 1, true).await;
    assert!(changes(&store, other).await.iter().all(|(_, _, product, _)| product.as_deref() == Some("viewer")));
}

async fn the_audit_log_filters_pages_and_forgets_old_changes(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 100, true).await;
    let viewer = NewProduct { code: "viewer".into(), name: "Viewer".into(), seats: 100, auto_assign: true };
    store.add_product(org, &viewer, Actor::Operator).await.unwrap();
    for i in 0..25 {
        store.check_in(org, "editor", &format!("SN-{i:02}")).await.unwrap();
    }
    let middle = now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.check_in(org, "viewer", "SN-00").await.unwrap();
    store.unassign(org, "SN-00", "editor", Actor::AdminApi).await.unwrap();

    let only = |filter: ActivityFilter| {
        let store = store.clone();
        async move { store.activity(org, &ActivityFilter { limit: 100, ..filter }).await.unwrap().items }
    };
    assert_eq!(only(ActivityFilter { product: Some("viewer".into()), ..Default::default() }).await.len(), 2, "added, auto-assigned");
    let sn00 = only(ActivityFilter { serial: Some("SN-00".into()), ..Default::default() }).await;
    assert_eq!(sn00.iter().map(|a| a.kind).collect::<Vec<_>>(), [ActivityKind::SeatRevoked, ActivityKind::SeatAutoAssigned, ActivityKind::SeatAutoAssigned]);
    assert_eq!(only(ActivityFilter { kind: Some(ActivityKind::SeatRevoked), ..Default::default() }).await.len(), 1);
    assert_eq!(only(ActivityFilter { actor: Some(Actor::Device), ..Default::default() }).await.len(), 26);
    assert_eq!(only(ActivityFilter { since: Some(middle), ..Default::default() }).await.len(), 2);
    assert_eq!(only(ActivityFilter { until: Some(middle), actor: Some(Actor::Device), ..Default::default() }).await.len(), 25);

    // Pages of 10, newest first, each id once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.activity(org, &ActivityFilter { before, limit: 10, ..Default::default() }).await.unwrap();
        seen.extend(page.items.iter().map(|a| a.id));
        match page.next {
            Some(next) => before = Some(next.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 29, "2 products added, 26 auto-assigned, 1 revoked");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats");

    assert_eq!(store.prune_activity(middle).await.unwrap(), 27);
    assert_eq!(only(ActivityFilter::default()).await.len(), 2);

    // Words from a query string: dates, names, and what is wrong with them.
    let query = ActivityQuery { kind: Some("seat_revoked".into()), since: Some("2026-11-29".into()), until: Some("2026-11-29".into()), ..Default::default() };
    let filter = query.filter(None, 50).unwrap();
    assert_eq!(filter.kind, Some(ActivityKind::SeatRevoked));
    assert_eq!(filter.until.unwrap() - filter.since.unwrap(), chrono::Duration::days(1), "a date as until means through its end");
    for bad in [
        ActivityQuery { kind: Some("exploded".into()), ..Default::default() },
        ActivityQuery { actor: Some("root".into()), ..Default::default() },
        ActivityQuery { since: Some("yesterday".into()), ..Default::default() },
        ActivityQuery { since: Some("2026-11-30".into()), until: Some("2026-11-29".into()), ..Default::default() },
    ] {
        assert!(matches!(bad.filter(None, 50), Err(StoreError::Invalid(_))), "{bad:?}");
    }
}

async fn idle_seats_are_reclaimed_and_auto_assign_gives_them_back(store: Store) {
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

async fn daily_snapshots_keep_each_days_last_reading_per_product(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 5, true).await;
    let other = org_with_product(&store, "globex", "viewer", 9, true).await;
    let day = chrono::Duration::days(1);
    let today = day_of(now());
    assert_eq!(store.snapshot_usage(now() - day * 2).await.unwrap(), 2, "one reading per product");
    store.check_in(org, "editor", "SN-1").await.unwrap();
    store.snapshot_usage(now()).await.unwrap();
    store.check_in(org, "editor", "SN-2").await.unwrap();
    store.snapshot_usage(now()).await.unwrap(); // the day's last reading replaces the earlier one

    let usage = store.usage(org, today - 29).await.unwrap();
    assert_eq!(
        usage,
        vec![
            ("editor".to_owned(), UsagePoint { day: today - 2, seats: 5, assigned: 0 }),
            ("editor".to_owned(), UsagePoint { day: today, seats: 5, assigned: 2 }),
        ]
    );
    assert_eq!(store.usage(org, today).await.unwrap().len(), 1, "from the day asked for on");
    assert_eq!(store.usage(other, today - 29).await.unwrap().iter().map(|(code, _)| code.as_str()).collect::<Vec<_>>(), ["viewer", "viewer"]);
}

async fn bulk_actions_say_what_they_did_and_why_they_skipped(store: Store) {
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

/// A device answered from memory while a reclaim runs: the reclaim either
/// sees it as seen, or the answer is decided again after the reclaim, never
/// "licensed" from a seat the reclaim has just given to another device.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reclaim_never_frees_a_seat_that_sqlite_answers_from_memory_meanwhile() {
    let db = store::testing::TestDatabase::sqlite();
    let store = db.open().await;
    let created = store.create_organization("acme").await.unwrap();
    let org = store.organization_by_name("acme").await.unwrap().id;
    let editor = NewProduct { code: "editor".into(), name: "Editor".into(), seats: 1, auto_assign: true };
    store.add_product(org, &editor, Actor::Operator).await.unwrap();
    let one_day = PolicyUpdate { reclaim_after_days: Some(Some(1)), ..Default::default() };
    store.update_policy(org, "editor", &one_day, Actor::AdminApi).await.unwrap();
    for _ in 0..2 {
        assert!(store.check_in(org, "editor", "HOLDER").await.unwrap().licensed);
    }

    // The holder's first look finds its seat in memory; before its answer,
    // a reclaim frees the seat (two days on, the holder looks idle) and
    // another device takes it.
    let FirstLook::Arrived { held: Some(seat), .. } = store.first_look(&created.product_key, "editor", "HOLDER").await.unwrap() else {
        panic!("the holder's seat is known");
    };
    assert_eq!(store.reclaim_idle_seats(now() + chrono::Duration::days(2)).await.unwrap(), 1);
    assert!(store.check_in(org, "editor", "NEWCOMER").await.unwrap().licensed);
    let holder = store.check_in_held("editor", "HOLDER", seat).await.unwrap();
    assert_eq!((holder.licensed, holder.reason), (false, Some(Denial::NoSeatsAvailable)), "decided again, not from memory");
    assert_eq!(holders_of(&store, org, "editor").await, ["NEWCOMER"]);
}
