//! The repo an `/api/models/{repo}/…` request names ([`ApiRepo`]): a renamed repo answers a relative `307` to its
//! new id, an unknown one `404 RepoNotFound`, before any endpoint looks at the rest of the path.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::paths::encode_path;
use super::repo::Repo;
use super::respond::{relative_redirect, repo_not_found};
use super::view::Hub;
use crate::server::state::ServerState;

#[derive(Deserialize)]
struct RepoParam {
    repo: String,
}

/// The served repo of an API path, with the request's [`Hub`] view.
pub(crate) struct ApiRepo {
    pub hub: Hub,
    pub repo: Arc<Repo>,
}

impl FromRequestParts<Arc<ServerState>> for ApiRepo {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<ServerState>,
    ) -> Result<Self, Response> {
        let hub = Hub::new(st.clone(), &parts.extensions);
        let Path(RepoParam { repo: id }) = Path::<RepoParam>::from_request_parts(parts, st)
            .await
            .map_err(IntoResponse::into_response)?;
        let raw_path = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(u)) => u.path().to_string(),
            None => parts.uri.path().to_string(),
        };
        let repo = api_repo(&hub, &id, &raw_path, parts.uri.query()).map_err(|answer| *answer)?;
        Ok(ApiRepo { hub, repo })
    }
}

/// The repo `id` of the API path `raw_path` (as the client sent it), or the redirect / `404` to answer instead.
pub(crate) fn api_repo(
    hub: &Hub,
    id: &str,
    raw_path: &str,
    query: Option<&str>,
) -> Result<Arc<Repo>, Box<Response>> {
    if let Some(new) = hub.st.opts.aliases.get(id) {
        let loc = raw_path.replacen(&encode_path(id), &encode_path(new), 1);
        return Err(Box::new(relative_redirect(&loc, query)));
    }
    hub.repo(id).ok_or_else(|| Box::new(repo_not_found(id)))
}
