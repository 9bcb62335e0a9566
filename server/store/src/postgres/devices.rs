//! Devices and the ignore list, on PostgreSQL.

use super::*;

impl Devices for PgStore {
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
        // The device list's columns, its seats held now counted, for `where`.
        macro_rules! devices_where {
            ($where:literal) => {
                concat!(
                    "select d.id, d.serial, d.first_seen, d.last_seen,
                            (select count(*) from assignments a where a.device_id = d.id and ",
                    held_now!(),
                    ") from devices d where ",
                    $where,
                    " order by d.serial limit $4"
                )
            };
        }
        let sql = match (walk_end.is_some(), is_short_search(query)) {
            (true, _) => devices_where!("d.org_id = $1 and d.serial > $2 and d.serial <= $5 and (d.serial || '') ilike $3"),
            (false, true) => devices_where!("d.org_id = $1 and d.serial > $2 and (d.serial || '') ilike $3"),
            (false, false) => devices_where!("d.org_id = $1 and d.serial > $2 and d.serial ilike $3"),
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
        let licenses: Vec<(String, String, bool)> = sqlx::query_as(concat!(
            "select p.code, p.name,
                    exists (select 1 from assignments a where a.product_id = p.id and a.device_id = $1 and ",
            held_now!(),
            ") from products p where p.org_id = $2 order by p.name, p.code"
        ))
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
        record(&mut tx, org, now(), audit::device_unignored(by, serial)).await?;
        tx.commit().await?;
        Ok(())
    }
}

// One admin change each, inside a transaction the caller commits (alone,
// or a bulk action's slice of devices).
pub(super) async fn delete_device_in(tx: &mut PgConnection, org: OrgId, serial: &str, by: Actor) -> Result<()> {
    let device = locked_device(tx, org, serial).await?;
    delete_locked_device(tx, device).await?;
    record(tx, org, now(), audit::device_deleted(by, serial)).await?;
    Ok(())
}

pub(super) async fn ignore_device_in(tx: &mut PgConnection, org: OrgId, serial: &str, by: Actor) -> Result<bool> {
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
    if let Some(device) = device {
        delete_locked_device(tx, device).await?;
    }
    record(tx, org, now(), audit::device_ignored(by, serial, device.is_some())).await?;
    Ok(device.is_some())
}

/// Deletes a device whose row the caller has locked, freeing every seat it held.
pub(super) async fn delete_locked_device(conn: &mut PgConnection, device_id: i64) -> Result<()> {
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
