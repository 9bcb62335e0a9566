//! Devices: delete, ignore, the list, its searches and the holders of a product.

use super::*;

pub(super) async fn deleting_a_device_frees_its_seats_and_it_returns_as_new(store: Store) {
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

pub(super) async fn an_ignored_device_is_not_recorded_until_unignored(store: Store) {
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

pub(super) async fn device_list_pages_by_serial_and_searches_by_substring(store: Store) {
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

pub(super) async fn the_product_screen_lists_its_holders_in_pages(store: Store) {
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

/// A search of one or two characters, which no trigram index serves, walks
/// at most 10,000 devices per page: a search matching nothing in 25,000
/// devices answers three pages (empty, with a cursor where each walk
/// stopped), and one matching a device at the end finds it by following
/// the cursors. Searches that match often fill their pages as before.
pub(super) async fn a_short_search_walks_a_large_fleet_in_bounded_steps(store: Store) {
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
