//! The backup: a timestamped copy of the configuration and the models (with a system summary) before the migration,
//! and the rollback check that it is still complete.

use std::path::Path;

use super::system::{GB, system_info};
use crate::engine::error::{EmaError, Result};
use crate::engine::inventory;
use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// Copy the configuration file and the models directory (less ema's state) into a new
/// `<backup_root>/pre-migration-YYYYmmdd_HHMMSS`, built aside and renamed into place.
pub(super) fn backup(ctx: &MigrationContext) -> Result<StepOutcome> {
    let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S").to_string();
    let mut dest = ctx.backup_root.join(format!("pre-migration-{stamp}"));
    let mut n = 1;
    while dest.exists() {
        dest = ctx.backup_root.join(format!("pre-migration-{stamp}-{n}"));
        n += 1;
    }
    let root = ctx.store.root();
    let need = if root.exists() {
        inventory::dir_size(root)
    } else {
        0
    };
    std::fs::create_dir_all(&ctx.backup_root)
        .map_err(|e| EmaError::io("cannot create", &ctx.backup_root, e))?;
    let space = inventory::disk_space(&ctx.backup_root)?;
    if need > space.available_bytes {
        return Err(EmaError::DiskSpace(format!(
            "the backup needs {:.2} GB but {} has {:.2} GB free; free space or set storage.cache_directory to a \
             larger disk",
            need as f64 / GB as f64,
            ctx.backup_root.display(),
            space.available_bytes as f64 / GB as f64
        )));
    }
    // Build in a temporary folder, then rename: a half-made backup never looks complete. Leftovers of an
    // interrupted run are removed first.
    if let Ok(rd) = std::fs::read_dir(&ctx.backup_root) {
        for e in rd.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(".partial-pre-migration-")
            {
                let p = e.path();
                std::fs::remove_dir_all(&p).map_err(|er| EmaError::io("cannot remove", &p, er))?;
            }
        }
    }
    let tmp = ctx
        .backup_root
        .join(format!(".partial-pre-migration-{stamp}"));
    let mut log = Vec::new();
    let result = (|| -> Result<()> {
        std::fs::create_dir_all(tmp.join("config"))
            .map_err(|e| EmaError::io("cannot create", &tmp, e))?;
        if let Some(cfg) = &ctx.loaded.path {
            let name = cfg.file_name().unwrap_or_default();
            std::fs::copy(cfg, tmp.join("config").join(name))
                .map_err(|e| EmaError::io("cannot copy", cfg, e))?;
            log.push(format!("configuration: {}", cfg.display()));
        } else {
            log.push("configuration: none in force (built-in defaults); nothing to copy".into());
        }
        if root.exists() {
            let (files, bytes) = copy_tree(
                root,
                &tmp.join("models"),
                &[crate::engine::store::STATE_DIR],
            )?;
            log.push(format!(
                "models: {files} file(s), {:.2} GB from {}",
                bytes as f64 / GB as f64,
                root.display()
            ));
        } else {
            std::fs::create_dir_all(tmp.join("models"))
                .map_err(|e| EmaError::io("cannot create", &tmp, e))?;
            log.push(format!("models: {} does not exist yet", root.display()));
        }
        let info = system_info(ctx);
        crate::engine::atomic::write_atomic(&tmp.join("system_info.txt"), info.as_bytes())?;
        std::fs::rename(&tmp, &dest).map_err(|e| EmaError::io("cannot rename", &tmp, e))?;
        crate::engine::atomic::sync_dir(&ctx.backup_root);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    log.push(format!("backup: {}", dest.display()));
    let mut o = StepOutcome::ok(format!("backed up to {}", dest.display()), log);
    o.backup = Some(dest);
    Ok(o)
}

/// Copy `src` into `dst` (regular files and folders; names in `skip` left out). Returns (files, bytes).
fn copy_tree(src: &Path, dst: &Path, skip: &[&str]) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    std::fs::create_dir_all(dst).map_err(|e| EmaError::io("cannot create", dst, e))?;
    let rd = std::fs::read_dir(src).map_err(|e| EmaError::io("cannot list", src, e))?;
    for e in rd {
        let e = e.map_err(|e| EmaError::io("cannot list", src, e))?;
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let ft = e
            .file_type()
            .map_err(|er| EmaError::io("cannot stat", e.path(), er))?;
        let to = dst.join(&name);
        if ft.is_dir() {
            let (f, b) = copy_tree(&e.path(), &to, &[])?;
            files += f;
            bytes += b;
        } else if ft.is_file() {
            bytes += std::fs::copy(e.path(), &to)
                .map_err(|er| EmaError::io("cannot copy", e.path(), er))?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

/// The backup recorded by the backup step still holds the configuration, the models and the system summary.
pub(super) fn rollback_verified(ctx: &MigrationContext) -> StepOutcome {
    let Some(b) = &ctx.last_backup else {
        return StepOutcome::fail(
            "no backup recorded; run \"Current system backed up\" first",
            vec![],
        );
    };
    let mut log = Vec::new();
    let mut ok = true;
    for part in ["config", "models", "system_info.txt"] {
        let p = b.join(part);
        if p.exists() {
            log.push(format!("{}: present", p.display()));
        } else {
            ok = false;
            log.push(format!("{}: MISSING", p.display()));
        }
    }
    if ok {
        StepOutcome::ok(format!("backup {} is complete", b.display()), log)
    } else {
        StepOutcome::fail(format!("backup {} is incomplete", b.display()), log)
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::migration::{run_step, test_context as ctx};

    #[test]
    fn backup_copies_config_and_models_and_rollback_check_sees_it() {
        let d = tempfile::tempdir().unwrap();
        let mut c = ctx(d.path());
        c.store.ensure().unwrap();
        std::fs::create_dir_all(c.store.root().join("org--m")).unwrap();
        std::fs::write(c.store.root().join("org--m").join("w.bin"), b"weights").unwrap();
        std::fs::write(c.store.state_dir().join("private"), b"x").unwrap();
        let o = run_step("backup", &c);
        assert!(o.ok, "{o:?}");
        let b = o.backup.clone().unwrap();
        assert_eq!(
            std::fs::read(b.join("models").join("org--m").join("w.bin")).unwrap(),
            b"weights"
        );
        assert!(
            b.join("config")
                .join("enhanced_model_config.json")
                .is_file()
        );
        assert!(!b.join("models").join(".ema").exists());
        // A leftover of an interrupted backup is cleaned by the next one.
        let stale = c.backup_root.join(".partial-pre-migration-20200101_000000");
        std::fs::create_dir_all(&stale).unwrap();
        assert!(run_step("backup", &c).ok);
        assert!(!stale.exists());
        assert!(!run_step("rollback_verified", &c).ok);
        c.last_backup = Some(b);
        assert!(run_step("rollback_verified", &c).ok);
    }
}
