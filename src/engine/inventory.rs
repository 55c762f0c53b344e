//! What the store holds right now, from the files alone: every model folder and metadata sidecar plus the watch
//! list, each with a quick status (files present with their recorded sizes) and health from the last
//! verification. No hashing here (that is the integrity checker's job); this is what a console can afford to run on
//! every refresh, also for thousands of models.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{EmaError, Result};
use super::events::{Availability, HealthState};
use super::store::{ModelMetadata, RepoId, Store, VerificationState};

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

/// Total size of the regular files under `dir` (symlinks not followed).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// Space on the filesystem holding `path` (the nearest existing ancestor).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DiskSpace {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

pub fn disk_space(path: &Path) -> Result<DiskSpace> {
    let mut p: PathBuf = path.to_path_buf();
    while !p.exists() {
        match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => p = q.to_path_buf(),
            _ => {
                p = PathBuf::from(".");
                break;
            }
        }
    }
    let total = fs4::total_space(&p).map_err(|e| EmaError::io("cannot stat filesystem", &p, e))?;
    let avail =
        fs4::available_space(&p).map_err(|e| EmaError::io("cannot stat filesystem", &p, e))?;
    Ok(DiskSpace {
        total_bytes: total,
        available_bytes: avail,
    })
}

/// Whether a TCP connection to the hub endpoint's host and port succeeds within `timeout` (the console's
/// online/offline indicator; no request is sent, no token leaves the machine).
pub async fn endpoint_reachable(endpoint: &str, timeout: std::time::Duration) -> bool {
    let Ok(u) = url::Url::parse(endpoint) else {
        return false;
    };
    let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default()) else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    matches!(
        tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// Delete a model: its folder, its sidecar and any partial download. In a shared store (`shared_storage`), a model
/// without an ema sidecar was not created by ema and is refused.
pub fn delete_model(store: &Store, id: &RepoId, shared_storage: bool) -> Result<()> {
    let meta_path = store.metadata_path(id);
    let dir = store.model_dir(id);
    if shared_storage && !meta_path.exists() && dir.exists() {
        return Err(EmaError::Config(format!(
            "{id} has no ema metadata and the store is shared (storage.shared_storage = true), so ema did not \
             create it and will not delete it; remove {} by hand if you are sure",
            dir.display()
        )));
    }
    if !dir.exists() && !meta_path.exists() {
        return Err(EmaError::NotFound(format!(
            "{id} is not in the store at {}; nothing to delete",
            store.root().display()
        )));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| EmaError::io("cannot delete", &dir, e))?;
    }
    let partial = store.partial_dir(id);
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .map_err(|e| EmaError::io("cannot delete", &partial, e))?;
    }
    if meta_path.exists() {
        std::fs::remove_file(&meta_path)
            .map_err(|e| EmaError::io("cannot delete", &meta_path, e))?;
    }
    super::atomic::sync_dir(store.root());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::{FileRecord, METADATA_SCHEMA_VERSION, now_rfc3339};

    pub(crate) fn meta(id: &str, files: &[(&str, u64)]) -> ModelMetadata {
        ModelMetadata {
            schema_version: METADATA_SCHEMA_VERSION,
            repo_id: RepoId::parse(id).unwrap(),
            requested_revision: "main".into(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            endpoint: None,
            files: files
                .iter()
                .map(|(p, s)| FileRecord {
                    path: p.to_string(),
                    size: *s,
                    sha256: None,
                    git_sha1: None,
                    lfs: false,
                    verified_at: None,
                    mtime_ns: None,
                })
                .collect(),
            total_size: files.iter().map(|f| f.1).sum(),
            pipeline_tag: Some("text-classification".into()),
            library_name: None,
            tags: vec![],
            parameters: None,
            created_at: now_rfc3339(),
            updated_at: now_rfc3339(),
            last_verified_at: None,
            verification: VerificationState::Verified,
        }
    }

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

    #[test]
    fn shared_store_refuses_foreign_models() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let id = RepoId::parse("legacy").unwrap();
        std::fs::create_dir_all(s.model_dir(&id)).unwrap();
        assert!(delete_model(&s, &id, true).is_err());
        assert!(s.model_dir(&id).exists());
        delete_model(&s, &id, false).unwrap();
    }
}
