//! `POST /api/v1/checkin`: every installed copy of a vendor's app asks here
//! whether its device holds a seat. The decision itself is
//! [`store::LicenseStore::check_in`], one transaction in the backend in use.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use store::{CheckIn, LicenseStore, Store, validate};

use super::{ApiError, JsonBody, ProductOrg};

#[derive(Deserialize)]
pub struct CheckInRequest {
    product: String,
    serial: String,
}

pub async fn check_in(
    ProductOrg(org): ProductOrg,
    State(store): State<Store>,
    JsonBody(request): JsonBody<CheckInRequest>,
) -> Result<Json<CheckIn>, ApiError> {
    validate::serial(&request.serial)?;
    if !validate::is_product_code(&request.product) {
        // No product can have this code, so the database need not be asked.
        return Err(store::StoreError::UnknownProduct(request.product).into());
    }
    Ok(Json(store.check_in(org, &request.product, &request.serial).await?))
}
