//! Devices and the ignore list, on SQLite.

use super::*;

impl Devices for SqliteStore {
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
                    (select count(*) from assignments a where a.device_id = d.id and {held})
             from {from} left join device_seen ds on ds.device_id = d.id
             where d.org_id = ?1 and d.serial > ?2 {walk}
               and d.serial like ?3 escape '\\' {narrowed}
             order by d.serial limit ?4",
            held = held_now!(),
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
                device_from((serial, first_seen, self.last_seen.newest(id, last_seen), seats))
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
        let licenses: Vec<(String, String, bool)> = sqlx::query_as(concat!(
            "select p.code, p.name,
                    exists (select 1 from assignments a where a.product_id = p.id and a.device_id = ? and ",
            held_now!(),
            ") from products p where p.org_id = ? order by p.name, p.code"
        ))
        .bind(id)
        .bind(org.0)
        .fetch_all(&mut *conn)
        .await?;
        let seats_assigned = licenses.iter().filter(|(_, _, assigned)| *assigned).count() as i64;
        Ok(DeviceDetail {
            device: device_from((serial, first_seen, self.last_seen.newest(id, last_seen), seats_assigned)),
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
        record(&mut tx, org, now(), audit::device_unignored(by, serial)).await?;
        tx.commit().await?;
        Ok(())
    }
}

// One admin change each, inside a write transaction the caller commits
// (alone, or a bulk action's slice of devices).
pub(super) async fn delete_device_in(tx: &mut SqliteConnection, org: OrgId, serial: &str, by: Actor) -> Result<()> {
    let id = device_id(tx, org, serial).await?;
    free_all_seats(tx, id).await?;
    sqlx::query("delete from devices where id = ?").bind(id).execute(&mut *tx).await?;
    record(tx, org, now(), audit::device_deleted(by, serial)).await
}

pub(super) async fn ignore_device_in(tx: &mut SqliteConnection, org: OrgId, serial: &str, by: Actor) -> Result<bool> {
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
    record(tx, org, now(), audit::device_ignored(by, serial, removed)).await?;
    Ok(removed)
}

/// Frees every seat the device holds (before the device itself is deleted).
pub(super) async fn free_all_seats(conn: &mut SqliteConnection, device_id: i64) -> Result<()> {
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
