//! The JSON APIs' error answer, `{"error": {"code", "message"}}`: what a
//! store failure, a bad path or a bad query becomes on the wire.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use store::{ErrorCode, StoreError};
use utoipa::ToSchema;

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

    /// A list's cursor that no page of it handed out.
    pub fn invalid_cursor() -> Self {
        ApiError::invalid_request("invalid cursor: pass back a next_cursor unchanged")
    }

    pub fn invalid_api_key() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "missing, malformed or unknown API key")
    }
}

/// Every API error's body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// For programs: `invalid_request`, `invalid_api_key`, `unknown_product`, ….
    code: &'static str,
    /// For people.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let code = error.code();
        match code {
            // The organization behind a key vanished between two statements.
            ErrorCode::UnknownOrganization => return ApiError::invalid_api_key(),
            ErrorCode::Internal => tracing::error!(%error, "store failure"),
            _ => {}
        }
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, code.as_str(), error.public_message())
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

