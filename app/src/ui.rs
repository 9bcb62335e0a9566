//! What every screen shares: the error an action can end in, how it is shown
//! next to the form that caused it, and forms that work with and without
//! JavaScript.

use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

/// Why an action or a page load failed, in words for the admin. `code` is
/// stable (the same as the JSON API's); `message` never carries internal
/// details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiError {
    pub code: String,
    pub message: String,
}

impl UiError {
    pub fn new(code: &str) -> Self {
        UiError { code: code.to_owned(), message: message_for(code).to_owned() }
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl FromServerFnError for UiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(error: ServerFnErrorErr) -> Self {
        match error {
            ServerFnErrorErr::Request(_) => UiError::new("unreachable"),
            _ => UiError::new("bad_request"),
        }
    }
}

/// The words for each error code. Errors travel as codes in the URL when
/// JavaScript is off, so only these texts can ever be shown.
pub fn message_for(code: &str) -> &'static str {
    match code {
        "invalid_key" => "That administration API key is not valid. Check it and try again.",
        "signed_out" => "Your session has ended. Sign in again.",
        "no_seats_available" => "No seats available: every seat of this product is assigned.",
        "unknown_product" => "That product does not exist (any more).",
        "unknown_device" => "That device does not exist (any more).",
        "not_ignored" => "That serial is not on the ignore list.",
        "invalid_request" => "That input is not valid.",
        "nothing_selected" => "Select at least one device, or every device matching the search.",
        "invalid_license_days" => "License validity must be a whole number of days from 1 to 365.",
        "invalid_reclaim_days" => "Reclaiming needs a whole number of days from 1 to 3650, or empty for never.",
        "unreachable" => "The server could not be reached. Check your connection and try again.",
        "bad_request" => "The request was not understood. Reload the page and try again.",
        _ => "Something went wrong on the server; nothing was changed. Try again.",
    }
}

/// The error of an action, or the `error` code a form post without
/// JavaScript came back with, shown as an alert.
#[component]
pub fn ActionError<T>(
    value: MappedSignal<Option<Result<T, UiError>>>,
    /// Which form this is, to tell apart several forms on one page when
    /// JavaScript is off (`?error=code&form=id`).
    #[prop(into)]
    form: String,
) -> impl IntoView
where
    T: Send + Sync + 'static,
{
    let query = use_query_map();
    let message = move || {
        if let Some(Err(error)) = &*value.read() {
            return Some(error.message.clone());
        }
        let query = query.read();
        (query.get_str("form") == Some(form.as_str()))
            .then(|| query.get_str("error").map(|code| message_for(code).to_owned()))
            .flatten()
    };
    view! {
        {move || message().map(|message| view! { <p class="error" role="alert">{message}</p> })}
    }
}

/// Becomes true once the page has hydrated: controls that need JavaScript
/// (save-on-change, copy) can tell whether they have it.
pub fn use_hydrated() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    hydrated
}

/// Submits the checkbox's form as soon as it changes (with JavaScript).
pub fn submit_on_change(ev: leptos::ev::Event) {
    use leptos::wasm_bindgen::JsCast;
    if let Some(form) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        .and_then(|input| input.form())
    {
        let _ = form.request_submit();
    }
}

/// A timestamp as the screens show it: relative, with the exact UTC time on
/// hover. Both texts are made on the server, so hydration sees the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moment {
    pub utc: String,
    pub ago: String,
}

#[component]
pub fn When(moment: Moment) -> impl IntoView {
    view! { <time datetime=moment.utc.clone() title=moment.utc>{moment.ago}</time> }
}

/// What a page shows when its data could not be loaded: the sign-in dialog
/// when the session is gone (so a deep link leads back here after signing
/// in), otherwise the error.
#[component]
pub fn Failure(error: UiError) -> impl IntoView {
    if error.code == "signed_out" {
        view! { <div class="narrow"><crate::auth::SignInForm/></div> }.into_any()
    } else {
        view! { <p class="error" role="alert">{error.message}</p> }.into_any()
    }
}

/// A serial (or any text) as one URL path segment or query value.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
