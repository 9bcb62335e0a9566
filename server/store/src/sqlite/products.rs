//! Products, their seats and policies, on SQLite.

use super::*;

impl Products for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn add_product(&self, org: OrgId, product: &NewProduct, by: Actor) -> Result<Product> {
        let now = now();
        let mut tx = self.write().await?;
        let added = insert_product(&mut tx, org, product, now).await?;
        record(&mut tx, org, now, audit::product_added(by, &added)).await?;
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
        record(&mut tx, org, now(), audit::seats_changed(by, code, before, seats)).await?;
        let product = org_product(&mut tx, org, code).await?.product;
        tx.commit().await?;
        Ok(product)
    }

    #[tracing::instrument(skip_all)]
    async fn products(&self, org: OrgId) -> Result<Vec<Product>> {
        let rows: Vec<ProductColumns> =
            sqlx::query_as(concat!("select ", product_columns!(in_use!()), " from products where org_id = ? order by name, code"))
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
        record(&mut tx, org, now(), audit::auto_assign_changed(by, code, auto_assign)).await?;
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
        let rows: Vec<(String, i64, Option<i64>, String, i64, Option<i64>)> =
            sqlx::query_as(concat!("select code, ", policy_columns!(), " from products where org_id = ? order by code"))
                .bind(org.0)
                .fetch_all(&self.readers)
                .await?;
        Ok(rows.into_iter().map(|(code, a, b, c, d, e)| (code, policy_from((a, b, c, d, e)))).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn update_policy(&self, org: OrgId, code: &str, update: &PolicyUpdate, by: Actor) -> Result<ProductPolicy> {
        update.validate()?;
        let now = now();
        let mut tx = self.write().await?;
        let before = fetch_policy(&mut tx, org, code).await?;
        sqlx::query(
            "update products set license_days = coalesce(?, license_days),
                    reclaim_after_days = case when ? then ? else reclaim_after_days end,
                    seat_model = coalesce(?, seat_model),
                    lease_minutes = coalesce(?, lease_minutes),
                    alert_at_percent = case when ? then ? else alert_at_percent end
             where org_id = ? and code = ?",
        )
        .bind(update.license_days)
        .bind(update.reclaim_after_days.is_some())
        .bind(update.reclaim_after_days.flatten())
        .bind(update.seat_model.map(SeatModel::as_str))
        .bind(update.lease_minutes)
        .bind(update.alert_at_percent.is_some())
        .bind(update.alert_at_percent.flatten())
        .bind(org.0)
        .bind(code)
        .execute(&mut *tx)
        .await?;
        let policy = fetch_policy(&mut tx, org, code).await?;
        record(&mut tx, org, now, audit::policy_changed(by, code, &before, &policy)).await?;
        if policy.seat_model != before.seat_model {
            // Held seats change what they are: the memory of them starts afresh.
            let product = org_product(&mut tx, org, code).await?;
            change_seat_model(&mut tx, org, &product, now).await?;
            return self.commit_taking_seats(tx).await.map(|()| policy);
        }
        tx.commit().await?;
        Ok(policy)
    }

    #[tracing::instrument(skip_all)]
    async fn set_term(&self, org: OrgId, code: &str, valid_until: Option<chrono::NaiveDate>, by: Actor) -> Result<Product> {
        let mut tx = self.write().await?;
        let before = org_product(&mut tx, org, code).await?.product.valid_until;
        sqlx::query("update products set valid_until = ? where org_id = ? and code = ?")
            .bind(valid_until)
            .bind(org.0)
            .bind(code)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, org, now(), audit::term_changed(by, code, before, valid_until)).await?;
        let product = org_product(&mut tx, org, code).await?.product;
        tx.commit().await?;
        Ok(product)
    }

    #[tracing::instrument(skip_all)]
    async fn license_terms(&self, org: OrgId, code: &str) -> Result<LicenseTerms> {
        let row: Option<(String, i64, Option<chrono::NaiveDate>)> = sqlx::query_as(
            "select o.name, p.license_days, p.valid_until from products p join organizations o on o.id = p.org_id
             where p.org_id = ? and p.code = ?",
        )
        .bind(org.0)
        .bind(code)
        .fetch_optional(&self.readers)
        .await?;
        let (organization, license_days, valid_until) = row.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        Ok(LicenseTerms { organization, license_days, valid_until })
    }

    #[tracing::instrument(skip_all)]
    async fn holders(&self, org: OrgId, code: &str, page: &PageRequest) -> Result<Page<Holder>> {
        let mut conn = self.readers.acquire().await?;
        let product = org_product(&mut conn, org, code).await?;
        let limit = page.clamped_limit();
        let rows: Vec<(i64, String, i64, i64, i64, Option<i64>)> = sqlx::query_as(
            "select d.id, d.serial, a.assigned_at, d.first_seen, coalesce(ds.last_seen, d.first_seen), a.lease_until
             from assignments a join devices d on d.id = a.device_id
             left join device_seen ds on ds.device_id = d.id
             where a.product_id = ? and d.serial > ? and (a.lease_until is null or a.lease_until > ?)
             order by d.serial limit ?",
        )
        .bind(product.id)
        .bind(page.after_serial())
        .bind(millis(now()))
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let holders = rows
            .into_iter()
            .map(|(id, serial, assigned_at, first_seen, last_seen, lease_until)| Holder {
                serial,
                assigned_at: timestamp(assigned_at),
                first_seen: timestamp(first_seen),
                last_seen: timestamp(self.last_seen.newest(id, last_seen)),
                lease_expires_at: lease_until.map(timestamp),
            })
            .collect();
        Ok(Page::from_rows(holders, limit, |h| &h.serial))
    }
}

/// Turns the product's held seats into the seat model it now has: leases
/// from `now` for floating seats; for assigned seats, ended leases freed
/// (their devices had stopped checking in) and the rest kept with no end.
async fn change_seat_model(conn: &mut SqliteConnection, org: OrgId, product: &ProductRow, now: Timestamp) -> Result<()> {
    match product.lease(now) {
        Some(lease) => {
            sqlx::query("update assignments set lease_until = ? where product_id = ?")
                .bind(millis(lease.until))
                .bind(product.id)
                .execute(&mut *conn)
                .await?;
        }
        None => {
            free_ended_leases(conn, org, product, now, &[]).await?;
            sqlx::query("update assignments set lease_until = null where product_id = ?")
                .bind(product.id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

pub(super) async fn insert_product(conn: &mut SqliteConnection, org: OrgId, product: &NewProduct, now: Timestamp) -> Result<Product> {
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
