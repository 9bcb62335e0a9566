//! The frame every screen's data sits in: "Loading…" while it comes, the
//! sign-in dialog when the session is gone, the error (with a way back) when
//! it cannot be loaded, and the page once it is here.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::auth::SignInForm;
use crate::ui::{Alert, UiError};

/// A page made from data the server loads: `page` once the data is here.
/// `back` is a link out, `(href, words)`, shown under an error.
#[component]
pub fn Loaded<T, P>(
    data: Resource<Result<T, UiError>>,
    #[prop(default = "Loading…")] loading: &'static str,
    #[prop(optional)] back: Option<(&'static str, &'static str)>,
    page: P,
) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    P: Fn(T) -> AnyView + Clone + Send + Sync + 'static,
{
    view! {
        <Suspense fallback=move || view! { <p class="muted">{loading}</p> }>
            {move || {
                let page = page.clone();
                Suspend::new(async move {
                    match data.await {
                        Ok(data) => page(data),
                        Err(error) => view! {
                            <Failure error/>
                            {back.map(|(href, words)| view! { <p><A href=href>{words}</A></p> })}
                        }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// What a page shows when its data could not be loaded: the sign-in dialog
/// when the session is gone (so a deep link leads back here after signing
/// in), otherwise the error.
#[component]
pub fn Failure(error: UiError) -> impl IntoView {
    if error.code == "signed_out" {
        view! { <div class="narrow"><SignInForm/></div> }.into_any()
    } else {
        view! { <Alert message=error.message/> }.into_any()
    }
}
