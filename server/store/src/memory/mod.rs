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
mod held_seats;
mod last_seen;
mod product_keys;

pub use held_seats::*;
pub use last_seen::*;
pub use product_keys::*;

