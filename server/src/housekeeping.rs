//! What each server does in the background: frees idle seats, records the
//! day's seat usage, and forgets audit-log entries past their retention.
//! Every task is safe to run in several server processes at once.

use std::time::Duration;

use store::prelude::*;
use store::Store;

/// Frees idle seats (products' `reclaim_after_days`) at start and then every
/// `interval`. With several server processes each runs it; the store's
/// checks under lock make a second pass find nothing to do.
pub fn spawn_reclaim(store: Store, interval: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match store.reclaim_idle_seats(store::now()).await {
                Ok(0) => {}
                Ok(reclaimed) => tracing::info!(reclaimed, "freed the seats of idle devices"),
                Err(error) => tracing::warn!(%error, "reclaiming idle seats failed; trying again later"),
            }
        }
    });
}

/// Deletes audit-log entries older than `retention`, at start and then hourly.
pub fn spawn_activity_retention(store: Store, retention: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let Some(cutoff) = chrono::Duration::from_std(retention).ok().and_then(|age| store::now().checked_sub(age))
            else {
                return;
            };
            match store.prune_activity(cutoff).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "deleted audit-log entries past their retention"),
                Err(error) => tracing::warn!(%error, "pruning the audit log failed; trying again in an hour"),
            }
        }
    });
}

/// Records every product's seats and assignments for today, at start and
/// then hourly: the Product screen's chart and the Licenses sparklines.
pub fn spawn_usage_snapshots(store: Store) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(error) = store.snapshot_usage(store::now()).await {
                tracing::warn!(%error, "recording the day's seat usage failed; trying again in an hour");
            }
        }
    });
}
