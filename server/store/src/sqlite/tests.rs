use super::*;
use crate::NewProduct;

/// The keys this process knows, at the database's counter now.
fn known_now(store: &SqliteStore, key: &str) -> Option<OrgId> {
    store.product_keys.get(store.product_keys.version(), &keys::digest(key))
}

/// [`KnownProductKeys::carry_over`] counts on SQLite adding exactly one to the
/// wal-index's change counter per commit that writes: checked here on a
/// real database, with the server's own group commits and `last seen`
/// writes, and a rotation by another connection (as the operator's
/// command line makes it) ending the key at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_check_in_commits_keep_known_keys_and_anyone_elses_end_them() {
    let db = crate::testing::TestDatabase::sqlite();
    let server = SqliteStore::open(&db.url).await.unwrap();
    server.migrate().await.unwrap();
    let command_line = SqliteStore::open(&db.url).await.unwrap();
    let key = command_line.create_organization("acme").await.unwrap().product_key;
    let org = command_line.organization_by_name("acme").await.unwrap().id;
    let editor = NewProduct { code: "editor".into(), name: "Editor".into(), seats: 100, auto_assign: true };
    command_line.add_product(org, &editor, Actor::Operator).await.unwrap();

    assert_eq!(server.authenticate_product(&key).await.unwrap(), Some(org));
    assert_eq!(known_now(&server, &key), Some(org));
    for round in 0..5 {
        // New devices: group commits; then held ones, whose `last seen` is written.
        let serials: Vec<String> = (0..10).map(|i| format!("SN-{round}-{i}")).collect();
        for serial in serials.iter().chain(&serials) {
            assert!(server.check_in(org, "editor", serial).await.unwrap().licensed);
        }
        server.flush().await.unwrap();
        assert_eq!(known_now(&server, &key), Some(org), "round {round}");
    }

    let rotated = command_line.rotate_product_key(org, Actor::Operator).await.unwrap();
    assert_eq!(known_now(&server, &key), None);
    assert_eq!(server.authenticate_product(&key).await.unwrap(), None);
    assert_eq!(server.authenticate_product(&rotated).await.unwrap(), Some(org));
    assert!(server.check_in(org, "editor", "SN-after").await.unwrap().licensed);
    assert_eq!(known_now(&server, &rotated), Some(org));
}

/// Migration 0008 moves `last seen` into a table of its own: the times
/// of a database made before it come through, every device has its row
/// after it, and a deleted device takes its row along.
#[tokio::test]
async fn last_seen_times_survive_their_move_to_a_table_of_their_own() {
    let db = crate::testing::TestDatabase::sqlite();
    let store = SqliteStore::open(&db.url).await.unwrap();
    let before_0008 = sqlx::migrate::Migrator {
        migrations: MIGRATOR.migrations.iter().filter(|m| m.version < 8).cloned().collect(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before_0008.run(&store.writer).await.unwrap();
    store.create_organization("acme").await.unwrap();
    let org = store.organization_by_name("acme").await.unwrap().id;
    for (serial, first_seen, last_seen) in [("SN-1", 1_000, 5_000), ("SN-2", 2_000, 2_000)] {
        sqlx::query("insert into devices (org_id, serial, first_seen, last_seen) values (?, ?, ?, ?)")
            .bind(org.0)
            .bind(serial)
            .bind(first_seen)
            .bind(last_seen)
            .execute(&store.writer)
            .await
            .unwrap();
    }

    store.migrate().await.unwrap();
    for (serial, last_seen) in [("SN-1", 5_000), ("SN-2", 2_000)] {
        assert_eq!(millis(store.device(org, serial).await.unwrap().device.last_seen), last_seen, "{serial}");
    }

    let editor = NewProduct { code: "editor".into(), name: "Editor".into(), seats: 10, auto_assign: true };
    store.add_product(org, &editor, Actor::Operator).await.unwrap();
    store.check_in(org, "editor", "SN-3").await.unwrap();
    let rows = || async {
        sqlx::query_as::<_, (i64, i64)>("select (select count(*) from devices), (select count(*) from device_seen)")
            .fetch_one(&store.writer)
            .await
            .unwrap()
    };
    assert_eq!(rows().await, (3, 3), "a new device has its row");
    store.delete_device(org, "SN-1", Actor::Operator).await.unwrap();
    assert_eq!(rows().await, (2, 2), "a deleted device takes its row along");
}

/// Rotations from another connection while the server commits groups of
/// check-ins as fast as they come: each old key is refused as soon as
/// its rotation returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_elsewhere_during_group_commits_is_refused_at_once() {
    let db = crate::testing::TestDatabase::sqlite();
    let server = Arc::new(SqliteStore::open(&db.url).await.unwrap());
    server.migrate().await.unwrap();
    let command_line = SqliteStore::open(&db.url).await.unwrap();
    let mut key = command_line.create_organization("acme").await.unwrap().product_key;
    let org = command_line.organization_by_name("acme").await.unwrap().id;
    let editor = NewProduct { code: "editor".into(), name: "Editor".into(), seats: 1_000_000, auto_assign: true };
    command_line.add_product(org, &editor, Actor::Operator).await.unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let arriving: Vec<_> = (0..8)
        .map(|task| {
            let (server, stop) = (server.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    server.check_in(org, "editor", &format!("SN-{task}-{i}")).await.unwrap();
                    i += 1;
                }
                i
            })
        })
        .collect();
    for rotation in 0..20 {
        for _ in 0..5 {
            assert_eq!(server.authenticate_product(&key).await.unwrap(), Some(org));
            tokio::task::yield_now().await;
        }
        let rotated = command_line.rotate_product_key(org, Actor::Operator).await.unwrap();
        assert_eq!(server.authenticate_product(&key).await.unwrap(), None, "the old key, after its rotation");
        // And after the server's next commit of its own.
        server.check_in(org, "editor", &format!("AFTER-{rotation}")).await.unwrap();
        assert_eq!(server.authenticate_product(&key).await.unwrap(), None, "the old key, after a group commit");
        key = rotated;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut checked_in = 0;
    for task in arriving {
        checked_in += task.await.unwrap();
    }
    assert!(checked_in > 20, "check-ins were committed meanwhile ({checked_in})");
}
