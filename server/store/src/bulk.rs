//! Bulk actions: one action (assign or unassign a product, delete, ignore)
//! on many devices at once, each device in its own transaction through the
//! ordinary store operations, so every seat rule and audit-log entry is the
//! same as one at a time. The outcome counts what was done and why the rest
//! was skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Actor, Assigned, LicenseStore, OrgId, PageRequest, Result, StoreError, validate};

/// The most devices one bulk action may touch.
pub const MAX_DEVICES: usize = 10_000;

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
/// changes; a database failure stops the run where it is (what was done
/// stays done, and is in the audit log).
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
    let mut skip = |reason: &str| *skipped.entry(reason.to_owned()).or_default() += 1;
    for serial in serials {
        let code = product.unwrap_or_default();
        let result = match action {
            BulkAction::Assign => match store.assign(org, serial, code, by).await {
                Ok(Assigned::Newly) => Ok(()),
                Ok(Assigned::Already) => Err("already_assigned"),
                Err(StoreError::NoSeatsAvailable) => Err("no_seats_available"),
                Err(StoreError::UnknownDevice(_)) => Err("unknown_device"),
                Err(error) => return Err(error),
            },
            BulkAction::Unassign => match store.unassign(org, serial, code, by).await {
                Ok(()) => Ok(()),
                Err(StoreError::UnknownDevice(_)) => Err("unknown_device"),
                Err(error) => return Err(error),
            },
            BulkAction::Delete => match store.delete_device(org, serial, by).await {
                Ok(()) => Ok(()),
                Err(StoreError::UnknownDevice(_)) => Err("unknown_device"),
                Err(error) => return Err(error),
            },
            BulkAction::Ignore => match store.ignore_device(org, serial, by).await {
                Ok(_) => Ok(()),
                Err(error) => return Err(error),
            },
        };
        match result {
            Ok(()) => done += 1,
            Err(reason) => skip(reason),
        }
    }
    let mut summary = format!("{} {done}", action.past());
    let skipped_total: usize = skipped.values().sum();
    if skipped_total > 0 {
        let reasons: Vec<String> = skipped.iter().map(|(reason, n)| format!("{n} {}", reason_words(reason))).collect();
        summary.push_str(&format!(", {skipped_total} skipped: {}", reasons.join(", ")));
    }
    Ok(BulkOutcome { action, product: product.map(str::to_owned), selected: serials.len(), done, skipped, summary })
}
