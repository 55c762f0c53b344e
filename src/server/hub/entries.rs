//! The JSON entries the tree and paths-info endpoints list: directories and files (with `lfs.oid`, the sha256).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::repo::{FileEntry, Repo};

/// Directories of a set of repo paths.
pub(crate) fn directories<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for p in paths {
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            dirs.insert(acc.clone());
        }
    }
    dirs
}

/// A tree / paths-info entry for a directory.
pub(crate) fn dir_entry(repo: &Repo, d: &str) -> Value {
    let oid = hex::encode(Sha1::digest(
        format!("tree {}:{}", repo.commit, d).as_bytes(),
    ));
    json!({ "type": "directory", "oid": oid, "size": 0, "path": d })
}

/// A tree / paths-info entry for a file (note: the sha256 is `lfs.oid` here).
pub(crate) fn file_entry(path: &str, f: &FileEntry) -> Value {
    let mut e = json!({
        "type": "file",
        "oid": f.oid,
        "size": f.listed_size.unwrap_or(f.size),
        "path": path,
    });
    if f.lfs {
        e["lfs"] = json!({
            "oid": f.published_sha256(),
            "size": f.listed_size.unwrap_or(f.size),
            "pointerSize": f.pointer_size(),
        });
    }
    e
}
