//! The files of a model folder: walking it, which hash a record is checked against, and the structure checks of a
//! present file (safetensors headers, JSON syntax, the shards an index names).

use std::collections::BTreeSet;
use std::path::Path;

use super::verdict::{FileIssue, FileProblem};
use crate::engine::integrity::hash::HashKinds;
use crate::engine::integrity::safetensors;
use crate::engine::store::{mtime_ns, validate_repo_path};

/// Files at this path prefix inside a model folder belong to the `local_dir` download layout of huggingface_hub
/// and are never strays.
pub const HF_LOCAL_DIR_CACHE: &str = ".cache/huggingface/";

/// Largest JSON file whose syntax is checked (bigger ones are only hashed).
const MAX_JSON_CHECK_BYTES: u64 = 256 << 20;

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
