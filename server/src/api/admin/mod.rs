//! The admin JSON API under `/api/v1/admin`: the screens' data and actions for
//! scripts. Every handler takes [`AdminOrg`], so each request is authenticated
//! by an administration key and acts within that key's organization only.
//!
//! Each handler's `#[utoipa::path]` is where its route is declared: method and
//! path for the router, parameters and answers for the OpenAPI description;
//! what they all share (the tag, the key and its 401) is added once by
//! [`describe_the_key`].

mod activity;
mod devices;
mod products;
mod settings;
mod webhooks;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::bulk::{BulkAction, BulkOutcome};
use store::prelude::*;
use store::{Activity, ActivityQuery, Actor, Device, DeviceDetail, Holder, IgnoredSerial, Page, PageRequest, PolicyUpdate, Product, ProductPolicy, ProductUsage, Store, Waiting};

use super::{BULK_BODY_LIMIT, JsonBody, Params, decode_cursor, encode_cursor};
use crate::auth::AdminOrg;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(products::routes())
        .merge(devices::routes())
        .merge(activity::routes())
        .merge(settings::routes())
        .merge(webhooks::routes())
}

/// What every admin operation shares, said once here rather than on each
/// handler: the tag, the administration key (every handler takes
/// [`AdminOrg`]) and the 401 it answers without one.
pub(super) fn describe_the_key(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    let unauthorized = super::refusal("`invalid_api_key`: missing, malformed or unknown administration key");
    let admin = format!("{}/admin/", super::PREFIX);
    for (_, item) in doc.paths.paths.iter_mut().filter(|(path, _)| path.starts_with(&admin)) {
        for operation in super::operations(item) {
            operation.tags = Some(vec!["admin".to_owned()]);
            operation.security = Some(vec![SecurityRequirement::new("admin_key", Vec::<String>::new())]);
            operation.responses.responses.insert("401".to_owned(), unauthorized.clone().into());
        }
    }
}

/// A list answer: `{"items": [...], "next_cursor": "…" | null}`.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    items: Vec<T>,
    /// Pass it back as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

impl<T> From<Page<T>> for List<T> {
    fn from(page: Page<T>) -> Self {
        List { items: page.items, next_cursor: page.next.as_deref().map(encode_cursor) }
    }
}

/// `?limit=&cursor=`: one page of a list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// How many items at most; 50 when not given.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the page before, unchanged.
    cursor: Option<String>,
}

impl Paging {
    fn page(&self) -> Result<PageRequest, ApiError> {
        let after = match self.cursor.as_deref() {
            Some(cursor) if !cursor.is_empty() => decode_cursor(cursor)?,
            _ => None,
        };
        Ok(PageRequest { after, limit: self.limit()? })
    }

    fn limit(&self) -> Result<u32, ApiError> {
        Ok(match self.limit.as_deref() {
            None | Some("") => PageRequest::DEFAULT_LIMIT,
            Some(text) => match text.parse::<u32>() {
                Ok(limit @ 1..=PageRequest::MAX_LIMIT) => limit,
                _ => {
                    return Err(ApiError::invalid_request(format!(
                        "limit must be a whole number from 1 to {}",
                        PageRequest::MAX_LIMIT
                    )));
                }
            },
        })
    }
}

/// `?days=`: how many days of a product's usage, up to today.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageDays {
    /// Days up to today; 30 when not given.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 366)]
    days: Option<String>,
}

impl UsageDays {
    pub const MAX: i64 = 366;

    fn days(&self) -> Result<i64, ApiError> {
        match self.days.as_deref() {
            None | Some("") => Ok(30),
            Some(text) => match text.parse::<i64>() {
                Ok(days @ 1..=Self::MAX) => Ok(days),
                _ => Err(ApiError::invalid_request(format!("days must be a whole number from 1 to {}", Self::MAX))),
            },
        }
    }
}

/// `?q=`: the devices whose serial contains it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// Part of a serial, in any case; empty or absent for every device.
    q: Option<String>,
}

/// `{code}` in a path: a product.
#[derive(Deserialize, IntoParams, FromRequestParts)]
#[into_params(parameter_in = Path)]
#[from_request(via(Path), rejection(ApiError))]
pub struct Code {
    /// The product's code.
    code: String,
}

/// `{serial}` in a path: a device, or a serial on the ignore list.
#[derive(Deserialize, IntoParams, FromRequestParts)]
#[into_params(parameter_in = Path)]
#[from_request(via(Path), rejection(ApiError))]
pub struct Serial {
    /// The serial.
    serial: String,
}

/// `{code}` and `{serial}` in a path: a product and a device.
#[derive(Deserialize, IntoParams, FromRequestParts)]
#[into_params(parameter_in = Path)]
#[from_request(via(Path), rejection(ApiError))]
pub struct CodeAndSerial {
    /// The product's code.
    code: String,
    /// The device's serial.
    serial: String,
}

/// `{serial}` and `{code}` in a path: a device and a product.
#[derive(Deserialize, IntoParams, FromRequestParts)]
#[into_params(parameter_in = Path)]
#[from_request(via(Path), rejection(ApiError))]
pub struct SerialAndCode {
    /// The device's serial.
    serial: String,
    /// The product's code.
    code: String,
}
