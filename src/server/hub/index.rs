//! The repo index: every model of the store as last loaded, reloaded when its sidecar or folder changes while the
//! server runs.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::repo::Repo;
use super::scan::load_repo;
use crate::engine::error::Result;
use crate::engine::store::{RepoId, Store};

/// What a model's sidecar and folder looked like when it was loaded; a change triggers a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    metadata: Option<(std::time::SystemTime, u64)>,
    folder: bool,
}

fn stamp(store: &Store, id: &RepoId) -> Stamp {
    Stamp {
        metadata: std::fs::metadata(store.metadata_path(id))
            .ok()
            .map(|m| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len())),
        folder: store.model_dir(id).is_dir(),
    }
}

/// One model as last loaded.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    stamp: Stamp,
    /// `Ok(None)`: nothing to serve; `Err`: present but not servable, and why.
    pub repo: std::result::Result<Option<Arc<Repo>>, String>,
}

impl Loaded {
    /// The repo, when it is served.
    pub(crate) fn served(&self) -> Option<Arc<Repo>> {
        self.repo.as_ref().ok().cloned().flatten()
    }
}

fn load_one(store: &Store, id: &RepoId) -> Loaded {
    let stamp = stamp(store, id);
    Loaded {
        stamp,
        repo: load_repo(store, id).map(|r| r.map(Arc::new)),
    }
}

/// The store and its models by repo id.
pub(crate) struct RepoIndex {
    store: Store,
    repos: RwLock<BTreeMap<String, Loaded>>,
}

impl RepoIndex {
    /// Scan the whole store (blocking: hashes files that have no recorded hashes).
    pub(crate) fn scan(store: Store) -> Result<RepoIndex> {
        let repos = store
            .list_models()?
            .into_iter()
            .map(|id| (id.to_string(), load_one(&store, &id)))
            .collect();
        Ok(RepoIndex {
            store,
            repos: RwLock::new(repos),
        })
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Loaded>> {
        self.repos.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The served repo `id`, as last loaded.
    pub(crate) fn served(&self, id: &str) -> Option<Arc<Repo>> {
        self.read().get(id).and_then(Loaded::served)
    }

    /// Every served repo, as last loaded.
    pub(crate) fn all_served(&self) -> Vec<Arc<Repo>> {
        self.read().values().filter_map(Loaded::served).collect()
    }

    /// Reload `id` if its sidecar or folder changed since it was loaded (a model downloaded, re-downloaded or
    /// removed while the mirror runs). Costs two `stat`s when nothing changed.
    pub(crate) async fn refresh(self: &Arc<Self>, id: &str) {
        let Ok(rid) = RepoId::parse(id) else {
            return;
        };
        let now = stamp(&self.store, &rid);
        let unchanged = match self.read().get(id) {
            Some(l) => l.stamp == now,
            None => !now.folder && now.metadata.is_none(),
        };
        if unchanged {
            return;
        }
        let index = self.clone();
        if let Ok(loaded) = tokio::task::spawn_blocking(move || load_one(&index.store, &rid)).await
        {
            let mut w = self.repos.write().unwrap_or_else(|e| e.into_inner());
            if loaded.stamp.folder || loaded.stamp.metadata.is_some() {
                w.insert(id.to_string(), loaded);
            } else {
                w.remove(id);
            }
        }
    }

    /// [`RepoIndex::refresh`] every model in the store and forget the ones that are gone.
    pub(crate) async fn refresh_all(self: &Arc<Self>) {
        let store = self.store.clone();
        let ids = tokio::task::spawn_blocking(move || store.list_models())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let known: Vec<String> = self.read().keys().cloned().collect();
        for id in ids.iter().map(|i| i.to_string()).chain(known) {
            self.refresh(&id).await;
        }
    }
}
