//! Placing a verified file: an atomic rename from the partial into the model folder, never through a symlink, with
//! the folder entry synced.

use std::path::{Path, PathBuf};

use super::job::JobCtx;
use crate::engine::atomic::sync_dir;
use crate::engine::error::{EmaError, Result};

/// Move a verified partial to its place in the model folder. Every existing ancestor inside the model folder must
/// be a real directory (never a symlink); a destination that is a symlink is replaced, not written through.
pub(super) fn place(ctx: &JobCtx, rel: &str, partial: &Path) -> Result<()> {
    let dest = safe_dest(&ctx.model_dir, rel)?;
    if let Ok(m) = std::fs::symlink_metadata(&dest)
        && m.is_dir()
    {
        return Err(EmaError::Other(format!(
            "cannot place {rel}: {} is a directory; move it away and run `ema download` again",
            dest.display()
        )));
    }
    std::fs::rename(partial, &dest)
        .map_err(|e| EmaError::io("cannot move into place", &dest, e))?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// The destination of `rel` inside `model_dir`, creating parent folders; refuses to pass through a symlink.
pub(crate) fn safe_dest(model_dir: &Path, rel: &str) -> Result<PathBuf> {
    crate::engine::store::validate_repo_path(rel)?;
    ensure_real_dir(model_dir, rel)?;
    let segs: Vec<&str> = rel.split('/').collect();
    let mut p = model_dir.to_path_buf();
    for seg in &segs[..segs.len() - 1] {
        p.push(seg);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(EmaError::Integrity(format!(
                    "refusing repo file name {rel:?}: {} is a symlink and writing through it could escape the \
                     model folder; remove the link and run `ema download` again",
                    p.display()
                )));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(EmaError::Other(format!(
                    "cannot place {rel:?}: {} is a file, not a folder; move it away and run `ema download` again",
                    p.display()
                )));
            }
            Err(_) => match std::fs::create_dir(&p) {
                Ok(()) => {}
                // Another file of the model, placed at the same moment, created it: fine if it is a real folder.
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) => {}
                Err(e) => return Err(EmaError::io("cannot create directory", &p, e)),
            },
        }
    }
    p.push(segs[segs.len() - 1]);
    Ok(p)
}

fn ensure_real_dir(model_dir: &Path, rel: &str) -> Result<()> {
    match std::fs::symlink_metadata(model_dir) {
        Ok(m) if m.file_type().is_symlink() => Err(EmaError::Integrity(format!(
            "refusing to write {rel:?}: the model folder {} is a symlink; remove it and run `ema download` again",
            model_dir.display()
        ))),
        Ok(_) => Ok(()),
        Err(_) => std::fs::create_dir_all(model_dir)
            .map_err(|e| EmaError::io("cannot create directory", model_dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinked_parent_refused_and_link_destination_replaced() {
        let d = tempfile::tempdir().unwrap();
        let model = d.path().join("m");
        std::fs::create_dir(&model).unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, model.join("sub")).unwrap();
        let e = safe_dest(&model, "sub/x.bin").unwrap_err().to_string();
        assert!(e.contains("sub/x.bin") && e.contains("symlink"), "{e}");
        assert!(safe_dest(&model, "../x").is_err());
        let p = safe_dest(&model, "a/b/c.txt").unwrap();
        assert_eq!(p, model.join("a/b/c.txt"));
        assert!(model.join("a/b").is_dir());
    }
}
