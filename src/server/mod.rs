//! The server face: the Hub-compatible mirror of the store, and the seam the REST + WebSocket API and metrics join.
//!
//! The whole server is ONE axum app over ONE state: `router()` builds it over `ServerState` (`state.rs`: the
//! options, the store's repo index, the CDN secret). Each face is a sub-router of `Router<Arc<ServerState>>` merged
//! in `router()`: today the Hub protocol (`hub::routes()`, under `hub/`); a REST API (`api/`), a WebSocket
//! (`ws.rs`) and metrics (`metrics.rs`) are merged beside it the same way, and a security layer for all of them
//! goes around the merged router there. Before routing, `hub::paths::canonical_path` turns the Hub's
//! one-or-two-segment repo ids into one segment and keeps the mirror read-only (a REST API that writes will
//! narrow that guard to the Hub's paths).
//!
//! Fault injection ([`faults`]) is test support: `router()` wraps the app in its layer only when
//! [`MirrorOptions::faults`] holds a plan; no route imports it. [`mirror::Mirror`] loads the state and serves the
//! app on listeners; [`sample_hub`] serves a sample store on loopback from a runtime of its own (the self-tests).

pub mod faults;
pub(crate) mod hub;
pub mod mirror;
pub mod notify;
pub mod options;
pub mod sample_hub;
pub(crate) mod state;

use std::sync::Arc;

use axum::Router;

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
