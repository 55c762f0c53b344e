//! Repair through the download engine, and hub-backed expected hashes for metadata generation.
//!
//! Repair re-downloads only what is bad: the model is re-requested at its pinned commit with the metadata's own
//! file list, after the bad files' "verified" stamps are cleared; the download engine's resume logic keeps every
//! file whose stamp (size + mtime + verified) or hash still matches and fetches only the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::Repairer;
use super::generate::{HubRepoFiles, HubSource};
use super::verify::ModelHealth;
use crate::engine::download::{DownloadManager, DownloadOptions};
use crate::engine::error::{EmaError, Result};
use crate::engine::hub::{HttpFailure, HubClient};
use crate::engine::store::{FileRecord, RepoId, Store, validate_repo_path};

/// A local folder searched for an exact copy of a bad file before the hub is asked.
#[derive(Clone, Debug, PartialEq)]
pub enum LocalSource {
    /// Another ema store (a mirror's store, a backup, `storage.repair_sources`): `<root>/<org>--<name>/<path>`.
    Store(PathBuf),
    /// The Hugging Face cache: `<root>/models--<org>--<name>/blobs/<sha256 or git sha1>`.
    HfCache(PathBuf),
}

/// [`Repairer`] over the download engine: bad files are restored from local copies when one with the expected hash
/// exists (`local_sources`), and re-downloaded otherwise.
#[derive(Clone, Debug)]
pub struct DownloadRepairer {
    pub manager: DownloadManager,
    pub local_sources: Vec<LocalSource>,
}

impl DownloadRepairer {
    /// Restore `rec` from the first local copy whose bytes hash to the expected value. The copy goes to a temp file
    /// in the store's state dir, is hashed there, and only then renamed into place; returns whether it was restored.
    fn restore_local(&self, store: &Store, repo: &RepoId, rec: &mut FileRecord) -> Result<bool> {
        validate_repo_path(&rec.path)?;
        let Some((kinds, expected)) = super::verify::expected_hash(rec) else {
            return Ok(false);
        };
        let candidates: Vec<PathBuf> = self
            .local_sources
            .iter()
            .map(|s| match s {
                LocalSource::Store(root) => Store::new(root).model_dir(repo).join(&rec.path),
                LocalSource::HfCache(root) => root
                    .join(format!("models--{}", repo.folder_name()))
                    .join("blobs")
                    .join(&expected),
            })
            .collect();
        let dest = store.model_dir(repo).join(&rec.path);
        for cand in candidates {
            if cand == dest
                || !std::fs::metadata(&cand).is_ok_and(|m| m.is_file() && m.len() == rec.size)
            {
                continue;
            }
            let tmp_dir = store.state_dir().join("tmp");
            std::fs::create_dir_all(&tmp_dir)
                .map_err(|e| EmaError::io("cannot create directory", &tmp_dir, e))?;
            let tmp = tempfile::Builder::new()
                .prefix("restore-")
                .tempfile_in(&tmp_dir)
                .map_err(|e| EmaError::io("cannot create a temporary file in", &tmp_dir, e))?;
            if std::fs::copy(&cand, tmp.path()).is_err() {
                continue;
            }
            let got = super::hash::hash_file(tmp.path(), kinds)?;
            let actual = if kinds.sha256 {
                got.digests.sha256
            } else {
                got.digests.git_sha1
            };
            if got.digests.size != rec.size || actual.as_deref() != Some(expected.as_str()) {
                continue;
            }
            tmp.as_file()
                .sync_all()
                .map_err(|e| EmaError::io("cannot fsync", tmp.path(), e))?;
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| EmaError::io("cannot create directory", parent, e))?;
            }
            // Never write through a symlink at the destination: rename replaces the link itself.
            tmp.persist(&dest)
                .map_err(|e| EmaError::io("cannot place", &dest, e.error))?;
            crate::engine::atomic::sync_dir(dest.parent().unwrap_or(store.root()));
            rec.verified_at = Some(crate::engine::store::now_rfc3339());
            rec.mtime_ns = std::fs::metadata(&dest)
                .ok()
                .and_then(|m| crate::engine::store::mtime_ns(&m));
            return Ok(true);
        }
        Ok(false)
    }

    async fn repair_inner(&self, repo: &RepoId, files: &[String]) -> Result<()> {
        let store = self.manager.store().clone();
        let mut meta = store.read_metadata(repo)?.ok_or_else(|| {
            EmaError::NotFound(format!(
                "{repo} has no metadata, so there is nothing to repair against; download it with `ema download \
                 {repo}`"
            ))
        })?;
        let commit = meta.commit.clone().ok_or_else(|| {
            EmaError::Integrity(format!(
                "{repo}'s metadata is local-only (no pinned commit), so the hub's copy may be another version; \
                 re-download it explicitly with `ema download {repo}` or regenerate the metadata while the hub \
                 is reachable"
            ))
        })?;
        // First from local copies with the expected hash (no network needed), then the rest from the hub.
        let mut changed = false;
        let mut still_bad = Vec::new();
        for f in meta.files.iter_mut().filter(|f| files.contains(&f.path)) {
            if self.restore_local(&store, repo, f)? {
                changed = true;
            } else {
                still_bad.push(f.path.clone());
            }
        }
        if still_bad.is_empty() {
            store.write_metadata(&meta)?;
            return Ok(());
        }
        // Make sure the bad files are re-hashed (and so re-fetched) rather than trusted by their stamp.
        for f in meta
            .files
            .iter_mut()
            .filter(|f| still_bad.contains(&f.path))
        {
            if f.verified_at.is_some() || f.mtime_ns.is_some() {
                f.verified_at = None;
                f.mtime_ns = None;
                changed = true;
            }
        }
        if changed {
            store.write_metadata(&meta)?;
        }
        let include = meta
            .files
            .iter()
            .map(|f| globset::escape(&f.path))
            .collect();
        let report = self
            .manager
            .download(
                repo,
                DownloadOptions {
                    revision: Some(commit),
                    include,
                    ..Default::default()
                },
            )
            .await?;
        if !report.completed {
            return Err(EmaError::Other(format!(
                "the repair download of {repo} did not complete (paused or cancelled); run it again"
            )));
        }
        Ok(())
    }
}

impl Repairer for DownloadRepairer {
    fn repair<'a>(
        &'a self,
        repo: &'a RepoId,
        files: &'a [String],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(self.repair_inner(repo, files))
    }
}

/// What a repair did for one model.
#[derive(Debug, Clone, Serialize)]
pub struct RepairOutcome {
    pub model_id: String,
    pub redownloaded: Vec<String>,
    pub strays_removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Delete stray files of a model (names validated; nothing outside the model folder is touched).
pub fn remove_strays(store: &Store, repo: &RepoId, strays: &[String]) -> Result<Vec<String>> {
    let dir = store.model_dir(repo);
    let mut removed = Vec::new();
    for s in strays {
        if validate_repo_path(s).is_err() {
            continue;
        }
        let p = dir.join(s);
        match std::fs::remove_file(&p) {
            Ok(()) => removed.push(s.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EmaError::io("cannot remove stray file", &p, e)),
        }
    }
    Ok(removed)
}

/// Repair every unhealthy model in `results`: re-download the bad or missing files; remove strays when asked.
pub async fn repair_models(
    store: &Store,
    results: &[ModelHealth],
    repairer: &dyn Repairer,
    remove_stray_files: bool,
) -> Vec<RepairOutcome> {
    let mut out = Vec::new();
    for h in results.iter().filter(|h| !h.is_healthy()) {
        let files = h.files_to_download();
        let strays = h.stray_files();
        if files.is_empty() && (strays.is_empty() || !remove_stray_files) {
            continue;
        }
        let mut o = RepairOutcome {
            model_id: h.model_id.clone(),
            redownloaded: Vec::new(),
            strays_removed: Vec::new(),
            error: None,
        };
        let repo = match RepoId::parse(&h.model_id) {
            Ok(r) => r,
            Err(e) => {
                o.error = Some(e.to_string());
                out.push(o);
                continue;
            }
        };
        if !files.is_empty() {
            match repairer.repair(&repo, &files).await {
                Ok(()) => o.redownloaded = files,
                Err(e) => o.error = Some(e.to_string()),
            }
        }
        if remove_stray_files && !strays.is_empty() {
            match remove_strays(store, &repo, &strays) {
                Ok(r) => o.strays_removed = r,
                Err(e) => o.error = Some(e.to_string()),
            }
        }
        out.push(o);
    }
    out
}

/// [`HubSource`] over the Hub client: model info + tree at the commit. After the first "unreachable" answer it
/// stops asking (every later model falls back to local hashes at once instead of waiting for timeouts).
pub struct HubMetadataSource {
    client: HubClient,
    handle: tokio::runtime::Handle,
    unreachable: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
}

impl HubMetadataSource {
    pub fn new(client: HubClient, handle: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(HubMetadataSource {
            client,
            handle,
            unreachable: AtomicBool::new(false),
            last_error: std::sync::Mutex::new(None),
        })
    }

    pub fn unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl HubSource for HubMetadataSource {
    fn repo_files(&self, repo: &RepoId, revision: &str) -> Result<Option<HubRepoFiles>> {
        if self.unreachable() {
            return Ok(None);
        }
        let res = self.handle.block_on(async {
            let info = self.client.model_info(repo, Some(revision)).await?;
            let tree = self.client.list_tree(repo, &info.commit).await?;
            Ok::<_, HttpFailure>((info, tree))
        });
        match res {
            Ok((info, tree)) => Ok(Some(HubRepoFiles {
                commit: info.commit.clone(),
                endpoint: self
                    .client
                    .endpoint()
                    .as_str()
                    .trim_end_matches('/')
                    .to_string(),
                files: tree
                    .into_iter()
                    .map(|f| FileRecord {
                        lfs: f.is_lfs(),
                        path: f.path,
                        size: f.size,
                        sha256: f.sha256,
                        git_sha1: f.git_sha1,
                        verified_at: None,
                        mtime_ns: None,
                    })
                    .collect(),
                facts: crate::engine::fallback::facts::from_hub(&info),
                pipeline_tag: info.pipeline_tag,
                library_name: info.library_name,
                tags: info.tags,
                parameters: info.parameters,
            })),
            // The hub does not know this repo (or this revision): local hashes.
            Err(HttpFailure::Fatal(EmaError::NotFound(_))) => Ok(None),
            // Refused for this repo (gated, private): local hashes for it, keep asking for the others.
            Err(HttpFailure::Fatal(e @ EmaError::Hub(_))) => {
                if let Ok(mut le) = self.last_error.lock() {
                    *le = Some(e.to_string());
                }
                Ok(None)
            }
            // Network trouble: the hub is unreachable; stop asking.
            Err(HttpFailure::Transient { message, .. } | HttpFailure::Unreachable { message }) => {
                self.unreachable.store(true, Ordering::Relaxed);
                if let Ok(mut le) = self.last_error.lock() {
                    *le = Some(message);
                }
                Ok(None)
            }
            Err(HttpFailure::Fatal(e)) => Err(e),
        }
    }
}
