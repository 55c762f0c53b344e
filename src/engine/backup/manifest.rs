//! The backup manifest: every entry of a backup (path, type, mode, mtime, size, sha256, symlink target) and the
//! absolute paths it was taken from, so a backup proves itself and a rollback needs nothing but its directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::error::{EmaError, Result};

/// File name of the manifest inside a backup directory. Written last and atomically: a directory without it is
/// not a (complete) backup.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: &str = "ema-backup/1";

/// What an entry is. Symlinks are recorded as links (their target kept as it was), never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
}

impl EntryKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Directory => "directory",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// One path inside the backup, relative to the backup directory with `/` separators. The first component is the
/// name of the [`SourceRecord`] it belongs to (`models/org--name/config.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time in nanoseconds since the Unix epoch (files and directories; absent for symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
    /// Bytes (files only; 0 otherwise).
    #[serde(default)]
    pub size: u64,
    /// Lower-case hex sha256 of the content (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The link's target exactly as read (symlinks only; relative targets stay relative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Files only: the bytes are not stored in this backup but in this file of an earlier backup (a pre-rollback
    /// backup does not copy what the rollback left untouched; the sha256 above was verified against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<PathBuf>,
}

/// One top-level thing that was backed up: `models/`, `config.json`, `logs/`, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Its name inside the backup directory (one path component).
    pub name: String,
    /// The absolute path it was taken from (where a rollback puts it back).
    pub original: PathBuf,
    pub kind: EntryKind,
    /// What it is, for people: "models directory", "legacy configuration", …
    pub role: String,
    /// Nothing was at `original` when the backup was taken (a pre-rollback backup of a path the rollback
    /// recreated): rolling back to this backup removes whatever is there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
    /// Side-by-side migration: this belongs to the legacy system, which keeps running and owns it. It is backed up
    /// and verifiable, but a rollback leaves it exactly as it is then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// How the bytes reached the backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Bytes shared with the original by a reflink (copy-on-write clone: no extra space, same disk).
    pub reflinked_bytes: u64,
    /// Bytes copied.
    pub copied_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_at: String,
    pub ema_version: String,
    /// The install directory the backup was taken from (`--root`).
    pub root: PathBuf,
    pub sources: Vec<SourceRecord>,
    pub entries: Vec<Entry>,
    pub totals: Totals,
}

impl Manifest {
    /// Read and check the manifest of the backup at `dir`. Errors (exit 2) name the problem and the fix.
    pub fn load(dir: &Path) -> Result<Manifest> {
        if !dir.is_dir() {
            return Err(EmaError::Config(format!(
                "{} is not a directory: --backup-dir takes a directory written by `ema backup`",
                dir.display()
            )));
        }
        let path = dir.join(MANIFEST_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EmaError::Config(format!(
                    "{} is not an ema backup: it has no {MANIFEST_NAME} (`ema backup` writes one last; a backup \
                     that was interrupted has none — take a new one)",
                    dir.display()
                )));
            }
            Err(e) => return Err(EmaError::io("cannot read", path, e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            EmaError::Config(format!(
                "{} is malformed ({e}); it was edited or damaged — this backup cannot be trusted for a rollback",
                path.display()
            ))
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(EmaError::Config(format!(
                "{} has format {:?}; this ema reads {MANIFEST_FORMAT:?}",
                path.display(),
                m.format
            )));
        }
        m.check_shape().map_err(|why| {
            EmaError::Config(format!(
                "{} is inconsistent: {why}; it was edited or damaged — this backup cannot be trusted for a rollback",
                path.display()
            ))
        })?;
        Ok(m)
    }

    /// Internal consistency: safe relative paths under a known source, fields that fit their kind, no duplicates.
    fn check_shape(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.sources {
            if !is_safe_relative(&s.name) || s.name.contains('/') || s.name == MANIFEST_NAME {
                return Err(format!("source name {:?} is not a plain name", s.name));
            }
            if !s.original.is_absolute() {
                return Err(format!("source {:?} has a relative original path", s.name));
            }
        }
        for e in &self.entries {
            if !is_safe_relative(&e.path) {
                return Err(format!("entry path {:?} leaves the backup", e.path));
            }
            let first = e.path.split('/').next().unwrap_or("");
            if !self.sources.iter().any(|s| s.name == first) {
                return Err(format!("entry {:?} belongs to no source", e.path));
            }
            if !seen.insert(e.path.as_str()) {
                return Err(format!("entry {:?} is listed twice", e.path));
            }
            let ok = match e.kind {
                EntryKind::File => {
                    e.sha256.as_deref().is_some_and(is_hex64)
                        && e.target.is_none()
                        && e.same_as.as_ref().is_none_or(|p| p.is_absolute())
                }
                EntryKind::Directory => {
                    e.sha256.is_none() && e.target.is_none() && e.size == 0 && e.same_as.is_none()
                }
                EntryKind::Symlink => {
                    e.target.is_some() && e.sha256.is_none() && e.same_as.is_none()
                }
            };
            if !ok {
                return Err(format!(
                    "entry {:?} ({}) has fields that do not fit its type",
                    e.path,
                    e.kind.as_str()
                ));
            }
        }
        for s in &self.sources {
            let own = self
                .entries
                .iter()
                .any(|e| e.path == s.name && e.kind == s.kind);
            if own == s.absent {
                return Err(format!(
                    "source {:?} {}",
                    s.name,
                    if s.absent {
                        "is marked absent but has entries"
                    } else {
                        "has no entry of its own"
                    }
                ));
            }
        }
        Ok(())
    }

    /// This manifest without the sources the legacy system shares (side-by-side) and their entries — what a rollback
    /// restores — and the original paths of the ones left out.
    pub fn without_shared(&self) -> (Manifest, Vec<PathBuf>) {
        let shared: Vec<&SourceRecord> = self.sources.iter().filter(|s| s.shared).collect();
        let mut m = self.clone();
        m.sources.retain(|s| !s.shared);
        m.entries.retain(|e| {
            let first = e.path.split('/').next().unwrap_or("");
            !shared.iter().any(|s| s.name == first)
        });
        (m, shared.iter().map(|s| s.original.clone()).collect())
    }

    /// Where the entry's bytes are kept: inside the backup at `dir`, or the earlier backup's file it names.
    pub fn stored_path(&self, dir: &Path, entry: &Entry) -> PathBuf {
        match &entry.same_as {
            Some(p) => p.clone(),
            None => dir.join(&entry.path),
        }
    }

    /// The source an entry belongs to and the entry's absolute original path.
    pub fn original_path(&self, entry: &Entry) -> PathBuf {
        let mut parts = entry.path.splitn(2, '/');
        let first = parts.next().unwrap_or("");
        let rest = parts.next();
        let src = self
            .sources
            .iter()
            .find(|s| s.name == first)
            .expect("checked by check_shape");
        match rest {
            Some(r) => src.original.join(r),
            None => src.original.clone(),
        }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A relative path of normal components only (no `..`, no `.`, not absolute, not empty).
pub fn is_safe_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            created_at: "2026-12-02T00:00:00Z".into(),
            ema_version: "0".into(),
            root: "/srv/app".into(),
            sources: vec![SourceRecord {
                shared: false,
                name: "models".into(),
                original: "/srv/app/models".into(),
                kind: EntryKind::Directory,
                role: "models directory".into(),
                absent: false,
            }],
            entries: vec![
                Entry {
                    path: "models".into(),
                    kind: EntryKind::Directory,
                    mode: 0o755,
                    mtime_ns: Some(1),
                    size: 0,
                    sha256: None,
                    target: None,
                    same_as: None,
                },
                Entry {
                    path: "models/a.bin".into(),
                    kind: EntryKind::File,
                    mode: 0o644,
                    mtime_ns: Some(2),
                    size: 3,
                    sha256: Some("a".repeat(64)),
                    target: None,
                    same_as: None,
                },
            ],
            totals: Totals::default(),
        }
    }

    #[test]
    fn shape_checks_catch_hand_edits() {
        assert!(sample().check_shape().is_ok());
        let mut m = sample();
        m.entries[1].path = "models/../../etc/passwd".into();
        assert!(m.check_shape().unwrap_err().contains("leaves the backup"));
        let mut m = sample();
        m.entries[1].sha256 = Some("xyz".into());
        assert!(m.check_shape().unwrap_err().contains("do not fit"));
        let mut m = sample();
        m.entries.push(m.entries[1].clone());
        assert!(m.check_shape().unwrap_err().contains("twice"));
        let mut m = sample();
        m.entries[1].path = "other/a.bin".into();
        assert!(m.check_shape().unwrap_err().contains("no source"));
    }

    #[test]
    fn original_paths_follow_the_source() {
        let m = sample();
        assert_eq!(
            m.original_path(&m.entries[1]),
            PathBuf::from("/srv/app/models/a.bin")
        );
        assert_eq!(
            m.original_path(&m.entries[0]),
            PathBuf::from("/srv/app/models")
        );
    }

    #[test]
    fn load_names_missing_and_malformed_manifests() {
        let d = tempfile::tempdir().unwrap();
        let e = Manifest::load(d.path()).unwrap_err();
        assert!(e.to_string().contains("not an ema backup"), "{e}");
        assert_eq!(e.exit_code(), 2);
        std::fs::write(d.path().join(MANIFEST_NAME), b"{ not json").unwrap();
        let e = Manifest::load(d.path()).unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
        let e = Manifest::load(&d.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
