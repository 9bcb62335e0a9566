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
//! seen` written within half a second: see [`crate::known`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::DateTime;
use sqlx::sqlite::{SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Transaction;
use tokio::sync::{mpsc, oneshot};

use crate::group::{self, Asked, ProductRow, Recorded, Standing};
use crate::bulk::{self, BulkAction};
use crate::keys::{self, KeyKind};
use crate::known::{self, FLUSH_EVERY, Generation, Holding, KnownDevices, KnownKeys, Touches};
use crate::validate;
use crate::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    /// One connection: every write transaction queues here.
    writer: SqlitePool,
    readers: SqlitePool,
    /// Check-ins wait here for the next group commit.
    check_ins: mpsc::Sender<PendingCheckIn>,
    /// Devices known to hold their seats, and their `last seen` times
    /// waiting to be written.
    known: Arc<KnownDevices>,
    touches: Arc<Touches>,
    /// Product keys accepted since the database last changed.
    keys: Arc<KnownKeys>,
    /// The database file, and the lock a serving process holds on it.
    path: Option<Arc<Path>>,
    lock: Arc<OnceLock<std::fs::File>>,
}

type Tx = Transaction<'static, sqlx::Sqlite>;

fn millis(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

fn timestamp(ms: i64) -> Timestamp {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl SqliteStore {
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
        let known = Arc::new(KnownDevices::default());
        let touches = Arc::new(Touches::default());
        // The writer keeps the database open, so its wal-index stays.
        let wal_index = path.as_ref().and_then(|path| std::fs::File::open(beside(path, "-shm")).ok());
        let keys = Arc::new(KnownKeys::new(wal_index));
        tokio::spawn(group_commit(writer.clone(), queue, group_max, known.clone(), keys.clone()));
        let (flusher, flusher_keys) = (writer.clone(), keys.clone());
        tokio::spawn(known::flush_forever(FLUSH_EVERY, touches.clone(), move |batch| {
            let (writer, keys) = (flusher.clone(), flusher_keys.clone());
            async move { write_touches(&writer, &keys, batch).await }
        }));
        Ok(SqliteStore { writer, readers, check_ins, known, touches, keys, path, lock: Arc::default() })
    }

    /// Claims the database for this process: a second server on the same
    /// file would not see this one's changes in its memory (see
    /// [`crate::known`]), so it is refused. The lock is `<file>.lock`, held
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
        tokio::spawn(remember_holdings(self.readers.clone(), self.known.clone()));
        Ok(())
    }

    pub fn pool_stats(&self) -> Vec<PoolStats> {
        vec![crate::pool_stats("writer", &self.writer), crate::pool_stats("readers", &self.readers)]
    }

    /// Writes the `last seen` times still waiting; called when the server stops.
    pub async fn flush(&self) -> Result<()> {
        self.touches.flush(|batch| write_touches(&self.writer, &self.keys, batch)).await
    }

    async fn write(&self) -> Result<Tx> {
        Ok(self.writer.begin_with("begin immediate").await?)
    }

    /// The seat of the product the device is known to hold, from memory.
    fn held_seat(&self, org: OrgId, code: &str, serial: &str) -> Option<HeldSeat> {
        let (holding, generation) = self.known.get(org, code, serial)?;
        Some(HeldSeat { org, device_id: holding.device_id, first_seen: timestamp(holding.first_seen), seen: generation.0 })
    }

    /// Commits a change that may take seats away. The memory of held seats
    /// forgets first, under the write lock this transaction holds: were it
    /// done after the commit, a request dropped between the two (a client
    /// gone, a timeout) would leave a freed seat answered from memory.
    async fn commit_taking_seats(&self, tx: Tx) -> Result<()> {
        self.known.clear();
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_key(&self, org: OrgId, kind: KeyKind, by: Actor) -> Result<String> {
        let key = keys::generate(kind);
        let mut tx = self.write().await?;
        let done = match kind {
            KeyKind::Product => sqlx::query("update organizations set product_key_hash = ?, product_key = ? where id = ?")
                .bind(keys::digest(&key))
                .bind(&key),
            _ => sqlx::query("update organizations set admin_key_hash = ? where id = ?").bind(keys::digest(&key)),
        }
        .bind(org.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownOrganization(format!("#{}", org.0)));
        }
        if kind == KeyKind::Admin {
            sqlx::query("delete from sessions where org_id = ?").bind(org.0).execute(&mut *tx).await?;
        }
        let rotated = if kind == KeyKind::Admin { ActivityKind::AdminKeyRotated } else { ActivityKind::ProductKeyRotated };
        record(&mut tx, org, now(), Change::new(by, rotated)).await?;
        tx.commit().await?;
        Ok(key)
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

async fn fetch_product(conn: &mut SqliteConnection, org: OrgId, code: &str) -> Result<Option<ProductRow>> {
    let row: Option<(i64, String, String, i64, i64, bool)> =
        sqlx::query_as(concat!("select id, ", product_columns!(), " from products where org_id = ? and code = ?"))
            .bind(org.0)
            .bind(code)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(id, code, name, seats, assigned, auto_assign)| ProductRow {
        id,
        product: Product::from((code, name, seats, assigned, auto_assign)),
    }))
}

async fn fetch_policy(conn: &mut SqliteConnection, org: OrgId, code: &str) -> Result<ProductPolicy> {
    let row: Option<(i64, Option<i64>)> =
        sqlx::query_as("select license_days, reclaim_after_days from products where org_id = ? and code = ?")
            .bind(org.0)
            .bind(code)
            .fetch_optional(conn)
            .await?;
    let (license_days, reclaim_after_days) = row.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
    Ok(ProductPolicy { license_days, reclaim_after_days })
}

async fn device_id(conn: &mut SqliteConnection, org: OrgId, serial: &str) -> Result<i64> {
    sqlx::query_scalar("select id from devices where org_id = ? and serial = ?")
        .bind(org.0)
        .bind(serial)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::UnknownDevice(serial.to_owned()))
}

/// Takes a free seat of the product for the device, if there is one. The caller
/// holds the write lock and has checked that the device holds no seat of it.
async fn take_seat(conn: &mut SqliteConnection, product_id: i64, device_id: i64, now: Timestamp) -> Result<bool> {
    let taken = sqlx::query("update products set assigned = assigned + 1 where id = ? and assigned < seats")
        .bind(product_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if taken {
        sqlx::query("insert into assignments (product_id, device_id, assigned_at) values (?, ?, ?)")
            .bind(product_id)
            .bind(device_id)
            .bind(millis(now))
            .execute(&mut *conn)
            .await?;
    }
    Ok(taken)
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
        .execute(conn)
        .await?;
    Ok(())
}

/// Frees every seat the device holds (before the device itself is deleted).
async fn free_all_seats(conn: &mut SqliteConnection, device_id: i64) -> Result<()> {
    sqlx::query(
        "update products set assigned = assigned - 1
         where id in (select product_id from assignments where device_id = ?)",
    )
    .bind(device_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from assignments where device_id = ?").bind(device_id).execute(&mut *conn).await?;
    Ok(())
}

async fn insert_organization(conn: &mut SqliteConnection, name: &str, now: Timestamp) -> Result<NewOrganization> {
    let admin_key = keys::generate(KeyKind::Admin);
    let product_key = keys::generate(KeyKind::Product);
    let inserted = sqlx::query(
        "insert into organizations (name, admin_key_hash, product_key, product_key_hash, created_at)
         values (?, ?, ?, ?, ?) on conflict (name) do nothing",
    )
    .bind(name)
    .bind(keys::digest(&admin_key))
    .bind(&product_key)
    .bind(keys::digest(&product_key))
    .bind(millis(now))
    .execute(conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("an organization named {name:?} already exists")));
    }
    Ok(NewOrganization { name: name.to_owned(), admin_key, product_key })
}

async fn insert_product(conn: &mut SqliteConnection, org: OrgId, product: &NewProduct, now: Timestamp) -> Result<Product> {
    validate::product_code(&product.code)?;
    validate::name("product name", &product.name)?;
    validate::seats(product.seats)?;
    let inserted: Option<ProductColumns> = sqlx::query_as(concat!(
        "insert into products (org_id, code, name, seats, auto_assign, created_at)
         values (?, ?, ?, ?, ?, ?) on conflict (org_id, code) do nothing returning ",
        product_columns!()
    ))
    .bind(org.0)
    .bind(&product.code)
    .bind(&product.name)
    .bind(product.seats)
    .bind(product.auto_assign)
    .bind(millis(now))
    .fetch_optional(conn)
    .await?;
    inserted
        .map(Product::from)
        .ok_or_else(|| StoreError::Conflict(format!("a product with code {:?} already exists", product.code)))
}

fn device_from((serial, first_seen, last_seen, seats_assigned): (String, i64, i64, i64)) -> Device {
    Device { serial, first_seen: timestamp(first_seen), last_seen: timestamp(last_seen), seats_assigned }
}

impl LicenseStore for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn bootstrap(&self) -> Result<Option<NewOrganization>> {
        let mut tx = self.write().await?;
        let any: Option<i64> = sqlx::query_scalar("select id from organizations limit 1").fetch_optional(&mut *tx).await?;
        if any.is_some() {
            return Ok(None);
        }
        let now = now();
        let org = insert_organization(&mut tx, DEFAULT_ORGANIZATION, now).await?;
        let id: i64 = sqlx::query_scalar("select id from organizations where name = ?")
            .bind(DEFAULT_ORGANIZATION)
            .fetch_one(&mut *tx)
            .await?;
        insert_product(&mut tx, OrgId(id), &demo_product(), now).await?;
        tx.commit().await?;
        Ok(Some(org))
    }

    #[tracing::instrument(skip_all)]
    async fn create_organization(&self, name: &str) -> Result<NewOrganization> {
        validate::name("organization name", name)?;
        let mut conn = self.writer.acquire().await?;
        insert_organization(&mut conn, name, now()).await
    }

    #[tracing::instrument(skip_all)]
    async fn organizations(&self) -> Result<Vec<OrganizationSummary>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "select o.name,
                    (select count(*) from products p where p.org_id = o.id),
                    (select count(*) from devices d where d.org_id = o.id),
                    o.created_at
             from organizations o order by o.name",
        )
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, products, devices, created_at)| OrganizationSummary {
                name,
                products,
                devices,
                created_at: timestamp(created_at),
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn organization_by_name(&self, name: &str) -> Result<Organization> {
        let id: Option<i64> = sqlx::query_scalar("select id from organizations where name = ?")
            .bind(name)
            .fetch_optional(&self.readers)
            .await?;
        id.map(|id| Organization { id: OrgId(id), name: name.to_owned() })
            .ok_or_else(|| StoreError::UnknownOrganization(name.to_owned()))
    }

    #[tracing::instrument(skip_all)]
    async fn add_product(&self, org: OrgId, product: &NewProduct, by: Actor) -> Result<Product> {
        let now = now();
        let mut tx = self.write().await?;
        let added = insert_product(&mut tx, org, product, now).await?;
        let detail = format!("{} seats, auto-assign {}", added.seats, on_off(added.auto_assign));
        record(&mut tx, org, now, Change::new(by, ActivityKind::ProductAdded).product(&added.code).detail(detail)).await?;
        tx.commit().await?;
        Ok(added)
    }

    #[tracing::instrument(skip_all)]
    async fn set_seats(&self, org: OrgId, code: &str, seats: i64, by: Actor) -> Result<Product> {
        validate::seats(seats)?;
        let mut tx = self.write().await?;
        let before = org_product(&mut tx, org, code).await?.product.seats;
        sqlx::query("update products set seats = ? where org_id = ? and code = ?")
            .bind(seats)
            .bind(org.0)
            .bind(code)
            .execute(&mut *tx)
            .await?;
        let detail = format!("seats {before} → {seats}");
        record(&mut tx, org, now(), Change::new(by, ActivityKind::SeatsChanged).product(code).detail(detail)).await?;
        let product = org_product(&mut tx, org, code).await?.product;
        tx.commit().await?;
        Ok(product)
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate_admin(&self, admin_key: &str) -> Result<Option<Organization>> {
        if !keys::well_formed(KeyKind::Admin, admin_key) {
            return Ok(None);
        }
        let row: Option<(i64, String)> = sqlx::query_as("select id, name from organizations where admin_key_hash = ?")
            .bind(keys::digest(admin_key))
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|(id, name)| Organization { id: OrgId(id), name }))
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate_product(&self, product_key: &str) -> Result<Option<OrgId>> {
        if !keys::well_formed(KeyKind::Product, product_key) {
            return Ok(None);
        }
        let digest = keys::digest(product_key);
        let version = self.keys.version();
        if let Some(org) = self.keys.get(version, &digest) {
            return Ok(Some(org));
        }
        let id: Option<i64> = sqlx::query_scalar("select id from organizations where product_key_hash = ?")
            .bind(&digest)
            .fetch_optional(&self.readers)
            .await?;
        if let Some(id) = id {
            self.keys.remember(version, digest, OrgId(id));
        }
        Ok(id.map(OrgId))
    }

    #[tracing::instrument(skip_all)]
    async fn settings(&self, org: OrgId) -> Result<Settings> {
        let (organization_name, product_key): (String, String) =
            sqlx::query_as("select name, product_key from organizations where id = ?")
                .bind(org.0)
                .fetch_optional(&self.readers)
                .await?
                .ok_or_else(|| StoreError::UnknownOrganization(format!("#{}", org.0)))?;
        Ok(Settings { organization_name, product_key })
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_product_key(&self, org: OrgId, by: Actor) -> Result<String> {
        self.rotate_key(org, KeyKind::Product, by).await
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_admin_key(&self, org: OrgId, by: Actor) -> Result<String> {
        self.rotate_key(org, KeyKind::Admin, by).await
    }

    #[tracing::instrument(skip_all)]
    async fn create_session(&self, org: OrgId, lifetime: Duration) -> Result<String> {
        let session_id = keys::generate(KeyKind::Session);
        let now = now();
        let mut tx = self.write().await?;
        sqlx::query("delete from sessions where expires_at <= ?").bind(millis(now)).execute(&mut *tx).await?;
        sqlx::query("insert into sessions (token_hash, org_id, created_at, expires_at) values (?, ?, ?, ?)")
            .bind(keys::digest(&session_id))
            .bind(org.0)
            .bind(millis(now))
            .bind(millis(expiry(now, lifetime)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(session_id)
    }

    #[tracing::instrument(skip_all)]
    async fn session(&self, session_id: &str) -> Result<Option<Organization>> {
        if !keys::well_formed(KeyKind::Session, session_id) {
            return Ok(None);
        }
        let row: Option<(i64, String)> = sqlx::query_as(
            "select o.id, o.name from sessions s join organizations o on o.id = s.org_id
             where s.token_hash = ? and s.expires_at > ?",
        )
        .bind(keys::digest(session_id))
        .bind(millis(now()))
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|(id, name)| Organization { id: OrgId(id), name }))
    }

    #[tracing::instrument(skip_all)]
    async fn end_session(&self, session_id: &str) -> Result<()> {
        sqlx::query("delete from sessions where token_hash = ?")
            .bind(keys::digest(session_id))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn set_session_flash(&self, session_id: &str, flash: &[u8]) -> Result<()> {
        sqlx::query("update sessions set flash = ? where token_hash = ?")
            .bind(flash)
            .bind(keys::digest(session_id))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn take_session_flash(&self, session_id: &str) -> Result<Option<Vec<u8>>> {
        if !keys::well_formed(KeyKind::Session, session_id) {
            return Ok(None);
        }
        let mut tx = self.write().await?;
        let flash: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("select flash from sessions where token_hash = ? and expires_at > ?")
                .bind(keys::digest(session_id))
                .bind(millis(now()))
                .fetch_optional(&mut *tx)
                .await?;
        let Some(flash) = flash.flatten() else { return Ok(None) };
        sqlx::query("update sessions set flash = null where token_hash = ?")
            .bind(keys::digest(session_id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(flash))
    }

    #[tracing::instrument(skip_all)]
    async fn products(&self, org: OrgId) -> Result<Vec<Product>> {
        let rows: Vec<ProductColumns> =
            sqlx::query_as(concat!("select ", product_columns!(), " from products where org_id = ? order by name, code"))
                .bind(org.0)
                .fetch_all(&self.readers)
                .await?;
        Ok(rows.into_iter().map(Product::from).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn product(&self, org: OrgId, code: &str) -> Result<Product> {
        let mut conn = self.readers.acquire().await?;
        Ok(org_product(&mut conn, org, code).await?.product)
    }

    #[tracing::instrument(skip_all)]
    async fn set_auto_assign(&self, org: OrgId, code: &str, auto_assign: bool, by: Actor) -> Result<Product> {
        let mut tx = self.write().await?;
        sqlx::query("update products set auto_assign = ? where org_id = ? and code = ?")
            .bind(auto_assign)
            .bind(org.0)
            .bind(code)
            .execute(&mut *tx)
            .await?;
        let product = org_product(&mut tx, org, code).await?.product;
        let detail = format!("auto-assign {}", on_off(auto_assign));
        record(&mut tx, org, now(), Change::new(by, ActivityKind::AutoAssignChanged).product(code).detail(detail)).await?;
        tx.commit().await?;
        Ok(product)
    }

    #[tracing::instrument(skip_all)]
    async fn policy(&self, org: OrgId, code: &str) -> Result<ProductPolicy> {
        let mut conn = self.readers.acquire().await?;
        fetch_policy(&mut conn, org, code).await
    }

    #[tracing::instrument(skip_all)]
    async fn policies(&self, org: OrgId) -> Result<Vec<(String, ProductPolicy)>> {
        let rows: Vec<(String, i64, Option<i64>)> =
            sqlx::query_as("select code, license_days, reclaim_after_days from products where org_id = ? order by code")
                .bind(org.0)
                .fetch_all(&self.readers)
                .await?;
        Ok(rows.into_iter().map(policy_of).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn update_policy(&self, org: OrgId, code: &str, update: &PolicyUpdate, by: Actor) -> Result<ProductPolicy> {
        update.validate()?;
        let mut tx = self.write().await?;
        let before = fetch_policy(&mut tx, org, code).await?;
        sqlx::query(
            "update products set license_days = coalesce(?, license_days),
                    reclaim_after_days = case when ? then ? else reclaim_after_days end
             where org_id = ? and code = ?",
        )
        .bind(update.license_days)
        .bind(update.reclaim_after_days.is_some())
        .bind(update.reclaim_after_days.flatten())
        .bind(org.0)
        .bind(code)
        .execute(&mut *tx)
        .await?;
        let policy = fetch_policy(&mut tx, org, code).await?;
        let change = Change::new(by, ActivityKind::PolicyChanged).product(code).detail(before.changes_to(&policy));
        record(&mut tx, org, now(), change).await?;
        tx.commit().await?;
        Ok(policy)
    }

    #[tracing::instrument(skip_all)]
    async fn license_terms(&self, org: OrgId, code: &str) -> Result<LicenseTerms> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "select o.name, p.license_days from products p join organizations o on o.id = p.org_id
             where p.org_id = ? and p.code = ?",
        )
        .bind(org.0)
        .bind(code)
        .fetch_optional(&self.readers)
        .await?;
        let (organization, license_days) = row.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        Ok(LicenseTerms { organization, license_days })
    }

    #[tracing::instrument(skip_all)]
    async fn activity(&self, org: OrgId, filter: &ActivityFilter) -> Result<Page<Activity>> {
        let limit = PageRequest { after: None, limit: filter.limit }.clamped_limit();
        let mut select = activity_query(org, filter, limit, millis);
        type Row = (i64, i64, String, String, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Row> = select.build_query_as().fetch_all(&self.readers).await?;
        let rows = rows
            .into_iter()
            .map(|(id, at, actor, kind, product, serial, detail)| (id, timestamp(at), actor, kind, product, serial, detail))
            .collect();
        Ok(activity_page(rows, limit))
    }

    /// In transactions of at most 500 seats, so that check-ins waiting for
    /// the writer are not held up long.
    #[tracing::instrument(skip_all)]
    async fn reclaim_idle_seats(&self, now: Timestamp) -> Result<u64> {
        const SLICE: usize = 500;
        let mut reclaimed = 0;
        loop {
            // `last seen` times still in memory first: a device seen a moment
            // ago is not idle.
            self.touches.flush(|batch| write_touches(&self.writer, &self.keys, batch)).await?;
            let mut tx = self.write().await?;
            let candidates: Vec<(i64, i64, i64, String, String, i64)> = sqlx::query_as(
                "select a.product_id, a.device_id, p.org_id, p.code, d.serial, p.reclaim_after_days
                 from products p
                 join assignments a on a.product_id = p.id
                 join devices d on d.id = a.device_id
                 left join device_seen ds on ds.device_id = d.id
                 where p.reclaim_after_days is not null
                   and coalesce(ds.last_seen, d.first_seen) < ?1 - p.reclaim_after_days * 86400000
                 limit ?2",
            )
            .bind(millis(now))
            .bind(SLICE as i64)
            .fetch_all(&mut *tx)
            .await?;
            if candidates.is_empty() {
                return Ok(reclaimed);
            }
            // From here on no check-in is answered from memory, and one
            // answered before has left its time among the waiting ones
            // (`KnownDevices::unchanged_since`): a device seen since the
            // flush keeps its seat.
            self.known.clear();
            let idle = candidates.iter().filter(|(_, device, .., days)| {
                self.touches.last_seen(*device, i64::MIN) < millis(now) - days * 86_400_000
            });
            for (product, device, org, code, serial, days) in idle {
                sqlx::query("delete from assignments where product_id = ? and device_id = ?")
                    .bind(product)
                    .bind(device)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("update products set assigned = assigned - 1 where id = ?")
                    .bind(product)
                    .execute(&mut *tx)
                    .await?;
                let change = Change::new(Actor::Reclaim, ActivityKind::SeatReclaimed).product(code).serial(serial);
                record(&mut tx, OrgId(*org), now, change.detail(format!("not seen for {days} days"))).await?;
                reclaimed += 1;
            }
            self.commit_taking_seats(tx).await?;
            if candidates.len() < SLICE {
                return Ok(reclaimed);
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn snapshot_usage(&self, now: Timestamp) -> Result<u64> {
        // `where true`: SQLite reads `on conflict` after a bare `from` as a join.
        let done = sqlx::query(
            "insert into seat_snapshots (product_id, day, seats, assigned)
             select id, ?1, seats, assigned from products where true
             on conflict (product_id, day) do update set seats = excluded.seats, assigned = excluded.assigned",
        )
        .bind(day_of(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn usage(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, UsagePoint)>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "select p.code, s.day, s.seats, s.assigned
             from products p join seat_snapshots s on s.product_id = p.id
             where p.org_id = ?1 and s.day >= ?2
             order by p.code, s.day",
        )
        .bind(org.0)
        .bind(since_day)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(|(code, day, seats, assigned)| (code, UsagePoint { day, seats, assigned })).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn seat_totals(&self) -> Result<Vec<SeatTotal>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "select o.name, p.code, p.seats, p.assigned from products p join organizations o on o.id = p.org_id
             order by o.name, p.code",
        )
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(seat_total).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn prune_activity(&self, before: Timestamp) -> Result<u64> {
        // In slices, so that check-ins waiting for the writer are not held up.
        let mut pruned = 0;
        loop {
            let done = sqlx::query(
                "delete from activity where id in (select id from activity where at < ? order by at limit 5000)",
            )
            .bind(millis(before))
            .execute(&self.writer)
            .await?
            .rows_affected();
            pruned += done;
            if done < 5000 {
                return Ok(pruned);
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        type Row = (String, Vec<u8>, Vec<u8>, i64, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "select kid, secret, public, created_at, retired_at from signing_keys
             order by retired_at is not null, created_at desc, id desc",
        )
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kid, secret, public, created_at, retired_at)| StoredSigningKey {
                kid,
                secret,
                public,
                created_at: timestamp(created_at),
                retired_at: retired_at.map(timestamp),
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn add_signing_key(&self, key: &StoredSigningKey, retire_active: bool) -> Result<bool> {
        let mut tx = self.write().await?;
        if retire_active {
            sqlx::query("update signing_keys set retired_at = ? where retired_at is null")
                .bind(millis(key.created_at))
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(
            "insert into signing_keys (kid, secret, public, created_at) values (?, ?, ?, ?) on conflict do nothing",
        )
        .bind(&key.kid)
        .bind(&key.secret)
        .bind(&key.public)
        .bind(millis(key.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn replace_signing_secret(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let done = sqlx::query("update signing_keys set secret = ? where kid = ? and secret = ?")
            .bind(new)
            .bind(kid)
            .bind(old)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn holders(&self, org: OrgId, code: &str, page: &PageRequest) -> Result<Page<Holder>> {
        let mut conn = self.readers.acquire().await?;
        let product = org_product(&mut conn, org, code).await?;
        let limit = page.clamped_limit();
        let rows: Vec<(i64, String, i64, i64, i64)> = sqlx::query_as(
            "select d.id, d.serial, a.assigned_at, d.first_seen, coalesce(ds.last_seen, d.first_seen)
             from assignments a join devices d on d.id = a.device_id
             left join device_seen ds on ds.device_id = d.id
             where a.product_id = ? and d.serial > ?
             order by d.serial limit ?",
        )
        .bind(product.id)
        .bind(page.after_serial())
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let holders = rows
            .into_iter()
            .map(|(id, serial, assigned_at, first_seen, last_seen)| Holder {
                serial,
                assigned_at: timestamp(assigned_at),
                first_seen: timestamp(first_seen),
                last_seen: timestamp(self.touches.last_seen(id, last_seen)),
            })
            .collect();
        Ok(Page::from_rows(holders, limit, |h| &h.serial))
    }

    /// A page of devices in serial order, those containing `query` if given.
    /// A search that the trigram index (migration 0003) narrows to a few
    /// thousand devices looks only at those; a short or common one walks the
    /// serial index, where matches come soon.
    #[tracing::instrument(skip_all)]
    async fn devices(&self, org: OrgId, query: Option<&str>, page: &PageRequest) -> Result<Page<Device>> {
        const FEW: i64 = 2000;
        let limit = page.clamped_limit();
        let query = query.unwrap_or_default();
        let mut conn = self.readers.acquire().await?;
        // Where a short search's walk of the serial index stops this time.
        let walk_end: Option<String> = match is_short_search(query) {
            true => sqlx::query_scalar("select serial from devices where org_id = ? and serial > ? order by serial limit 1 offset ?")
                .bind(org.0)
                .bind(page.after_serial())
                .bind(SHORT_SEARCH_WALK - 1)
                .fetch_optional(&mut *conn)
                .await?,
            false => None,
        };
        let phrase = (query.chars().count() >= 3).then(|| format!("\"{}\"", query.replace('"', "\"\"")));
        let few = match &phrase {
            Some(phrase) => {
                let found: i64 = sqlx::query_scalar(
                    "select count(*) from (select 1 from devices_search where devices_search match ? limit ?)",
                )
                .bind(phrase)
                .bind(FEW)
                .fetch_one(&mut *conn)
                .await?;
                found < FEW
            }
            None => false,
        };
        // CROSS JOIN makes SQLite start from the index's few matches.
        let (from, narrowed) = if few {
            ("devices_search s cross join devices d on d.id = s.rowid", "and s.devices_search match ?5")
        } else {
            ("devices d", "")
        };
        // The walk's end bounds the index range itself (a bound that may be
        // null would leave SQLite walking to the end of the fleet). A short
        // search never uses the trigram index, so the two share ?5.
        let walk = if walk_end.is_some() { "and d.serial <= ?5" } else { "" };
        let sql = format!(
            "select d.id, d.serial, d.first_seen, coalesce(ds.last_seen, d.first_seen),
                    (select count(*) from assignments a where a.device_id = d.id)
             from {from} left join device_seen ds on ds.device_id = d.id
             where d.org_id = ?1 and d.serial > ?2 {walk}
               and d.serial like ?3 escape '\\' {narrowed}
             order by d.serial limit ?4"
        );
        let mut select = sqlx::query_as::<_, (i64, String, i64, i64, i64)>(&sql)
            .bind(org.0)
            .bind(page.after_serial())
            .bind(validate::contains_pattern(query))
            .bind(limit + 1);
        if let Some(phrase) = phrase.filter(|_| few) {
            select = select.bind(phrase);
        }
        if let Some(end) = &walk_end {
            select = select.bind(end.clone());
        }
        let rows = select.fetch_all(&mut *conn).await?;
        let devices = rows
            .into_iter()
            .map(|(id, serial, first_seen, last_seen, seats)| {
                device_from((serial, first_seen, self.touches.last_seen(id, last_seen), seats))
            })
            .collect();
        Ok(Page::from_rows(devices, limit, |d| &d.serial).walked_to(walk_end))
    }

    #[tracing::instrument(skip_all)]
    async fn device(&self, org: OrgId, serial: &str) -> Result<DeviceDetail> {
        let mut conn = self.readers.acquire().await?;
        let row: Option<(i64, String, i64, i64)> =
            sqlx::query_as(
                "select d.id, d.serial, d.first_seen, coalesce(ds.last_seen, d.first_seen)
                 from devices d left join device_seen ds on ds.device_id = d.id
                 where d.org_id = ? and d.serial = ?",
            )
                .bind(org.0)
                .bind(serial)
                .fetch_optional(&mut *conn)
                .await?;
        let Some((id, serial, first_seen, last_seen)) = row else {
            return Err(StoreError::UnknownDevice(serial.to_owned()));
        };
        let licenses: Vec<(String, String, bool)> = sqlx::query_as(
            "select p.code, p.name,
                    exists (select 1 from assignments a where a.product_id = p.id and a.device_id = ?)
             from products p where p.org_id = ? order by p.name, p.code",
        )
        .bind(id)
        .bind(org.0)
        .fetch_all(&mut *conn)
        .await?;
        let seats_assigned = licenses.iter().filter(|(_, _, assigned)| *assigned).count() as i64;
        Ok(DeviceDetail {
            device: device_from((serial, first_seen, self.touches.last_seen(id, last_seen), seats_assigned)),
            licenses: licenses
                .into_iter()
                .map(|(product, name, assigned)| DeviceLicense { product, name, assigned })
                .collect(),
        })
    }

    #[tracing::instrument(skip_all)]
    async fn delete_device(&self, org: OrgId, serial: &str, by: Actor) -> Result<()> {
        let mut tx = self.write().await?;
        delete_device_in(&mut tx, org, serial, by).await?;
        self.commit_taking_seats(tx).await
    }

    #[tracing::instrument(skip_all)]
    async fn ignore_device(&self, org: OrgId, serial: &str, by: Actor) -> Result<bool> {
        validate::serial(serial)?;
        let mut tx = self.write().await?;
        let removed = ignore_device_in(&mut tx, org, serial, by).await?;
        self.commit_taking_seats(tx).await?;
        Ok(removed)
    }

    #[tracing::instrument(skip_all)]
    async fn ignored(&self, org: OrgId, page: &PageRequest) -> Result<Page<IgnoredSerial>> {
        let limit = page.clamped_limit();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select serial, ignored_at from ignored_serials
             where org_id = ? and serial > ? order by serial limit ?",
        )
        .bind(org.0)
        .bind(page.after_serial())
        .bind(limit + 1)
        .fetch_all(&self.readers)
        .await?;
        let items =
            rows.into_iter().map(|(serial, at)| IgnoredSerial { serial, ignored_at: timestamp(at) }).collect();
        Ok(Page::from_rows(items, limit, |i| &i.serial))
    }

    #[tracing::instrument(skip_all)]
    async fn unignore(&self, org: OrgId, serial: &str, by: Actor) -> Result<()> {
        let mut tx = self.write().await?;
        let done = sqlx::query("delete from ignored_serials where org_id = ? and serial = ?")
            .bind(org.0)
            .bind(serial)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotIgnored(serial.to_owned()));
        }
        record(&mut tx, org, now(), Change::new(by, ActivityKind::DeviceUnignored).serial(serial)).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn assign(&self, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<Assigned> {
        let mut tx = self.write().await?;
        let outcome = assign_in(&mut tx, org, serial, code, by).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    #[tracing::instrument(skip_all)]
    async fn unassign(&self, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<()> {
        let mut tx = self.write().await?;
        unassign_in(&mut tx, org, serial, code, by).await?;
        self.commit_taking_seats(tx).await
    }

    #[tracing::instrument(skip_all)]
    async fn bulk(&self, org: OrgId, action: BulkAction, product: &str, serials: &[String], by: Actor)
    -> Result<Vec<Result<Assigned>>> {
        let mut outcomes = Vec::with_capacity(serials.len());
        for slice in serials.chunks(bulk::SLICE) {
            let mut tx = self.write().await?;
            for serial in slice {
                let outcome = match action {
                    BulkAction::Assign => assign_in(&mut tx, org, serial, product, by).await,
                    BulkAction::Unassign => unassign_in(&mut tx, org, serial, product, by).await.map(|()| Assigned::Newly),
                    BulkAction::Delete => delete_device_in(&mut tx, org, serial, by).await.map(|()| Assigned::Newly),
                    BulkAction::Ignore => ignore_device_in(&mut tx, org, serial, by).await.map(|_| Assigned::Newly),
                };
                outcomes.push(bulk::refused_or_failed(outcome)?);
            }
            match action {
                BulkAction::Assign => tx.commit().await?,
                _ => self.commit_taking_seats(tx).await?,
            }
        }
        Ok(outcomes)
    }

    /// Both from memory: the product keys accepted since the database last
    /// changed, and the devices known to hold their seats.
    async fn arrive(&self, product_key: &str, code: &str, serial: &str) -> Result<Arrival> {
        let Some(org) = self.authenticate_product(product_key).await? else { return Ok(Arrival::UnknownKey) };
        Ok(Arrival::Arrived { org, held: self.held_seat(org, code, serial) })
    }

    async fn check_in_held(&self, code: &str, serial: &str, seat: HeldSeat) -> Result<CheckIn> {
        let now = now();
        // `last seen` first, then the check that no change took seats away
        // since the seat was read (see `KnownDevices::unchanged_since`).
        self.touches.touch(seat.device_id, millis(now));
        if !self.known.unchanged_since(Generation(seat.seen)) {
            return self.decide_in_group(seat.org, code, serial).await;
        }
        Ok(CheckIn::held(code, serial, seat.first_seen, now))
    }

    #[tracing::instrument(skip_all)]
    async fn check_in(&self, org: OrgId, code: &str, serial: &str) -> Result<CheckIn> {
        validate::serial(serial)?;
        if let Some(seat) = self.held_seat(org, code, serial) {
            return self.check_in_held(code, serial, seat).await;
        }
        self.decide_in_group(org, code, serial).await
    }
}

impl SqliteStore {
    /// The check-in decided in the next group commit.
    async fn decide_in_group(&self, org: OrgId, code: &str, serial: &str) -> Result<CheckIn> {
        let (reply, answer) = oneshot::channel();
        let pending = PendingCheckIn { org, code: code.to_owned(), serial: serial.to_owned(), reply };
        self.check_ins.send(pending).await.map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the check-in was dropped".into()))?
    }
}


// One admin change each, inside a write transaction the caller commits
// (alone, or a bulk action's slice of devices).
async fn delete_device_in(tx: &mut SqliteConnection, org: OrgId, serial: &str, by: Actor) -> Result<()> {
    let id = device_id(tx, org, serial).await?;
    free_all_seats(tx, id).await?;
    sqlx::query("delete from devices where id = ?").bind(id).execute(&mut *tx).await?;
    record(tx, org, now(), Change::new(by, ActivityKind::DeviceDeleted).serial(serial)).await
}

async fn ignore_device_in(tx: &mut SqliteConnection, org: OrgId, serial: &str, by: Actor) -> Result<bool> {
    let removed = match device_id(tx, org, serial).await {
        Ok(id) => {
            free_all_seats(tx, id).await?;
            sqlx::query("delete from devices where id = ?").bind(id).execute(&mut *tx).await?;
            true
        }
        Err(StoreError::UnknownDevice(_)) => false,
        Err(e) => return Err(e),
    };
    sqlx::query("insert into ignored_serials (org_id, serial, ignored_at) values (?, ?, ?) on conflict do nothing")
        .bind(org.0)
        .bind(serial)
        .bind(millis(now()))
        .execute(&mut *tx)
        .await?;
    let mut change = Change::new(by, ActivityKind::DeviceIgnored).serial(serial);
    if removed {
        change = change.detail("the recorded device was removed");
    }
    record(tx, org, now(), change).await?;
    Ok(removed)
}

async fn assign_in(tx: &mut SqliteConnection, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<Assigned> {
    let device = device_id(tx, org, serial).await?;
    let product = org_product(tx, org, code).await?;
    let held: Option<i64> = sqlx::query_scalar("select 1 from assignments where product_id = ? and device_id = ?")
        .bind(product.id)
        .bind(device)
        .fetch_optional(&mut *tx)
        .await?;
    let outcome = if held.is_some() {
        Assigned::Already
    } else if take_seat(tx, product.id, device, now()).await? {
        let change = Change::new(by, ActivityKind::SeatAssigned).product(code).serial(serial);
        record(tx, org, now(), change).await?;
        Assigned::Newly
    } else {
        return Err(StoreError::NoSeatsAvailable);
    };
    sqlx::query("delete from revocations where device_id = ? and product_id = ?")
        .bind(device)
        .bind(product.id)
        .execute(&mut *tx)
        .await?;
    Ok(outcome)
}

async fn unassign_in(tx: &mut SqliteConnection, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<()> {
    let device = device_id(tx, org, serial).await?;
    let product = org_product(tx, org, code).await?;
    let freed = sqlx::query("delete from assignments where product_id = ? and device_id = ?")
        .bind(product.id)
        .bind(device)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if freed == 1 {
        sqlx::query("update products set assigned = assigned - 1 where id = ?")
            .bind(product.id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("insert or replace into revocations (device_id, product_id, revoked_at) values (?, ?, ?)")
        .bind(device)
        .bind(product.id)
        .bind(millis(now()))
        .execute(&mut *tx)
        .await?;
    let change = Change::new(by, ActivityKind::SeatRevoked).product(code).serial(serial);
    record(tx, org, now(), if freed == 1 { change } else { change.detail("held no seat; auto-assign blocked") })
        .await?;
    Ok(())
}

/// A device's check-in waiting for the next group commit.
struct PendingCheckIn {
    org: OrgId,
    code: String,
    serial: String,
    reply: oneshot::Sender<Result<CheckIn>>,
}

/// Group commit: the check-ins that arrive while one transaction is being
/// written are decided together in the next, one after another (so the seat
/// rule sees each decision before the next), and committed with a single
/// fsync. Each caller hears its answer only after that commit, so a device
/// told "licensed" never loses its seat to a crash.
async fn group_commit(
    writer: SqlitePool,
    mut queue: mpsc::Receiver<PendingCheckIn>,
    group_max: usize,
    known: Arc<KnownDevices>,
    keys: Arc<KnownKeys>,
) {
    loop {
        // The first check-in to arrive and every other one already waiting.
        let mut group = Vec::with_capacity(group_max);
        if queue.recv_many(&mut group, group_max).await == 0 {
            return; // The store is gone.
        }
        let generation = known.generation();
        match decide_group(&writer, &keys, &group).await {
            Ok(answers) => {
                // Committed: the devices that hold their seats can be answered
                // from memory next time.
                let holdings = group.iter().zip(&answers).filter_map(|(pending, answer)| match answer {
                    Ok((CheckIn { licensed: true, first_seen: Some(first_seen), .. }, Some(device_id))) => Some((
                        pending.org,
                        pending.code.as_str(),
                        pending.serial.as_str(),
                        Holding { device_id: *device_id, first_seen: millis(*first_seen) },
                    )),
                    _ => None,
                });
                known.remember(generation, holdings.collect::<Vec<_>>());
                for (pending, answer) in group.into_iter().zip(answers) {
                    let _ = pending.reply.send(answer.map(|(check_in, _)| check_in));
                }
            }
            Err(error) => {
                tracing::error!(%error, size = group.len(), "a group of check-ins failed; none was recorded");
                for pending in group {
                    let _ = pending.reply.send(Err(StoreError::Unavailable(error.to_string())));
                }
            }
        }
    }
}

/// A device of the group as [`decide_group`] reads it back: id, organization,
/// serial, first and last seen, and the products it holds and has had
/// revoked.
type RecordedRow = (i64, i64, String, i64, i64, Vec<i64>, Vec<i64>);

/// One transaction for the whole group, a few statements for all its
/// check-ins (see [`crate::group`]). A check-in refused for its own input (an
/// unknown product) gets its error and changes nothing; a database error
/// rolls the whole group back.
async fn decide_group(writer: &SqlitePool, keys: &KnownKeys, pending: &[PendingCheckIn]) -> Result<Vec<group::Answer>> {
    let at = millis(now());
    let group: Vec<Asked> =
        pending.iter().map(|p| Asked { org: p.org, code: p.code.as_str(), serial: p.serial.as_str() }).collect();
    let (mut tx, counter) = begin_check_in_write(writer, keys).await?;

    // Nothing else writes while the group holds the write lock, so the seat
    // counts read here stay true until the commit.
    let wanted = group::products_wanted(&group);
    let mut products = HashMap::with_capacity(wanted.len());
    for (org, code) in wanted {
        if let Some(product) = fetch_product(&mut tx, org, code).await? {
            products.insert((org, code), product);
        }
    }

    // Every device recorded unless its serial is on the ignore list, and its
    // last seen moved.
    let to_record = group::devices_to_record(&group, &products);
    let asked = json(to_record.iter().map(|(org, serial)| (org.0, serial)))?;
    // The group's (organization, serial) pairs, and "not on the ignore list",
    // as every statement below writes them (static text: nothing is built per
    // group).
    macro_rules! asked {
        () => {
            "(select value ->> 0 as org_id, value ->> 1 as serial from json_each(?1)) asked"
        };
    }
    macro_rules! not_ignored {
        () => {
            "not exists (select 1 from ignored_serials i where i.org_id = asked.org_id and i.serial = asked.serial)"
        };
    }
    sqlx::query(concat!(
        "insert into devices (org_id, serial, first_seen)
         select asked.org_id, asked.serial, ?2 from ", asked!(), " where ", not_ignored!(), "
         on conflict (org_id, serial) do nothing"
    ))
    .bind(&asked)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(concat!(
        "insert into device_seen (device_id, last_seen)
         select d.id, ?2 from ", asked!(), " join devices d on d.org_id = asked.org_id and d.serial = asked.serial
         where ", not_ignored!(), "
         on conflict (device_id) do update set last_seen = max(device_seen.last_seen, excluded.last_seen)"
    ))
    .bind(&asked)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    // The devices, with the products each holds and has had revoked, as one
    // JSON value: one row crosses from SQLite's thread instead of one per
    // device and statement.
    let recorded: String = sqlx::query_scalar(concat!(
        "select json_group_array(json_array(d.id, d.org_id, d.serial, d.first_seen, coalesce(ds.last_seen, ?2),
                    json(coalesce((select json_group_array(a.product_id) from assignments a where a.device_id = d.id), '[]')),
                    json(coalesce((select json_group_array(r.product_id) from revocations r where r.device_id = d.id), '[]'))))
         from ", asked!(), " join devices d on d.org_id = asked.org_id and d.serial = asked.serial
         left join device_seen ds on ds.device_id = d.id
         where ", not_ignored!()
    ))
    .bind(&asked)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    let recorded: Vec<RecordedRow> =
        serde_json::from_str(&recorded).map_err(|error| StoreError::Unavailable(error.to_string()))?;
    let devices: HashMap<(OrgId, &str), Recorded> = recorded
        .iter()
        .map(|(id, org, serial, first_seen, last_seen, _, _)| {
            let device = Recorded { id: *id, first_seen: timestamp(*first_seen), last_seen: timestamp(*last_seen) };
            ((OrgId(*org), serial.as_str()), device)
        })
        .collect();
    let products_of: HashMap<i64, (&[i64], &[i64])> =
        recorded.iter().map(|(id, .., held, revoked)| (*id, (held.as_slice(), revoked.as_slice()))).collect();
    let standings: HashMap<(i64, i64), Standing> = group::pairs_to_look_up(&group, &products, &devices)
        .into_iter()
        .map(|(product, device)| {
            let (held, revoked) = products_of.get(&device).copied().unwrap_or_default();
            ((product, device), Standing { held: held.contains(&product), revoked: revoked.contains(&product) })
        })
        .collect();

    let decided = group::decide(&group, &products, &devices, &standings);
    if !decided.taken.is_empty() {
        for (product, taken) in decided.taken_per_product() {
            let counted = sqlx::query("update products set assigned = assigned + ?2 where id = ?1 and assigned + ?2 <= seats")
                .bind(product)
                .bind(taken)
                .execute(&mut *tx)
                .await?;
            if counted.rows_affected() != 1 {
                return Err(group::seats_moved(product));
            }
        }
        sqlx::query(
            "insert into assignments (product_id, device_id, assigned_at)
             select value ->> 0, value ->> 1, ?2 from json_each(?1)",
        )
        .bind(json(decided.taken.iter().map(|seat| (seat.product_id, seat.device_id)))?)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into activity (org_id, at, actor, kind, product, serial)
             select value ->> 0, ?2, ?3, ?4, value ->> 1, value ->> 2 from json_each(?1)",
        )
        .bind(json(decided.taken.iter().map(|seat| (seat.org.0, seat.code, seat.serial)))?)
        .bind(at)
        .bind(Actor::Device.as_str())
        .bind(ActivityKind::SeatAutoAssigned.as_str())
        .execute(&mut *tx)
        .await?;
    }
    // Every device read was written (its last seen, at least).
    commit_check_in_write(tx, keys, counter, !recorded.is_empty()).await?;
    Ok(decided.answers)
}

/// A write transaction of the check-in path (a group's decisions, `last
/// seen` times), which changes no organization, and the database's change
/// counter read once it holds the write lock.
async fn begin_check_in_write(writer: &SqlitePool, keys: &KnownKeys) -> Result<(Tx, Option<u32>)> {
    let tx = writer.begin_with("begin immediate").await?;
    Ok((tx, keys.version()))
}

/// Commits a [`begin_check_in_write`] transaction; when it `wrote` rows, the
/// product keys known before it stay known after it ([`KnownKeys::carry_over`]).
async fn commit_check_in_write(tx: Tx, keys: &KnownKeys, counter: Option<u32>, wrote: bool) -> Result<()> {
    tx.commit().await?;
    if wrote {
        keys.carry_over(counter);
    }
    Ok(())
}

/// A group's rows as one JSON array, for `json_each`: one statement and one
/// bound value for the whole group, however large.
fn json<T: serde::Serialize>(rows: impl Iterator<Item = T>) -> Result<String> {
    let rows: Vec<T> = rows.collect();
    serde_json::to_string(&rows).map_err(|error| StoreError::Unavailable(error.to_string()))
}

/// Writes waiting `last seen` times (by device id, in id order): one
/// statement and one transaction per thousand devices, so check-ins waiting
/// for the writer are not held up long.
async fn write_touches(writer: &SqlitePool, keys: &KnownKeys, batch: Vec<(i64, i64)>) -> Result<()> {
    for chunk in batch.chunks(1000) {
        let (mut tx, counter) = begin_check_in_write(writer, keys).await?;
        let written = sqlx::query(
            "update device_seen set last_seen = max(device_seen.last_seen, seen.at)
             from (select value ->> 0 as id, value ->> 1 as at from json_each(?)) seen
             where device_seen.device_id = seen.id",
        )
        .bind(json(chunk.iter())?)
        .execute(&mut *tx)
        .await?;
        commit_check_in_write(tx, keys, counter, written.rows_affected() > 0).await?;
    }
    Ok(())
}

/// After start, learns which devices hold which seats, so that their first
/// check-ins are already answered from memory. Runs beside the server; gives
/// up when an admin's change clears the cache meanwhile.
async fn remember_holdings(readers: SqlitePool, known: Arc<KnownDevices>) {
    let started = std::time::Instant::now();
    match learn_holdings(&readers, &known).await {
        Ok(Some(learnt)) => {
            tracing::info!(devices = learnt, seconds = started.elapsed().as_secs_f64(), "learnt which devices hold seats")
        }
        Ok(None) => tracing::info!("an admin's change came first; devices are learnt at their check-ins"),
        Err(error) => tracing::warn!(%error, "reading the holders failed; devices are learnt at their check-ins"),
    }
}

/// Reads the holdings in slices of devices by id. Each slice comes back as
/// one JSON array: sqlx hands SQLite rows over one at a time between
/// threads, which for a million rows costs more than the query.
async fn learn_holdings(readers: &SqlitePool, known: &KnownDevices) -> Result<Option<usize>> {
    const SLICE: i64 = 10_000;
    let codes: HashMap<i64, String> = sqlx::query_as("select id, code from products").fetch_all(readers).await?.into_iter().collect();
    let expected: i64 = sqlx::query_scalar("select count(*) from assignments").fetch_one(readers).await?;
    let mut learning = known.learning(usize::try_from(expected).unwrap_or(0));
    let mut after = 0i64;
    let mut learnt = 0;
    loop {
        let (last, holdings): (Option<i64>, String) = sqlx::query_as(
            "select (select max(id) from (select id from devices where id > ?1 order by id limit ?2)),
                    (select json_group_array(json_array(d.org_id, a.product_id, d.serial, d.id, d.first_seen))
                     from (select id, org_id, serial, first_seen from devices where id > ?1 order by id limit ?2) d
                     join assignments a on a.device_id = d.id)",
        )
        .bind(after)
        .bind(SLICE)
        .fetch_one(readers)
        .await?;
        let Some(last) = last else { break };
        let rows: Vec<(i64, i64, String, i64, i64)> =
            serde_json::from_str(&holdings).map_err(|error| StoreError::Unavailable(error.to_string()))?;
        for (org, product, serial, device_id, first_seen) in rows {
            if let Some(code) = codes.get(&product) {
                learning.add(OrgId(org), code, &serial, Holding { device_id, first_seen });
                learnt += 1;
            }
        }
        if learning.is_stale() {
            return Ok(None);
        }
        after = last;
    }
    Ok(learning.finish().then_some(learnt))
}

#[cfg(all(test, unix, feature = "testing"))]
mod tests {
    use super::*;
    use crate::{LicenseStore, NewProduct};

    /// The keys this process knows, at the database's counter now.
    fn known_now(store: &SqliteStore, key: &str) -> Option<OrgId> {
        store.keys.get(store.keys.version(), &keys::digest(key))
    }

    /// [`KnownKeys::carry_over`] counts on SQLite adding exactly one to the
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
}
