//! The admin API's devices: the list and its CSV, one device, its seats, delete, ignore, bulk actions and the ignore list.

use super::*;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(devices))
        .routes(routes!(devices_csv))
        .routes(routes!(bulk))
        .routes(routes!(device, delete_device))
        .routes(routes!(ignore_device))
        .routes(routes!(assign, unassign))
        .routes(routes!(ignored))
        .routes(routes!(unignore))
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
