//! Server-only helpers for the server functions: the store, the signed-in
//! organization, and finishing a form post made without JavaScript.
//!
//! Every server function is a public endpoint, so each one starts with
//! [`require_org`]: the page gate in the browser is a convenience, not the
//! access control.

use http::header::{self, HeaderValue};
use http::request::Parts;
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use store::{ErrorCode, Organization, Store, StoreError};

use crate::ui::{Moment, UiError, encode_segment};

pub const SESSION_COOKIE: &str = "seatkeeper_session";
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 60 * 60);

/// A flag the server's failed-authentication throttle puts on each request.
/// A server function that refuses the credentials it was given without
/// answering 401 (a sign-in form sent back to its page) raises it, so that
/// the refusal counts all the same.
#[derive(Clone, Default)]
pub struct CredentialsRefused(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CredentialsRefused {
    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Tells the throttle that this request's credentials were refused.
pub fn credentials_refused() {
    if let Some(flag) = request().and_then(|parts| parts.extensions.get::<CredentialsRefused>().cloned()) {
        flag.raise();
    }
}

pub fn store() -> Result<Store, UiError> {
    use_context::<Store>().ok_or_else(|| UiError::new(ErrorCode::Internal.as_str()))
}

impl From<StoreError> for UiError {
    fn from(error: StoreError) -> Self {
        match error.code() {
            // The signed-in organization is gone.
            ErrorCode::UnknownOrganization => UiError::new("signed_out"),
            // Its words name what was wrong with the input.
            ErrorCode::InvalidRequest | ErrorCode::Conflict => UiError { code: error.code().to_string(), message: error.to_string() },
            ErrorCode::Internal => {
                tracing::error!(%error, "store failure in a server function");
                UiError::new(ErrorCode::Internal.as_str())
            }
            code => UiError::new(code.as_str()),
        }
    }
}

fn request() -> Option<Parts> {
    use_context::<Parts>()
}

pub fn cookie(name: &str) -> Option<String> {
    cookie_in(&request()?.headers, name)
}

/// A cookie of a request's headers, for handlers outside Leptos too.
pub fn cookie_in(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
    })
}

/// Whether the browser reached us over HTTPS (directly, or through a proxy
/// that says so).
fn over_https() -> bool {
    request().is_some_and(|parts| {
        parts.uri.scheme_str() == Some("https")
            || parts.headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
    })
}

/// Sets (or, with no value, clears) an HttpOnly, SameSite=Strict cookie,
/// `Secure` when served over HTTPS.
pub fn set_cookie(name: &str, value: Option<&str>, max_age: std::time::Duration) {
    let Some(response) = use_context::<ResponseOptions>() else { return };
    let secure = if over_https() { "; Secure" } else { "" };
    let cookie = match value {
        Some(value) => format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", max_age.as_secs()),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.append_header(header::SET_COOKIE, value);
    }
}

/// The organization this browser is signed in for, if any.
pub async fn session_org() -> Result<Option<Organization>, UiError> {
    let Some(session) = cookie(SESSION_COOKIE) else { return Ok(None) };
    use store::prelude::*;
    Ok(store()?.session(&session).await?)
}

/// The signed-in organization, or the `signed_out` error.
pub async fn require_org() -> Result<Organization, UiError> {
    session_org().await?.ok_or_else(|| UiError::new("signed_out"))
}

/// Ends a server function that loads a page's data: a failure answers with
/// the status that fits it.
pub fn respond<T>(result: Result<T, UiError>) -> Result<T, UiError> {
    // While a page renders on the server it calls these functions directly;
    // the page itself answers 200 with the error (or the sign-in dialog) in it.
    let called_over_http = request().is_some_and(|parts| parts.uri.path().starts_with("/api/"));
    if let (Err(error), Some(response), true) = (&result, use_context::<ResponseOptions>(), called_over_http) {
        response.set_status(status_of(error));
    }
    result
}

/// Whether this request is a plain HTML form post (JavaScript off).
fn plain_form_post() -> bool {
    request().is_some_and(|parts| {
        parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
    })
}

/// Ends a server function that a form posts to. With JavaScript the result
/// goes back to the page as it is. Without, the browser is sent back to the
/// page it came from (the form's `?back=`, see `ui::posting_to`, or else the
/// `Referer`), with `?error=code&form=id` on failure and without them
/// on success, so the re-rendered page shows the error next to its form.
pub fn finish_form<T>(form: &str, result: Result<T, UiError>) -> Result<T, UiError> {
    finish_form_with(form, result, None, None)
}

/// [`finish_form`], and on success without JavaScript `done=<told>` on the
/// way back (the page turns it into words it knows; see `devices::told`).
pub fn finish_form_telling<T>(form: &str, result: Result<T, UiError>, told: Option<String>) -> Result<T, UiError> {
    finish_form_with(form, result, told, None)
}

/// [`finish_form`], going on to the page `next` (of this site) instead of
/// back, with the error if there is one: for forms whose page is gone
/// afterwards, such as a deleted device's.
pub fn finish_form_then<T>(form: &str, result: Result<T, UiError>, next: Option<&str>) -> Result<T, UiError> {
    finish_form_with(form, result, None, next)
}

fn finish_form_with<T>(form: &str, result: Result<T, UiError>, told: Option<String>, next: Option<&str>) -> Result<T, UiError> {
    let result = respond(result);
    if !plain_form_post() {
        return result;
    }
    let back = match next {
        Some(next) => same_site_path(next),
        None => request()
            .and_then(|parts| {
                let query = parts.uri.query().unwrap_or_default();
                form_urlencoded::parse(query.as_bytes())
                    .find(|(name, _)| name == "back")
                    .map(|(_, back)| back.into_owned())
                    .or_else(|| parts.headers.get(header::REFERER).and_then(|v| v.to_str().ok()).map(str::to_owned))
            })
            .map(|back| same_site_path(&back))
            .unwrap_or_else(|| "/".to_owned()),
    };
    let (path, query) = back.split_once('?').unwrap_or((&back, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("error=") && !p.starts_with("form=") && !p.starts_with("done="))
        .map(str::to_owned)
        .collect();
    match (&result, told) {
        (Err(error), _) => pairs.extend([format!("error={}", error.code), format!("form={}", encode_segment(form))]),
        (Ok(_), Some(told)) => pairs.push(format!("done={told}")),
        (Ok(_), None) => {}
    }
    let location = if pairs.is_empty() { path.to_owned() } else { format!("{path}?{}", pairs.join("&")) };
    leptos_axum::redirect(&location);
    result
}

/// The HTTP status a failed action answers with (a plain form post is
/// redirected instead).
fn status_of(error: &UiError) -> http::StatusCode {
    use http::StatusCode;
    match error.code.as_str() {
        "signed_out" | "invalid_key" => StatusCode::UNAUTHORIZED,
        "nothing_selected" | "invalid_license_days" | "invalid_reclaim_days" | "invalid_seat_model" | "invalid_alert_percent" | "invalid_webhook_url"
        | "no_webhook_events" | "bad_request" => {
            StatusCode::BAD_REQUEST
        }
        "too_many_webhooks" => StatusCode::CONFLICT,
        store_code => ErrorCode::parse(store_code)
            .and_then(|code| StatusCode::from_u16(code.status()).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The path and query of a URL, so a redirect never leaves this site: one
/// `/`, then printable ASCII without backslashes (browsers drop tabs and
/// read `\\` as `/`, which could make `//elsewhere`). Anything else is `/`.
pub fn same_site_path(url: &str) -> String {
    let without_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let path = if url.contains("://") {
        without_scheme.find('/').map(|at| &without_scheme[at..]).unwrap_or("/")
    } else {
        url
    };
    let plain = path.bytes().all(|byte| byte.is_ascii_graphic() && byte != b'\\');
    if plain && path.starts_with('/') && !path.starts_with("//") {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

/// A product's daily readings as the charts draw them, today's being the
/// live figures (the snapshot of today may be up to an hour old).
pub fn usage_of(rows: &[(String, store::UsagePoint)], product: &store::Product, today: i64) -> Vec<crate::usage::UsagePoint> {
    let mut points: Vec<crate::usage::UsagePoint> = rows
        .iter()
        .filter(|(code, point)| *code == product.code && point.day < today)
        .map(|(_, p)| crate::usage::UsagePoint { day: p.day, seats: p.seats, assigned: p.assigned, refused: 0 })
        .collect();
    points.push(crate::usage::UsagePoint { day: today, seats: product.seats, assigned: product.assigned, refused: 0 });
    points
}

pub fn moment(at: store::Timestamp, now: store::Timestamp) -> Moment {
    let seconds = (now - at).num_seconds().max(0);
    let ago = match seconds {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        86_400..=2_591_999 => format!("{} days ago", seconds / 86_400),
        _ => at.format("%Y-%m-%d").to_string(),
    };
    Moment { utc: at.rfc3339(), ago }
}

/// A time still ahead as the screens show it ("in 12 min"), or "ended".
pub fn moment_ahead(at: store::Timestamp, now: store::Timestamp) -> Moment {
    let seconds = (at - now).num_seconds();
    let ahead = match seconds {
        ..=0 => "ended".to_owned(),
        1..=59 => "in under a minute".to_owned(),
        60..=3599 => format!("in {} min", (seconds + 59) / 60),
        3600..=86_399 => format!("in {} h", seconds / 3600),
        _ => format!("in {} days", seconds / 86_400),
    };
    Moment { utc: at.rfc3339(), ago: ahead }
}

/// The page's Content-Security-Policy: scripts only from this site or inline
/// with this response's nonce (Leptos puts it on the hydration script), the
/// WebAssembly bundle, and no framing.
pub fn content_security_policy() {
    let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<ResponseOptions>()) else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}
