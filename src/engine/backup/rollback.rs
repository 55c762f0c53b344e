//! Rollback: put back exactly what a backup's manifest describes (bytes, directories, symlinks, modes, mtimes) and
//! remove what was added since, after saving the state it replaces in a second backup so the rollback can be undone.
//!
//! Order of work, so that a crash at any moment can be re-run: (1) plan by comparing the live tree with the
//! manifest (files that still match are kept, proven by hash); (2) stage every file to restore beside its source,
//! hashing the bytes as they are written — a backup file that does not match its manifest stops here with nothing
//! changed; (3) move what will be replaced or removed into the pre-rollback backup and write its manifest; (4) move
//! the staged files into place and put back modes and mtimes; (5) optionally re-hash the whole tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::atomic::{sync_dir, write_json_atomic};
use crate::engine::error::{EmaError, Result};
use crate::engine::integrity::hash::{HashJob, HashKinds, default_threads, hash_files_parallel};

use super::compare::{CompareOpts, Difference, compare};
use super::manifest::{Entry, EntryKind, MANIFEST_FORMAT, MANIFEST_NAME, Manifest, Totals};
use super::tree::{Found, apply_meta, clone_hashed, fs_facts, make_symlink, scan};

/// Prefix of the staging directories a rollback makes beside each source (removed when it ends; a re-run removes
/// the leftovers of a killed one).
const STAGING_PREFIX: &str = ".ema-rollback-staging-";

#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub backup_dir: PathBuf,
    /// Only plan: list what would change.
    pub dry_run: bool,
    /// Re-hash the restored tree against the manifest afterwards.
    pub verify: bool,
    /// Where the pre-rollback backup goes (`<cache>/backups`).
    pub backups_dir: PathBuf,
}

/// One change a rollback makes (or would make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `restore` (bytes, link or directory put back), `remove` (added since the backup), `metadata` (mode or mtime).
    pub action: &'static str,
    pub path: PathBuf,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub backup_dir: PathBuf,
    pub dry_run: bool,
    /// The second backup holding the state this rollback replaced (`ema rollback --backup-dir` it to undo).
    pub saved_state: Option<PathBuf>,
    pub changes: Vec<Change>,
    /// Files found identical to the backup (hash-checked) and left in place.
    pub kept_files: u64,
    pub restored_files: u64,
    pub restored_bytes: u64,
    /// Of the restored files, those found displaced in the live tree with the backup's exact bytes (an adoption
    /// renamed them) and moved back rather than copied.
    pub moved_back_files: u64,
    pub removed: u64,
    /// With `verify`: every difference between the tree and the manifest after the rollback (empty = identical).
    pub verify: Option<Vec<Difference>>,
    /// Side-by-side: the legacy system's paths, left untouched (neither restored nor verified).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untouched: Vec<PathBuf>,
}

/// What the plan decided for each manifest entry and each live path.
struct Plan {
    changes: Vec<Change>,
    /// Manifest entries (by path) whose live state must be replaced or created.
    restore: BTreeSet<String>,
    /// Manifest entries whose mode or mtime alone differs.
    meta: BTreeSet<String>,
    /// Live paths (topmost) not in the manifest, or in the way of a restore: moved out before restoring.
    displace: Vec<Found>,
    /// The live state of every source, for the pre-rollback backup's manifest.
    live: Vec<Found>,
    /// sha256 of live files that were hashed while planning (kept candidates and everything displaced).
    live_sha: BTreeMap<String, String>,
    /// Files to restore whose exact bytes (same sha256 and size) stand elsewhere in the live tree, displaced (what an
    /// in-place adoption does: it renames files): manifest path → live path. They are moved back, not copied.
    reuse: BTreeMap<String, String>,
    kept_files: u64,
}

/// Whether `rel` is one of `tops` or lies under one of them.
/// (`rel` and each of its ancestors looked up in the set: no scan of `tops` per path.)
fn under_any(tops: &BTreeSet<&str>, rel: &str) -> bool {
    tops.contains(rel)
        || rel
            .match_indices('/')
            .any(|(i, _)| tops.contains(&rel[..i]))
}

/// Roll back to the state `req.backup_dir` describes.
pub fn rollback(req: &RollbackRequest) -> Result<RollbackReport> {
    let full = Manifest::load(&req.backup_dir)?;
    let dir = req.backup_dir.clone();
    prove_backup_shape(&dir, &full)?;
    // Side-by-side: what the running legacy system owns is left exactly as it is now.
    let (m, untouched) = full.without_shared();
    remove_stale_staging(&m);
    let plan = make_plan(&m)?;
    let mut report = RollbackReport {
        backup_dir: dir.clone(),
        dry_run: req.dry_run,
        saved_state: None,
        changes: plan.changes.clone(),
        kept_files: plan.kept_files,
        restored_files: 0,
        restored_bytes: 0,
        moved_back_files: 0,
        removed: plan.displace.len() as u64,
        verify: None,
        untouched,
    };
    if req.dry_run {
        // What a real run would refuse while staging, a dry run refuses too: the copies it would restore are hashed.
        prove_restore_contents(&dir, &m, &plan)?;
        return Ok(report);
    }
    if !plan.changes.is_empty() {
        let staged = stage(&dir, &m, &plan)?;
        let saved = save_state(&m, &dir, &plan, &req.backups_dir)?;
        report.saved_state = Some(saved.clone());
        report.moved_back_files = plan.reuse.len() as u64;
        let (files, bytes) = apply(&m, &plan, staged, &saved)?;
        report.restored_files = files;
        report.restored_bytes = bytes;
        remove_stale_staging(&m);
    }
    if req.verify {
        report.verify = Some(verify_restored(&m)?);
    }
    Ok(report)
}

/// Compare the tree at the manifest's original paths with the manifest: hashes, modes and file mtimes included;
/// anything at the path of a source the manifest marks absent is a difference too.
pub fn verify_restored(m: &Manifest) -> Result<Vec<Difference>> {
    let mut diffs = compare(
        m,
        &|e| m.original_path(e),
        CompareOpts {
            hash: true,
            mode: true,
            mtime: true,
        },
    )?;
    for s in m.sources.iter().filter(|s| s.absent) {
        if std::fs::symlink_metadata(&s.original).is_ok() {
            diffs.push(Difference {
                path: s.name.clone(),
                at: s.original.clone(),
                what: "extra",
                detail: "did not exist when the backup was taken".into(),
            });
        }
    }
    Ok(diffs)
}

/// Refuse (exit 2) a backup whose files disagree with its manifest in kind, size or link target. Content is proven
/// while staging (every byte restored is hashed against the manifest before anything changes).
fn prove_backup_shape(dir: &Path, m: &Manifest) -> Result<()> {
    let diffs = compare(
        m,
        &|e| m.stored_path(dir, e),
        CompareOpts {
            hash: false,
            mode: false,
            mtime: false,
        },
    )?;
    if diffs.is_empty() {
        return Ok(());
    }
    Err(EmaError::Config(format!(
        "the backup {} disagrees with its own manifest ({} difference(s), first: {} {} — {}); it was changed after \
         it was taken and cannot be trusted for a rollback. Nothing was changed.",
        dir.display(),
        diffs.len(),
        diffs[0].what,
        diffs[0].path,
        diffs[0].detail
    )))
}

/// Read-only: hash the backup's copy of every file `plan` would restore against the manifest (the check staging
/// makes while copying).
fn prove_restore_contents(dir: &Path, m: &Manifest, plan: &Plan) -> Result<()> {
    let entries: Vec<&Entry> = m
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File && plan.restore.contains(&e.path))
        .collect();
    let jobs: Vec<HashJob> = entries
        .iter()
        .map(|e| HashJob {
            path: m.stored_path(dir, e),
            kinds: HashKinds::SHA256,
            size_hint: e.size,
        })
        .collect();
    for (e, r) in entries
        .iter()
        .zip(hash_files_parallel(&jobs, default_threads(), |_, _| {}))
    {
        let sha = r?.digests.sha256;
        if sha != e.sha256 {
            return Err(EmaError::Config(format!(
                "the backup's copy of {} ({}) does not match its manifest (sha256 {}, expected {}); the backup was \
                 damaged or edited and cannot be trusted. Nothing was changed.",
                e.path,
                m.stored_path(dir, e).display(),
                sha.unwrap_or_default(),
                e.sha256.as_deref().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

fn staging_dir(m: &Manifest, name: &str) -> PathBuf {
    let src = m.sources.iter().find(|s| s.name == name).expect("source");
    let parent = src.original.parent().unwrap_or(Path::new("/"));
    parent.join(format!("{STAGING_PREFIX}{name}"))
}

fn remove_stale_staging(m: &Manifest) {
    for s in &m.sources {
        let _ = std::fs::remove_dir_all(staging_dir(m, &s.name));
    }
}

fn make_plan(m: &Manifest) -> Result<Plan> {
    let mut live: Vec<Found> = Vec::new();
    // Everything at the sources' paths now (a source the backup marks absent is all "added since").
    for s in &m.sources {
        if std::fs::symlink_metadata(&s.original).is_ok() {
            live.extend(scan(&s.original, &s.name)?);
        }
    }
    let live_by_path: BTreeMap<&str, &Found> = live.iter().map(|f| (f.rel.as_str(), f)).collect();
    let listed: BTreeMap<&str, &Entry> = m.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut plan = Plan {
        changes: Vec::new(),
        restore: BTreeSet::new(),
        meta: BTreeSet::new(),
        displace: Vec::new(),
        live: Vec::new(),
        live_sha: BTreeMap::new(),
        reuse: BTreeMap::new(),
        kept_files: 0,
    };
    let mut candidates: Vec<(&Entry, &Found)> = Vec::new();
    for e in &m.entries {
        let why = match live_by_path.get(e.path.as_str()) {
            None => Some(format!("{} is missing", e.kind.as_str())),
            Some(f) if f.kind != e.kind => Some(format!(
                "a {} stands where a {} was",
                f.kind.as_str(),
                e.kind.as_str()
            )),
            Some(f) if e.kind == EntryKind::Symlink && f.target != e.target => Some(format!(
                "points to {:?} instead of {:?}",
                f.target.clone().unwrap_or_default(),
                e.target.clone().unwrap_or_default()
            )),
            Some(f) if e.kind == EntryKind::File && f.size != e.size => {
                Some(format!("{} bytes instead of {}", f.size, e.size))
            }
            Some(f) => {
                if e.kind == EntryKind::File {
                    candidates.push((e, f));
                } else {
                    note_meta(&mut plan, m, e, f);
                }
                None
            }
        };
        if let Some(why) = why {
            plan.restore.insert(e.path.clone());
            plan.changes.push(Change {
                action: "restore",
                path: m.original_path(e),
                why,
            });
        }
    }
    // Files of the right size: their content decides (hashed in parallel, like verify-all-models).
    let jobs: Vec<HashJob> = candidates
        .iter()
        .map(|(e, f)| HashJob {
            path: f.abs.clone(),
            kinds: HashKinds::SHA256,
            size_hint: e.size,
        })
        .collect();
    let results = hash_files_parallel(&jobs, default_threads(), |_, _| {});
    for ((e, f), r) in candidates.into_iter().zip(results) {
        let got = r?.digests.sha256.unwrap_or_default();
        plan.live_sha.insert(f.rel.clone(), got.clone());
        if Some(&got) == e.sha256.as_ref() {
            plan.kept_files += 1;
            note_meta(&mut plan, m, e, f);
        } else {
            plan.restore.insert(e.path.clone());
            plan.changes.push(Change {
                action: "restore",
                path: m.original_path(e),
                why: "content differs from the backup (sha256)".into(),
            });
        }
    }
    // Live paths to move out: not in the manifest, or standing where a restore goes with another kind or content.
    // Only the topmost of a subtree is listed; its children move with it.
    let mut moved_dirs: Vec<String> = Vec::new();
    for f in &live {
        if moved_dirs
            .iter()
            .any(|d| f.rel.starts_with(d.as_str()) && f.rel.as_bytes().get(d.len()) == Some(&b'/'))
        {
            continue;
        }
        let in_way = match listed.get(f.rel.as_str()) {
            None => {
                plan.changes.push(Change {
                    action: "remove",
                    path: f.abs.clone(),
                    why: format!("{} added since the backup", f.kind.as_str()),
                });
                true
            }
            Some(e) => {
                plan.restore.contains(&e.path)
                    && !(e.kind == EntryKind::Directory && f.kind == e.kind)
            }
        };
        if in_way {
            if f.kind == EntryKind::Directory {
                moved_dirs.push(f.rel.clone());
            }
            plan.displace.push(f.clone());
        }
    }
    plan.changes.sort_by(|a, b| a.path.cmp(&b.path));
    find_reusable(m, &mut plan, &live)?;
    plan.live = live;
    Ok(plan)
}

/// Hash every displaced file (the pre-rollback backup records it) and pair files to restore with displaced files of
/// the same sha256 and size: those are moved back instead of copied from the backup.
fn find_reusable(m: &Manifest, plan: &mut Plan, live: &[Found]) -> Result<()> {
    let tops: BTreeSet<&str> = plan.displace.iter().map(|f| f.rel.as_str()).collect();
    let moving: Vec<&Found> = live
        .iter()
        .filter(|f| {
            f.kind == EntryKind::File
                && under_any(&tops, &f.rel)
                && !plan.live_sha.contains_key(&f.rel)
        })
        .collect();
    let jobs: Vec<HashJob> = moving
        .iter()
        .map(|f| HashJob {
            path: f.abs.clone(),
            kinds: HashKinds::SHA256,
            size_hint: f.size,
        })
        .collect();
    for (f, r) in moving
        .iter()
        .zip(hash_files_parallel(&jobs, default_threads(), |_, _| {}))
    {
        plan.live_sha
            .insert(f.rel.clone(), r?.digests.sha256.unwrap_or_default());
    }
    let mut by_content: BTreeMap<(&str, u64), Vec<&str>> = BTreeMap::new();
    for f in live
        .iter()
        .filter(|f| f.kind == EntryKind::File && under_any(&tops, &f.rel))
    {
        if let Some(sha) = plan.live_sha.get(&f.rel) {
            by_content
                .entry((sha.as_str(), f.size))
                .or_default()
                .push(f.rel.as_str());
        }
    }
    let mut reuse = BTreeMap::new();
    // Empty files are recreated: pairing them would only move unrelated empty files about.
    for e in m
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File && e.size > 0 && plan.restore.contains(&e.path))
    {
        let Some(sha) = e.sha256.as_deref() else {
            continue;
        };
        if let Some(rels) = by_content.get_mut(&(sha, e.size))
            && let Some(rel) = rels.pop()
        {
            reuse.insert(e.path.clone(), rel.to_string());
        }
    }
    // Say where each moved-back file comes from: original path → the displaced file's current path.
    let listed: BTreeMap<&str, &Entry> = m.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let live_abs: BTreeMap<&str, &Path> = live
        .iter()
        .map(|f| (f.rel.as_str(), f.abs.as_path()))
        .collect();
    let from_where: BTreeMap<PathBuf, &Path> = reuse
        .iter()
        .map(|(entry, live_rel)| {
            (
                m.original_path(listed[entry.as_str()]),
                live_abs[live_rel.as_str()],
            )
        })
        .collect();
    for c in plan.changes.iter_mut().filter(|c| c.action == "restore") {
        if let Some(abs) = from_where.get(&c.path) {
            c.why = format!(
                "{}; the same bytes are at {}: moved back",
                c.why,
                abs.display()
            );
        }
    }
    plan.reuse = reuse;
    Ok(())
}

fn note_meta(plan: &mut Plan, m: &Manifest, e: &Entry, f: &Found) {
    let mut why = Vec::new();
    if f.mode != e.mode {
        why.push(format!("mode {:o} → {:o}", f.mode, e.mode));
    }
    if e.kind == EntryKind::File && f.mtime_ns != e.mtime_ns {
        why.push("modification time".to_string());
    }
    if !why.is_empty() {
        plan.meta.insert(e.path.clone());
        plan.changes.push(Change {
            action: "metadata",
            path: m.original_path(e),
            why: why.join(", "),
        });
    }
}

/// Copy every file to restore into its source's staging directory, hashing the bytes written; refuse the whole
/// rollback (exit 2, staging removed, nothing changed) when one does not match the manifest.
fn stage(dir: &Path, m: &Manifest, plan: &Plan) -> Result<BTreeMap<String, PathBuf>> {
    let todo: Vec<(usize, &Entry)> = m
        .entries
        .iter()
        .filter(|e| {
            e.kind == EntryKind::File
                && plan.restore.contains(&e.path)
                && !plan.reuse.contains_key(&e.path)
        })
        .enumerate()
        .collect();
    // Files are staged on as many threads as hashing uses: each copies and hashes one file at a time.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let staged = std::sync::Mutex::new(BTreeMap::new());
    let first_error = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..default_threads().min(todo.len()).max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((i, e)) = todo.get(k) else { break };
                    if first_error.lock().map(|g| g.is_some()).unwrap_or(true) {
                        break;
                    }
                    match stage_one(dir, m, *i, e) {
                        Ok(to) => {
                            if let Ok(mut g) = staged.lock() {
                                g.insert(e.path.clone(), to);
                            }
                        }
                        Err(err) => {
                            if let Ok(mut g) = first_error.lock() {
                                g.get_or_insert(err);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        remove_stale_staging(m);
        return Err(e);
    }
    Ok(staged.into_inner().unwrap_or_default())
}

/// Copy one file from the backup into its source's staging directory, hashing the bytes written; a mismatch with
/// the manifest refuses the whole rollback.
fn stage_one(dir: &Path, m: &Manifest, i: usize, e: &Entry) -> Result<PathBuf> {
    let name = e.path.split('/').next().unwrap_or_default();
    let sdir = staging_dir(m, name);
    std::fs::create_dir_all(&sdir).map_err(|e| EmaError::io("cannot create", &sdir, e))?;
    let to = sdir.join(format!("{i}"));
    let from = m.stored_path(dir, e);
    let reflink = fs_facts(&sdir).map(|f| f.reflink_capable).unwrap_or(false);
    let (sha, _) = clone_hashed(&from, &to, reflink)?;
    if Some(&sha) != e.sha256.as_ref() {
        return Err(EmaError::Config(format!(
            "the backup's copy of {} ({}) does not match its manifest (sha256 {sha}, expected {}); the backup \
             was damaged or edited and cannot be trusted. Nothing was changed.",
            e.path,
            from.display(),
            e.sha256.as_deref().unwrap_or_default()
        )));
    }
    apply_meta(&to, e.kind, e.mode, e.mtime_ns)?;
    Ok(to)
}

/// Move what the rollback replaces or removes into a new backup, and write its manifest: the full live state of
/// every source, with untouched files pointing at the first backup's identical copy (`same_as`).
fn save_state(m: &Manifest, dir: &Path, plan: &Plan, backups_dir: &Path) -> Result<PathBuf> {
    let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S_%f");
    let saved = backups_dir.join(format!("pre-rollback-{stamp}"));
    std::fs::create_dir_all(&saved).map_err(|e| EmaError::io("cannot create", &saved, e))?;
    let displaced: BTreeSet<&str> = plan.displace.iter().map(|f| f.rel.as_str()).collect();
    let listed: BTreeMap<&str, &Entry> = m.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let under_displaced = |rel: &str| under_any(&displaced, rel);
    // A displaced file the rollback moves back: its bytes are the first backup's copy of that entry (same sha256).
    let moved_back: BTreeMap<&str, &Entry> = plan
        .reuse
        .iter()
        .map(|(entry, live)| (live.as_str(), listed[entry.as_str()]))
        .collect();
    let mut entries = Vec::new();
    let mut totals = Totals::default();
    for f in &plan.live {
        let moving = under_displaced(&f.rel);
        let mut sha256 = None;
        let mut same_as = None;
        if f.kind == EntryKind::File {
            if let Some(e) = moved_back.get(f.rel.as_str()) {
                sha256 = e.sha256.clone();
                same_as = Some(m.stored_path(dir, e));
            } else if moving {
                sha256 = Some(match plan.live_sha.get(&f.rel) {
                    Some(s) => s.clone(),
                    None => crate::engine::integrity::hash::hash_file(&f.abs, HashKinds::SHA256)?
                        .digests
                        .sha256
                        .unwrap_or_default(),
                });
            } else {
                // Left in place by the rollback, proven identical to the first backup's copy: referenced, not copied.
                let e = listed[f.rel.as_str()];
                sha256 = e.sha256.clone();
                same_as = Some(m.stored_path(dir, e));
            }
            totals.files += 1;
            totals.bytes += f.size;
        } else if !moving {
            // Kept directories and links are recreated in the saved backup (no data), so it is complete on its own.
            let to = saved.join(&f.rel);
            if f.kind == EntryKind::Directory {
                std::fs::create_dir_all(&to).map_err(|e| EmaError::io("cannot create", &to, e))?;
            } else {
                if let Some(p) = to.parent() {
                    std::fs::create_dir_all(p).map_err(|e| EmaError::io("cannot create", p, e))?;
                }
                make_symlink(f.target.as_deref().unwrap_or_default(), &to)?;
            }
        }
        entries.push(f.entry(sha256, same_as));
    }
    // Move the displaced subtrees (topmost first) into the saved backup, creating parents as needed.
    for f in &plan.displace {
        let to = saved.join(&f.rel);
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).map_err(|e| EmaError::io("cannot create", p, e))?;
        }
        move_path(f, &to)?;
        totals.copied_bytes += f.size;
    }
    // A source with nothing at its path now is recorded as absent: undoing this rollback removes it again.
    let mut sources = m.sources.clone();
    for s in &mut sources {
        match plan.live.iter().find(|f| f.rel == s.name) {
            Some(f) => s.kind = f.kind,
            None => s.absent = true,
        }
    }
    let saved_manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        created_at: crate::engine::store::now_rfc3339(),
        ema_version: env!("CARGO_PKG_VERSION").into(),
        root: m.root.clone(),
        sources,
        entries,
        totals,
    };
    write_json_atomic(&saved.join(MANIFEST_NAME), &saved_manifest)?;
    sync_dir(&saved);
    Ok(saved)
}

/// Rename `f` to `to`; across filesystems, copy (hashing) and then remove the original.
fn move_path(f: &Found, to: &Path) -> Result<()> {
    match std::fs::rename(&f.abs, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_subtree(f, to)?;
            if f.kind == EntryKind::Directory {
                std::fs::remove_dir_all(&f.abs)
            } else {
                std::fs::remove_file(&f.abs)
            }
            .map_err(|e| EmaError::io("cannot remove", &f.abs, e))
        }
        Err(e) => Err(EmaError::io("cannot move", &f.abs, e)),
    }
}

fn copy_subtree(f: &Found, to: &Path) -> Result<()> {
    for g in scan(&f.abs, &f.rel)? {
        let dst = to.join(
            g.rel
                .strip_prefix(&f.rel)
                .unwrap_or("")
                .trim_start_matches('/'),
        );
        match g.kind {
            EntryKind::Directory => {
                std::fs::create_dir_all(&dst).map_err(|e| EmaError::io("cannot create", &dst, e))?
            }
            EntryKind::Symlink => make_symlink(g.target.as_deref().unwrap_or_default(), &dst)?,
            EntryKind::File => {
                clone_hashed(&g.abs, &dst, false)?;
                apply_meta(&dst, g.kind, g.mode, g.mtime_ns)?;
            }
        }
    }
    Ok(())
}

/// Put every restored entry in place (manifest order: parents before children), then modes and mtimes, directories
/// deepest first.
fn apply(
    m: &Manifest,
    plan: &Plan,
    staged: BTreeMap<String, PathBuf>,
    saved: &Path,
) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for e in &m.entries {
        if !plan.restore.contains(&e.path) {
            continue;
        }
        let at = m.original_path(e);
        match e.kind {
            EntryKind::Directory => match std::fs::create_dir(&at) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && at.is_dir() => {}
                Err(err) => return Err(EmaError::io("cannot create", &at, err)),
            },
            EntryKind::Symlink => make_symlink(e.target.as_deref().unwrap_or_default(), &at)?,
            EntryKind::File => {
                match plan.reuse.get(&e.path) {
                    // Moved into the saved backup with its subtree a moment ago; its hash matched this entry's.
                    Some(live) => move_back(&saved.join(live), &at, e)?,
                    None => std::fs::rename(&staged[&e.path], &at)
                        .map_err(|err| EmaError::io("cannot move into place", &at, err))?,
                }
                files += 1;
                bytes += e.size;
            }
        }
    }
    for e in &m.entries {
        if e.kind != EntryKind::Directory && plan.meta.contains(&e.path) {
            apply_meta(&m.original_path(e), e.kind, e.mode, e.mtime_ns)?;
        }
    }
    for e in m
        .entries
        .iter()
        .rev()
        .filter(|e| e.kind == EntryKind::Directory)
    {
        let at = m.original_path(e);
        sync_dir(&at);
        apply_meta(&at, e.kind, e.mode, e.mtime_ns)?;
    }
    Ok((files, bytes))
}

/// Move a displaced file back to its place with the entry's mode and mtime; across filesystems, copy it (hashing,
/// checked against the entry) and remove the saved copy.
fn move_back(from: &Path, at: &Path, e: &Entry) -> Result<()> {
    match std::fs::rename(from, at) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EXDEV) => {
            let (sha, _) = clone_hashed(from, at, false)?;
            if Some(&sha) != e.sha256.as_ref() {
                let _ = std::fs::remove_file(at);
                return Err(EmaError::Integrity(format!(
                    "{} changed while the rollback ran (sha256 {sha}); run the rollback again",
                    from.display()
                )));
            }
            let _ = std::fs::remove_file(from);
        }
        Err(err) => return Err(EmaError::io("cannot move back into place", at, err)),
    }
    apply_meta(at, e.kind, e.mode, e.mtime_ns)
}
