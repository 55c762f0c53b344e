//! Compare a tree on disk with a manifest, entry by entry (type, size, sha256, symlink target, mode, file mtime),
//! and list what is there but not in the manifest. Used to prove a backup and to verify a rollback.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::error::Result;
use crate::engine::integrity::hash::{HashJob, HashKinds, default_threads, hash_files_parallel};

use super::manifest::{Entry, EntryKind, Manifest};
use super::tree::{Found, scan};

/// One way a tree differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The entry's path as the manifest names it (`models/org--name/config.json`).
    pub path: String,
    /// Where it is on disk.
    pub at: PathBuf,
    /// `missing`, `extra`, `type`, `size`, `content`, `target`, `mode`, `mtime`.
    pub what: &'static str,
    pub detail: String,
}

/// What to compare beyond presence, type, size and link target.
#[derive(Debug, Clone, Copy)]
pub struct CompareOpts {
    /// Re-hash every file and compare with the manifest's sha256.
    pub hash: bool,
    /// Compare permission bits.
    pub mode: bool,
    /// Compare file modification times (nanoseconds).
    pub mtime: bool,
}

/// Compare the entries of `m` with what is on disk, where `place(entry)` says where each entry lives (inside the
/// backup, or at its original path). Entries under each source that the manifest does not list are `extra`.
pub fn compare(
    m: &Manifest,
    place: &dyn Fn(&Entry) -> PathBuf,
    opts: CompareOpts,
) -> Result<Vec<Difference>> {
    let mut diffs = Vec::new();
    let listed: BTreeSet<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
    let mut to_hash: Vec<(&Entry, PathBuf)> = Vec::new();
    for e in &m.entries {
        let at = place(e);
        let found = match single(&at, &e.path)? {
            Some(f) => f,
            None => {
                diffs.push(diff(
                    e,
                    at,
                    "missing",
                    format!("{} is absent", e.kind.as_str()),
                ));
                continue;
            }
        };
        if found.kind != e.kind {
            diffs.push(diff(
                e,
                at,
                "type",
                format!(
                    "expected a {}, found a {}",
                    e.kind.as_str(),
                    found.kind.as_str()
                ),
            ));
            continue;
        }
        match e.kind {
            EntryKind::Symlink => {
                if found.target != e.target {
                    diffs.push(diff(
                        e,
                        at.clone(),
                        "target",
                        format!(
                            "points to {:?}, expected {:?}",
                            found.target.unwrap_or_default(),
                            e.target.clone().unwrap_or_default()
                        ),
                    ));
                }
            }
            EntryKind::File => {
                if found.size != e.size {
                    diffs.push(diff(
                        e,
                        at.clone(),
                        "size",
                        format!("{} bytes, expected {}", found.size, e.size),
                    ));
                } else if opts.hash {
                    to_hash.push((e, at.clone()));
                }
                if opts.mtime && found.mtime_ns != e.mtime_ns {
                    diffs.push(diff(
                        e,
                        at.clone(),
                        "mtime",
                        format!(
                            "modified at {} ns, expected {} ns",
                            found.mtime_ns.unwrap_or_default(),
                            e.mtime_ns.unwrap_or_default()
                        ),
                    ));
                }
            }
            EntryKind::Directory => {
                for child in list_children(&at)? {
                    let rel = format!("{}/{}", e.path, child);
                    if !listed.contains(rel.as_str()) {
                        diffs.push(Difference {
                            at: at.join(&child),
                            path: rel,
                            what: "extra",
                            detail: "not in the manifest".into(),
                        });
                    }
                }
            }
        }
        if opts.mode && e.kind != EntryKind::Symlink && found.mode != e.mode {
            diffs.push(diff(
                e,
                at,
                "mode",
                format!("mode {:o}, expected {:o}", found.mode, e.mode),
            ));
        }
    }
    if !to_hash.is_empty() {
        let jobs: Vec<HashJob> = to_hash
            .iter()
            .map(|(e, at)| HashJob {
                path: at.clone(),
                kinds: HashKinds::SHA256,
                size_hint: e.size,
            })
            .collect();
        let results = hash_files_parallel(&jobs, default_threads(), |_, _| {});
        for ((e, at), r) in to_hash.into_iter().zip(results) {
            let got = r?.digests.sha256.unwrap_or_default();
            if Some(&got) != e.sha256.as_ref() {
                diffs.push(diff(
                    e,
                    at,
                    "content",
                    format!(
                        "sha256 {got}, expected {}",
                        e.sha256.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    diffs.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(diffs)
}

fn diff(e: &Entry, at: PathBuf, what: &'static str, detail: String) -> Difference {
    Difference {
        path: e.path.clone(),
        at,
        what,
        detail,
    }
}

/// The entry at `at` alone (not its children), or None when nothing is there.
fn single(at: &Path, rel: &str) -> Result<Option<Found>> {
    match std::fs::symlink_metadata(at) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::engine::error::EmaError::io("cannot read", at, e)),
        Ok(md) if md.is_dir() => {
            // scan() would walk the whole subtree; only the directory itself is wanted here.
            Ok(Some(Found {
                rel: rel.to_string(),
                abs: at.to_path_buf(),
                kind: EntryKind::Directory,
                mode: std::os::unix::fs::MetadataExt::mode(&md) & 0o7777,
                mtime_ns: Some(super::tree::mtime_ns_of(&md)),
                size: 0,
                target: None,
                dev: std::os::unix::fs::MetadataExt::dev(&md),
            }))
        }
        Ok(_) => Ok(scan(at, rel)?.into_iter().next()),
    }
}

fn list_children(dir: &Path) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for ent in std::fs::read_dir(dir)
        .map_err(|e| crate::engine::error::EmaError::io("cannot list", dir, e))?
    {
        let ent = ent.map_err(|e| crate::engine::error::EmaError::io("cannot list", dir, e))?;
        v.push(ent.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}
