//! The admin API's products: seats, auto-assign, policy, who holds the seats
//! and who waits for one.

use super::*;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(products))
        .routes(routes!(product, update_product))
        .routes(routes!(policy, update_policy))
        .routes(routes!(product_devices))
        .routes(routes!(usage))
        .routes(routes!(waiting_line))
        .routes(routes!(remove_from_line))
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

/// Changes a product's policy: `license_days` (1 to 365),
/// `reclaim_after_days` (1 to 3650, or `null` to never reclaim),
/// `seat_model` (`assigned` or `floating`) and `lease_minutes` (5 to 1440);
/// a field left out stays as it is. Turning a product floating gives every
/// seat held a lease from now; turning it back frees the ended leases and
/// keeps the rest as assigned seats.
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
        return Err(ApiError::invalid_request(
            "name what to change: license_days, reclaim_after_days, seat_model, lease_minutes",
        ));
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

/// The devices waiting in a product's line for a seat, longest first.
///
/// A device joins by checking in with `"queue": true` when no seat is free;
/// a freed seat goes to the first in line that still asks. One that has not
/// asked for a lease (floating seats) or an hour (assigned seats) is no
/// longer listed. The whole line, at most 1,000.
#[utoipa::path(
    get,
    path = "/products/{code}/queue",
    params(Code),
    responses(
        (status = 200, description = "The line, `position` 1 first", body = List<Waiting>),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn waiting_line(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Code { code }: Code,
) -> Result<Json<List<Waiting>>, ApiError> {
    let items = store.waiting_line(org.id, &code).await?;
    Ok(Json(List { items, next_cursor: None }))
}

#[derive(Serialize, ToSchema)]
pub struct Removed {
    /// Whether the device was in the line.
    removed: bool,
}

/// Takes a device out of a product's waiting line.
///
/// Safe to repeat (`removed: false`). A device that asks to wait again
/// joins at the back.
#[utoipa::path(
    delete,
    path = "/products/{code}/queue/{serial}",
    params(CodeAndSerial),
    responses(
        (status = 200, description = "Whether it was in the line", body = Removed),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn remove_from_line(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    CodeAndSerial { code, serial }: CodeAndSerial,
) -> Result<Json<Removed>, ApiError> {
    let removed = store.remove_from_line(org.id, &code, &serial, Actor::AdminApi).await?;
    Ok(Json(Removed { removed }))
}

/// A product's usage day by day: its seats, the seats held (for floating
/// seats, the leases in use) and the check-ins refused for want of a seat
/// (and how many devices), oldest first; today is live. A day without a
/// reading carries the one before it, and a product's history starts with
/// its first reading, so a new product has one day.
#[utoipa::path(
    get,
    path = "/products/{code}/usage",
    params(Code, UsageDays),
    responses(
        (status = 200, description = "The product's days, oldest first", body = ProductUsage),
        (status = 400, description = "`invalid_request`: a bad number of days", body = ErrorBody),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
    ),
)]
async fn usage(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Code { code }: Code,
    Params(days): Params<UsageDays>,
) -> Result<Json<ProductUsage>, ApiError> {
    let days = days.days()?;
    Ok(Json(ProductUsage { days: store.product_usage(org.id, &code, days).await? }))
}
