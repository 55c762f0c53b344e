//! A request's view of the served repos ([`Hub`]): the repo index, plus the [`Overlay`] of fixture repos and changed
//! files a request carries in its extensions when the server runs with a fault plan (production requests carry
//! none, and nothing here knows where an overlay comes from).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::Extensions;
use axum::http::request::Parts;

use super::repo::{FileEntry, Repo};
use crate::server::state::ServerState;

/// Repos and files served over the store's: in-memory fixture repos (they shadow a store repo of the same id) and
/// "upstream changed" files.
pub(crate) trait Overlay: Send + Sync {
    /// The fixture repo `id`.
    fn repo(&self, id: &str) -> Option<Arc<Repo>>;
    /// Every fixture repo.
    fn repos(&self) -> Vec<Arc<Repo>>;
    /// The changed files of `repo_id`, by path.
    fn changed_files(&self, repo_id: &str) -> Vec<(String, Arc<FileEntry>)>;
    /// The changed file `path` of `repo_id`.
    fn changed_file(&self, repo_id: &str, path: &str) -> Option<Arc<FileEntry>>;
    /// A changed or fixture file by its (real or claimed) sha256.
    fn file_by_sha256(&self, sha: &str) -> Option<Arc<FileEntry>>;
}

/// The request extension that carries an [`Overlay`].
#[derive(Clone)]
pub(crate) struct OverlayExt(pub Arc<dyn Overlay>);

/// The server state and the request's overlay: what the handlers ask for repos and files.
pub(crate) struct Hub {
    pub st: Arc<ServerState>,
    overlay: Option<Arc<dyn Overlay>>,
}

impl FromRequestParts<Arc<ServerState>> for Hub {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<ServerState>,
    ) -> Result<Self, Infallible> {
        Ok(Hub::new(st.clone(), &parts.extensions))
    }
}

impl Hub {
    pub(crate) fn new(st: Arc<ServerState>, extensions: &Extensions) -> Hub {
        Hub {
            st,
            overlay: extensions.get::<OverlayExt>().map(|o| o.0.clone()),
        }
    }

    pub(crate) fn repo(&self, id: &str) -> Option<Arc<Repo>> {
        if let Some(r) = self.overlay.as_ref().and_then(|o| o.repo(id)) {
            return Some(r);
        }
        self.st.repos.served(id)
    }

    /// Served repos first, then the overlay's (a listing keeps the first of each id).
    pub(crate) fn all_repos(&self) -> Vec<Arc<Repo>> {
        let mut repos = self.st.repos.all_served();
        if let Some(o) = &self.overlay {
            repos.extend(o.repos());
        }
        repos
    }

    /// Whether `id` is served or an alias.
    pub(crate) fn known(&self, id: &str) -> bool {
        self.st.opts.aliases.contains_key(id) || self.repo(id).is_some()
    }

    /// The repo's files with any "upstream changed" overrides applied.
    pub(crate) fn files(&self, repo: &Repo) -> BTreeMap<String, Arc<FileEntry>> {
        let mut files = repo.files.clone();
        if let Some(o) = &self.overlay {
            for (path, f) in o.changed_files(&repo.id) {
                files.insert(path, f);
            }
        }
        files
    }

    pub(crate) fn file(&self, repo: &Repo, path: &str) -> Option<Arc<FileEntry>> {
        if let Some(f) = self
            .overlay
            .as_ref()
            .and_then(|o| o.changed_file(&repo.id, path))
        {
            return Some(f);
        }
        repo.files.get(path).cloned()
    }

    pub(crate) fn by_sha256(&self, sha: &str) -> Option<Arc<FileEntry>> {
        if let Some(f) = self.overlay.as_ref().and_then(|o| o.file_by_sha256(sha)) {
            return Some(f);
        }
        self.st.repos.all_served().into_iter().find_map(|r| {
            r.files
                .values()
                .find(|f| f.sha256.as_deref() == Some(sha))
                .cloned()
        })
    }
}
