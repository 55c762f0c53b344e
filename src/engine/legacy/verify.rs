//! `verify-migration`: read-only proof that a migration is complete — every adopted model hashed against its
//! sidecar (missing, damaged and extra files), and anything under the models directory still in a legacy layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::error::Result;
use crate::engine::integrity::verify::{ModelHealth, VerifyOptions, verify_models};
use crate::engine::store::Store;

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
    pub models: Vec<ModelHealth>,
    pub unadopted: Vec<Unadopted>,
    pub unrecognised: Vec<PathBuf>,
}

impl MigrationCheck {
    pub fn all_good(&self) -> bool {
        self.unadopted.is_empty() && self.models.iter().all(|m| m.is_healthy())
    }
}

/// Check `models_dir` without changing anything (sidecars are not updated).
pub fn verify_migration(models_dir: &Path, threads: usize) -> Result<MigrationCheck> {
    let s = survey(models_dir, &BTreeMap::new())?;
    let store = Store::new(&s.models_dir);
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
        .filter(|m| m.action != Action::AlreadyAdopted)
        .map(|m| Unadopted {
            location: m.location.clone(),
            layout: m.layout,
            repo_id: m.repo_id.to_string(),
            why: match &m.action {
                Action::Conflict { reason } => reason.clone(),
                Action::CreateMetadata => "no sidecar: run migrate-models --create-metadata".into(),
                _ => "not adopted yet: run migrate-models".into(),
            },
        })
        .collect();
    Ok(MigrationCheck {
        models_dir: s.models_dir,
        models,
        unadopted,
        unrecognised: s.unrecognised,
    })
}
