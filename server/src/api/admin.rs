//! The admin JSON API under `/api/v1/admin`: the screens' data and actions for
//! scripts. Every handler takes [`AdminOrg`], so each request is authenticated
//! by an administration key and acts within that key's organization only.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use store::bulk::{BulkAction, BulkOutcome};
use store::{Activity, ActivityQuery, Actor, Device, DeviceDetail, Holder, IgnoredSerial, LicenseStore, Page, PageRequest, PolicyUpdate, Product, ProductPolicy, Store};

use super::{AdminOrg, ApiError, JsonBody, decode_cursor, encode_cursor};
use crate::AppState;
use crate::licensing::Licenser;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/products", get(products))
        .route("/products/{code}", get(product).patch(update_product))
        .route("/products/{code}/policy", get(policy).patch(update_policy))
        .route("/products/{code}/devices", get(product_devices))
        .route("/devices", get(devices))
        .route("/devices.csv", get(devices_csv))
        .route("/bulk", post(bulk))
        .route("/activity", get(activity))
        .route("/activity.csv", get(activity_csv))
        .route("/devices/{serial}", get(device).delete(delete_device))
        .route("/devices/{serial}/ignore", post(ignore_device))
        .route("/devices/{serial}/licenses/{code}", put(assign).delete(unassign))
        .route("/ignored", get(ignored))
        .route("/ignored/{serial}", delete(unignore))
        .route("/settings", get(settings))
        .route("/settings/product-key/rotate", post(rotate_product_key))
        .route("/settings/admin-key/rotate", post(rotate_admin_key))
}

/// A list answer: `{"items": [...], "next_cursor": "…" | null}`.
#[derive(Serialize)]
pub struct List<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

impl<T> From<Page<T>> for List<T> {
    fn from(page: Page<T>) -> Self {
        List { items: page.items, next_cursor: page.next.as_deref().map(encode_cursor) }
    }
}

/// `?limit=&cursor=` (and `q=` where a list is searchable).
#[derive(Deserialize, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ListParams {
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl ListParams {
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

/// One path segment, percent-decoded.
#[derive(Deserialize, FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct Segment(String);

/// A device serial and a product code.
#[derive(Deserialize, FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct DeviceProduct(String, String);

async fn products(AdminOrg(org): AdminOrg, State(store): State<Store>) -> Result<Json<List<Product>>, ApiError> {
    let items = store.products(org.id).await?;
    Ok(Json(List { items, next_cursor: None }))
}

async fn product(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Segment(code): Segment,
) -> Result<Json<Product>, ApiError> {
    Ok(Json(store.product(org.id, &code).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    auto_assign: bool,
}

async fn update_product(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Segment(code): Segment,
    JsonBody(change): JsonBody<ProductChange>,
) -> Result<Json<Product>, ApiError> {
    Ok(Json(store.set_auto_assign(org.id, &code, change.auto_assign, Actor::AdminApi).await?))
}

async fn policy(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Segment(code): Segment,
) -> Result<Json<ProductPolicy>, ApiError> {
    Ok(Json(store.policy(org.id, &code).await?))
}

/// `PATCH /products/{code}/policy` with `{"license_days": n}` (1 to 365).
async fn update_policy(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    State(licenser): State<Arc<Licenser>>,
    Segment(code): Segment,
    JsonBody(update): JsonBody<PolicyUpdate>,
) -> Result<Json<ProductPolicy>, ApiError> {
    if update.is_empty() {
        return Err(ApiError::invalid_request("name what to change: license_days, reclaim_after_days"));
    }
    let policy = store.update_policy(org.id, &code, &update, Actor::AdminApi).await?;
    licenser.forget_terms(org.id, &code);
    Ok(Json(policy))
}

async fn product_devices(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Segment(code): Segment,
    params: ListParams,
) -> Result<Json<List<Holder>>, ApiError> {
    Ok(Json(store.holders(org.id, &code, &params.page()?).await?.into()))
}

async fn devices(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    params: ListParams,
) -> Result<Json<List<Device>>, ApiError> {
    let page = params.page()?;
    Ok(Json(store.devices(org.id, params.q.as_deref(), &page).await?.into()))
}

async fn devices_csv(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    params: ListParams,
) -> Result<axum::response::Response, ApiError> {
    crate::export::devices_csv(&store, org.id, params.q.as_deref()).await
}

/// `POST /bulk`: one action on many devices, named by serial or by a search.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    action: BulkAction,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    serials: Option<Vec<String>>,
    /// Every device whose serial contains this ("" for every device).
    #[serde(default)]
    matching: Option<String>,
}

async fn bulk(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    JsonBody(request): JsonBody<BulkRequest>,
) -> Result<Json<BulkOutcome>, ApiError> {
    let serials = match (request.serials, request.matching) {
        (Some(serials), None) if !serials.is_empty() => serials,
        (None, Some(query)) => store::bulk::matching(&store, org.id, Some(&query)).await?,
        _ => return Err(ApiError::invalid_request("give either serials (a non-empty list) or matching (a search)")),
    };
    let product = request.product.as_deref();
    Ok(Json(store::bulk::apply(&store, org.id, request.action, product, &serials, Actor::AdminApi).await?))
}

/// `?product=&serial=&kind=&actor=&since=&until=` and the paging of lists.
#[derive(Deserialize, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ActivityParams {
    #[serde(flatten)]
    query: ActivityQuery,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The audit log, newest first.
async fn activity(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    params: ActivityParams,
) -> Result<Json<List<Activity>>, ApiError> {
    let paging = ListParams { q: None, limit: params.limit, cursor: params.cursor }.page()?;
    let before = match paging.after {
        Some(id) => Some(id.parse::<i64>().map_err(|_| ApiError::invalid_request("invalid cursor: pass back a next_cursor unchanged"))?),
        None => None,
    };
    let filter = params.query.filter(before, paging.limit)?;
    Ok(Json(store.activity(org.id, &filter).await?.into()))
}

async fn activity_csv(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    params: ActivityParams,
) -> Result<axum::response::Response, ApiError> {
    crate::export::activity_csv(&store, org.id, &params.query).await
}

async fn device(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Segment(serial): Segment,
) -> Result<Json<DeviceDetail>, ApiError> {
    Ok(Json(store.device(org.id, &serial).await?))
}

#[derive(Serialize)]
pub struct DeviceOutcome {
    serial: String,
    deleted: bool,
    ignored: bool,
}

async fn delete_device(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Segment(serial): Segment,
) -> Result<Json<DeviceOutcome>, ApiError> {
    store.delete_device(org.id, &serial, Actor::AdminApi).await?;
    Ok(Json(DeviceOutcome { serial, deleted: true, ignored: false }))
}

async fn ignore_device(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Segment(serial): Segment,
) -> Result<Json<DeviceOutcome>, ApiError> {
    let deleted = store.ignore_device(org.id, &serial, Actor::AdminApi).await?;
    Ok(Json(DeviceOutcome { serial, deleted, ignored: true }))
}

#[derive(Serialize)]
pub struct LicenseOutcome {
    serial: String,
    product: String,
    assigned: bool,
}

async fn assign(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    DeviceProduct(serial, product): DeviceProduct,
) -> Result<Json<LicenseOutcome>, ApiError> {
    store.assign(org.id, &serial, &product, Actor::AdminApi).await?;
    Ok(Json(LicenseOutcome { serial, product, assigned: true }))
}

async fn unassign(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    DeviceProduct(serial, product): DeviceProduct,
) -> Result<Json<LicenseOutcome>, ApiError> {
    store.unassign(org.id, &serial, &product, Actor::AdminApi).await?;
    Ok(Json(LicenseOutcome { serial, product, assigned: false }))
}

async fn ignored(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    params: ListParams,
) -> Result<Json<List<IgnoredSerial>>, ApiError> {
    Ok(Json(store.ignored(org.id, &params.page()?).await?.into()))
}

#[derive(Serialize)]
pub struct Unignored {
    serial: String,
    ignored: bool,
}

async fn unignore(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Segment(serial): Segment,
) -> Result<Json<Unignored>, ApiError> {
    store.unignore(org.id, &serial, Actor::AdminApi).await?;
    Ok(Json(Unignored { serial, ignored: false }))
}

/// The Settings screen's data. `organization` and `product_key` are the short
/// names used across the API; the long ones spell out PRODUCT.md's terms.
#[derive(Serialize)]
pub struct SettingsView {
    organization: String,
    organization_name: String,
    product_key: String,
    product_api_key: String,
}

async fn settings(AdminOrg(org): AdminOrg, State(store): State<Store>) -> Result<Json<SettingsView>, ApiError> {
    let settings = store.settings(org.id).await?;
    Ok(Json(SettingsView {
        organization: settings.organization_name.clone(),
        organization_name: settings.organization_name,
        product_key: settings.product_key.clone(),
        product_api_key: settings.product_key,
    }))
}

#[derive(Serialize)]
pub struct RotatedProductKey {
    product_key: String,
    product_api_key: String,
}

async fn rotate_product_key(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
) -> Result<Json<RotatedProductKey>, ApiError> {
    let key = store.rotate_product_key(org.id, Actor::AdminApi).await?;
    Ok(Json(RotatedProductKey { product_key: key.clone(), product_api_key: key }))
}

#[derive(Serialize)]
pub struct RotatedAdminKey {
    admin_key: String,
    admin_api_key: String,
}

async fn rotate_admin_key(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
) -> Result<Json<RotatedAdminKey>, ApiError> {
    let key = store.rotate_admin_key(org.id, Actor::AdminApi).await?;
    Ok(Json(RotatedAdminKey { admin_key: key.clone(), admin_api_key: key }))
}
