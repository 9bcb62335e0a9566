//! Browser sessions, on PostgreSQL.

use super::*;

impl Sessions for PgStore {
    #[tracing::instrument(skip_all)]
    async fn create_session(&self, org: OrgId, lifetime: Duration) -> Result<String> {
        let session_id = keys::generate(KeyKind::Session);
        let now = now();
        sqlx::query("delete from sessions where expires_at <= $1").bind(now).execute(&self.pool).await?;
        sqlx::query("insert into sessions (token_hash, org_id, created_at, expires_at) values ($1, $2, $3, $4)")
            .bind(keys::digest(&session_id))
            .bind(org.0)
            .bind(now)
            .bind(expiry(now, lifetime))
            .execute(&self.pool)
            .await?;
        Ok(session_id)
    }

    #[tracing::instrument(skip_all)]
    async fn session(&self, session_id: &str) -> Result<Option<Organization>> {
        if !keys::well_formed(KeyKind::Session, session_id) {
            return Ok(None);
        }
        let row: Option<(i64, String)> = sqlx::query_as(
            "select o.id, o.name from sessions s join organizations o on o.id = s.org_id
             where s.token_hash = $1 and s.expires_at > $2",
        )
        .bind(keys::digest(session_id))
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, name)| Organization { id: OrgId(id), name }))
    }

    #[tracing::instrument(skip_all)]
    async fn end_session(&self, session_id: &str) -> Result<()> {
        sqlx::query("delete from sessions where token_hash = $1")
            .bind(keys::digest(session_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn set_session_flash(&self, session_id: &str, flash: &[u8]) -> Result<()> {
        sqlx::query("update sessions set flash = $1 where token_hash = $2")
            .bind(flash)
            .bind(keys::digest(session_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn take_session_flash(&self, session_id: &str) -> Result<Option<Vec<u8>>> {
        if !keys::well_formed(KeyKind::Session, session_id) {
            return Ok(None);
        }
        // One statement: the row is locked, so two pages loading at once
        // cannot both take the message.
        let flash: Option<Vec<u8>> = sqlx::query_scalar(
            "with taken as (
                 select token_hash, flash from sessions
                 where token_hash = $1 and expires_at > now() and flash is not null
                 for update
             )
             update sessions s set flash = null from taken
             where s.token_hash = taken.token_hash
             returning taken.flash",
        )
        .bind(keys::digest(session_id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(flash)
    }
}
