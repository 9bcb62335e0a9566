//! Seat usage over time, on SQLite.

use super::*;

impl Usage for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn snapshot_usage(&self, now: Timestamp) -> Result<u64> {
        // `where true`: SQLite reads `on conflict` after a bare `from` as a join.
        let done = sqlx::query(
            concat!(
                "insert into seat_snapshots (product_id, day, seats, assigned)
             select id, ?1, seats, ", in_use!(), " from products where true
             on conflict (product_id, day) do update set seats = excluded.seats, assigned = excluded.assigned"
            ),
        )
        .bind(day_of(now))
        .execute(&self.writer)
        .await?;
        // Refusals older than any chart or list shows are dropped.
        sqlx::query("delete from refusals where day < ?").bind(day_of(now) - 400).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn usage(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, UsagePoint)>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "select p.code, s.day, s.seats, s.assigned
             from products p join seat_snapshots s on s.product_id = p.id
             where p.org_id = ?1 and s.day >= ?2
             order by p.code, s.day",
        )
        .bind(org.0)
        .bind(since_day)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(|(code, day, seats, assigned)| (code, UsagePoint { day, seats, assigned })).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn seat_totals(&self) -> Result<Vec<SeatTotal>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            concat!(
                "select o.name, products.code, products.seats, ", in_use!(),
                " from products join organizations o on o.id = products.org_id order by o.name, products.code"
            ),
        )
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(seat_total).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn refusals(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, Refusals)>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "select p.code, r.day, sum(r.count), count(*)
             from products p join refusals r on r.product_id = p.id
             where p.org_id = ?1 and r.day >= ?2
             group by p.code, r.day
             order by p.code, r.day",
        )
        .bind(org.0)
        .bind(since_day)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(|(code, day, refused, devices)| (code, Refusals { day, refused, devices })).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn refused_devices(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "select p.code, count(distinct r.device_id)
             from products p join refusals r on r.product_id = p.id
             where p.org_id = ?1 and r.day >= ?2
             group by p.code
             order by p.code",
        )
        .bind(org.0)
        .bind(since_day)
        .fetch_all(&self.readers)
        .await?)
    }
}
