//! The keys that sign licenses, on SQLite.

use super::*;

impl SigningKeys for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        type Row = (String, Vec<u8>, Vec<u8>, i64, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "select kid, secret, public, created_at, retired_at from signing_keys
             order by retired_at is not null, created_at desc, id desc",
        )
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kid, secret, public, created_at, retired_at)| StoredSigningKey {
                kid,
                secret,
                public,
                created_at: timestamp(created_at),
                retired_at: retired_at.map(timestamp),
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn add_signing_key(&self, key: &StoredSigningKey, retire_active: bool) -> Result<bool> {
        let mut tx = self.write().await?;
        if retire_active {
            sqlx::query("update signing_keys set retired_at = ? where retired_at is null")
                .bind(millis(key.created_at))
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(
            "insert into signing_keys (kid, secret, public, created_at) values (?, ?, ?, ?) on conflict do nothing",
        )
        .bind(&key.kid)
        .bind(&key.secret)
        .bind(&key.public)
        .bind(millis(key.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn replace_signing_secret(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let done = sqlx::query("update signing_keys set secret = ? where kid = ? and secret = ?")
            .bind(new)
            .bind(kid)
            .bind(old)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
