//! The seat decisions of a group of check-ins, made at once.
//!
//! Both backends decide the check-ins of devices that do not (yet) hold their
//! seat in groups, inside one transaction per group, with a handful of
//! statements for the whole group instead of a handful per check-in:
//!
//! 1. read the group's products (under SQLite's write lock; on PostgreSQL
//!    with their rows locked, after the devices' rows);
//! 2. record every device of the group in one upsert, which leaves out the
//!    serials on the ignore list;
//! 3. read in one query whether each device holds, or was revoked, the seat
//!    it asks for;
//! 4. **decide** ([`decide`], here, the same for both backends): one check-in
//!    after another, in the order they arrived, each seeing the seats the ones
//!    before it took;
//! 5. write the seats taken, the products' counts and the audit log, one
//!    statement each.
//!
//! The products' counts are raised by a conditional update that refuses to
//! go past `seats` (`assigned + taken <= seats`), so the database, not this
//! module, has the last word on the seat invariant: if the count had moved,
//! the group would roll back rather than over-assign.
//!
//! Floating seats: a floating product's count includes leases that have
//! ended but were not yet freed. Before deciding, a group in which a device
//! may take such a product's seat first frees its ended leases
//! ([`freeing_ended_leases`]; the backend deletes them under the product's
//! lock), so a seat is free the moment its lease ends without any task
//! running first. Each floating seat the group holds or takes gets a new
//! lease ([`Decided::renewed`], [`Taken`]), written before anyone hears it.

use std::collections::HashMap;

use crate::{CheckIn, Denial, Lease, OrgId, SeatModel, SeatRule, StoreError, Timestamp};

/// The most check-ins decided in one transaction.
pub(crate) const GROUP_MAX: usize = 256;

/// The most check-ins in one group: [`GROUP_MAX`], unless
/// `SEATKEEPER_CHECKIN_GROUP_MAX` says fewer (the benchmark sets 1 to measure
/// the one-transaction-per-check-in design).
pub(crate) fn group_max() -> usize {
    std::env::var("SEATKEEPER_CHECKIN_GROUP_MAX")
        .ok()
        .and_then(|max| max.parse().ok())
        .map_or(GROUP_MAX, |max: usize| max.clamp(1, GROUP_MAX))
}

/// A product as a transaction read it. On the check-in path `assigned` is
/// the count of rows in `assignments` (ended leases included), which the
/// conditional update guards; what an admin reads counts the seats in use.
#[derive(Debug, Clone)]
pub(crate) struct ProductRow {
    pub id: i64,
    pub product: crate::Product,
    /// A floating seat's lease; kept, unused, for assigned seats.
    pub lease_minutes: i64,
}

impl ProductRow {
    /// The lease a seat of this product gets from a decision at `now`: none
    /// for an assigned seat.
    pub(crate) fn lease(&self, now: Timestamp) -> Option<Lease> {
        (self.product.seat_model == SeatModel::Floating).then(|| Lease::starting(now, self.lease_minutes))
    }
}

/// One check-in of the group: which organization's device, of which product,
/// and whether it asks to wait in line when no seat is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Asked<'a> {
    pub org: OrgId,
    pub code: &'a str,
    pub serial: &'a str,
    pub queue: bool,
}

/// A device the group recorded: its id and when it was first and last seen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded {
    pub id: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// Where a device stood with a product before the group: it held a seat of
/// it (a floating one until `lease_until`), or an admin had revoked its seat.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Standing {
    pub held: bool,
    pub revoked: bool,
    pub lease_until: Option<Timestamp>,
}

/// A seat the group gives a device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taken<'a> {
    pub org: OrgId,
    pub product_id: i64,
    pub device_id: i64,
    pub code: &'a str,
    pub serial: &'a str,
    /// A floating seat's lease.
    pub lease: Option<Lease>,
}

/// A check-in's answer, with the id of its device when it was recorded and
/// the lease of the floating seat it holds.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub check_in: CheckIn,
    pub device_id: Option<i64>,
    pub lease: Option<Lease>,
}

pub(crate) type Answer = crate::Result<Decision>;

/// A floating seat held before the group whose lease starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Renewed {
    pub product_id: i64,
    pub device_id: i64,
    pub until: Timestamp,
}

/// What the group decided: an answer per check-in, in order, the seats to
/// write, in the order they were taken, the held floating seats whose lease
/// starts again, each once, and the waiting lines' changes, each a (product
/// id, device id): the devices that join the back of a line now, those that
/// stay in it and still ask, and those that leave it with a seat.
pub(crate) struct Decided<'a> {
    pub answers: Vec<Answer>,
    pub taken: Vec<Taken<'a>>,
    pub renewed: Vec<Renewed>,
    pub joined: Vec<(i64, i64)>,
    pub waiting: Vec<(i64, i64)>,
    pub served: Vec<(i64, i64)>,
    /// Check-ins refused for want of a seat: (product id, device id) and how
    /// many times in this group, in that order.
    pub refused: Vec<((i64, i64), i64)>,
}

/// The devices waiting for a product's seats, longest first (device ids):
/// those that still ask, by product id.
pub(crate) type Lines = HashMap<i64, Vec<i64>>;

/// How long a device in line may go without asking before it no longer
/// counts: a lease for floating seats, an hour for assigned ones.
pub(crate) fn line_cutoff(row: &ProductRow, now: Timestamp) -> Timestamp {
    let minutes = if row.product.seat_model == SeatModel::Floating { row.lease_minutes } else { 60 };
    now.checked_sub(chrono::Duration::minutes(minutes)).unwrap_or(now)
}

/// The products whose waiting lines the decisions need: those with a seat
/// free (which goes to the line first) and those a check-in asks to wait
/// for. A product that is full, with no one asking to wait, needs none:
/// everyone is refused alike.
/// Each with the cutoff of its line at `now` ([`line_cutoff`]), in product
/// id order.
pub(crate) fn lines_needed(
    group: &[Asked<'_>],
    products: &HashMap<(OrgId, &str), ProductRow>,
    now: Timestamp,
) -> Vec<(i64, Timestamp)> {
    let mut needed: Vec<(i64, Timestamp)> = group
        .iter()
        .filter_map(|asked| {
            let row = products.get(&(asked.org, asked.code))?;
            (asked.queue || row.product.seats > row.product.assigned).then(|| (row.id, line_cutoff(row, now)))
        })
        .collect();
    needed.sort_unstable();
    needed.dedup();
    needed
}

impl Decided<'_> {
    /// How many seats the group takes of each product.
    pub(crate) fn taken_per_product(&self) -> Vec<(i64, i64)> {
        per_product(self.taken.iter().map(|taken| (taken.product_id, 1)))
    }

    /// How many check-ins the group refused for want of a seat, by product.
    pub(crate) fn refused_per_product(&self) -> Vec<(i64, i64)> {
        per_product(self.refused.iter().map(|&((product, _), refused)| (product, refused)))
    }
}

/// Counts summed by product, in the order each product first comes (a
/// group touches few products, so a list serves).
fn per_product(counts: impl Iterator<Item = (i64, i64)>) -> Vec<(i64, i64)> {
    let mut totals: Vec<(i64, i64)> = Vec::new();
    for (product, count) in counts {
        match totals.iter_mut().find(|(id, _)| *id == product) {
            Some((_, total)) => *total += count,
            None => totals.push((product, count)),
        }
    }
    totals
}

/// The group's products, each once, in (organization, code) order.
pub(crate) fn products_wanted<'a>(group: &[Asked<'a>]) -> Vec<(OrgId, &'a str)> {
    let mut wanted: Vec<(OrgId, &str)> = group.iter().map(|asked| (asked.org, asked.code)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// The group's check-ins, distinct by device: what the upsert records.
pub(crate) fn devices_to_record<'a>(
    group: &[Asked<'a>],
    products: &HashMap<(OrgId, &str), ProductRow>,
) -> Vec<(OrgId, &'a str)> {
    let mut devices: Vec<(OrgId, &str)> = group
        .iter()
        .filter(|asked| products.contains_key(&(asked.org, asked.code)))
        .map(|asked| (asked.org, asked.serial))
        .collect();
    // Sorted: PostgreSQL locks the rows in this order, the same in every
    // group, so two groups cannot deadlock on each other's devices.
    devices.sort_unstable();
    devices.dedup();
    devices
}

/// The (product, device) pairs whose standing the decisions need.
pub(crate) fn pairs_to_look_up(
    group: &[Asked<'_>],
    products: &HashMap<(OrgId, &str), ProductRow>,
    devices: &HashMap<(OrgId, &str), Recorded>,
) -> Vec<(i64, i64)> {
    let mut pairs: Vec<(i64, i64)> = group
        .iter()
        .filter_map(|asked| {
            let product = products.get(&(asked.org, asked.code))?;
            let device = devices.get(&(asked.org, asked.serial))?;
            Some((product.id, device.id))
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The floating products of the group that a check-in may take a seat of:
/// the backend frees their ended leases (other than the group's own
/// devices') before [`decide`]. Whenever one may be taken, not only when the
/// count leaves none free: devices waiting in line come before a seat that
/// looks free, so the ended ones must be counted free too. A product whose
/// subscription has ended keeps every seat as it was.
pub(crate) fn freeing_ended_leases(
    group: &[Asked<'_>],
    products: &HashMap<(OrgId, &str), ProductRow>,
    devices: &HashMap<(OrgId, &str), Recorded>,
    standings: &HashMap<(i64, i64), Standing>,
    now: Timestamp,
) -> Vec<i64> {
    let mut short: Vec<i64> = group
        .iter()
        .filter_map(|asked| {
            let row = products.get(&(asked.org, asked.code))?;
            let device = devices.get(&(asked.org, asked.serial))?;
            let standing = standings.get(&(row.id, device.id)).copied().unwrap_or_default();
            let may_take = row.product.seat_model == SeatModel::Floating
                && !row.product.term_ended(now)
                && SeatRule::for_device(standing.held, standing.revoked, row.product.auto_assign) == SeatRule::TakeFreeSeat;
            may_take.then_some(row.id)
        })
        .collect();
    short.sort_unstable();
    short.dedup();
    short
}

/// How long after a lease's end its seat is freed: an allowance for the
/// clocks of several server processes, each of which writes the leases it
/// grants by its own clock.
pub(crate) const LEASE_GRACE: chrono::Duration = chrono::Duration::seconds(5);

/// Decides the group's check-ins one after another: each sees the seats
/// taken by the ones before it, so a device asking twice in one group is
/// given one seat, and the last free seat goes to the first that asks.
/// A floating seat taken gets a lease from `now`; one held keeps its lease
/// as written until half of it is left, then gets a new one.
///
/// The line comes first: a free seat goes to a device only if there are
/// more free seats than devices waiting ahead of it (all of the line, for a
/// device not in it). A device refused for want of a seat that asks to wait
/// joins the back of the line; one already in it keeps its place. Its
/// answer says its place (1 is next).
pub(crate) fn decide<'a>(
    group: &[Asked<'a>],
    products: &HashMap<(OrgId, &str), ProductRow>,
    devices: &HashMap<(OrgId, &str), Recorded>,
    standings: &HashMap<(i64, i64), Standing>,
    lines: &Lines,
    now: Timestamp,
) -> Decided<'a> {
    let mut free: HashMap<i64, i64> =
        products.values().map(|row| (row.id, (row.product.seats - row.product.assigned).max(0))).collect();
    let mut lines = lines.clone();
    let mut taken: Vec<Taken<'a>> = Vec::new();
    let mut renewed: Vec<Renewed> = Vec::new();
    let mut joined: Vec<(i64, i64)> = Vec::new();
    let mut waiting: Vec<(i64, i64)> = Vec::new();
    let mut served: Vec<(i64, i64)> = Vec::new();
    let mut answers: Vec<Answer> = group
        .iter()
        .map(|asked| {
            let Some(row) = products.get(&(asked.org, asked.code)) else {
                return Err(StoreError::UnknownProduct(asked.code.to_owned()));
            };
            let answer = |reason: Option<Denial>, seen: Option<&Recorded>, lease: Option<Lease>| Decision {
                check_in: CheckIn {
                    product: asked.code.to_owned(),
                    serial: asked.serial.to_owned(),
                    licensed: reason.is_none(),
                    reason,
                    first_seen: seen.map(|device| device.first_seen),
                    last_seen: seen.map(|device| device.last_seen),
                    lease_expires_at: lease.map(|lease| lease.until),
                    queue_position: None,
                },
                device_id: seen.map(|device| device.id),
                lease,
            };
            let Some(device) = devices.get(&(asked.org, asked.serial)) else {
                // Not recorded: its serial is on the ignore list.
                return Ok(answer(Some(Denial::DeviceIgnored), None, None));
            };
            if row.product.term_ended(now) {
                // Its seats stay as they are for when the term is extended.
                return Ok(answer(Some(Denial::SubscriptionExpired), Some(device), None));
            }
            let standing = standings.get(&(row.id, device.id)).copied().unwrap_or_default();
            let earlier = taken.iter().find(|seat| seat.product_id == row.id && seat.device_id == device.id);
            let line = lines.entry(row.id).or_default();
            let place = line.iter().position(|&waiter| waiter == device.id);
            let decision = match SeatRule::for_device(standing.held || earlier.is_some(), standing.revoked, row.product.auto_assign)
            {
                SeatRule::Holds => {
                    if let Some(place) = place {
                        // It holds a seat (an admin gave it one): it waits no more.
                        line.remove(place);
                        served.push((row.id, device.id));
                    }
                    match (earlier, row.lease(now)) {
                    (Some(seat), _) => answer(None, Some(device), seat.lease),
                    (None, None) => answer(None, Some(device), None),
                    (None, Some(fresh)) => {
                        let written = standing.lease_until.map(|until| Lease::ending(until, row.lease_minutes));
                        let again = renewed.iter().find(|r| r.product_id == row.id && r.device_id == device.id);
                        let lease = match (written, again) {
                            (_, Some(renewal)) => Lease::ending(renewal.until, row.lease_minutes),
                            (Some(written), None) if written.holds_at(now) => written,
                            _ => {
                                renewed.push(Renewed { product_id: row.id, device_id: device.id, until: fresh.until });
                                fresh
                            }
                        };
                        answer(None, Some(device), Some(lease))
                    }
                    }
                }
                SeatRule::Denied(denial) => answer(Some(denial), Some(device), None),
                SeatRule::TakeFreeSeat => match free.get_mut(&row.id) {
                    Some(seats) if *seats > place.unwrap_or(line.len()) as i64 => {
                        *seats -= 1;
                        if let Some(place) = place {
                            line.remove(place);
                            served.push((row.id, device.id));
                        }
                        let lease = row.lease(now);
                        taken.push(Taken {
                            org: asked.org,
                            product_id: row.id,
                            device_id: device.id,
                            code: asked.code,
                            serial: asked.serial,
                            lease,
                        });
                        answer(None, Some(device), lease)
                    }
                    _ => {
                        let pair = (row.id, device.id);
                        if place.is_none() && asked.queue {
                            // Not in the line as read (or no longer asking):
                            // the back of it, from now.
                            line.push(device.id);
                            joined.push(pair);
                        } else if place.is_some() && !waiting.contains(&pair) && !joined.contains(&pair) {
                            waiting.push(pair);
                        }
                        answer(Some(Denial::NoSeatsAvailable), Some(device), None)
                    }
                },
            };
            Ok(decision)
        })
        .collect();
    // Each waiting device's place in its line as the group leaves it.
    for (asked, answer) in group.iter().zip(answers.iter_mut()) {
        let Ok(decision) = answer else { continue };
        let (Some(row), Some(device)) = (products.get(&(asked.org, asked.code)), decision.device_id) else { continue };
        if decision.check_in.reason == Some(Denial::NoSeatsAvailable) {
            let place = lines.get(&row.id).and_then(|line| line.iter().position(|&waiter| waiter == device));
            decision.check_in.queue_position = place.map(|place| place as i64 + 1);
        }
    }
    // In (product, device) order: the order every group writes their counts
    // in, so that two groups cannot deadlock on them.
    let mut refused: std::collections::BTreeMap<(i64, i64), i64> = std::collections::BTreeMap::new();
    for (asked, answer) in group.iter().zip(&answers) {
        let Ok(Decision { check_in, device_id: Some(device), .. }) = answer else { continue };
        let Some(row) = products.get(&(asked.org, asked.code)) else { continue };
        if check_in.reason == Some(Denial::NoSeatsAvailable) {
            *refused.entry((row.id, *device)).or_default() += 1;
        }
    }
    Decided { answers, taken, renewed, joined, waiting, served, refused: refused.into_iter().collect() }
}

/// The error of a group whose conditional count update found fewer free
/// seats than the decisions took: the group rolls back.
pub(crate) fn seats_moved(product_id: i64) -> StoreError {
    StoreError::Unavailable(format!("the seat count of product #{product_id} changed under a group of check-ins"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Product, now};

    fn product(id: i64, seats: i64, assigned: i64, auto_assign: bool) -> ProductRow {
        ProductRow {
            id,
            product: Product {
                code: format!("P{id}"),
                name: format!("Product {id}"),
                seats,
                assigned,
                available: (seats - assigned).max(0),
                auto_assign,
                seat_model: SeatModel::Assigned,
                valid_until: None,
            },
            lease_minutes: 20,
        }
    }

    fn recorded(id: i64) -> Recorded {
        let at = now();
        Recorded { id, first_seen: at, last_seen: at }
    }

    fn licensed(answer: &Answer) -> Result<bool, String> {
        match answer {
            Ok(decision) => Ok(decision.check_in.licensed),
            Err(error) => Err(error.to_string()),
        }
    }

    fn reason(answer: &Answer) -> Option<Denial> {
        answer.as_ref().ok().and_then(|decision| decision.check_in.reason)
    }

    #[test]
    fn the_last_free_seats_go_to_the_first_to_ask_and_a_repeat_holds_its_own() {
        let org = OrgId(1);
        let products = HashMap::from([((org, "P1"), product(1, 3, 1, true))]);
        let devices: HashMap<_, _> = ["a", "b", "c"].iter().zip(1..).map(|(s, id)| ((org, *s), recorded(id))).collect();
        let group: Vec<Asked> =
            ["a", "b", "a", "c"].iter().map(|serial| Asked { org, code: "P1", serial, queue: false }).collect();
        let decided = decide(&group, &products, &devices, &HashMap::new(), &Lines::new(), now());
        let licensed: Vec<_> = decided.answers.iter().map(licensed).collect();
        assert_eq!(licensed, [Ok(true), Ok(true), Ok(true), Ok(false)]);
        assert_eq!(reason(&decided.answers[3]), Some(Denial::NoSeatsAvailable));
        assert_eq!(decided.taken.iter().map(|seat| seat.device_id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(decided.taken_per_product(), [(1, 2)]);
    }

    #[test]
    fn holders_revoked_ignored_unknown_and_manual_products_are_answered_by_the_rule() {
        let org = OrgId(1);
        let products = HashMap::from([
            ((org, "P1"), product(1, 1, 1, true)),
            ((org, "P2"), product(2, 5, 0, false)),
        ]);
        let devices = HashMap::from([((org, "holder"), recorded(1)), ((org, "revoked"), recorded(2))]);
        let standings = HashMap::from([
            ((1, 1), Standing { held: true, ..Standing::default() }),
            ((1, 2), Standing { revoked: true, ..Standing::default() }),
        ]);
        let group = [
            Asked { org, code: "P1", serial: "holder", queue: false },
            Asked { org, code: "P1", serial: "revoked", queue: false },
            Asked { org, code: "P1", serial: "ignored", queue: false },
            Asked { org, code: "NOPE", serial: "holder", queue: false },
            Asked { org, code: "P2", serial: "holder", queue: false },
        ];
        let decided = decide(&group, &products, &devices, &standings, &Lines::new(), now());
        assert_eq!(licensed(&decided.answers[0]), Ok(true));
        assert_eq!(reason(&decided.answers[1]), Some(Denial::RevokedByAdmin));
        assert_eq!(reason(&decided.answers[2]), Some(Denial::DeviceIgnored));
        assert!(decided.answers[2].as_ref().is_ok_and(|d| d.check_in.first_seen.is_none() && d.device_id.is_none()));
        assert_eq!(licensed(&decided.answers[3]), Err("no product with code \"NOPE\"".into()));
        assert_eq!(reason(&decided.answers[4]), Some(Denial::AutoAssignDisabled));
        assert!(decided.taken.is_empty());
    }

    #[test]
    fn an_over_allocated_product_gives_no_seat() {
        let org = OrgId(1);
        let products = HashMap::from([((org, "P1"), product(1, 2, 3, true))]);
        let devices = HashMap::from([((org, "a"), recorded(1))]);
        let decided = decide(&[Asked { org, code: "P1", serial: "a", queue: false }], &products, &devices, &HashMap::new(), &Lines::new(), now());
        assert_eq!(reason(&decided.answers[0]), Some(Denial::NoSeatsAvailable));
    }

    #[test]
    fn floating_seats_held_or_taken_get_a_lease_and_a_product_whose_leases_may_be_freed_is_named() {
        let org = OrgId(1);
        let at = now();
        let mut floating = product(1, 3, 2, true);
        floating.product.seat_model = SeatModel::Floating;
        let products = HashMap::from([((org, "P1"), floating), ((org, "P2"), product(2, 0, 0, true))]);
        let devices: HashMap<_, _> =
            ["holder", "a", "b", "kept"].iter().zip(1..).map(|(serial, id)| ((org, *serial), recorded(id))).collect();
        let written = at + chrono::Duration::minutes(15);
        let standings = HashMap::from([
            // A lease with less than half left, and one with more.
            ((1, 1), Standing { held: true, lease_until: Some(at + chrono::Duration::minutes(9)), ..Standing::default() }),
            ((1, 4), Standing { held: true, lease_until: Some(written), ..Standing::default() }),
        ]);
        let group: Vec<Asked> = [("P1", "holder"), ("P1", "a"), ("P1", "b"), ("P1", "holder"), ("P2", "a"), ("P1", "kept")]
            .iter()
            .map(|(code, serial)| Asked { org, code, serial, queue: false })
            .collect();
        // Devices may take a seat of the floating product; the assigned
        // product is not named (it has no leases to end).
        assert_eq!(freeing_ended_leases(&group, &products, &devices, &standings, at), [1]);

        let until = at + chrono::Duration::minutes(20);
        let decided = decide(&group, &products, &devices, &standings, &Lines::new(), at);
        let leases: Vec<_> =
            decided.answers.iter().map(|answer| answer.as_ref().ok().and_then(|d| d.check_in.lease_expires_at)).collect();
        assert_eq!(leases, [Some(until), Some(until), None, Some(until), None, Some(written)]);
        assert_eq!(reason(&decided.answers[2]), Some(Denial::NoSeatsAvailable));
        assert_eq!(decided.renewed, [Renewed { product_id: 1, device_id: 1, until }], "renewed once, and only where due");
        assert_eq!(decided.taken.iter().map(|seat| (seat.device_id, seat.lease.map(|l| l.until))).collect::<Vec<_>>(), [(2, Some(until))]);
        let lease = decided.taken[0].lease.unwrap();
        assert_eq!(lease.renew_from, at + chrono::Duration::minutes(10), "renewed once half of it is left");
        assert!(lease.holds_at(at) && !lease.holds_at(lease.renew_from));
        let kept = decided.answers[5].as_ref().unwrap().lease.unwrap();
        assert_eq!((kept.until, kept.renew_from), (written, written - chrono::Duration::minutes(10)));
    }

    #[test]
    fn devices_are_recorded_once_each_in_one_order_and_only_for_known_products() {
        let org = OrgId(1);
        let products = HashMap::from([((org, "P1"), product(1, 2, 0, true)), ((org, "P2"), product(2, 2, 0, true))]);
        let group = [
            Asked { org, code: "P1", serial: "z", queue: false },
            Asked { org, code: "P2", serial: "a", queue: false },
            Asked { org, code: "P1", serial: "a", queue: false },
            Asked { org, code: "NOPE", serial: "m", queue: false },
        ];
        assert_eq!(devices_to_record(&group, &products), [(org, "a"), (org, "z")]);
    }
}
