//! The persisted download queue: `<models_dir>/.ema/downloads.json`, one entry per unfinished download. Every
//! change is a read-modify-write under an advisory lock (`downloads.lock`) and an atomic replace, so several `ema`
//! processes can share it: `ema downloads pause REPO` in one process sets `control`, the process downloading REPO
//! notices within a second.

use std::path::PathBuf;

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use super::util::Control;
use crate::engine::atomic::{open_lock_file, write_json_atomic};
use crate::engine::error::Result;
use crate::engine::store::{RepoId, Store, now_rfc3339};

/// Where a persisted download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// Accepted, waiting for a slot or for another process's lock.
    Queued,
    Downloading,
    Paused,
    /// Stopped by an error; `ema downloads resume` retries it.
    Failed,
}

/// One unfinished download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub repo_id: RepoId,
    /// The revision asked for (branch, tag or sha); `None` = the default branch.
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub state: QueueState,
    /// What the operator asked for; the downloading process obeys it.
    #[serde(default)]
    pub control: Control,
    /// The process working on it, if any.
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub bytes_done: u64,
    #[serde(default)]
    pub bytes_total: u64,
    #[serde(default)]
    pub files_done: usize,
    #[serde(default)]
    pub files_total: usize,
    /// The rate when last written by the downloading process (bytes per second).
    #[serde(default)]
    pub rate_bytes_per_sec: f64,
    #[serde(default)]
    pub error: Option<String>,
    pub queued_at: String,
    pub updated_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct QueueFile {
    #[serde(default)]
    downloads: Vec<QueueEntry>,
}

/// Handle on the persisted queue of one store.
#[derive(Debug, Clone)]
pub struct Queue {
    path: PathBuf,
    lock: PathBuf,
}

impl Queue {
    pub fn new(store: &Store) -> Self {
        Queue {
            path: store.state_dir().join("downloads.json"),
            lock: store.state_dir().join("downloads.lock"),
        }
    }

    fn read_unlocked(&self) -> Vec<QueueEntry> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<QueueFile>(&b).ok())
            .map(|q| q.downloads)
            .unwrap_or_default()
    }

    /// Every entry.
    pub fn list(&self) -> Vec<QueueEntry> {
        self.read_unlocked()
    }

    pub fn get(&self, repo: &RepoId) -> Option<QueueEntry> {
        self.read_unlocked()
            .into_iter()
            .find(|e| &e.repo_id == repo)
    }

    /// Read-modify-write under the queue lock.
    pub fn update<T>(&self, f: impl FnOnce(&mut Vec<QueueEntry>) -> T) -> Result<T> {
        let lock = open_lock_file(&self.lock)?;
        // On filesystems where flock is a no-op, the atomic replace still keeps the file whole.
        let _ = lock.lock_exclusive();
        let mut entries = self.read_unlocked();
        let out = f(&mut entries);
        let res = write_json_atomic(&self.path, &QueueFile { downloads: entries });
        let _ = FileExt::unlock(&lock);
        res.map(|_| out)
    }

    /// Add or refresh an entry for a download starting in this process.
    pub fn upsert_started(
        &self,
        repo: &RepoId,
        revision: Option<&str>,
        include: &[String],
        exclude: &[String],
    ) -> Result<()> {
        let pid = std::process::id();
        self.update(|v| {
            let now = now_rfc3339();
            match v.iter_mut().find(|e| &e.repo_id == repo) {
                Some(e) => {
                    e.revision = revision.map(str::to_string);
                    e.include = include.to_vec();
                    e.exclude = exclude.to_vec();
                    e.state = QueueState::Queued;
                    // Starting a download is a request to run it.
                    e.control = Control::Run;
                    e.pid = Some(pid);
                    e.error = None;
                    e.updated_at = now;
                }
                None => v.push(QueueEntry {
                    repo_id: repo.clone(),
                    revision: revision.map(str::to_string),
                    include: include.to_vec(),
                    exclude: exclude.to_vec(),
                    state: QueueState::Queued,
                    control: Control::Run,
                    pid: Some(pid),
                    commit: None,
                    bytes_done: 0,
                    bytes_total: 0,
                    files_done: 0,
                    files_total: 0,
                    rate_bytes_per_sec: 0.0,
                    error: None,
                    queued_at: now.clone(),
                    updated_at: now,
                }),
            }
        })
    }

    /// Change an entry in place (no-op when absent).
    pub fn modify(&self, repo: &RepoId, f: impl FnOnce(&mut QueueEntry)) -> Result<bool> {
        self.update(|v| match v.iter_mut().find(|e| &e.repo_id == repo) {
            Some(e) => {
                f(e);
                e.updated_at = now_rfc3339();
                true
            }
            None => false,
        })
    }

    pub fn remove(&self, repo: &RepoId) -> Result<bool> {
        self.update(|v| {
            let before = v.len();
            v.retain(|e| &e.repo_id != repo);
            before != v.len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_control() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        store.ensure().unwrap();
        let q = Queue::new(&store);
        let r = RepoId::parse("org/m").unwrap();
        q.upsert_started(&r, Some("main"), &["*.json".into()], &[])
            .unwrap();
        assert_eq!(q.list().len(), 1);
        assert!(q.modify(&r, |e| e.control = Control::Pause).unwrap());
        assert_eq!(q.get(&r).unwrap().control, Control::Pause);
        // Starting it again means running it.
        q.upsert_started(&r, None, &[], &[]).unwrap();
        assert_eq!(q.get(&r).unwrap().control, Control::Run);
        assert!(q.remove(&r).unwrap());
        assert!(q.list().is_empty());
    }
}
