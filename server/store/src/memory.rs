//! What a server process keeps in memory on the check-in path: the devices
//! known to hold their seats ([`HeldSeats`], SQLite), their `last seen`
//! times waiting to be written ([`PendingLastSeen`], both backends) and the
//! product keys accepted since the database last changed
//! ([`KnownProductKeys`], SQLite). A known device's check-in is then
//! answered without a write transaction.
//!
//! A device's check-in that ends with it holding a seat is committed first
//! (group commit, `sqlite/checkin.rs`); only then is it entered here. The next
//! check-in of that device for that product is answered from here — its seat
//! is already durable — and its new `last seen` waits in [`PendingLastSeen`] for the
//! next flush, at most [`FLUSH_EVERY`] later. Reads of devices overlay the
//! waiting `last seen` values, so nobody sees it lag.
//!
//! Anything else that may take a seat away (an admin's revoke, a delete, an
//! ignore, a reclaim) clears the whole cache before its commit, under the
//! write lock, so that no cancellation between the two can leave a freed
//! seat answered from here; a generation number keeps a decision made
//! before such a change from being entered after it, and an answer read
//! before it from being given after it. This is
//! sound because one server process owns a SQLite database (the server holds
//! a lock file, see `SqliteStore::lock_for_serving`): the operator command
//! line writes too, but none of its commands take a seat away.
//!
//! [`PendingLastSeen`] serves PostgreSQL too: there the seat is read from the
//! database at every check-in (several processes share it), but the `last
//! seen` times wait here the same way.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use crate::{Lease, OrgId, Timestamp};

/// How long a device's new `last seen` may wait before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// The most holdings remembered one by one, after the start; beyond it they
/// start afresh. Those learnt at the start sit in a sorted array of 48 bytes
/// each: a million take 48 MB.
const CAPACITY: usize = 1_000_000;

/// A device that holds a seat of a product, as committed: for a floating
/// seat, with its lease (milliseconds), else [`Holding::NO_LEASE`] in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    pub device_id: i64,
    pub first_seen: i64,
    pub lease_until: i64,
    pub renew_from: i64,
}

impl Holding {
    pub const NO_LEASE: i64 = i64::MAX;

    pub fn new(device_id: i64, first_seen: i64, lease: Option<Lease>) -> Holding {
        let (lease_until, renew_from) =
            lease.map_or((Self::NO_LEASE, Self::NO_LEASE), |lease| (lease.until.millis(), lease.renew_from.millis()));
        Holding { device_id, first_seen, lease_until, renew_from }
    }

    pub fn lease(&self) -> Option<Lease> {
        (self.lease_until != Self::NO_LEASE).then(|| Lease {
            until: Timestamp::from_millis(self.lease_until),
            renew_from: Timestamp::from_millis(self.renew_from),
        })
    }

    /// Forgotten: a device that gave its seat back (see [`HeldSeats::forget`]).
    const GONE: i64 = -1;
}

/// Devices known to hold a seat, keyed by a 128-bit keyed hash of
/// (organization, product code, serial) — a product's code never changes.
/// Compact enough for a million devices, and with random keys no one can
/// pick serials that collide.
pub struct HeldSeats {
    hashers: (RandomState, RandomState),
    inner: Mutex<Known>,
}

struct Known {
    generation: u64,
    /// Learnt at the start, sorted by key.
    learnt: Vec<(u128, Holding)>,
    /// Remembered since, one check-in at a time.
    holdings: HashMap<u128, Holding>,
}

/// Taken before a decision; an entry is only made if nothing was cleared since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(pub(crate) u64);

impl Default for HeldSeats {
    fn default() -> Self {
        HeldSeats {
            hashers: (RandomState::new(), RandomState::new()),
            inner: Mutex::new(Known { generation: 0, learnt: Vec::new(), holdings: HashMap::new() }),
        }
    }
}

impl HeldSeats {
    fn key(&self, org: OrgId, product: &str, serial: &str) -> u128 {
        let half = |state: &RandomState| {
            let mut hasher = state.build_hasher();
            hasher.write_i64(org.0);
            hasher.write(product.as_bytes());
            // No product code holds this byte, so (code, serial) pairs
            // cannot run into each other.
            hasher.write_u8(0xff);
            hasher.write(serial.as_bytes());
            hasher.finish()
        };
        (u128::from(half(&self.hashers.0)) << 64) | u128::from(half(&self.hashers.1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The device's holding, if known, with the generation it was read in:
    /// an answer given from it must first check, with
    /// [`unchanged_since`](Self::unchanged_since), that nothing was cleared since.
    pub fn get(&self, org: OrgId, product: &str, serial: &str) -> Option<(Holding, Generation)> {
        let key = self.key(org, product, serial);
        let known = self.lock();
        let holding = known.holdings.get(&key).copied().or_else(|| {
            known.learnt.binary_search_by_key(&key, |(key, _)| *key).ok().map(|at| known.learnt[at].1)
        });
        holding.filter(|holding| holding.device_id != Holding::GONE).map(|holding| (holding, Generation(known.generation)))
    }

    pub fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    /// Whether nothing was cleared since `seen`. A check-in answered from
    /// memory records its `last seen` first, then asks this: a change that
    /// takes seats away clears before it decides which (a reclaim reads the
    /// waiting `last seen` times after clearing), so either it sees this
    /// device's time or the answer is not given from memory.
    pub fn unchanged_since(&self, seen: Generation) -> bool {
        self.lock().generation == seen.0
    }

    /// Remembers committed holdings, unless the cache was cleared since
    /// `seen` (then the decisions may predate the change that cleared it).
    pub fn remember<'a>(&self, seen: Generation, holdings: impl IntoIterator<Item = (OrgId, &'a str, &'a str, Holding)>) {
        let keyed: Vec<(u128, Holding)> =
            holdings.into_iter().map(|(org, product, serial, holding)| (self.key(org, product, serial), holding)).collect();
        let mut known = self.lock();
        if known.generation != seen.0 {
            return;
        }
        if known.holdings.len() + keyed.len() > CAPACITY {
            known.holdings.clear();
        }
        known.holdings.extend(keyed);
    }

    /// The holdings read at the start, all at once (see [`Learning`]).
    pub fn learning(&self, expected: usize) -> Learning<'_> {
        Learning { known: self, seen: self.generation(), keyed: Vec::with_capacity(expected) }
    }

    /// Forgets one device's seat of one product (a device giving its
    /// floating seat back), under the write lock before the commit, as
    /// [`clear`](Self::clear) does for everything: the generation moves on,
    /// so no answer or decision from before is given or entered after.
    pub fn forget(&self, org: OrgId, product: &str, serial: &str) {
        let key = self.key(org, product, serial);
        let mut known = self.lock();
        known.generation += 1;
        known.holdings.remove(&key);
        if let Ok(at) = known.learnt.binary_search_by_key(&key, |(key, _)| *key) {
            known.learnt[at].1.device_id = Holding::GONE;
        }
    }

    /// Forgets everything; called under the write lock before every commit
    /// that may take a seat away.
    pub fn clear(&self) {
        let mut known = self.lock();
        known.generation += 1;
        known.holdings.clear();
        known.learnt = Vec::new();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let known = self.lock();
        known.holdings.len() + known.learnt.len()
    }
}

/// Holdings gathered at the start, installed together by [`Learning::finish`]
/// as one sorted array — far smaller than a hash map of as many.
pub struct Learning<'a> {
    known: &'a HeldSeats,
    seen: Generation,
    keyed: Vec<(u128, Holding)>,
}

impl Learning<'_> {
    pub fn add(&mut self, org: OrgId, product: &str, serial: &str, holding: Holding) {
        self.keyed.push((self.known.key(org, product, serial), holding));
    }

    /// Whether an admin's change came since the learning began (then what
    /// was read may be out of date, and is dropped).
    pub fn is_stale(&self) -> bool {
        self.known.generation() != self.seen
    }

    /// Installs what was learnt; false when it came too late.
    pub fn finish(self) -> bool {
        let Learning { known, seen, mut keyed } = self;
        keyed.sort_unstable_by_key(|(key, _)| *key);
        keyed.shrink_to_fit();
        let mut inner = known.lock();
        if inner.generation != seen.0 {
            return false;
        }
        inner.learnt = keyed;
        true
    }
}

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

/// Product keys this process has seen accepted, by digest, for as long as
/// the database has not changed since: every commit to a SQLite database in
/// WAL mode, by any process, bumps the change counter in the header of its
/// wal-index (`<file>-shm`, https://www.sqlite.org/walformat.html — the
/// counter `PRAGMA data_version` reads), and a changed counter empties this.
/// So a key the operator rotates from the command line is refused at once,
/// and a check-in's authentication costs a 4-byte read instead of a query.
///
/// This process's own commits on the check-in path (group decisions and
/// `last seen` writes) change no organization: they carry the keys over
/// ([`KnownProductKeys::carry_over`]) instead of emptying them, or every group
/// commit would send the check-ins arriving meanwhile to the database.
pub struct KnownProductKeys {
    wal_index: Option<std::fs::File>,
    inner: Mutex<KeysSeen>,
}

/// The keys accepted while the database stood at `version`, by digest.
#[derive(Default)]
struct KeysSeen {
    version: Option<u32>,
    orgs: HashMap<Vec<u8>, OrgId>,
}

impl KnownProductKeys {
    /// Offset of `iChange` in the first copy of the wal-index header.
    const CHANGE_COUNTER: u64 = 8;
    const CAPACITY: usize = 10_000;

    /// Without a wal-index (an in-memory database) nothing is remembered.
    pub fn new(wal_index: Option<std::fs::File>) -> Self {
        KnownProductKeys { wal_index, inner: Mutex::default() }
    }

    /// The database's change counter now, if it can be read.
    #[cfg(unix)]
    pub fn version(&self) -> Option<u32> {
        use std::os::unix::fs::FileExt;
        let mut counter = [0u8; 4];
        self.wal_index.as_ref()?.read_exact_at(&mut counter, Self::CHANGE_COUNTER).ok()?;
        Some(u32::from_ne_bytes(counter))
    }

    /// Elsewhere keys are looked up every time.
    #[cfg(not(unix))]
    pub fn version(&self) -> Option<u32> {
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeysSeen> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The organization of a key accepted while the database was at `version`.
    pub fn get(&self, version: Option<u32>, digest: &[u8]) -> Option<OrgId> {
        let version = version?;
        let seen = self.lock();
        if seen.version != Some(version) {
            return None;
        }
        seen.orgs.get(digest).copied()
    }

    /// After a commit of this process that wrote rows but changed no
    /// organization, made holding the write lock it took at counter `before`:
    /// SQLite adds exactly one to the counter for a commit that writes
    /// (`iChange++` in `walFrames`, sqlite3.c), and nobody else could commit
    /// meanwhile, so the keys known at `before` are still right at
    /// `before + 1`. A commit by anyone else after it moves the counter on,
    /// and that empties them as before.
    pub fn carry_over(&self, before: Option<u32>) {
        let Some(before) = before else { return };
        let mut seen = self.lock();
        if seen.version == Some(before) {
            seen.version = Some(before.wrapping_add(1));
        }
    }

    /// Remembers a key found in the database, which was at `version` (read
    /// before the lookup) or later.
    pub fn remember(&self, version: Option<u32>, digest: Vec<u8>, org: OrgId) {
        let Some(version) = version else { return };
        let mut seen = self.lock();
        if seen.version != Some(version) || seen.orgs.len() >= Self::CAPACITY {
            *seen = KeysSeen { version: Some(version), orgs: HashMap::new() };
        }
        seen.orgs.insert(digest, org);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACME: OrgId = OrgId(1);

    fn holding(device_id: i64) -> Holding {
        Holding::new(device_id, 10, None)
    }

    fn held(known: &HeldSeats, org: OrgId, product: &str, serial: &str) -> Option<Holding> {
        known.get(org, product, serial).map(|(holding, _)| holding)
    }

    #[test]
    fn an_answer_read_before_a_clear_is_not_given_after_it() {
        let known = HeldSeats::default();
        known.remember(known.generation(), [(ACME, "editor", "SN-1", holding(1))]);
        let (_, read) = known.get(ACME, "editor", "SN-1").unwrap();
        assert!(known.unchanged_since(read));
        known.clear(); // a revoke or a reclaim, between the read and the answer
        assert!(!known.unchanged_since(read));
    }

    #[test]
    fn a_holding_is_found_by_organization_product_and_serial() {
        let known = HeldSeats::default();
        known.remember(known.generation(), [(ACME, "editor", "SN-1", holding(1))]);
        assert_eq!(held(&known, ACME, "editor", "SN-1"), Some(holding(1)));
        assert_eq!(held(&known, ACME, "viewer", "SN-1"), None, "another product");
        assert_eq!(held(&known, OrgId(2), "editor", "SN-1"), None, "another organization");
        assert_eq!(held(&known, ACME, "editor", "SN-2"), None, "another serial");
        assert_eq!(held(&known, ACME, "edit", "orSN-1"), None, "the same bytes split otherwise");
    }

    #[test]
    fn a_forgotten_seat_is_gone_wherever_it_was_kept_and_nothing_from_before_comes_back() {
        let known = HeldSeats::default();
        let mut learning = known.learning(2);
        learning.add(ACME, "editor", "LEARNT", holding(1));
        learning.add(ACME, "editor", "OTHER", holding(2));
        assert!(learning.finish());
        let lease = Lease::starting(crate::now(), 20);
        known.remember(known.generation(), [(ACME, "editor", "LEASED", Holding::new(3, 10, Some(lease)))]);
        assert_eq!(held(&known, ACME, "editor", "LEASED").and_then(|h| h.lease()), Some(lease));
        let (_, read) = known.get(ACME, "editor", "LEASED").unwrap();
        let decided_before = known.generation();

        known.forget(ACME, "editor", "LEASED");
        known.forget(ACME, "editor", "LEARNT");
        assert_eq!(held(&known, ACME, "editor", "LEASED"), None);
        assert_eq!(held(&known, ACME, "editor", "LEARNT"), None);
        assert_eq!(held(&known, ACME, "editor", "OTHER"), Some(holding(2)), "the others stay");
        assert!(!known.unchanged_since(read), "an answer read before is not given");
        known.remember(decided_before, [(ACME, "editor", "LEASED", holding(3))]);
        assert_eq!(held(&known, ACME, "editor", "LEASED"), None, "a decision from before is not entered");
        known.remember(known.generation(), [(ACME, "editor", "LEARNT", holding(1))]);
        assert_eq!(held(&known, ACME, "editor", "LEARNT"), Some(holding(1)), "a later decision is");
    }

    #[test]
    fn a_decision_made_before_a_clear_is_not_remembered_after_it() {
        let known = HeldSeats::default();
        let before = known.generation();
        known.clear(); // an admin revoked a seat while the decision was made
        known.remember(before, [(ACME, "editor", "SN-1", holding(1))]);
        assert_eq!(held(&known, ACME, "editor", "SN-1"), None);
        known.remember(known.generation(), [(ACME, "editor", "SN-1", holding(1))]);
        assert_eq!(held(&known, ACME, "editor", "SN-1"), Some(holding(1)));
        known.clear();
        assert_eq!(known.len(), 0);
    }

    #[test]
    fn holdings_learnt_at_the_start_are_found_until_a_clear() {
        let known = HeldSeats::default();
        let mut learning = known.learning(100);
        for i in 0..100 {
            learning.add(ACME, "editor", &format!("SN-{i}"), holding(i));
        }
        assert!(learning.finish());
        assert_eq!(held(&known, ACME, "editor", "SN-42"), Some(holding(42)));
        assert_eq!(held(&known, ACME, "editor", "SN-100"), None);
        known.clear();
        assert_eq!(held(&known, ACME, "editor", "SN-42"), None);

        let mut late = known.learning(1);
        late.add(ACME, "editor", "SN-1", holding(1));
        known.clear(); // an admin's change while the start-up read ran
        assert!(late.is_stale());
        assert!(!late.finish());
        assert_eq!(known.len(), 0);
    }

    #[test]
    fn keys_carry_over_this_process_s_commit_and_no_other() {
        let keys = KnownProductKeys::new(None);
        let digest = b"digest".to_vec();
        keys.remember(Some(7), digest.clone(), ACME);
        keys.carry_over(Some(7));
        assert_eq!(keys.get(Some(8), &digest), Some(ACME), "our commit, one past the keys");
        assert_eq!(keys.get(Some(7), &digest), None);
        keys.carry_over(Some(7));
        assert_eq!(keys.get(Some(8), &digest), Some(ACME), "a commit from before the keys' counter moves nothing");
        keys.carry_over(Some(9));
        assert_eq!(keys.get(Some(8), &digest), Some(ACME), "nor one from after another's commit");
        assert_eq!(keys.get(Some(10), &digest), None, "which empties them");
        keys.remember(Some(u32::MAX), digest.clone(), ACME);
        keys.carry_over(Some(u32::MAX));
        assert_eq!(keys.get(Some(0), &digest), Some(ACME), "the counter wraps");
    }

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
