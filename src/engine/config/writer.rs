//! Writing a new configuration file: validated first, timestamped backups, refusing to overwrite unless told, and
//! atomic replacement.

use std::path::{Path, PathBuf};

use super::validate;
use crate::engine::atomic;
use crate::engine::error::{EmaError, Result};

/// Copy `path` to `<name>.backup-YYYYMMDDTHHMMSSZ` beside it (atomically, same permissions). Returns the copy.
pub fn backup(path: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(path).map_err(|e| EmaError::io("cannot read", path, e))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_string());
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut candidate = dir.join(format!("{name}.backup-{stamp}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = dir.join(format!("{name}.backup-{stamp}-{n}"));
        n += 1;
    }
    atomic::write_atomic(&candidate, &bytes)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&candidate, meta.permissions());
    }
    Ok(candidate)
}

/// How to treat an existing target file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overwrite {
    pub force: bool,
    pub backup: bool,
}

/// Write a new configuration file: refuse to replace an existing one unless `force` or `backup` (which copies it
/// first). Creates the parent directory. The text must validate. Returns the backup path, if one was made.
pub fn write_new(target: &Path, text: &str, how: Overwrite) -> Result<Option<PathBuf>> {
    let v = validate::validate_text(text);
    if let Some(p) = v.problems.first() {
        return Err(EmaError::Config(format!(
            "refusing to write {}: the result does not validate ({}: {}); nothing was written",
            target.display(),
            p.path,
            p.message
        )));
    }
    if target.is_dir() {
        return Err(EmaError::Config(format!(
            "{} is a directory; give --target a file path such as config/enhanced_model_config.json",
            target.display()
        )));
    }
    let mut made = None;
    if target.exists() {
        if how.backup {
            made = Some(backup(target)?);
        } else if !how.force {
            return Err(EmaError::Config(format!(
                "{} already exists; pass --backup to keep a timestamped copy of it first, or --force to overwrite \
                 it; nothing was written",
                target.display()
            )));
        }
    }
    write_creating_dir(target, text)?;
    Ok(made)
}

/// Write `text` to `path` atomically, creating its parent directory first when it is missing.
pub fn write_creating_dir(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| EmaError::io("cannot create directory", dir, e))?;
    }
    atomic::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::document::render;
    use crate::engine::config::schema;

    #[test]
    fn write_new_refuses_then_backs_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("c.json");
        let text = render(&schema::default_document());
        assert!(
            write_new(&p, &text, Overwrite::default())
                .unwrap()
                .is_none()
        );
        let before = std::fs::read(&p).unwrap();
        assert!(write_new(&p, "{}\n", Overwrite::default()).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), before);
        let b = write_new(
            &p,
            "{}\n",
            Overwrite {
                backup: true,
                force: false,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), before);
        assert_eq!(std::fs::read(&p).unwrap(), b"{}\n");
        assert!(
            write_new(
                &p,
                "{\"api\": {\"port\": 0}}",
                Overwrite {
                    force: true,
                    backup: false
                }
            )
            .is_err()
        );
    }
}
