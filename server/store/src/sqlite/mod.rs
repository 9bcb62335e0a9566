//! The SQLite backend: Seatkeeper's embedded default.
//!
//! SQLite lets one writer in at a time. Many pooled connections racing for the
//! write lock with deferred transactions fail with SQLITE_BUSY under load, so
//! every write here goes through one connection and starts with
//! `BEGIN IMMEDIATE`: the write lock is taken before anything is read, and a
//! writer in another process (the operator command line) is waited for through
//! the busy timeout. Reads use their own pool and, with WAL, never wait for the
//! writer. Within a write transaction nothing else can write, so the seat check
//! and the seat taking cannot be interleaved with another decision.
//!
//! Check-ins, the hot path, are group-committed: see [`group_commit`]. A
//! device that already holds its seat is answered from memory, its `last
//! seen` written within half a second: see [`crate::memory`].

mod organizations;
mod sessions;
mod products;
mod devices;
mod seats;
mod checkin;
mod activity;
mod usage;
mod signing_keys;
mod held_seats;
mod webhooks;
#[cfg(all(test, unix, feature = "testing"))]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Transaction;
use tokio::sync::{mpsc, oneshot};

use crate::group::{self, Asked, ProductRow, Recorded, Standing};
use crate::bulk::{self, BulkAction};
use crate::keys::{self, KeyKind};
use crate::memory::{self, FLUSH_EVERY, Generation, Holding, HeldSeats, KnownProductKeys, PendingLastSeen};
use crate::validate;
use crate::*;
use crate::audit;
use checkin::{PendingCheckIn, group_commit, write_last_seen};
use devices::{delete_device_in, ignore_device_in};
use held_seats::remember_holdings;
use products::insert_product;
use seats::free_ended_leases;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    /// One connection: every write transaction queues here.
    writer: SqlitePool,
    readers: SqlitePool,
    /// Check-ins wait here for the next group commit.
    check_ins: mpsc::Sender<PendingCheckIn>,
    /// Devices known to hold their seats.
    held_seats: Arc<HeldSeats>,
    /// Their `last seen` times waiting to be written.
    last_seen: Arc<PendingLastSeen>,
    /// Product keys accepted since the database last changed.
    product_keys: Arc<KnownProductKeys>,
    /// The database file, and the lock a serving process holds on it.
    path: Option<Arc<Path>>,
    lock: Arc<OnceLock<std::fs::File>>,
}

type Tx = Transaction<'static, sqlx::Sqlite>;

fn millis(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

impl SqliteStore {
    /// Brings the schema up to date.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    pub async fn open(url: &str) -> Result<Self> {
        let options = sqlite_options(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the device hears "licensed".
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_parent_folder(options.get_filename())?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await?;
        let path: Option<Arc<Path>> = (!in_memory).then(|| options.get_filename().into());
        let readers = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?
        };
        let group_max = group::group_max();
        let (check_ins, queue) = mpsc::channel(group::GROUP_MAX * 4);
        let held_seats = Arc::new(HeldSeats::default());
        let last_seen = Arc::new(PendingLastSeen::default());
        // The writer keeps the database open, so its wal-index stays.
        let wal_index = path.as_ref().and_then(|path| std::fs::File::open(beside(path, "-shm")).ok());
        let product_keys = Arc::new(KnownProductKeys::new(wal_index));
        tokio::spawn(group_commit(writer.clone(), queue, group_max, held_seats.clone(), product_keys.clone()));
        let (flusher, flusher_keys) = (writer.clone(), product_keys.clone());
        tokio::spawn(memory::flush_forever(FLUSH_EVERY, last_seen.clone(), move |batch| {
            let (writer, keys) = (flusher.clone(), flusher_keys.clone());
            async move { write_last_seen(&writer, &keys, batch).await }
        }));
        Ok(SqliteStore { writer, readers, check_ins, held_seats, last_seen, product_keys, path, lock: Arc::default() })
    }

    /// Claims the database for this process: a second server on the same
    /// file would not see this one's changes in its memory (see
    /// [`crate::memory`]), so it is refused. The lock is `<file>.lock`, held
    /// until the process ends. The operator command line does not take it.
    /// Then learns, beside the serving, which devices hold their seats.
    pub fn lock_for_serving(&self) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let lock_path = beside(path, ".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| StoreError::Unavailable(format!("cannot open {}: {error}", lock_path.display())))?;
        file.try_lock().map_err(|_| {
            StoreError::Unavailable(format!(
                "another Seatkeeper server is serving {}; SQLite serves one process (use PostgreSQL for several)",
                path.display()
            ))
        })?;
        let _ = self.lock.set(file);
        tokio::spawn(remember_holdings(self.readers.clone(), self.held_seats.clone()));
        Ok(())
    }

    pub fn pool_stats(&self) -> Vec<PoolStats> {
        vec![crate::pool_stats("writer", &self.writer), crate::pool_stats("readers", &self.readers)]
    }

    /// Writes the `last seen` times still waiting; called when the server stops.
    pub async fn flush(&self) -> Result<()> {
        self.last_seen.flush(|batch| write_last_seen(&self.writer, &self.product_keys, batch)).await
    }

    /// See `Store::pass_time`. The memory of held seats, which keeps each
    /// lease as written, starts afresh.
    #[cfg(feature = "testing")]
    pub async fn pass_time(&self, org: OrgId, code: &str, by: chrono::Duration) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "update assignments set lease_until = lease_until - ?
             where lease_until is not null and product_id = (select id from products where org_id = ? and code = ?)",
        )
        .bind(by.num_milliseconds())
        .bind(org.0)
        .bind(code)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "update waiting set since = since - ?1, last_asked = last_asked - ?1
             where product_id = (select id from products where org_id = ?2 and code = ?3)",
        )
        .bind(by.num_milliseconds())
        .bind(org.0)
        .bind(code)
        .execute(&mut *tx)
        .await?;
        self.commit_taking_seats(tx).await
    }

    async fn write(&self) -> Result<Tx> {
        Ok(self.writer.begin_with("begin immediate").await?)
    }

    /// The seat of the product the device is known to hold, from memory;
    /// none for a floating seat whose lease is due to be renewed (see
    /// [`Lease`]).
    fn held_seat(&self, org: OrgId, code: &str, serial: &str) -> Option<HeldSeat> {
        let (holding, generation) = self.held_seats.get(org, code, serial)?;
        let lease = holding.lease();
        if lease.is_some_and(|lease| !lease.holds_at(now())) {
            return None;
        }
        Some(HeldSeat { org, device_id: holding.device_id, first_seen: timestamp(holding.first_seen), lease, seen: generation.0 })
    }

    /// Commits a change that may take seats away. The memory of held seats
    /// forgets first, under the write lock this transaction holds: were it
    /// done after the commit, a request dropped between the two (a client
    /// gone, a timeout) would leave a freed seat answered from memory.
    async fn commit_taking_seats(&self, tx: Tx) -> Result<()> {
        self.held_seats.clear();
        tx.commit().await?;
        Ok(())
    }
}

/// A file next to the database: its name with `suffix` added.
fn beside(database: &Path, suffix: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn create_parent_folder(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))
        }
        _ => Ok(()),
    }
}

async fn org_product(conn: &mut SqliteConnection, org: OrgId, code: &str) -> Result<ProductRow> {
    fetch_product(conn, org, code).await?.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))
}

/// SQLite's `assigned` for what an admin sees: a floating product's leases
/// in use now (see [`product_columns!`]), on the table `products`.
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
/// seat, or a floating one whose lease has not ended (by SQLite's clock, in
/// milliseconds).
macro_rules! held_now {
    () => {
        "(a.lease_until is null or a.lease_until > cast((julianday('now') - 2440587.5) * 86400000 as integer))"
    };
}
use held_now;

/// The product as an admin sees it (a floating product's seats in use now).
async fn fetch_product(conn: &mut SqliteConnection, org: OrgId, code: &str) -> Result<Option<ProductRow>> {
    let row: Option<ProductRowColumns> = sqlx::query_as(concat!(
        "select id, lease_minutes, ",
        product_columns!(in_use!()),
        " from products where org_id = ? and code = ?"
    ))
    .bind(org.0)
    .bind(code)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(product_row))
}

/// The product as a seat decision counts it: `assigned` is its rows in
/// `assignments`, ended leases included.
async fn fetch_product_to_decide(conn: &mut SqliteConnection, org: OrgId, code: &str) -> Result<Option<ProductRow>> {
    let row: Option<ProductRowColumns> =
        sqlx::query_as(concat!("select id, lease_minutes, ", product_columns!(), " from products where org_id = ? and code = ?"))
            .bind(org.0)
            .bind(code)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(product_row))
}

/// `id, lease_minutes` and [`product_columns!`].
type ProductRowColumns = (i64, i64, String, String, i64, i64, bool, String, Option<chrono::NaiveDate>);

fn product_row((id, lease_minutes, code, name, seats, assigned, auto_assign, seat_model, valid_until): ProductRowColumns) -> ProductRow {
    ProductRow { id, lease_minutes, product: Product::from((code, name, seats, assigned, auto_assign, seat_model, valid_until)) }
}

async fn fetch_policy(conn: &mut SqliteConnection, org: OrgId, code: &str) -> Result<ProductPolicy> {
    let row: Option<PolicyColumns> = sqlx::query_as(concat!("select ", policy_columns!(), " from products where org_id = ? and code = ?"))
        .bind(org.0)
        .bind(code)
        .fetch_optional(conn)
        .await?;
    Ok(policy_from(row.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?))
}

async fn device_id(conn: &mut SqliteConnection, org: OrgId, serial: &str) -> Result<i64> {
    sqlx::query_scalar("select id from devices where org_id = ? and serial = ?")
        .bind(org.0)
        .bind(serial)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::UnknownDevice(serial.to_owned()))
}

/// Writes a change to the audit log, inside the caller's transaction.
async fn record(conn: &mut SqliteConnection, org: OrgId, at: Timestamp, change: Change<'_>) -> Result<()> {
    sqlx::query("insert into activity (org_id, at, actor, kind, product, serial, detail) values (?, ?, ?, ?, ?, ?, ?)")
        .bind(org.0)
        .bind(millis(at))
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

fn device_from((serial, first_seen, last_seen, seats_assigned): (String, i64, i64, i64)) -> Device {
    Device { serial, first_seen: timestamp(first_seen), last_seen: timestamp(last_seen), seats_assigned }
}

