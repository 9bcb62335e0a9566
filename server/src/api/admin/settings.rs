//! The admin API's settings: the organization's name and keys.

use super::*;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(settings))
        .routes(routes!(rotate_product_key))
        .routes(routes!(rotate_admin_key))
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
