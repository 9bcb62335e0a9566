//! `last seen` times waiting to be written (both backends): see `crate::memory`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long a device's new `last seen` may wait before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// `last seen` times waiting to be written, by device id: those not yet
/// taken by a flush and those of the flush under way.
#[derive(Default)]
pub struct PendingLastSeen {
    inner: Mutex<LastSeenMaps>,
    /// Held by the flush under way: a second flush (the one at shutdown, say)
    /// waits for it, so that neither takes the other's times out of sight
    /// before they are written.
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct LastSeenMaps {
    waiting: HashMap<i64, i64>,
    flushing: HashMap<i64, i64>,
    /// The last flush written, kept until the next one is: a read that
    /// fetched a row before that flush committed, and looks here after it
    /// ended, still sees the time.
    written: HashMap<i64, i64>,
}

impl PendingLastSeen {
    fn lock(&self) -> std::sync::MutexGuard<'_, LastSeenMaps> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn seen(&self, device_id: i64, at: i64) {
        keep_newest(&mut self.lock().waiting, device_id, at);
    }

    /// The newest `last seen` of a device, counting what waits to be written.
    pub fn newest(&self, device_id: i64, stored: i64) -> i64 {
        let maps = self.lock();
        let newest = |map: &HashMap<i64, i64>| map.get(&device_id).copied().unwrap_or(i64::MIN);
        stored.max(newest(&maps.waiting)).max(newest(&maps.flushing)).max(newest(&maps.written))
    }

    /// Writes what waits with `write` (given `(device id, last seen)` pairs
    /// sorted by device id), one flush at a time. Reads keep showing the
    /// times until they are written; a failed write keeps them for the next
    /// flush.
    pub async fn flush<W, F>(&self, write: W) -> crate::Result<()>
    where
        W: FnOnce(Vec<(i64, i64)>) -> F,
        F: std::future::Future<Output = crate::Result<()>>,
    {
        let _one_at_a_time = self.flushing.lock().await;
        if self.is_empty() {
            return Ok(());
        }
        let mut batch = self.start_flush();
        batch.sort_unstable();
        let written = write(batch).await;
        self.finish_flush(written.is_ok());
        written
    }

    /// Moves what waits into the flush under way and returns it.
    fn start_flush(&self) -> Vec<(i64, i64)> {
        let mut maps = self.lock();
        let taken = std::mem::take(&mut maps.waiting);
        let batch = taken.iter().map(|(&id, &at)| (id, at)).collect();
        maps.flushing = taken;
        batch
    }

    /// The flush is written: reads no longer need it. A failed flush puts its
    /// times back to wait for the next.
    fn finish_flush(&self, written: bool) {
        let mut maps = self.lock();
        let flushed = std::mem::take(&mut maps.flushing);
        if written {
            maps.written = flushed;
        } else {
            for (id, at) in flushed {
                keep_newest(&mut maps.waiting, id, at);
            }
        }
    }

    fn is_empty(&self) -> bool {
        let maps = self.lock();
        maps.waiting.is_empty() && maps.flushing.is_empty()
    }
}

/// Flushes `last_seen` with `write` every `every`, for as long as the store
/// lives; a failed flush is logged and tried again at the next tick.
pub async fn flush_forever<W, F>(every: Duration, last_seen: std::sync::Arc<PendingLastSeen>, write: W)
where
    W: Fn(Vec<(i64, i64)>) -> F,
    F: std::future::Future<Output = crate::Result<()>>,
{
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = last_seen.flush(&write).await {
            tracing::warn!(%error, "writing last-seen times failed; retrying");
        }
    }
}

fn keep_newest(times: &mut HashMap<i64, i64>, device_id: i64, at: i64) {
    let seen = times.entry(device_id).or_insert(at);
    *seen = (*seen).max(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_the_newest_last_seen_until_it_is_written() {
        let last_seen = PendingLastSeen::default();
        last_seen.seen(1, 100);
        last_seen.seen(1, 90);
        assert_eq!(last_seen.newest(1, 50), 100);
        assert_eq!(last_seen.newest(2, 50), 50, "untouched devices read as stored");
        assert_eq!(last_seen.start_flush(), vec![(1, 100)]);
        last_seen.seen(1, 120);
        assert_eq!(last_seen.newest(1, 50), 120, "a newer time during the flush");
        last_seen.finish_flush(true);
        assert_eq!(last_seen.newest(1, 100), 120, "the newer time still waits");
        assert_eq!(last_seen.start_flush(), vec![(1, 120)]);
        last_seen.finish_flush(false);
        assert_eq!(last_seen.newest(1, 50), 120, "a failed flush puts its times back");
        assert!(!last_seen.is_empty());
    }

    /// A read fetches the stored row, then looks here; a flush that commits
    /// and ends between the two must not leave it with the old time.
    #[test]
    fn a_read_that_fetched_its_row_before_a_flush_ended_still_sees_the_time() {
        let last_seen = PendingLastSeen::default();
        last_seen.seen(1, 100);
        last_seen.start_flush();
        last_seen.finish_flush(true);
        assert_eq!(last_seen.newest(1, 50), 100, "the row as it was before the flush");
        last_seen.seen(2, 200);
        last_seen.start_flush();
        last_seen.finish_flush(true);
        assert_eq!(last_seen.newest(1, 50), 50, "kept only until the next flush is written");
        assert_eq!(last_seen.newest(2, 50), 200);
    }
}
