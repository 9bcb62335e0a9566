//! Organizations and their keys, on SQLite.

use super::*;

impl Organizations for SqliteStore {
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
        let version = self.product_keys.version();
        if let Some(org) = self.product_keys.get(version, &digest) {
            return Ok(Some(org));
        }
        let id: Option<i64> = sqlx::query_scalar("select id from organizations where product_key_hash = ?")
            .bind(&digest)
            .fetch_optional(&self.readers)
            .await?;
        if let Some(id) = id {
            self.product_keys.remember(version, digest, OrgId(id));
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
}

impl SqliteStore {
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
        record(&mut tx, org, now(), audit::key_rotated(by, kind)).await?;
        tx.commit().await?;
        Ok(key)
    }
}

pub(super) async fn insert_organization(conn: &mut SqliteConnection, name: &str, now: Timestamp) -> Result<NewOrganization> {
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
