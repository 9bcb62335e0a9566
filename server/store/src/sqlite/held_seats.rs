//! Learning at start which devices hold which seats, on SQLite.

use super::*;

/// After start, learns which devices hold which seats, so that their first
/// check-ins are already answered from memory. Runs beside the server; gives
/// up when an admin's change clears the cache meanwhile.
pub(super) async fn remember_holdings(readers: SqlitePool, known: Arc<HeldSeats>) {
    let started = std::time::Instant::now();
    match learn_holdings(&readers, &known).await {
        Ok(Some(learnt)) => {
            tracing::info!(devices = learnt, seconds = started.elapsed().as_secs_f64(), "learnt which devices hold seats")
        }
        Ok(None) => tracing::info!("an admin's change came first; devices are learnt at their check-ins"),
        Err(error) => tracing::warn!(%error, "reading the holders failed; devices are learnt at their check-ins"),
    }
}

/// Reads the holdings in slices of devices by id. Each slice comes back as
/// one JSON array: sqlx hands SQLite rows over one at a time between
/// threads, which for a million rows costs more than the query.
pub(super) async fn learn_holdings(readers: &SqlitePool, known: &HeldSeats) -> Result<Option<usize>> {
    const SLICE: i64 = 10_000;
    let codes: HashMap<i64, (String, i64)> = sqlx::query_as::<_, (i64, String, i64)>("select id, code, lease_minutes from products")
        .fetch_all(readers)
        .await?
        .into_iter()
        .map(|(id, code, lease_minutes)| (id, (code, lease_minutes)))
        .collect();
    let expected: i64 = sqlx::query_scalar("select count(*) from assignments").fetch_one(readers).await?;
    let mut learning = known.learning(usize::try_from(expected).unwrap_or(0));
    let mut after = 0i64;
    let mut learnt = 0;
    loop {
        let (last, holdings): (Option<i64>, String) = sqlx::query_as(
            "select (select max(id) from (select id from devices where id > ?1 order by id limit ?2)),
                    (select json_group_array(json_array(d.org_id, a.product_id, d.serial, d.id, d.first_seen, a.lease_until))
                     from (select id, org_id, serial, first_seen from devices where id > ?1 order by id limit ?2) d
                     join assignments a on a.device_id = d.id)",
        )
        .bind(after)
        .bind(SLICE)
        .fetch_one(readers)
        .await?;
        let Some(last) = last else { break };
        let rows: Vec<(i64, i64, String, i64, i64, Option<i64>)> =
            serde_json::from_str(&holdings).map_err(|error| StoreError::Unavailable(error.to_string()))?;
        for (org, product, serial, device_id, first_seen, lease_until) in rows {
            if let Some((code, lease_minutes)) = codes.get(&product) {
                let lease = lease_until.map(|until| Lease::ending(timestamp(until), *lease_minutes));
                learning.add(OrgId(org), code, &serial, Holding::new(device_id, first_seen, lease));
                learnt += 1;
            }
        }
        if learning.is_stale() {
            return Ok(None);
        }
        after = last;
    }
    Ok(learning.finish().then_some(learnt))
}
