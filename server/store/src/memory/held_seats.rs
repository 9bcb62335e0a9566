//! The devices known to hold their seats (SQLite), answered from memory: see `crate::memory`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Mutex;

use crate::{Lease, OrgId, Timestamp};

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
}
