//! `ema move-models`: copy the store to a new place with every file verified, switch the configuration, delete the
//! source; journaled (`<target>/.ema/move-journal.json`) so an interrupted move loses nothing and a re-run finishes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cleanup::files_under;
use crate::engine::atomic::{lock_held, sync_dir, write_json_atomic};
use crate::engine::error::{EmaError, Result};
use crate::engine::integrity::hash;
use crate::engine::store::{STATE_DIR, now_rfc3339};

pub const MOVE_JOURNAL: &str = "move-journal.json";
/// Test hook: stop (as if interrupted) after copying this many files in one run.
pub const MOVE_STOP_ENV: &str = "EMA_MOVE_STOP_AFTER_FILES";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovePhase {
    Copying,
    Verified,
    ConfigSwitched,
    DeletingSource,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveJournal {
    pub source: PathBuf,
    pub target: PathBuf,
    pub started_at: String,
    pub phase: MovePhase,
    /// Files copied and verified: relative path → sha256.
    pub done: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct MoveOptions {
    pub source: PathBuf,
    pub target: PathBuf,
    /// Configuration file whose `storage.models_directory` is switched to the target.
    pub update_config: Option<PathBuf>,
    /// Stop after this many copies (interruption injection for tests).
    pub stop_after_files: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    pub source: PathBuf,
    pub target: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub copied_now: usize,
    pub already_done: usize,
    pub resumed: bool,
    pub config_updated: Option<PathBuf>,
    pub previous_models_directory: Option<String>,
    pub source_deleted: bool,
    /// Files that appeared in the source during the move and were left there.
    pub left_in_source: Vec<String>,
}

/// An absolute, lexically normalized path; the longest existing prefix is canonicalized (symlinks resolved).
pub fn normalize(p: &Path) -> Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| EmaError::io("cannot read the working directory", ".", e))?
            .join(p)
    };
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other.as_os_str()),
        }
    }
    let mut existing = clean.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for n in rest.into_iter().rev() {
        out.push(n);
    }
    Ok(out)
}

fn journal_path(target: &Path) -> PathBuf {
    target.join(STATE_DIR).join(MOVE_JOURNAL)
}

/// Relative paths of every file to move: everything except lock files and the journal.
fn source_files(source: &Path) -> Vec<(String, u64)> {
    files_under(source)
        .into_iter()
        .filter_map(|(p, md)| {
            let rel = p.strip_prefix(source).ok()?;
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let skip = rel.starts_with(".ema/locks/")
                || rel == format!(".ema/{MOVE_JOURNAL}")
                || rel == ".ema/alerts.lock";
            (!skip).then_some((rel, md.len()))
        })
        .collect()
}

/// Copy one file to `dst` through a temp file in the same directory, hashing the source stream; then re-read the
/// target and compare. Keeps the modification time (the quick check relies on it). Returns the sha256.
fn copy_verified(src: &Path, dst: &Path) -> Result<String> {
    let dir = dst.parent().expect("target file has a parent");
    std::fs::create_dir_all(dir).map_err(|e| EmaError::io("cannot create directory", dir, e))?;
    let mut input = std::fs::File::open(src).map_err(|e| EmaError::io("cannot open", src, e))?;
    let src_md = input
        .metadata()
        .map_err(|e| EmaError::io("cannot stat", src, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".ema-move.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| EmaError::io("cannot create a temporary file in", dir, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; hash::READ_BUF_BYTES];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(EmaError::io("cannot read", src, e)),
        };
        h.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| EmaError::io("cannot write", tmp.path(), e))?;
    }
    let want = hex::encode(h.finalize());
    tmp.as_file()
        .sync_all()
        .map_err(|e| EmaError::io("cannot fsync", tmp.path(), e))?;
    if let Ok(m) = src_md.modified() {
        let _ = tmp.as_file().set_modified(m);
    }
    let _ = std::fs::set_permissions(tmp.path(), src_md.permissions());
    let got = hash::hash_file(tmp.path(), hash::HashKinds::SHA256)?
        .digests
        .sha256
        .unwrap_or_default();
    if got != want {
        return Err(EmaError::Integrity(format!(
            "the copy of {} at {} does not match the source (sha256 {}… vs {}…); the target disk may be failing; \
             nothing was deleted, re-run the move",
            src.display(),
            dst.display(),
            &got[..12],
            &want[..12]
        )));
    }
    tmp.persist(dst)
        .map_err(|e| EmaError::io("cannot rename into place", dst, e.error))?;
    sync_dir(dir);
    Ok(want)
}

/// Point `storage.models_directory` of the configuration file at `target` through the configuration editor
/// (validated before and after, key order kept, atomic). With `dry_run`, only checks that the edit would succeed.
/// Returns the previous value.
pub fn set_models_directory(
    config_path: &Path,
    target: &Path,
    dry_run: bool,
) -> Result<Option<String>> {
    let out = crate::engine::config::edit::edit_file(
        config_path,
        &[crate::engine::config::edit::Setting {
            path: "storage.models_directory".into(),
            value: serde_json::Value::String(target.to_string_lossy().into_owned()),
        }],
        dry_run,
    )?;
    Ok(out
        .changes
        .first()
        .and_then(|c| c.old.as_ref())
        .and_then(|v| v.as_str())
        .map(String::from))
}

/// Move a models directory: copy every file (temp + rename, hash-checked), switch the configuration, then delete
/// the source. A journal in the target's `.ema/` makes a re-run continue where an interrupted run stopped.
pub fn move_models(opts: &MoveOptions) -> Result<MoveReport> {
    let source = normalize(&opts.source)?;
    let target = normalize(&opts.target)?;
    let jpath = journal_path(&target);
    let existing: Option<MoveJournal> = std::fs::read(&jpath)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    check_move(&source, &target, existing.as_ref(), opts)?;
    let resumed = existing.is_some();
    if !source.is_dir() {
        // Interrupted after the source was deleted: only bookkeeping is left.
        if let Some(j) = existing.filter(|j| j.phase >= MovePhase::ConfigSwitched) {
            let _ = std::fs::remove_file(&jpath);
            return Ok(MoveReport {
                source,
                target,
                files: j.done.len(),
                bytes: 0,
                copied_now: 0,
                already_done: j.done.len(),
                resumed: true,
                config_updated: None,
                previous_models_directory: None,
                source_deleted: true,
                left_in_source: Vec::new(),
            });
        }
        return Err(EmaError::NotFound(format!(
            "source {} is not a directory; check the path",
            source.display()
        )));
    }
    refuse_while_downloading(&source)?;
    let files = source_files(&source);
    let mut journal = existing.unwrap_or_else(|| MoveJournal {
        source: source.clone(),
        target: target.clone(),
        started_at: now_rfc3339(),
        phase: MovePhase::Copying,
        done: BTreeMap::new(),
    });
    let total_bytes: u64 = files.iter().map(|(_, s)| *s).sum();
    let done_before: std::collections::HashSet<String> = files
        .iter()
        .filter(|(rel, size)| {
            journal.done.contains_key(rel)
                && std::fs::metadata(target.join(rel)).is_ok_and(|m| m.len() == *size)
        })
        .map(|(rel, _)| rel.clone())
        .collect();
    let needed: u64 = files
        .iter()
        .filter(|(r, _)| !done_before.contains(r))
        .map(|(_, s)| *s)
        .sum();
    ensure_space(&target, needed)?;
    write_json_atomic(&jpath, &journal)?;
    let mut copied_now = 0usize;
    let mut already_done = 0usize;
    for (rel, _) in &files {
        if done_before.contains(rel) {
            already_done += 1;
            continue;
        }
        if opts.stop_after_files.is_some_and(|n| copied_now >= n) {
            return Err(EmaError::Other(format!(
                "move interrupted after {copied_now} files ({MOVE_STOP_ENV}); nothing was lost, the source is \
                 intact; run the same `ema move-models` command again to finish"
            )));
        }
        let sha = copy_verified(&source.join(rel), &target.join(rel))?;
        journal.done.insert(rel.clone(), sha);
        write_json_atomic(&jpath, &journal)?;
        copied_now += 1;
    }
    if journal.phase < MovePhase::Verified {
        journal.phase = MovePhase::Verified;
        write_json_atomic(&jpath, &journal)?;
    }
    let mut previous = None;
    let mut config_updated = None;
    if let Some(cfg) = &opts.update_config {
        previous = set_models_directory(cfg, &target, false)?;
        config_updated = Some(cfg.clone());
    }
    if journal.phase < MovePhase::ConfigSwitched {
        journal.phase = MovePhase::ConfigSwitched;
        write_json_atomic(&jpath, &journal)?;
    }
    journal.phase = MovePhase::DeletingSource;
    write_json_atomic(&jpath, &journal)?;
    let left = delete_copied(&source, &journal)?;
    remove_empty_dirs(&source);
    let source_deleted = !source.exists();
    std::fs::remove_file(&jpath).map_err(|e| EmaError::io("cannot remove", &jpath, e))?;
    Ok(MoveReport {
        source,
        target,
        files: files.len(),
        bytes: total_bytes,
        copied_now,
        already_done,
        resumed,
        config_updated,
        previous_models_directory: previous,
        source_deleted,
        left_in_source: left,
    })
}

/// Refuse a move that cannot be done: another move unfinished at the target, one folder inside the other, a
/// configuration file to update that is missing or cannot be edited.
fn check_move(
    source: &Path,
    target: &Path,
    existing: Option<&MoveJournal>,
    opts: &MoveOptions,
) -> Result<()> {
    if let Some(j) = existing
        && j.source != source
    {
        return Err(EmaError::Config(format!(
            "{} holds an unfinished move from {}; finish it with `ema move-models --source {} --target {}` first",
            target.display(),
            j.source.display(),
            j.source.display(),
            target.display()
        )));
    }
    if source == target || target.starts_with(source) || source.starts_with(target) {
        return Err(EmaError::Config(format!(
            "cannot move {} to {}: one is inside the other; choose a target outside the source",
            source.display(),
            target.display()
        )));
    }
    if let Some(cfg) = &opts.update_config {
        if !cfg.is_file() {
            return Err(EmaError::Config(format!(
                "--update-config: configuration file {} does not exist; pass --config PATH or drop --update-config",
                cfg.display()
            )));
        }
        // Fail before copying anything if the configuration cannot be edited.
        set_models_directory(cfg, target, true)?;
    }
    Ok(())
}

/// Refuse while a download is running in the source.
fn refuse_while_downloading(source: &Path) -> Result<()> {
    let locks = source.join(STATE_DIR).join("locks");
    if let Ok(rd) = std::fs::read_dir(&locks) {
        for e in rd.flatten() {
            if lock_held(&e.path()) {
                return Err(EmaError::Config(format!(
                    "a download is running in {} ({} is locked); wait for it or cancel it, then move",
                    source.display(),
                    e.path().display()
                )));
            }
        }
    }
    Ok(())
}

/// Create the target's state folder and check the target has room for `needed` more bytes.
fn ensure_space(target: &Path, needed: u64) -> Result<()> {
    std::fs::create_dir_all(target.join(STATE_DIR))
        .map_err(|e| EmaError::io("cannot create directory", target, e))?;
    let avail = fs4::available_space(target)
        .map_err(|e| EmaError::io("cannot read free space of", target, e))?;
    if needed > avail {
        return Err(EmaError::DiskSpace(format!(
            "not enough space at {}: {:.2} GB needed, {:.2} GB free; free space there or choose another target",
            target.display(),
            needed as f64 / 1e9,
            avail as f64 / 1e9
        )));
    }
    Ok(())
}

/// Delete only what was copied and verified; anything new in the source stays. Returns what stayed.
fn delete_copied(source: &Path, journal: &MoveJournal) -> Result<Vec<String>> {
    let mut left = Vec::new();
    for (rel, _) in source_files(source) {
        if journal.done.contains_key(&rel) {
            let p = source.join(&rel);
            std::fs::remove_file(&p).map_err(|e| EmaError::io("cannot remove", &p, e))?;
        } else {
            left.push(rel);
        }
    }
    Ok(left)
}

/// Remove empty directories bottom-up (and lock files, which are not data), `dir` included if it ends up empty.
fn remove_empty_dirs(dir: &Path) {
    let locks = dir.join(STATE_DIR).join("locks");
    if let Ok(rd) = std::fs::read_dir(&locks) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_file(dir.join(STATE_DIR).join("alerts.lock"));
    fn rec(d: &Path) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rec(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(d);
    }
    rec(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_across_filesystems_when_available() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let shm = Path::new("/dev/shm");
        if !shm.is_dir()
            || std::fs::metadata(shm).unwrap().dev() == std::fs::metadata(d.path()).unwrap().dev()
        {
            eprintln!("no second filesystem here; skipped");
            return;
        }
        let other = tempfile::tempdir_in(shm).unwrap();
        let src = d.path().join("models");
        std::fs::create_dir_all(src.join("a--b")).unwrap();
        std::fs::write(src.join("a--b/w.bin"), vec![9u8; 300_000]).unwrap();
        let r = move_models(&MoveOptions {
            source: src.clone(),
            target: other.path().join("models"),
            update_config: None,
            stop_after_files: None,
        })
        .unwrap();
        assert!(r.source_deleted);
        assert_eq!(
            std::fs::read(other.path().join("models/a--b/w.bin")).unwrap(),
            vec![9u8; 300_000]
        );
    }

    #[test]
    fn move_refuses_nesting_and_resumes() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("org--m/sub")).unwrap();
        for i in 0..5 {
            std::fs::write(src.join(format!("org--m/f{i}")), vec![i as u8; 1000 + i]).unwrap();
        }
        std::fs::write(src.join("org--m/sub/deep.json"), "{}").unwrap();
        std::fs::write(src.join("org--m.metadata.json"), "{}").unwrap();
        let inside = MoveOptions {
            source: src.clone(),
            target: src.join("nested"),
            update_config: None,
            stop_after_files: None,
        };
        assert!(matches!(move_models(&inside), Err(EmaError::Config(_))));
        let cfg = d.path().join("cfg.json");
        std::fs::write(
            &cfg,
            r#"{"storage": {"models_directory": "src", "max_storage_gb": 1}, "ui": {}}"#,
        )
        .unwrap();
        let dst = d.path().join("dst");
        let mut o = MoveOptions {
            source: src.clone(),
            target: dst.clone(),
            update_config: Some(cfg.clone()),
            stop_after_files: Some(3),
        };
        assert!(move_models(&o).is_err());
        assert_eq!(source_files(&src).len(), 7, "source intact");
        assert!(journal_path(&dst).exists());
        o.stop_after_files = None;
        let r = move_models(&o).unwrap();
        assert!(r.resumed);
        assert_eq!(r.already_done, 3);
        assert_eq!(r.copied_now, 4);
        assert!(r.source_deleted && !src.exists());
        assert_eq!(
            std::fs::read(dst.join("org--m/f4")).unwrap(),
            vec![4u8; 1004]
        );
        assert!(!journal_path(&dst).exists());
        let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        assert_eq!(
            c["storage"]["models_directory"].as_str().unwrap(),
            normalize(&dst).unwrap().to_str().unwrap()
        );
        assert_eq!(c["storage"]["max_storage_gb"], 1);
    }
}
