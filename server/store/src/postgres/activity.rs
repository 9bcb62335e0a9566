//! The audit log, on PostgreSQL.

use super::*;

impl AuditLog for PgStore {
    #[tracing::instrument(skip_all)]
    async fn activity(&self, org: OrgId, filter: &ActivityFilter) -> Result<Page<Activity>> {
        let limit = PageRequest { after: None, limit: filter.limit }.clamped_limit();
        let mut select = activity_query(org, filter, limit, |at| at);
        let rows: Vec<ActivityRow> = select.build_query_as().fetch_all(&self.pool).await?;
        Ok(activity_page(rows, limit))
    }

    #[tracing::instrument(skip_all)]
    async fn prune_activity(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("delete from activity where at < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
