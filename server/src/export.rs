//! CSV downloads: the audit log and the device list, for the admin API
//! (`/api/v1/admin/activity.csv`, `/api/v1/admin/devices.csv`, by key) and for
//! the screens' download links (`/activity.csv`, `/devices.csv`, by the
//! browser's session). Both take the same filters as the lists they export.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use store::{Activity, ActivityQuery, Device, LicenseStore, OrgId, Organization, PageRequest, Store};

use crate::api::ApiError;

/// The most rows one download holds.
pub const MAX_ROWS: usize = 1_000_000;
const PAGE: u32 = PageRequest::MAX_LIMIT;

/// The organization of the browser session whose cookie the request carries.
pub struct SessionOrg(pub Organization);

impl FromRequestParts<crate::AppState> for SessionOrg {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &crate::AppState) -> Result<Self, ApiError> {
        let signed_out = || ApiError::new(StatusCode::UNAUTHORIZED, "signed_out", "sign in to download this");
        let session = app::server::cookie_in(&parts.headers, app::server::SESSION_COOKIE).ok_or_else(signed_out)?;
        state.store.session(&session).await?.map(SessionOrg).ok_or_else(signed_out)
    }
}

/// `?q=` of the device list.
#[derive(Deserialize)]
pub struct DeviceSearch {
    q: Option<String>,
}

pub async fn activity_for_session(
    SessionOrg(org): SessionOrg,
    State(store): State<Store>,
    Query(query): Query<ActivityQuery>,
) -> Result<Response, ApiError> {
    activity_csv(&store, org.id, &query).await
}

pub async fn devices_for_session(
    SessionOrg(org): SessionOrg,
    State(store): State<Store>,
    Query(search): Query<DeviceSearch>,
) -> Result<Response, ApiError> {
    devices_csv(&store, org.id, search.q.as_deref()).await
}

/// Every change the query selects, newest first.
pub async fn activity_csv(store: &Store, org: OrgId, query: &ActivityQuery) -> Result<Response, ApiError> {
    let mut filter = query.filter(None, PAGE)?;
    let mut csv = Csv::new(&["at", "actor", "kind", "product", "serial", "detail"]);
    loop {
        let page = store.activity(org, &filter).await?;
        for Activity { at, actor, kind, product, serial, detail, .. } in &page.items {
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let row = [at.as_str(), actor.as_str(), kind.as_str(), opt(product), opt(serial), opt(detail)];
            csv.row(&row);
        }
        match page.next.and_then(|id| id.parse().ok()) {
            Some(before) if csv.rows < MAX_ROWS => filter.before = Some(before),
            _ => return Ok(csv.into_response("activity.csv")),
        }
    }
}

/// Every device whose serial contains `q` (all without it), by serial.
pub async fn devices_csv(store: &Store, org: OrgId, q: Option<&str>) -> Result<Response, ApiError> {
    let q = q.filter(|q| !q.is_empty());
    let mut page_request = PageRequest::first(PAGE);
    let mut csv = Csv::new(&["serial", "first_seen", "last_seen", "seats_assigned"]);
    loop {
        let page = store.devices(org, q, &page_request).await?;
        for Device { serial, first_seen, last_seen, seats_assigned } in &page.items {
            let time = |at: &store::Timestamp| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            csv.row(&[serial.as_str(), &time(first_seen), &time(last_seen), &seats_assigned.to_string()]);
        }
        match page.next {
            Some(after) if csv.rows < MAX_ROWS => page_request.after = Some(after),
            _ => return Ok(csv.into_response("devices.csv")),
        }
    }
}

fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or_default()
}

/// RFC 4180 text, with cells that a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) prefixed with `'`: serials come from devices.
struct Csv {
    text: String,
    rows: usize,
}

impl Csv {
    fn new(header: &[&str]) -> Self {
        let mut csv = Csv { text: String::new(), rows: 0 };
        csv.row(header);
        csv.rows = 0;
        csv
    }

    fn row(&mut self, cells: &[&str]) {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
            let quoted = formula || cell.contains([',', '"', '\n', '\r']);
            if quoted {
                self.text.push('"');
            }
            if formula {
                self.text.push('\'');
            }
            for c in cell.chars() {
                if c == '"' {
                    self.text.push('"');
                }
                self.text.push(c);
            }
            if quoted {
                self.text.push('"');
            }
        }
        self.text.push_str("\r\n");
        self.rows += 1;
    }

    fn into_response(self, filename: &str) -> Response {
        let disposition = format!("attachment; filename=\"{filename}\"");
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
            self.text,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let mut csv = Csv::new(&["a", "b"]);
        csv.row(&["plain", "with,comma"]);
        csv.row(&["say \"hi\"", "=SUM(A1)"]);
        csv.row(&["-1", "line\nbreak"]);
        assert_eq!(
            csv.text,
            "a,b\r\nplain,\"with,comma\"\r\n\"say \"\"hi\"\"\",\"'=SUM(A1)\"\r\n\"'-1\",\"line\nbreak\"\r\n"
        );
        assert_eq!(csv.rows, 3);
    }
}
