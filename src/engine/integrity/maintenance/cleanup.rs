//! `ema cleanup`: stale temporary files and partial downloads (never those of a download in progress), old logs,
//! and compression of old configuration backups; with a dry run that only reports.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::engine::atomic::{lock_held, write_atomic};
use crate::engine::error::{EmaError, Result};
use crate::engine::store::Store;

#[derive(Debug, Clone)]
pub struct CleanupOptions {
    pub remove_temp_files: bool,
    pub remove_old_logs: bool,
    pub compress_backups: bool,
    pub dry_run: bool,
    /// Temp files younger than this are left alone (a download may still want them).
    pub temp_min_age: Duration,
    /// Log files older than this are removed.
    pub log_max_age: Duration,
    /// Directories holding logs (`*.log`, `*.log.N`, `*.log.gz`).
    pub log_dirs: Vec<PathBuf>,
    /// Where timestamped configuration backups live, and the config file name they derive from.
    pub backup_dirs: Vec<PathBuf>,
}

impl CleanupOptions {
    pub fn new(store: &Store) -> Self {
        CleanupOptions {
            remove_temp_files: false,
            remove_old_logs: false,
            compress_backups: false,
            dry_run: false,
            temp_min_age: Duration::from_secs(24 * 3600),
            log_max_age: Duration::from_secs(14 * 24 * 3600),
            log_dirs: vec![store.state_dir().join("logs")],
            backup_dirs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanupItem {
    /// `temp_file`, `old_log`, `backup`.
    pub kind: &'static str,
    pub path: PathBuf,
    pub bytes: u64,
    /// `removed`, `would_remove`, `compressed`, `would_compress`, `skipped_in_use`, `failed`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub items: Vec<CleanupItem>,
    pub bytes_freed: u64,
}

fn age(md: &std::fs::Metadata) -> Duration {
    md.modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Visit every entry below `dir` (not `dir` itself; symlinks not followed) with its metadata, each directory before
/// its contents.
fn walk(dir: &Path, mut visit: impl FnMut(PathBuf, std::fs::Metadata)) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            }
            visit(e.path(), md);
        }
    }
}

/// Every regular file below `dir` (symlinks not followed) with its metadata, sorted by path.
pub(super) fn files_under(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    walk(dir, |path, md| {
        if md.is_file() {
            out.push((path, md));
        }
    });
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn is_temp_name(name: &str) -> bool {
    name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".partial")
        || name.ends_with(".incomplete")
}

pub fn cleanup(store: &Store, opts: &CleanupOptions) -> Result<CleanupReport> {
    let mut report = CleanupReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if opts.remove_temp_files {
        temp_files(store, opts, &mut report);
    }
    if opts.remove_old_logs {
        old_logs(opts, &mut report);
    }
    if opts.compress_backups {
        compress_backups(opts, &mut report);
    }
    Ok(report)
}

impl CleanupReport {
    /// Remove one file (or say it would be removed, on a dry run) and record it.
    fn remove(&mut self, dry_run: bool, kind: &'static str, path: PathBuf, bytes: u64) {
        if dry_run {
            self.items.push(CleanupItem {
                kind,
                path,
                bytes,
                action: "would_remove",
                detail: None,
            });
            return;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                self.bytes_freed += bytes;
                self.items.push(CleanupItem {
                    kind,
                    path,
                    bytes,
                    action: "removed",
                    detail: None,
                });
            }
            Err(e) => self.items.push(CleanupItem {
                kind,
                path,
                bytes,
                action: "failed",
                detail: Some(e.to_string()),
            }),
        }
    }
}

/// Partial downloads not in use, old scratch space and leftovers of interrupted atomic writes.
fn temp_files(store: &Store, opts: &CleanupOptions, report: &mut CleanupReport) {
    let state = store.state_dir();
    let partial_root = state.join("partial");
    let locks = state.join("locks");
    // Partial downloads: everything under .ema/partial/<model>/, unless that model's download lock is held.
    let mut in_use: BTreeMap<PathBuf, bool> = BTreeMap::new();
    for (path, md) in files_under(&partial_root) {
        let model_folder = path
            .strip_prefix(&partial_root)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock = locks.join(format!("{model_folder}.lock"));
        let held = *in_use
            .entry(lock.clone())
            .or_insert_with(|| lock_held(&lock));
        if held {
            report.items.push(CleanupItem {
                kind: "temp_file",
                path,
                bytes: md.len(),
                action: "skipped_in_use",
                detail: Some("a download of this model is running".into()),
            });
            continue;
        }
        if age(&md) < opts.temp_min_age {
            continue;
        }
        report.remove(opts.dry_run, "temp_file", path, md.len());
    }
    // Scratch space (`.ema/tmp/`, e.g. half-built sample models): everything old enough.
    let tmp_root = state.join("tmp");
    // Directories old before this cleanup (removing their files makes them look fresh).
    let old_dirs = old_subdirs(&tmp_root, opts.temp_min_age);
    for (path, md) in files_under(&tmp_root) {
        if age(&md) >= opts.temp_min_age {
            report.remove(opts.dry_run, "temp_file", path, md.len());
        }
    }
    if !opts.dry_run {
        // Only old ones: a fresh empty directory may be about to receive a file. Deepest first.
        for d in old_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
    // Leftover temp files of interrupted atomic writes: in .ema/ (outside partial/ and tmp/) and beside the
    // metadata.
    let mut candidates: Vec<(PathBuf, std::fs::Metadata)> = files_under(&state)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&partial_root) && !p.starts_with(&tmp_root))
        .collect();
    if let Ok(rd) = std::fs::read_dir(store.root()) {
        for e in rd.flatten() {
            if let Ok(md) = std::fs::symlink_metadata(e.path())
                && md.is_file()
            {
                candidates.push((e.path(), md));
            }
        }
    }
    for (path, md) in candidates {
        let name = file_name(&path);
        if is_temp_name(&name) && age(&md) >= opts.temp_min_age {
            report.remove(opts.dry_run, "temp_file", path, md.len());
        }
    }
}

/// Log files older than `log_max_age`.
fn old_logs(opts: &CleanupOptions, report: &mut CleanupReport) {
    for dir in &opts.log_dirs {
        for (path, md) in files_under(dir) {
            let name = file_name(&path);
            let is_log =
                name.ends_with(".log") || name.contains(".log.") || name.ends_with(".jsonl.gz");
            if is_log && age(&md) >= opts.log_max_age {
                report.remove(opts.dry_run, "old_log", path, md.len());
            }
        }
    }
}

/// Configuration backups compressed with gzip.
fn compress_backups(opts: &CleanupOptions, report: &mut CleanupReport) {
    for dir in &opts.backup_dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let name = file_name(&path);
            let is_backup = md.is_file()
                && (name.contains(".bak") || name.contains(".backup"))
                && !name.ends_with(".gz");
            if !is_backup {
                continue;
            }
            if opts.dry_run {
                report.items.push(CleanupItem {
                    kind: "backup",
                    path,
                    bytes: md.len(),
                    action: "would_compress",
                    detail: None,
                });
                continue;
            }
            match gzip_file(&path) {
                Ok(gz_len) => {
                    report.bytes_freed += md.len().saturating_sub(gz_len);
                    report.items.push(CleanupItem {
                        kind: "backup",
                        path,
                        bytes: md.len(),
                        action: "compressed",
                        detail: Some(format!("{name}.gz, {gz_len} bytes")),
                    });
                }
                Err(e) => report.items.push(CleanupItem {
                    kind: "backup",
                    path,
                    bytes: md.len(),
                    action: "failed",
                    detail: Some(e.to_string()),
                }),
            }
        }
    }
}

/// The last component of `path`, lossily as text ("" when there is none).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Directories below `dir` (not `dir` itself) last modified at least `min_age` ago, parents before children.
fn old_subdirs(dir: &Path, min_age: Duration) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, |path, md| {
        if md.is_dir() && age(&md) >= min_age {
            out.push(path);
        }
    });
    out.sort_by_key(|p| p.components().count());
    out
}

/// Compress `path` to `path.gz` (gzip via flate2), check the result decompresses to the same bytes, then remove the
/// original. Returns the compressed size.
pub fn gzip_file(path: &Path) -> Result<u64> {
    let data = std::fs::read(path).map_err(|e| EmaError::io("cannot read", path, e))?;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&data)
        .and_then(|_| enc.try_finish())
        .map_err(|e| EmaError::io("cannot compress", path, e))?;
    let gz = enc
        .finish()
        .map_err(|e| EmaError::io("cannot compress", path, e))?;
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut back)
        .map_err(|e| EmaError::io("cannot check the compressed copy of", path, e))?;
    if back != data {
        return Err(EmaError::Integrity(format!(
            "compressed copy of {} does not round-trip; the original was kept",
            path.display()
        )));
    }
    let mut gz_path = path.as_os_str().to_owned();
    gz_path.push(".gz");
    let gz_path = PathBuf::from(gz_path);
    write_atomic(&gz_path, &gz)?;
    std::fs::remove_file(path).map_err(|e| EmaError::io("cannot remove", path, e))?;
    Ok(gz.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old(path: &Path) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(40 * 24 * 3600))
            .unwrap();
    }

    #[test]
    fn cleanup_respects_age_locks_and_dry_run() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("models"));
        store.ensure().unwrap();
        let st = store.state_dir();
        std::fs::create_dir_all(st.join("partial/a--busy")).unwrap();
        std::fs::create_dir_all(st.join("partial/a--idle")).unwrap();
        std::fs::create_dir_all(st.join("locks")).unwrap();
        std::fs::create_dir_all(st.join("logs")).unwrap();
        std::fs::create_dir_all(st.join("tmp/demo-x")).unwrap();
        std::fs::write(st.join("tmp/demo-x/model.safetensors"), b"half").unwrap();
        old(&st.join("tmp/demo-x/model.safetensors"));
        let old_dir = |p: &Path| {
            let f = std::fs::File::open(p).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(40 * 24 * 3600))
                .unwrap();
        };
        for p in [
            "partial/a--busy/x.part",
            "partial/a--idle/y.part",
            "partial/a--idle/fresh.part",
            "logs/ema.log",
            "logs/new.log",
        ] {
            std::fs::write(st.join(p), b"data").unwrap();
        }
        old(&st.join("partial/a--busy/x.part"));
        old(&st.join("partial/a--idle/y.part"));
        old(&st.join("logs/ema.log"));
        std::fs::write(st.join("locks/a--busy.lock"), b"").unwrap();
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(st.join("locks/a--busy.lock"))
            .unwrap();
        lock.lock().unwrap();
        let cfgdir = d.path().join("config");
        std::fs::create_dir_all(&cfgdir).unwrap();
        let backup = cfgdir.join("enhanced_model_config.json.bak.20261125T000000Z");
        std::fs::write(&backup, "{\"a\": 1}".repeat(100)).unwrap();

        let mut o = CleanupOptions::new(&store);
        o.remove_temp_files = true;
        o.remove_old_logs = true;
        o.compress_backups = true;
        o.backup_dirs = vec![cfgdir.clone()];
        o.dry_run = true;
        let r = cleanup(&store, &o).unwrap();
        assert!(r.items.iter().all(|i| i.action != "removed"));
        assert!(st.join("partial/a--idle/y.part").exists());
        o.dry_run = false;
        old_dir(&st.join("tmp/demo-x"));
        let r = cleanup(&store, &o).unwrap();
        let acts: Vec<(&str, &str)> = r
            .items
            .iter()
            .map(|i| (i.path.file_name().unwrap().to_str().unwrap(), i.action))
            .collect();
        assert!(acts.contains(&("x.part", "skipped_in_use")), "{acts:?}");
        assert!(acts.contains(&("y.part", "removed")), "{acts:?}");
        assert!(acts.contains(&("ema.log", "removed")), "{acts:?}");
        assert!(acts.contains(&("model.safetensors", "removed")), "{acts:?}");
        assert!(!st.join("tmp/demo-x").exists() && st.join("tmp").exists());
        assert!(!st.join("partial/a--idle/y.part").exists());
        assert!(st.join("partial/a--idle/fresh.part").exists());
        assert!(st.join("logs/new.log").exists());
        assert!(!backup.exists());
        let gz = std::fs::read(cfgdir.join("enhanced_model_config.json.bak.20261125T000000Z.gz"))
            .unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "{\"a\": 1}".repeat(100));
        drop(lock);
    }
}
