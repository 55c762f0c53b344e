//! What the Hub face serves: a repo ([`Repo`]) and its files ([`FileEntry`]) with the hashes the protocol publishes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::engine::integrity::hash::git_blob_sha1;
use crate::engine::store::is_lfs_path;

/// The git-lfs pointer file the Hub keeps in git for an LFS file.
pub(crate) fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where a served file's bytes come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Disk(PathBuf),
    Memory(Bytes),
}

/// One served file.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    pub size: u64,
    /// git blob sha1 of the content (non-LFS) or of the LFS pointer (LFS).
    pub oid: String,
    /// sha256 of the content; always set for LFS files.
    pub sha256: Option<String>,
    pub lfs: bool,
    pub source: Source,
    /// Lying-metadata fixtures: the size the listing claims (headers tell the truth).
    pub listed_size: Option<u64>,
    /// Lying-metadata fixtures: the sha256 the listing and headers claim.
    pub listed_sha256: Option<String>,
}

impl FileEntry {
    /// An in-memory file with hashes computed from `content`.
    pub(crate) fn from_bytes(path: &str, content: Bytes) -> FileEntry {
        let size = content.len() as u64;
        let lfs = is_lfs_path(path, size);
        let sha256 = hex::encode(Sha256::digest(&content));
        let oid = if lfs {
            git_blob_sha1(lfs_pointer(&sha256, size).as_bytes())
        } else {
            git_blob_sha1(&content)
        };
        FileEntry {
            size,
            oid,
            sha256: Some(sha256),
            lfs,
            source: Source::Memory(content),
            listed_size: None,
            listed_sha256: None,
        }
    }

    pub(crate) fn published_sha256(&self) -> Option<&str> {
        self.listed_sha256.as_deref().or(self.sha256.as_deref())
    }

    pub(crate) fn pointer_size(&self) -> usize {
        lfs_pointer(self.published_sha256().unwrap_or(""), self.size).len()
    }

    /// The `ETag` header value (quoted): the sha256 for LFS files, the git blob sha1 otherwise.
    pub(crate) fn etag(&self) -> String {
        if self.lfs {
            format!("\"{}\"", self.published_sha256().unwrap_or(""))
        } else {
            format!("\"{}\"", self.oid)
        }
    }
}

/// One served repo.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub id: String,
    pub commit: String,
    /// The revision the store's metadata says the model was downloaded at (served besides `main` and the commit).
    pub recorded_revision: Option<String>,
    pub files: BTreeMap<String, Arc<FileEntry>>,
    pub pipeline_tag: Option<String>,
    pub library_name: Option<String>,
    pub tags: Vec<String>,
    /// dtype → parameter count, from the safetensors headers.
    pub safetensors: BTreeMap<String, u64>,
    pub last_modified: String,
    pub card_data: Option<Value>,
    /// The Hub's `config` summary from the model's `config.json`: `architectures`, `model_type`,
    /// `quantization_config`.
    pub config: Option<Value>,
}

impl Repo {
    /// Whether `rev` names this repo's served revision: `main`, the commit, or the recorded revision.
    pub(crate) fn serves_revision(&self, rev: &str) -> bool {
        rev == "main" || rev == self.commit || self.recorded_revision.as_deref() == Some(rev)
    }
}

/// A deterministic 40-hex commit for a set of files (used when the metadata has none).
pub(crate) fn derive_commit(files: &BTreeMap<String, Arc<FileEntry>>) -> String {
    let mut h = Sha1::new();
    h.update(b"ema-mirror-commit\n");
    for (path, f) in files {
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(f.oid.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use crate::engine::store::{LFS_SIZE_THRESHOLD, is_lfs_path};

    #[test]
    fn lfs_rules() {
        assert!(is_lfs_path("model.safetensors", 10));
        assert!(is_lfs_path("sub/x.GGUF", 10));
        assert!(!is_lfs_path("config.json", 100));
        assert!(is_lfs_path("big.json", LFS_SIZE_THRESHOLD));
        assert!(!is_lfs_path("Makefile", 1));
    }
}
