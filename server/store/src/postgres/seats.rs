//! Seats that admins and the idle-seat reclaim give and take, on PostgreSQL.

use super::*;

impl Seats for PgStore {
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
    async fn waiting_line(&self, org: OrgId, code: &str) -> Result<Vec<Waiting>> {
        let mut conn = self.pool.acquire().await?;
        let product = fetch_product(&mut conn, org, code).await?;
        let rows: Vec<(String, Timestamp)> = sqlx::query_as(
            "select d.serial, w.since from waiting w join devices d on d.id = w.device_id
             where w.product_id = $1 and w.last_asked > $2 order by w.since, w.device_id limit 1000",
        )
        .bind(product.id)
        .bind(crate::group::line_cutoff(&product, now()))
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().zip(1..).map(|((serial, waiting_since), position)| Waiting { position, serial, waiting_since }).collect())
    }

    /// Under the device's row lock, as every change of its standing.
    #[tracing::instrument(skip_all)]
    async fn remove_from_line(&self, org: OrgId, code: &str, serial: &str, by: Actor) -> Result<bool> {
        let mut tx = self.begin().await?;
        let product = fetch_product(&mut tx, org, code).await?;
        let Some(device) = lock_device(&mut tx, org, serial).await? else { return Ok(false) };
        let removed = sqlx::query("delete from waiting where product_id = $1 and device_id = $2")
            .bind(product.id)
            .bind(device)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            record(&mut tx, org, now(), audit::removed_from_queue(by, code, serial)).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// One transaction per seat, each locking the device's row first as
    /// every seat change does (see the module's lock order), and checking
    /// again under the lock that the device is still idle.
    #[tracing::instrument(skip_all)]
    async fn reclaim_idle_seats(&self, now: Timestamp) -> Result<u64> {
        const SLICE: i64 = 500;
        // This process's `last seen` times still in memory first; another
        // process's are recent (see `first_look`), never days old.
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
                    record(&mut tx, OrgId(org), now, audit::seat_reclaimed(&code, &serial, days)).await?;
                    reclaimed += 1;
                }
                tx.commit().await?;
            }
            if (idle.len() as i64) < SLICE {
                return Ok(reclaimed);
            }
        }
    }
}

pub(super) async fn assign_in(tx: &mut PgConnection, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<Assigned> {
    let device = locked_device(tx, org, serial).await?;
    let product = fetch_product(tx, org, code).await?;
    let held: Option<Option<Timestamp>> =
        sqlx::query_scalar("select lease_until from assignments where product_id = $1 and device_id = $2")
            .bind(product.id)
            .bind(device)
            .fetch_optional(&mut *tx)
            .await?;
    let now = now();
    let outcome = if let Some(lease) = held.flatten().filter(|until| *until <= now).and(product.lease(now)) {
        // A floating seat whose lease has ended, not yet freed: an admin's
        // assign starts it again.
        sqlx::query("update assignments set lease_until = $1 where product_id = $2 and device_id = $3")
            .bind(lease.until)
            .bind(product.id)
            .bind(device)
            .execute(&mut *tx)
            .await?;
        record(tx, org, now, audit::seat_assigned(by, code, serial)).await?;
        Assigned::Newly
    } else if held.is_some() {
        Assigned::Already
    } else if take_seat(tx, org, &product, device, now).await? {
        record(tx, org, now, audit::seat_assigned(by, code, serial)).await?;
        Assigned::Newly
    } else {
        return Err(StoreError::NoSeatsAvailable);
    };
    sqlx::query("delete from revocations where device_id = $1 and product_id = $2")
        .bind(device)
        .bind(product.id)
        .execute(&mut *tx)
        .await?;
    // It holds a seat: it waits no more.
    sqlx::query("delete from waiting where device_id = $1 and product_id = $2").bind(device).bind(product.id).execute(&mut *tx).await?;
    Ok(outcome)
}

pub(super) async fn unassign_in(tx: &mut PgConnection, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<()> {
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
    record(tx, org, now(), audit::seat_revoked(by, code, serial, freed == 1)).await?;
    Ok(())
}

/// Takes a free seat of the product for the device, if there is one (for a
/// floating product, after freeing ended leases if none is). The caller
/// holds the device's row lock and has checked that it holds no seat of it.
pub(super) async fn take_seat(conn: &mut PgConnection, org: OrgId, product: &ProductRow, device_id: i64, now: Timestamp) -> Result<bool> {
    let count = "update products set assigned = assigned + 1 where id = $1 and assigned < seats";
    let mut taken = sqlx::query(count).bind(product.id).execute(&mut *conn).await?.rows_affected() == 1;
    let lease = product.lease(now);
    if !taken && lease.is_some() && free_ended_leases(conn, org, product, now, &[]).await? > 0 {
        taken = sqlx::query(count).bind(product.id).execute(&mut *conn).await?.rows_affected() == 1;
    }
    if taken {
        sqlx::query("insert into assignments (product_id, device_id, assigned_at, lease_until) values ($1, $2, $3, $4)")
            .bind(product.id)
            .bind(device_id)
            .bind(now)
            .bind(lease.map(|lease| lease.until))
            .execute(&mut *conn)
            .await?;
    }
    Ok(taken)
}

/// Frees the product's floating seats whose lease ended by `now` (and
/// [`crate::group::LEASE_GRACE`] more), but for
/// those of the devices in `keep` (a group's own, which renew theirs), each
/// recorded as reclaimed; says how many. No seat that anyone was told is
/// theirs goes: an answer never promises more of a lease than is written.
///
/// Each freed device's row is locked first, as every seat change does, but
/// with `skip locked`: the caller may already hold the product's lock (taken
/// after device locks everywhere else), so waiting here could deadlock; a
/// device locked by someone else is being decided for right now, and its
/// lease is left to that decision.
pub(super) async fn free_ended_leases(conn: &mut PgConnection, org: OrgId, product: &ProductRow, now: Timestamp, keep: &[i64]) -> Result<i64> {
    let freed: Vec<String> = sqlx::query_scalar(
        "with ended as (
             select d.id, d.serial from assignments a join devices d on d.id = a.device_id
             where a.product_id = $1 and a.lease_until <= $2 and a.device_id <> all($3)
             for update of d skip locked
         )
         delete from assignments a using ended
         where a.product_id = $1 and a.device_id = ended.id and a.lease_until <= $2
         returning ended.serial",
    )
    .bind(product.id)
    .bind(now - crate::group::LEASE_GRACE)
    .bind(keep)
    .fetch_all(&mut *conn)
    .await?;
    if freed.is_empty() {
        return Ok(0);
    }
    let count = freed.len() as i64;
    sqlx::query("update products set assigned = assigned - $1 where id = $2").bind(count).bind(product.id).execute(&mut *conn).await?;
    for serial in &freed {
        record(conn, org, now, audit::lease_ended(&product.product.code, serial)).await?;
    }
    Ok(count)
}
