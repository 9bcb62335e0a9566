//! Check-ins of devices that already hold their seat, on PostgreSQL, answered
//! in batches: the ones that arrive while a statement runs go together in the
//! next, one statement for them all. The hot path of a fleet is one
//! statement per batch instead of one per check-in, and each statement still
//! reads the seat from the database, so every process of a fleet sees every
//! revoke, delete and ignore as soon as it commits.
//!
//! The statement locks the devices' rows in the order of their ids before it
//! moves their `last seen`, so two batches (in one process or two) that share
//! devices wait for each other instead of deadlocking, and a batch orders
//! itself after a revoke, delete or ignore of one of its devices under way,
//! as a single check-in does (see the module comment of `postgres.rs`).

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{OrgId, Result, Timestamp};

/// The most check-ins in one statement.
const BATCH_MAX: usize = 256;
/// Statements in flight at once: one runs while the next batch gathers.
const IN_FLIGHT: usize = 2;

/// When a held seat was first and last seen.
pub(super) type Seen = (Timestamp, Timestamp);

/// The way into the batches.
#[derive(Clone)]
pub(super) struct HeldCheckIns {
    queue: mpsc::Sender<Asked>,
    /// Where a check-in goes when the batches are not running (the store is
    /// used from a runtime other than the one that opened it).
    pool: PgPool,
}

/// One check-in waiting for the next batch.
struct Asked {
    org: OrgId,
    code: String,
    serial: String,
    at: Timestamp,
    reply: oneshot::Sender<Option<Seen>>,
}

impl HeldCheckIns {
    /// Starts the batches on `pool`, whose commits need not wait for the
    /// disk: the statement changes nothing but `last seen`.
    pub(super) fn start(pool: PgPool) -> Self {
        let (queue, asked) = mpsc::channel(BATCH_MAX * 4);
        tokio::spawn(run(pool.clone(), asked));
        HeldCheckIns { queue, pool }
    }

    /// Moves the device's `last seen` to `at` if it holds a seat of the
    /// product, and says when it was first and last seen; `None` when it does
    /// not hold one (or is unknown), and then the full decision runs. A batch
    /// that fails answers `None` to all of its check-ins, for the same reason.
    pub(super) async fn touch(&self, org: OrgId, code: &str, serial: &str, at: Timestamp) -> Result<Option<Seen>> {
        let (reply, answer) = oneshot::channel();
        let asked = Asked { org, code: code.to_owned(), serial: serial.to_owned(), at, reply };
        match self.queue.send(asked).await {
            Ok(()) => Ok(answer.await.unwrap_or(None)),
            Err(mpsc::error::SendError(asked)) => {
                let answers = held(&self.pool, std::slice::from_ref(&asked)).await?;
                Ok(answers.into_iter().next().flatten())
            }
        }
    }
}

async fn run(pool: PgPool, mut queue: mpsc::Receiver<Asked>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while queue.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        // What arrived while a statement was running joins this batch.
        while batch.len() < BATCH_MAX {
            match queue.try_recv() {
                Ok(asked) => batch.push(asked),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        let batch = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_MAX));
        tokio::spawn(async move {
            let answers = match held(&pool, &batch).await {
                Ok(answers) => answers,
                Err(error) => {
                    tracing::warn!(%error, size = batch.len(), "a batch of held check-ins failed; each takes the full decision");
                    vec![None; batch.len()]
                }
            };
            drop(permit);
            for (asked, seen) in batch.into_iter().zip(answers) {
                let _ = asked.reply.send(seen);
            }
        });
    }
}

/// One statement for the batch: for each check-in, in order, when its device
/// was first and last seen if it holds a seat of the product.
async fn held(pool: &PgPool, batch: &[Asked]) -> Result<Vec<Option<Seen>>> {
    let orgs: Vec<i64> = batch.iter().map(|a| a.org.0).collect();
    let serials: Vec<&str> = batch.iter().map(|a| a.serial.as_str()).collect();
    let codes: Vec<&str> = batch.iter().map(|a| a.code.as_str()).collect();
    let ats: Vec<Timestamp> = batch.iter().map(|a| a.at).collect();
    let rows: Vec<(i64, Timestamp, Timestamp)> = sqlx::query_as(
        "with asked as (
             select * from unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[])
                 with ordinality as asked(org_id, serial, code, at, i)
         ),
         holding as materialized (
             select d.id, asked.i, asked.at
             from asked
             join devices d on d.org_id = asked.org_id and d.serial = asked.serial
             join products p on p.org_id = asked.org_id and p.code = asked.code
             join assignments a on a.product_id = p.id and a.device_id = d.id
             order by d.id
             for update of d
         ),
         touched as (
             update devices d set last_seen = greatest(d.last_seen, latest.at)
             from (select id, max(at) as at from holding group by id) latest
             where d.id = latest.id
             returning d.id, d.first_seen, d.last_seen
         )
         select holding.i, touched.first_seen, touched.last_seen
         from holding join touched on touched.id = holding.id",
    )
    .bind(&orgs)
    .bind(&serials)
    .bind(&codes)
    .bind(&ats)
    .fetch_all(pool)
    .await?;
    let mut answers = vec![None; batch.len()];
    for (i, first_seen, last_seen) in rows {
        // `with ordinality` counts from 1.
        if let Some(answer) = usize::try_from(i - 1).ok().and_then(|i| answers.get_mut(i)) {
            *answer = Some((first_seen, last_seen));
        }
    }
    Ok(answers)
}
