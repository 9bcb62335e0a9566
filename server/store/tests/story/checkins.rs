//! Check-ins: recording devices, auto-assign, the memory of held seats, and races.

use super::*;

pub(super) async fn first_check_in_records_the_device_and_auto_assigns_a_seat(store: Store) {
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

pub(super) async fn a_known_device_keeps_first_seen_and_moves_last_seen(store: Store) {
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
pub(super) async fn a_flush_writes_every_waiting_last_seen(store: Store) {
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

pub(super) async fn auto_assign_off_leaves_new_devices_unlicensed(store: Store) {
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

pub(super) async fn a_full_product_answers_no_seats_available(store: Store) {
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

/// On SQLite a device that holds its seat is answered from memory after its
/// first check-in (`known.rs`); whatever takes the seat away must end that.
pub(super) async fn a_device_answered_from_memory_loses_its_seat_at_once(store: Store) {
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

pub(super) async fn many_concurrent_check_ins_never_take_more_seats_than_exist(store: Store) {
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

/// Devices that hold their seats checking in all at once, the same device
/// twice and for two products among them (PostgreSQL answers such check-ins
/// in shared statements, SQLite from memory): every one is licensed with its
/// own times, and a revoke that has returned is seen by the next check-in.
pub(super) async fn held_seats_checking_in_at_once_are_all_answered_and_see_every_revoke(store: Store) {
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
pub(super) async fn check_ins_needing_a_decision_at_once_are_each_answered_by_the_rule(store: Store) {
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
pub(super) async fn a_check_ins_first_look_finds_the_key_and_a_held_seat_and_writes_nothing(store: Store) {
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

pub(super) async fn ignoring_a_serial_while_it_checks_in_leaves_it_unrecorded(store: Store) {
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
