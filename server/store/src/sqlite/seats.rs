//! Seats that admins and the idle-seat reclaim give and take, on SQLite.

use super::*;

impl Seats for SqliteStore {
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

    #[tracing::instrument(skip_all)]
    async fn waiting_line(&self, org: OrgId, code: &str) -> Result<Vec<Waiting>> {
        let mut conn = self.readers.acquire().await?;
        let product = org_product(&mut conn, org, code).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select d.serial, w.since from waiting w join devices d on d.id = w.device_id
             where w.product_id = ? and w.last_asked > ? order by w.since, w.device_id limit 1000",
        )
        .bind(product.id)
        .bind(millis(group::line_cutoff(&product, now())))
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().zip(1..).map(|((serial, since), position)| Waiting { position, serial, waiting_since: timestamp(since) }).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn remove_from_line(&self, org: OrgId, code: &str, serial: &str, by: Actor) -> Result<bool> {
        let mut tx = self.write().await?;
        let product = org_product(&mut tx, org, code).await?;
        let removed = sqlx::query(
            "delete from waiting where product_id = ? and device_id = (select id from devices where org_id = ? and serial = ?)",
        )
        .bind(product.id)
        .bind(org.0)
        .bind(serial)
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

    /// In transactions of at most 500 seats, so that check-ins waiting for
    /// the writer are not held up long.
    #[tracing::instrument(skip_all)]
    async fn reclaim_idle_seats(&self, now: Timestamp) -> Result<u64> {
        const SLICE: usize = 500;
        let mut reclaimed = 0;
        loop {
            // `last seen` times still in memory first: a device seen a moment
            // ago is not idle.
            self.last_seen.flush(|batch| write_last_seen(&self.writer, &self.product_keys, batch)).await?;
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
            // (`HeldSeats::unchanged_since`): a device seen since the
            // flush keeps its seat.
            self.held_seats.clear();
            let idle = candidates.iter().filter(|(_, device, .., days)| {
                self.last_seen.newest(*device, i64::MIN) < millis(now) - days * 86_400_000
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
                record(&mut tx, OrgId(*org), now, audit::seat_reclaimed(code, serial, *days)).await?;
                reclaimed += 1;
            }
            self.commit_taking_seats(tx).await?;
            if candidates.len() < SLICE {
                return Ok(reclaimed);
            }
        }
    }
}

pub(super) async fn assign_in(tx: &mut SqliteConnection, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<Assigned> {
    let device = device_id(tx, org, serial).await?;
    let product = org_product(tx, org, code).await?;
    let held: Option<Option<i64>> = sqlx::query_scalar("select lease_until from assignments where product_id = ? and device_id = ?")
        .bind(product.id)
        .bind(device)
        .fetch_optional(&mut *tx)
        .await?;
    let now = now();
    let outcome = if let Some(lease) = held.flatten().filter(|until| *until <= millis(now)).and(product.lease(now)) {
        // A floating seat whose lease has ended, not yet freed: an admin's
        // assign starts it again.
        sqlx::query("update assignments set lease_until = ? where product_id = ? and device_id = ?")
            .bind(millis(lease.until))
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
    sqlx::query("delete from revocations where device_id = ? and product_id = ?")
        .bind(device)
        .bind(product.id)
        .execute(&mut *tx)
        .await?;
    // It holds a seat: it waits no more.
    sqlx::query("delete from waiting where device_id = ? and product_id = ?").bind(device).bind(product.id).execute(&mut *tx).await?;
    Ok(outcome)
}

pub(super) async fn unassign_in(tx: &mut SqliteConnection, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<()> {
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
    record(tx, org, now(), audit::seat_revoked(by, code, serial, freed == 1)).await?;
    Ok(())
}

/// Takes a free seat of the product for the device, if there is one (for a
/// floating product, after freeing ended leases if none is). The caller
/// holds the write lock and has checked that the device holds no seat of it.
pub(super) async fn take_seat(conn: &mut SqliteConnection, org: OrgId, product: &ProductRow, device_id: i64, now: Timestamp) -> Result<bool> {
    let count = "update products set assigned = assigned + 1 where id = ? and assigned < seats";
    let mut taken = sqlx::query(count).bind(product.id).execute(&mut *conn).await?.rows_affected() == 1;
    let lease = product.lease(now);
    if !taken && lease.is_some() && free_ended_leases(conn, org, product, now, &[]).await? > 0 {
        taken = sqlx::query(count).bind(product.id).execute(&mut *conn).await?.rows_affected() == 1;
    }
    if taken {
        sqlx::query("insert into assignments (product_id, device_id, assigned_at, lease_until) values (?, ?, ?, ?)")
            .bind(product.id)
            .bind(device_id)
            .bind(millis(now))
            .bind(lease.map(|lease| millis(lease.until)))
            .execute(&mut *conn)
            .await?;
    }
    Ok(taken)
}

/// Frees the product's floating seats whose lease ended by `now` (and
/// [`group::LEASE_GRACE`] more), but for
/// those of the devices in `keep` (a group's own, which renew theirs), each
/// recorded as reclaimed; says how many. No seat that anyone was told is
/// theirs goes: an answer never promises more of a lease than is written.
pub(super) async fn free_ended_leases(conn: &mut SqliteConnection, org: OrgId, product: &ProductRow, now: Timestamp, keep: &[i64]) -> Result<i64> {
    let keep = checkin::json(keep.iter())?;
    let ended: Vec<(i64, String)> = sqlx::query_as(
        "select a.device_id, d.serial from assignments a join devices d on d.id = a.device_id
         where a.product_id = ?1 and a.lease_until <= ?2 and a.device_id not in (select value from json_each(?3))",
    )
    .bind(product.id)
    .bind(millis(now - group::LEASE_GRACE))
    .bind(&keep)
    .fetch_all(&mut *conn)
    .await?;
    if ended.is_empty() {
        return Ok(0);
    }
    sqlx::query("delete from assignments where product_id = ?1 and device_id in (select value from json_each(?2))")
        .bind(product.id)
        .bind(checkin::json(ended.iter().map(|(device, _)| device))?)
        .execute(&mut *conn)
        .await?;
    let freed = ended.len() as i64;
    sqlx::query("update products set assigned = assigned - ? where id = ?").bind(freed).bind(product.id).execute(&mut *conn).await?;
    for (_, serial) in &ended {
        record(conn, org, now, audit::lease_ended(&product.product.code, serial)).await?;
    }
    Ok(freed)
}
