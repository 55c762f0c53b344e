//! Atomic file writes: a temp file in the same directory, fsync, rename over the target, fsync the directory.
//! A crash at any moment leaves either the old or the new file, never a mix. Also the advisory lock files that
//! guard a read-modify-write of such a file across processes.

use std::io::Write;
use std::path::Path;

use super::error::{EmaError, Result};

/// Write `bytes` to `path` atomically. The parent directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| EmaError::io("cannot create a temporary file in", dir, e))?;
    // Keep the permissions of the file we replace; a new file is readable by others (0644) like any file the
    // operator would create, since model metadata is shared between users and tools.
    match std::fs::metadata(path) {
        Ok(meta) => {
            let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
        }
        Err(_) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ =
                    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
            }
        }
    }
    tmp.write_all(bytes)
        .map_err(|e| EmaError::io("cannot write", tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| EmaError::io("cannot fsync", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| EmaError::io("cannot replace", path, e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Serialize `value` as pretty JSON (with a trailing newline) and write it atomically.
pub fn write_json_atomic<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| EmaError::Other(format!("cannot serialize {}: {e}", path.display())))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Open (creating it and its directory) the lock file `lock` that guards a read-modify-write; the caller takes the
/// lock on the returned file.
pub fn open_lock_file(lock: &Path) -> Result<std::fs::File> {
    if let Some(dir) = lock.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| EmaError::io("cannot create directory", dir, e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .map_err(|e| EmaError::io("cannot open", lock, e))
}

/// True when another process holds the lock file (a download running for that model).
pub fn lock_held(lock: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lock)
    else {
        return false;
    };
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(_) => true,
    }
}

/// fsync a directory so a rename inside it survives power loss. Best effort.
pub fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failure_leaves_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("a.json");
        assert!(write_atomic(&p, b"x").is_err());
        let p2 = dir.path().join("b.json");
        std::fs::write(&p2, b"old").unwrap();
        // Target is a directory: rename fails, old content stays.
        let d = dir.path().join("c");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("inner"), b"keep").unwrap();
        assert!(write_atomic(&d, b"new").is_err());
        assert_eq!(std::fs::read(d.join("inner")).unwrap(), b"keep");
        assert_eq!(std::fs::read(&p2).unwrap(), b"old");
    }
}
