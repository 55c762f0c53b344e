//! The download's public data: what to download, the report of a finished download, and a download as the faces
//! see it.

use std::path::PathBuf;

use serde::Serialize;

use super::queue::{QueueEntry, QueueState};
use super::util::Control;

/// What to download.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DownloadOptions {
    /// Branch, tag or commit sha; `None` = the repo's default branch.
    pub revision: Option<String>,
    /// Only files matching one of these globs (all files when empty).
    pub include: Vec<String>,
    /// Never files matching one of these globs.
    pub exclude: Vec<String>,
}

impl QueueEntry {
    /// The revision and globs this download was asked with, to continue it as it was started.
    pub fn options(&self) -> DownloadOptions {
        DownloadOptions {
            revision: self.revision.clone(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        }
    }
}

/// The outcome of a finished download.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadReport {
    pub model_id: String,
    pub commit: String,
    pub path: PathBuf,
    pub files: usize,
    /// Files that were already present and verified.
    pub files_already_present: usize,
    pub total_bytes: u64,
    /// Bytes fetched over the network by this run.
    pub bytes_fetched: u64,
    pub seconds: f64,
    /// False when the download was cancelled.
    pub completed: bool,
    /// True when HF_HUB_OFFLINE is set and the model was found complete locally, without asking the hub whether
    /// the revision moved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
}

/// A download as the faces see it (in this process, or persisted by another).
#[derive(Debug, Clone, Serialize)]
pub struct DownloadSnapshot {
    pub model_id: String,
    pub state: QueueState,
    pub control: Control,
    pub revision: Option<String>,
    pub commit: Option<String>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: usize,
    pub files_total: usize,
    pub rate_bytes_per_sec: f64,
    pub eta_seconds: Option<f64>,
    /// The process working on it; `None` or a dead pid means nobody is (resume it with `ema downloads resume`).
    pub pid: Option<u32>,
    /// True when it runs in this process.
    pub in_process: bool,
    pub error: Option<String>,
}
