//! Planning a round of a model download: resolving the revision and listing the wanted files (metadata requests
//! with their retry policy, the listing cross-checked, the include/exclude globs), what is already in place
//! (verified before, or adoptable by its hash), the disk pre-flight and the metadata to write; and, offline,
//! whether the store already holds the model complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use globset::{Glob, GlobSet, GlobSetBuilder};
use url::Url;

use super::disk::check_disk;
use super::partial::bytes_remaining;
use super::types::{DownloadOptions, DownloadReport};
use super::util;
use crate::engine::config::DownloadsConfig;
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Event, EventBus};
use crate::engine::hub::{HttpFailure, HubClient, ModelInfo, RemoteFile};
use crate::engine::store::{
    FileRecord, METADATA_SCHEMA_VERSION, ModelMetadata, RepoId, Store, VerificationState, mtime_ns,
    now_rfc3339,
};

/// Retries of a metadata request when nothing answers (connection refused or connect timeout).
const QUICK_CONNECT_RETRIES: u32 = 2;

fn build_globs(globs: &[String], what: &str) -> Result<Option<GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| {
            EmaError::Config(format!(
                "invalid {what} glob {g:?}: {e}; use patterns like `*.safetensors` or `onnx/*`"
            ))
        })?;
        b.add(glob);
    }
    b.build()
        .map(Some)
        .map_err(|e| EmaError::Config(format!("invalid {what} globs: {e}")))
}

/// Keep the files matching `include` (all when empty) and not matching `exclude`.
pub fn filter_files(
    files: Vec<RemoteFile>,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<RemoteFile>> {
    let inc = build_globs(include, "--include")?;
    let exc = build_globs(exclude, "--exclude")?;
    Ok(files
        .into_iter()
        .filter(|f| inc.as_ref().is_none_or(|g| g.is_match(&f.path)))
        .filter(|f| exc.as_ref().is_none_or(|g| !g.is_match(&f.path)))
        .collect())
}

/// Refuse invalid include/exclude globs before anything is persisted (or reported offline).
pub(super) fn validate_globs(opts: &DownloadOptions) -> Result<()> {
    build_globs(&opts.include, "--include")?;
    build_globs(&opts.exclude, "--exclude")?;
    Ok(())
}

/// Resolve the revision to a commit and list the wanted files at it: the tree, checked against the model info's
/// siblings, filtered by the globs (none matching is an error).
pub(super) async fn list_files(
    hub: &HubClient,
    cfg: &DownloadsConfig,
    bus: &EventBus,
    repo: &RepoId,
    opts: &DownloadOptions,
) -> Result<(ModelInfo, Vec<RemoteFile>)> {
    let info = with_retries(hub, cfg, bus, repo, || {
        hub.model_info(repo, opts.revision.as_deref())
    })
    .await?;
    let commit = info.commit.clone();
    let tree = with_retries(hub, cfg, bus, repo, || hub.list_tree(repo, &commit)).await?;
    cross_check(repo, &info, &tree)?;
    let total_listed = tree.len();
    let files = filter_files(tree, &opts.include, &opts.exclude)?;
    if files.is_empty() {
        return Err(EmaError::NotFound(format!(
            "none of the {total_listed} files of {repo} at {commit} matches the --include/--exclude globs; \
             check the patterns"
        )));
    }
    Ok((info, files))
}

/// A round's plan: the wanted files at the commit, which are already in place, and what is left to fetch.
pub(super) struct Plan {
    pub commit: String,
    pub files: Vec<RemoteFile>,
    pub total_bytes: u64,
    pub model_dir: PathBuf,
    pub partial_dir: PathBuf,
    /// The model's metadata from an earlier run, if any.
    pub previous: Option<ModelMetadata>,
    /// (index into `files`, expected hash) of each file to fetch.
    pub todo: Vec<(usize, String)>,
    /// Bytes of the files already in place.
    pub present_bytes: u64,
}

impl Plan {
    /// Was the model available at this commit before this run?
    pub fn was_available(&self) -> bool {
        self.previous.as_ref().is_some_and(|p| {
            p.verification == VerificationState::Verified
                && p.commit.as_deref() == Some(&self.commit)
        })
    }
}

/// Plan a round over the listed `files`: sort out what is already in place, check the disk has room for the rest,
/// and build the (unverified) metadata to write.
pub(super) fn plan_round(
    store: &Store,
    repo: &RepoId,
    opts: &DownloadOptions,
    endpoint: &Url,
    info: &ModelInfo,
    files: Vec<RemoteFile>,
) -> Result<(Plan, ModelMetadata)> {
    let commit = info.commit.clone();
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let model_dir = store.model_dir(repo);
    let partial_dir = store.partial_dir(repo);
    std::fs::create_dir_all(&partial_dir)
        .map_err(|e| EmaError::io("cannot create directory", &partial_dir, e))?;

    // What is already in place (verified before, or adoptable by hash)?
    let previous = store.read_metadata(repo).ok().flatten();
    let (records, todo, present_bytes) = sort_present(&model_dir, &files, previous.as_ref());

    // Disk pre-flight against the bytes still needed.
    let needed: u64 = todo
        .iter()
        .map(|(i, h)| bytes_remaining(&partial_dir, h, files[*i].size))
        .sum();
    check_disk(&partial_dir, needed)?;

    let now = now_rfc3339();
    let meta = ModelMetadata {
        schema_version: METADATA_SCHEMA_VERSION,
        legacy_location: previous.as_ref().and_then(|p| p.legacy_location.clone()),
        repo_id: repo.clone(),
        requested_revision: opts.revision.clone().unwrap_or_else(|| "main".to_string()),
        commit: Some(commit.clone()),
        endpoint: Some(endpoint.as_str().trim_end_matches('/').to_string()),
        files: records,
        total_size: total_bytes,
        pipeline_tag: info.pipeline_tag.clone(),
        library_name: info.library_name.clone(),
        tags: info.tags.clone(),
        parameters: info.parameters,
        facts: crate::engine::fallback::facts::from_hub(info),
        created_at: previous
            .as_ref()
            .map(|p| p.created_at.clone())
            .unwrap_or_else(|| now.clone()),
        updated_at: now.clone(),
        last_verified_at: None,
        verification: VerificationState::Unverified,
    };
    let plan = Plan {
        commit,
        files,
        total_bytes,
        model_dir,
        partial_dir,
        previous,
        todo,
        present_bytes,
    };
    Ok((plan, meta))
}

/// One record per file (those already in place carry their verification), the files still to fetch with their
/// expected hash, and the bytes already in place.
#[allow(clippy::type_complexity)]
fn sort_present(
    model_dir: &Path,
    files: &[RemoteFile],
    previous: Option<&ModelMetadata>,
) -> (Vec<FileRecord>, Vec<(usize, String)>, u64) {
    let mut records: Vec<FileRecord> = Vec::with_capacity(files.len());
    let mut todo: Vec<(usize, String)> = Vec::new();
    let mut present_bytes = 0u64;
    for (i, f) in files.iter().enumerate() {
        let hash = f
            .expected_hash()
            .expect("validated listing has a hash")
            .to_string();
        let rec = FileRecord {
            path: f.path.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
            git_sha1: f.git_sha1.clone(),
            lfs: f.is_lfs(),
            verified_at: None,
            mtime_ns: None,
        };
        match already_present(model_dir, f, &hash, previous) {
            Some((verified_at, mtime)) => {
                present_bytes += f.size;
                records.push(FileRecord {
                    verified_at: Some(verified_at),
                    mtime_ns: Some(mtime),
                    ..rec
                });
            }
            None => {
                records.push(rec);
                todo.push((i, hash));
            }
        }
    }
    (records, todo, present_bytes)
}

/// Run a metadata request with the retry policy.
async fn with_retries<T, F, Fut>(
    hub: &HubClient,
    cfg: &DownloadsConfig,
    bus: &EventBus,
    repo: &RepoId,
    mut f: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, HttpFailure>>,
{
    let mut attempt = 0u32;
    loop {
        let (message, retry_after, quick) = match f().await {
            Ok(v) => return Ok(v),
            Err(HttpFailure::Fatal(e)) => return Err(e),
            Err(HttpFailure::Transient {
                message,
                retry_after,
            }) => (message, retry_after, false),
            Err(HttpFailure::Unreachable { message }) => (message, None, true),
        };
        attempt += 1;
        // Nothing answering at all gets a few quick tries (a mirror being restarted), not minutes of backoff.
        let (tries, base) = if quick {
            (
                cfg.max_retries.min(QUICK_CONNECT_RETRIES),
                cfg.retry_delay_seconds.min(1.0),
            )
        } else {
            (cfg.max_retries, cfg.retry_delay_seconds)
        };
        if attempt > tries {
            let endpoint = hub.endpoint();
            return Err(EmaError::Hub(if quick {
                format!(
                    "{message} (after {attempt} attempts); nothing answers at {endpoint}: check that the hub \
                     or mirror is running and that HF_ENDPOINT is right (or set HF_HUB_OFFLINE=1 to work with \
                     local models only)"
                )
            } else {
                format!(
                    "{message} (after {attempt} attempts); check HF_ENDPOINT ({endpoint}) and the network, \
                     then retry"
                )
            }));
        }
        let d = util::backoff(attempt, base, retry_after, cfg.max_retry_after_seconds);
        bus.emit(Event::Retry {
            model_id: repo.to_string(),
            path: String::new(),
            attempt,
            delay_ms: d.as_millis() as u64,
            reason: message,
        });
        tokio::time::sleep(d).await;
    }
}

/// With HF_HUB_OFFLINE set nothing is fetched, but a model already complete in the store (at the asked
/// revision, with every wanted file present and matching its recorded hash) is a success, as
/// `huggingface_hub` returns its local snapshot offline. Anything else is an error naming what is missing.
pub(super) fn offline_report(
    store: &Store,
    repo: &RepoId,
    opts: &DownloadOptions,
) -> Result<DownloadReport> {
    let started = Instant::now();
    let refuse = |why: String| {
        EmaError::Hub(format!(
            "HF_HUB_OFFLINE is set: ema does not touch the network, and {why}; unset HF_HUB_OFFLINE (or set it \
             to 0) to download"
        ))
    };
    let meta = match store.read_metadata(repo) {
        Ok(Some(m)) => m,
        Ok(None) => return Err(refuse(format!("{repo} is not in the store"))),
        Err(e) => return Err(refuse(format!("{repo}'s metadata cannot be read ({e})"))),
    };
    let Some(commit) = meta.commit.clone() else {
        return Err(refuse(format!("{repo} has no pinned commit in the store")));
    };
    if let Some(rev) = &opts.revision
        && rev != &meta.requested_revision
        && rev != &commit
    {
        let at = if meta.requested_revision == commit {
            format!("commit {commit}")
        } else {
            format!("{} (commit {commit})", meta.requested_revision)
        };
        return Err(refuse(format!(
            "the store has {repo} at {at}, not at revision {rev:?}"
        )));
    }
    let wanted: Vec<RemoteFile> = meta
        .files
        .iter()
        .map(|r| RemoteFile {
            path: r.path.clone(),
            size: r.size,
            git_sha1: r.git_sha1.clone(),
            sha256: if r.lfs { r.sha256.clone() } else { None },
        })
        .collect();
    let wanted = filter_files(wanted, &opts.include, &opts.exclude)?;
    if wanted.is_empty() {
        return Err(refuse(format!(
            "none of the {} files the store has of {repo} matches the --include/--exclude globs",
            meta.files.len()
        )));
    }
    let model_dir = store.model_dir(repo);
    for f in &wanted {
        let hash = f.expected_hash().ok_or_else(|| {
            refuse(format!(
                "{} of {repo} has no recorded hash to check it against",
                f.path
            ))
        })?;
        if already_present(&model_dir, f, hash, Some(&meta)).is_none() {
            return Err(refuse(format!(
                "{} of {repo} is missing or damaged in the store",
                f.path
            )));
        }
    }
    Ok(DownloadReport {
        model_id: repo.to_string(),
        commit,
        path: model_dir,
        files: wanted.len(),
        files_already_present: wanted.len(),
        total_bytes: wanted.iter().map(|f| f.size).sum(),
        bytes_fetched: 0,
        seconds: started.elapsed().as_secs_f64(),
        completed: true,
        offline: true,
    })
}

/// A file already in the model folder counts when the previous metadata verified the same hash and size and the
/// mtime is unchanged, or when hashing it now gives the expected hash (a crash between placement and the metadata
/// write, or files put there by another tool). Returns (verified_at, mtime).
fn already_present(
    model_dir: &Path,
    f: &RemoteFile,
    hash: &str,
    previous: Option<&ModelMetadata>,
) -> Option<(String, i64)> {
    let dest = model_dir.join(&f.path);
    let m = std::fs::symlink_metadata(&dest).ok()?;
    if !m.is_file() || m.len() != f.size {
        return None;
    }
    let mtime = mtime_ns(&m)?;
    if let Some(prev) = previous
        && let Some(r) = prev.files.iter().find(|r| r.path == f.path)
        && r.size == f.size
        && r.verified_at.is_some()
        && r.mtime_ns == Some(mtime)
        && (r.sha256.as_deref() == Some(hash)
            || (!f.is_lfs() && r.git_sha1.as_deref() == Some(hash)))
    {
        return Some((r.verified_at.clone().unwrap_or_else(now_rfc3339), mtime));
    }
    match util::hash_file(&dest, f.is_lfs(), f.size) {
        Ok(h) if h == hash => Some((now_rfc3339(), mtime)),
        _ => None,
    }
}

/// Sizes in the tree listing and the model info's siblings must agree.
fn cross_check(repo: &RepoId, info: &ModelInfo, tree: &[RemoteFile]) -> Result<()> {
    let by_path: HashMap<&str, &RemoteFile> =
        info.siblings.iter().map(|s| (s.path.as_str(), s)).collect();
    for f in tree {
        if let Some(s) = by_path.get(f.path.as_str()) {
            let size_known = s.size > 0 || s.sha256.is_some() || s.git_sha1.is_some();
            if size_known && s.size != f.size {
                return Err(EmaError::Integrity(format!(
                    "the hub lists {} of {repo} with {} bytes in the model info but {} in the tree; refusing an \
                     inconsistent listing",
                    f.path, s.size, f.size
                )));
            }
            if let (Some(a), Some(b)) = (&s.sha256, &f.sha256)
                && a != b
            {
                return Err(EmaError::Integrity(format!(
                    "the hub lists two different sha256 for {} of {repo}; refusing an inconsistent listing",
                    f.path
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rf(p: &str) -> RemoteFile {
        RemoteFile {
            path: p.into(),
            size: 1,
            git_sha1: Some("a".repeat(40)),
            sha256: None,
        }
    }

    #[test]
    fn globs_filter() {
        let files = vec![
            rf("config.json"),
            rf("model.safetensors"),
            rf("onnx/model.onnx"),
            rf("README.md"),
        ];
        let got: Vec<String> = filter_files(
            files.clone(),
            &["*.json".into(), "*.safetensors".into()],
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
        assert_eq!(got, vec!["config.json", "model.safetensors"]);
        let got: Vec<String> = filter_files(files, &[], &["onnx/*".into()])
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(got, vec!["config.json", "model.safetensors", "README.md"]);
        assert!(filter_files(vec![], &["[".into()], &[]).is_err());
    }
}
