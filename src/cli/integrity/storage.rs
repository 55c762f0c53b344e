//! `ema cleanup` and `ema move-models`.

use std::path::Path;

use super::args::{CleanupArgs, MoveArgs};
use super::common::{human_bytes, open_models};
use crate::cli::Ctx;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::integrity::maintenance::{self, CleanupOptions, MoveOptions};

pub fn cleanup_cmd(a: CleanupArgs, ctx: &Ctx) -> Result<i32> {
    let (loaded, _dir, store) = open_models(ctx, a.models_dir.as_deref())?;
    if !(a.remove_temp_files || a.remove_old_logs || a.compress_backups) {
        return Err(EmaError::Config(
            "nothing to do: pass --remove-temp-files, --remove-old-logs and/or --compress-backups (add --dry-run \
             to preview)"
                .into(),
        ));
    }
    if !(a.temp_age_hours >= 0.0 && a.log_age_days >= 0.0) {
        return Err(EmaError::Config(
            "--temp-age-hours and --log-age-days must be non-negative numbers".into(),
        ));
    }
    let cache = loaded.config.storage.cache_dir();
    let mut opts = CleanupOptions::new(&store);
    opts.remove_temp_files = a.remove_temp_files;
    opts.remove_old_logs = a.remove_old_logs;
    opts.compress_backups = a.compress_backups;
    opts.dry_run = a.dry_run;
    opts.temp_min_age = std::time::Duration::from_secs_f64(a.temp_age_hours * 3600.0);
    opts.log_max_age = std::time::Duration::from_secs_f64(a.log_age_days * 86400.0);
    opts.log_dirs.push(cache.join("logs"));
    opts.backup_dirs.push(cache.join("backups"));
    if let Some(p) = &loaded.path {
        opts.backup_dirs.push(
            p.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        );
    }
    let report = maintenance::cleanup(&store, &opts)?;
    if ctx.out.json {
        ctx.out.json(&report);
    } else {
        if report.items.is_empty() {
            println!("nothing to clean");
        }
        for i in &report.items {
            println!(
                "{:<15} {:<9} {:>9}  {}{}",
                i.action,
                i.kind,
                human_bytes(i.bytes),
                i.path.display(),
                i.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
        }
        println!(
            "{}{} freed",
            if report.dry_run {
                "dry run: nothing changed; "
            } else {
                ""
            },
            human_bytes(report.bytes_freed)
        );
    }
    Ok(if report.items.iter().any(|i| i.action == "failed") {
        exit::FAILURE
    } else {
        exit::OK
    })
}

pub fn move_cmd(a: MoveArgs, ctx: &Ctx) -> Result<i32> {
    let update_config = if a.update_config {
        let loaded = ctx.load_config()?;
        Some(loaded.path.ok_or_else(|| {
            EmaError::Config(
                "--update-config: no configuration file is in force (built-in defaults); pass --config PATH"
                    .into(),
            )
        })?)
    } else {
        None
    };
    let stop_after_files = std::env::var(maintenance::MOVE_STOP_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let r = maintenance::move_models(&MoveOptions {
        source: a.source,
        target: a.target,
        update_config,
        stop_after_files,
    })?;
    if ctx.out.json {
        ctx.out.json(&r);
    } else {
        println!(
            "moved {} files ({}) from {} to {}{}",
            r.files,
            human_bytes(r.bytes),
            r.source.display(),
            r.target.display(),
            if r.resumed {
                format!(" (resumed: {} already copied)", r.already_done)
            } else {
                String::new()
            }
        );
        println!("every file's sha256 was checked at the target");
        if let Some(c) = &r.config_updated {
            println!(
                "configuration {}: storage.models_directory {} → {}",
                c.display(),
                r.previous_models_directory.as_deref().unwrap_or("(unset)"),
                r.target.display()
            );
        }
        if r.source_deleted {
            println!("source {} removed", r.source.display());
        } else if !r.left_in_source.is_empty() {
            println!(
                "{} files appeared in the source during the move and were left there: {}",
                r.left_in_source.len(),
                r.left_in_source.join(", ")
            );
        }
    }
    Ok(exit::OK)
}
