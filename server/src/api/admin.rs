//! The admin JSON API under `/api/v1/admin`: the screens' data and actions for
//! scripts. Every handler takes [`AdminOrg`], so each request is authenticated
//! by an administration key and acts within that key's organization only.
//!
//! Each handler's `#[utoipa::path]` is where its route is declared: method and
//! path for the router, parameters and answers for the OpenAPI description;
//! what they all share (the tag, the key and its 401) is added once by
//! [`describe_the_key`].

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use store::bulk::{BulkAction, BulkOutcome};
use store::prelude::*;
use store::{Activity, ActivityQuery, Actor, Device, DeviceDetail, Holder, IgnoredSerial, Page, PageRequest, PolicyUpdate, Product, ProductPolicy, Store};

use super::{BULK_BODY_LIMIT, JsonBody, Params, decode_cursor, encode_cursor};
use crate::auth::AdminOrg;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(products))
        .routes(routes!(product, update_product))
        .routes(routes!(policy, update_policy))
        .routes(routes!(product_devices))
        .routes(routes!(devices))
        .routes(routes!(devices_csv))
        .routes(routes!(bulk))
        .routes(routes!(activity))
        .routes(routes!(activity_csv))
        .routes(routes!(device, delete_device))
        .routes(routes!(ignore_device))
        .routes(routes!(assign, unassign))
        .routes(routes!(ignored))
        .routes(routes!(unignore))
        .routes(routes!(settings))
        .routes(routes!(rotate_product_key))
        .routes(routes!(rotate_admin_key))
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
        let limit = match self.limit.as_deref() {
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
        };
        let after = self.cursor.as_deref().filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        Ok(PageRequest { after, limit })
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

/// The organization's products, with their seats.
#[utoipa::path(
    get,
    path = "/products",
    responses(
        (status = 200, description = "Every product, by code; never more than one page", body = List<Product>),
    ),
)]
async fn products(AdminOrg(org): AdminOrg, State(store): State<Store>) -> Result<Json<List<Product>>, ApiError> {
    let items = store.products(org.id).await?;
    Ok(Json(List { items, next_cursor: None }))
}

/// One product.
#[utoipa::path(
    get,
    path = "/products/{code}",
    params(Code),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn product(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Code { code }: Code,
) -> Result<Json<Product>, ApiError> {
    Ok(Json(store.product(org.id, &code).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    /// Whether a device checking in gets a free seat without an admin.
    auto_assign: bool,
}

/// Switches a product's auto-assign on or off.
#[utoipa::path(
    patch,
    path = "/products/{code}",
    params(Code),
    request_body = ProductChange,
    responses(
        (status = 200, description = "The product as it is now", body = Product),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn update_product(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Code { code }: Code,
    JsonBody(change): JsonBody<ProductChange>,
) -> Result<Json<Product>, ApiError> {
    Ok(Json(store.set_auto_assign(org.id, &code, change.auto_assign, Actor::AdminApi).await?))
}

/// A product's license validity and idle-seat reclaiming.
#[utoipa::path(
    get,
    path = "/products/{code}/policy",
    params(Code),
    responses(
        (status = 200, description = "The product's policy", body = ProductPolicy),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn policy(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Code { code }: Code,
) -> Result<Json<ProductPolicy>, ApiError> {
    Ok(Json(store.policy(org.id, &code).await?))
}

/// Changes a product's policy: `license_days` (1 to 365) and
/// `reclaim_after_days` (1 to 3650, or `null` to never reclaim); a field
/// left out stays as it is.
#[utoipa::path(
    patch,
    path = "/products/{code}/policy",
    params(Code),
    request_body = PolicyUpdate,
    responses(
        (status = 200, description = "The policy as it is now", body = ProductPolicy),
        (status = 400, description = "`invalid_request`: nothing named, or a number out of range", body = ErrorBody),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn update_policy(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Code { code }: Code,
    JsonBody(update): JsonBody<PolicyUpdate>,
) -> Result<Json<ProductPolicy>, ApiError> {
    // The store takes an empty change as nothing to do; a script that sends
    // one has most likely misspelt a field.
    if update.is_empty() {
        return Err(ApiError::invalid_request("name what to change: license_days, reclaim_after_days"));
    }
    Ok(Json(store.update_policy(org.id, &code, &update, Actor::AdminApi).await?))
}

/// The devices holding a seat of a product, by serial.
#[utoipa::path(
    get,
    path = "/products/{code}/devices",
    params(Code, Paging),
    responses(
        (status = 200, description = "A page of the product's seat holders", body = List<Holder>),
        (status = 400, description = "`invalid_request`: a bad limit or cursor", body = ErrorBody),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn product_devices(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Code { code }: Code,
    Params(paging): Params<Paging>,
) -> Result<Json<List<Holder>>, ApiError> {
    Ok(Json(store.holders(org.id, &code, &paging.page()?).await?.into()))
}

/// The organization's devices, by serial.
#[utoipa::path(
    get,
    path = "/devices",
    params(Search, Paging),
    responses(
        (status = 200, description = "A page of devices", body = List<Device>),
        (status = 400, description = "`invalid_request`: a bad limit or cursor", body = ErrorBody),
    ),
)]
async fn devices(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Params(search): Params<Search>,
    Params(paging): Params<Paging>,
) -> Result<Json<List<Device>>, ApiError> {
    let page = paging.page()?;
    Ok(Json(store.devices(org.id, search.q.as_deref(), &page).await?.into()))
}

/// Every device matching the search, as CSV.
#[utoipa::path(
    get,
    path = "/devices.csv",
    params(Search),
    responses(
        (status = 200, description = "`serial,first_seen,last_seen,seats_assigned`, one device a line", content_type = "text/csv", body = String),
    ),
)]
async fn devices_csv(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Params(search): Params<Search>,
) -> Result<axum::response::Response, ApiError> {
    crate::export::devices_csv(&store, org.id, search.q.as_deref()).await
}

/// One action on many devices: named by `serials`, or every device whose
/// serial contains `matching`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    action: BulkAction,
    /// The product to assign or unassign; only for those two actions.
    #[serde(default)]
    product: Option<String>,
    /// The devices, by serial (at most 10,000; the body may be up to 6 MiB).
    /// Give this or `matching`.
    #[serde(default)]
    serials: Option<Vec<String>>,
    /// Every device whose serial contains this ("" for every device).
    #[serde(default)]
    matching: Option<String>,
}

/// Assigns or unassigns a product, deletes or ignores many devices at once.
///
/// Each device goes through the same rules as one at a time, in its own
/// transaction; the answer counts what was done and why the rest was skipped.
#[utoipa::path(
    post,
    path = "/bulk",
    request_body = BulkRequest,
    responses(
        (status = 200, description = "What was done and what was skipped", body = BulkOutcome),
        (status = 400, description = "`invalid_request`: no devices named, a product where none belongs, too many devices", body = ErrorBody),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn bulk(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    JsonBody(request): JsonBody<BulkRequest, BULK_BODY_LIMIT>,
) -> Result<Json<BulkOutcome>, ApiError> {
    let serials = match (request.serials, request.matching) {
        (Some(serials), None) if !serials.is_empty() => serials,
        (None, Some(query)) => store::bulk::matching(&store, org.id, Some(&query)).await?,
        _ => return Err(ApiError::invalid_request("give either serials (a non-empty list) or matching (a search)")),
    };
    let product = request.product.as_deref();
    Ok(Json(store::bulk::apply(&store, org.id, request.action, product, &serials, Actor::AdminApi).await?))
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/activity",
    params(ActivityQuery, Paging),
    responses(
        (status = 200, description = "A page of changes, newest first", body = List<Activity>),
        (status = 400, description = "`invalid_request`: an unknown kind or actor, a bad time, limit or cursor", body = ErrorBody),
    ),
)]
async fn activity(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Params(query): Params<ActivityQuery>,
    Params(paging): Params<Paging>,
) -> Result<Json<List<Activity>>, ApiError> {
    let paging = paging.page()?;
    let before = match paging.after {
        Some(id) => Some(id.parse::<i64>().map_err(|_| ApiError::invalid_request("invalid cursor: pass back a next_cursor unchanged"))?),
        None => None,
    };
    let filter = query.filter(before, paging.limit)?;
    Ok(Json(store.activity(org.id, &filter).await?.into()))
}

/// Every change matching the filters, as CSV, newest first.
#[utoipa::path(
    get,
    path = "/activity.csv",
    params(ActivityQuery),
    responses(
        (status = 200, description = "`at,actor,kind,product,serial,detail`, one change a line", content_type = "text/csv", body = String),
        (status = 400, description = "`invalid_request`: an unknown kind or actor, a bad time", body = ErrorBody),
    ),
)]
async fn activity_csv(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Params(query): Params<ActivityQuery>,
) -> Result<axum::response::Response, ApiError> {
    crate::export::activity_csv(&store, org.id, &query).await
}

/// One device, with every product of the organization and whether the
/// device holds a seat of it.
#[utoipa::path(
    get,
    path = "/devices/{serial}",
    params(Serial),
    responses(
        (status = 200, description = "The device and its licenses", body = DeviceDetail),
        (status = 404, description = "`unknown_device`", body = ErrorBody),
    ),
)]
async fn device(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Serial { serial }: Serial,
) -> Result<Json<DeviceDetail>, ApiError> {
    Ok(Json(store.device(org.id, &serial).await?))
}

#[derive(Serialize, ToSchema)]
pub struct DeviceOutcome {
    serial: String,
    /// Whether the device was deleted (ignoring deletes it when it exists).
    deleted: bool,
    /// Whether the serial is now on the ignore list.
    ignored: bool,
}

/// Deletes a device and frees its seats; it comes back at its next check-in.
#[utoipa::path(
    delete,
    path = "/devices/{serial}",
    params(Serial),
    responses(
        (status = 200, description = "The device is gone", body = DeviceOutcome),
        (status = 404, description = "`unknown_device`", body = ErrorBody),
    ),
)]
async fn delete_device(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Serial { serial }: Serial,
) -> Result<Json<DeviceOutcome>, ApiError> {
    store.delete_device(org.id, &serial, Actor::AdminApi).await?;
    Ok(Json(DeviceOutcome { serial, deleted: true, ignored: false }))
}

/// Puts a serial on the ignore list, deleting the device if it exists: its
/// check-ins are then answered `device_ignored` and not recorded.
#[utoipa::path(
    post,
    path = "/devices/{serial}/ignore",
    params(Serial),
    responses(
        (status = 200, description = "The serial is ignored", body = DeviceOutcome),
        (status = 400, description = "`invalid_request`: not a valid serial", body = ErrorBody),
    ),
)]
async fn ignore_device(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Serial { serial }: Serial,
) -> Result<Json<DeviceOutcome>, ApiError> {
    let deleted = store.ignore_device(org.id, &serial, Actor::AdminApi).await?;
    Ok(Json(DeviceOutcome { serial, deleted, ignored: true }))
}

#[derive(Serialize, ToSchema)]
pub struct LicenseOutcome {
    serial: String,
    product: String,
    /// Whether the device now holds a seat of the product.
    assigned: bool,
}

/// Gives a device a seat of a product.
#[utoipa::path(
    put,
    path = "/devices/{serial}/licenses/{code}",
    params(SerialAndCode),
    responses(
        (status = 200, description = "The device holds a seat (also when it already did)", body = LicenseOutcome),
        (status = 404, description = "`unknown_device` or `unknown_product`", body = ErrorBody),
        (status = 409, description = "`no_seats_available`", body = ErrorBody),
    ),
)]
async fn assign(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    SerialAndCode { serial, code: product }: SerialAndCode,
) -> Result<Json<LicenseOutcome>, ApiError> {
    store.assign(org.id, &serial, &product, Actor::AdminApi).await?;
    Ok(Json(LicenseOutcome { serial, product, assigned: true }))
}

/// Takes a device's seat of a product back; the device is not given one by
/// auto-assign again until an admin assigns it.
#[utoipa::path(
    delete,
    path = "/devices/{serial}/licenses/{code}",
    params(SerialAndCode),
    responses(
        (status = 200, description = "The device holds no seat of the product", body = LicenseOutcome),
        (status = 404, description = "`unknown_device` or `unknown_product`", body = ErrorBody),
    ),
)]
async fn unassign(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    SerialAndCode { serial, code: product }: SerialAndCode,
) -> Result<Json<LicenseOutcome>, ApiError> {
    store.unassign(org.id, &serial, &product, Actor::AdminApi).await?;
    Ok(Json(LicenseOutcome { serial, product, assigned: false }))
}

/// The ignore list, by serial.
#[utoipa::path(
    get,
    path = "/ignored",
    params(Paging),
    responses(
        (status = 200, description = "A page of ignored serials", body = List<IgnoredSerial>),
        (status = 400, description = "`invalid_request`: a bad limit or cursor", body = ErrorBody),
    ),
)]
async fn ignored(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Params(paging): Params<Paging>,
) -> Result<Json<List<IgnoredSerial>>, ApiError> {
    Ok(Json(store.ignored(org.id, &paging.page()?).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct Unignored {
    serial: String,
    /// Always `false`: the serial may check in again.
    ignored: bool,
}

/// Takes a serial off the ignore list.
#[utoipa::path(
    delete,
    path = "/ignored/{serial}",
    params(Serial),
    responses(
        (status = 200, description = "The serial may check in again", body = Unignored),
        (status = 404, description = "`not_ignored`", body = ErrorBody),
    ),
)]
async fn unignore(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Serial { serial }: Serial,
) -> Result<Json<Unignored>, ApiError> {
    store.unignore(org.id, &serial, Actor::AdminApi).await?;
    Ok(Json(Unignored { serial, ignored: false }))
}

/// The Settings screen's data. `organization` and `product_key` are the short
/// names used across the API; the long ones spell out the terms of docs/contract.md.
#[derive(Serialize, ToSchema)]
pub struct SettingsView {
    organization: String,
    organization_name: String,
    product_key: String,
    product_api_key: String,
}

/// The organization's name and its product API key.
#[utoipa::path(
    get,
    path = "/settings",
    responses(
        (status = 200, description = "The organization's settings", body = SettingsView),
    ),
)]
async fn settings(AdminOrg(org): AdminOrg, State(store): State<Store>) -> Result<Json<SettingsView>, ApiError> {
    let settings = store.settings(org.id).await?;
    Ok(Json(SettingsView {
        organization: settings.organization_name.clone(),
        organization_name: settings.organization_name,
        product_key: settings.product_key.clone(),
        product_api_key: settings.product_key,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct RotatedProductKey {
    product_key: String,
    product_api_key: String,
}

/// Replaces the product API key; the old one stops working at once.
#[utoipa::path(
    post,
    path = "/settings/product-key/rotate",
    responses(
        (status = 200, description = "The new product API key", body = RotatedProductKey),
    ),
)]
async fn rotate_product_key(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
) -> Result<Json<RotatedProductKey>, ApiError> {
    let key = store.rotate_product_key(org.id, Actor::AdminApi).await?;
    Ok(Json(RotatedProductKey { product_key: key.clone(), product_api_key: key }))
}

#[derive(Serialize, ToSchema)]
pub struct RotatedAdminKey {
    admin_key: String,
    admin_api_key: String,
}

/// Replaces the administration API key; the one this request carried stops
/// working at once.
#[utoipa::path(
    post,
    path = "/settings/admin-key/rotate",
    responses(
        (status = 200, description = "The new administration API key", body = RotatedAdminKey),
    ),
)]
async fn rotate_admin_key(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
) -> Result<Json<RotatedAdminKey>, ApiError> {
    let key = store.rotate_admin_key(org.id, Actor::AdminApi).await?;
    Ok(Json(RotatedAdminKey { admin_key: key.clone(), admin_api_key: key }))
}
