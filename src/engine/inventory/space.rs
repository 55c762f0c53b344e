//! Space: the bytes a folder holds and the room left on the filesystem holding a path.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::error::{EmaError, Result};

/// Total size of the regular files under `dir` (symlinks not followed).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// Space on the filesystem holding `path` (the nearest existing ancestor).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DiskSpace {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

pub fn disk_space(path: &Path) -> Result<DiskSpace> {
    let mut p: PathBuf = path.to_path_buf();
    while !p.exists() {
        match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => p = q.to_path_buf(),
            _ => {
                p = PathBuf::from(".");
                break;
            }
        }
    }
    let total = fs4::total_space(&p).map_err(|e| EmaError::io("cannot stat filesystem", &p, e))?;
    let avail =
        fs4::available_space(&p).map_err(|e| EmaError::io("cannot stat filesystem", &p, e))?;
    Ok(DiskSpace {
        total_bytes: total,
        available_bytes: avail,
    })
}
