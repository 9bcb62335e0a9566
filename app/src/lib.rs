//! Seatkeeper's pages, shared by the server (which renders them) and the
//! browser (which hydrates them).

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    StaticSegment,
    components::{Route, Router, Routes},
};

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/seatkeeper.css"/>
        <Title text="Seatkeeper"/>
        <Router>
            <main>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=Home/>
                </Routes>
            </main>
        </Router>
    }
}

/// Until the admin screens exist: what this server is and where its APIs are.
#[component]
fn Home() -> impl IntoView {
    view! {
        <section class="placeholder">
            <h1>"Seatkeeper"</h1>
            <p>"License seats for your organization's devices."</p>
            <p>
                "Devices check in at " <code>"POST /api/v1/checkin"</code>
                "; scripts manage seats through " <code>"/api/v1/admin"</code> "."
            </p>
        </section>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="placeholder">
            <h1>"Page not found"</h1>
            <p><a href="/">"Back to Seatkeeper"</a></p>
        </section>
    }
}
