//! Repair through the download engine, and hub-backed expected hashes for metadata generation.
//!
//! Repair re-downloads only what is bad: the model is re-requested at its pinned commit with the metadata's own
//! file list, after the bad files' "verified" stamps are cleared; the download engine's resume logic keeps every
//! file whose stamp (size + mtime + verified) or hash still matches and fetches only the others.

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

/// [`Repairer`] over the download engine.
#[derive(Clone, Debug)]
pub struct DownloadRepairer {
    pub manager: DownloadManager,
}

impl DownloadRepairer {
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
        // Make sure the bad files are re-hashed (and so re-fetched) rather than trusted by their stamp.
        let mut changed = false;
        for f in meta.files.iter_mut().filter(|f| files.contains(&f.path)) {
            if f.verified_at.is_some() || f.mtime.is_some() {
                f.verified_at = None;
                f.mtime = None;
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
                        mtime: None,
                    })
                    .collect(),
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
            Err(HttpFailure::Transient { message, .. }) => {
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
