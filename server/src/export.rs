//! CSV downloads: the audit log and the device list, for the admin API
//! (`/api/v1/admin/activity.csv`, `/api/v1/admin/devices.csv`, by key) and for
//! the screens' download links (`/activity.csv`, `/devices.csv`, by the
//! browser's session). Both take the same filters as the lists they export.
//!
//! A download streams: each page of rows is read from the store when the
//! client has taken the one before, so a million rows, or a reader that
//! takes its time, hold one page in memory rather than the whole file.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use store::prelude::*;
use store::{Activity, ActivityQuery, Device, OrgId, Organization, PageRequest, Store, StoreError};

use crate::error::ApiError;

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
    let filter = query.filter(None, PAGE)?;
    let store = store.clone();
    let header = ["at", "actor", "kind", "product", "serial", "detail"];
    download("activity.csv", &header, move |before: Option<i64>| {
        let (store, filter) = (store.clone(), store::ActivityFilter { before, ..filter.clone() });
        async move {
            let page = store.activity(org, &filter).await?;
            let mut csv = Csv::default();
            for Activity { at, actor, kind, product, serial, detail, .. } in &page.items {
                let at = at.rfc3339();
                csv.row(&[at.as_str(), actor.as_str(), kind.as_str(), opt(product), opt(serial), opt(detail)]);
            }
            Ok((csv, page.next.and_then(|id| id.parse().ok())))
        }
    })
    .await
}

/// Every device whose serial contains `q` (all without it), by serial.
pub async fn devices_csv(store: &Store, org: OrgId, q: Option<&str>) -> Result<Response, ApiError> {
    let q = q.filter(|q| !q.is_empty()).map(str::to_owned);
    let store = store.clone();
    let header = ["serial", "first_seen", "last_seen", "seats_assigned"];
    download("devices.csv", &header, move |after: Option<String>| {
        let (store, q) = (store.clone(), q.clone());
        async move {
            let page = store.devices(org, q.as_deref(), &PageRequest { after, limit: PAGE }).await?;
            let mut csv = Csv::default();
            for Device { serial, first_seen, last_seen, seats_assigned } in &page.items {
                let time = |at: &store::Timestamp| at.rfc3339();
                csv.row(&[serial.as_str(), &time(first_seen), &time(last_seen), &seats_assigned.to_string()]);
            }
            Ok((csv, page.next))
        }
    })
    .await
}

/// A CSV download of the pages `page` reads, each from where the one before
/// ended, up to [`MAX_ROWS`] rows. The first page is read before answering,
/// so that a refusal (a bad filter) is an ordinary error answer; a failure
/// later can only cut the download short, and is logged.
async fn download<C, F, Fut>(filename: &str, header: &[&str], mut page: F) -> Result<Response, ApiError>
where
    C: Send + 'static,
    F: FnMut(Option<C>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Csv, Option<C>), StoreError>> + Send + 'static,
{
    let mut first = Csv::default();
    first.row(header);
    let (rows, next) = page(None).await?;
    first.text.push_str(&rows.text);
    let read = rows.rows;
    let rest = stream::try_unfold((page, next, read), |(mut page, next, read)| async move {
        let Some(next) = next.filter(|_| read < MAX_ROWS) else { return Ok(None) };
        let (rows, after) = page(Some(next)).await.inspect_err(|error| tracing::error!(%error, "a CSV download stopped"))?;
        let read = read + rows.rows;
        Ok::<_, StoreError>(Some((Bytes::from(rows.text), (page, after, read))))
    });
    let body = Body::from_stream(stream::once(async move { Ok(Bytes::from(first.text)) }).chain(rest));
    let disposition = format!("attachment; filename=\"{filename}\"");
    let headers = [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)];
    Ok((headers, body).into_response())
}

fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or_default()
}

/// RFC 4180 text, with cells that a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) prefixed with `'`: serials come from devices.
#[derive(Default)]
struct Csv {
    text: String,
    rows: usize,
}

impl Csv {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let mut csv = Csv::default();
        csv.row(&["a", "b"]);
        csv.row(&["plain", "with,comma"]);
        csv.row(&["say \"hi\"", "=SUM(A1)"]);
        csv.row(&["-1", "line\nbreak"]);
        assert_eq!(
            csv.text,
            "a,b\r\nplain,\"with,comma\"\r\n\"say \"\"hi\"\"\",\"'=SUM(A1)\"\r\n\"'-1\",\"line\nbreak\"\r\n"
        );
        assert_eq!(csv.rows, 4);
    }
}
