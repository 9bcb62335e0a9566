//! Products, their seats and policies, on PostgreSQL.

use super::*;

impl Products for PgStore {
    #[tracing::instrument(skip_all)]
    async fn add_product(&self, org: OrgId, product: &NewProduct, by: Actor) -> Result<Product> {
        let now = now();
        let mut tx = self.begin().await?;
        let added = insert_product(&mut tx, org, product, now).await?;
        record(&mut tx, org, now, audit::product_added(by, &added)).await?;
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
            product_columns!(in_use!())
        ))
        .bind(seats)
        .bind(org.0)
        .bind(code)
        .fetch_one(&mut *tx)
        .await?;
        record(&mut tx, org, now(), audit::seats_changed(by, code, before, seats)).await?;
        tx.commit().await?;
        Ok(Product::from(product))
    }

    #[tracing::instrument(skip_all)]
    async fn products(&self, org: OrgId) -> Result<Vec<Product>> {
        let rows: Vec<ProductColumns> =
            sqlx::query_as(concat!("select ", product_columns!(in_use!()), " from products where org_id = $1 order by name, code"))
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
            product_columns!(in_use!())
        ))
        .bind(auto_assign)
        .bind(org.0)
        .bind(code)
        .fetch_optional(&mut *tx)
        .await?;
        let product = row.map(Product::from).ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        record(&mut tx, org, now(), audit::auto_assign_changed(by, code, auto_assign)).await?;
        tx.commit().await?;
        Ok(product)
    }

    #[tracing::instrument(skip_all)]
    async fn policy(&self, org: OrgId, code: &str) -> Result<ProductPolicy> {
        let mut conn = self.pool.acquire().await?;
        fetch_policy(&mut conn, org, code, false).await
    }

    #[tracing::instrument(skip_all)]
    async fn policies(&self, org: OrgId) -> Result<Vec<(String, ProductPolicy)>> {
        let rows: Vec<(String, i64, Option<i64>, String, i64, Option<i64>)> =
            sqlx::query_as(concat!("select code, ", policy_columns!(), " from products where org_id = $1 order by code"))
                .bind(org.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(code, a, b, c, d, e)| (code, policy_from((a, b, c, d, e)))).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn update_policy(&self, org: OrgId, code: &str, update: &PolicyUpdate, by: Actor) -> Result<ProductPolicy> {
        update.validate()?;
        let now = now();
        let mut tx = self.begin().await?;
        // A change of seat model rewrites the holders' seats: their device
        // rows are locked first, in the order every seat change takes them,
        // then the product's.
        let holders: Vec<i64> = match update.seat_model {
            Some(_) => {
                sqlx::query_scalar(
                    "select d.id from products p
                     join assignments a on a.product_id = p.id
                     join devices d on d.id = a.device_id
                     where p.org_id = $1 and p.code = $2
                     order by d.org_id, d.serial
                     for update of d",
                )
                .bind(org.0)
                .bind(code)
                .fetch_all(&mut *tx)
                .await?
            }
            None => Vec::new(),
        };
        let before = fetch_policy(&mut tx, org, code, true).await?;
        let after: PolicyColumns = sqlx::query_as(concat!(
            "update products set license_days = coalesce($1, license_days),
                    reclaim_after_days = case when $2 then $3 else reclaim_after_days end,
                    seat_model = coalesce($4, seat_model),
                    lease_minutes = coalesce($5, lease_minutes),
                    alert_at_percent = case when $8 then $9 else alert_at_percent end
             where org_id = $6 and code = $7
             returning ",
            policy_columns!()
        ))
        .bind(update.license_days)
        .bind(update.reclaim_after_days.is_some())
        .bind(update.reclaim_after_days.flatten())
        .bind(update.seat_model.map(SeatModel::as_str))
        .bind(update.lease_minutes)
        .bind(org.0)
        .bind(code)
        .bind(update.alert_at_percent.is_some())
        .bind(update.alert_at_percent.flatten())
        .fetch_one(&mut *tx)
        .await?;
        let after = policy_from(after);
        record(&mut tx, org, now, audit::policy_changed(by, code, &before, &after)).await?;
        if after.seat_model != before.seat_model {
            let product = fetch_product(&mut tx, org, code).await?;
            change_seat_model(&mut tx, org, &product, &holders, now).await?;
        }
        tx.commit().await?;
        Ok(after)
    }

    #[tracing::instrument(skip_all)]
    async fn set_term(&self, org: OrgId, code: &str, valid_until: Option<chrono::NaiveDate>, by: Actor) -> Result<Product> {
        let mut tx = self.begin().await?;
        let before: Option<Option<chrono::NaiveDate>> =
            sqlx::query_scalar("select valid_until from products where org_id = $1 and code = $2 for update")
                .bind(org.0)
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?;
        let before = before.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        sqlx::query("update products set valid_until = $1 where org_id = $2 and code = $3")
            .bind(valid_until)
            .bind(org.0)
            .bind(code)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, org, now(), audit::term_changed(by, code, before, valid_until)).await?;
        let product = fetch_product(&mut tx, org, code).await?.product;
        tx.commit().await?;
        Ok(product)
    }

    #[tracing::instrument(skip_all)]
    async fn license_terms(&self, org: OrgId, code: &str) -> Result<LicenseTerms> {
        let row: Option<(String, i64, Option<chrono::NaiveDate>)> = sqlx::query_as(
            "select o.name, p.license_days, p.valid_until from products p join organizations o on o.id = p.org_id
             where p.org_id = $1 and p.code = $2",
        )
        .bind(org.0)
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        let (organization, license_days, valid_until) = row.ok_or_else(|| StoreError::UnknownProduct(code.to_owned()))?;
        Ok(LicenseTerms { organization, license_days, valid_until })
    }

    #[tracing::instrument(skip_all)]
    async fn holders(&self, org: OrgId, code: &str, page: &PageRequest) -> Result<Page<Holder>> {
        let mut conn = self.pool.acquire().await?;
        let product = fetch_product(&mut conn, org, code).await?;
        let limit = page.clamped_limit();
        let rows: Vec<(i64, String, Timestamp, Timestamp, Timestamp, Option<Timestamp>)> = sqlx::query_as(
            // Naming the organization lets the planner walk its devices in
            // serial order when the product's holders are many of them.
            "select d.id, d.serial, a.assigned_at, d.first_seen, d.last_seen, a.lease_until
             from devices d join assignments a on a.device_id = d.id and a.product_id = $1
             where d.org_id = $4 and d.serial > $2 and (a.lease_until is null or a.lease_until > $5)
             order by d.serial limit $3",
        )
        .bind(product.id)
        .bind(page.after_serial())
        .bind(limit + 1)
        .bind(org.0)
        .bind(now())
        .fetch_all(&mut *conn)
        .await?;
        let holders = rows
            .into_iter()
            .map(|(id, serial, assigned_at, first_seen, last_seen, lease_until)| Holder {
                serial,
                assigned_at,
                first_seen,
                last_seen: self.last_seen(id, last_seen),
                lease_expires_at: lease_until,
            })
            .collect();
        Ok(Page::from_rows(holders, limit, |h| &h.serial))
    }
}

/// Turns the product's held seats into the seat model it now has: leases
/// from `now` for floating seats; for assigned seats, ended leases freed
/// (their devices had stopped checking in) and the rest kept with no end.
/// The caller holds the `holders`' device rows and then the product's row;
/// a seat taken between the two keeps what it has (a floating one with no
/// lease gets one at its device's next check-in).
async fn change_seat_model(conn: &mut PgConnection, org: OrgId, product: &ProductRow, holders: &[i64], now: Timestamp) -> Result<()> {
    match product.lease(now) {
        Some(lease) => {
            sqlx::query("update assignments set lease_until = $1 where product_id = $2 and device_id = any($3)")
                .bind(lease.until)
                .bind(product.id)
                .bind(holders)
                .execute(&mut *conn)
                .await?;
        }
        None => {
            free_ended_leases(conn, org, product, now, &[]).await?;
            sqlx::query("update assignments set lease_until = null where product_id = $1 and device_id = any($2)")
                .bind(product.id)
                .bind(holders)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

pub(super) async fn insert_product(conn: &mut PgConnection, org: OrgId, product: &NewProduct, now: Timestamp) -> Result<Product> {
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
