//! Pages of lists ordered by serial.

#[allow(unused_imports)]
use super::*;

/// One page of a list ordered by serial. `next` is the serial to continue
/// after, `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Where a page of a serial-ordered list starts and how long it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Continue after this serial (exclusive).
    pub after: Option<String>,
    pub limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn first(limit: u32) -> Self {
        PageRequest { after: None, limit }
    }

    /// The serial to continue after; every serial is greater than "", so the
    /// first page needs no separate query.
    pub(crate) fn after_serial(&self) -> &str {
        self.after.as_deref().unwrap_or("")
    }

    /// The limit, clamped to what one query may return. One row more than this
    /// is fetched to learn whether another page follows.
    pub(crate) fn clamped_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, Self::MAX_LIMIT))
    }
}

/// A search of 1 or 2 characters, which no trigram index can serve, walks
/// at most this many devices of the serial index per page: a search that
/// matches little of a million devices then costs each request a bounded
/// walk instead of the whole fleet. Such a page may hold fewer matches than
/// asked, even none, with a `next` where its walk stopped.
pub(crate) const SHORT_SEARCH_WALK: i64 = 10_000;

/// Whether a search is short enough to be walked in steps of [`SHORT_SEARCH_WALK`].
pub(crate) fn is_short_search(query: &str) -> bool {
    (1..3).contains(&query.chars().count())
}

impl<T> Page<T> {
    /// A page of a walk that stopped at `walked_to` (the last serial it
    /// looked at) without filling the page: it goes on from there.
    pub(crate) fn walked_to(mut self, walked_to: Option<String>) -> Self {
        if self.next.is_none() {
            self.next = walked_to;
        }
        self
    }

    /// Builds a page from `limit + 1` fetched rows: the extra row only says that
    /// there is more.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: i64, serial: impl Fn(&T) -> &str) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| serial(last).to_owned())
        } else {
            None
        };
        Page { items: rows, next }
    }
}
