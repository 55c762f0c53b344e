//! The status of a model for `ema status` and the server ([`ModelStatus`]): every model in the store plus the
//! downloads in flight, with availability, size, commit, verification state and, on request, per-file detail.

use serde::Serialize;

use crate::engine::download::DownloadSnapshot;
use crate::engine::download::queue::QueueState;
use crate::engine::error::Result;
use crate::engine::events::Availability;
use crate::engine::store::{ModelMetadata, RepoId, Store, VerificationState, mtime_ns};

/// One file of a model, as on disk now.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    pub path: String,
    pub size: u64,
    pub present: bool,
    /// Size on disk matches the recorded size.
    pub size_ok: bool,
    pub verified: bool,
    pub verified_at: Option<String>,
    /// The mtime changed since the file was verified (a quick hint it was modified).
    pub modified_since_verified: bool,
}

/// The status of one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub model_id: String,
    pub availability: Availability,
    pub path: std::path::PathBuf,
    pub commit: Option<String>,
    pub requested_revision: Option<String>,
    /// Recorded total size of the model's files.
    pub size_bytes: u64,
    /// Bytes of those files present with the right size.
    pub present_bytes: u64,
    pub files_total: usize,
    pub files_present: usize,
    pub verification: Option<VerificationState>,
    pub last_verified_at: Option<String>,
    pub pipeline_tag: Option<String>,
    pub has_metadata: bool,
    /// The download in flight or persisted, if any.
    pub download: Option<DownloadSnapshot>,
    /// Per-file detail (filled by [`model_statuses`] when `detailed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileStatus>>,
}

fn file_statuses(store: &Store, meta: &ModelMetadata) -> Vec<FileStatus> {
    let dir = store.model_dir(&meta.repo_id);
    meta.files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(dir.join(&f.path))
                .ok()
                .filter(|m| m.is_file());
            let present = m.is_some();
            let size_ok = m.as_ref().is_some_and(|m| m.len() == f.size);
            let modified = match (&m, f.mtime_ns) {
                (Some(m), Some(t)) => mtime_ns(m) != Some(t),
                _ => false,
            };
            FileStatus {
                path: f.path.clone(),
                size: f.size,
                present,
                size_ok,
                verified: f.verified_at.is_some(),
                verified_at: f.verified_at.clone(),
                modified_since_verified: modified,
            }
        })
        .collect()
}

/// Status of one model from its metadata, folder and download state.
pub fn model_status(
    store: &Store,
    repo: &RepoId,
    download: Option<DownloadSnapshot>,
    detailed: bool,
) -> Result<ModelStatus> {
    let meta = store.read_metadata(repo).ok().flatten();
    let dir = store.model_dir(repo);
    let (files, size, verification, commit, rev, lv, tag) = match &meta {
        Some(m) => (
            file_statuses(store, m),
            m.total_size,
            Some(m.verification),
            m.commit.clone(),
            Some(m.requested_revision.clone()),
            m.last_verified_at.clone(),
            m.pipeline_tag.clone(),
        ),
        None => (Vec::new(), 0, None, None, None, None, None),
    };
    let files_present = files.iter().filter(|f| f.size_ok).count();
    let present_bytes = files.iter().filter(|f| f.size_ok).map(|f| f.size).sum();
    let all_there = meta.is_some() && files_present == files.len();
    let availability = match download.as_ref().map(|d| d.state) {
        Some(QueueState::Downloading) if download.as_ref().is_some_and(|d| d.pid.is_some()) => {
            Availability::Downloading
        }
        Some(QueueState::Queued) if download.as_ref().is_some_and(|d| d.pid.is_some()) => {
            Availability::Queued
        }
        Some(QueueState::Paused) => Availability::Paused,
        _ => match verification {
            Some(VerificationState::Failed) => Availability::Corrupted,
            Some(VerificationState::Verified | VerificationState::LocalOnly) if all_there => {
                Availability::Available
            }
            Some(_) => Availability::Incomplete,
            None if dir.is_dir() => Availability::Incomplete,
            None if download.is_some() => Availability::Incomplete,
            None => Availability::Missing,
        },
    };
    Ok(ModelStatus {
        model_id: repo.to_string(),
        availability,
        path: dir,
        commit,
        requested_revision: rev,
        size_bytes: size,
        present_bytes,
        files_total: files.len(),
        files_present,
        verification,
        last_verified_at: lv,
        pipeline_tag: tag,
        has_metadata: meta.is_some(),
        download,
        files: detailed.then_some(files),
    })
}

/// Every model in the store plus every download in flight or persisted, sorted by id.
pub fn model_statuses(
    store: &Store,
    downloads: &[DownloadSnapshot],
    detailed: bool,
) -> Result<Vec<ModelStatus>> {
    let mut ids: std::collections::BTreeSet<RepoId> = store.list_models()?.into_iter().collect();
    for d in downloads {
        if let Ok(r) = RepoId::parse(&d.model_id) {
            ids.insert(r);
        }
    }
    ids.into_iter()
        .map(|r| {
            let dl = downloads.iter().find(|d| d.model_id == r.as_str()).cloned();
            model_status(store, &r, dl, detailed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_metadata;
    use super::*;
    use crate::engine::store::now_rfc3339;

    #[test]
    fn available_only_when_verified_and_complete() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        store.ensure().unwrap();
        let repo = RepoId::parse("org/m").unwrap();
        std::fs::create_dir_all(store.model_dir(&repo)).unwrap();
        std::fs::write(store.model_dir(&repo).join("a.txt"), b"hello").unwrap();
        let mut meta = test_metadata("org/m", &[("a.txt", 5)]);
        meta.commit = Some("a".repeat(40));
        meta.files[0].git_sha1 = Some("b".repeat(40));
        meta.files[0].verified_at = Some(now_rfc3339());
        meta.pipeline_tag = None;
        store.write_metadata(&meta).unwrap();
        let s = model_statuses(&store, &[], true).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].availability, Availability::Available);
        meta.verification = VerificationState::Unverified;
        store.write_metadata(&meta).unwrap();
        assert_eq!(
            model_status(&store, &repo, None, false)
                .unwrap()
                .availability,
            Availability::Incomplete
        );
        meta.verification = VerificationState::Verified;
        store.write_metadata(&meta).unwrap();
        std::fs::remove_file(store.model_dir(&repo).join("a.txt")).unwrap();
        assert_eq!(
            model_status(&store, &repo, None, false)
                .unwrap()
                .availability,
            Availability::Incomplete
        );
        meta.verification = VerificationState::Failed;
        store.write_metadata(&meta).unwrap();
        assert_eq!(
            model_status(&store, &repo, None, false)
                .unwrap()
                .availability,
            Availability::Corrupted
        );
    }
}
