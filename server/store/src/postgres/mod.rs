//! The PostgreSQL backend, for fleets that run several server processes on one
//! database.
//!
//! Transactions run at READ COMMITTED and hold the seat invariant with row
//! locks taken in one fixed order, device row first, then product rows by id:
//! - every transaction that changes a device's seats first locks the device's
//!   row (the check-in's upsert does so by itself; admin actions use
//!   `select … for update`), so two decisions about one device never overlap;
//! - a seat is taken by `update products set assigned = assigned + 1 where … and
//!   assigned < seats`, which waits for the product's row lock and re-checks the
//!   condition on the newest row before it counts, so concurrent check-ins in any
//!   number of processes can never take more seats than there are.
//!
//! A check-in's first look — the organization of its product key and whether
//! the device holds its seat — is one read, shared with the other check-ins
//! that arrive meanwhile (see [`batch`]); it reads the database every time,
//! so every process sees a revoke or key rotation as soon as it commits. A
//! device that holds its seat is answered from that read; its `last seen` is
//! written with the others' every 100 ms (`PG_FLUSH_EVERY`), in bulk, on connections
//! whose commits do not wait for the disk (it changes nothing else, and may
//! lag by a second; this process's reads show it at once).
//!
//! A check-in that needs a seat decision is decided in a group with the
//! others that arrive meanwhile: one transaction that takes the locks in the
//! order above for every device of the group (see [`group`]).

mod batch;
mod group;
mod organizations;
mod sessions;
mod products;
mod devices;
mod seats;
mod checkin;
mod activity;
mod usage;
mod signing_keys;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;


use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Transaction;

use crate::bulk::{self, BulkAction};
use crate::group::ProductRow;
use crate::keys::{self, KeyKind};
use crate::memory::{self, PendingLastSeen};
use crate::validate;
use crate::*;
use crate::audit;
use checkin::{PG_FLUSH_EVERY, write_last_seen};
use devices::{delete_device_in, ignore_device_in};
use products::insert_product;
use seats::free_ended_leases;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    /// Connections for everything but the check-ins: admin reads and
    /// changes, sessions, the operator, housekeeping.
    pool: PgPool,
    /// Product key lookups, batched.
    product_keys: batch::Batches<batch::ProductKeys>,
    /// Check-ins' first looks (key, and seat if held), batched.
    first_looks: batch::Batches<batch::FirstLooks>,
    /// Check-ins that need a seat decision, decided in groups.
    seat_decisions: batch::Batches<group::SeatDecisions>,
    /// The check-ins' own connections (the batches above use them).
    checkins: PgPool,
    /// `last seen` times of held devices' check-ins waiting to be written.
    last_seen: Arc<PendingLastSeen>,
    /// Connections whose commits do not wait for the disk: only for writes
    /// of `last seen`.
    last_seen_writers: PgPool,
}

type Tx = Transaction<'static, sqlx::Postgres>;

impl PgStore {
    /// Brings the schema up to date.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn open(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        // Few: admin requests queue here rather than take the database's
        // cores from the check-ins (docs/performance.md, Trust).
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        // Check-ins have connections of their own, so that no admin request
        // (16 searches of a million devices at once, say) can starve them.
        let checkins = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options.clone());
        let last_seen_writers = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options.options([("synchronous_commit", "off")]));
        let last_seen = Arc::new(PendingLastSeen::default());
        let flusher = last_seen_writers.clone();
        tokio::spawn(memory::flush_forever(PG_FLUSH_EVERY, last_seen.clone(), move |batch| {
            let pool = flusher.clone();
            async move { write_last_seen(&pool, batch).await }
        }));
        Ok(PgStore {
            product_keys: batch::Batches::start(checkins.clone(), batch::BATCH_MAX),
            first_looks: batch::Batches::start(checkins.clone(), batch::BATCH_MAX),
            seat_decisions: batch::Batches::start(checkins.clone(), crate::group::group_max()),
            checkins,
            last_seen,
            pool,
            last_seen_writers,
        })
    }

    /// Requests answered by the batches, and batches that failed.
    pub fn batch_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let counts = [self.product_keys.counts(), self.first_looks.counts(), self.seat_decisions.counts()];
        (counts.iter().map(|c| c.found.load(Relaxed)).sum(), counts.iter().map(|c| c.failed.load(Relaxed)).sum())
    }

    pub fn pool_stats(&self) -> Vec<PoolStats> {
        vec![
            crate::pool_stats("main", &self.pool),
            crate::pool_stats("checkins", &self.checkins),
            crate::pool_stats("last_seen", &self.last_seen_writers),
        ]
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// See `Store::pass_time`.
    #[cfg(feature = "testing")]
    pub async fn pass_time(&self, org: OrgId, code: &str, by: chrono::Duration) -> Result<()> {
        sqlx::query(
            "update assignments set lease_until = lease_until - $1
             where lease_until is not null and product_id = (select id from products where org_id = $2 and code = $3)",
        )
        .bind(by)
        .bind(org.0)
        .bind(code)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "update waiting set since = since - $1, last_asked = last_asked - $1
             where product_id = (select id from products where org_id = $2 and code = $3)",
        )
        .bind(by)
        .bind(org.0)
        .bind(code)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes the `last seen` times still waiting; called when the server stops.
    pub async fn flush(&self) -> Result<()> {
        self.last_seen.flush(|batch| write_last_seen(&self.last_seen_writers, batch)).await
    }

    /// A device's `last seen`, counting a check-in whose time waits to be
    /// written.
    fn last_seen(&self, device_id: i64, stored: Timestamp) -> Timestamp {
        let newest = self.last_seen.newest(device_id, stored.millis());
        if newest > stored.millis() { Timestamp::from_millis(newest) } else { stored }
    }
}

/// PostgreSQL's `assigned` for what an admin sees: a floating product's
/// leases in use now (see [`product_columns!`]), on the table `products`.
macro_rules! in_use {
    () => {
        concat!(
            "case when products.seat_model = 'floating'
                  then (select count(*) from assignments a where a.product_id = products.id and ",
            held_now!(),
            ") else products.assigned end"
        )
    };
}
use in_use;

/// Whether the seat `a` (a row of `assignments`) is held now: an assigned
/// seat, or a floating one whose lease has not ended.
macro_rules! held_now {
    () => {
        "(a.lease_until is null or a.lease_until > now())"
    };
}
use held_now;

/// The product as an admin sees it (a floating product's seats in use now).
async fn fetch_product(conn: &mut PgConnection, org: OrgId, code: &str) -> Result<ProductRow> {
    let row: Option<ProductRowColumns> = sqlx::query_as(concat!(
        "select id, lease_minutes, ",
        product_columns!(in_use!()),
        " from products where org_id = $1 and code = $2"
    ))
    .bind(org.0)
    .bind(code)
    .fetch_optional(conn)
    .await?;
    row.map(product_row).ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))
}

/// The product as a seat decision counts it: `assigned` is its rows in
/// `assignments`, ended leases included (no count of the leases in use).
async fn fetch_product_to_decide(conn: &mut PgConnection, org: OrgId, code: &str) -> Result<ProductRow> {
    let row: Option<ProductRowColumns> =
        sqlx::query_as(concat!("select id, lease_minutes, ", product_columns!(), " from products where org_id = $1 and code = $2"))
            .bind(org.0)
            .bind(code)
            .fetch_optional(conn)
            .await?;
    row.map(product_row).ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))
}

/// `id, lease_minutes` and [`product_columns!`].
type ProductRowColumns = (i64, i64, String, String, i64, i64, bool, String, Option<chrono::NaiveDate>);

fn product_row((id, lease_minutes, code, name, seats, assigned, auto_assign, seat_model, valid_until): ProductRowColumns) -> ProductRow {
    ProductRow { id, lease_minutes, product: Product::from((code, name, seats, assigned, auto_assign, seat_model, valid_until)) }
}

async fn fetch_policy(conn: &mut PgConnection, org: OrgId, code: &str, lock: bool) -> Result<ProductPolicy> {
    let select = concat!("select ", policy_columns!(), " from products where org_id = $1 and code = $2");
    let locked = concat!("select ", policy_columns!(), " from products where org_id = $1 and code = $2 for update");
    let row: Option<PolicyColumns> =
        sqlx::query_as(if lock { locked } else { select }).bind(org.0).bind(code).fetch_optional(conn).await?;
    Ok(policy_from(row.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?))
}

/// Writes a change to the audit log, inside the caller's transaction.
async fn record(conn: &mut PgConnection, org: OrgId, at: Timestamp, change: Change<'_>) -> Result<()> {
    sqlx::query(
        "insert into activity (org_id, at, actor, kind, product, serial, detail) values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(org.0)
    .bind(at)
    .bind(change.by.as_str())
    .bind(change.kind.as_str())
    .bind(change.product)
    .bind(change.serial)
    .bind(change.detail)
    .execute(&mut *conn)
    .await?;
    if let Some((event, data)) = &change.tells {
        webhooks::enqueue(conn, org, at, *event, data).await?;
    }
    Ok(())
}

/// The device's id, with its row locked until the transaction ends.
async fn lock_device(conn: &mut PgConnection, org: OrgId, serial: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("select id from devices where org_id = $1 and serial = $2 for update")
        .bind(org.0)
        .bind(serial)
        .fetch_optional(conn)
        .await?)
}

async fn locked_device(conn: &mut PgConnection, org: OrgId, serial: &str) -> Result<i64> {
    lock_device(conn, org, serial).await?.ok_or_else(|| StoreError::UnknownDevice(serial.to_owned()))
}

fn device_from((serial, first_seen, last_seen, seats_assigned): (String, Timestamp, Timestamp, i64)) -> Device {
    Device { serial, first_seen, last_seen, seats_assigned }
}

