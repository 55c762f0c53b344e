//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route one listener serves, generated from the
//! handlers' `#[utoipa::path]` descriptions and their bodies' types as they are registered ([`app_routes`]), so
//! the document and the routes cannot drift apart.

use std::sync::Arc;

use axum::Router;
use axum::extract::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{self, ApiContext, Surface};
use super::security::GuardCell;
use super::{metrics, ws};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ema",
        description = "The REST API of `ema start`: the migration guide's legacy endpoints, the enhanced ones, \
                       the WebSocket of engine events and the Prometheus metrics. With `api.token` set (the \
                       document then declares the `bearer` scheme), every route but admin/health and /metrics \
                       needs `Authorization: Bearer TOKEN`.",
        license(name = "MIT")
    ),
    tags(
        (name = "legacy", description = "shaped as the migration guide's legacy client reads them"),
        (name = "enhanced", description = "status in detail, download jobs, the WebSocket"),
        (name = "admin", description = "liveness, the document itself"),
        (name = "metrics", description = "Prometheus"),
    )
)]
struct ApiDoc;

/// The Bearer token scheme, required by default when the server has a token (routes that take none say
/// `security(())`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        doc.security = Some(vec![SecurityRequirement::new::<_, _, &str>("bearer", [])]);
    }
}

/// The document of one listener and the guard in force (a reload may add or drop the token).
#[derive(Clone)]
struct Served {
    doc: Arc<Document>,
    guard: GuardCell,
}

/// This document (OpenAPI 3.1, JSON).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "admin", operation_id = "openapi",
    responses(
        (status = 200, description = "the OpenAPI document of every route this listener serves",
         body = Object, content_type = "application/json"),
        (status = 401, description = "a token is configured and the request has none or another",
         body = api::types::ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = api::types::ErrorBody),
    ))]
async fn document(Extension(served): Extension<Served>) -> Response {
    let mut doc = (*served.doc).clone();
    if served.guard.current().requires_token() {
        BearerAuth.modify(&mut doc);
    }
    let mut r = doc
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_string())
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Every route of `surface` (the API's, `/metrics`, `/ws` and the Hub mirror's on the enhanced surface, the document
/// itself) and the
/// document listing them (served with the Bearer scheme while `guard` requires a token, as the security layer
/// enforces).
pub fn app_routes(surface: Surface, guard: GuardCell) -> (Router<Arc<ApiContext>>, Document) {
    let mut r = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::routes(surface))
        .routes(routes!(metrics::handler))
        .routes(routes!(document));
    if surface.enhanced {
        r = r.routes(routes!(ws::handler));
    }
    let (router, mut doc) = r.split_for_parts();
    if surface.enhanced {
        // The mirror is the enhanced listeners' fallback router: its routes are described apart.
        super::openapi_hub::add_hub(&mut doc);
    }
    let served = Served {
        doc: Arc::new(doc.clone()),
        guard,
    };
    (router.layer(Extension(served)), doc)
}
