//! What is known about a requested model: its sidecar when it is in the store, else the hub's model info (each
//! answer cached in `<store>/.ema/fallback/lookups.json`), else — offline or with the hub unreachable — the cached
//! answer, else only that it is on the watch list.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::score::Profile;
use crate::engine::atomic::write_json_atomic;
use crate::engine::download::DownloadManager;
use crate::engine::store::{RepoId, Store, now_rfc3339};

/// How long the hub may take to answer before the cached lookup is used.
const HUB_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the facts of the requested model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Store,
    Hub,
    CachedLookup,
    WatchList,
    Nothing,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Store => "its sidecar in the store",
            Source::Hub => "the hub",
            Source::CachedLookup => {
                "an earlier hub lookup (the hub was not asked or did not answer)"
            }
            Source::WatchList => "the watch list only (the hub was not asked or did not answer)",
            Source::Nothing => {
                "nothing (not in the store, the hub did not answer, never looked up)"
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedLookup {
    fetched_at: String,
    task: Option<String>,
    library: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    parameters: Option<u64>,
    #[serde(default)]
    size_bytes: u64,
    #[serde(default)]
    facts: crate::engine::store::ModelFacts,
}

fn cache_path(store: &Store) -> std::path::PathBuf {
    store.state_dir().join("fallback").join("lookups.json")
}

fn read_cache(store: &Store) -> BTreeMap<String, CachedLookup> {
    std::fs::read(cache_path(store))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn profile_of(id: &RepoId, c: CachedLookup) -> Profile {
    Profile {
        id: id.to_string(),
        task: c.task,
        library: c.library,
        tags: c.tags,
        parameters: c.parameters,
        size_bytes: c.size_bytes,
        facts: c.facts,
    }
}

/// The requested model's profile and where it came from. `ask_hub`: false when offline (`HF_HUB_OFFLINE`).
pub async fn requested(
    store: &Store,
    downloads: &DownloadManager,
    id: &RepoId,
    ask_hub: bool,
    wanted: &[String],
) -> (Profile, Source) {
    if let Ok(Some(m)) = store.read_metadata(id) {
        return (Profile::from_meta(&m), Source::Store);
    }
    if ask_hub {
        let hub = downloads.hub();
        if let Ok(Ok(info)) = tokio::time::timeout(HUB_TIMEOUT, hub.model_info(id, None)).await {
            let c = CachedLookup {
                fetched_at: now_rfc3339(),
                task: info.pipeline_tag.clone(),
                library: info.library_name.clone(),
                tags: info.tags.clone(),
                parameters: info.parameters,
                size_bytes: info.siblings.iter().map(|f| f.size).sum(),
                facts: super::facts::from_hub(&info),
            };
            let mut all = read_cache(store);
            all.insert(id.to_string(), c.clone());
            // A cache that cannot be written only costs a lookup next time.
            let path = cache_path(store);
            if let Some(dir) = path.parent()
                && std::fs::create_dir_all(dir).is_ok()
            {
                let _ = write_json_atomic(&path, &all);
            }
            return (profile_of(id, c), Source::Hub);
        }
    }
    if let Some(c) = read_cache(store).remove(id.as_str()) {
        return (profile_of(id, c), Source::CachedLookup);
    }
    let p = Profile {
        id: id.to_string(),
        ..Profile::default()
    };
    if wanted.iter().any(|w| w.trim() == id.as_str()) {
        (p, Source::WatchList)
    } else {
        (p, Source::Nothing)
    }
}
