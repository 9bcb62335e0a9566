//! The audit log, on SQLite.

use super::*;

impl AuditLog for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn activity(&self, org: OrgId, filter: &ActivityFilter) -> Result<Page<Activity>> {
        let limit = PageRequest { after: None, limit: filter.limit }.clamped_limit();
        let mut select = activity_query(org, filter, limit, millis);
        type Row = (i64, i64, String, String, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Row> = select.build_query_as().fetch_all(&self.readers).await?;
        let rows = rows
            .into_iter()
            .map(|(id, at, actor, kind, product, serial, detail)| (id, timestamp(at), actor, kind, product, serial, detail))
            .collect();
        Ok(activity_page(rows, limit))
    }

    #[tracing::instrument(skip_all)]
    async fn prune_activity(&self, before: Timestamp) -> Result<u64> {
        // In slices, so that check-ins waiting for the writer are not held up.
        let mut pruned = 0;
        loop {
            let done = sqlx::query(
                "delete from activity where id in (select id from activity where at < ? order by at limit 5000)",
            )
            .bind(millis(before))
            .execute(&self.writer)
            .await?
            .rows_affected();
            pruned += done;
            if done < 5000 {
                return Ok(pruned);
            }
        }
    }
}
