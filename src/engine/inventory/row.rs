//! The console's row per model ([`ModelInfo`]): every model folder and metadata sidecar plus the watch list, each
//! with a quick status (files present with their recorded sizes), health from the last verification and the
//! problems in words. What a console can afford to run on every refresh, also for thousands of models.

use serde::Serialize;

use super::space::dir_size;
use crate::engine::error::Result;
use crate::engine::events::{Availability, HealthState};
use crate::engine::store::{ModelMetadata, RepoId, Store, VerificationState};

/// One row of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub id: RepoId,
    /// Named in `storage.wanted_models`.
    pub wanted: bool,
    pub metadata: Option<ModelMetadata>,
    pub availability: Availability,
    pub health: HealthState,
    /// Bytes of the model's files found on disk.
    pub bytes_on_disk: u64,
    /// Why the status is not `available`/`healthy`, one line each.
    pub problems: Vec<String>,
}

impl ModelInfo {
    pub fn pipeline_tag(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.pipeline_tag.as_deref())
    }
    /// Expected total size when known, else what is on disk.
    pub fn size(&self) -> u64 {
        self.metadata
            .as_ref()
            .map(|m| m.total_size)
            .unwrap_or(self.bytes_on_disk)
    }
}

/// Scan the store and merge the watch list. Sorted by repo id; wanted ids that are invalid are skipped.
pub fn scan(store: &Store, wanted: &[String]) -> Result<Vec<ModelInfo>> {
    let mut ids = store.list_models()?;
    let wanted_ids: Vec<RepoId> = wanted
        .iter()
        .filter_map(|w| RepoId::parse(w.trim()).ok())
        .collect();
    for w in &wanted_ids {
        if !ids.contains(w) {
            ids.push(w.clone());
        }
    }
    ids.sort();
    Ok(ids
        .into_iter()
        .map(|id| {
            let is_wanted = wanted_ids.contains(&id);
            inspect(store, &id, is_wanted)
        })
        .collect())
}

/// Quick status of one model.
pub fn inspect(store: &Store, id: &RepoId, wanted: bool) -> ModelInfo {
    let dir = store.model_dir(id);
    let mut problems = Vec::new();
    let metadata = match store.read_metadata(id) {
        Ok(m) => m,
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let dir_exists = dir.is_dir();
    let has_partial = store.partial_dir(id).is_dir();
    let mut bytes_on_disk = 0u64;
    let (availability, health) = match &metadata {
        None if !dir_exists => {
            if problems.is_empty() {
                problems.push(format!(
                    "not in the store; download it with `ema download {id}`"
                ));
            }
            (Availability::Missing, HealthState::Missing)
        }
        None => {
            bytes_on_disk = dir_size(&dir);
            if problems.is_empty() {
                problems.push(format!(
                    "no metadata sidecar; create it with `ema generate-metadata --models-dir {}`",
                    store.root().display()
                ));
            }
            if has_partial {
                (Availability::Incomplete, HealthState::Incomplete)
            } else {
                (Availability::Available, HealthState::Unknown)
            }
        }
        Some(meta) => {
            let mut missing = 0usize;
            let mut wrong_size = 0usize;
            for f in &meta.files {
                match std::fs::metadata(dir.join(&f.path)) {
                    Ok(m) if m.is_file() => {
                        bytes_on_disk += m.len();
                        if m.len() != f.size {
                            wrong_size += 1;
                        }
                    }
                    _ => missing += 1,
                }
            }
            if missing > 0 {
                problems.push(format!(
                    "{missing} of {} files missing; resume with `ema download {id}`",
                    meta.files.len()
                ));
            }
            if wrong_size > 0 {
                problems.push(format!(
                    "{wrong_size} files have the wrong size; repair with `ema repair {id}`"
                ));
            }
            if meta.verification == VerificationState::Failed {
                problems.push(format!(
                    "the last verification found a hash mismatch; repair with `ema repair {id}`"
                ));
            }
            if wrong_size > 0 || meta.verification == VerificationState::Failed {
                (Availability::Corrupted, HealthState::Corrupted)
            } else if missing > 0 || has_partial && !dir_exists {
                (Availability::Incomplete, HealthState::Incomplete)
            } else {
                let h = match meta.verification {
                    VerificationState::Verified => HealthState::Healthy,
                    VerificationState::LocalOnly => HealthState::Healthy,
                    _ => HealthState::Unknown,
                };
                (Availability::Available, h)
            }
        }
    };
    ModelInfo {
        id: id.clone(),
        wanted,
        metadata,
        availability,
        health,
        bytes_on_disk,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::super::delete::delete_model;
    use super::super::test_metadata as meta;
    use super::*;

    #[test]
    fn statuses_from_files() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.ensure().unwrap();
        let ok = RepoId::parse("org/ok").unwrap();
        std::fs::create_dir_all(s.model_dir(&ok)).unwrap();
        std::fs::write(s.model_dir(&ok).join("a.bin"), b"1234").unwrap();
        s.write_metadata(&meta("org/ok", &[("a.bin", 4)])).unwrap();
        let inc = RepoId::parse("org/inc").unwrap();
        std::fs::create_dir_all(s.model_dir(&inc)).unwrap();
        s.write_metadata(&meta("org/inc", &[("a.bin", 4)])).unwrap();
        let bad = RepoId::parse("org/bad").unwrap();
        std::fs::create_dir_all(s.model_dir(&bad)).unwrap();
        std::fs::write(s.model_dir(&bad).join("a.bin"), b"12").unwrap();
        s.write_metadata(&meta("org/bad", &[("a.bin", 4)])).unwrap();
        let rows = scan(&s, &["org/wanted".into(), "org/ok".into()]).unwrap();
        let st: Vec<(String, Availability, bool)> = rows
            .iter()
            .map(|r| (r.id.to_string(), r.availability, r.wanted))
            .collect();
        assert_eq!(
            st,
            vec![
                ("org/bad".into(), Availability::Corrupted, false),
                ("org/inc".into(), Availability::Incomplete, false),
                ("org/ok".into(), Availability::Available, true),
                ("org/wanted".into(), Availability::Missing, true),
            ]
        );
        assert_eq!(rows[2].health, HealthState::Healthy);
        delete_model(&s, &ok, false).unwrap();
        assert!(!s.model_dir(&ok).exists() && !s.metadata_path(&ok).exists());
        assert!(delete_model(&s, &ok, false).is_err());
    }
}
