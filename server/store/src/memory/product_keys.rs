//! The product keys accepted since the database last changed (SQLite): see `crate::memory`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::OrgId;

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
}
