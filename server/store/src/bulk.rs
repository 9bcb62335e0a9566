//! Bulk actions: one action (assign or unassign a product, delete, ignore)
//! on many devices at once, each device through the same steps as one at a
//! time (every seat rule and audit-log entry the same), in transactions of
//! [`SLICE`] devices, so that 10,000 devices take a few commits rather than
//! 10,000 (`LicenseStore::bulk`). The outcome counts what was done and why
//! the rest was skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Actor, Assigned, LicenseStore, OrgId, PageRequest, Result, StoreError, validate};

/// The most devices one bulk action may touch.
pub const MAX_DEVICES: usize = 10_000;

/// Devices changed in one transaction of a bulk action: few enough that the
/// check-ins waiting for the same locks meanwhile are not held up long.
pub const SLICE: usize = 250;

/// A device's outcome in a bulk action: its own refusal (a skip) as it is,
/// or the failure that must stop the run.
pub(crate) fn refused_or_failed(outcome: Result<Assigned>) -> Result<Result<Assigned>> {
    match outcome {
        Err(failure @ (StoreError::Database(_) | StoreError::Migrate(_) | StoreError::Unavailable(_))) => Err(failure),
        outcome => Ok(outcome),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Assign,
    Unassign,
    Delete,
    Ignore,
}

impl BulkAction {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "assign" => Some(BulkAction::Assign),
            "unassign" => Some(BulkAction::Unassign),
            "delete" => Some(BulkAction::Delete),
            "ignore" => Some(BulkAction::Ignore),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Assign => "assign",
            BulkAction::Unassign => "unassign",
            BulkAction::Delete => "delete",
            BulkAction::Ignore => "ignore",
        }
    }

    fn past(self) -> &'static str {
        match self {
            BulkAction::Assign => "assigned",
            BulkAction::Unassign => "unassigned",
            BulkAction::Delete => "deleted",
            BulkAction::Ignore => "ignored",
        }
    }

    fn needs_product(self) -> bool {
        matches!(self, BulkAction::Assign | BulkAction::Unassign)
    }
}

/// What a bulk action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkOutcome {
    pub action: BulkAction,
    #[schema(required = true)]
    pub product: Option<String>,
    /// Devices the action was asked to touch.
    pub selected: usize,
    pub done: usize,
    /// Devices left alone, by reason: `no_seats_available`,
    /// `already_assigned`, `unknown_device`.
    pub skipped: BTreeMap<String, usize>,
    /// The outcome in words: "assigned 40, 10 skipped: no seats left".
    pub summary: String,
}

fn reason_words(reason: &str) -> &'static str {
    match reason {
        "no_seats_available" => "no seats left",
        "already_assigned" => "already assigned",
        "unknown_device" => "no such device",
        _ => "other",
    }
}

/// The serials of every device whose serial contains `query` (every device
/// without one), refusing more than [`MAX_DEVICES`].
pub async fn matching(store: &impl LicenseStore, org: OrgId, query: Option<&str>) -> Result<Vec<String>> {
    let query = query.filter(|q| !q.is_empty());
    let mut serials = Vec::new();
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let found = store.devices(org, query, &page).await?;
        serials.extend(found.items.into_iter().map(|device| device.serial));
        if serials.len() > MAX_DEVICES {
            return Err(StoreError::invalid(format!(
                "the search matches more than {MAX_DEVICES} devices; narrow it for a bulk action"
            )));
        }
        match found.next {
            Some(after) => page.after = Some(after),
            None => return Ok(serials),
        }
    }
}

/// Applies the action to each serial. Bad input (a malformed serial, a
/// missing or unknown product, too many devices) is refused before anything
/// changes; a database failure stops the run after the last slice
/// committed (what was done stays done, and is in the audit log).
pub async fn apply(
    store: &impl LicenseStore,
    org: OrgId,
    action: BulkAction,
    product: Option<&str>,
    serials: &[String],
    by: Actor,
) -> Result<BulkOutcome> {
    let product = product.filter(|code| !code.is_empty());
    match (action.needs_product(), product) {
        (true, None) => return Err(StoreError::invalid("name the product to assign or unassign")),
        (false, Some(_)) => return Err(StoreError::invalid("delete and ignore take no product")),
        (true, Some(code)) => {
            store.product(org, code).await?;
        }
        (false, None) => {}
    }
    if serials.len() > MAX_DEVICES {
        return Err(StoreError::invalid(format!("a bulk action takes at most {MAX_DEVICES} devices")));
    }
    for serial in serials {
        validate::serial(serial)?;
    }
    let mut done = 0;
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in store.bulk(org, action, product.unwrap_or_default(), serials, by).await? {
        let skip = match outcome {
            Ok(Assigned::Newly) => {
                done += 1;
                continue;
            }
            Ok(Assigned::Already) => "already_assigned",
            Err(StoreError::NoSeatsAvailable) => "no_seats_available",
            Err(StoreError::UnknownDevice(_)) => "unknown_device",
            Err(error) => return Err(error),
        };
        *skipped.entry(skip.to_owned()).or_default() += 1;
    }
    let mut summary = format!("{} {done}", action.past());
    let skipped_total: usize = skipped.values().sum();
    if skipped_total > 0 {
        let reasons: Vec<String> = skipped.iter().map(|(reason, n)| format!("{n} {}", reason_words(reason))).collect();
        summary.push_str(&format!(", {skipped_total} skipped: {}", reasons.join(", ")));
    }
    Ok(BulkOutcome { action, product: product.map(str::to_owned), selected: serials.len(), done, skipped, summary })
}
