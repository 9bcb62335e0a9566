//! The Seatkeeper server as a library: the router (pages, server functions,
//! the JSON APIs and static files) and the serve loop. `main.rs` only parses
//! the command line, opens the store and binds; tests build the same router on
//! a throwaway database.
//!
//! Where a check-in goes: [`serve`] accepts the connection;
//! [`api::checkin::check_in`] reads the product key and the body, takes the
//! store's first look (`store::CheckIns::first_look`), applies the
//! organization's rate limit and asks the store for the answer
//! (`CheckIns::check_in_held` or `CheckIns::check_in`, in the backend's
//! `checkin.rs`); a licensed answer is signed by
//! [`licensing::Licenser::issue`]. Around every request, [`observe::observe`]
//! gives it an id and times it.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client_address;
pub mod error;
pub mod export;
pub mod housekeeping;
pub mod licensing;
pub mod limits;
pub mod observe;
pub mod serve;
pub mod webhooks;

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
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use licensing::Licenser;
use limits::Limits;
use observe::{Metrics, MetricsToken};

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
    /// With it, `GET /metrics` is served on the main address to requests
    /// bearing it; without it, only on `--metrics-addr` ([`metrics_router`]).
    pub metrics_token: Option<MetricsToken>,
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
        let licenser = Licenser::new(store.clone(), None);
        AppState(Arc::new(Shared {
            leptos_options: Arc::new(leptos_options(addr)),
            store,
            limits: Limits::off(),
            licenser,
            metrics: Metrics::new(),
            metrics_token: None,
        }))
    }

    /// Serves `GET /metrics` on the main address too, to requests bearing `token`.
    pub fn with_metrics_token(self, token: Option<MetricsToken>) -> Self {
        AppState(Arc::new(Shared { metrics_token: token, ..Arc::unwrap_or_clone(self.0) }))
    }

    /// Signs with the license signing keys sealed with `sealing` (see
    /// [`licensing`]).
    pub fn with_secrets_key(self, sealing: Option<store::sealed::SealingKey>) -> Self {
        let licenser = Licenser::new(self.store.clone(), sealing);
        AppState(Arc::new(Shared { licenser, ..Arc::unwrap_or_clone(self.0) }))
    }

    /// Serves the site folder (the bundle and the CSS) from `root` rather
    /// than `LEPTOS_SITE_ROOT`'s.
    pub fn with_site_root(self, root: &str) -> Self {
        let mut options = LeptosOptions::clone(&self.leptos_options);
        options.site_root = root.into();
        AppState(Arc::new(Shared { leptos_options: Arc::new(options), ..Arc::unwrap_or_clone(self.0) }))
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
    let mut router = Router::new();
    if let Some(token) = state.metrics_token.clone() {
        let only_with_token = middleware::from_fn_with_state(token, observe::require_metrics_token);
        router = router.route("/metrics", get(observe::metrics).route_layer(only_with_token));
    }
    router
        .route("/healthz", get(healthz))
        // The screens' download links, by the browser's session.
        .route("/activity.csv", get(export::activity_for_session))
        .route("/devices.csv", get(export::devices_for_session))
        .nest(api::PREFIX, api::routes())
        .merge(pages_router(&state))
        .nest_service("/pkg", bundle(&state.leptos_options))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        // Around every request, outermost first. One `layer` call for them
        // all: each call boxes every route's service once more, which cost
        // about a microsecond per request with a call per layer
        // (docs/performance.md, "The ceiling").
        .layer(
            ServiceBuilder::new()
                // The request id and the timing cover every answer below.
                .layer(middleware::from_fn_with_state(state.metrics.clone(), observe::observe))
                // Every response; pages add their Content-Security-Policy,
                // which names the nonce of their inline scripts (`app::shell`).
                .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
                .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
                .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
                .layer(middleware::from_fn_with_state(state.limits.clone(), limits::throttle_failed_auth))
                .layer(middleware::from_fn(refuse_cross_site_forms))
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, state.limits.request_timeout)),
        )
        .with_state(state)
}

/// The screens, gzip-compressed for browsers that accept it (a Devices page
/// of 50 rows is about 100 KB of HTML, 8 KB compressed), at gzip's fastest
/// level: the pages are made for each request. The JSON APIs and the CSV
/// downloads are not behind this layer.
fn pages_router(state: &AppState) -> Router<AppState> {
    use tower_http::compression::{CompressionLayer, CompressionLevel, Predicate, predicate::SizeAbove};
    let html = |_: StatusCode, _: axum::http::Version, headers: &axum::http::HeaderMap, _: &axum::http::Extensions| {
        headers.get(header::CONTENT_TYPE).is_some_and(|kind| kind.as_bytes().starts_with(b"text/html"))
    };
    let (store, options) = (state.store.clone(), state.leptos_options.clone());
    Router::new()
        .leptos_routes_with_context(state, generate_route_list(app::App), move || provide_context(store.clone()), move || {
            app::shell(LeptosOptions::clone(&options))
        })
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .quality(CompressionLevel::Fastest)
                .compress_when(SizeAbove::new(1024).and(html)),
        )
}

/// The hydration bundle and the CSS (`/pkg/…`), with the gzip and brotli
/// copies `scripts/build.sh` writes beside them, sent as the browser
/// accepts. Their names stay the same from one version to the next, so
/// browsers ask again each time (`no-cache`), answered 304 when unchanged.
fn bundle(options: &LeptosOptions) -> Router {
    use tower_http::services::ServeDir;
    let folder = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    Router::new()
        .fallback_service(ServeDir::new(folder).precompressed_br().precompressed_gzip())
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(middleware::from_fn(only_bundle_file_names))
}

/// The bundle's folder holds a few files with plain names: any other path is
/// 404 before it reaches the file system, which would answer a name too
/// long for it, or a path through a file, with an error (a 500 from
/// `ServeDir`).
async fn only_bundle_file_names(request: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let name = request.uri().path().strip_prefix('/').unwrap_or_default();
    let plain = (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match plain {
        true => next.run(request).await,
        false => StatusCode::NOT_FOUND.into_response(),
    }
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

/// Refuses a request from a browser that changes something (any method but
/// GET, HEAD and OPTIONS, without an `Authorization` header, outside the JSON
/// APIs, which take only bearer keys) unless it comes from a page of this
/// site: its `Origin`, or lacking one its `Referer`, names this host. Browsers
/// send one of them with every such request; a request with neither is
/// refused too. This stops another site from posting forms in a victim's
/// browser, signing in included (which would sign the victim in to the
/// attacker's organization). SameSite=Strict cookies already keep browsers
/// from sending the session along; this holds even where a browser would not.
async fn refuse_cross_site_forms(request: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    let headers = request.headers();
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let from_a_browser = !headers.contains_key(header::AUTHORIZATION) && !request.uri().path().starts_with("/api/v1/");
    if changes && from_a_browser && !sent_by_this_site(headers) {
        return error::ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            "this request did not come from a page of this site",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether the page that sent a request (`Origin`, or lacking it `Referer`)
/// is on the host the request was sent to.
fn sent_by_this_site(headers: &axum::http::HeaderMap) -> bool {
    let host = headers.get("x-forwarded-host").or_else(|| headers.get(header::HOST)).and_then(|v| v.to_str().ok());
    let sender = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    let sender_host = sender.and_then(|url| url.split_once("://")).map(|(_, rest)| rest.split('/').next().unwrap_or_default());
    matches!((host, sender_host), (Some(host), Some(sender)) if !host.is_empty() && sender.eq_ignore_ascii_case(host))
}

/// Serves until `shutdown` completes, then lets requests in flight finish;
/// the connection limits are `state.limits.connections`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = state.limits.connections;
    let trusted_proxies = state.limits.trusted_proxies.clone();
    serve::serve_router(listener, router(state), connections, trusted_proxies, shutdown).await
}
