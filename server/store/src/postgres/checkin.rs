//! Check-ins, the hot path, on PostgreSQL.

use super::*;

impl CheckIns for PgStore {
    #[tracing::instrument(skip_all)]
    async fn first_look(&self, product_key: &str, code: &str, serial: &str) -> Result<FirstLook> {
        if !keys::well_formed(KeyKind::Product, product_key) {
            return Ok(FirstLook::UnknownKey);
        }
        let asked = batch::FirstLook { digest: keys::digest(product_key), code: code.to_owned(), serial: serial.to_owned() };
        Ok(match self.first_looks.ask(asked).await? {
            None => FirstLook::UnknownKey,
            Some((org, held)) => FirstLook::Arrived { org, held: held.and_then(|held| answerable(org, held, now())) },
        })
    }

    async fn check_in_held(&self, code: &str, serial: &str, seat: HeldSeat) -> Result<CheckIn> {
        let now = now();
        self.last_seen.seen(seat.device_id, now.timestamp_millis());
        Ok(CheckIn::held(code, serial, &seat, now))
    }

    async fn check_in_or_wait(&self, org: OrgId, code: &str, serial: &str, queue: bool) -> Result<CheckIn> {
        self.decide(org, code, serial, queue).await
    }

    /// The device's row is locked first, as every seat change does.
    #[tracing::instrument(skip_all)]
    async fn release(&self, org: OrgId, code: &str, serial: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let product = fetch_product_to_decide(&mut tx, org, code).await?;
        let Some(device) = lock_device(&mut tx, org, serial).await? else { return Ok(false) };
        let freed = sqlx::query("delete from assignments where product_id = $1 and device_id = $2 and lease_until is not null")
            .bind(product.id)
            .bind(device)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if freed == 0 {
            return Ok(false);
        }
        sqlx::query("update products set assigned = assigned - 1 where id = $1").bind(product.id).execute(&mut *tx).await?;
        record(&mut tx, org, now(), audit::seat_released(code, serial)).await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl PgStore {
    /// The check-in decided in the next group.
    pub(crate) async fn decide(&self, org: OrgId, code: &str, serial: &str, queue: bool) -> Result<CheckIn> {
        validate::serial(serial)?;
        let asked = group::UndecidedCheckIn { org, code: code.to_owned(), serial: serial.to_owned(), queue };
        self.seat_decisions.ask(asked).await?.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))
    }
}

/// The seat the first look found, if the check-in may be answered from it:
/// not when the device has been unseen for an hour or more, nor when its
/// floating seat's lease is due to be renewed. Those take the full decision,
/// which writes before answering: the `last seen` that a reclaim of idle
/// seats in any process must see (instead of a time waiting in this
/// process's memory), or the new lease.
fn answerable(org: OrgId, (device_id, first_seen, last_seen, floating): batch::Held, now: Timestamp) -> Option<HeldSeat> {
    let lease = match floating {
        // A floating product's seat with no lease yet (it became floating
        // while the seat's device was busy elsewhere): the decision gives it one.
        Some((None, _)) => return None,
        Some((Some(until), minutes)) => Some(Lease::ending(until, minutes)),
        None => None,
    };
    if now - last_seen >= chrono::Duration::hours(1) || lease.is_some_and(|lease| !lease.holds_at(now)) {
        return None;
    }
    Some(HeldSeat { org, device_id, first_seen, lease, seen: 0 })
}

/// How often the waiting `last seen` times are written: often, so that each
/// write is small; large bursts of row updates held check-ins up (measured
/// in docs/performance.md).
pub(super) const PG_FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Writes waiting `last seen` times: one statement per 250 devices; a device
/// deleted meanwhile is simply not found. Each statement locks its rows in
/// the order a group of check-ins does (organization, then serial, whose
/// collation is "C": bytes, as the groups sort them), so the two cannot
/// deadlock.
pub(super) async fn write_last_seen(pool: &PgPool, batch: Vec<(i64, i64)>) -> Result<()> {
    for chunk in batch.chunks(250) {
        let (ids, ats): (Vec<i64>, Vec<Timestamp>) =
            chunk.iter().map(|&(id, at)| (id, Timestamp::from_millis(at))).unzip();
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
