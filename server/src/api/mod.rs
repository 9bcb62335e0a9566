//! The JSON APIs under `/api/v1`: the public check-in API for devices and the
//! admin API for scripts. This module joins them, describes them (OpenAPI)
//! and holds the request shapes both read: strict JSON bodies, query
//! parameters and cursors. Their error answer is `crate::error`, their keys
//! `crate::auth`.

pub mod admin;
pub mod checkin;
mod constraints;

use std::sync::LazyLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

/// The largest request body an API route reads, unless it says otherwise.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The largest body of `POST /admin/bulk`: room for its most devices
/// ([`store::bulk::MAX_DEVICES`]) with the longest serials.
pub const BULK_BODY_LIMIT: usize = 6 * 1024 * 1024;

/// Both APIs, routes and description in one list: every handler below carries
/// its `#[utoipa::path]`, and `routes!` takes the method and path from there
/// for the router as for the OpenAPI description, so neither can name a route
/// the other lacks (`server/tests/openapi.rs` checks the rest).
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkin::check_in))
        .routes(routes!(checkin::release))
        .routes(routes!(checkin::public_keys))
        .routes(routes!(openapi_json))
        .nest("/admin", admin::routes())
}

/// The routes under `/api/v1`; whatever else is asked there gets JSON 404.
pub fn routes() -> Router<AppState> {
    let (router, _) = api().split_for_parts();
    router.fallback(not_found)
}

/// The OpenAPI 3.1 description of both APIs, paths in full.
/// With what the server enforces beyond the handlers' own words
/// ([`constraints`]).
pub fn description() -> serde_json::Value {
    let mut description = OpenApiRouter::with_openapi(Description::openapi()).nest(PREFIX, api()).into_openapi();
    admin::describe_the_key(&mut description);
    describe_common_refusals(&mut description);
    let mut description = serde_json::to_value(description).expect("the OpenAPI description serializes");
    constraints::state(&mut description);
    description
}

/// The refusals that come from what operations share rather than from their
/// handlers, added where an operation does not describe them itself: 400 for
/// a path segment that is not UTF-8 once decoded; 400, 413 and 415 for a
/// JSON body ([`JsonBody`]); 429 from the failed-key throttle in front of
/// every route (`limits::throttle_failed_auth`).
fn describe_common_refusals(description: &mut utoipa::openapi::OpenApi) {
    for (path, item) in description.paths.paths.iter_mut() {
        for operation in operations(item) {
            let mut refusals = vec![("429", "`rate_limited`: too many requests with a bad key from this address; see `Retry-After`")];
            if path.contains('{') {
                refusals.push(("400", "`invalid_request`: a path segment that is not UTF-8"));
            }
            if operation.request_body.is_some() {
                refusals.push(("400", "`invalid_request`: a body that is not the JSON object described"));
                refusals.push(("413", "`payload_too_large`"));
                refusals.push(("415", "`unsupported_media_type`: a body that is not JSON"));
            }
            for (status, words) in refusals {
                operation.responses.responses.entry(status.to_owned()).or_insert_with(|| refusal(words).into());
            }
        }
    }
}

/// The operations of one path of the description.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.patch, &mut item.delete].into_iter().flatten()
}

/// A described error answer: [`ErrorBody`] with these words.
fn refusal(words: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    ResponseBuilder::new().description(words).content("application/json", body).build()
}

/// Where [`routes`] are served.
pub const PREFIX: &str = "/api/v1";

/// What no handler says about itself: the title, the keys and the tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Seatkeeper",
        description = "The public check-in API that devices call, and the admin API for scripts. \
            Errors are `{\"error\": {\"code\", \"message\"}}`; lists are `{\"items\", \"next_cursor\"}` \
            (pass `next_cursor` back as `cursor`).",
        license(name = "MIT", identifier = "MIT"),
    ),
    modifiers(&BearerKeys),
    tags(
        (name = "check-in", description = "For the vendor's software on each device: the product API key"),
        (name = "admin", description = "For an organization's scripts: the administration API key; sees only its own organization"),
        (name = "meta", description = "This description"),
    ),
)]
struct Description;

/// The two keys, both sent as `Authorization: Bearer <key>`.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [("product_key", "The organization's product API key"), ("admin_key", "The organization's administration API key")] {
            let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// The description, made once.
static DESCRIPTION: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(serde_json::to_vec(&description()).expect("the OpenAPI description serializes")));

/// This description of the APIs, in OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 description", content_type = "application/json", body = Object)),
)]
async fn openapi_json() -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=60")];
    (headers, DESCRIPTION.clone()).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

/// Query parameters as `T`; malformed ones are refused as an [`ApiError`].
/// Unknown parameters are let be, so a handler may take several of these.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(Params(params))
    }
}

/// A JSON request body, read strictly: `Content-Type: application/json` (415
/// otherwise), at most `LIMIT` bytes (413), and well-formed for `T` (400).
/// Every refusal is an [`ApiError`].
pub struct JsonBody<T, const LIMIT: usize = BODY_LIMIT>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = read_body(request.into_body(), LIMIT).await?;
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

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {} KiB", limit / 1024),
        )),
        Err(_) => Err(ApiError::invalid_request("the request body could not be read")),
    }
}

/// Cursors are opaque to clients: the serial to continue after, in unpadded
/// base64url.
pub fn encode_cursor(serial: &str) -> String {
    URL_SAFE_NO_PAD.encode(serial)
}

/// Any well-formed cursor names a position: one made by hand continues
/// after whatever serial it spells (its control characters dropped, as no
/// serial has them), and one that spells nothing starts at the beginning.
/// What is not unpadded base64url is refused.
pub fn decode_cursor(cursor: &str) -> Result<Option<String>, ApiError> {
    use base64::alphabet::URL_SAFE;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let bytes = LENIENT
        .decode(cursor)
        .map_err(|_| ApiError::invalid_cursor())?;
    let serial: String = String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| !c.is_control())
        .take(store::validate::SERIAL_MAX_CHARS)
        .collect();
    Ok((!serial.is_empty()).then_some(serial))
}
