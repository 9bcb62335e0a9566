//! Seatkeeper's pages. The server renders every page whole; the browser
//! hydrates only the islands (`#[island]`), the few controls JavaScript
//! improves. One screen, one file: each holds its page, the data it shows and
//! the server functions behind its forms.

pub mod activity;
pub mod auth;
pub mod device;
pub mod devices;
pub mod frame;
pub mod licenses;
pub mod product;
pub mod settings;
pub mod ui;
pub mod usage;

#[cfg(feature = "ssr")]
pub mod server;

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Outlet, ParentRoute, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use auth::{SignOut, current_org};

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    server::content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="data:,"/>
                <HydrationScripts options islands=true/>
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
            <Routes fallback=NotFound>
                // Async: the server sends each page complete, so it reads (and
                // its forms work) before, or without, any JavaScript.
                <ParentRoute path=path!("") view=SignedIn ssr=SsrMode::Async>
                    <Route path=path!("") view=licenses::LicensesPage ssr=SsrMode::Async/>
                    <Route path=path!("products/:code") view=product::ProductPage ssr=SsrMode::Async/>
                    <Route path=path!("devices") view=devices::DevicesPage ssr=SsrMode::Async/>
                    <Route path=path!("devices/:serial") view=device::DevicePage ssr=SsrMode::Async/>
                    <Route path=path!("settings") view=settings::SettingsPage ssr=SsrMode::Async/>
                    <Route path=path!("activity") view=activity::ActivityPage ssr=SsrMode::Async/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// Every screen's frame: the header once signed in, then the page. A page
/// whose data says the session is gone shows the sign-in dialog in its place,
/// so a deep link works after signing in.
#[component]
fn SignedIn() -> impl IntoView {
    let org = Resource::new(|| (), |_| current_org());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                org.await.ok().flatten().map(|name| view! { <Header org=name/> })
            })}
        </Suspense>
        <main><Outlet/></main>
    }
}

#[component]
fn Header(org: String) -> impl IntoView {
    view! {
        <header class="top">
            <nav aria-label="Screens">
                <A href="/" exact=true>"Licenses"</A>
                <A href="/devices">"Devices"</A>
                <A href="/activity">"Activity"</A>
            </nav>
            <span class="org" title="Organization">{org}</span>
            <form method="post" action=SignOut::url() class="inline">
                <button type="submit" class="link">"Sign out"</button>
            </form>
            <A href="/settings" attr:class="cog" attr:aria-label="Settings" attr:title="Settings">"⚙"</A>
        </header>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="narrow">
            <h1>"Page not found"</h1>
            <p><a href="/">"Back to your licenses"</a></p>
        </main>
    }
}
