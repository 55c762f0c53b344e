//! The adoption journal and lock under `<models_dir>/.ema/migration/`: an intent record (the full list of moves)
//! is written durably before a model's files move and a done record after its sidecar, so a killed
//! `migrate-models` is finished by the next run and nothing done is redone. The lock names its holder.

use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use crate::engine::error::{EmaError, Result};
use crate::engine::store::{RepoId, STATE_DIR};

use super::identify::IdSource;
use super::survey::Layout;

/// One rename or clone of an adoption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub from: PathBuf,
    pub to: PathBuf,
    /// Clone (reflink or copy) instead of rename: the source stays (a blob another snapshot uses).
    #[serde(default)]
    pub clone: bool,
    /// Side-by-side: record the file where it lies — a symlink at `to` pointing at `from`; nothing moves.
    #[serde(default)]
    pub link: bool,
}

/// What adopting one model does, recorded in full before anything moves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub repo_id: RepoId,
    pub layout: Layout,
    /// How the repo id was inferred and where the model was found (for the report of a resumed run).
    #[serde(default)]
    pub id_source: Option<IdSource>,
    #[serde(default)]
    pub location: Option<PathBuf>,
    pub commit: Option<String>,
    /// The model's folder in the store.
    pub target: PathBuf,
    /// Every file with the hashes the layout promised (the sidecar is built from these).
    pub files: Vec<PlannedFile>,
    pub moves: Vec<Move>,
    /// Folders to remove when empty once the moves are done (`.cache/` of a local-dir folder, an emptied
    /// transformers cache).
    #[serde(default)]
    pub remove_if_empty: Vec<PathBuf>,
    /// Side-by-side adoption: `target` lies in ema's own store and links to the files where they lie.
    #[serde(default)]
    pub side_by_side: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedFile {
    pub path: String,
    pub size: u64,
    pub expected_sha256: Option<String>,
    pub expected_git_sha1: Option<String>,
}

/// A journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// `intent` (with the plan) or `done`.
    pub phase: String,
    pub model: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

pub fn migration_dir(models_dir: &Path) -> PathBuf {
    models_dir.join(STATE_DIR).join("migration")
}

/// Held for the whole run; released on drop (and by the kernel when the process dies).
pub struct Lock {
    _file: std::fs::File,
}

/// Take the adoption lock of `models_dir`, or say who holds it.
pub fn lock(models_dir: &Path) -> Result<Lock> {
    let dir = migration_dir(models_dir);
    let p = dir.join("migrate-models.lock");
    let mut f = crate::engine::atomic::open_lock_file(&p)?;
    match FileExt::try_lock_exclusive(&f) {
        Ok(true) => {}
        _ => {
            let holder = std::fs::read_to_string(&p).unwrap_or_default();
            return Err(EmaError::Other(format!(
                "another migrate-models is running on {} ({}); wait for it to finish",
                models_dir.display(),
                holder.trim()
            )));
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let _ = f.set_len(0);
    let _ = write!(f, "pid {} on {}", std::process::id(), host.trim());
    Ok(Lock { _file: f })
}

fn journal_path(models_dir: &Path) -> PathBuf {
    migration_dir(models_dir).join("journal.jsonl")
}

/// Append one record and fsync it before returning.
pub fn append(models_dir: &Path, rec: &Record) -> Result<()> {
    let p = journal_path(models_dir);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .map_err(|e| EmaError::io("cannot open", &p, e))?;
    let mut line = serde_json::to_vec(rec).map_err(|e| EmaError::Other(e.to_string()))?;
    line.push(b'\n');
    // A line torn by a crash must not swallow this record: start on a line of its own.
    if ends_torn(&p) {
        line.insert(0, b'\n');
    }
    f.write_all(&line)
        .and_then(|_| f.sync_all())
        .map_err(|e| EmaError::io("cannot write", &p, e))
}

/// Whether the journal's last byte is not a newline (the last append was cut short).
fn ends_torn(p: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(p) else {
        return false;
    };
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] != b'\n'
}

/// Intent records without a matching done record, oldest first. A torn last line (a crash mid-append) is ignored:
/// its moves had not started.
pub fn unfinished(models_dir: &Path) -> Result<Vec<Record>> {
    let p = journal_path(models_dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EmaError::io("cannot read", &p, e)),
    };
    let mut open: Vec<Record> = Vec::new();
    for line in text.lines() {
        let Ok(r) = serde_json::from_str::<Record>(line) else {
            continue;
        };
        match r.phase.as_str() {
            "intent" => {
                open.retain(|o| o.model != r.model);
                open.push(r);
            }
            "done" => open.retain(|o| o.model != r.model),
            _ => {}
        }
    }
    Ok(open)
}
