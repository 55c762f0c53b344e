//! `verify-migration`: read-only proof that a migration is complete — every adopted model hashed against its
//! sidecar (missing, damaged and extra files), and anything under the models directory still in a legacy layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::error::Result;
use crate::engine::integrity::verify::{ModelHealth, VerifyOptions, verify_models};
use crate::engine::store::Store;

use super::side_by_side;
use super::survey::{Action, Layout, survey};

/// A model still in a legacy layout (or one migrate-models could not adopt).
#[derive(Debug, Clone, Serialize)]
pub struct Unadopted {
    pub location: PathBuf,
    pub layout: Layout,
    pub repo_id: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationCheck {
    pub models_dir: PathBuf,
    /// Side-by-side: ema's own store, where the adopted models are recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    pub models: Vec<ModelHealth>,
    pub unadopted: Vec<Unadopted>,
    pub unrecognised: Vec<PathBuf>,
}

impl MigrationCheck {
    pub fn all_good(&self) -> bool {
        self.unadopted.is_empty() && self.models.iter().all(|m| m.is_healthy())
    }
}

/// Check `models_dir` without changing anything (sidecars are not updated). `side_store`: a side-by-side migration
/// recorded the models in this store of ema's own (see [`super::side_by_side`]).
pub fn verify_migration(
    models_dir: &Path,
    side_store: Option<&Path>,
    threads: usize,
) -> Result<MigrationCheck> {
    let s = survey(models_dir, &BTreeMap::new())?;
    let side = match side_store {
        Some(p) => Some(side_by_side::prepare(&s.models_dir, p, true)?),
        None => None,
    };
    let store = Store::new(side.as_deref().unwrap_or(&s.models_dir));
    let ids = store.list_models()?;
    let models = verify_models(
        &store,
        &ids,
        &VerifyOptions {
            threads,
            update_metadata: false,
            progress: None,
        },
    )?;
    let unadopted = s
        .models
        .iter()
        .map(|m| match &side {
            Some(store) => (m, side_by_side::action(store, m, false)),
            None => (m, m.action.clone()),
        })
        .filter(|(_, action)| *action != Action::AlreadyAdopted)
        .map(|(m, action)| Unadopted {
            location: m.location.clone(),
            layout: m.layout,
            repo_id: m.repo_id.to_string(),
            why: match &action {
                Action::Conflict { reason } => reason.clone(),
                Action::CreateMetadata => "no sidecar: run migrate-models --create-metadata".into(),
                _ => "not adopted yet: run migrate-models".into(),
            },
        })
        .collect();
    Ok(MigrationCheck {
        models_dir: s.models_dir,
        store: side,
        models,
        unadopted,
        unrecognised: s.unrecognised,
    })
}
