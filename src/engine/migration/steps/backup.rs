//! The backup steps: "Current system backed up" (`ema backup` of the planned install), "Rollback procedures
//! tested" (the backup restored into a scratch directory and verified against its manifest, entry by entry) and
//! "Rollback procedures verified" (the backup's manifest checked against the backup's own files, hashes included).

use std::path::Path;

use crate::engine::backup::compare::compare;
use crate::engine::backup::manifest::{Entry, EntryKind, Manifest};
use crate::engine::backup::tree::{CopyMethod, apply_meta, clone_hashed, fs_facts, make_symlink};
use crate::engine::backup::{BackupRequest, CompareOpts, take_backup};
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{EmaError, Result};
use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// Scratch directories of the rollback test start with this (beside the backups; leftovers are removed).
const SCRATCH_PREFIX: &str = ".rollback-test-";

/// `ema backup` of the planned root (plus ema's own configuration file, when one is in force).
pub(super) fn backup(ctx: &MigrationContext) -> Result<StepOutcome> {
    let mut extra = Vec::new();
    if let Some(p) = &ctx.loaded.path {
        extra.push((
            "enhanced_model_config.json".to_string(),
            p.clone(),
            "ema configuration".to_string(),
        ));
    }
    if let (Some(store), Some(install)) = (&ctx.plan.store, &ctx.plan.install_dir) {
        // Side-by-side: ema's store and configuration folder are backed up (even while empty) so that a rollback
        // removes what the migration writes there; the legacy system's paths are marked shared and a rollback
        // leaves them alone.
        for (name, dir, role) in [
            ("ema_store", store.clone(), "ema's store (side-by-side)"),
            (
                "ema_config",
                install.join("config"),
                "ema's configuration folder (side-by-side)",
            ),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| EmaError::io("cannot create", &dir, e))?;
            extra.push((name.to_string(), dir, role.to_string()));
        }
    }
    let req = BackupRequest {
        root: ctx.plan.root.clone(),
        dest: None,
        backups_dir: ctx.plan.backups_dir.clone(),
        extra,
        side_by_side: ctx.plan.store.is_some(),
    };
    let r = take_backup(&req, &|_| {})?;
    let t = &r.totals;
    let mut log: Vec<String> = r
        .sources
        .iter()
        .map(|s| {
            format!(
                "{} ← {} ({}{})",
                s.name,
                s.original.display(),
                s.role,
                if s.shared {
                    "; the running legacy system's: a rollback leaves it untouched"
                } else {
                    ""
                }
            )
        })
        .collect();
    log.push(format!(
        "{} files, {} directories, {} symlinks, {} ({} copied, {} reflinked)",
        t.files,
        t.directories,
        t.symlinks,
        human_bytes(t.bytes),
        human_bytes(t.copied_bytes),
        human_bytes(t.reflinked_bytes)
    ));
    log.push(format!("manifest: {}", r.manifest.display()));
    let mut o = StepOutcome::pass(
        format!(
            "backed up {} ({} files, {}) to {}",
            ctx.plan.root.display(),
            t.files,
            human_bytes(t.bytes),
            r.backup_dir.display()
        ),
        log,
    );
    o.backup = Some(r.backup_dir);
    Ok(o)
}

fn recorded_backup(ctx: &MigrationContext) -> Result<&Path> {
    ctx.last_backup.as_deref().ok_or_else(|| {
        EmaError::Config(
            "no backup recorded: run \"Current system backed up\" (`ema migrate run backup`) first"
                .into(),
        )
    })
}

/// Restore the backup into a scratch directory and verify every entry against the manifest.
pub(super) fn rollback_tested(ctx: &MigrationContext) -> Result<StepOutcome> {
    let b = recorded_backup(ctx)?;
    let m = Manifest::load(b)?;
    let parent = b.parent().unwrap_or(Path::new("/")).to_path_buf();
    remove_leftovers(&parent);
    let scratch = parent.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
    let facts = fs_facts(&parent)?;
    let bytes: u64 = m
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.size)
        .sum();
    if !facts.reflink_capable && bytes > facts.free_bytes {
        return Err(EmaError::DiskSpace(format!(
            "restoring the backup into a scratch directory needs {} at {} but {} is free; free some space",
            human_bytes(bytes),
            parent.display(),
            human_bytes(facts.free_bytes)
        )));
    }
    std::fs::create_dir(&scratch).map_err(|e| EmaError::io("cannot create", &scratch, e))?;
    let r = restore_and_compare(b, &m, &scratch);
    let _ = make_writable(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let (restored, diffs) = r?;
    let mut log = vec![format!(
        "restored {} files ({}: {} reflinked, {} copied), {} directories, {} symlinks into {} (removed afterwards)",
        restored.files,
        human_bytes(bytes),
        restored.reflinked,
        restored.copied,
        restored.dirs,
        restored.links,
        scratch.display()
    )];
    log.extend(diffs.iter().map(|d| format!("{} {}: {}", d.0, d.1, d.2)));
    Ok(if diffs.is_empty() {
        StepOutcome::pass(
            format!(
                "the backup restores: all {} entries match the manifest (content sha256, type, mode, mtime, link \
                 target)",
                m.entries.len()
            ),
            log,
        )
    } else {
        StepOutcome::fail(
            format!(
                "the restored copy differs from the manifest in {} entr{} (first: {} {}); this backup cannot be \
                 trusted: take a new one",
                diffs.len(),
                if diffs.len() == 1 { "y" } else { "ies" },
                diffs[0].0,
                diffs[0].1
            ),
            log,
        )
    })
}

/// A difference found: (what, entry path, detail).
type Found = (String, String, String);

#[derive(Default)]
struct Restored {
    files: u64,
    dirs: u64,
    links: u64,
    reflinked: u64,
    copied: u64,
}

/// Put every entry of `m` under `scratch` as a rollback would (bytes by reflink or copy, hashed while written; links
/// as recorded; modes and mtimes), then compare the scratch tree with the manifest. Returns (what, path, detail).
fn restore_and_compare(b: &Path, m: &Manifest, scratch: &Path) -> Result<(Restored, Vec<Found>)> {
    let mut entries: Vec<&Entry> = m.entries.iter().collect();
    entries.sort_by(|a, c| a.path.cmp(&c.path));
    let mut done = Restored::default();
    let mut diffs = Vec::new();
    for e in &entries {
        let to = scratch.join(&e.path);
        match e.kind {
            EntryKind::Directory => {
                std::fs::create_dir_all(&to)
                    .map_err(|er| EmaError::io("cannot create", &to, er))?;
                done.dirs += 1;
            }
            EntryKind::Symlink => {
                make_symlink(e.target.as_deref().unwrap_or_default(), &to)?;
                done.links += 1;
            }
            EntryKind::File => {
                if let Some(p) = to.parent() {
                    std::fs::create_dir_all(p)
                        .map_err(|er| EmaError::io("cannot create", p, er))?;
                }
                let (sha, how) = clone_hashed(&m.stored_path(b, e), &to, true)?;
                match how {
                    CopyMethod::Reflink => done.reflinked += 1,
                    CopyMethod::Copy => done.copied += 1,
                }
                if Some(&sha) != e.sha256.as_ref() {
                    diffs.push((
                        "content".into(),
                        e.path.clone(),
                        format!(
                            "restored bytes hash to {sha}, the manifest says {}",
                            e.sha256.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                apply_meta(&to, e.kind, e.mode, e.mtime_ns)?;
                done.files += 1;
            }
        }
    }
    // Directories last, deepest first: creating their children changed their mtimes.
    for e in entries
        .iter()
        .rev()
        .filter(|e| e.kind == EntryKind::Directory)
    {
        apply_meta(&scratch.join(&e.path), e.kind, e.mode, e.mtime_ns)?;
    }
    let found = compare(
        m,
        &|e| scratch.join(&e.path),
        CompareOpts {
            hash: false, // every byte was hashed as it was written, above
            mode: true,
            mtime: true,
        },
    )?;
    diffs.extend(
        found
            .into_iter()
            .map(|d| (d.what.to_string(), d.path, d.detail)),
    );
    Ok((done, diffs))
}

fn remove_leftovers(parent: &Path) {
    if let Ok(rd) = std::fs::read_dir(parent) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
                let _ = make_writable(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Give every directory under `p` owner rwx, so a tree restored with read-only directories can be removed.
fn make_writable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(p)?;
    if md.is_dir() {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
        for e in std::fs::read_dir(p)?.flatten() {
            make_writable(&e.path())?;
        }
    }
    Ok(())
}

/// The backup's manifest (shape) against the backup's own files: type, size, link target, mode, mtime, sha256.
pub(super) fn rollback_verified(ctx: &MigrationContext) -> Result<StepOutcome> {
    let b = recorded_backup(ctx)?;
    let m = Manifest::load(b)?;
    let diffs = compare(
        &m,
        &|e| m.stored_path(b, e),
        CompareOpts {
            hash: true,
            mode: true,
            mtime: true,
        },
    )?;
    let files = m
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .count();
    let log: Vec<String> = diffs
        .iter()
        .map(|d| format!("{} {}: {}", d.what, d.path, d.detail))
        .collect();
    Ok(if diffs.is_empty() {
        StepOutcome::pass(
            format!(
                "backup {} intact: {} entries as its manifest says, {files} files re-hashed; `ema rollback \
                 --backup-dir {} --verify-rollback` restores it",
                b.display(),
                m.entries.len(),
                b.display()
            ),
            log,
        )
    } else {
        StepOutcome::fail(
            format!(
                "backup {} disagrees with its manifest in {} place(s) (first: {} {}); it cannot be trusted for a \
                 rollback",
                b.display(),
                diffs.len(),
                diffs[0].what,
                diffs[0].path
            ),
            log,
        )
    })
}
