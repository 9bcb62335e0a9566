//! Organizations, keys, sessions, products and their policies, signing keys, bad input.

use super::*;

pub(super) async fn organizations_never_see_or_change_each_others_data(store: Store) {
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

pub(super) async fn keys_identify_their_organization_and_rotation_retires_the_old_key(store: Store) {
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

pub(super) async fn operator_conflicts_are_reported_not_overwritten(store: Store) {
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

pub(super) async fn bootstrap_creates_the_default_organization_only_once(store: Store) {
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

pub(super) async fn browser_sessions_end_on_sign_out_expiry_and_admin_key_rotation(store: Store) {
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

pub(super) async fn servers_racing_to_make_the_first_signing_key_store_one_and_rotation_retires_it(store: Store) {
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

pub(super) async fn a_product_policy_changes_only_what_is_named_and_refuses_bad_values(store: Store) {
    let org = org_with_product(&store, "acme", "editor", 2, true).await;
    assert_eq!(store.policy(org, "editor").await.unwrap(), ProductPolicy { license_days: 7, reclaim_after_days: None, seat_model: SeatModel::Assigned, lease_minutes: 20, alert_at_percent: None });
    let terms = store.license_terms(org, "editor").await.unwrap();
    assert_eq!(terms, LicenseTerms { organization: "acme".into(), license_days: 7, valid_until: None });

    let changed = store.update_policy(org, "editor", &PolicyUpdate { license_days: Some(365), ..Default::default() }, Actor::Operator).await.unwrap();
    assert_eq!(changed.license_days, 365);
    assert_eq!(store.update_policy(org, "editor", &PolicyUpdate::default(), Actor::Operator).await.unwrap().license_days, 365);
    for bad in [0, -1, 366, i64::MAX] {
        let refused = store.update_policy(org, "editor", &PolicyUpdate { license_days: Some(bad), ..Default::default() }, Actor::Operator).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{bad}: {refused:?}");
    }
    assert_eq!(store.license_terms(org, "editor").await.unwrap().license_days, 365);
    let every = store.policies(org).await.unwrap();
    assert_eq!(every, vec![("editor".to_owned(), ProductPolicy { license_days: 365, reclaim_after_days: None, seat_model: SeatModel::Assigned, lease_minutes: 20, alert_at_percent: None })]);
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

pub(super) async fn bad_input_is_refused_and_records_nothing(store: Store) {
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
