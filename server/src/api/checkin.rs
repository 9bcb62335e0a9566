//! `POST /api/v1/checkin`: every installed copy of a vendor's app asks here
//! whether its device holds a seat. The store's first look
//! ([`store::CheckIns::first_look`], which writes nothing) finds the product
//! key's organization and whether the device already holds its seat; after
//! the organization's check-in rate, the answer comes from that seat
//! ([`store::CheckIns::check_in_held`]) or from the store's decision
//! ([`store::CheckIns::check_in`]); a licensed answer then gets its
//! signed license from [`Licenser::issue`].

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use store::prelude::*;
use store::{FirstLook, CheckIn, HeldSeat, OrgId, Store, validate};

use utoipa::ToSchema;

use super::JsonBody;
use crate::auth::ProductKey;
use crate::error::{ApiError, ErrorBody};
use crate::licensing::{self, Licenser, PublicKeys};
use crate::limits::{Limits, rate_limited};
use crate::observe::Metrics;

#[derive(Deserialize, ToSchema)]
pub struct CheckInRequest {
    /// The product's code.
    product: String,
    /// The device's serial: 1 to 128 characters, no control characters.
    serial: String,
    /// Echoed in the signed license, so that an answer captured for one
    /// request cannot be replayed to a device that asked with another nonce:
    /// 1 to 64 printable ASCII characters.
    #[serde(default)]
    nonce: Option<String>,
    /// When no seat is free: wait in the product's line for one. The
    /// refusal then says `queue_position` (1 is next), and a freed seat goes
    /// to the device that has waited longest and still asks.
    #[serde(default)]
    queue: bool,
}

/// the answer docs/contract.md describes, and the signed license when it says `licensed: true`.
#[derive(Serialize, ToSchema)]
pub struct CheckInAnswer {
    #[serde(flatten)]
    check_in: CheckIn,
    /// On a licensed answer only: a JWT signed with Ed25519 (`alg: EdDSA`)
    /// that a device verifies offline with `GET /api/v1/public-keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    license: Option<String>,
}

/// Does this device hold a seat of this product?
///
/// Records the device (first and last seen) and, when the product
/// auto-assigns and has a seat free, gives it one. A denied answer says why
/// in `reason`; it is still a 200.
#[utoipa::path(
    post,
    path = "/checkin",
    tag = "check-in",
    security(("product_key" = [])),
    request_body = CheckInRequest,
    responses(
        (status = 200, description = "The decision, with a signed license when licensed", body = CheckInAnswer),
        (status = 400, description = "`invalid_request`: bad JSON, a missing field, a bad serial or nonce", body = ErrorBody),
        (status = 401, description = "`invalid_api_key`: missing, malformed or unknown product key", body = ErrorBody),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the organization's check-in rate is spent; see `Retry-After`", body = ErrorBody),
    ),
)]
pub async fn check_in(
    State(store): State<Store>,
    State(limits): State<Arc<Limits>>,
    State(licenser): State<Arc<Licenser>>,
    State(metrics): State<Arc<Metrics>>,
    ProductKey(key): ProductKey,
    body: Result<JsonBody<CheckInRequest>, ApiError>,
) -> Result<Json<CheckInAnswer>, Response> {
    let fail = IntoResponse::into_response;
    // The first look, which writes nothing: the key's organization and, for
    // a well-formed request, whether the device already holds its seat.
    let (org, held) = match &body {
        Ok(JsonBody(request)) if request.is_well_formed() => {
            match store.first_look(&key, &request.product, &request.serial).await.map_err(|e| fail(ApiError::from(e)))? {
                FirstLook::UnknownKey => return Err(fail(ApiError::invalid_api_key())),
                FirstLook::Arrived { org, held } => (org, held),
            }
        }
        // A request that will be refused still answers for its key first.
        _ => match store.authenticate_product(&key).await.map_err(|e| fail(ApiError::from(e)))? {
            Some(org) => (org, None),
            None => return Err(fail(ApiError::invalid_api_key())),
        },
    };
    let JsonBody(request) = body.map_err(fail)?;
    if let Err(wait) = limits.checkins.take(org, Instant::now()) {
        return Err(rate_limited(wait));
    }
    let answer = decide(&store, &licenser, org, &key, held, request).await.map_err(fail)?;
    metrics.check_in(&answer.check_in);
    Ok(Json(answer))
}

impl CheckInRequest {
    /// Whether the product code and serial could name a product and a
    /// device; the nonce is checked with the rest in [`decide`].
    fn is_well_formed(&self) -> bool {
        validate::serial(&self.serial).is_ok() && validate::is_product_code(&self.product)
    }
}

/// The answer, after the key and the rate limit: from the seat the first look
/// found, or from the store's decision.
async fn decide(
    store: &Store,
    licenser: &Licenser,
    org: OrgId,
    product_key: &str,
    held: Option<HeldSeat>,
    request: CheckInRequest,
) -> Result<CheckInAnswer, ApiError> {
    validate::serial(&request.serial)?;
    if let Some(nonce) = &request.nonce {
        licensing::validate_nonce(nonce)?;
    }
    if !validate::is_product_code(&request.product) {
        // No product can have this code, so the database need not be asked.
        return Err(store::StoreError::UnknownProduct(request.product).into());
    }
    let check_in = match held {
        Some(seat) => store.check_in_held(&request.product, &request.serial, seat).await?,
        None => store.check_in_or_wait(org, &request.product, &request.serial, request.queue).await?,
    };
    let license = match check_in.licensed {
        true => Some(licenser.issue(org, product_key, &check_in, request.nonce.as_deref()).await?),
        false => None,
    };
    Ok(CheckInAnswer { check_in, license })
}

#[derive(Deserialize, ToSchema)]
pub struct ReleaseRequest {
    /// The product's code.
    product: String,
    /// The device's serial: 1 to 128 characters, no control characters.
    serial: String,
}

#[derive(Serialize, ToSchema)]
pub struct Released {
    /// Whether the device held a floating seat of the product, now free.
    released: bool,
}

/// Give a floating seat back.
///
/// A device that is done with its floating seat (the app is closing) frees
/// it at once for the next device, instead of holding it until its lease
/// ends. Safe to repeat: a device that holds none, or whose seat is
/// assigned rather than floating, is answered `released: false`.
#[utoipa::path(
    post,
    path = "/checkin/release",
    tag = "check-in",
    security(("product_key" = [])),
    request_body = ReleaseRequest,
    responses(
        (status = 200, description = "Whether a floating seat was freed", body = Released),
        (status = 400, description = "`invalid_request`: bad JSON, a missing field, a bad serial", body = ErrorBody),
        (status = 401, description = "`invalid_api_key`: missing, malformed or unknown product key", body = ErrorBody),
        (status = 404, description = "`unknown_product`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the organization's check-in rate is spent; see `Retry-After`", body = ErrorBody),
    ),
)]
pub async fn release(
    State(store): State<Store>,
    State(limits): State<Arc<Limits>>,
    ProductKey(key): ProductKey,
    body: Result<JsonBody<ReleaseRequest>, ApiError>,
) -> Result<Json<Released>, Response> {
    let fail = IntoResponse::into_response;
    // The key answers first, whatever the body.
    let Some(org) = store.authenticate_product(&key).await.map_err(|e| fail(ApiError::from(e)))? else {
        return Err(fail(ApiError::invalid_api_key()));
    };
    let JsonBody(request) = body.map_err(fail)?;
    if let Err(wait) = limits.checkins.take(org, Instant::now()) {
        return Err(rate_limited(wait));
    }
    validate::serial(&request.serial).map_err(|e| fail(ApiError::from(e)))?;
    if !validate::is_product_code(&request.product) {
        return Err(fail(ApiError::from(store::StoreError::UnknownProduct(request.product))));
    }
    let released = store.release(org, &request.product, &request.serial).await.map_err(|e| fail(ApiError::from(e)))?;
    Ok(Json(Released { released }))
}

/// The keys that verify signed licenses.
///
/// A JWK set of Ed25519 keys, retired ones included so that licenses they
/// signed still verify. Public: a device needs no key to fetch it.
#[utoipa::path(
    get,
    path = "/public-keys",
    tag = "check-in",
    responses((status = 200, description = "The public keys, as a JWK set", body = PublicKeys)),
)]
pub async fn public_keys(State(licenser): State<Arc<Licenser>>) -> Result<Response, ApiError> {
    let keys: PublicKeys = licenser.public_keys().await?;
    let cache = [(axum::http::header::CACHE_CONTROL, "public, max-age=60")];
    Ok((cache, Json(keys)).into_response())
}
