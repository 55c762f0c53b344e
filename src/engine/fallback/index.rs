//! The candidates the score reads: every sidecar of the store parsed once and kept while the store does not change
//! (sidecars are replaced by atomic renames in the store root, so the root's mtime moves with every change; the
//! health snapshot is keyed by its own mtime).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::score::{Profile, Proof};
use crate::engine::events::HealthState;
use crate::engine::health::HealthSnapshot;
use crate::engine::store::{Store, VerificationState};

/// One model of the store as the score sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub profile: Profile,
    pub proof: Proof,
    /// The last verification or health check found it corrupted.
    pub corrupted: bool,
}

#[derive(Debug, Default)]
struct Cached {
    key: Option<(Option<SystemTime>, Option<SystemTime>)>,
    entries: Arc<Vec<Entry>>,
}

/// A cheap-to-clone cache of the store's candidates.
#[derive(Debug, Clone, Default)]
pub struct Index {
    cached: Arc<Mutex<Cached>>,
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Index {
    /// The store's entries, re-read only when the store root or the health snapshot changed.
    pub fn entries(&self, store: &Store) -> Arc<Vec<Entry>> {
        let key = (mtime(store.root()), mtime(&HealthSnapshot::path(store)));
        let mut c = self.cached.lock().expect("fallback index lock");
        if c.key != Some(key) {
            c.entries = Arc::new(load(store));
            c.key = Some(key);
        }
        c.entries.clone()
    }
}

fn load(store: &Store) -> Vec<Entry> {
    let snap = HealthSnapshot::load(store);
    let ids = store.list_models().unwrap_or_default();
    ids.iter()
        .filter_map(|id| store.read_metadata(id).ok().flatten())
        .map(|m| {
            let health = snap.models.get(m.repo_id.as_str()).map(|h| h.state);
            let corrupted = m.verification == VerificationState::Failed
                || matches!(health, Some(HealthState::Corrupted));
            let proof = match (m.verification, health) {
                (_, Some(HealthState::Degraded | HealthState::Incomplete)) => Proof::Unverified,
                (VerificationState::Verified, _) => Proof::Verified,
                (VerificationState::LocalOnly, _) => Proof::LocalOnly,
                _ => Proof::Unverified,
            };
            Entry {
                profile: Profile::from_meta(&m),
                proof,
                corrupted,
            }
        })
        .collect()
}
