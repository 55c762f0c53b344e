//! The shared state of one model download: what its file tasks share, and the live figures the faces read.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::watch;

use super::queue::QueueState;
use super::util::{Control, TokenBucket};
use crate::engine::config::DownloadsConfig;
use crate::engine::events::EventBus;
use crate::engine::hub::HubClient;
use crate::engine::store::RepoId;

/// Shared state of one model download.
pub(crate) struct JobCtx {
    pub hub: HubClient,
    pub repo: RepoId,
    pub commit: String,
    pub cfg: DownloadsConfig,
    pub bus: EventBus,
    pub bucket: Option<Arc<TokenBucket>>,
    pub control: watch::Receiver<Control>,
    pub model_dir: PathBuf,
    pub partial_dir: PathBuf,
    /// Bytes of this model on disk (verified or partial), for progress.
    pub bytes_done: AtomicU64,
}

/// The live figures of a download running in this process, for
/// [`DownloadManager::downloads`](crate::engine::download::DownloadManager::downloads).
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveStats {
    pub state: Option<QueueState>,
    pub revision: Option<String>,
    pub commit: Option<String>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: usize,
    pub files_total: usize,
    pub rate: f64,
    pub eta: Option<f64>,
}
