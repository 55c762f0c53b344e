//! The server face: the Hub-compatible mirror of the store (`ema mirror`) and `ema start`: the REST API, the
//! WebSocket and the metrics beside the mirror, behind one security layer.
//!
//! The mirror is ONE axum app over ONE state: `router()` builds it over `ServerState` (`state.rs`: the options,
//! the store's repo index, the CDN secret) from the Hub protocol's routes (`hub::routes()`, under `hub/`). Before
//! routing, `hub::paths::canonical_path` turns the Hub's one-or-two-segment repo ids into one segment and keeps
//! the mirror read-only. `api_app()` is `ema start`'s app: the REST API (`api/`), `/ws` (`ws.rs`) and `/metrics`
//! (`metrics.rs`), registered with their OpenAPI document (`openapi.rs`), over an `ApiContext` (the engine, its download jobs, the metrics), with the mirror's app as the
//! fallback for every other path, inside the security layer (`security.rs`) and the HTTP metrics layer.
//! `start.rs` runs it.
//!
//! Fault injection ([`faults`]) is test support: `router()` wraps the app in its layer only when
//! [`MirrorOptions::faults`] holds a plan; no route imports it. [`mirror::Mirror`] loads the state and serves the
//! app on listeners; [`sample_hub`] serves a sample store on loopback from a runtime of its own (the self-tests).

pub mod api;
pub mod faults;
pub(crate) mod hub;
pub mod metrics;
pub mod mirror;
pub mod notify;
pub mod openapi;
pub mod openapi_hub;
pub mod options;
pub mod sample_hub;
pub mod security;
pub mod start;
pub(crate) mod state;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;

use state::ServerState;

#[cfg(doc)]
use options::MirrorOptions;

/// The server's app: every face's routes merged over `state`, behind the pre-routing step, inside the fault layer
/// when the options carry a fault plan.
pub(crate) fn router(state: Arc<ServerState>) -> Router {
    // Each face's sub-router is merged here (the Hub today); a layer for all of them goes on `routes`.
    let routes = Router::new().merge(hub::routes()).with_state(state.clone());
    // The URI is rewritten before routing, so this step wraps the routes as a service.
    let app = Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            hub::paths::canonical_path,
        ));
    match &state.opts.faults {
        Some(plan) => faults::wrap(app, plan.clone()),
        None => app,
    }
}

/// `ema start`'s app for one listener: the API routes of `surface`, `/metrics`, `/ws` and the mirror (enhanced
/// surfaces), inside the security layer, inside the HTTP metrics layer (so refusals are counted too).
pub(crate) fn api_app(
    state: Arc<ServerState>,
    ctx: Arc<api::ApiContext>,
    guard: security::GuardCell,
    surface: api::Surface,
) -> Router {
    let (r, _) = openapi::app_routes(surface, guard.clone());
    let r = r
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(ctx.clone());
    let r = if surface.enhanced {
        r.fallback_service(router(state))
    } else {
        r.fallback(not_served)
    };
    r.layer(axum::middleware::from_fn_with_state(
        guard,
        security::enforce,
    ))
    .layer(axum::extract::DefaultBodyLimit::max(api::error::MAX_BODY))
    .layer(axum::middleware::from_fn_with_state(
        ctx.metrics.clone(),
        metrics::track,
    ))
}

async fn method_not_allowed() -> Response {
    api::error::error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see the README's Server section",
    )
}

async fn not_served() -> Response {
    api::error::error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "not served on this port (the legacy port serves the legacy endpoints only)",
    )
}
