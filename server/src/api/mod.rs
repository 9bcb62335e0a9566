//! The JSON APIs under `/api/v1`: the public check-in API for devices and the
//! admin API for scripts. This module holds what both share: the error shape,
//! key authentication and strict JSON bodies.

pub mod admin;
pub mod checkin;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;
use store::{LicenseStore, OrgId, Organization, Store, StoreError};

use crate::AppState;

/// The largest request body any API route reads.
pub const BODY_LIMIT: usize = 16 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/checkin", post(checkin::check_in))
        .route("/public-keys", get(checkin::public_keys))
        .nest("/admin", admin::routes())
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

/// An API error: a status and `{"error": {"code", "message"}}`. The message is
/// for people; internal details are logged, never sent.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn invalid_api_key() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "missing, malformed or unknown API key")
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: &self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UnknownProduct(code) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_product", format!("no product with code {code:?}"))
            }
            StoreError::UnknownDevice(serial) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_device", format!("no device with serial {serial:?}"))
            }
            StoreError::NotIgnored(serial) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_ignored",
                format!("serial {serial:?} is not on the ignore list"),
            ),
            // The organization behind a key vanished between two statements.
            StoreError::UnknownOrganization(_) => ApiError::invalid_api_key(),
            StoreError::NoSeatsAvailable => {
                ApiError::new(StatusCode::CONFLICT, "no_seats_available", "no seats available for this product")
            }
            StoreError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Invalid(message) => ApiError::invalid_request(message),
            error @ (StoreError::Database(_) | StoreError::Migrate(_) | StoreError::Unavailable(_)) => {
                tracing::error!(%error, "store failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server could not complete the request")
            }
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid_request(format!("invalid query: {}", rejection.body_text()))
    }
}

/// The key in `Authorization: Bearer <key>`, if the header has that shape.
fn bearer(headers: &HeaderMap) -> Option<&str> {
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

/// The organization whose product key the request carries.
pub struct ProductOrg(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for ProductOrg
where
    Store: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers).ok_or_else(ApiError::invalid_api_key)?;
        let store = Store::from_ref(state);
        store.authenticate_product(key).await?.map(ProductOrg).ok_or_else(ApiError::invalid_api_key)
    }
}

/// A JSON request body, read strictly: `Content-Type: application/json` (415
/// otherwise), at most [`BODY_LIMIT`] bytes (413), and well-formed for `T`
/// (400). Every refusal is an [`ApiError`].
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = read_body(request.into_body()).await?;
        // serde would also take a struct from an array (`["editor", "SN-1"]`);
        // the API speaks only in objects.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::invalid_request("the body must be a JSON object"));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .rsplit_once("+json")
            .is_some_and(|(head, tail)| tail.is_empty() && head.to_ascii_lowercase().starts_with("application/"))
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {} KiB", BODY_LIMIT / 1024),
        )),
        Err(_) => Err(ApiError::invalid_request("the request body could not be read")),
    }
}

/// Cursors are opaque to clients: the serial to continue after, encoded.
pub fn encode_cursor(serial: &str) -> String {
    URL_SAFE_NO_PAD.encode(serial)
}

pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::invalid_request("invalid cursor: pass back a next_cursor unchanged"))
}
