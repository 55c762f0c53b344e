//! What one model's check starts from (its metadata and the files on disk) and the issues found without hashing:
//! shared by the full verification and the quick check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::files::{DiskFile, expected_hash, walk_model_dir};
use super::verdict::{CheckMode, FileIssue, FileProblem, ModelHealth};
use crate::engine::events::HealthState;
use crate::engine::store::{ModelMetadata, RepoId, Store, now_rfc3339};

/// What one model's check starts from.
pub(super) struct Plan {
    pub(super) id: RepoId,
    pub(super) dir: PathBuf,
    pub(super) meta: Option<ModelMetadata>,
    pub(super) meta_error: Option<String>,
    pub(super) disk: Vec<DiskFile>,
    pub(super) dir_exists: bool,
    /// A download holds the model's lock (here or in another process).
    pub(super) busy: bool,
}

pub(super) fn plan(store: &Store, id: &RepoId) -> Plan {
    let dir = store.model_dir(id);
    let (meta, meta_error) = match store.read_metadata(id) {
        Ok(m) => (m, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let dir_exists = dir.is_dir();
    let busy = crate::engine::atomic::lock_held(&store.lock_path(id));
    let disk = if dir_exists {
        walk_model_dir(&dir).unwrap_or_default()
    } else {
        Vec::new()
    };
    Plan {
        id: id.clone(),
        dir,
        meta,
        meta_error,
        disk,
        dir_exists,
        busy,
    }
}

/// Issues that need no hashing: missing, wrong size, strays, changed (quick only), no expected hash.
pub(super) fn presence_issues(p: &Plan, mode: CheckMode) -> Vec<FileIssue> {
    let mut issues = Vec::new();
    let Some(meta) = &p.meta else {
        return issues;
    };
    let on_disk: BTreeMap<&str, &DiskFile> = p.disk.iter().map(|f| (f.rel.as_str(), f)).collect();
    let listed: BTreeSet<&str> = meta.files.iter().map(|f| f.path.as_str()).collect();
    for rec in &meta.files {
        match on_disk.get(rec.path.as_str()) {
            None => issues.push(FileIssue {
                path: rec.path.clone(),
                problem: FileProblem::Missing,
                detail: format!("missing (expected {} bytes)", rec.size),
            }),
            Some(f) if f.size != rec.size => issues.push(FileIssue {
                path: rec.path.clone(),
                problem: FileProblem::WrongSize,
                detail: format!(
                    "wrong size: {} bytes, expected {}{}",
                    f.size,
                    rec.size,
                    if f.size < rec.size {
                        " (truncated)"
                    } else {
                        ""
                    }
                ),
            }),
            Some(f) => {
                if expected_hash(rec).is_none() {
                    issues.push(FileIssue {
                        path: rec.path.clone(),
                        problem: FileProblem::NoExpectedHash,
                        detail: "no expected hash recorded; regenerate the metadata".into(),
                    });
                } else if mode == CheckMode::Quick
                    && rec.mtime_ns.is_some()
                    && f.mtime_ns.is_some()
                    && rec.mtime_ns != f.mtime_ns
                {
                    issues.push(FileIssue {
                        path: rec.path.clone(),
                        problem: FileProblem::Changed,
                        detail: "modified since the last verification; run a full verify".into(),
                    });
                }
            }
        }
    }
    for f in &p.disk {
        if !listed.contains(f.rel.as_str()) {
            issues.push(FileIssue {
                path: f.rel.clone(),
                problem: FileProblem::Stray,
                detail: format!("stray file ({} bytes) not in the model's metadata", f.size),
            });
        }
    }
    issues
}

/// The verdict when the model cannot be checked file by file: busy downloading, damaged metadata, folder gone.
pub(super) fn base_health(p: &Plan, mode: CheckMode) -> Option<ModelHealth> {
    let mk = |state, reason: String| ModelHealth {
        model_id: p.id.to_string(),
        state,
        reason,
        mode,
        files_expected: p.meta.as_ref().map(|m| m.files.len()).unwrap_or(0),
        files_ok: 0,
        total_bytes: p.meta.as_ref().map(|m| m.total_size).unwrap_or(0),
        bytes_hashed: 0,
        issues: Vec::new(),
        verification: p.meta.as_ref().map(|m| m.verification),
        seconds: 0.0,
        read_bytes_per_sec: None,
        load_time_estimate_seconds: None,
        checked_at: now_rfc3339(),
        metadata_not_updated: None,
    };
    if p.busy {
        return Some(mk(
            HealthState::Unknown,
            "a download of this model is in progress; check it again when it has finished".into(),
        ));
    }
    if let Some(e) = &p.meta_error {
        let mut h = mk(HealthState::Unknown, e.clone());
        h.issues.push(FileIssue {
            path: format!(
                "{}{}",
                p.id.folder_name(),
                crate::engine::store::METADATA_SUFFIX
            ),
            problem: FileProblem::BadMetadata,
            detail: e.clone(),
        });
        return Some(h);
    }
    if p.meta.is_some() && !p.dir_exists {
        return Some(mk(
            HealthState::Missing,
            format!(
                "model folder {} does not exist; download it again",
                p.dir.display()
            ),
        ));
    }
    None
}
