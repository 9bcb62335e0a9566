//! Check-ins that need a seat decision (a device new to the product, or one
//! that does not hold its seat), decided in groups: one transaction, a few
//! statements and one commit for every check-in that arrived while the
//! previous group was deciding. The decisions themselves are
//! [`crate::group::decide`], shared with SQLite.
//!
//! Locks are taken in the order every other transaction takes them (see the
//! module comment of [`super`]): the serials' shared advisory locks, then the
//! device rows (in one order for every group, so two groups cannot deadlock),
//! then the product rows by id. A group that fails anyway (a deadlock with
//! an admin's bulk action, say) is tried again one check-in at a time by
//! [`super::batch`], each in a transaction of its own.

use std::collections::HashMap;

use sqlx::PgPool;

use super::batch::Statement;
use crate::group::{self, Asked, ProductRow, Recorded, Standing};
use super::free_ended_leases;
use crate::{ActivityKind, Actor, CheckIn, OrgId, Product, Result, Timestamp, now};

/// A check-in waiting for its group.
pub(crate) struct UndecidedCheckIn {
    pub org: OrgId,
    pub code: String,
    pub serial: String,
    pub queue: bool,
}

/// Answers each check-in with its decision, or nothing when its product does
/// not exist (nothing is recorded then).
pub(crate) struct SeatDecisions;

impl Statement for SeatDecisions {
    type Asked = UndecidedCheckIn;
    type Answer = CheckIn;

    const WAIT_FOR_PREVIOUS: std::time::Duration = std::time::Duration::ZERO;

    async fn run(pool: &PgPool, batch: &[UndecidedCheckIn]) -> Result<Vec<Option<CheckIn>>> {
        let group: Vec<Asked> =
            batch.iter().map(|asked| Asked { org: asked.org, code: &asked.code, serial: &asked.serial, queue: asked.queue }).collect();
        let at = now();
        let mut tx = pool.begin().await?;

        // Which products exist, before anything is locked.
        let wanted = group::products_wanted(&group);
        let products = read_products(&mut tx, &wanted, Lock::No).await?;
        let to_record = group::devices_to_record(&group, &products);
        let (orgs, serials): (Vec<i64>, Vec<&str>) = to_record.iter().map(|(org, serial)| (org.0, *serial)).unzip();

        // An ignore of a serial takes its advisory lock exclusively: it waits
        // for this group, or this group for it, and the upsert below (its own
        // statement, with a snapshot taken after the wait) sees the ignore.
        sqlx::query(
            "select count(pg_advisory_xact_lock_shared(key)) from (
                 select hashtextextended(org_id::text || ':' || serial, 0) as key
                 from unnest($1::bigint[], $2::text[]) asked(org_id, serial)
                 order by key
             ) keys",
        )
        .bind(&orgs)
        .bind(&serials)
        .execute(&mut *tx)
        .await?;
        // Records the devices, locking their rows in the order given.
        let recorded: Vec<(i64, i64, String, Timestamp, Timestamp)> = sqlx::query_as(
            "insert into devices (org_id, serial, first_seen, last_seen)
             select asked.org_id, asked.serial, $3, $3
             from unnest($1::bigint[], $2::text[]) with ordinality asked(org_id, serial, i)
             where not exists (select 1 from ignored_serials s where s.org_id = asked.org_id and s.serial = asked.serial)
             order by asked.i
             on conflict (org_id, serial) do update set last_seen = greatest(devices.last_seen, excluded.last_seen)
             returning id, org_id, serial, first_seen, last_seen",
        )
        .bind(&orgs)
        .bind(&serials)
        .bind(at)
        .fetch_all(&mut *tx)
        .await?;
        let devices: HashMap<(OrgId, &str), Recorded> = recorded
            .iter()
            .map(|(id, org, serial, first_seen, last_seen)| {
                ((OrgId(*org), serial.as_str()), Recorded { id: *id, first_seen: *first_seen, last_seen: *last_seen })
            })
            .collect();

        // Then the products' rows, by id, read again now that they are locked:
        // their seat counts cannot move until this group commits.
        // Only those the first read found: their devices are the ones recorded.
        let found = products;
        let mut products = read_products(&mut tx, &wanted, Lock::ForUpdate).await?;
        products.retain(|key, _| found.contains_key(key));
        let (pair_products, pair_devices): (Vec<i64>, Vec<i64>) =
            group::pairs_to_look_up(&group, &products, &devices).into_iter().unzip();
        let standings: HashMap<(i64, i64), Standing> = sqlx::query_as(
            "select pair.product_id, pair.device_id, a.device_id is not null, a.lease_until,
                    exists (select 1 from revocations r where r.product_id = pair.product_id and r.device_id = pair.device_id)
             from unnest($1::bigint[], $2::bigint[]) pair(product_id, device_id)
             left join assignments a on a.product_id = pair.product_id and a.device_id = pair.device_id",
        )
        .bind(&pair_products)
        .bind(&pair_devices)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(product, device, held, lease_until, revoked)| ((product, device), Standing { held, revoked, lease_until }))
        .collect();

        // A floating product a device may take a seat of first frees its ended leases.
        let freeing = group::freeing_ended_leases(&group, &products, &devices, &standings, at);
        if !freeing.is_empty() {
            let keep: Vec<i64> = devices.values().map(|device| device.id).collect();
            for ((org, _), row) in products.iter_mut().filter(|(_, row)| freeing.contains(&row.id)) {
                row.product.assigned -= free_ended_leases(&mut tx, *org, row, at, &keep).await?;
            }
        }

        // The waiting lines the decisions need, read under the products' locks.
        let (needed, cutoffs): (Vec<i64>, Vec<Timestamp>) = group::lines_needed(&group, &products, at).into_iter().unzip();
        let mut lines = group::Lines::new();
        if !needed.is_empty() {
            let waiters: Vec<(i64, i64)> = sqlx::query_as(
                "select w.product_id, w.device_id
                 from unnest($1::bigint[], $2::timestamptz[]) needed(product_id, cutoff)
                 join waiting w on w.product_id = needed.product_id and w.last_asked > needed.cutoff
                 order by w.product_id, w.since, w.device_id",
            )
            .bind(&needed)
            .bind(&cutoffs)
            .fetch_all(&mut *tx)
            .await?;
            for (product, device) in waiters {
                lines.entry(product).or_default().push(device);
            }
        }

        let decided = group::decide(&group, &products, &devices, &standings, &lines, at);
        if !decided.joined.is_empty() {
            // The back of the line, from now (a row left by a device that
            // had stopped asking is replaced).
            let (ids, device_ids): (Vec<i64>, Vec<i64>) = decided.joined.iter().copied().unzip();
            sqlx::query(
                "insert into waiting (product_id, device_id, since, last_asked)
                 select product_id, device_id, $3, $3 from unnest($1::bigint[], $2::bigint[]) joined(product_id, device_id)
                 on conflict (product_id, device_id) do update set since = excluded.since, last_asked = excluded.last_asked",
            )
            .bind(&ids)
            .bind(&device_ids)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        if !decided.waiting.is_empty() {
            let (ids, device_ids): (Vec<i64>, Vec<i64>) = decided.waiting.iter().copied().unzip();
            sqlx::query(
                "update waiting w set last_asked = $3
                 from unnest($1::bigint[], $2::bigint[]) asking(product_id, device_id)
                 where w.product_id = asking.product_id and w.device_id = asking.device_id",
            )
            .bind(&ids)
            .bind(&device_ids)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        if !decided.refused.is_empty() {
            let ((ids, device_ids), counts): ((Vec<i64>, Vec<i64>), Vec<i64>) = decided.refused.iter().copied().unzip();
            // Counted on the product too, for the `checkin.refused` alert.
            sqlx::query(
                "with refused as (select * from unnest($1::bigint[], $2::bigint[], $3::bigint[]) r(product_id, device_id, count)),
                 counted as (
                     insert into refusals (product_id, day, device_id, count)
                     select product_id, $4, device_id, count from refused
                     on conflict (product_id, day, device_id) do update set count = refusals.count + excluded.count)
                 update products p set refused_total = p.refused_total + total.count
                 from (select product_id, sum(count) as count from refused group by product_id) total
                 where p.id = total.product_id",
            )
            .bind(&ids)
            .bind(&device_ids)
            .bind(&counts)
            .bind(crate::day_of(at))
            .execute(&mut *tx)
            .await?;
        }
        if !decided.served.is_empty() {
            let (ids, device_ids): (Vec<i64>, Vec<i64>) = decided.served.iter().copied().unzip();
            sqlx::query(
                "delete from waiting w using unnest($1::bigint[], $2::bigint[]) served(product_id, device_id)
                 where w.product_id = served.product_id and w.device_id = served.device_id",
            )
            .bind(&ids)
            .bind(&device_ids)
            .execute(&mut *tx)
            .await?;
        }
        if !decided.renewed.is_empty() {
            let ids: Vec<i64> = decided.renewed.iter().map(|seat| seat.product_id).collect();
            let device_ids: Vec<i64> = decided.renewed.iter().map(|seat| seat.device_id).collect();
            let untils: Vec<Timestamp> = decided.renewed.iter().map(|seat| seat.until).collect();
            // Every renewed seat is there: its device's row is locked, and
            // nothing takes a seat without that lock.
            let renewed = sqlx::query(
                "update assignments a set lease_until = renewed.until
                 from unnest($1::bigint[], $2::bigint[], $3::timestamptz[]) renewed(product_id, device_id, until)
                 where a.product_id = renewed.product_id and a.device_id = renewed.device_id",
            )
            .bind(&ids)
            .bind(&device_ids)
            .bind(&untils)
            .execute(&mut *tx)
            .await?;
            if renewed.rows_affected() != ids.len() as u64 {
                return Err(crate::StoreError::Unavailable("a floating seat went while its lease was renewed".into()));
            }
        }
        if !decided.taken.is_empty() {
            let (ids, counts): (Vec<i64>, Vec<i64>) = decided.taken_per_product().into_iter().unzip();
            let counted = sqlx::query(
                "update products p set assigned = p.assigned + taken.count
                 from unnest($1::bigint[], $2::bigint[]) taken(id, count)
                 where p.id = taken.id and p.assigned + taken.count <= p.seats",
            )
            .bind(&ids)
            .bind(&counts)
            .execute(&mut *tx)
            .await?;
            if counted.rows_affected() != ids.len() as u64 {
                return Err(group::seats_moved(ids[0]));
            }
            let (seat_products, seat_devices): (Vec<i64>, Vec<i64>) =
                decided.taken.iter().map(|seat| (seat.product_id, seat.device_id)).unzip();
            let leases: Vec<Option<Timestamp>> = decided.taken.iter().map(|seat| seat.lease.map(|l| l.until)).collect();
            sqlx::query(
                "insert into assignments (product_id, device_id, assigned_at, lease_until)
                 select product_id, device_id, $3, lease_until
                 from unnest($1::bigint[], $2::bigint[], $4::timestamptz[]) seat(product_id, device_id, lease_until)",
            )
            .bind(&seat_products)
            .bind(&seat_devices)
            .bind(at)
            .bind(&leases)
            .execute(&mut *tx)
            .await?;
            let orgs: Vec<i64> = decided.taken.iter().map(|seat| seat.org.0).collect();
            let codes: Vec<&str> = decided.taken.iter().map(|seat| seat.code).collect();
            let serials: Vec<&str> = decided.taken.iter().map(|seat| seat.serial).collect();
            // The audit log, and the webhooks' messages (seat.assigned).
            sqlx::query(
                "with seat as (select * from unnest($1::bigint[], $2::text[], $3::text[]) with ordinality seat(org_id, product, serial, i)),
                 logged as (
                     insert into activity (org_id, at, actor, kind, product, serial)
                     select org_id, $4, $5, $6, product, serial from seat order by i)
                 insert into webhook_outbox (webhook_id, type, at, data, next_attempt_at)
                 select w.id, $7, $4, json_build_object('product', seat.product, 'serial', seat.serial, 'by', $5::text)::text, $4
                 from seat join webhooks w on w.org_id = seat.org_id and w.events & $8 <> 0
                 order by seat.i, w.id",
            )
            .bind(&orgs)
            .bind(&codes)
            .bind(&serials)
            .bind(at)
            .bind(Actor::Device.as_str())
            .bind(ActivityKind::SeatAutoAssigned.as_str())
            .bind(crate::WebhookEvent::SeatAssigned.as_str())
            .bind(crate::WebhookEvent::SeatAssigned.bit())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(decided.answers.into_iter().map(|answer| answer.ok().map(|decision| decision.check_in)).collect())
    }
}

enum Lock {
    No,
    ForUpdate,
}

/// The products of these organizations and codes that exist, with their rows
/// locked (in id order) if asked.
async fn read_products<'a>(
    tx: &mut sqlx::PgConnection,
    wanted: &[(OrgId, &'a str)],
    lock: Lock,
) -> Result<HashMap<(OrgId, &'a str), ProductRow>> {
    let (orgs, codes): (Vec<i64>, Vec<&str>) = wanted.iter().map(|(org, code)| (org.0, *code)).unzip();
    macro_rules! select {
        () => {
            "select asked.i, p.id, p.lease_minutes, p.code, p.name, p.seats, p.assigned, p.auto_assign, p.seat_model, p.valid_until
             from unnest($1::bigint[], $2::text[]) with ordinality asked(org_id, code, i)
             join products p on p.org_id = asked.org_id and p.code = asked.code"
        };
    }
    let sql = match lock {
        Lock::No => select!(),
        Lock::ForUpdate => concat!(select!(), " order by p.id for update of p"),
    };
    let rows: Vec<(i64, i64, i64, String, String, i64, i64, bool, String, Option<chrono::NaiveDate>)> =
        sqlx::query_as(sql).bind(&orgs).bind(&codes).fetch_all(&mut *tx).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(i, id, lease_minutes, code, name, seats, assigned, auto_assign, seat_model, valid_until)| {
            let key = *wanted.get(usize::try_from(i - 1).ok()?)?;
            let product = Product::from((code, name, seats, assigned, auto_assign, seat_model, valid_until));
            Some((key, ProductRow { id, lease_minutes, product }))
        })
        .collect())
}
