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

use std::collections::HashMap;

use crate::{CheckIn, Denial, OrgId, SeatRule, StoreError, Timestamp};

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

/// A product as the group's transaction read it.
#[derive(Debug, Clone)]
pub(crate) struct ProductRow {
    pub id: i64,
    pub product: crate::Product,
}

/// One check-in of the group: which organization's device, of which product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Asked<'a> {
    pub org: OrgId,
    pub code: &'a str,
    pub serial: &'a str,
}

/// A device the group recorded: its id and when it was first and last seen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded {
    pub id: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// Where a device stood with a product before the group: it held a seat of
/// it, or an admin had revoked its seat.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Standing {
    pub held: bool,
    pub revoked: bool,
}

/// A seat the group gives a device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taken<'a> {
    pub org: OrgId,
    pub product_id: i64,
    pub device_id: i64,
    pub code: &'a str,
    pub serial: &'a str,
}

/// Each check-in's answer, with the id of its device when it was recorded.
pub(crate) type Answer = crate::Result<(CheckIn, Option<i64>)>;

/// What the group decided: an answer per check-in, in order, and the seats to
/// write, in the order they were taken.
pub(crate) struct Decided<'a> {
    pub answers: Vec<Answer>,
    pub taken: Vec<Taken<'a>>,
}

impl Decided<'_> {
    /// How many seats the group takes of each product.
    pub(crate) fn taken_per_product(&self) -> Vec<(i64, i64)> {
        let mut counts: Vec<(i64, i64)> = Vec::new();
        for taken in &self.taken {
            match counts.iter_mut().find(|(id, _)| *id == taken.product_id) {
                Some((_, count)) => *count += 1,
                None => counts.push((taken.product_id, 1)),
            }
        }
        counts
    }
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

/// Decides the group's check-ins one after another: each sees the seats
/// taken by the ones before it, so a device asking twice in one group is
/// given one seat, and the last free seat goes to the first that asks.
pub(crate) fn decide<'a>(
    group: &[Asked<'a>],
    products: &HashMap<(OrgId, &str), ProductRow>,
    devices: &HashMap<(OrgId, &str), Recorded>,
    standings: &HashMap<(i64, i64), Standing>,
) -> Decided<'a> {
    let mut free: HashMap<i64, i64> =
        products.values().map(|row| (row.id, (row.product.seats - row.product.assigned).max(0))).collect();
    let mut taken: Vec<Taken<'a>> = Vec::new();
    let answers = group
        .iter()
        .map(|asked| {
            let Some(row) = products.get(&(asked.org, asked.code)) else {
                return Err(StoreError::UnknownProduct(asked.code.to_owned()));
            };
            let answer = |licensed: bool, reason: Option<Denial>, seen: Option<&Recorded>| CheckIn {
                product: asked.code.to_owned(),
                serial: asked.serial.to_owned(),
                licensed,
                reason,
                first_seen: seen.map(|device| device.first_seen),
                last_seen: seen.map(|device| device.last_seen),
            };
            let Some(device) = devices.get(&(asked.org, asked.serial)) else {
                // Not recorded: its serial is on the ignore list.
                return Ok((answer(false, Some(Denial::DeviceIgnored), None), None));
            };
            let standing = standings.get(&(row.id, device.id)).copied().unwrap_or_default();
            let taken_earlier = taken.iter().any(|seat| seat.product_id == row.id && seat.device_id == device.id);
            let denial = match SeatRule::for_device(standing.held || taken_earlier, standing.revoked, row.product.auto_assign)
            {
                SeatRule::Holds => None,
                SeatRule::Denied(denial) => Some(denial),
                SeatRule::TakeFreeSeat => match free.get_mut(&row.id) {
                    Some(seats) if *seats > 0 => {
                        *seats -= 1;
                        taken.push(Taken {
                            org: asked.org,
                            product_id: row.id,
                            device_id: device.id,
                            code: asked.code,
                            serial: asked.serial,
                        });
                        None
                    }
                    _ => Some(Denial::NoSeatsAvailable),
                },
            };
            Ok((answer(denial.is_none(), denial, Some(device)), Some(device.id)))
        })
        .collect();
    Decided { answers, taken }
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
            },
        }
    }

    fn recorded(id: i64) -> Recorded {
        let at = now();
        Recorded { id, first_seen: at, last_seen: at }
    }

    fn licensed(answer: &Answer) -> Result<bool, String> {
        match answer {
            Ok((check_in, _)) => Ok(check_in.licensed),
            Err(error) => Err(error.to_string()),
        }
    }

    fn reason(answer: &Answer) -> Option<Denial> {
        answer.as_ref().ok().and_then(|(check_in, _)| check_in.reason)
    }

    #[test]
    fn the_last_free_seats_go_to_the_first_to_ask_and_a_repeat_holds_its_own() {
        let org = OrgId(1);
        let products = HashMap::from([((org, "P1"), product(1, 3, 1, true))]);
        let devices: HashMap<_, _> = ["a", "b", "c"].iter().zip(1..).map(|(s, id)| ((org, *s), recorded(id))).collect();
        let group: Vec<Asked> =
            ["a", "b", "a", "c"].iter().map(|serial| Asked { org, code: "P1", serial }).collect();
        let decided = decide(&group, &products, &devices, &HashMap::new());
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
            ((1, 1), Standing { held: true, revoked: false }),
            ((1, 2), Standing { held: false, revoked: true }),
        ]);
        let group = [
            Asked { org, code: "P1", serial: "holder" },
            Asked { org, code: "P1", serial: "revoked" },
            Asked { org, code: "P1", serial: "ignored" },
            Asked { org, code: "NOPE", serial: "holder" },
            Asked { org, code: "P2", serial: "holder" },
        ];
        let decided = decide(&group, &products, &devices, &standings);
        assert_eq!(licensed(&decided.answers[0]), Ok(true));
        assert_eq!(reason(&decided.answers[1]), Some(Denial::RevokedByAdmin));
        assert_eq!(reason(&decided.answers[2]), Some(Denial::DeviceIgnored));
        assert!(decided.answers[2].as_ref().is_ok_and(|(check_in, id)| check_in.first_seen.is_none() && id.is_none()));
        assert_eq!(licensed(&decided.answers[3]), Err("no product with code \"NOPE\"".into()));
        assert_eq!(reason(&decided.answers[4]), Some(Denial::AutoAssignDisabled));
        assert!(decided.taken.is_empty());
    }

    #[test]
    fn an_over_allocated_product_gives_no_seat() {
        let org = OrgId(1);
        let products = HashMap::from([((org, "P1"), product(1, 2, 3, true))]);
        let devices = HashMap::from([((org, "a"), recorded(1))]);
        let decided = decide(&[Asked { org, code: "P1", serial: "a" }], &products, &devices, &HashMap::new());
        assert_eq!(reason(&decided.answers[0]), Some(Denial::NoSeatsAvailable));
    }

    #[test]
    fn devices_are_recorded_once_each_in_one_order_and_only_for_known_products() {
        let org = OrgId(1);
        let products = HashMap::from([((org, "P1"), product(1, 2, 0, true)), ((org, "P2"), product(2, 2, 0, true))]);
        let group = [
            Asked { org, code: "P1", serial: "z" },
            Asked { org, code: "P2", serial: "a" },
            Asked { org, code: "P1", serial: "a" },
            Asked { org, code: "NOPE", serial: "m" },
        ];
        assert_eq!(devices_to_record(&group, &products), [(org, "a"), (org, "z")]);
    }
}
