//! In-memory fixture repos served beside the store ([`VirtualRepo`]): hostile file names and lying metadata.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::server::hub::repo::{FileEntry, Repo, derive_commit};

/// A file of a [`VirtualRepo`].
#[derive(Debug, Clone)]
pub struct VirtualFile {
    pub path: String,
    pub content: Vec<u8>,
    /// Size the listing claims (headers tell the truth). `None`: the real size.
    pub listed_size: Option<u64>,
    /// sha256 the listing and headers claim. `None`: the real one.
    pub listed_sha256: Option<String>,
}

impl VirtualFile {
    pub fn new(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        VirtualFile {
            path: path.into(),
            content: content.into(),
            listed_size: None,
            listed_sha256: None,
        }
    }
}

/// An in-memory repo served beside the store, for hostile and lying fixtures.
#[derive(Debug, Clone)]
pub struct VirtualRepo {
    pub id: String,
    /// The commit the server claims (`None`: derived from the files, a valid 40-hex).
    pub commit: Option<String>,
    pub files: Vec<VirtualFile>,
}

impl VirtualRepo {
    /// A repo whose listing contains `../evil`, `/etc/x`, `a\b`, `sub/../../x` and one good file `ok.txt`.
    pub fn hostile_names(id: &str) -> Self {
        VirtualRepo {
            id: id.to_string(),
            commit: None,
            files: vec![
                VirtualFile::new("../evil", b"evil\n".to_vec()),
                VirtualFile::new("/etc/x", b"evil\n".to_vec()),
                VirtualFile::new("a\\b", b"evil\n".to_vec()),
                VirtualFile::new("sub/../../x", b"evil\n".to_vec()),
                VirtualFile::new("ok.txt", b"fine\n".to_vec()),
            ],
        }
    }

    /// A repo that claims a commit that is not 40-hex.
    pub fn non_hex_commit(id: &str) -> Self {
        VirtualRepo {
            id: id.to_string(),
            commit: Some("../../not-a-commit".to_string()),
            files: vec![VirtualFile::new("config.json", b"{}\n".to_vec())],
        }
    }

    /// A repo whose LFS file `model.safetensors` claims a sha256 of the wrong length.
    pub fn bad_sha256(id: &str) -> Self {
        let mut f = VirtualFile::new("model.safetensors", vec![7u8; 4096]);
        f.listed_sha256 = Some("abc123".to_string());
        VirtualRepo {
            id: id.to_string(),
            commit: None,
            files: vec![f],
        }
    }

    /// A repo whose `model.safetensors` is listed with one size but served with another.
    pub fn size_mismatch(id: &str) -> Self {
        let mut f = VirtualFile::new("model.safetensors", vec![9u8; 4096]);
        f.listed_size = Some(4000);
        VirtualRepo {
            id: id.to_string(),
            commit: None,
            files: vec![f],
        }
    }

    pub(crate) fn into_repo(self) -> Repo {
        let mut files = BTreeMap::new();
        for f in self.files {
            let mut e = FileEntry::from_bytes(&f.path, Bytes::from(f.content));
            e.listed_size = f.listed_size;
            if f.listed_sha256.is_some() {
                e.lfs = true;
                e.listed_sha256 = f.listed_sha256;
            }
            files.insert(f.path, Arc::new(e));
        }
        let commit = self.commit.unwrap_or_else(|| derive_commit(&files));
        Repo {
            id: self.id,
            commit,
            recorded_revision: None,
            files,
            pipeline_tag: None,
            library_name: None,
            tags: Vec::new(),
            safetensors: BTreeMap::new(),
            last_modified: "2026-01-01T00:00:00.000Z".to_string(),
            card_data: None,
            config: None,
        }
    }
}
