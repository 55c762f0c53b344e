//! What the hub says about a repo's files, validated before use: model info, tree entries and a file's headers
//! become [`ModelInfo`], [`RemoteFile`] and [`FileHead`] only with safe paths, well-formed hashes (40-hex git sha1
//! and commits, 64-hex sha256) and one size per file.

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::headers::{clean_etag, header_str, truncate};
use crate::engine::error::{EmaError, Result};
use crate::engine::store::{RepoId, validate_repo_path};

/// Is `s` exactly `n` lowercase-or-uppercase hex digits?
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `s` lowercased when it is exactly `n` hex digits, else an integrity error naming `what`.
fn check_hex(s: &str, n: usize, what: &str) -> Result<String> {
    if is_hex(s, n) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(EmaError::Integrity(format!(
            "the hub sent an invalid {what} {:?} (expected {n} hex digits); the endpoint is not speaking the Hub \
             protocol correctly — check HF_ENDPOINT",
            truncate(s, 80)
        )))
    }
}

/// A 40-hex commit sha, lowercased, or an integrity error naming `what`.
pub fn check_sha1(s: &str, what: &str) -> Result<String> {
    check_hex(s, 40, what)
}

/// A 64-hex sha256, lowercased, or an integrity error naming `what`.
pub fn check_sha256(s: &str, what: &str) -> Result<String> {
    check_hex(s, 64, what)
}

/// One file of a repo at a commit, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub path: String,
    pub size: u64,
    /// git blob sha1 (40-hex, lowercase), when published.
    pub git_sha1: Option<String>,
    /// sha256 of the content for LFS files (64-hex, lowercase).
    pub sha256: Option<String>,
}

impl RemoteFile {
    pub fn is_lfs(&self) -> bool {
        self.sha256.is_some()
    }

    /// The hash the downloaded bytes must have: the sha256 for LFS files, else the git blob sha1.
    pub fn expected_hash(&self) -> Option<&str> {
        self.sha256.as_deref().or(self.git_sha1.as_deref())
    }
}

/// Model info from `/api/models/{repo}[/revision/{rev}]?blobs=true`, validated.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub id: String,
    /// The 40-hex commit the revision resolved to.
    pub commit: String,
    pub private: bool,
    /// `None` when not gated, else `"auto"` or `"manual"`.
    pub gated: Option<String>,
    pub pipeline_tag: Option<String>,
    pub library_name: Option<String>,
    pub tags: Vec<String>,
    pub parameters: Option<u64>,
    /// `safetensors.parameters`: parameter count per dtype.
    pub parameters_by_dtype: std::collections::BTreeMap<String, u64>,
    /// `cardData.base_model` (a string or a list), as a list.
    pub base_models: Vec<String>,
    /// `config.architectures` and `config.model_type`, when the hub sends its `config` summary.
    pub architectures: Vec<String>,
    pub model_type: Option<String>,
    pub last_modified: Option<String>,
    /// The siblings with sizes and hashes (when the server sent them).
    pub siblings: Vec<RemoteFile>,
}

/// What a HEAD on `resolve` says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHead {
    /// `X-Repo-Commit`, validated, when sent.
    pub commit: Option<String>,
    /// `X-Linked-Etag` (LFS sha256) or `ETag` (git sha1), quotes and `W/` stripped, lowercased.
    pub etag: Option<String>,
    /// `X-Linked-Size`, else the final response's `Content-Length`.
    pub size: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct RawInfo {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    gated: serde_json::Value,
    #[serde(default)]
    pipeline_tag: Option<String>,
    #[serde(default)]
    library_name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    safetensors: Option<RawSafetensors>,
    #[serde(default, rename = "cardData")]
    card_data: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default, rename = "lastModified")]
    last_modified: Option<String>,
    #[serde(default)]
    siblings: Vec<RawSibling>,
}

#[derive(Deserialize)]
struct RawSafetensors {
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    parameters: std::collections::BTreeMap<String, u64>,
}

/// `cardData.base_model`: a string or a list of strings (anything else is ignored).
fn base_models(card: Option<&serde_json::Value>) -> Vec<String> {
    match card.and_then(|c| c.get("base_model")) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

#[derive(Deserialize)]
struct RawSibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "blobId")]
    blob_id: Option<String>,
    #[serde(default)]
    lfs: Option<RawSiblingLfs>,
}

#[derive(Deserialize)]
struct RawSiblingLfs {
    sha256: String,
    size: u64,
}

#[derive(Deserialize)]
pub(super) struct RawTreeEntry {
    #[serde(rename = "type")]
    pub(super) kind: String,
    path: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    lfs: Option<RawTreeLfs>,
}

#[derive(Deserialize)]
struct RawTreeLfs {
    oid: String,
    size: u64,
}

pub(super) fn parse_head(h: &HeaderMap, is_redirect: bool) -> Result<FileHead> {
    let commit = match header_str(h, "x-repo-commit") {
        Some(c) => Some(check_sha1(c, "X-Repo-Commit")?),
        None => None,
    };
    let etag = header_str(h, "x-linked-etag")
        .or_else(|| header_str(h, "etag"))
        .map(clean_etag);
    let linked_size = header_str(h, "x-linked-size");
    let size = match linked_size {
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            EmaError::Integrity(format!(
                "the hub sent an invalid X-Linked-Size {:?}",
                truncate(s, 40)
            ))
        })?),
        // Never take the size from a redirect's own Content-Length.
        None if !is_redirect => header_str(h, "content-length").and_then(|s| s.parse().ok()),
        None => None,
    };
    Ok(FileHead { commit, etag, size })
}

pub(super) fn parse_info(repo: &RepoId, raw: RawInfo) -> Result<ModelInfo> {
    let sha = raw.sha.ok_or_else(|| {
        EmaError::Hub(format!(
            "the model info of {repo} has no commit sha; check HF_ENDPOINT points at a Hugging Face Hub"
        ))
    })?;
    let commit = check_sha1(&sha, "commit sha")?;
    let gated = match raw.gated {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Bool(true) => Some("true".to_string()),
        _ => None,
    };
    let siblings = raw
        .siblings
        .into_iter()
        .map(|s| {
            let lfs = s.lfs.map(|l| (l.sha256, l.size));
            remote_file(s.rfilename, s.size, s.blob_id, lfs, "hub lists")
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ModelInfo {
        id: raw.id.unwrap_or_else(|| repo.to_string()),
        commit,
        private: raw.private,
        gated,
        pipeline_tag: raw.pipeline_tag,
        library_name: raw.library_name,
        tags: raw.tags,
        base_models: base_models(raw.card_data.as_ref()),
        architectures: raw
            .config
            .as_ref()
            .and_then(|c| c.get("architectures"))
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        model_type: raw
            .config
            .as_ref()
            .and_then(|c| c.get("model_type"))
            .and_then(|t| t.as_str())
            .map(str::to_string),
        parameters: raw.safetensors.as_ref().and_then(|s| {
            s.total
                .or_else(|| (!s.parameters.is_empty()).then(|| s.parameters.values().sum()))
        }),
        parameters_by_dtype: raw.safetensors.map(|s| s.parameters).unwrap_or_default(),
        last_modified: raw.last_modified,
        siblings,
    })
}

pub(super) fn parse_tree_entry(e: RawTreeEntry) -> Result<RemoteFile> {
    let lfs = e.lfs.map(|l| (l.oid, l.size));
    let f = remote_file(e.path, e.size, e.oid, lfs, "hub's tree lists")?;
    if f.sha256.is_none() && f.git_sha1.is_none() {
        return Err(EmaError::Integrity(format!(
            "the hub's tree lists {} without any hash; ema cannot verify it, refusing",
            f.path
        )));
    }
    Ok(f)
}

/// One listed file (a `siblings` entry of the model info or a tree entry), checked before use: a safe path,
/// well-formed hashes, and one size (`lfs` is the LFS pointer's `(sha256, size)`).
fn remote_file(
    path: String,
    size: Option<u64>,
    git_sha1: Option<String>,
    lfs: Option<(String, u64)>,
    source: &str,
) -> Result<RemoteFile> {
    validate_repo_path(&path)?;
    let git_sha1 = match &git_sha1 {
        Some(h) => Some(check_sha1(h, "git blob id")?),
        None => None,
    };
    let (sha256, size) = match lfs {
        Some((sha256, lfs_size)) => {
            if let Some(sz) = size
                && sz != lfs_size
            {
                return Err(EmaError::Integrity(format!(
                    "the {source} {path} with two sizes ({sz} and lfs {lfs_size}); refusing"
                )));
            }
            (Some(check_sha256(&sha256, "lfs sha256")?), lfs_size)
        }
        None => (None, size.unwrap_or(0)),
    };
    Ok(RemoteFile {
        path,
        size,
        git_sha1,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::hub::headers::tests::hm;

    #[test]
    fn card_base_model_and_dtype_counts() {
        let raw: RawInfo = serde_json::from_value(serde_json::json!({
            "sha": "a".repeat(40),
            "cardData": {"base_model": ["org/base", " ", "org/other"]},
            "safetensors": {"parameters": {"BF16": 10, "U8": 4}},
        }))
        .unwrap();
        let i = parse_info(&RepoId::parse("o/m").unwrap(), raw).unwrap();
        assert_eq!(i.base_models, vec!["org/base", "org/other"]);
        assert_eq!(i.parameters, Some(14));
        assert_eq!(i.parameters_by_dtype["U8"], 4);
        assert_eq!(
            base_models(Some(&serde_json::json!({"base_model": "x/y"}))),
            vec!["x/y"]
        );
        assert!(base_models(Some(&serde_json::json!({"base_model": 3}))).is_empty());
    }

    #[test]
    fn hex_checks() {
        assert!(check_sha1(&"a".repeat(40), "x").is_ok());
        assert!(check_sha1(&"a".repeat(39), "x").is_err());
        assert!(check_sha1(&format!("../{}", "a".repeat(37)), "x").is_err());
        assert_eq!(
            check_sha256(&"AB".repeat(32), "x").unwrap(),
            "ab".repeat(32)
        );
        assert!(check_sha256(&"g".repeat(64), "x").is_err());
    }

    #[test]
    fn head_parsing() {
        let sha = "c".repeat(40);
        let h = hm(&[
            ("x-repo-commit", &sha),
            ("x-linked-etag", &format!("\"{}\"", "A".repeat(64))),
            ("x-linked-size", "123"),
            ("content-length", "9"),
        ]);
        let f = parse_head(&h, true).unwrap();
        assert_eq!(f.etag.unwrap(), "a".repeat(64));
        assert_eq!(f.size, Some(123));
        let h = hm(&[("etag", "W/\"abc\""), ("content-length", "9")]);
        assert_eq!(parse_head(&h, true).unwrap().size, None);
        assert_eq!(parse_head(&h, false).unwrap().size, Some(9));
        assert!(parse_head(&hm(&[("x-repo-commit", "../../etc")]), false).is_err());
    }

    #[test]
    fn tree_entries_validated() {
        let ok = RawTreeEntry {
            kind: "file".into(),
            path: "a/b.bin".into(),
            size: Some(5),
            oid: Some("d".repeat(40)),
            lfs: Some(RawTreeLfs {
                oid: "e".repeat(64),
                size: 5,
            }),
        };
        let f = parse_tree_entry(ok).unwrap();
        assert!(f.is_lfs());
        assert_eq!(f.expected_hash().unwrap(), "e".repeat(64));
        for (path, oid) in [("../x", "d".repeat(40)), ("ok", "zz".to_string())] {
            let bad = RawTreeEntry {
                kind: "file".into(),
                path: path.into(),
                size: Some(1),
                oid: Some(oid),
                lfs: None,
            };
            assert!(parse_tree_entry(bad).is_err());
        }
    }
}
