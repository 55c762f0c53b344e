//! Reading one model of the store into a served [`Repo`]: its files (hashing those without recorded hashes),
//! commit, safetensors parameter counts and model-card front matter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::repo::{FileEntry, Repo, Source, derive_commit, is_hex, lfs_pointer};
use crate::engine::integrity::hash::git_blob_sha1;
use crate::engine::store::{
    FileRecord, ModelMetadata, RepoId, Store, VerificationState, is_lfs_path,
};

/// Files under `dir`, repo-relative with `/`, regular files only (symlinks are followed only when they stay inside).
fn walk(dir: &Path) -> std::io::Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let canon_root = dir.canonicalize()?;
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_symlink() {
                match p.canonicalize() {
                    Ok(c) if c.starts_with(&canon_root) => {}
                    _ => continue,
                }
            }
            let md = std::fs::metadata(&p)?;
            if md.is_dir() {
                // A `huggingface_hub` local_dir keeps its bookkeeping in `.cache/`; it is not part of the repo.
                if rel == ".cache" {
                    continue;
                }
                stack.push((p, rel));
            } else if md.is_file() {
                out.push((rel, p, md.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One pass over a file: the git blob sha1 (non-LFS files) or the sha256 (LFS files).
fn hash_file(path: &Path, size: u64, lfs: bool) -> std::io::Result<String> {
    use crate::engine::integrity::hash::{self, HashKinds};
    let kinds = if lfs {
        HashKinds::SHA256
    } else {
        HashKinds::GIT_SHA1
    };
    let d = hash::hash_file(path, kinds)
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .digests;
    let got = if lfs { d.sha256 } else { d.git_sha1 };
    got.filter(|_| d.size == size).ok_or_else(|| {
        std::io::Error::other(format!("{} changed while it was hashed", path.display()))
    })
}

/// Parameter counts per dtype from a safetensors header (best effort: `None` when it is not one).
pub(crate) fn safetensors_params(path: &Path) -> Option<BTreeMap<String, u64>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let n = u64::from_le_bytes(len);
    if n > 100 * 1024 * 1024 {
        return None;
    }
    let mut hdr = vec![0u8; n as usize];
    f.read_exact(&mut hdr).ok()?;
    let v: Value = serde_json::from_slice(&hdr).ok()?;
    let mut out = BTreeMap::new();
    for (k, t) in v.as_object()? {
        if k == "__metadata__" {
            continue;
        }
        let dtype = t.get("dtype")?.as_str()?.to_string();
        let count = t
            .get("shape")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64())
            .try_fold(1u64, |acc, d| d.map(|d| acc.saturating_mul(d)))?;
        *out.entry(dtype).or_insert(0) += count;
    }
    Some(out)
}

/// The README's YAML front matter, simple `key: value` and `key:` + `- item` lists only.
pub(crate) fn card_data(readme: &str) -> Option<Value> {
    let body = readme.strip_prefix("---\n")?;
    let end = body.find("\n---")?;
    let mut map = serde_json::Map::new();
    let mut list_key: Option<String> = None;
    for line in body[..end].lines() {
        if let Some(item) = line.trim_start().strip_prefix("- ")
            && line.starts_with([' ', '-'])
            && let Some(k) = &list_key
        {
            if let Some(Value::Array(a)) = map.get_mut(k) {
                a.push(Value::String(unquote(item)));
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let k = k.trim().to_string();
        let v = v.trim();
        if v.is_empty() {
            map.insert(k.clone(), Value::Array(Vec::new()));
            list_key = Some(k);
        } else {
            map.insert(k, Value::String(unquote(v)));
            list_key = None;
        }
    }
    Some(Value::Object(map))
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

/// RFC 3339 with milliseconds and `Z`, the Hub's `lastModified` format.
fn hub_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether the model can be served at all: `Ok(false)` when there is nothing to serve (no folder, no metadata).
fn servable(meta: Option<&ModelMetadata>, dir: &Path) -> std::result::Result<bool, String> {
    if !dir.is_dir() {
        return match meta {
            Some(_) => Err("metadata without a model folder (nothing downloaded yet)".to_string()),
            None => Ok(false),
        };
    }
    if let Some(m) = meta
        && m.verification == VerificationState::Failed
    {
        return Err(
            "its last verification failed; run `ema verify` and repair it before serving"
                .to_string(),
        );
    }
    Ok(true)
}

/// Every file the metadata lists must be on disk.
fn check_complete(
    meta: &ModelMetadata,
    on_disk: &[(String, PathBuf, u64)],
    id: &RepoId,
) -> std::result::Result<(), String> {
    let present: BTreeSet<&str> = on_disk.iter().map(|(r, _, _)| r.as_str()).collect();
    match meta
        .files
        .iter()
        .find(|f| !present.contains(f.path.as_str()))
    {
        Some(missing) => Err(format!(
            "incomplete: {} is missing; finish the download with `ema download {}`",
            missing.path, id
        )),
        None => Ok(()),
    }
}

/// A file on disk as served: its hashes from the record when it has valid ones, else computed.
fn file_entry(
    rel: &str,
    path: PathBuf,
    size: u64,
    rec: Option<&FileRecord>,
) -> std::result::Result<FileEntry, String> {
    let lfs = rec.map(|r| r.lfs).unwrap_or(false) || is_lfs_path(rel, size);
    let rec_sha256 = rec.and_then(|r| r.sha256.clone()).filter(|s| is_hex(s, 64));
    let rec_sha1 = rec
        .and_then(|r| r.git_sha1.clone())
        .filter(|s| is_hex(s, 40));
    let (oid, sha256) = if lfs {
        let sha256 = match rec_sha256 {
            Some(s) => s,
            None => hash_file(&path, size, true)
                .map_err(|e| format!("cannot hash {}: {e}", path.display()))?,
        };
        (
            git_blob_sha1(lfs_pointer(&sha256, size).as_bytes()),
            Some(sha256),
        )
    } else {
        match rec_sha1 {
            Some(s) => (s, rec_sha256),
            None => {
                let s1 = hash_file(&path, size, false)
                    .map_err(|e| format!("cannot hash {}: {e}", path.display()))?;
                (s1, rec_sha256)
            }
        }
    };
    Ok(FileEntry {
        size,
        oid,
        sha256,
        lfs,
        source: Source::Disk(path),
        listed_size: None,
        listed_sha256: None,
    })
}

/// The recorded commit when it is 40-hex, else one derived from the files.
fn commit_of(meta: Option<&ModelMetadata>, files: &BTreeMap<String, Arc<FileEntry>>) -> String {
    meta.and_then(|m| m.commit.clone())
        .filter(|c| is_hex(c, 40))
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_else(|| derive_commit(files))
}

/// `lastModified`: the metadata's update time, else the newest file's mtime, else now.
fn last_modified_of(
    meta: Option<&ModelMetadata>,
    newest_mtime: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    meta.and_then(|m| chrono::DateTime::parse_from_rfc3339(&m.updated_at).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .or(newest_mtime)
        .map(hub_time)
        .unwrap_or_else(|| hub_time(chrono::Utc::now()))
}

/// `Ok(None)`: nothing to serve (metadata without a folder). `Err(reason)`: present but not servable.
pub(crate) fn load_repo(store: &Store, id: &RepoId) -> std::result::Result<Option<Repo>, String> {
    let dir = store.model_dir(id);
    let meta: Option<ModelMetadata> = store.read_metadata(id).map_err(|e| e.to_string())?;
    if !servable(meta.as_ref(), &dir)? {
        return Ok(None);
    }
    let on_disk = walk(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files = BTreeMap::new();
    let mut safetensors = BTreeMap::new();
    let mut readme = None;
    let mut config = None;
    let mut newest_mtime = None;
    let recorded: HashMap<&str, &FileRecord> = meta
        .as_ref()
        .map(|m| m.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();
    if let Some(m) = &meta {
        check_complete(m, &on_disk, id)?;
    }
    for (rel, path, size) in on_disk {
        if let Ok(md) = std::fs::metadata(&path)
            && let Ok(mt) = md.modified()
        {
            let t: chrono::DateTime<chrono::Utc> = mt.into();
            newest_mtime = newest_mtime.max(Some(t));
        }
        let rec = recorded.get(rel.as_str()).copied();
        if meta.is_some() && rec.is_none() {
            // Not part of the pinned snapshot (e.g. a stray file): do not publish it.
            continue;
        }
        if let Some(r) = rec
            && r.size != size
        {
            return Err(format!(
                "{rel} is {size} bytes on disk but the metadata says {}; run `ema verify {id}`",
                r.size
            ));
        }
        if rel.ends_with(".safetensors")
            && let Some(p) = safetensors_params(&path)
        {
            for (k, v) in p {
                *safetensors.entry(k).or_insert(0) += v;
            }
        }
        if rel == "README.md" && size < 1024 * 1024 {
            readme = std::fs::read_to_string(&path).ok();
        }
        if rel == "config.json" && size < 1024 * 1024 {
            config = std::fs::read(&path).ok().and_then(|b| config_summary(&b));
        }
        let entry = file_entry(&rel, path, size, rec)?;
        files.insert(rel, Arc::new(entry));
    }
    let meta = meta.as_ref();
    Ok(Some(Repo {
        id: id.to_string(),
        commit: commit_of(meta, &files),
        recorded_revision: meta
            .map(|m| m.requested_revision.clone())
            .filter(|r| !r.is_empty()),
        files,
        pipeline_tag: meta.and_then(|m| m.pipeline_tag.clone()),
        library_name: meta.and_then(|m| m.library_name.clone()),
        tags: meta.map(|m| m.tags.clone()).unwrap_or_default(),
        safetensors,
        last_modified: last_modified_of(meta, newest_mtime),
        card_data: readme.as_deref().and_then(card_data),
        config,
    }))
}

/// What the Hub publishes of a `config.json` in a model's info (`config`): `architectures`, `model_type` and
/// `quantization_config`, when present. Not a JSON object: nothing.
pub(crate) fn config_summary(bytes: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let o = v.as_object()?;
    let mut out = serde_json::Map::new();
    for k in ["architectures", "model_type", "quantization_config"] {
        if let Some(x) = o.get(k) {
            out.insert(k.to_string(), x.clone());
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_config_summary_holds_what_the_hub_publishes_and_nothing_else() {
        let v = config_summary(
            br#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 64,
                "quantization_config": {"bits": 4, "quant_method": "gptq"}}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                   "quantization_config": {"bits": 4, "quant_method": "gptq"}})
        );
        assert_eq!(config_summary(b"{\"n_embd\": 64}"), None);
        assert_eq!(config_summary(b"[1, 2]"), None);
        assert_eq!(config_summary(b"not json"), None);
    }

    #[test]
    fn card_front_matter() {
        let c = card_data(
            "---\nlicense: mit\ntags:\n- a\n- \"b\"\npipeline_tag: text-generation\n---\n# x\n",
        )
        .unwrap();
        assert_eq!(
            c,
            json!({"license": "mit", "tags": ["a", "b"], "pipeline_tag": "text-generation"})
        );
        assert!(card_data("# no front matter").is_none());
    }
}
