//! `POST /api/v1/checkin`: every installed copy of a vendor's app asks here
//! whether its device holds a seat. After the product key and the
//! organization's check-in rate, the decision itself is
//! [`store::LicenseStore::check_in`], one transaction in the backend in use.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use store::{CheckIn, LicenseStore, OrgId, Store, validate};

use super::{ApiError, JsonBody, ProductOrg};
use crate::limits::{Limits, rate_limited};

#[derive(Deserialize)]
pub struct CheckInRequest {
    product: String,
    serial: String,
}

pub async fn check_in(
    ProductOrg(org): ProductOrg,
    State(store): State<Store>,
    State(limits): State<Arc<Limits>>,
    JsonBody(request): JsonBody<CheckInRequest>,
) -> Result<Json<CheckIn>, Response> {
    if let Err(wait) = limits.checkins.take(org, Instant::now()) {
        return Err(rate_limited(wait));
    }
    Ok(Json(decide(&store, org, request).await.map_err(IntoResponse::into_response)?))
}

async fn decide(store: &Store, org: OrgId, request: CheckInRequest) -> Result<CheckIn, ApiError> {
    validate::serial(&request.serial)?;
    if !validate::is_product_code(&request.product) {
        // No product can have this code, so the database need not be asked.
        return Err(store::StoreError::UnknownProduct(request.product).into());
    }
    Ok(store.check_in(org, &request.product, &request.serial).await?)
}
