//! What every screen shares: the error an action can end in, how it is shown
//! next to the form that caused it, and forms that work with and without
//! JavaScript: plain posts, with islands where JavaScript adds something.

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
            // What the caller sent could not be read as the function's
            // arguments: its mistake, answered 400 (server_fn's own answer
            // would be a 500).
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) | ServerFnErrorErr::Deserialization(_) => {
                #[cfg(feature = "ssr")]
                if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                    response.set_status(http::StatusCode::BAD_REQUEST);
                }
                UiError::new("bad_request")
            }
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
        "conflict" => "That already exists.",
        "nothing_selected" => "Select at least one device, or every device matching the search.",
        "invalid_license_days" => "License validity must be a whole number of days from 1 to 365.",
        "invalid_reclaim_days" => "Reclaiming needs a whole number of days from 1 to 3650, or empty for never.",
        "invalid_alert_percent" => "An alert needs a whole number of percent from 1 to 100, or empty for none.",
        "invalid_seat_model" => "Seats are either assigned or floating, with a lease of 5 to 1440 minutes.",
        "invalid_webhook_url" => "A webhook needs an https:// address on the public internet, such as https://hooks.example.com/seatkeeper.",
        "no_webhook_events" => "Choose at least one event for the webhook.",
        "too_many_webhooks" => "An organization may have at most 20 webhooks; delete one first.",
        "unknown_webhook" => "That webhook does not exist (any more).",
        "unreachable" => "The server could not be reached. Check your connection and try again.",
        "bad_request" => "The request was not understood. Reload the page and try again.",
        _ => "Something went wrong on the server; nothing was changed. Try again.",
    }
}

/// The words for the error a plain form post came back with
/// (`?error=code&form=id`), if it was this form's. Read while the page renders
/// on the server; islands get it as a prop.
pub fn posted_error(form: &str) -> Option<String> {
    let query = use_query_map();
    let query = query.read_untracked();
    (query.get_str("form") == Some(form)).then(|| query.get_str("error").map(|code| message_for(code).to_owned())).flatten()
}

/// Where a plain form of this page posts: the server function's URL with
/// `?back=` naming this page, so the answer comes back here even from a
/// browser that sends no `Referer`. Read while the page renders on the
/// server; islands get it as a prop.
pub fn posting_to(url: &str) -> String {
    let location = leptos_router::hooks::use_location();
    let path = location.pathname.get_untracked();
    let search = location.search.get_untracked();
    let search = search.trim_start_matches('?');
    let here = if search.is_empty() { path } else { format!("{path}?{search}") };
    format!("{url}?back={}", encode_segment(&here))
}

/// An error, announced to screen readers as it appears.
#[component]
pub fn Alert(#[prop(into)] message: String) -> impl IntoView {
    view! { <p class="error" role="alert">{message}</p> }
}

/// The error a form post came back with, shown as an alert next to the form.
#[component]
pub fn PostedError(
    /// Which form this is, to tell apart several forms on one page.
    form: &'static str,
) -> impl IntoView {
    posted_error(form).map(|message| view! { <Alert message/> })
}

/// A checkbox that saves itself (the auto-assign switch, a license): with
/// JavaScript its form is posted in the background as soon as it changes,
/// and the page stays; without, the form's Save button posts it. While a
/// save is on its way the box is disabled, so each answer is about the state
/// it shows and the answers come back in the order of the changes. A
/// refused save flips it back and says why.
#[derive(Clone, Copy)]
pub struct SavingCheckbox {
    pub checked: RwSignal<bool>,
    pub pending: RwSignal<bool>,
    /// The last save's error, or the one a plain post came back with.
    pub error: RwSignal<Option<String>>,
}

impl SavingCheckbox {
    pub fn new(checked: bool, posted: Option<String>) -> Self {
        SavingCheckbox { checked: RwSignal::new(checked), pending: RwSignal::new(false), error: RwSignal::new(posted) }
    }

    /// The checkbox's `on:change`: follows the box and submits its form.
    pub fn on_change(self) -> impl Fn(leptos::ev::Event) + 'static {
        move |ev| {
            use leptos::wasm_bindgen::JsCast;
            self.checked.set(event_target_checked(&ev));
            if let Some(form) = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
                .and_then(|input| input.form())
            {
                let _ = form.request_submit();
            }
        }
    }

    /// The form's `on:submit`: posts it in the background; `saved` gets the
    /// server function's answer when it was saved.
    pub fn on_submit<T>(self, saved: impl Fn(T) + Copy + 'static) -> impl Fn(leptos::ev::SubmitEvent) + 'static
    where
        T: serde::de::DeserializeOwned + 'static,
    {
        #[cfg(not(feature = "hydrate"))]
        let _ = saved;
        move |ev| {
            ev.prevent_default();
            if self.pending.get_untracked() {
                return;
            }
            #[cfg(feature = "hydrate")]
            {
                use leptos::wasm_bindgen::JsCast;
                let Some(form) = ev.target().and_then(|target| target.dyn_into::<web_sys::HtmlFormElement>().ok()) else {
                    return;
                };
                // The fields as they are now, before the box is disabled.
                let fields = web_sys::FormData::new_with_form(&form)
                    .and_then(|data| web_sys::UrlSearchParams::new_with_str_sequence_sequence(&data));
                self.pending.set(true);
                leptos::task::spawn_local(async move {
                    let result = match fields {
                        Ok(fields) => post(&form.action(), fields).await,
                        Err(_) => Err(UiError::new("bad_request")),
                    };
                    self.pending.set(false);
                    match result {
                        Ok(answer) => {
                            self.error.set(None);
                            saved(answer);
                        }
                        Err(failed) => {
                            self.checked.update(|checked| *checked = !*checked);
                            self.error.set(Some(failed.message));
                        }
                    }
                });
            }
        }
    }

    /// The error, as an alert next to the box.
    pub fn alert(self) -> impl Fn() -> Option<AnyView> + Send + Sync + 'static {
        move || self.error.get().map(|message| view! { <Alert message/> }.into_any())
    }
}

/// Posts form fields to a server function as JSON-speaking code does, so the
/// answer is the function's result rather than a page.
#[cfg(feature = "hydrate")]
async fn post<T: serde::de::DeserializeOwned>(url: &str, fields: web_sys::UrlSearchParams) -> Result<T, UiError> {
    let request = gloo_net::http::Request::post(url)
        .header("Accept", "application/json")
        .body(fields)
        .map_err(|_| UiError::new("bad_request"))?;
    let response = request.send().await.map_err(|_| UiError::new("unreachable"))?;
    if response.ok() {
        return response.json::<T>().await.map_err(|_| UiError::new("bad_request"));
    }
    // Only the code is taken from the answer: the words are this side's.
    let code = response.json::<UiError>().await.map(|error| error.code).unwrap_or_default();
    Err(UiError::new(&code))
}

/// Becomes true once the island has hydrated: controls that need JavaScript
/// (save-on-change, copy) can tell whether they have it.
pub fn use_hydrated() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    hydrated
}

/// A form that posts to a server function and, with JavaScript, asks first:
/// for the ones that delete something. Without JavaScript it posts at once.
/// Its contents are rendered on the server and stay as they are.
#[island]
pub fn ConfirmForm(
    /// Where it posts (see [`posting_to`]).
    action: String,
    question: String,
    #[prop(optional)] id: Option<String>,
    #[prop(optional)] class: Option<String>,
    children: Children,
) -> impl IntoView {
    let confirm = move |ev: leptos::ev::SubmitEvent| {
        let confirmed = window().confirm_with_message(&question).unwrap_or(true);
        if !confirmed {
            ev.prevent_default();
        }
    };
    view! {
        <form method="post" action=action id=id class=class on:submit=confirm>
            {children()}
        </form>
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
