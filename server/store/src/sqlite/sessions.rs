//! Browser sessions, on SQLite.

use super::*;

impl Sessions for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn create_session(&self, org: OrgId, lifetime: Duration) -> Result<String> {
        let session_id = keys::generate(KeyKind::Session);
        let now = now();
        let mut tx = self.write().await?;
        sqlx::query("delete from sessions where expires_at <= ?").bind(millis(now)).execute(&mut *tx).await?;
        sqlx::query("insert into sessions (token_hash, org_id, created_at, expires_at) values (?, ?, ?, ?)")
            .bind(keys::digest(&session_id))
            .bind(org.0)
            .bind(millis(now))
            .bind(millis(expiry(now, lifetime)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(session_id)
    }

    #[tracing::instrument(skip_all)]
    async fn session(&self, session_id: &str) -> Result<Option<Organization>> {
        if !keys::well_formed(KeyKind::Session, session_id) {
            return Ok(None);
        }
        let row: Option<(i64, String)> = sqlx::query_as(
            "select o.id, o.name from sessions s join organizations o on o.id = s.org_id
             where s.token_hash = ? and s.expires_at > ?",
        )
        .bind(keys::digest(session_id))
        .bind(millis(now()))
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|(id, name)| Organization { id: OrgId(id), name }))
    }

    #[tracing::instrument(skip_all)]
    async fn end_session(&self, session_id: &str) -> Result<()> {
        sqlx::query("delete from sessions where token_hash = ?")
            .bind(keys::digest(session_id))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn set_session_flash(&self, session_id: &str, flash: &[u8]) -> Result<()> {
        sqlx::query("update sessions set flash = ? where token_hash = ?")
            .bind(flash)
            .bind(keys::digest(session_id))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn take_session_flash(&self, session_id: &str) -> Result<Option<Vec<u8>>> {
        if !keys::well_formed(KeyKind::Session, session_id) {
            return Ok(None);
        }
        let mut tx = self.write().await?;
        let flash: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("select flash from sessions where token_hash = ? and expires_at > ?")
                .bind(keys::digest(session_id))
                .bind(millis(now()))
                .fetch_optional(&mut *tx)
                .await?;
        let Some(flash) = flash.flatten() else { return Ok(None) };
        sqlx::query("update sessions set flash = null where token_hash = ?")
            .bind(keys::digest(session_id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(flash))
    }
}
