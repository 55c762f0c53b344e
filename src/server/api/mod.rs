//! The REST API of `ema start`: the legacy endpoints (`legacy.rs`), the enhanced ones (`enhanced.rs`), the model
//! views both build on (`views.rs`), kept between changes (`cache.rs`), and the error answer and strict body reader (`error.rs`), over one
//! [`ApiContext`] (the engine, its download jobs, the metrics).
//!
//! `admin.rs` raises and resolves test alerts (`ema test-monitoring`).
//!
//! [`routes`] registers each handler with its OpenAPI description (utoipa-axum), so the document
//! (`server/openapi.rs`) lists exactly the routes served; the bodies' types are in `types.rs`.
//! `analytics.rs` serves the usage-analytics summary, `fallback.rs` the scored fallback.

pub mod admin;
pub mod analytics;
pub mod cache;
pub mod enhanced;
pub mod error;
pub mod fallback;
pub mod legacy;
pub mod types;
pub mod views;

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::any;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::engine::Engine;
use crate::engine::jobs::JobBoard;
use crate::server::metrics::Metrics;

/// What every API route shares.
pub struct ApiContext {
    pub engine: Engine,
    pub jobs: JobBoard,
    pub metrics: Arc<Metrics>,
    /// The status answers between changes (`cache.rs`).
    pub status: Arc<cache::StatusCache>,
    pub started: Instant,
}

impl ApiContext {
    pub fn new(engine: Engine, metrics: Arc<Metrics>) -> Self {
        ApiContext {
            jobs: JobBoard::new(engine.clone()),
            status: cache::StatusCache::new(engine.clone(), metrics.status_builds.clone()),
            engine,
            metrics,
            started: Instant::now(),
        }
    }
}

/// Which sets of endpoints one listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Surface {
    pub legacy: bool,
    pub enhanced: bool,
}

/// The API routes of `surface` with their OpenAPI descriptions (admin health and an API-wide JSON 404 always).
pub fn routes(surface: Surface) -> OpenApiRouter<Arc<ApiContext>> {
    let mut r = OpenApiRouter::new().routes(routes!(enhanced::admin_health));
    if surface.legacy || surface.enhanced {
        r = r.routes(routes!(legacy::models_health));
    }
    if surface.legacy {
        r = r
            .routes(routes!(legacy::status))
            .routes(routes!(legacy::download));
    }
    if surface.enhanced {
        r = r
            .routes(routes!(enhanced::detailed))
            .routes(routes!(enhanced::manage))
            .routes(routes!(enhanced::list_jobs))
            .routes(routes!(enhanced::one_job))
            .routes(routes!(fallback::suggest))
            .routes(routes!(analytics::summary))
            .routes(routes!(admin::test_alerts));
    }
    r.route("/api/v1", any(unknown_api_path))
        .route("/api/v1/", any(unknown_api_path))
        .route("/api/v1/{*rest}", any(unknown_api_path))
}

async fn unknown_api_path() -> Response {
    error::error_response(
        StatusCode::NOT_FOUND,
        "unknown_endpoint",
        "no such API endpoint on this server; GET /api/v1/openapi.json lists the endpoints it serves",
    )
}
