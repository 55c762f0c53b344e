//! A file's partial on disk: its names (unique per writing process), adopting the partial of a dead process, the
//! persisted part progress a resume trusts (`<hash>.<pid>.json` beside `<hash>.<pid>.part`), the split of a file into
//! parts, and the bytes still missing (for the disk pre-flight).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::outcome::{AttemptEnd, io_end};
use super::util::pid_alive;
use crate::engine::atomic::write_json_atomic;
use crate::engine::hub::RemoteFile;

const PARTIAL_STATE_VERSION: u32 = 1;
/// Files smaller than this restart from zero after a crash instead of persisting part progress.
const PERSIST_MIN_SIZE: u64 = 1 << 20;

/// Persisted progress of one partial file (`<hash>.json` beside `<hash>.part`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PartialState {
    version: u32,
    path: String,
    size: u64,
    hash: String,
    /// The upstream ETag the bytes came from; a different one on resume restarts from zero.
    etag: Option<String>,
    parts: Vec<PartState>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct PartState {
    start: u64,
    /// Exclusive.
    end: u64,
    done: u64,
}

/// Live part progress shared between the writers, the hasher and the persister.
pub(super) struct Parts {
    pub(super) ranges: Vec<(u64, u64)>,
    pub(super) done: Vec<AtomicU64>,
}

impl Parts {
    pub(super) fn from_state(st: &PartialState) -> Arc<Self> {
        Arc::new(Parts {
            ranges: st.parts.iter().map(|p| (p.start, p.end)).collect(),
            done: st.parts.iter().map(|p| AtomicU64::new(p.done)).collect(),
        })
    }

    /// End of the contiguous written prefix.
    pub(super) fn frontier(&self, size: u64) -> u64 {
        for (i, (s, e)) in self.ranges.iter().enumerate() {
            let d = self.done[i].load(Ordering::Acquire);
            if s + d < *e {
                return s + d;
            }
        }
        size
    }

    pub(super) fn complete(&self) -> bool {
        self.ranges
            .iter()
            .enumerate()
            .all(|(i, (s, e))| s + self.done[i].load(Ordering::Acquire) >= *e)
    }

    pub(super) fn bytes_done(&self) -> u64 {
        self.done.iter().map(|d| d.load(Ordering::Acquire)).sum()
    }

    pub(super) fn snapshot(&self, base: &PartialState) -> PartialState {
        let mut st = base.clone();
        for (i, p) in st.parts.iter_mut().enumerate() {
            p.done = self.done[i].load(Ordering::Acquire);
        }
        st
    }
}

pub(super) struct FilePaths {
    pub partial: PathBuf,
    pub state: PathBuf,
}

/// This process's partial of a file: `<hash>.<pid>.part` and its state `<hash>.<pid>.json`. Names are unique per
/// writer, so even where `flock` silently does nothing two processes never write into the same file.
pub(super) fn partial_paths(partial_dir: &Path, hash: &str) -> FilePaths {
    let pid = std::process::id();
    FilePaths {
        partial: partial_dir.join(format!("{hash}.{pid}.part")),
        state: partial_dir.join(format!("{hash}.{pid}.json")),
    }
}

/// Partials of `hash` left by processes that are gone (a crash, `kill -9`, an earlier run): (pid, state path).
fn orphans(partial_dir: &Path, hash: &str) -> Vec<(u32, PathBuf)> {
    let me = std::process::id();
    let prefix = format!("{hash}.");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(partial_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|p| p.parse::<u32>().ok())
            && pid != me
            && !pid_alive(pid)
        {
            out.push((pid, entry.path()));
        }
    }
    out
}

/// Take over an orphaned partial (atomic renames: of two processes racing for it, one wins, the other starts fresh).
fn adopt_orphan(partial_dir: &Path, hash: &str, paths: &FilePaths) {
    if paths.state.exists() {
        return;
    }
    for (pid, state) in orphans(partial_dir, hash) {
        let part = partial_dir.join(format!("{hash}.{pid}.part"));
        if std::fs::rename(&part, &paths.partial).is_ok() {
            let _ = std::fs::rename(&state, &paths.state);
            return;
        }
    }
}

/// This process's paths for `hash`, ready to write: an orphaned partial adopted when resuming is on, else any
/// earlier partial removed.
pub(super) fn claim_partial(partial_dir: &Path, hash: &str, resume_enabled: bool) -> FilePaths {
    let paths = partial_paths(partial_dir, hash);
    if resume_enabled {
        adopt_orphan(partial_dir, hash, &paths);
    } else {
        // downloads.resume_enabled = false: never continue a partial from an earlier run.
        reset_partial(&paths);
    }
    paths
}

/// Remove a partial and its state (start from zero).
pub(super) fn reset_partial(paths: &FilePaths) {
    let _ = std::fs::remove_file(&paths.partial);
    let _ = std::fs::remove_file(&paths.state);
}

/// Does a file of `size` bytes persist its part progress (smaller ones restart from zero after a crash)?
pub(super) fn persists(size: u64) -> bool {
    size >= PERSIST_MIN_SIZE
}

/// Load the persisted state if it matches this file, else start a fresh one (and a fresh partial). The flag says
/// whether the state was resumed.
pub(super) fn load_or_create_state(
    file: &RemoteFile,
    hash: &str,
    paths: &FilePaths,
    etag: Option<&str>,
    parts_wanted: u32,
) -> std::result::Result<(PartialState, bool), AttemptEnd> {
    if let Some(st) = load_state(file, hash, paths, etag) {
        return Ok((st, true));
    }
    let size = file.size;
    let parts = split_into_parts(size, parts_wanted);
    create_partial(paths, size)?;
    let st = PartialState {
        version: PARTIAL_STATE_VERSION,
        path: file.path.clone(),
        size,
        hash: hash.to_string(),
        etag: etag.map(str::to_string),
        parts,
    };
    if persists(size) {
        write_json_atomic(&paths.state, &st).map_err(AttemptEnd::Fatal)?;
    }
    Ok((st, false))
}

/// The persisted state of this file's partial, when it is sound and its bytes came from the same upstream
/// (a state from another ETag is removed with its partial).
fn load_state(
    file: &RemoteFile,
    hash: &str,
    paths: &FilePaths,
    etag: Option<&str>,
) -> Option<PartialState> {
    if let Ok(bytes) = std::fs::read(&paths.state)
        && let Ok(st) = serde_json::from_slice::<PartialState>(&bytes)
        && st.version == PARTIAL_STATE_VERSION
        && st.size == file.size
        && st.hash == hash
        && std::fs::metadata(&paths.partial)
            .map(|m| m.len() == file.size)
            .unwrap_or(false)
        && st
            .parts
            .iter()
            .all(|p| p.start + p.done <= p.end && p.end <= file.size)
    {
        if st.etag.as_deref() == etag || etag.is_none() {
            return Some(st);
        }
        // The upstream changed since these bytes were fetched: they cannot be trusted.
        reset_partial(paths);
    }
    None
}

/// The parts of a file of `size` bytes fetched over `parts_wanted` connections.
fn split_into_parts(size: u64, parts_wanted: u32) -> Vec<PartState> {
    let n = parts_wanted.max(1) as u64;
    let mut parts = Vec::new();
    if size > 0 {
        // Several chunks per connection (8 to 64 MiB each) so the connections stay close together in the file.
        let chunk = if n == 1 {
            size
        } else {
            (size / (n * 8)).clamp(8 << 20, 64 << 20)
        };
        let mut s = 0;
        while s < size {
            let e = (s + chunk).min(size);
            parts.push(PartState {
                start: s,
                end: e,
                done: 0,
            });
            s = e;
        }
    }
    parts
}

/// A fresh partial of `size` bytes (preallocated by length).
fn create_partial(paths: &FilePaths, size: u64) -> std::result::Result<(), AttemptEnd> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&paths.partial)
        .map_err(|e| io_end("cannot create", &paths.partial, e))?;
    f.set_len(size)
        .map_err(|e| io_end("cannot size", &paths.partial, e))
}

/// Writes a partial's part progress about once a second while its parts run.
pub(super) struct Persister {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Persister {
    /// Start persisting `parts` into `path` (only when `persist`).
    pub(super) fn start(
        parts: &Arc<Parts>,
        state: &PartialState,
        path: &Path,
        persist: bool,
    ) -> Persister {
        let persist_stop = Arc::new(tokio::sync::Notify::new());
        let persister = {
            let parts = parts.clone();
            let state = state.clone();
            let path = path.to_path_buf();
            let notify = persist_stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {
                            if persist {
                                let _ = write_json_atomic(&path, &parts.snapshot(&state));
                            }
                        }
                        _ = notify.notified() => return,
                    }
                }
            })
        };
        Persister {
            stop: persist_stop,
            task: persister,
        }
    }

    /// Stop persisting, then record where unfinished parts got to (only when `persist`).
    pub(super) async fn stop(
        self,
        parts: &Parts,
        state: &PartialState,
        path: &Path,
        persist: bool,
    ) {
        self.stop.notify_one();
        let _ = self.task.await;
        if persist && !parts.complete() {
            let _ = write_json_atomic(path, &parts.snapshot(state));
        }
    }
}

/// Bytes still to fetch for a file given its persisted partial state (for the disk pre-flight).
pub(super) fn bytes_remaining(partial_dir: &Path, hash: &str, size: u64) -> u64 {
    let own = partial_paths(partial_dir, hash).state;
    std::iter::once(own)
        .chain(orphans(partial_dir, hash).into_iter().map(|(_, p)| p))
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice::<PartialState>(&b).ok())
        .filter(|st| st.size == size && st.hash == hash)
        .map(|st| size.saturating_sub(st.parts.iter().map(|p| p.done).sum()))
        .min()
        .unwrap_or(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_follows_contiguous_parts() {
        let st = PartialState {
            version: 1,
            path: "x".into(),
            size: 30,
            hash: "h".into(),
            etag: None,
            parts: vec![
                PartState {
                    start: 0,
                    end: 10,
                    done: 10,
                },
                PartState {
                    start: 10,
                    end: 20,
                    done: 3,
                },
                PartState {
                    start: 20,
                    end: 30,
                    done: 10,
                },
            ],
        };
        let p = Parts::from_state(&st);
        assert_eq!(p.frontier(30), 13);
        assert!(!p.complete());
        p.done[1].store(10, Ordering::Release);
        assert_eq!(p.frontier(30), 30);
        assert!(p.complete());
        assert_eq!(p.bytes_done(), 30);
    }
}
