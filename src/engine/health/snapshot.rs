//! The last check result per model (`<store>/.ema/health.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::error::Result;
use crate::engine::integrity::verify::{CheckMode, ModelHealth, state_rank};
use crate::engine::store::{Store, now_rfc3339};

pub const SNAPSHOT_FILE: &str = "health.json";

/// The last check result per model (`<store>/.ema/health.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthSnapshot {
    pub updated_at: Option<String>,
    pub models: BTreeMap<String, ModelHealth>,
}

impl HealthSnapshot {
    pub fn path(store: &Store) -> PathBuf {
        store.state_dir().join(SNAPSHOT_FILE)
    }

    pub fn load(store: &Store) -> HealthSnapshot {
        std::fs::read(Self::path(store))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Merge results into the snapshot and save it atomically. A quick result does not replace a full one for a
    /// model unless it shows a problem the full one did not.
    pub fn record(store: &Store, results: &[ModelHealth]) -> Result<()> {
        store.ensure()?;
        let mut snap = Self::load(store);
        for h in results {
            let keep_full = snap.models.get(&h.model_id).is_some_and(|old| {
                old.mode == CheckMode::Full
                    && h.mode == CheckMode::Quick
                    && state_rank(h.state) >= state_rank(old.state)
            });
            if !keep_full {
                snap.models.insert(h.model_id.clone(), h.clone());
            }
        }
        if let Ok(ids) = store.list_models() {
            let ids: std::collections::HashSet<String> =
                ids.iter().map(|i| i.to_string()).collect();
            snap.models.retain(|k, _| ids.contains(k));
        }
        snap.updated_at = Some(now_rfc3339());
        crate::engine::atomic::write_json_atomic(&Self::path(store), &snap)
    }
}
