//! `ema backup` and `ema rollback`: the spec's backup script made provable, and the automatic rollback, with
//! progress on stderr and one JSON document with `--json`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::engine::backup::{self, BackupRequest, RollbackRequest};
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{Result, exit};

use super::Ctx;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 backed up (manifest written last), 2 bad input (--root is not a directory, --dest \
is a file, not empty or inside what is backed up; nothing written), 5 nothing to back up in --root, 6 not enough \
free space (required, free and path named), 1 any other failure."
)]
pub struct BackupArgs {
    /// The legacy install directory (holding models/, config.json, config/, logs/, models.db).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,
    /// Where to write the backup (must not exist or be empty). Default:
    /// <cache>/backups/pre-migration-YYYYmmdd_HHMMSS.
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Side-by-side migration: the legacy system keeps running, so what --root holds is marked shared (a rollback
    /// leaves it untouched) and ema's own store is backed up too. Also on with `storage.shared_storage: true`.
    #[arg(long)]
    pub side_by_side: bool,
    /// Side-by-side: ema's own store (default: storage.models_directory). Implies --side-by-side.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 restored (and verified), 2 the backup is missing, malformed or disagrees \
with its manifest (nothing changed), 3 --verify-rollback found differences, 1 any other failure."
)]
pub struct RollbackArgs {
    /// A backup written by `ema backup` (or the pre-rollback backup a rollback saved, to undo it).
    #[arg(long, value_name = "DIR")]
    pub backup_dir: PathBuf,
    /// Re-hash the restored tree against the manifest and list every difference (exit 3 if any).
    #[arg(long)]
    pub verify_rollback: bool,
    /// List what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn backup_cmd(a: BackupArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let mut extra = Vec::new();
    if let Some(p) = &loaded.path {
        extra.push((
            "enhanced_model_config.json".to_string(),
            p.clone(),
            "ema configuration".to_string(),
        ));
    }
    let side = super::migrate::side_store(a.side_by_side, a.store.clone(), &loaded);
    if let Some(store) = &side {
        // Backed up even while empty, so that a rollback removes what the adoption records there.
        std::fs::create_dir_all(store)
            .map_err(|e| crate::engine::EmaError::io("cannot create", store, e))?;
        extra.push((
            "ema_store".to_string(),
            store.clone(),
            "ema's store (side-by-side)".to_string(),
        ));
    }
    let req = BackupRequest {
        root: a.root,
        dest: a.dest,
        backups_dir: loaded.config.storage.cache_dir().join("backups"),
        extra,
        side_by_side: side.is_some(),
    };
    let bar = bar(ctx);
    let started = Instant::now();
    let report = backup::take_backup(&req, &|p| {
        if let Some(b) = &bar {
            b.set_length(p.bytes_total);
            b.set_position(p.bytes_done);
            b.set_message(p.path.clone());
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = report?;
    if ctx.out.json {
        ctx.out.json(&report);
        return Ok(exit::OK);
    }
    println!("backup: {}", report.backup_dir.display());
    for s in &report.sources {
        println!(
            "  {:<28} ← {} ({}{})",
            s.name,
            s.original.display(),
            s.role,
            if s.shared {
                "; the running legacy system's: a rollback leaves it untouched"
            } else {
                ""
            }
        );
    }
    let t = &report.totals;
    println!(
        "{} files, {} directories, {} symlinks, {} ({} copied, {} reflinked) in {:.1} s",
        t.files,
        t.directories,
        t.symlinks,
        human_bytes(t.bytes),
        human_bytes(t.copied_bytes),
        human_bytes(t.reflinked_bytes),
        started.elapsed().as_secs_f64()
    );
    if t.reflinked_bytes > 0 {
        println!(
            "note: reflinked files share their disk blocks with the originals (copy-on-write): they protect against \
             changes, not against losing the disk"
        );
    }
    println!(
        "manifest: {} (type, mode, mtime, size, sha256 and link target of every entry)",
        report.manifest.display()
    );
    println!(
        "undo a migration with: ema rollback --backup-dir {} --verify-rollback",
        report.backup_dir.display()
    );
    Ok(exit::OK)
}

pub fn rollback_cmd(a: RollbackArgs, ctx: &Ctx) -> Result<i32> {
    let backup_dir = std::path::absolute(&a.backup_dir).unwrap_or(a.backup_dir);
    let req = RollbackRequest {
        backups_dir: backup_dir
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("/")),
        backup_dir,
        dry_run: a.dry_run,
        verify: a.verify_rollback,
    };
    let report = backup::rollback(&req)?;
    let differences = report.verify.as_ref().map(|v| v.len()).unwrap_or(0);
    let code = if differences > 0 {
        exit::INTEGRITY
    } else {
        exit::OK
    };
    if ctx.out.json {
        ctx.out.json(&report);
        return Ok(code);
    }
    let verb = if report.dry_run { "would" } else { "did" };
    if report.changes.is_empty() {
        println!(
            "nothing to change: the tree already matches {} ({} files checked by hash)",
            report.backup_dir.display(),
            report.kept_files
        );
    } else {
        println!("{} changes ({verb}):", report.changes.len());
        for c in &report.changes {
            println!("  {:<8} {} — {}", c.action, c.path.display(), c.why);
        }
    }
    if let Some(s) = &report.saved_state {
        println!(
            "restored {} files ({}), removed {} added entries, kept {} identical files",
            report.restored_files,
            human_bytes(report.restored_bytes),
            report.removed,
            report.kept_files
        );
        println!(
            "the state before this rollback is saved in {} (undo with: ema rollback --backup-dir {})",
            s.display(),
            s.display()
        );
    }
    for p in &report.untouched {
        println!(
            "untouched (side-by-side: the legacy system's): {}",
            p.display()
        );
    }
    if let Some(v) = &report.verify {
        if v.is_empty() {
            println!(
                "verified: every entry matches the manifest (content, type, mode, mtime, link target)"
            );
        } else {
            println!("verification found {} difference(s):", v.len());
            for d in v {
                println!("  {:<8} {} — {}", d.what, d.at.display(), d.detail);
            }
        }
    }
    Ok(code)
}

fn bar(ctx: &Ctx) -> Option<indicatif::ProgressBar> {
    (!ctx.out.json && ctx.out.progress).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "backing up [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    })
}
