//! The store's behaviour, written once and run on both backends: every domain
//! rule of docs/contract.md, tenant isolation and the seat invariant under a race.

use std::collections::HashSet;
use std::time::Duration;

use store::*;

mod checkins;
mod seats;
mod devices;
mod organizations;
mod audit;
mod floating;
mod waiting;
mod webhooks;

use checkins::*;
use seats::*;
use devices::*;
use organizations::*;
use audit::*;
use floating::*;
use waiting::*;
use webhooks::*;

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

/// Runs each story with two server processes on one database: two stores on
/// PostgreSQL, and on SQLite, which serves one process, the same store twice.
macro_rules! two_process_stories {
    ($($story:ident),* $(,)?) => {
        mod two_processes_on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    let db = store::testing::TestDatabase::sqlite();
                    let store = db.open().await;
                    super::$story([store.clone(), store]).await;
                }
            )*
        }
        mod two_processes_on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    let Some(db) = store::testing::TestDatabase::postgres().await else { return };
                    super::$story([db.open().await, db.open().await]).await;
                }
            )*
        }
    };
}

two_process_stories!(
    racing_for_ended_leases_never_holds_more_seats_than_exist,
    two_senders_share_the_outbox_without_sending_a_message_twice,
);

stories!(
    changes_tell_the_endpoints_that_subscribe_one_message_at_a_time_in_order,
    bad_webhooks_are_refused_and_add_nothing,
    alerts_tell_each_crossing_each_minutes_refusals_and_an_ending_term_once,
    a_message_claimed_by_a_sender_that_died_is_sent_again,
    a_floating_seat_is_held_while_its_device_checks_in_and_free_once_its_lease_ends,
    a_lease_is_answered_as_written_until_half_of_it_is_left_then_renewed,
    a_release_frees_a_floating_seat_at_once_and_nothing_else,
    changing_the_seat_model_turns_held_seats_into_leases_and_back,
    an_ended_lease_shows_as_no_seat_and_an_admin_assign_starts_it_again,
    a_freed_seat_goes_to_the_longest_waiting_device_not_the_first_to_ask,
    a_device_that_stops_asking_leaves_the_line_after_a_lease_or_an_hour,
    seats_freed_one_by_one_go_down_the_line_in_order,
    refusals_are_counted_per_product_day_and_device_without_a_row_per_check_in,
    an_ended_subscription_refuses_check_ins_and_extending_it_restores_every_seat,
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

fn signing_key(kid: &str) -> StoredSigningKey {
    StoredSigningKey { kid: kid.into(), secret: vec![1; 32], public: vec![2; 32], created_at: now(), retired_at: None }
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
