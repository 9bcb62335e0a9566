//! The Seatkeeper server as a library: the router (pages, server functions,
//! the JSON APIs and static files) and the serve loop. `main.rs` only parses
//! the command line, opens the store and binds; tests build the same router on
//! a throwaway database.
//!
//! Where a check-in goes: [`api::checkin::check_in`] authenticates the product
//! key and reads the body, then calls `store::LicenseStore::check_in` (memory
//! or a group commit in `server/store/src/sqlite.rs`, one statement or one
//! transaction in `postgres.rs`); a licensed answer is signed by
//! [`licensing::Licenser::issue`]. Around every request, [`observe::observe`]
//! gives it an id and times it.

pub mod api;
pub mod cli;
pub mod export;
pub mod housekeeping;
pub mod licensing;
pub mod limits;
pub mod observe;
pub mod serve;

use std::future::Future;
use std::net::SocketAddr;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::routing::get;
use leptos::config::LeptosOptions;
use leptos::context::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use store::Store;
use tokio::net::TcpListener;
use axum::http::StatusCode;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use licensing::Licenser;
use limits::Limits;
use observe::Metrics;

/// What every request handler may reach. Axum clones it for every request
/// (and each `State<T>` extractor clones its part), so it is one reference
/// count to a [`Shared`], whose parts are reference counts too.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Clone)]
pub struct Shared {
    pub leptos_options: Arc<LeptosOptions>,
    pub store: Store,
    pub limits: Arc<Limits>,
    pub licenser: Arc<Licenser>,
    pub metrics: Arc<Metrics>,
    /// Whether `GET /metrics` is served on the main address (not when the
    /// operator gave it an address of its own).
    pub metrics_on_main: bool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts handlers take with `State<T>`.
macro_rules! state_parts {
    ($($part:ident: $type:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $type {
            fn from_ref(state: &AppState) -> Self {
                state.$part.clone()
            }
        }
    )*};
}

state_parts!(store: Store, limits: Arc<Limits>, licenser: Arc<Licenser>, metrics: Arc<Metrics>);

/// Leptos' settings, for the pages (which are the only handlers to copy them).
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        LeptosOptions::clone(&state.leptos_options)
    }
}

impl AppState {
    /// A server without rate limits; see [`AppState::with_limits`].
    pub fn new(store: Store, addr: SocketAddr) -> Self {
        let licenser = Licenser::new(store.clone());
        AppState(Arc::new(Shared {
            leptos_options: Arc::new(leptos_options(addr)),
            store,
            limits: Limits::off(),
            licenser,
            metrics: Metrics::new(),
            metrics_on_main: true,
        }))
    }

    /// Serves `GET /metrics` only on [`metrics_router`], not on the main address.
    pub fn with_metrics_elsewhere(self) -> Self {
        AppState(Arc::new(Shared { metrics_on_main: false, ..Arc::unwrap_or_clone(self.0) }))
    }

    pub fn with_limits(self, limits: Arc<Limits>) -> Self {
        AppState(Arc::new(Shared { limits, ..Arc::unwrap_or_clone(self.0) }))
    }
}

/// Leptos' settings. The site folder (the hydration bundle and the CSS) is
/// `LEPTOS_SITE_ROOT`, by default `target/site` where the build writes it.
pub fn leptos_options(addr: SocketAddr) -> LeptosOptions {
    let env_or = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    LeptosOptions::builder()
        .output_name("seatkeeper")
        .site_root(env_or("LEPTOS_SITE_ROOT", "target/site"))
        .site_pkg_dir(env_or("LEPTOS_SITE_PKG_DIR", "pkg"))
        .site_addr(addr)
        .build()
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let pages = generate_route_list(app::App);
    let store = state.store.clone();
    let mut router = Router::new();
    if state.metrics_on_main {
        router = router.route("/metrics", get(observe::metrics));
    }
    router
        .route("/healthz", get(healthz))
        // The screens' download links, by the browser's session.
        .route("/activity.csv", get(export::activity_for_session))
        .route("/devices.csv", get(export::devices_for_session))
        .nest(api::PREFIX, api::routes())
        .leptos_routes_with_context(
            &state,
            pages,
            move || provide_context(store.clone()),
            {
                let options = state.leptos_options.clone();
                move || app::shell(LeptosOptions::clone(&options))
            },
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, state.limits.request_timeout))
        .layer(middleware::from_fn(refuse_cross_site_forms))
        .layer(middleware::from_fn_with_state(state.limits.clone(), limits::throttle_failed_auth))
        // Every response; pages add their Content-Security-Policy, which names
        // the nonce of their inline scripts (`app::shell`).
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        // Outermost: the request id and the timing cover every answer above.
        .layer(middleware::from_fn_with_state(state.metrics.clone(), observe::observe))
        .with_state(state)
}

/// `GET /metrics` alone, for `--metrics-addr`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(observe::metrics)).with_state(state)
}

/// Liveness for load balancers: answers without touching the database. It is
/// also the benchmark's measure of what the HTTP stack alone can carry.
async fn healthz() -> &'static str {
    "ok"
}

/// Refuses a request that changes something, carries this site's cookie and
/// was sent by a page of another site (its `Origin`, or lacking one its
/// `Referer`, names another host): cross-site request forgery. SameSite=Strict
/// cookies already keep browsers from sending the session along; this holds
/// even where a browser would not.
async fn refuse_cross_site_forms(request: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    let headers = request.headers();
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && headers.contains_key(header::COOKIE) {
        let host = headers.get("x-forwarded-host").or_else(|| headers.get(header::HOST)).and_then(|v| v.to_str().ok());
        let sender = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
        let sender_host = sender.map(|url| url.split_once("://").map_or(url, |(_, rest)| rest).split('/').next().unwrap_or_default());
        if let (Some(host), Some(sender_host)) = (host, sender_host)
            && !sender_host.eq_ignore_ascii_case(host)
        {
            return api::ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "cross_site_request",
                "this request came from a page of another site",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Serves until `shutdown` completes, then lets requests in flight finish;
/// the connection limits are `state.limits.connections`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = state.limits.connections;
    serve::serve_router(listener, router(state), connections, shutdown).await
}
