//! Per-model verification.
//!
//! - **Full** ([`verify_models`]): every byte of every file hashed against the metadata's expected sha256 (or git
//!   blob sha1), plus structure checks: safetensors headers, JSON files parse, every shard a
//!   `*.safetensors.index.json` weight map names exists. Files on disk but not in the metadata are strays.
//!   The metadata's `verified_at` / `mtime` / `last_verified_at` / `verification` are updated atomically afterwards.
//! - **Quick** ([`quick_check`]): existence, size and mtime against the metadata; no hashing; parallel stats.
//!
//! Health states: `missing` (metadata but no folder), `corrupted` (wrong size, wrong hash, bad structure),
//! `incomplete` (a file or an index's shard is missing), `unknown` (no metadata, no expected hash, or changed
//! since the last full verification), `degraded` (stray files), `healthy`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::hash::{self, HashJob, HashKinds};
use super::safetensors;
use crate::engine::error::Result;
use crate::engine::events::HealthState;
use crate::engine::store::{
    ModelMetadata, RepoId, Store, VerificationState, mtime_ns, now_rfc3339, validate_repo_path,
};

/// Files at this path prefix inside a model folder belong to the `local_dir` download layout of huggingface_hub
/// and are never strays.
pub const HF_LOCAL_DIR_CACHE: &str = ".cache/huggingface/";

/// Largest JSON file whose syntax is checked (bigger ones are only hashed).
const MAX_JSON_CHECK_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    Quick,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileProblem {
    /// In the metadata, not on disk.
    Missing,
    WrongSize,
    HashMismatch,
    /// A safetensors header or JSON file is malformed.
    BadStructure,
    /// An index file names a shard that does not exist.
    MissingShard,
    /// On disk, not in the metadata.
    Stray,
    Unreadable,
    /// Modified (mtime) since the last full verification.
    Changed,
    /// The metadata records no hash for it: it could only be size-checked.
    NoExpectedHash,
    /// The metadata file itself is damaged.
    BadMetadata,
}

impl FileProblem {
    fn state(self) -> HealthState {
        match self {
            FileProblem::WrongSize
            | FileProblem::HashMismatch
            | FileProblem::BadStructure
            | FileProblem::Unreadable => HealthState::Corrupted,
            FileProblem::Missing | FileProblem::MissingShard => HealthState::Incomplete,
            FileProblem::Changed | FileProblem::NoExpectedHash | FileProblem::BadMetadata => {
                HealthState::Unknown
            }
            FileProblem::Stray => HealthState::Degraded,
        }
    }

    /// Repairing re-downloads these files.
    pub fn needs_download(self) -> bool {
        matches!(
            self,
            FileProblem::Missing
                | FileProblem::WrongSize
                | FileProblem::HashMismatch
                | FileProblem::BadStructure
                | FileProblem::Unreadable
        )
    }
}

/// Severity order of states, worst first.
pub fn state_rank(s: HealthState) -> u8 {
    match s {
        HealthState::Missing => 0,
        HealthState::Corrupted => 1,
        HealthState::Incomplete => 2,
        HealthState::Unknown => 3,
        HealthState::Degraded => 4,
        HealthState::Healthy => 5,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileIssue {
    pub path: String,
    pub problem: FileProblem,
    pub detail: String,
}

/// The health of one model and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHealth {
    pub model_id: String,
    pub state: HealthState,
    /// One line: the worst problems, or "all N files verified".
    pub reason: String,
    pub mode: CheckMode,
    pub files_expected: usize,
    pub files_ok: usize,
    pub total_bytes: u64,
    pub bytes_hashed: u64,
    pub issues: Vec<FileIssue>,
    pub verification: Option<VerificationState>,
    pub seconds: f64,
    /// Read throughput measured while hashing (bytes/s), a load-time basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bytes_per_sec: Option<f64>,
    /// `total_bytes / read_bytes_per_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_time_estimate_seconds: Option<f64>,
    pub checked_at: String,
    /// Set when the outcome could not be recorded in the metadata (e.g. a read-only store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_not_updated: Option<String>,
}

impl ModelHealth {
    pub fn is_healthy(&self) -> bool {
        self.state == HealthState::Healthy
    }

    /// Repo paths a repair must re-download.
    pub fn files_to_download(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .issues
            .iter()
            .filter(|i| i.problem.needs_download())
            .map(|i| i.path.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn stray_files(&self) -> Vec<String> {
        self.issues
            .iter()
            .filter(|i| i.problem == FileProblem::Stray)
            .map(|i| i.path.clone())
            .collect()
    }
}

/// A file found on disk in a model folder.
#[derive(Debug, Clone)]
pub struct DiskFile {
    pub rel: String,
    pub size: u64,
    pub mtime_ns: Option<i64>,
}

/// Every regular file (or symlink to one) under `dir`, repo-relative with `/`, excluding the `local_dir` cache.
pub fn walk_model_dir(dir: &Path) -> std::io::Result<Vec<DiskFile>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if prefix.is_empty() => return Err(e),
            Err(_) => continue,
        };
        for entry in rd {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let ft = entry.file_type()?;
            if ft.is_dir() {
                let sub = format!("{rel}/");
                if HF_LOCAL_DIR_CACHE.starts_with(&sub) {
                    // `.cache/` or `.cache/huggingface/`: descend only outside the hf cache itself.
                    if sub == HF_LOCAL_DIR_CACHE {
                        continue;
                    }
                }
                stack.push((entry.path(), sub));
                continue;
            }
            let md = match std::fs::metadata(entry.path()) {
                Ok(m) if m.is_file() => m,
                _ => continue, // dangling symlink or special file: not a model file
            };
            out.push(DiskFile {
                rel,
                size: md.len(),
                mtime_ns: mtime_ns(&md),
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// Which hash a record is verified against: the sha256 when known, else the git sha1.
pub fn expected_hash(rec: &crate::engine::store::FileRecord) -> Option<(HashKinds, String)> {
    if let Some(s) = &rec.sha256 {
        return Some((HashKinds::SHA256, s.to_ascii_lowercase()));
    }
    rec.git_sha1
        .as_ref()
        .map(|s| (HashKinds::GIT_SHA1, s.to_ascii_lowercase()))
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// Structure checks for one present file; returns the issues found.
pub fn structure_issues(model_dir: &Path, rel: &str, size: u64) -> Vec<FileIssue> {
    let path = model_dir.join(rel);
    let mut issues = Vec::new();
    let issue = |problem, detail: String| FileIssue {
        path: rel.to_string(),
        problem,
        detail,
    };
    if rel.ends_with(".safetensors") {
        if let Err(e) = safetensors::check_file(&path) {
            issues.push(issue(
                FileProblem::BadStructure,
                format!("bad safetensors header: {e}"),
            ));
        }
    } else if rel.ends_with(".json") && size <= MAX_JSON_CHECK_BYTES {
        match std::fs::read(&path) {
            Err(e) => issues.push(issue(FileProblem::Unreadable, format!("cannot read: {e}"))),
            Ok(bytes) => {
                match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Err(e) => issues.push(issue(
                        FileProblem::BadStructure,
                        format!("not valid JSON: {e}"),
                    )),
                    Ok(v) if rel.ends_with(".index.json") => {
                        if let Some(map) = v.get("weight_map").and_then(|m| m.as_object()) {
                            let base = match rel.rfind('/') {
                                Some(i) => &rel[..=i],
                                None => "",
                            };
                            let shards: BTreeSet<&str> =
                                map.values().filter_map(|s| s.as_str()).collect();
                            for shard in shards {
                                let shard_rel = format!("{base}{shard}");
                                if validate_repo_path(&shard_rel).is_err() {
                                    issues.push(issue(
                                        FileProblem::BadStructure,
                                        format!("weight_map names an unsafe shard path {shard:?}"),
                                    ));
                                } else if !model_dir.join(&shard_rel).is_file() {
                                    issues.push(issue(
                                    FileProblem::MissingShard,
                                    format!("weight_map names shard {shard_rel:?}, which does not exist"),
                                ));
                                }
                            }
                        } else if rel.ends_with(".safetensors.index.json") {
                            issues.push(issue(
                                FileProblem::BadStructure,
                                "index file has no `weight_map` object".to_string(),
                            ));
                        }
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    issues
}

fn summarize(issues: &[FileIssue], files: usize, mode: CheckMode) -> String {
    if issues.is_empty() {
        return match mode {
            CheckMode::Full => format!("all {files} files verified"),
            CheckMode::Quick => format!("all {files} files present with the recorded size"),
        };
    }
    let mut sorted: Vec<&FileIssue> = issues.iter().collect();
    sorted.sort_by_key(|i| state_rank(i.problem.state()));
    let mut parts: Vec<String> = sorted
        .iter()
        .take(3)
        .map(|i| {
            if i.path.is_empty() {
                i.detail.clone()
            } else {
                format!("{}: {}", i.path, i.detail)
            }
        })
        .collect();
    if sorted.len() > 3 {
        parts.push(format!("and {} more", sorted.len() - 3));
    }
    parts.join("; ")
}

fn state_of(issues: &[FileIssue]) -> HealthState {
    issues
        .iter()
        .map(|i| i.problem.state())
        .min_by_key(|s| state_rank(*s))
        .unwrap_or(HealthState::Healthy)
}

/// What one model's check starts from.
struct Plan {
    id: RepoId,
    dir: PathBuf,
    meta: Option<ModelMetadata>,
    meta_error: Option<String>,
    disk: Vec<DiskFile>,
    dir_exists: bool,
    /// A download holds the model's lock (here or in another process).
    busy: bool,
}

fn plan(store: &Store, id: &RepoId) -> Plan {
    let dir = store.model_dir(id);
    let (meta, meta_error) = match store.read_metadata(id) {
        Ok(m) => (m, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let dir_exists = dir.is_dir();
    let busy = super::maintenance::lock_held(&store.lock_path(id));
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
fn presence_issues(p: &Plan, mode: CheckMode) -> Vec<FileIssue> {
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

fn base_health(p: &Plan, mode: CheckMode) -> Option<ModelHealth> {
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

/// Progress of a full verification: `(bytes hashed so far, bytes to hash)`, called from worker threads.
pub type ProgressFn = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Options for a full verification.
#[derive(Clone)]
pub struct VerifyOptions {
    /// Hashing threads (default: the cores available).
    pub threads: usize,
    /// Record the outcome in each model's metadata (`verified_at`, `verification`, …).
    pub update_metadata: bool,
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("threads", &self.threads)
            .field("update_metadata", &self.update_metadata)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            threads: hash::default_threads(),
            update_metadata: true,
            progress: None,
        }
    }
}

/// (file index, match or the issue, bytes hashed, read nanoseconds)
type HashOutcome = (usize, std::result::Result<(), FileIssue>, u64, u64);

/// Fully verify `ids`, hashing every file of every model on one shared pool (largest files first).
pub fn verify_models(
    store: &Store,
    ids: &[RepoId],
    opts: &VerifyOptions,
) -> Result<Vec<ModelHealth>> {
    let start = Instant::now();
    let plans: Vec<Plan> = super::parallel_map(ids, opts.threads, |id| plan(store, id));
    // Hash jobs: every listed file present with the right size and an expected hash.
    let mut jobs = Vec::new();
    let mut job_owner: Vec<(usize, usize, String)> = Vec::new(); // (plan, file index, expected)
    for (pi, p) in plans.iter().enumerate() {
        let Some(meta) = &p.meta else { continue };
        if !p.dir_exists || p.busy {
            continue;
        }
        let on_disk: BTreeMap<&str, &DiskFile> =
            p.disk.iter().map(|f| (f.rel.as_str(), f)).collect();
        for (fi, rec) in meta.files.iter().enumerate() {
            let Some(f) = on_disk.get(rec.path.as_str()) else {
                continue;
            };
            if f.size != rec.size {
                continue;
            }
            if let Some((kinds, want)) = expected_hash(rec) {
                jobs.push(HashJob {
                    path: p.dir.join(&rec.path),
                    kinds,
                    size_hint: f.size,
                });
                job_owner.push((pi, fi, want));
            }
        }
    }
    let total: u64 = jobs.iter().map(|j| j.size_hint).sum();
    let done = std::sync::atomic::AtomicU64::new(0);
    let on_bytes = |n: u64| {
        if let Some(p) = &opts.progress {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            p(d, total);
        }
    };
    let hashed = hash::hash_files_parallel_progress(&jobs, opts.threads, |_, _| {}, &on_bytes);
    // Structure checks on every present file (listed ones, or all when there is no metadata).
    let struct_items: Vec<(usize, String, u64)> = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.busy)
        .flat_map(|(pi, p)| {
            let listed: Option<BTreeSet<&str>> = p
                .meta
                .as_ref()
                .map(|m| m.files.iter().map(|f| f.path.as_str()).collect());
            p.disk
                .iter()
                .filter(|f| listed.as_ref().is_none_or(|l| l.contains(f.rel.as_str())))
                .map(move |f| (pi, f.rel.clone(), f.size))
                .collect::<Vec<_>>()
        })
        .collect();
    let struct_issues = super::parallel_map(&struct_items, opts.threads, |(pi, rel, size)| {
        structure_issues(&plans[*pi].dir, rel, *size)
    });

    let mut per_model: Vec<ModelHealth> = Vec::with_capacity(plans.len());
    let mut hash_results: Vec<Vec<HashOutcome>> = vec![Vec::new(); plans.len()];
    for (j, r) in hashed.into_iter().enumerate() {
        let (pi, fi, want) = &job_owner[j];
        let rec = &plans[*pi]
            .meta
            .as_ref()
            .expect("planned with metadata")
            .files[*fi];
        let outcome = match r {
            Ok(d) => {
                let got = if jobs[j].kinds.sha256 {
                    d.digests.sha256.clone()
                } else {
                    d.digests.git_sha1.clone()
                }
                .unwrap_or_default();
                let res = if &got == want {
                    Ok(())
                } else {
                    Err(FileIssue {
                        path: rec.path.clone(),
                        problem: FileProblem::HashMismatch,
                        detail: format!(
                            "{} mismatch: expected {}…, got {}…",
                            if jobs[j].kinds.sha256 {
                                "sha256"
                            } else {
                                "git sha1"
                            },
                            short(want),
                            short(&got)
                        ),
                    })
                };
                (*fi, res, d.digests.size, d.read_nanos)
            }
            Err(e) => (
                *fi,
                Err(FileIssue {
                    path: rec.path.clone(),
                    problem: FileProblem::Unreadable,
                    detail: format!("cannot read: {e}"),
                }),
                0,
                0,
            ),
        };
        hash_results[*pi].push(outcome);
    }
    let mut struct_by_model: Vec<Vec<FileIssue>> = vec![Vec::new(); plans.len()];
    for ((pi, _, _), issues) in struct_items.iter().zip(struct_issues) {
        struct_by_model[*pi].extend(issues);
    }

    for (pi, p) in plans.iter().enumerate() {
        if let Some(h) = base_health(p, CheckMode::Full) {
            per_model.push(h);
            continue;
        }
        let mut issues = presence_issues(p, CheckMode::Full);
        let mut matched: BTreeSet<usize> = BTreeSet::new();
        let mut bytes_hashed = 0u64;
        let mut read_nanos = 0u64;
        for (fi, res, bytes, rn) in std::mem::take(&mut hash_results[pi]) {
            bytes_hashed += bytes;
            read_nanos += rn;
            match res {
                Ok(()) => {
                    matched.insert(fi);
                }
                Err(issue) => issues.push(issue),
            }
        }
        issues.extend(std::mem::take(&mut struct_by_model[pi]));
        issues.sort_by(|a, b| a.path.cmp(&b.path));
        let (state, reason) = match &p.meta {
            None => {
                let s = state_of(&issues);
                if s == HealthState::Healthy {
                    (
                        HealthState::Unknown,
                        format!(
                            "no metadata: {} files with sound structure, but nothing to check their hashes \
                             against; run `ema generate-metadata`",
                            p.disk.len()
                        ),
                    )
                } else {
                    (s, summarize(&issues, p.disk.len(), CheckMode::Full))
                }
            }
            Some(m) => {
                let s = state_of(&issues);
                (s, summarize(&issues, m.files.len(), CheckMode::Full))
            }
        };
        let total_bytes = p
            .meta
            .as_ref()
            .map(|m| m.total_size)
            .unwrap_or_else(|| p.disk.iter().map(|f| f.size).sum());
        let read_bps = (read_nanos > 0 && bytes_hashed >= 1 << 20)
            .then(|| bytes_hashed as f64 / (read_nanos as f64 / 1e9));
        let mut h = ModelHealth {
            model_id: p.id.to_string(),
            state,
            reason,
            mode: CheckMode::Full,
            files_expected: p.meta.as_ref().map(|m| m.files.len()).unwrap_or(0),
            files_ok: matched.len(),
            total_bytes,
            bytes_hashed,
            issues,
            verification: p.meta.as_ref().map(|m| m.verification),
            seconds: start.elapsed().as_secs_f64(),
            read_bytes_per_sec: read_bps,
            load_time_estimate_seconds: read_bps.map(|r| total_bytes as f64 / r),
            checked_at: now_rfc3339(),
            metadata_not_updated: None,
        };
        if opts.update_metadata && p.meta.is_some() {
            // A store we may not write (read-only mount) still gets its verdict.
            match record_outcome(store, p, &matched, &h) {
                Ok(v) => h.verification = v,
                Err(e) => h.metadata_not_updated = Some(e.to_string()),
            }
        }
        per_model.push(h);
    }
    Ok(per_model)
}

/// Write the outcome of a full verification into the model's metadata, atomically. Returns the new state.
fn record_outcome(
    store: &Store,
    p: &Plan,
    matched: &BTreeSet<usize>,
    h: &ModelHealth,
) -> Result<Option<VerificationState>> {
    // Re-read right before writing so a concurrent writer's other changes are not lost.
    let Some(mut meta) = store.read_metadata(&p.id)? else {
        return Ok(None);
    };
    let planned = p.meta.as_ref().expect("has metadata");
    if meta.files != planned.files {
        // Changed under us (e.g. a download finished): do not stamp stale results.
        return Ok(Some(meta.verification));
    }
    let now = now_rfc3339();
    let on_disk: BTreeMap<&str, &DiskFile> = p.disk.iter().map(|f| (f.rel.as_str(), f)).collect();
    for (i, rec) in meta.files.iter_mut().enumerate() {
        if matched.contains(&i) {
            rec.verified_at = Some(now.clone());
            rec.mtime_ns = on_disk.get(rec.path.as_str()).and_then(|f| f.mtime_ns);
        } else {
            // Not proven: no stamp may vouch for it (a re-download must re-hash it).
            rec.verified_at = None;
            rec.mtime_ns = None;
        }
    }
    let content_bad = h.issues.iter().any(|i| {
        matches!(
            i.problem.state(),
            HealthState::Corrupted | HealthState::Incomplete
        )
    });
    meta.verification = if content_bad {
        VerificationState::Failed
    } else if h
        .issues
        .iter()
        .any(|i| i.problem == FileProblem::NoExpectedHash)
    {
        VerificationState::Unverified
    } else {
        match meta.verification {
            VerificationState::LocalOnly => VerificationState::LocalOnly,
            VerificationState::Failed if meta.commit.is_none() => VerificationState::LocalOnly,
            _ => VerificationState::Verified,
        }
    };
    meta.last_verified_at = Some(now.clone());
    meta.updated_at = now;
    store.write_metadata(&meta)?;
    Ok(Some(meta.verification))
}

/// Quick check of `ids`: existence, size and mtime against the metadata, strays; no hashing. Stats run in
/// parallel. A model whose last full verification failed stays `corrupted` until verified again.
pub fn quick_check(store: &Store, ids: &[RepoId], threads: usize) -> Vec<ModelHealth> {
    super::parallel_map(ids, threads, |id| {
        let start = Instant::now();
        let p = plan(store, id);
        if let Some(h) = base_health(&p, CheckMode::Quick) {
            return h;
        }
        let mut issues = presence_issues(&p, CheckMode::Quick);
        let files_expected = p.meta.as_ref().map(|m| m.files.len()).unwrap_or(0);
        let (state, reason) = match &p.meta {
            None => (
                HealthState::Unknown,
                format!(
                    "no metadata for {} files on disk; run `ema generate-metadata`",
                    p.disk.len()
                ),
            ),
            Some(m) => {
                let mut s = state_of(&issues);
                if m.verification == VerificationState::Failed
                    && state_rank(s) > state_rank(HealthState::Corrupted)
                {
                    s = HealthState::Corrupted;
                    issues.insert(
                        0,
                        FileIssue {
                            path: String::new(),
                            problem: FileProblem::HashMismatch,
                            detail:
                                "the last full verification failed; run `ema verify-all-models` \
                                     or repair it"
                                    .into(),
                        },
                    );
                }
                (s, summarize(&issues, m.files.len(), CheckMode::Quick))
            }
        };
        let bad: BTreeSet<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        let files_ok = p
            .meta
            .as_ref()
            .map(|m| {
                m.files
                    .iter()
                    .filter(|f| !bad.contains(f.path.as_str()))
                    .count()
            })
            .unwrap_or(0);
        ModelHealth {
            model_id: p.id.to_string(),
            state,
            reason,
            mode: CheckMode::Quick,
            files_expected,
            files_ok,
            total_bytes: p
                .meta
                .as_ref()
                .map(|m| m.total_size)
                .unwrap_or_else(|| p.disk.iter().map(|f| f.size).sum()),
            bytes_hashed: 0,
            issues,
            verification: p.meta.as_ref().map(|m| m.verification),
            seconds: start.elapsed().as_secs_f64(),
            read_bytes_per_sec: None,
            load_time_estimate_seconds: None,
            checked_at: now_rfc3339(),
            metadata_not_updated: None,
        }
    })
}

/// Counts per state, for summaries.
pub fn count_states(models: &[ModelHealth]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for s in [
        HealthState::Healthy,
        HealthState::Degraded,
        HealthState::Corrupted,
        HealthState::Incomplete,
        HealthState::Missing,
        HealthState::Unknown,
    ] {
        m.insert(s.as_str(), 0);
    }
    for h in models {
        *m.entry(h.state.as_str()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::integrity::generate::{GenerateOptions, generate_local_metadata};

    fn store_with_model() -> (tempfile::TempDir, Store, RepoId) {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        store.ensure().unwrap();
        let id = RepoId::parse("org/tiny").unwrap();
        let dir = store.model_dir(&id);
        std::fs::create_dir_all(&dir).unwrap();
        let shard = |i: usize| {
            safetensors::build_file(&[("w", "F32", &[64, 64])], &[], move |_, b| {
                (b * 13 + i) as u8
            })
        };
        std::fs::write(dir.join("model-00001-of-00002.safetensors"), shard(1)).unwrap();
        std::fs::write(dir.join("model-00002-of-00002.safetensors"), shard(2)).unwrap();
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            r#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("config.json"), r#"{"model_type":"tiny"}"#).unwrap();
        let meta = generate_local_metadata(&store, &id, &GenerateOptions::default()).unwrap();
        store.write_metadata(&meta).unwrap();
        (d, store, id)
    }

    fn full(store: &Store, id: &RepoId) -> ModelHealth {
        verify_models(store, std::slice::from_ref(id), &VerifyOptions::default())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn healthy_then_each_kind_of_damage() {
        let (_d, store, id) = store_with_model();
        let h = full(&store, &id);
        assert_eq!(h.state, HealthState::Healthy, "{h:?}");
        assert_eq!(h.files_ok, 4);
        let meta = store.read_metadata(&id).unwrap().unwrap();
        assert!(meta.last_verified_at.is_some());
        assert_eq!(meta.verification, VerificationState::LocalOnly);
        assert!(
            meta.files
                .iter()
                .all(|f| f.verified_at.is_some() && f.mtime_ns.is_some())
        );
        assert_eq!(
            quick_check(&store, std::slice::from_ref(&id), 2)[0].state,
            HealthState::Healthy
        );

        let dir = store.model_dir(&id);
        let shard = dir.join("model-00002-of-00002.safetensors");
        let orig = std::fs::read(&shard).unwrap();

        // One flipped byte in the data.
        let mut b = orig.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        std::fs::write(&shard, &b).unwrap();
        let h = full(&store, &id);
        assert_eq!(h.state, HealthState::Corrupted);
        assert!(h.reason.contains("sha256 mismatch"), "{}", h.reason);
        assert_eq!(
            store.read_metadata(&id).unwrap().unwrap().verification,
            VerificationState::Failed
        );
        // The quick check remembers the failed verification.
        assert_eq!(
            quick_check(&store, std::slice::from_ref(&id), 1)[0].state,
            HealthState::Corrupted
        );

        // Truncated.
        std::fs::write(&shard, &orig[..orig.len() - 10]).unwrap();
        let h = full(&store, &id);
        assert_eq!(h.state, HealthState::Corrupted);
        assert!(h.reason.contains("truncated"), "{}", h.reason);

        // Damaged header.
        let mut b = orig.clone();
        b[9] = b'!';
        std::fs::write(&shard, &b).unwrap();
        let h = full(&store, &id);
        assert_eq!(h.state, HealthState::Corrupted);
        assert!(h.reason.contains("safetensors header"), "{}", h.reason);

        // Deleted: incomplete, and the index names a missing shard.
        std::fs::remove_file(&shard).unwrap();
        let h = full(&store, &id);
        assert_eq!(h.state, HealthState::Incomplete);
        assert!(
            h.issues
                .iter()
                .any(|i| i.problem == FileProblem::MissingShard)
        );
        assert_eq!(
            h.files_to_download(),
            vec!["model-00002-of-00002.safetensors"]
        );

        // Restored: healthy again; a stray file degrades it.
        std::fs::write(&shard, &orig).unwrap();
        std::fs::write(dir.join("notes.txt"), "hi").unwrap();
        let h = full(&store, &id);
        assert_eq!(h.state, HealthState::Degraded, "{h:?}");
        assert_eq!(h.stray_files(), vec!["notes.txt"]);
        assert_eq!(
            store.read_metadata(&id).unwrap().unwrap().verification,
            VerificationState::LocalOnly
        );
    }

    #[test]
    fn a_model_being_downloaded_is_not_judged() {
        let (_d, store, id) = store_with_model();
        std::fs::remove_file(store.model_dir(&id).join("config.json")).unwrap();
        let lock_path = store.lock_path(&id);
        std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
        let lock = std::fs::File::create(&lock_path).unwrap();
        lock.lock().unwrap();
        let h = full(&store, &id);
        assert_eq!(h.state, HealthState::Unknown);
        assert!(h.reason.contains("download"), "{}", h.reason);
        assert_ne!(
            store.read_metadata(&id).unwrap().unwrap().verification,
            VerificationState::Failed
        );
        drop(lock);
        assert_eq!(full(&store, &id).state, HealthState::Incomplete);
    }

    #[test]
    fn missing_folder_no_metadata_bad_json() {
        let (d, store, id) = store_with_model();
        std::fs::write(store.model_dir(&id).join("config.json"), "{oops").unwrap();
        let h = full(&store, &id);
        assert_eq!(h.state, HealthState::Corrupted);
        std::fs::remove_dir_all(store.model_dir(&id)).unwrap();
        assert_eq!(full(&store, &id).state, HealthState::Missing);
        let other = RepoId::parse("x/nometa").unwrap();
        std::fs::create_dir_all(store.model_dir(&other)).unwrap();
        std::fs::write(store.model_dir(&other).join("a.bin"), "x").unwrap();
        assert_eq!(full(&store, &other).state, HealthState::Unknown);
        drop(d);
    }
}
