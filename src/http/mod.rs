//! The HTTP surface: router, middleware, extractors and one module per area.

pub(crate) mod assets;
pub(crate) mod csrf;
pub(crate) mod extract;
pub(crate) mod form;
pub(crate) mod fragment;
mod live_conn;
pub(crate) mod middleware;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod session;
pub(crate) mod webhooks;

use axum::http::StatusCode;
use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware::{from_fn, from_fn_with_state, map_request},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::{RequestBodyTimeoutLayer, TimeoutLayer},
    trace::TraceLayer,
};

use crate::wiring::App;

/// Forms and ordinary requests; webhook routes set their own, larger limits.
pub(crate) const FORM_BODY_LIMIT: usize = 64 * 1024;

/// The application: `pages` go under the session, CSRF and timeout layers like every portal
/// page; `machine` routes are authenticated by their own credentials (the tenant API's
/// bearer tokens) and are merged outside the session and CSRF layers, inside the request
/// id, tracing, security headers and error rendering. `crate::build_app` passes the tenant
/// API's routers (`crate::api`), which this module does not depend on.
pub(crate) fn build_app_with(shared: App, pages: Router<App>, machine: Router<App>) -> Router {
    let state = shared.state.clone();
    let limits = state.config.limits.clone();
    // Everything but the live-update stream answers within the request timeout.
    let timed = Router::new()
        .merge(routes::public::router())
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::account::router())
        .merge(routes::portal::router())
        .merge(routes::members::router())
        .merge(routes::inbox::router())
        .merge(routes::contacts::router())
        .merge(routes::channels::router())
        .merge(routes::simulator::router())
        .merge(routes::review::router())
        .merge(routes::ai_settings::router())
        .merge(routes::privacy::router())
        .merge(routes::billing::router())
        .merge(routes::integrations::router())
        .merge(routes::outgoing_webhooks::router())
        .merge(pages)
        .merge(assets::router())
        // HTML, CSS and JS compress well; webhooks and the live stream are outside this router.
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    let app = Router::new()
        .merge(timed)
        .merge(routes::events::router())
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        // Order matters: layers listed later wrap the earlier ones. A panic becomes a 500
        // marker; CSRF checks run once the session is known; the renderer turns error
        // markers into pages; headers go on every response; and the request id wraps
        // everything so every log line carries it.
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(from_fn_with_state(state.clone(), csrf::protect))
        .layer(from_fn_with_state(state.clone(), session::load_session))
        // Webhooks (gateways, Stripe) are authenticated by their secret or signature: they
        // have no session or CSRF token, and the busiest route skips that work.
        // The tenant API is authenticated by its bearer tokens (no cookies, so no CSRF);
        // it brings its own body limit, timeout and panic handler (`api::router`).
        .merge(machine)
        .merge(
            webhooks::router()
                .merge(routes::billing::webhook_router())
                .layer(CatchPanicLayer::custom(middleware::panic_response)),
        )
        .layer(from_fn(middleware::refuse_nul))
        .layer(from_fn_with_state(state.clone(), middleware::render_errors));
    middleware::with_security_headers(app, state.config.is_https())
        .layer(from_fn(middleware::record_metrics))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(middleware::RequestSpan)
                .on_request(())
                .on_response(middleware::ResponseLog)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(middleware::MakeRequestIdV7))
        .layer(map_request(middleware::drop_client_request_id))
        // A body that stalls mid-way fails its read (a 4xx from the extractor) instead of
        // holding the connection.
        .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
        .with_state(shared)
}
