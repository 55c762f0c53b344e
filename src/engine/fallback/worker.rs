//! Getting a queued request going from a face that exits right away (the CLI): a detached download process whose
//! output goes to a log file under `<store>/.ema/fallback/`, and which survives the terminal closing.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::engine::error::{EmaError, Result};
use crate::engine::store::{RepoId, Store};

/// A detached worker that was started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Worker {
    pub pid: u32,
    pub log: PathBuf,
}

/// The worker's log file for `repo`.
pub fn log_path(store: &Store, repo: &RepoId) -> PathBuf {
    store
        .state_dir()
        .join("fallback")
        .join(format!("download-{}.log", repo.folder_name()))
}

/// Start `program args…` in its own process group (no terminal signals reach it), stdin closed, stdout and stderr
/// appended to [`log_path`]. It is not waited for.
pub fn start(program: &Path, args: &[OsString], store: &Store, repo: &RepoId) -> Result<Worker> {
    let log = log_path(store, repo);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| EmaError::io("cannot create directory", dir, e))?;
    }
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| EmaError::io("cannot open", &log, e))
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .process_group(0)
        .spawn()
        .map_err(|e| EmaError::io("cannot start the download worker", program, e))?;
    // The child is reaped by init once this process exits; nothing waits for it here.
    Ok(Worker {
        pid: child.id(),
        log,
    })
}
