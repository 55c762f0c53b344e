//! The full verification ([`verify_models`]): every byte of every file hashed against the metadata on one shared
//! pool, structure checks, and the outcome recorded in the metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::files::{DiskFile, expected_hash, structure_issues};
use super::plan::{Plan, base_health, plan, presence_issues};
use super::verdict::{CheckMode, FileIssue, FileProblem, ModelHealth, state_of, summarize};
use crate::engine::error::Result;
use crate::engine::events::HealthState;
use crate::engine::integrity::hash::{self, HashJob};
use crate::engine::store::{RepoId, Store, VerificationState, now_rfc3339};

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
    let plans: Vec<Plan> =
        crate::engine::integrity::parallel_map(ids, opts.threads, |id| plan(store, id));
    let (jobs, job_owner) = hash_jobs(&plans);
    let mut hash_results = hash_all(&plans, &jobs, &job_owner, opts);
    let mut struct_by_model = structure_checks(&plans, opts.threads);
    let mut per_model: Vec<ModelHealth> = Vec::with_capacity(plans.len());
    for (pi, p) in plans.iter().enumerate() {
        if let Some(h) = base_health(p, CheckMode::Full) {
            per_model.push(h);
            continue;
        }
        let (mut h, matched) = model_verdict(
            p,
            std::mem::take(&mut hash_results[pi]),
            std::mem::take(&mut struct_by_model[pi]),
            start,
        );
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

/// (plan, file index, expected hash) of each hash job.
type JobOwner = (usize, usize, String);

/// Hash jobs: every listed file present with the right size and an expected hash.
fn hash_jobs(plans: &[Plan]) -> (Vec<HashJob>, Vec<JobOwner>) {
    let mut jobs = Vec::new();
    let mut job_owner: Vec<JobOwner> = Vec::new();
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
    (jobs, job_owner)
}

/// Hash every job on the shared pool (reporting progress) and sort the outcomes by model.
fn hash_all(
    plans: &[Plan],
    jobs: &[HashJob],
    job_owner: &[JobOwner],
    opts: &VerifyOptions,
) -> Vec<Vec<HashOutcome>> {
    let total: u64 = jobs.iter().map(|j| j.size_hint).sum();
    let done = std::sync::atomic::AtomicU64::new(0);
    let on_bytes = |n: u64| {
        if let Some(p) = &opts.progress {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            p(d, total);
        }
    };
    let hashed = hash::hash_files_parallel_progress(jobs, opts.threads, |_, _| {}, &on_bytes);
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
    hash_results
}

/// Structure checks on every present file (listed ones, or all when there is no metadata), by model.
fn structure_checks(plans: &[Plan], threads: usize) -> Vec<Vec<FileIssue>> {
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
    let struct_issues =
        crate::engine::integrity::parallel_map(&struct_items, threads, |(pi, rel, size)| {
            structure_issues(&plans[*pi].dir, rel, *size)
        });
    let mut struct_by_model: Vec<Vec<FileIssue>> = vec![Vec::new(); plans.len()];
    for ((pi, _, _), issues) in struct_items.iter().zip(struct_issues) {
        struct_by_model[*pi].extend(issues);
    }
    struct_by_model
}

/// The verdict on one model from its presence issues, hash outcomes and structure issues; also the indices of the
/// files whose hash matched.
fn model_verdict(
    p: &Plan,
    hash_results: Vec<HashOutcome>,
    struct_issues: Vec<FileIssue>,
    start: Instant,
) -> (ModelHealth, BTreeSet<usize>) {
    let mut issues = presence_issues(p, CheckMode::Full);
    let mut matched: BTreeSet<usize> = BTreeSet::new();
    let mut bytes_hashed = 0u64;
    let mut read_nanos = 0u64;
    for (fi, res, bytes, rn) in hash_results {
        bytes_hashed += bytes;
        read_nanos += rn;
        match res {
            Ok(()) => {
                matched.insert(fi);
            }
            Err(issue) => issues.push(issue),
        }
    }
    issues.extend(struct_issues);
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
    let h = ModelHealth {
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
    (h, matched)
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

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}
