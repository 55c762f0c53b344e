//! The Hugging-Face-Hub-compatible face of the server (`ema mirror`, and the test hub) over an ema store.
//!
//! It speaks the subset of the Hub protocol that clients (ema itself, `huggingface_hub`, `hf-hub`) use to download
//! a model (see `HUB_PROTOCOL.md`); [`routes`] lists every endpoint and its handler. `{repo}` is `org/name` or
//! `name`: [`paths::canonical_path`] runs before routing and turns the id into one segment. A revision is `main`,
//! the 40-hex commit, or the revision the metadata records the model was downloaded at; anything else is
//! `404 RevisionNotFound`. The commit and the hashes come from each model's metadata sidecar; a model folder
//! without metadata gets its hashes computed when first loaded and a commit derived from them ([`scan`]). Models
//! whose metadata lists files that are missing or of another size, or whose last verification failed, are not
//! served (see [`Mirror::skipped`]). A model whose sidecar changes (downloaded, re-downloaded, repaired) while the
//! mirror runs is reloaded on its next request ([`index`]). File bytes are streamed from disk, never loaded whole.
//!
//! Nothing here knows about fault injection: fixture repos reach the handlers as a request extension
//! ([`view::Overlay`]), and faults that act on file offsets read [`bytes::BodyStart`] from the response.
//!
//! [`Mirror::skipped`]: crate::server::mirror::Mirror::skipped

mod api_repo;
pub(crate) mod bytes;
mod cdn;
mod entries;
pub(crate) mod index;
mod info;
mod listing;
pub(crate) mod paths;
mod paths_info;
pub(crate) mod repo;
mod resolve;
mod respond;
pub(crate) mod scan;
mod tree;
pub(crate) mod view;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

use crate::server::state::ServerState;
use api_repo::ApiRepo;
use respond::hub_error;

/// Every Hub endpoint, on the canonical paths [`paths::canonical_path`] makes (`get` also answers `HEAD`).
/// The routes ending in `/` are the same endpoints with an empty last value (an empty revision or file path),
/// answered like any other unknown revision or entry.
pub(crate) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/api/models", get(listing::list_models))
        .route("/api/models/", get(listing::list_models))
        .route("/api/models/{repo}", get(info::model_info))
        .route(
            "/api/models/{repo}/revision/{rev}",
            get(info::revision_info),
        )
        .route("/api/models/{repo}/revision/", get(info::revision_info))
        .route("/api/models/{repo}/tree/{rev}", get(tree::tree))
        .route("/api/models/{repo}/tree/{rev}/{*path}", get(tree::tree))
        .route("/api/models/{repo}/tree/{rev}/", get(tree::tree))
        .route("/api/models/{repo}/tree/", get(tree::tree))
        .route(
            "/api/models/{repo}/paths-info/{rev}",
            post(paths_info::paths_info).get(unknown_api_path),
        )
        .route(
            "/api/models/{repo}/paths-info/",
            post(paths_info::paths_info).get(unknown_api_path),
        )
        .route("/api/models/{repo}/", get(unknown_api_path))
        .route("/api/models/{repo}/{*rest}", get(unknown_api_path))
        .route("/{repo}/resolve/{rev}/{*path}", get(resolve::resolve))
        .route("/{repo}/resolve/{rev}/", get(resolve::resolve))
        .route("/cdn/{sha}", get(cdn::cdn))
        .route("/cdn/", get(cdn::cdn))
        .fallback(unknown_path)
        .layer(axum::middleware::from_fn(head_without_body))
}

/// A path under an existing `/api/models/{repo}/` that is no endpoint.
async fn unknown_api_path(_: ApiRepo) -> Response {
    respond::unknown_api_path()
}

/// Any other path.
async fn unknown_path() -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "unknown path; files are at /{repo}/resolve/{revision}/{path}",
    )
}

/// `HEAD` answers the `GET` headers (`Content-Length` included) without the body.
async fn head_without_body(req: Request, next: Next) -> Response {
    let head = req.method() == Method::HEAD;
    let resp = next.run(req).await;
    if head {
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    resp
}
