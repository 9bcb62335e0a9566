//! `POST /api/v1/checkin`: every installed copy of a vendor's app asks here
//! whether its device holds a seat. After the product key and the
//! organization's check-in rate, the decision itself is
//! [`store::LicenseStore::check_in`], one transaction in the backend in use;
//! a licensed answer then gets its signed license from [`Licenser::issue`].

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use store::{CheckIn, LicenseStore, OrgId, Store, validate};

use super::{ApiError, JsonBody, ProductOrg};
use crate::licensing::{self, Licenser, PublicKeys};
use crate::limits::{Limits, rate_limited};
use crate::observe::Metrics;

#[derive(Deserialize)]
pub struct CheckInRequest {
    product: String,
    serial: String,
    /// Echoed in the signed license, so that an answer captured for one
    /// request cannot be replayed to a device that asked with another nonce.
    #[serde(default)]
    nonce: Option<String>,
}

/// PRODUCT.md's answer, and the signed license when it says `licensed: true`.
#[derive(Serialize)]
pub struct CheckInAnswer {
    #[serde(flatten)]
    check_in: CheckIn,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<String>,
}

pub async fn check_in(
    ProductOrg(org): ProductOrg,
    State(store): State<Store>,
    State(limits): State<Arc<Limits>>,
    State(licenser): State<Arc<Licenser>>,
    State(metrics): State<Arc<Metrics>>,
    JsonBody(request): JsonBody<CheckInRequest>,
) -> Result<Json<CheckInAnswer>, Response> {
    if let Err(wait) = limits.checkins.take(org, Instant::now()) {
        return Err(rate_limited(wait));
    }
    let answer = decide(&store, &licenser, org, request).await.map_err(IntoResponse::into_response)?;
    metrics.check_in(&answer.check_in);
    Ok(Json(answer))
}

async fn decide(store: &Store, licenser: &Licenser, org: OrgId, request: CheckInRequest) -> Result<CheckInAnswer, ApiError> {
    validate::serial(&request.serial)?;
    if let Some(nonce) = &request.nonce {
        licensing::validate_nonce(nonce)?;
    }
    if !validate::is_product_code(&request.product) {
        // No product can have this code, so the database need not be asked.
        return Err(store::StoreError::UnknownProduct(request.product).into());
    }
    let check_in = store.check_in(org, &request.product, &request.serial).await?;
    let license = match check_in.licensed {
        true => Some(licenser.issue(org, &check_in, request.nonce.as_deref()).await?),
        false => None,
    };
    Ok(CheckInAnswer { check_in, license })
}

/// `GET /api/v1/public-keys`: the keys that verify signed licenses, as a JWK
/// set. Public: a device needs no key to fetch them.
pub async fn public_keys(State(licenser): State<Arc<Licenser>>) -> Result<Response, ApiError> {
    let keys: PublicKeys = licenser.public_keys().await?;
    let cache = [(axum::http::header::CACHE_CONTROL, "public, max-age=60")];
    Ok((cache, Json(keys)).into_response())
}
