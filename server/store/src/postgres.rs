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

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Transaction;

use crate::bulk::{self, BulkAction};
use crate::group::ProductRow;
use crate::keys::{self, KeyKind};
use crate::known::{self, Touches};
use crate::validate;
use crate::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    /// Connections for everything but the check-ins: admin reads and
    /// changes, sessions, the operator, housekeeping.
    pool: PgPool,
    /// Product key lookups, batched.
    product_keys: batch::Batches<batch::ProductKeys>,
    /// Check-ins' first looks (key, and seat if held), batched.
    arrivals: batch::Batches<batch::Arrivals>,
    /// Check-ins that need a seat decision, decided in groups.
    new_devices: batch::Batches<group::NewDevices>,
    /// The check-ins' own connections (the batches above use them).
    checkins: PgPool,
    /// `last seen` times of held devices' check-ins waiting to be written.
    last_seen: Arc<Touches>,
    /// Connections whose commits do not wait for the disk: only for writes
    /// of `last seen`.
    touches: PgPool,
}

type Tx = Transaction<'static, sqlx::Postgres>;

impl PgStore {
    pub async fn open(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        // Few: admin requests queue here rather than take the database's
        // cores from the check-ins (16 searches of a million devices at once
        // would, bench/trust.sh).
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
        let touches = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options.options([("synchronous_commit", "off")]));
        let last_seen = Arc::new(Touches::default());
        let flusher = touches.clone();
        tokio::spawn(known::flush_forever(PG_FLUSH_EVERY, last_seen.clone(), move |batch| {
            let pool = flusher.clone();
            async move { write_touches(&pool, batch).await }
        }));
        Ok(PgStore {
            product_keys: batch::Batches::start(checkins.clone(), batch::BATCH_MAX),
            arrivals: batch::Batches::start(checkins.clone(), batch::BATCH_MAX),
            new_devices: batch::Batches::start(checkins.clone(), crate::group::group_max()),
            checkins,
            last_seen,
            pool,
            touches,
        })
    }

    /// Requests answered by the batches, and batches that failed.
    pub fn batch_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let counts = [self.product_keys.counts(), self.arrivals.counts(), self.new_devices.counts()];
        (counts.iter().map(|c| c.found.load(Relaxed)).sum(), counts.iter().map(|c| c.failed.load(Relaxed)).sum())
    }

    pub fn pool_stats(&self) -> Vec<PoolStats> {
        vec![
            crate::pool_stats("main", &self.pool),
            crate::pool_stats("checkins", &self.checkins),
            crate::pool_stats("touches", &self.touches),
        ]
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Writes the `last seen` times still waiting; called when the server stops.
    pub async fn flush(&self) -> Result<()> {
        self.last_seen.flush(|batch| write_touches(&self.touches, batch)).await
    }

    /// A device's `last seen`, counting a check-in whose time waits to be
    /// written.
    fn last_seen(&self, device_id: i64, stored: Timestamp) -> Timestamp {
        let newest = self.last_seen.last_seen(device_id, stored.timestamp_millis());
        if newest > stored.timestamp_millis() { DateTime::from_timestamp_millis(newest).unwrap_or(stored) } else { stored }
    }

    async fn rotate_key(&self, org: OrgId, kind: KeyKind, by: Actor) -> Result<String> {
        let key = keys::generate(kind);
        let mut tx = self.begin().await?;
        let done = match kind {
            KeyKind::Product => {
                sqlx::query("update organizations set product_key_hash = $1, product_key = $2 where id = $3")
                    .bind(keys::digest(&key))
                    .bind(&key)
                    .bind(org.0)
            }
            _ => sqlx::query("update organizations set admin_key_hash = $1 where id = $2")
                .bind(keys::digest(&key))
                .bind(org.0),
        }
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownOrganization(format!("#{}", org.0)));
        }
        if kind == KeyKind::Admin {
            sqlx::query("delete from sessions where org_id = $1").bind(org.0).execute(&mut *tx).await?;
        }
        let rotated = if kind == KeyKind::Admin { ActivityKind::AdminKeyRotated } else { ActivityKind::ProductKeyRotated };
        record(&mut tx, org, now(), Change::new(by, rotated)).await?;
        tx.commit().await?;
        Ok(key)
    }
}

async fn fetch_product(conn: &mut PgConnection, org: OrgId, code: &str) -> Result<ProductRow> {
    let row: Option<(i64, String, String, i64, i64, bool)> =
        sqlx::query_as(concat!("select id, ", product_columns!(), " from products where org_id = $1 and code = $2"))
            .bind(org.0)
            .bind(code)
            .fetch_optional(conn)
            .await?;
    row.map(|(id, code, name, seats, assigned, auto_assign)| ProductRow {
        id,
        product: Product::from((code, name, seats, assigned, auto_assign)),
    })
    .ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))
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
    .execute(conn)
    .await?;
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

/// Takes a free seat of the product for the device, if there is one. The caller
/// holds the device's row lock and has checked that it holds no seat of it.
async fn take_seat(conn: &mut PgConnection, product_id: i64, device_id: i64, now: Timestamp) -> Result<bool> {
    let taken = sqlx::query("update products set assigned = assigned + 1 where id = $1 and assigned < seats")
        .bind(product_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if taken {
        sqlx::query("insert into assignments (product_id, device_id, assigned_at) values ($1, $2, $3)")
            .bind(product_id)
            .bind(device_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(taken)
}

/// Deletes a device whose row the caller has locked, freeing every seat it held.
async fn delete_locked_device(conn: &mut PgConnection, device_id: i64) -> Result<()> {
    // Product rows are locked in id order, so two deletes sharing products
    // cannot deadlock.
    let products: Vec<i64> = sqlx::query_scalar(
        "select id from products
         where id in (select product_id from assignments where device_id = $1)
         order by id for update",
    )
    .bind(device_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("update products set assigned = assigned - 1 where id = any($1)")
        .bind(&products)
        .execute(&mut *conn)
        .await?;
    sqlx::query("delete from devices where id = $1").bind(device_id).execute(&mut *conn).await?;
    Ok(())
}

async fn insert_organization(conn: &mut PgConnection, name: &str, now: Timestamp) -> Result<Option<(OrgId, NewOrganization)>> {
    let admin_key = keys::generate(KeyKind::Admin);
    let product_key = keys::generate(KeyKind::Product);
    let id: Option<i64> = sqlx::query_scalar(
        "insert into organizations (name, admin_key_hash, product_key, product_key_hash, created_at)
         values ($1, $2, $3, $4, $5) on conflict (name) do nothing returning id",
    )
    .bind(name)
    .bind(keys::digest(&admin_key))
    .bind(&product_key)
    .bind(keys::digest(&product_key))
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(|id| (OrgId(id), NewOrganization { name: name.to_owned(), admin_key, product_key })))
}

async fn insert_product(conn: &mut PgConnection, org: OrgId, product: &NewProduct, now: Timestamp) -> Result<Product> {
    validate::product_code(&product.code)?;
    validate::name("product name", &product.name)?;
    validate::seats(product.seats)?;
    let inserted: Option<ProductColumns> = sqlx::query_as(concat!(
        "insert into products (org_id, code, name, seats, auto_assign, created_at)
         values ($1, $2, $3, $4, $5, $6) on conflict (org_id, code) do nothing returning ",
        product_columns!()
    ))
    .bind(org.0)
    .bind(&product.code)
    .bind(&product.name)
    .bind(product.seats)
    .bind(product.auto_assign)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    inserted
        .map(Product::from)
        .ok_or_else(|| StoreError::Conflict(format!("a product with code {:?} already exists", product.code)))
}

fn device_from((serial, first_seen, last_seen, seats_assigned): (String, Timestamp, Timestamp, i64)) -> Device {
    Device { serial, first_seen, last_seen, seats_assigned }
}

impl LicenseStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn bootstrap(&self) -> Result<Option<NewOrganization>> {
        let mut tx = self.begin().await?;
        // Serializes concurrent first starts of several processes.
        sqlx::query("select pg_advisory_xact_lock(7372501)").execute(&mut *tx).await?;
        let any: Option<i64> = sqlx::query_scalar("select id from organizations limit 1").fetch_optional(&mut *tx).await?;
        if any.is_some() {
            return Ok(None);
        }
        let now = now();
        let Some((id, org)) = insert_organization(&mut tx, DEFAULT_ORGANIZATION, now).await? else {
            return Ok(None);
        };
        insert_product(&mut tx, id, &demo_product(), now).await?;
        tx.commit().await?;
        Ok(Some(org))
    }

    #[tracing::instrument(skip_all)]
    async fn create_organization(&self, name: &str) -> Result<NewOrganization> {
        validate::name("organization name", name)?;
        let mut conn = self.pool.acquire().await?;
        match insert_organization(&mut conn, name, now()).await? {
            Some((_, org)) => Ok(org),
            None => Err(StoreError::Conflict(format!("an organization named {name:?} already exists"))),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn organizations(&self) -> Result<Vec<OrganizationSummary>> {
        let rows: Vec<(String, i64, i64, Timestamp)> = sqlx::query_as(
            "select o.name,
                    (select count(*) from products p where p.org_id = o.id),
                    (select count(*) from devices d where d.org_id = o.id),
                    o.created_at
             from organizations o order by o.name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, products, devices, created_at)| OrganizationSummary { name, products, devices, created_at })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn organization_by_name(&self, name: &str) -> Result<Organization> {
        let id: Option<i64> = sqlx::query_scalar("select id from organizations where name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        id.map(|id| Organization { id: OrgId(id), name: name.to_owned() })
            .ok_or_else(|| StoreError::UnknownOrganization(name.to_owned()))
    }

    #[tracing::instrument(skip_all)]
    async fn add_product(&self, org: OrgId, product: &NewProduct, by: Actor) -> Result<Product> {
        let now = now();
        let mut tx = self.begin().await?;
        let added = insert_product(&mut tx, org, product, now).await?;
        let detail = format!("{} seats, auto-assign {}", added.seats, on_off(added.auto_assign));
        record(&mut tx, org, now, Change::new(by, ActivityKind::ProductAdded).product(&added.code).detail(detail)).await?;
        tx.commit().await?;
        Ok(added)
    }

    #[tracing::instrument(skip_all)]
    async fn set_seats(&self, org: OrgId, code: &str, seats: i64, by: Actor) -> Result<Product> {
        validate::seats(seats)?;
        let mut tx = self.begin().await?;
        let before: Option<i64> = sqlx::query_scalar("select seats from products where org_id = $1 and code = $2 for update")
            .bind(org.0)
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
        let before = before.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        let product: ProductColumns = sqlx::query_as(concat!(
            "update products set seats = $1 where org_id = $2 and code = $3 returning ",
            product_columns!()
        ))
        .bind(seats)
        .bind(org.0)
        .bind(code)
        .fetch_one(&mut *tx)
        .await?;
        let detail = format!("seats {before} → {seats}");
        record(&mut tx, org, now(), Change::new(by, ActivityKind::SeatsChanged).product(code).detail(detail)).await?;
        tx.commit().await?;
        Ok(Product::from(product))
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate_admin(&self, admin_key: &str) -> Result<Option<Organization>> {
        if !keys::well_formed(KeyKind::Admin, admin_key) {
            return Ok(None);
        }
        let row: Option<(i64, String)> = sqlx::query_as("select id, name from organizations where admin_key_hash = $1")
            .bind(keys::digest(admin_key))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(id, name)| Organization { id: OrgId(id), name }))
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate_product(&self, product_key: &str) -> Result<Option<OrgId>> {
        if !keys::well_formed(KeyKind::Product, product_key) {
            return Ok(None);
        }
        self.product_keys.ask(keys::digest(product_key)).await
    }

    #[tracing::instrument(skip_all)]
    async fn settings(&self, org: OrgId) -> Result<Settings> {
        let (organization_name, product_key): (String, String) =
            sqlx::query_as("select name, product_key from organizations where id = $1")
                .bind(org.0)
                .fetch_optional(&self.pool)
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
        sqlx::query("delete from sessions where expires_at <= $1").bind(now).execute(&self.pool).await?;
        sqlx::query("insert into sessions (token_hash, org_id, created_at, expires_at) values ($1, $2, $3, $4)")
            .bind(keys::digest(&session_id))
            .bind(org.0)
            .bind(now)
            .bind(expiry(now, lifetime))
            .execute(&self.pool)
            .await?;
        Ok(session_id)
    }

    #[tracing::instrument(skip_all)]
    async fn session(&self, session_id: &str) -> Result<Option<Organization>> {
        if !keys::well_formed(KeyKind::Session, session_id) {
            return Ok(None);
        }
        let row: Option<(i64, String)> = sqlx::query_as(
            "select o.id, o.name from sessions s join organizations o on o.id = s.org_id
             where s.token_hash = $1 and s.expires_at > $2",
        )
        .bind(keys::digest(session_id))
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, name)| Organization { id: OrgId(id), name }))
    }

    #[tracing::instrument(skip_all)]
    async fn end_session(&self, session_id: &str) -> Result<()> {
        sqlx::query("delete from sessions where token_hash = $1")
            .bind(keys::digest(session_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn set_session_flash(&self, session_id: &str, flash: &[u8]) -> Result<()> {
        sqlx::query("update sessions set flash = $1 where token_hash = $2")
            .bind(flash)
            .bind(keys::digest(session_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn take_session_flash(&self, session_id: &str) -> Result<Option<Vec<u8>>> {
        if !keys::well_formed(KeyKind::Session, session_id) {
            return Ok(None);
        }
        // One statement: the row is locked, so two pages loading at once
        // cannot both take the message.
        let flash: Option<Vec<u8>> = sqlx::query_scalar(
            "with taken as (
                 select token_hash, flash from sessions
                 where token_hash = $1 and expires_at > now() and flash is not null
                 for update
             )
             update sessions s set flash = null from taken
             where s.token_hash = taken.token_hash
             returning taken.flash",
        )
        .bind(keys::digest(session_id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(flash)
    }

    #[tracing::instrument(skip_all)]
    async fn products(&self, org: OrgId) -> Result<Vec<Product>> {
        let rows: Vec<ProductColumns> =
            sqlx::query_as(concat!("select ", product_columns!(), " from products where org_id = $1 order by name, code"))
                .bind(org.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(Product::from).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn product(&self, org: OrgId, code: &str) -> Result<Product> {
        let mut conn = self.pool.acquire().await?;
        Ok(fetch_product(&mut conn, org, code).await?.product)
    }

    #[tracing::instrument(skip_all)]
    async fn set_auto_assign(&self, org: OrgId, code: &str, auto_assign: bool, by: Actor) -> Result<Product> {
        let mut tx = self.begin().await?;
        let row: Option<ProductColumns> = sqlx::query_as(concat!(
            "update products set auto_assign = $1 where org_id = $2 and code = $3 returning ",
            product_columns!()
        ))
        .bind(auto_assign)
        .bind(org.0)
        .bind(code)
        .fetch_optional(&mut *tx)
        .await?;
        let product = row.map(Product::from).ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        let detail = format!("auto-assign {}", on_off(auto_assign));
        record(&mut tx, org, now(), Change::new(by, ActivityKind::AutoAssignChanged).product(code).detail(detail)).await?;
        tx.commit().await?;
        Ok(product)
    }

    #[tracing::instrument(skip_all)]
    async fn policy(&self, org: OrgId, code: &str) -> Result<ProductPolicy> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("select license_days, reclaim_after_days from products where org_id = $1 and code = $2")
                .bind(org.0)
                .bind(code)
                .fetch_optional(&self.pool)
                .await?;
        let (license_days, reclaim_after_days) = row.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        Ok(ProductPolicy { license_days, reclaim_after_days })
    }

    #[tracing::instrument(skip_all)]
    async fn policies(&self, org: OrgId) -> Result<Vec<(String, ProductPolicy)>> {
        let rows: Vec<(String, i64, Option<i64>)> =
            sqlx::query_as("select code, license_days, reclaim_after_days from products where org_id = $1 order by code")
                .bind(org.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(policy_of).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn update_policy(&self, org: OrgId, code: &str, update: &PolicyUpdate, by: Actor) -> Result<ProductPolicy> {
        update.validate()?;
        let mut tx = self.begin().await?;
        let before: Option<(i64, Option<i64>)> = sqlx::query_as(
            "select license_days, reclaim_after_days from products where org_id = $1 and code = $2 for update",
        )
        .bind(org.0)
        .bind(code)
        .fetch_optional(&mut *tx)
        .await?;
        let (license_days, reclaim_after_days) = before.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        let before = ProductPolicy { license_days, reclaim_after_days };
        let (license_days, reclaim_after_days): (i64, Option<i64>) = sqlx::query_as(
            "update products set license_days = coalesce($1, license_days),
                    reclaim_after_days = case when $2 then $3 else reclaim_after_days end
             where org_id = $4 and code = $5
             returning license_days, reclaim_after_days",
        )
        .bind(update.license_days)
        .bind(update.reclaim_after_days.is_some())
        .bind(update.reclaim_after_days.flatten())
        .bind(org.0)
        .bind(code)
        .fetch_one(&mut *tx)
        .await?;
        let after = ProductPolicy { license_days, reclaim_after_days };
        let change = Change::new(by, ActivityKind::PolicyChanged).product(code).detail(before.changes_to(&after));
        record(&mut tx, org, now(), change).await?;
        tx.commit().await?;
        Ok(after)
    }

    #[tracing::instrument(skip_all)]
    async fn license_terms(&self, org: OrgId, code: &str) -> Result<LicenseTerms> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "select o.name, p.license_days from products p join organizations o on o.id = p.org_id
             where p.org_id = $1 and p.code = $2",
        )
        .bind(org.0)
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        let (organization, license_days) = row.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        Ok(LicenseTerms { organization, license_days })
    }

    #[tracing::instrument(skip_all)]
    async fn activity(&self, org: OrgId, filter: &ActivityFilter) -> Result<Page<Activity>> {
        let limit = PageRequest { after: None, limit: filter.limit }.clamped_limit();
        let mut select = activity_query(org, filter, limit, |at| at);
        let rows: Vec<ActivityRow> = select.build_query_as().fetch_all(&self.pool).await?;
        Ok(activity_page(rows, limit))
    }

    /// One transaction per seat, each locking the device's row first as
    /// every seat change does (see the module's lock order), and checking
    /// again under the lock that the device is still idle.
    #[tracing::instrument(skip_all)]
    async fn reclaim_idle_seats(&self, now: Timestamp) -> Result<u64> {
        const SLICE: i64 = 500;
        // This process's `last seen` times still in memory first; another
        // process's are recent (see `arrive`), never days old.
        self.flush().await?;
        let mut reclaimed = 0;
        loop {
            let idle: Vec<(i64, i64)> = sqlx::query_as(
                "select a.product_id, a.device_id
                 from products p
                 join assignments a on a.product_id = p.id
                 join devices d on d.id = a.device_id
                 where p.reclaim_after_days is not null
                   and d.last_seen < $1 - p.reclaim_after_days * interval '1 day'
                 limit $2",
            )
            .bind(now)
            .bind(SLICE)
            .fetch_all(&self.pool)
            .await?;
            for &(product, device) in &idle {
                let mut tx = self.begin().await?;
                sqlx::query("select id from devices where id = $1 for update").bind(device).execute(&mut *tx).await?;
                let freed: Option<(i64, String, String, i64)> = sqlx::query_as(
                    "delete from assignments a using products p, devices d
                     where a.product_id = $1 and a.device_id = $2 and p.id = a.product_id and d.id = a.device_id
                       and p.reclaim_after_days is not null
                       and d.last_seen < $3 - p.reclaim_after_days * interval '1 day'
                     returning p.org_id, p.code, d.serial, p.reclaim_after_days",
                )
                .bind(product)
                .bind(device)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((org, code, serial, days)) = freed {
                    sqlx::query("update products set assigned = assigned - 1 where id = $1")
                        .bind(product)
                        .execute(&mut *tx)
                        .await?;
                    let change = Change::new(Actor::Reclaim, ActivityKind::SeatReclaimed).product(&code).serial(&serial);
                    record(&mut tx, OrgId(org), now, change.detail(format!("not seen for {days} days"))).await?;
                    reclaimed += 1;
                }
                tx.commit().await?;
            }
            if (idle.len() as i64) < SLICE {
                return Ok(reclaimed);
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn snapshot_usage(&self, now: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "insert into seat_snapshots (product_id, day, seats, assigned)
             select id, $1, seats, assigned from products
             on conflict (product_id, day) do update set seats = excluded.seats, assigned = excluded.assigned",
        )
        .bind(day_of(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn usage(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, UsagePoint)>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "select p.code, s.day, s.seats, s.assigned
             from products p join seat_snapshots s on s.product_id = p.id
             where p.org_id = $1 and s.day >= $2
             order by p.code, s.day",
        )
        .bind(org.0)
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(code, day, seats, assigned)| (code, UsagePoint { day, seats, assigned })).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn seat_totals(&self) -> Result<Vec<SeatTotal>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "select o.name, p.code, p.seats, p.assigned from products p join organizations o on o.id = p.org_id
             order by o.name, p.code",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(seat_total).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn prune_activity(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("delete from activity where at < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        type Row = (String, Vec<u8>, Vec<u8>, Timestamp, Option<Timestamp>);
        let rows: Vec<Row> = sqlx::query_as(
            "select kid, secret, public, created_at, retired_at from signing_keys
             order by retired_at is not null, created_at desc, id desc",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kid, secret, public, created_at, retired_at)| StoredSigningKey {
                kid,
                secret,
                public,
                created_at,
                retired_at,
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn add_signing_key(&self, key: &StoredSigningKey, retire_active: bool) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        if retire_active {
            // Locks the active key's row: two rotations at once queue here.
            sqlx::query("update signing_keys set retired_at = $1 where retired_at is null")
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(
            "insert into signing_keys (kid, secret, public, created_at) values ($1, $2, $3, $4) on conflict do nothing",
        )
        .bind(&key.kid)
        .bind(&key.secret)
        .bind(&key.public)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn replace_signing_secret(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let done = sqlx::query("update signing_keys set secret = $1 where kid = $2 and secret = $3")
            .bind(new)
            .bind(kid)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn holders(&self, org: OrgId, code: &str, page: &PageRequest) -> Result<Page<Holder>> {
        let mut conn = self.pool.acquire().await?;
        let product = fetch_product(&mut conn, org, code).await?;
        let limit = page.clamped_limit();
        let rows: Vec<(i64, String, Timestamp, Timestamp, Timestamp)> = sqlx::query_as(
            // Naming the organization lets the planner walk its devices in
            // serial order when the product's holders are many of them.
            "select d.id, d.serial, a.assigned_at, d.first_seen, d.last_seen
             from devices d join assignments a on a.device_id = d.id and a.product_id = $1
             where d.org_id = $4 and d.serial > $2
             order by d.serial limit $3",
        )
        .bind(product.id)
        .bind(page.after_serial())
        .bind(limit + 1)
        .bind(org.0)
        .fetch_all(&mut *conn)
        .await?;
        let holders = rows
            .into_iter()
            .map(|(id, serial, assigned_at, first_seen, last_seen)| Holder {
                serial,
                assigned_at,
                first_seen,
                last_seen: self.last_seen(id, last_seen),
            })
            .collect();
        Ok(Page::from_rows(holders, limit, |h| &h.serial))
    }

    #[tracing::instrument(skip_all)]
    async fn devices(&self, org: OrgId, query: Option<&str>, page: &PageRequest) -> Result<Page<Device>> {
        let limit = page.clamped_limit();
        let query = query.unwrap_or_default();
        // Where a short search's walk of the serial index stops this time.
        let walk_end: Option<String> = match is_short_search(query) {
            true => sqlx::query_scalar("select serial from devices where org_id = $1 and serial > $2 order by serial limit 1 offset $3")
                .bind(org.0)
                .bind(page.after_serial())
                .bind(SHORT_SEARCH_WALK - 1)
                .fetch_optional(&self.pool)
                .await?,
            false => None,
        };
        // A short search reads the serial index's range up to its walk's end
        // (the bound in the statement itself: one that may be null leaves the
        // planner without it), and its pattern in a form the trigram index
        // cannot take (with one or two characters it would read all of it).
        let sql = match (walk_end.is_some(), is_short_search(query)) {
            (true, _) => {
                "select d.id, d.serial, d.first_seen, d.last_seen,
                        (select count(*) from assignments a where a.device_id = d.id)
                 from devices d
                 where d.org_id = $1 and d.serial > $2 and d.serial <= $5 and (d.serial || '') ilike $3
                 order by d.serial limit $4"
            }
            (false, true) => {
                "select d.id, d.serial, d.first_seen, d.last_seen,
                        (select count(*) from assignments a where a.device_id = d.id)
                 from devices d
                 where d.org_id = $1 and d.serial > $2 and (d.serial || '') ilike $3
                 order by d.serial limit $4"
            }
            (false, false) => {
                "select d.id, d.serial, d.first_seen, d.last_seen,
                        (select count(*) from assignments a where a.device_id = d.id)
                 from devices d
                 where d.org_id = $1 and d.serial > $2 and d.serial ilike $3
                 order by d.serial limit $4"
            }
        };
        let mut select = sqlx::query_as(sql)
            .bind(org.0)
            .bind(page.after_serial())
            .bind(validate::contains_pattern(query))
            .bind(limit + 1);
        if let Some(end) = &walk_end {
            select = select.bind(end);
        }
        let rows: Vec<(i64, String, Timestamp, Timestamp, i64)> = select.fetch_all(&self.pool).await?;
        let devices = rows
            .into_iter()
            .map(|(id, serial, first_seen, last_seen, seats)| {
                device_from((serial, first_seen, self.last_seen(id, last_seen), seats))
            })
            .collect();
        Ok(Page::from_rows(devices, limit, |d| &d.serial).walked_to(walk_end))
    }

    #[tracing::instrument(skip_all)]
    async fn device(&self, org: OrgId, serial: &str) -> Result<DeviceDetail> {
        let mut conn = self.pool.acquire().await?;
        let row: Option<(i64, String, Timestamp, Timestamp)> =
            sqlx::query_as("select id, serial, first_seen, last_seen from devices where org_id = $1 and serial = $2")
                .bind(org.0)
                .bind(serial)
                .fetch_optional(&mut *conn)
                .await?;
        let Some((id, serial, first_seen, last_seen)) = row else {
            return Err(StoreError::UnknownDevice(serial.to_owned()));
        };
        let licenses: Vec<(String, String, bool)> = sqlx::query_as(
            "select p.code, p.name,
                    exists (select 1 from assignments a where a.product_id = p.id and a.device_id = $1)
             from products p where p.org_id = $2 order by p.name, p.code",
        )
        .bind(id)
        .bind(org.0)
        .fetch_all(&mut *conn)
        .await?;
        let seats_assigned = licenses.iter().filter(|(_, _, assigned)| *assigned).count() as i64;
        Ok(DeviceDetail {
            device: device_from((serial, first_seen, self.last_seen(id, last_seen), seats_assigned)),
            licenses: licenses
                .into_iter()
                .map(|(product, name, assigned)| DeviceLicense { product, name, assigned })
                .collect(),
        })
    }

    #[tracing::instrument(skip_all)]
    async fn delete_device(&self, org: OrgId, serial: &str, by: Actor) -> Result<()> {
        let mut tx = self.begin().await?;
        delete_device_in(&mut tx, org, serial, by).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn ignore_device(&self, org: OrgId, serial: &str, by: Actor) -> Result<bool> {
        validate::serial(serial)?;
        let mut tx = self.begin().await?;
        let removed = ignore_device_in(&mut tx, org, serial, by).await?;
        tx.commit().await?;
        Ok(removed)
    }

    #[tracing::instrument(skip_all)]
    async fn ignored(&self, org: OrgId, page: &PageRequest) -> Result<Page<IgnoredSerial>> {
        let limit = page.clamped_limit();
        let rows: Vec<(String, Timestamp)> = sqlx::query_as(
            "select serial, ignored_at from ignored_serials
             where org_id = $1 and serial > $2 order by serial limit $3",
        )
        .bind(org.0)
        .bind(page.after_serial())
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.into_iter().map(|(serial, ignored_at)| IgnoredSerial { serial, ignored_at }).collect();
        Ok(Page::from_rows(items, limit, |i| &i.serial))
    }

    #[tracing::instrument(skip_all)]
    async fn unignore(&self, org: OrgId, serial: &str, by: Actor) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("delete from ignored_serials where org_id = $1 and serial = $2")
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
        let mut tx = self.begin().await?;
        let outcome = assign_in(&mut tx, org, serial, code, by).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    #[tracing::instrument(skip_all)]
    async fn unassign(&self, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<()> {
        let mut tx = self.begin().await?;
        unassign_in(&mut tx, org, serial, code, by).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Each slice in serial order, its device rows locked first in that
    /// order: the lock order of check-in groups (devices by serial, then
    /// products), so the two cannot deadlock.
    #[tracing::instrument(skip_all)]
    async fn bulk(&self, org: OrgId, action: BulkAction, product: &str, serials: &[String], by: Actor)
    -> Result<Vec<Result<Assigned>>> {
        let mut outcomes = Vec::with_capacity(serials.len());
        for slice in serials.chunks(bulk::SLICE) {
            let mut slice = slice.to_vec();
            slice.sort();
            let mut tx = self.begin().await?;
            sqlx::query("select id from devices where org_id = $1 and serial = any($2) order by serial for update")
                .bind(org.0)
                .bind(&slice)
                .execute(&mut *tx)
                .await?;
            for serial in &slice {
                let outcome = match action {
                    BulkAction::Assign => assign_in(&mut tx, org, serial, product, by).await,
                    BulkAction::Unassign => unassign_in(&mut tx, org, serial, product, by).await.map(|()| Assigned::Newly),
                    BulkAction::Delete => delete_device_in(&mut tx, org, serial, by).await.map(|()| Assigned::Newly),
                    BulkAction::Ignore => ignore_device_in(&mut tx, org, serial, by).await.map(|_| Assigned::Newly),
                };
                outcomes.push(bulk::refused_or_failed(outcome)?);
            }
            tx.commit().await?;
        }
        Ok(outcomes)
    }

    #[tracing::instrument(skip_all)]
    async fn arrive(&self, product_key: &str, code: &str, serial: &str) -> Result<Arrival> {
        if !keys::well_formed(KeyKind::Product, product_key) {
            return Ok(Arrival::UnknownKey);
        }
        let asked = batch::Arrival { digest: keys::digest(product_key), code: code.to_owned(), serial: serial.to_owned() };
        Ok(match self.arrivals.ask(asked).await? {
            None => Arrival::UnknownKey,
            Some((org, held)) => Arrival::Arrived {
                org,
                // A device unseen for a while takes the full decision, which
                // writes its `last seen` before answering: a reclaim of idle
                // seats in any process then sees it, instead of a time
                // waiting in this process's memory.
                held: held
                    .filter(|&(_, _, last_seen)| now() - last_seen < chrono::Duration::hours(1))
                    .map(|(device_id, first_seen, _)| HeldSeat { org, device_id, first_seen, seen: 0 }),
            },
        })
    }

    async fn check_in_held(&self, code: &str, serial: &str, seat: HeldSeat) -> Result<CheckIn> {
        let now = now();
        self.last_seen.touch(seat.device_id, now.timestamp_millis());
        Ok(CheckIn::held(code, serial, seat.first_seen, now))
    }

    async fn check_in(&self, org: OrgId, code: &str, serial: &str) -> Result<CheckIn> {
        validate::serial(serial)?;
        let asked = group::NewCheckIn { org, code: code.to_owned(), serial: serial.to_owned() };
        self.new_devices.ask(asked).await?.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))
    }
}

/// How often the waiting `last seen` times are written: often, so that each
/// write is small. Written every half second (as SQLite's are), a fleet's
/// times came in bursts of thousands of row updates that held up check-ins
/// for hundreds of milliseconds (p99 260–540 ms against 16 ms without them,
/// `bench/run.sh`).
const PG_FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Writes waiting `last seen` times: one statement per 250 devices; a device
/// deleted meanwhile is simply not found. Each statement locks its rows in
/// the order a group of check-ins does (organization, then serial, whose
/// collation is "C": bytes, as the groups sort them), so the two cannot
/// deadlock.
// One admin change each, inside a transaction the caller commits (alone,
// or a bulk action's slice of devices).
async fn delete_device_in(tx: &mut PgConnection, org: OrgId, serial: &str, by: Actor) -> Result<()> {
    let device = locked_device(tx, org, serial).await?;
    delete_locked_device(tx, device).await?;
    record(tx, org, now(), Change::new(by, ActivityKind::DeviceDeleted).serial(serial)).await?;
    Ok(())
}

async fn ignore_device_in(tx: &mut PgConnection, org: OrgId, serial: &str, by: Actor) -> Result<bool> {
    // Waits for check-ins of this serial under way, and holds new ones off
    // until the serial is on the list (see `check_in`).
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 0))")
        .bind(org.0)
        .bind(serial)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "insert into ignored_serials (org_id, serial, ignored_at) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(org.0)
    .bind(serial)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let device = lock_device(tx, org, serial).await?;
    let mut change = Change::new(by, ActivityKind::DeviceIgnored).serial(serial);
    if let Some(device) = device {
        delete_locked_device(tx, device).await?;
        change = change.detail("the recorded device was removed");
    }
    record(tx, org, now(), change).await?;
    Ok(device.is_some())
}

async fn assign_in(tx: &mut PgConnection, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<Assigned> {
    let device = locked_device(tx, org, serial).await?;
    let product = fetch_product(tx, org, code).await?;
    let held: Option<i32> = sqlx::query_scalar("select 1 from assignments where product_id = $1 and device_id = $2")
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
    sqlx::query("delete from revocations where device_id = $1 and product_id = $2")
        .bind(device)
        .bind(product.id)
        .execute(&mut *tx)
        .await?;
    Ok(outcome)
}

async fn unassign_in(tx: &mut PgConnection, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<()> {
    let device = locked_device(tx, org, serial).await?;
    let product = fetch_product(tx, org, code).await?;
    let freed = sqlx::query("delete from assignments where product_id = $1 and device_id = $2")
        .bind(product.id)
        .bind(device)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if freed == 1 {
        sqlx::query("update products set assigned = assigned - 1 where id = $1")
            .bind(product.id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "insert into revocations (device_id, product_id, revoked_at) values ($1, $2, $3)
         on conflict (device_id, product_id) do update set revoked_at = excluded.revoked_at",
    )
    .bind(device)
    .bind(product.id)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let change = Change::new(by, ActivityKind::SeatRevoked).product(code).serial(serial);
    record(tx, org, now(), if freed == 1 { change } else { change.detail("held no seat; auto-assign blocked") })
        .await?;
    Ok(())
}

async fn write_touches(pool: &PgPool, batch: Vec<(i64, i64)>) -> Result<()> {
    for chunk in batch.chunks(250) {
        let (ids, ats): (Vec<i64>, Vec<Timestamp>) =
            chunk.iter().map(|&(id, at)| (id, DateTime::from_timestamp_millis(at).unwrap_or_default())).unzip();
        sqlx::query(
            "with seen as (
                 select d.id, seen.at
                 from unnest($1::bigint[], $2::timestamptz[]) seen(id, at)
                 join devices d on d.id = seen.id
                 order by d.org_id, d.serial
                 for no key update of d
             )
             update devices d set last_seen = greatest(d.last_seen, seen.at)
             from seen where d.id = seen.id",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(pool)
        .await?;
    }
    Ok(())
}
