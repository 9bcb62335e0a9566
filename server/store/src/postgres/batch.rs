//! The statements of the check-in hot path on PostgreSQL, answered in
//! batches: the requests that arrive while a statement runs go together in
//! the next, one statement for them all. Each statement still reads the
//! database, so every process of a fleet sees every key rotation, revoke,
//! delete and ignore as soon as it commits; only the round trips and the
//! per-statement work are shared.
//!
//! Two statements are batched here: a check-in's first look, which finds the
//! organization of its product key and whether the device holds its seat
//! ([`FirstLooks`]), and the lookup of a product key alone ([`ProductKeys`]);
//! the check-ins that need a seat decision go through the same machinery as
//! whole transactions ([`super::group::SeatDecisions`]).
//! A request waits for at most the statements in flight before its own.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{OrgId, Result, Timestamp};

/// The most requests in one statement.
pub(super) const BATCH_MAX: usize = 256;
/// Statements of one kind in flight at once: one runs while the next batch
/// gathers (a read's batch first waits for it: [`Statement::WAIT_FOR_PREVIOUS`]).
const IN_FLIGHT: usize = 2;

/// A statement that answers many requests at once.
pub(super) trait Statement: Send + Sync + 'static {
    type Asked: Send + 'static;
    type Answer: Send + Clone + 'static;

    /// How long a gathered batch waits for the statement before it to
    /// finish, gathering meanwhile, before it runs beside it. A read waits:
    /// PostgreSQL's cost per statement (waking a backend, starting the
    /// executor) is then shared by about twice the requests, and a stalled
    /// statement still holds up the next batch for no more than this. A
    /// transaction runs at once: one waits for the disk to commit while
    /// the next decides.
    const WAIT_FOR_PREVIOUS: Duration = Duration::from_millis(2);

    /// For each request, in order, its answer (`None`: nothing found).
    fn run(pool: &PgPool, batch: &[Self::Asked]) -> impl Future<Output = Result<Vec<Option<Self::Answer>>>> + Send;
}

/// A request and where its answer goes: the answer, or the request back when
/// its batch failed.
type Pending<S> = (<S as Statement>::Asked, oneshot::Sender<Reply<S>>);
type Reply<S> = Result<Option<<S as Statement>::Answer>, <S as Statement>::Asked>;

/// The way into one statement's batches.
pub(super) struct Batches<S: Statement> {
    queue: mpsc::Sender<Pending<S>>,
    counts: Arc<Counts>,
    /// Where a request goes when the batches are not running (the store is
    /// used from a runtime other than the one that opened it).
    pool: PgPool,
}

impl<S: Statement> Clone for Batches<S> {
    fn clone(&self) -> Self {
        Batches { queue: self.queue.clone(), counts: self.counts.clone(), pool: self.pool.clone() }
    }
}

/// What the batches of one statement did (tests read it through
/// `Store::batch_counts`).
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Requests a batch answered with something found.
    pub found: AtomicU64,
    /// Batches whose statement failed (their requests were tried alone).
    pub failed: AtomicU64,
}

impl<S: Statement> Batches<S> {
    /// Batches of at most `max` requests. Batches of one (the benchmark's
    /// one-transaction-per-check-in baseline) run as many at once as the
    /// pool has connections, as single statements would.
    pub(super) fn start(pool: PgPool, max: usize) -> Self {
        let max = max.clamp(1, BATCH_MAX);
        let in_flight = if max == 1 { pool.options().get_max_connections() as usize } else { IN_FLIGHT };
        let wait = if max == 1 { Duration::ZERO } else { S::WAIT_FOR_PREVIOUS };
        let (queue, asked) = mpsc::channel(BATCH_MAX * 4);
        let counts = Arc::new(Counts::default());
        tokio::spawn(run::<S>(pool.clone(), asked, max, in_flight, wait, counts.clone()));
        Batches { queue, counts, pool }
    }

    pub(super) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The answer to one request, from the next batch. A batch that fails is
    /// tried again one request at a time, so each request gets its own error.
    pub(super) async fn ask(&self, asked: S::Asked) -> Result<Option<S::Answer>> {
        let (reply, answer) = oneshot::channel();
        let asked = match self.queue.send((asked, reply)).await {
            Ok(()) => match answer.await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(asked)) => asked,
                Err(_) => return Err(crate::StoreError::Unavailable("the store is shutting down".into())),
            },
            Err(mpsc::error::SendError((asked, _))) => asked,
        };
        Ok(S::run(&self.pool, std::slice::from_ref(&asked)).await?.into_iter().next().flatten())
    }
}

async fn run<S: Statement>(
    pool: PgPool,
    mut queue: mpsc::Receiver<Pending<S>>,
    max: usize,
    in_flight: usize,
    wait: Duration,
    counts: Arc<Counts>,
) {
    let in_flight = Arc::new(Semaphore::new(in_flight));
    let mut batch = Vec::with_capacity(max);
    while queue.recv_many(&mut batch, max).await > 0 {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        if !wait.is_zero() && in_flight.available_permits() == 0 {
            // The permit of the statement in flight, as soon as it is back.
            let _ = tokio::time::timeout(wait, in_flight.acquire()).await;
        }
        // What arrived while the statements in flight ran joins this batch.
        while batch.len() < max {
            match queue.try_recv() {
                Ok(asked) => batch.push(asked),
                Err(_) => break,
            }
        }
        let (pool, counts) = (pool.clone(), counts.clone());
        let batch = std::mem::replace(&mut batch, Vec::with_capacity(max));
        tokio::spawn(async move {
            let (asked, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let answers = S::run(&pool, &asked).await;
            drop(permit);
            match answers {
                Ok(answers) => {
                    counts.found.fetch_add(answers.iter().flatten().count() as u64, Relaxed);
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Err(error) => {
                    counts.failed.fetch_add(1, Relaxed);
                    tracing::warn!(%error, size = asked.len(), "a batch failed; its requests are tried one at a time");
                    for (reply, asked) in replies.into_iter().zip(asked) {
                        let _ = reply.send(Err(asked));
                    }
                }
            }
        });
    }
}

/// A check-in's first look: its product key's digest, the product and the
/// device.
pub(super) struct FirstLook {
    pub digest: Vec<u8>,
    pub code: String,
    pub serial: String,
}

/// The organization of each product key and, when the device holds a seat
/// of the product, the device's id, first seen and last seen (as stored);
/// nothing for an unknown
/// key. It only reads: the seat is answered from what the statement's
/// snapshot holds, so a check-in whose statement started before a revoke
/// committed may still be licensed, and one that starts after the revoke
/// returned is not. The device's `last seen` is written later, in bulk
/// (`PgStore::check_in_held`).
pub(super) struct FirstLooks;

/// A seat found held: the device's id, first seen and last seen, and for a
/// floating product the seat's lease end (none yet: see `answerable`) and
/// the product's lease minutes.
pub(super) type Held = (i64, Timestamp, Timestamp, Option<(Option<Timestamp>, i64)>);

/// A request's number, its key's organization, and the held device's id,
/// first seen, last seen (all null when it holds no seat), its seat's lease
/// end (null for an assigned seat) and the product's lease minutes.
type ArrivalRow = (i64, i64, Option<i64>, Option<Timestamp>, Option<Timestamp>, Option<Timestamp>, Option<i64>);

impl Statement for FirstLooks {
    type Asked = FirstLook;
    type Answer = (OrgId, Option<Held>);

    async fn run(pool: &PgPool, batch: &[FirstLook]) -> Result<Vec<Option<Self::Answer>>> {
        let digests: Vec<&[u8]> = batch.iter().map(|a| a.digest.as_slice()).collect();
        let codes: Vec<&str> = batch.iter().map(|a| a.code.as_str()).collect();
        let serials: Vec<&str> = batch.iter().map(|a| a.serial.as_str()).collect();
        let rows: Vec<ArrivalRow> = sqlx::query_as(
            "select asked.i, o.id, held.id, held.first_seen, held.last_seen, held.lease_until, held.lease_minutes
             from unnest($1::bytea[], $2::text[], $3::text[]) with ordinality as asked(digest, code, serial, i)
             join organizations o on o.product_key_hash = asked.digest
             left join lateral (
                 select d.id, d.first_seen, d.last_seen, a.lease_until,
                        case when p.seat_model = 'floating' then p.lease_minutes end as lease_minutes
                 from products p
                 join devices d on d.org_id = p.org_id and d.serial = asked.serial
                 join assignments a on a.product_id = p.id and a.device_id = d.id
                 where p.org_id = o.id and p.code = asked.code
             ) held on true",
        )
        .bind(&digests)
        .bind(&codes)
        .bind(&serials)
        .fetch_all(pool)
        .await?;
        Ok(in_order(
            batch.len(),
            rows.into_iter().map(|(i, org, device, first_seen, last_seen, lease_until, lease_minutes)| {
                let lease = lease_minutes.map(|minutes| (lease_until, minutes));
                let held = match (device, first_seen, last_seen) {
                    (Some(device), Some(first_seen), Some(last_seen)) => Some((device, first_seen, last_seen, lease)),
                    _ => None,
                };
                (i, (OrgId(org), held))
            }),
        ))
    }
}

/// The organization whose product API key has this SHA-256 digest.
pub(super) struct ProductKeys;

impl Statement for ProductKeys {
    type Asked = Vec<u8>;
    type Answer = OrgId;

    async fn run(pool: &PgPool, batch: &[Vec<u8>]) -> Result<Vec<Option<OrgId>>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "select asked.i, o.id
             from unnest($1::bytea[]) with ordinality as asked(digest, i)
             join organizations o on o.product_key_hash = asked.digest",
        )
        .bind(batch)
        .fetch_all(pool)
        .await?;
        Ok(in_order(batch.len(), rows.into_iter().map(|(i, id)| (i, OrgId(id)))))
    }
}

/// Answers numbered from 1 (`with ordinality`) put in the requests' order.
fn in_order<T: Clone>(len: usize, numbered: impl Iterator<Item = (i64, T)>) -> Vec<Option<T>> {
    let mut answers = vec![None; len];
    for (i, answer) in numbered {
        if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| answers.get_mut(i)) {
            *slot = Some(answer);
        }
    }
    answers
}
