//! The keys that sign licenses, on PostgreSQL.

use super::*;

impl SigningKeys for PgStore {
    #[tracing::instrument(skip_all)]
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        type Row = (String, Vec<u8>, Vec<u8>, Timestamp, Option<Timestamp>);
        let rows: Vec<Row> = sqlx::query_as(
            "select kid, secret, public, created_at, retired_at from signing_keys
             order by retired_at is not null, created_at desc, id desc",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kid, secret, public, created_at, retired_at)| StoredSigningKey {
                kid,
                secret,
                public,
                created_at,
                retired_at,
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn add_signing_key(&self, key: &StoredSigningKey, retire_active: bool) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        if retire_active {
            // Locks the active key's row: two rotations at once queue here.
            sqlx::query("update signing_keys set retired_at = $1 where retired_at is null")
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(
            "insert into signing_keys (kid, secret, public, created_at) values ($1, $2, $3, $4) on conflict do nothing",
        )
        .bind(&key.kid)
        .bind(&key.secret)
        .bind(&key.public)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn replace_signing_secret(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let done = sqlx::query("update signing_keys set secret = $1 where kid = $2 and secret = $3")
            .bind(new)
            .bind(kid)
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
