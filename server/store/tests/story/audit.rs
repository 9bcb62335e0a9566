//! The audit log and the daily usage readings.

use super::*;

pub(super) async fn every_change_is_recorded_with_who_made_it_and_nothing_else_is(store: Store) {
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

pub(super) async fn the_audit_log_filters_pages_and_forgets_old_changes(store: Store) {
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

pub(super) async fn daily_snapshots_keep_each_days_last_reading_per_product(store: Store) {
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
