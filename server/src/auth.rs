//! Who a request is: the bearer keys of the JSON APIs, as extractors.
//! (Browser sessions are the screens' own: `app::server`.)

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use store::prelude::*;
use store::{Organization, Store};

use crate::error::ApiError;

/// The key in `Authorization: Bearer <key>`, if the header has that shape.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// The organization whose administration key the request carries.
pub struct AdminOrg(pub Organization);

impl<S: Send + Sync> FromRequestParts<S> for AdminOrg
where
    Store: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers).ok_or_else(ApiError::invalid_api_key)?;
        let store = Store::from_ref(state);
        store.authenticate_admin(key).await?.map(AdminOrg).ok_or_else(ApiError::invalid_api_key)
    }
}

/// The product key the request carries, not yet looked up: the check-in
/// looks it up together with the device (`store::CheckIns::first_look`).
pub struct ProductKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ProductKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers).ok_or_else(ApiError::invalid_api_key)?;
        Ok(ProductKey(key.to_owned()))
    }
}

