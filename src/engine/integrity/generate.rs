//! `generate-metadata`: write `<org>--<name>.metadata.json` for model folders that lack one.
//!
//! Expected hashes come, in order of trust: from the hub (when a [`HubSource`] is given and knows the repo), from
//! the `local_dir` download records huggingface_hub leaves in `.cache/huggingface/download/{path}.metadata` (commit
//! and etag per file: the etag is the hub's git sha1, or its sha256 for LFS files), and otherwise from the local
//! bytes themselves (`verification: local_only`, "local, not checked against the hub"). Model files are only read,
//! never modified.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::hash::{self, HashJob, HashKinds, is_sha1_hex, is_sha256_hex};
use super::verify::{HF_LOCAL_DIR_CACHE, walk_model_dir};
use crate::engine::error::{EmaError, Result};
use crate::engine::store::{
    FileRecord, METADATA_SCHEMA_VERSION, ModelMetadata, RepoId, Store, VerificationState,
    now_rfc3339, validate_repo_path,
};

/// Extensions huggingface's default `.gitattributes` stores in LFS.
const LFS_EXTENSIONS: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "ckpt",
    "h5",
    "onnx",
    "msgpack",
    "gguf",
    "model",
    "pb",
    "tflite",
    "npy",
    "npz",
    "ot",
    "parquet",
    "arrow",
    "zip",
    "gz",
    "tar",
    "pkl",
    "pickle",
    "joblib",
    "mlmodel",
    "wasm",
];

/// Files at least this large are LFS on the hub regardless of extension.
const LFS_SIZE_THRESHOLD: u64 = 10 << 20;

/// The hub's view of a repo at one commit, as far as metadata generation needs it.
#[derive(Debug, Clone, Default)]
pub struct HubRepoFiles {
    pub commit: String,
    pub endpoint: String,
    pub files: Vec<FileRecord>,
    pub pipeline_tag: Option<String>,
    pub library_name: Option<String>,
    pub tags: Vec<String>,
    pub parameters: Option<u64>,
    /// The hub's facts for the fallback score.
    pub facts: crate::engine::store::ModelFacts,
}

/// Where published hashes come from (the Hub client implements it).
pub trait HubSource: Sync {
    /// The repo's files at `revision` (a commit when known). `Ok(None)`: the hub does not know this repo.
    fn repo_files(&self, repo: &RepoId, revision: &str) -> Result<Option<HubRepoFiles>>;
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub force: bool,
    pub threads: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            force: false,
            threads: hash::default_threads(),
        }
    }
}

/// What huggingface_hub's `local_dir` download recorded for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDirRecord {
    pub commit: String,
    pub etag: String,
}

/// Read `.cache/huggingface/download/{path}.metadata` (three lines: commit, etag, timestamp). Malformed records are
/// ignored (they are a hint, not the truth).
pub fn read_local_dir_record(model_dir: &Path, rel: &str) -> Option<LocalDirRecord> {
    let p = model_dir
        .join(HF_LOCAL_DIR_CACHE)
        .join("download")
        .join(format!("{rel}.metadata"));
    let text = std::fs::read_to_string(p).ok()?;
    let mut lines = text.lines();
    let commit = lines.next()?.trim().to_ascii_lowercase();
    let etag = lines
        .next()?
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase();
    if !is_sha1_hex(&commit) || !(is_sha1_hex(&etag) || is_sha256_hex(&etag)) {
        return None;
    }
    Some(LocalDirRecord { commit, etag })
}

fn looks_lfs(rel: &str, size: u64) -> bool {
    size >= LFS_SIZE_THRESHOLD
        || rel
            .rsplit_once('.')
            .is_some_and(|(_, ext)| LFS_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// A file whose local bytes differ from the hash the hub published for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HashDisagreement {
    pub path: String,
    pub expected: String,
    pub local: String,
}

/// Build metadata for one model folder from its bytes and the `local_dir` records (no network).
pub fn generate_local_metadata(
    store: &Store,
    id: &RepoId,
    opts: &GenerateOptions,
) -> Result<ModelMetadata> {
    generate_metadata(store, id, opts, None).map(|g| g.meta)
}

/// What [`generate_metadata`] produced.
#[derive(Debug, Clone)]
pub struct Generated {
    pub meta: ModelMetadata,
    /// Files whose local bytes differ from the hash the hub published.
    pub disagreements: Vec<HashDisagreement>,
    /// Files the hub lists that are not in the folder (and that no `local_dir` record says were downloaded): the
    /// operator took a subset (e.g. safetensors only), so they are not expected.
    pub hub_files_not_present: Vec<String>,
}

/// Build metadata for one model folder. With `hub`, expected hashes are the hub's; files the hub does not list are
/// strays and are left out; files the hub lists that were never downloaded here are not expected.
pub fn generate_metadata(
    store: &Store,
    id: &RepoId,
    opts: &GenerateOptions,
    hub: Option<&dyn HubSource>,
) -> Result<Generated> {
    let dir = store.model_dir(id);
    let disk =
        walk_model_dir(&dir).map_err(|e| EmaError::io("cannot list model folder", &dir, e))?;
    if disk.is_empty() {
        return Err(EmaError::Integrity(format!(
            "model folder {} holds no files; download the model or remove the folder",
            dir.display()
        )));
    }
    for f in &disk {
        validate_repo_path(&f.rel).map_err(|_| {
            EmaError::Integrity(format!(
                "{}: file name {:?} is not a valid repo path; rename or remove it and run again",
                dir.display(),
                f.rel
            ))
        })?;
    }
    let records: BTreeMap<String, LocalDirRecord> = disk
        .iter()
        .filter_map(|f| read_local_dir_record(&dir, &f.rel).map(|r| (f.rel.clone(), r)))
        .collect();
    let mut commits: Vec<&str> = records.values().map(|r| r.commit.as_str()).collect();
    commits.sort();
    commits.dedup();
    let local_commit = (commits.len() == 1).then(|| commits[0].to_string());

    let hub_files = match hub {
        Some(h) => h.repo_files(id, local_commit.as_deref().unwrap_or("main"))?,
        None => None,
    };

    let jobs: Vec<HashJob> = disk
        .iter()
        .map(|f| HashJob {
            path: dir.join(&f.rel),
            kinds: HashKinds::BOTH,
            size_hint: f.size,
        })
        .collect();
    let hashed = hash::hash_files_parallel(&jobs, opts.threads, |_, _| {});
    let mut local: BTreeMap<&str, hash::Digests> = BTreeMap::new();
    for (f, r) in disk.iter().zip(hashed) {
        let d = r?;
        local.insert(f.rel.as_str(), d.digests);
    }

    let now = now_rfc3339();
    let mut disagreements = Vec::new();
    let mut not_present = Vec::new();
    let (files, verification, commit, endpoint, extra) = if let Some(hf) = hub_files {
        // The hub's list is the truth; local files it does not list are strays (left for verify to report).
        let mut bad = false;
        let mut files = Vec::new();
        for rec in &hf.files {
            if !local.contains_key(rec.path.as_str()) && !records.contains_key(&rec.path) {
                not_present.push(rec.path.clone());
                continue;
            }
            let mut rec = rec.clone();
            if let Some(d) = local.get(rec.path.as_str()) {
                let ok = match (&rec.sha256, &rec.git_sha1) {
                    (Some(want), _) => d.sha256.as_deref() == Some(want.as_str()),
                    (None, Some(want)) => d.git_sha1.as_deref() == Some(want.as_str()),
                    (None, None) => false,
                };
                if ok && d.size == rec.size {
                    if rec.sha256.is_none() {
                        rec.sha256 = d.sha256.clone();
                    }
                    rec.verified_at = Some(now.clone());
                    rec.mtime_ns = disk
                        .iter()
                        .find(|f| f.rel == rec.path)
                        .and_then(|f| f.mtime_ns);
                } else {
                    bad = true;
                    disagreements.push(HashDisagreement {
                        path: rec.path.clone(),
                        expected: rec
                            .sha256
                            .clone()
                            .or(rec.git_sha1.clone())
                            .unwrap_or_default(),
                        local: d.sha256.clone().unwrap_or_default(),
                    });
                }
            } else {
                bad = true;
            }
            files.push(rec);
        }
        let v = if bad {
            VerificationState::Failed
        } else {
            VerificationState::Verified
        };
        (
            files,
            v,
            Some(hf.commit.clone()),
            Some(hf.endpoint.clone()),
            Some(hf),
        )
    } else {
        let mut all_published = true;
        let mut bad = false;
        let mut files = Vec::new();
        for f in &disk {
            let d = &local[f.rel.as_str()];
            let mut rec = FileRecord {
                path: f.rel.clone(),
                size: f.size,
                sha256: d.sha256.clone(),
                git_sha1: None,
                lfs: looks_lfs(&f.rel, f.size),
                verified_at: Some(now.clone()),
                mtime_ns: f.mtime_ns,
            };
            match records.get(&f.rel) {
                Some(r) if is_sha256_hex(&r.etag) => {
                    rec.lfs = true;
                    if d.sha256.as_deref() != Some(r.etag.as_str()) {
                        bad = true;
                        disagreements.push(HashDisagreement {
                            path: f.rel.clone(),
                            expected: r.etag.clone(),
                            local: d.sha256.clone().unwrap_or_default(),
                        });
                        rec.sha256 = Some(r.etag.clone());
                        rec.verified_at = None;
                        rec.mtime_ns = None;
                    }
                }
                Some(r) => {
                    rec.lfs = false;
                    rec.git_sha1 = Some(r.etag.clone());
                    if d.git_sha1.as_deref() != Some(r.etag.as_str()) {
                        bad = true;
                        disagreements.push(HashDisagreement {
                            path: f.rel.clone(),
                            expected: r.etag.clone(),
                            local: d.git_sha1.clone().unwrap_or_default(),
                        });
                        // The published hash is the truth: drop the local sha256 so verify checks the git sha1.
                        rec.sha256 = None;
                        rec.verified_at = None;
                        rec.mtime_ns = None;
                    }
                }
                None => {
                    all_published = false;
                    if !rec.lfs {
                        rec.git_sha1 = d.git_sha1.clone();
                    }
                }
            }
            files.push(rec);
        }
        let v = if bad {
            VerificationState::Failed
        } else if all_published && local_commit.is_some() {
            VerificationState::Verified
        } else {
            VerificationState::LocalOnly
        };
        let commit = if all_published {
            local_commit.clone()
        } else {
            None
        };
        (files, v, commit, None, None)
    };
    let total_size = files.iter().map(|f| f.size).sum();
    let meta = ModelMetadata {
        schema_version: METADATA_SCHEMA_VERSION,
        legacy_location: None,
        repo_id: id.clone(),
        requested_revision: commit
            .clone()
            .or(local_commit)
            .unwrap_or_else(|| "local".to_string()),
        commit,
        endpoint,
        files,
        total_size,
        pipeline_tag: extra.as_ref().and_then(|e| e.pipeline_tag.clone()),
        library_name: extra.as_ref().and_then(|e| e.library_name.clone()),
        tags: extra.as_ref().map(|e| e.tags.clone()).unwrap_or_default(),
        parameters: extra.as_ref().and_then(|e| e.parameters),
        facts: crate::engine::fallback::facts::with_local_config(
            extra.as_ref().map(|e| e.facts.clone()).unwrap_or_default(),
            &store.model_dir(id),
        ),
        created_at: now.clone(),
        updated_at: now.clone(),
        last_verified_at: (verification != VerificationState::Failed).then_some(now),
        verification,
    };
    Ok(Generated {
        meta,
        disagreements,
        hub_files_not_present: not_present,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerateAction {
    /// Metadata already existed and was kept (no `--force-regenerate`).
    Kept,
    Written,
    Failed,
}

/// The outcome for one model folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerateOutcome {
    pub model_id: String,
    pub action: GenerateAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationState>,
    /// `hub`, `local_dir_records` or `local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes_from: Option<&'static str>,
    pub files: usize,
    pub total_size: u64,
    pub disagreements: Vec<HashDisagreement>,
    /// Hub files absent here and not expected (a partial download).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hub_files_not_present: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub exit_code: i32,
}

/// Generate metadata for every model folder in the store. Stops at the first failing model unless
/// `ignore_errors` (then every failure is in the outcomes). Returns the outcomes and the first error, if any.
pub fn generate_all(
    store: &Store,
    opts: &GenerateOptions,
    hub: Option<&dyn HubSource>,
    ignore_errors: bool,
) -> Result<(Vec<GenerateOutcome>, Option<EmaError>)> {
    let mut out = Vec::new();
    for id in store.list_models()? {
        if !store.model_dir(&id).is_dir() {
            continue;
        }
        if !opts.force && store.metadata_path(&id).exists() {
            let m = store.read_metadata(&id).ok().flatten();
            out.push(GenerateOutcome {
                model_id: id.to_string(),
                action: GenerateAction::Kept,
                verification: m.as_ref().map(|m| m.verification),
                hashes_from: None,
                files: m.as_ref().map(|m| m.files.len()).unwrap_or(0),
                total_size: m.as_ref().map(|m| m.total_size).unwrap_or(0),
                disagreements: Vec::new(),
                hub_files_not_present: Vec::new(),
                error: None,
                exit_code: 0,
            });
            continue;
        }
        let res = generate_metadata(store, &id, opts, hub)
            .and_then(|g| store.write_metadata(&g.meta).map(|_| g));
        match res {
            Ok(Generated {
                meta: m,
                disagreements: dis,
                hub_files_not_present,
            }) => {
                let from = if m.endpoint.is_some() {
                    "hub"
                } else if m.commit.is_some() || !dis.is_empty() {
                    "local_dir_records"
                } else {
                    "local"
                };
                out.push(GenerateOutcome {
                    model_id: id.to_string(),
                    action: GenerateAction::Written,
                    verification: Some(m.verification),
                    hashes_from: Some(from),
                    files: m.files.len(),
                    total_size: m.total_size,
                    disagreements: dis,
                    hub_files_not_present,
                    error: None,
                    exit_code: 0,
                })
            }
            Err(e) => {
                out.push(GenerateOutcome {
                    model_id: id.to_string(),
                    action: GenerateAction::Failed,
                    verification: None,
                    hashes_from: None,
                    files: 0,
                    total_size: 0,
                    disagreements: Vec::new(),
                    hub_files_not_present: Vec::new(),
                    error: Some(e.to_string()),
                    exit_code: e.exit_code(),
                });
                if !ignore_errors {
                    return Ok((out, Some(e)));
                }
            }
        }
    }
    Ok((out, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dir_records_are_used_and_files_untouched() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        let id = RepoId::parse("org/m").unwrap();
        let dir = store.model_dir(&id);
        std::fs::create_dir_all(dir.join(".cache/huggingface/download")).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("w.bin"), b"weights").unwrap();
        let commit = "a".repeat(40);
        std::fs::write(
            dir.join(".cache/huggingface/download/config.json.metadata"),
            format!("{commit}\n{}\n1700000000.0\n", hash::git_blob_sha1(b"{}")),
        )
        .unwrap();
        // The recorded sha256 for w.bin disagrees with the bytes: the published hash wins.
        let wrong = hash::sha256_hex(b"other");
        std::fs::write(
            dir.join(".cache/huggingface/download/w.bin.metadata"),
            format!("{commit}\n\"{wrong}\"\n1700000000.0\n"),
        )
        .unwrap();
        let g = generate_metadata(&store, &id, &GenerateOptions::default(), None).unwrap();
        let (m, dis) = (g.meta, g.disagreements);
        assert_eq!(m.commit.as_deref(), Some(commit.as_str()));
        assert_eq!(m.verification, VerificationState::Failed);
        assert_eq!(dis.len(), 1);
        assert_eq!(dis[0].path, "w.bin");
        let w = m.files.iter().find(|f| f.path == "w.bin").unwrap();
        assert_eq!(w.sha256.as_deref(), Some(wrong.as_str()));
        assert_eq!(m.files.len(), 2, "the .cache records are not model files");
        assert_eq!(std::fs::read(dir.join("w.bin")).unwrap(), b"weights");
    }

    #[test]
    fn generate_all_keeps_existing_and_reports_errors() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        for n in ["a--one", "b--two"] {
            std::fs::create_dir_all(d.path().join(n)).unwrap();
        }
        std::fs::write(d.path().join("a--one/x.txt"), "x").unwrap();
        // b--two is empty: an error.
        let (out, err) = generate_all(&store, &GenerateOptions::default(), None, false).unwrap();
        assert_eq!(out[0].action, GenerateAction::Written);
        assert_eq!(out[0].verification, Some(VerificationState::LocalOnly));
        assert!(err.is_some());
        let (out, err) = generate_all(&store, &GenerateOptions::default(), None, true).unwrap();
        assert_eq!(out[0].action, GenerateAction::Kept);
        assert_eq!(out[1].action, GenerateAction::Failed);
        assert!(err.is_none());
    }
}
