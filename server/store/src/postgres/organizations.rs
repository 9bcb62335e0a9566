//! Organizations and their keys, on PostgreSQL.

use super::*;

impl Organizations for PgStore {
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
}

impl PgStore {
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
        record(&mut tx, org, now(), audit::key_rotated(by, kind)).await?;
        tx.commit().await?;
        Ok(key)
    }
}

pub(super) async fn insert_organization(conn: &mut PgConnection, name: &str, now: Timestamp) -> Result<Option<(OrgId, NewOrganization)>> {
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
