//! Taking a backup of a legacy install directory: what to back up (the spec's `backup_current_system.sh` list), the
//! free-space check, reflink-or-copy with hashing in one pass, `system_info.txt`, and the manifest written last.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::atomic::{sync_dir, write_json_atomic};
use crate::engine::download::disk::human_bytes as human;
use crate::engine::error::{EmaError, Result};

use super::manifest::{
    Entry, EntryKind, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, SourceRecord, Totals,
};
use super::sysinfo::system_info;
use super::tree::{
    CopyMethod, Found, apply_meta, clone_hashed, fs_facts, make_symlink, mtime_ns_of, scan,
};

/// What to back up and where.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The legacy install directory (holds `models/`, `config.json`, `logs/`, `models.db`, `config/`).
    pub root: PathBuf,
    /// Where the backup goes; must not exist or be empty. `None`: `<backups_dir>/pre-migration-YYYYmmdd_HHMMSS`.
    pub dest: Option<PathBuf>,
    /// Parent of default destinations (`<cache>/backups`).
    pub backups_dir: PathBuf,
    /// Further files or directories to include (ema's own configuration, its analytics database), with their
    /// name in the backup and what they are. Missing ones are skipped; ones inside another source are not repeated.
    pub extra: Vec<(String, PathBuf, String)>,
    /// Side-by-side migration: the legacy system keeps running on what is found in `root`; those sources are
    /// marked shared, and a rollback leaves them untouched (it restores only the `extra` ones, ema's own).
    pub side_by_side: bool,
}

/// Progress of a backup, for the faces.
#[derive(Debug, Clone, Serialize)]
pub struct BackupProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub path: String,
}

/// What a backup did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub backup_dir: PathBuf,
    pub manifest: PathBuf,
    pub sources: Vec<SourceRecord>,
    pub totals: Totals,
    /// Bytes the destination filesystem had to provide.
    pub required_bytes: u64,
    pub free_bytes_before: u64,
}

/// One thing to back up, before scanning.
#[derive(Debug, Clone)]
pub struct PlannedSource {
    pub name: String,
    pub path: PathBuf,
    pub role: String,
}

/// The spec's list, found in `root`: `models/` (or the legacy config's `models_directory`, and both when they
/// differ), `config/`, `config.json`, `logs/`, `models.db`, then `extra`. Errors when the root is not a directory or
/// holds none of these.
pub fn plan_sources(
    root: &Path,
    extra: &[(String, PathBuf, String)],
) -> Result<Vec<PlannedSource>> {
    if !root.is_dir() {
        return Err(EmaError::Config(format!(
            "{} is not a directory: --root takes the legacy install directory (the one holding models/ and \
             config.json)",
            root.display()
        )));
    }
    let root = root
        .canonicalize()
        .map_err(|e| EmaError::io("cannot resolve", root, e))?;
    let mut out: Vec<PlannedSource> = Vec::new();
    let add = |name: &str, path: PathBuf, role: &str, out: &mut Vec<PlannedSource>| {
        // A directory that is a link (models -> /data/models) is backed up where its data lives.
        let path = if path.is_dir() {
            path.canonicalize().unwrap_or(path)
        } else {
            path
        };
        if out.iter().any(|s| path.starts_with(&s.path)) {
            return;
        }
        out.push(PlannedSource {
            name: name.to_string(),
            path,
            role: role.to_string(),
        });
    };
    let models = root.join("models");
    if models.is_dir() {
        add("models", models.clone(), "models directory", &mut out);
    }
    if let Some(md) = legacy_models_directory(&root)?
        && md.is_dir()
    {
        let name = if out.iter().any(|s| s.name == "models") {
            "models_directory"
        } else {
            "models"
        };
        add(
            name,
            md,
            "legacy configuration's models_directory",
            &mut out,
        );
    }
    for (name, role) in [
        ("config", "configuration directory"),
        ("config.json", "legacy configuration"),
        ("logs", "logs"),
        ("models.db", "legacy database"),
    ] {
        let p = root.join(name);
        if std::fs::symlink_metadata(&p).is_ok() {
            add(name, p, role, &mut out);
        }
    }
    if out.is_empty() {
        return Err(EmaError::NotFound(format!(
            "nothing to back up in {}: no models/, config.json, config/, logs/ or models.db (run it from the legacy \
             install directory or pass --root)",
            root.display()
        )));
    }
    for (name, path, role) in extra {
        if std::fs::symlink_metadata(path).is_ok() && !out.iter().any(|s| s.name == *name) {
            let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            add(name, abs, role, &mut out);
        }
    }
    Ok(out)
}

/// `models_directory` of the legacy `config.json` in `root`, resolved against `root`. A config that is not JSON is
/// not an error here (migrate-config reports it); it just names no directory.
fn legacy_models_directory(root: &Path) -> Result<Option<PathBuf>> {
    let Ok(text) = std::fs::read(root.join("config.json")) else {
        return Ok(None);
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return Ok(None);
    };
    let md = v
        .get("models_directory")
        .or_else(|| v.get("storage").and_then(|s| s.get("models_directory")))
        .and_then(|m| m.as_str());
    Ok(md.map(|m| root.join(m)))
}

/// Back up `req.root` as the spec's script does, provably. `progress` is called as bytes are copied.
pub fn take_backup(
    req: &BackupRequest,
    progress: &dyn Fn(&BackupProgress),
) -> Result<BackupReport> {
    let planned = plan_sources(&req.root, &req.extra)?;
    let dest = match &req.dest {
        Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
        None => req.backups_dir.join(format!(
            "pre-migration-{}",
            chrono::Local::now().format("%Y%m%d_%H%M%S")
        )),
    };
    for s in &planned {
        if dest.starts_with(&s.path) {
            return Err(EmaError::Config(format!(
                "the backup directory {} lies inside {}, which is being backed up; choose a --dest outside it",
                dest.display(),
                s.path.display()
            )));
        }
    }
    check_dest_empty(&dest)?;

    // Scan everything first: the space check and the progress total need the whole picture.
    let mut scanned: Vec<(PlannedSource, Vec<Found>)> = Vec::new();
    for s in planned {
        let found = scan(&s.path, &s.name)?;
        scanned.push((s, found));
    }
    let parent = existing_ancestor(&dest);
    let facts = fs_facts(&parent)?;
    let reflinkable = |f: &Found| facts.reflink_capable && f.dev == facts.dev;
    let total_bytes: u64 = scanned.iter().flat_map(|(_, f)| f).map(|f| f.size).sum();
    let entries: u64 = scanned.iter().map(|(_, f)| f.len() as u64).sum();
    let required: u64 = scanned
        .iter()
        .flat_map(|(_, f)| f)
        .filter(|f| f.kind == EntryKind::File && !reflinkable(f))
        .map(|f| f.size)
        .sum::<u64>()
        + entries * 4096
        + (1 << 20);
    if required > facts.free_bytes {
        return Err(EmaError::DiskSpace(format!(
            "the backup needs {} at {} but {} is free{}; free some space or choose another --dest",
            human(required),
            parent.display(),
            human(facts.free_bytes),
            if total_bytes > required {
                format!(
                    " ({} are reflinked and take no space)",
                    human(total_bytes - required.min(total_bytes))
                )
            } else {
                String::new()
            }
        )));
    }

    std::fs::create_dir_all(&dest).map_err(|e| EmaError::io("cannot create", &dest, e))?;
    let mut totals = Totals::default();
    let mut manifest_entries: Vec<Entry> = Vec::new();
    let mut done = 0u64;
    for (_, found) in &scanned {
        let mut dirs: Vec<(PathBuf, &Found)> = Vec::new();
        for f in found {
            let to = dest.join(&f.rel);
            let mut sha256 = None;
            match f.kind {
                EntryKind::Directory => {
                    std::fs::create_dir(&to).map_err(|e| EmaError::io("cannot create", &to, e))?;
                    dirs.push((to.clone(), f));
                    totals.directories += 1;
                }
                EntryKind::Symlink => {
                    make_symlink(f.target.as_deref().unwrap_or_default(), &to)?;
                    totals.symlinks += 1;
                }
                EntryKind::File => {
                    let (sha, method) = clone_hashed(&f.abs, &to, reflinkable(f))?;
                    ensure_unchanged(f)?;
                    apply_meta(&to, f.kind, f.mode, f.mtime_ns)?;
                    match method {
                        CopyMethod::Reflink => totals.reflinked_bytes += f.size,
                        CopyMethod::Copy => totals.copied_bytes += f.size,
                    }
                    totals.files += 1;
                    totals.bytes += f.size;
                    done += f.size;
                    progress(&BackupProgress {
                        bytes_done: done,
                        bytes_total: total_bytes,
                        path: f.rel.clone(),
                    });
                    sha256 = Some(sha);
                }
            }
            manifest_entries.push(f.entry(sha256, None));
        }
        // Directories last, deepest first: creating their children changed their mtimes.
        for (to, f) in dirs.iter().rev() {
            sync_dir(to);
            apply_meta(to, f.kind, f.mode, f.mtime_ns)?;
        }
    }
    let sources: Vec<SourceRecord> = scanned
        .iter()
        .map(|(s, found)| SourceRecord {
            name: s.name.clone(),
            original: s.path.clone(),
            kind: found[0].kind,
            role: s.role.clone(),
            absent: false,
            shared: req.side_by_side && !req.extra.iter().any(|(n, _, _)| *n == s.name),
        })
        .collect();
    let info = system_info(&req.root, &dest);
    crate::engine::atomic::write_atomic(&dest.join("system_info.txt"), info.as_bytes())?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        created_at: crate::engine::store::now_rfc3339(),
        ema_version: env!("CARGO_PKG_VERSION").into(),
        root: req.root.canonicalize().unwrap_or_else(|_| req.root.clone()),
        sources: sources.clone(),
        entries: manifest_entries,
        totals: totals.clone(),
    };
    let mpath = dest.join(MANIFEST_NAME);
    write_json_atomic(&mpath, &manifest)?;
    sync_dir(&dest);
    Ok(BackupReport {
        backup_dir: dest,
        manifest: mpath,
        sources,
        totals,
        required_bytes: required,
        free_bytes_before: facts.free_bytes,
    })
}

/// A file that changed while it was copied would make the manifest lie: refuse.
fn ensure_unchanged(f: &Found) -> Result<()> {
    let md =
        std::fs::symlink_metadata(&f.abs).map_err(|e| EmaError::io("cannot read", &f.abs, e))?;
    if md.len() != f.size || Some(mtime_ns_of(&md)) != f.mtime_ns {
        return Err(EmaError::Other(format!(
            "{} changed while it was backed up; stop the service that writes to it (the spec's step 1) and run the \
             backup again",
            f.abs.display()
        )));
    }
    Ok(())
}

fn check_dest_empty(dest: &Path) -> Result<()> {
    match std::fs::read_dir(dest) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(EmaError::Config(format!(
                    "{} already exists and is not empty (an earlier or interrupted backup?); choose another --dest \
                     or remove it",
                    dest.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(EmaError::Config(format!(
            "{} is a file; --dest takes a directory",
            dest.display()
        ))),
        Err(e) => Err(EmaError::io("cannot read", dest, e)),
    }
}

fn existing_ancestor(p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    loop {
        if cur.exists() {
            return cur;
        }
        if !cur.pop() {
            return PathBuf::from("/");
        }
    }
}
