//! Fetching a round's missing files: a task per file under the process-wide limit of files at once, each verified
//! file recorded in the model's metadata, and the outcomes gathered (the most serious error wins).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::file::download_file;
use super::job::JobCtx;
use super::outcome::FileOutcome;
use super::progress::{FileProgress, Tracking};
use crate::engine::error::{EmaError, Result};
use crate::engine::hub::RemoteFile;
use crate::engine::store::{ModelMetadata, Store, mtime_ns, now_rfc3339};

/// What fetching a round's files came to.
pub(super) struct Fetched {
    /// Bytes fetched over the network.
    pub fetched_total: u64,
    /// A file stopped on a cancel.
    pub cancelled: bool,
    /// A file changed upstream: the listing must be fetched again.
    pub upstream_changed: bool,
    /// The most serious error of the files.
    pub first_err: Option<EmaError>,
}

/// Fetch the files of `todo` (indexes into `files` with their expected hash), at most as many at once as `files_at_once`
/// allows across the process, noting each verified file in `meta`.
pub(super) async fn fetch_files(
    ctx: &Arc<JobCtx>,
    files: &[RemoteFile],
    todo: &[(usize, String)],
    tracking: &Tracking,
    files_at_once: &Arc<Semaphore>,
    store: &Store,
    meta: &Arc<Mutex<ModelMetadata>>,
) -> Fetched {
    let record = Recorder {
        meta: meta.clone(),
        store: store.clone(),
        files_done: tracking.files_done.clone(),
        last_meta_write: Arc::new(Mutex::new(Instant::now())),
    };
    let mut set = tokio::task::JoinSet::new();
    for (k, (i, hash)) in todo.iter().enumerate() {
        set.spawn(fetch_one(
            ctx.clone(),
            files[*i].clone(),
            hash.clone(),
            tracking.progresses[k].clone(),
            files_at_once.clone(),
            *i,
            record.clone(),
        ));
    }
    gather(set).await
}

/// One file, once a place among the files at once is free; a verified file is recorded.
async fn fetch_one(
    ctx: Arc<JobCtx>,
    file: RemoteFile,
    hash: String,
    progress: Arc<FileProgress>,
    sem: Arc<Semaphore>,
    idx: usize,
    record: Recorder,
) -> Result<FileOutcome> {
    let _permit = sem
        .acquire_owned()
        .await
        .map_err(|_| EmaError::Other("shutting down".into()))?;
    let out = download_file(&ctx, &file, &hash, &progress).await?;
    if let FileOutcome::Done { .. } = out {
        record.verified(&ctx, &file, idx)?;
    }
    Ok::<FileOutcome, EmaError>(out)
}

/// Notes verified files in the model's metadata.
#[derive(Clone)]
struct Recorder {
    meta: Arc<Mutex<ModelMetadata>>,
    store: Store,
    files_done: Arc<AtomicU64>,
    last_meta_write: Arc<Mutex<Instant>>,
}

impl Recorder {
    /// File `idx` (`file`) was verified and placed.
    fn verified(&self, ctx: &JobCtx, file: &RemoteFile, idx: usize) -> Result<()> {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        let dest = ctx.model_dir.join(&file.path);
        let mtime = std::fs::metadata(&dest).ok().and_then(|m| mtime_ns(&m));
        let mut m = self.meta.lock().expect("meta lock");
        m.files[idx].verified_at = Some(now_rfc3339());
        m.files[idx].mtime_ns = mtime;
        m.updated_at = now_rfc3339();
        // Record progress at most once a second (the final write always happens); a file verified but not yet
        // recorded is adopted by its hash on the next run.
        let mut last = self.last_meta_write.lock().expect("meta write lock");
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            self.store.write_metadata(&m)?;
        }
        Ok(())
    }
}

/// Wait for every file task and sum up.
async fn gather(mut set: tokio::task::JoinSet<Result<FileOutcome>>) -> Fetched {
    let mut first_err: Option<EmaError> = None;
    let mut fetched_total = 0u64;
    let mut cancelled = false;
    let mut upstream_changed = false;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(FileOutcome::Done { fetched })) => fetched_total += fetched,
            Ok(Ok(FileOutcome::Cancelled)) => cancelled = true,
            Ok(Ok(FileOutcome::UpstreamChanged)) => upstream_changed = true,
            Ok(Err(e)) => {
                if first_err
                    .as_ref()
                    .is_none_or(|f| severity(&e) > severity(f))
                {
                    first_err = Some(e);
                }
            }
            Err(join) => {
                first_err.get_or_insert(EmaError::Other(format!("a download task failed: {join}")));
            }
        }
    }
    Fetched {
        fetched_total,
        cancelled,
        upstream_changed,
        first_err,
    }
}

fn severity(e: &EmaError) -> u8 {
    match e {
        EmaError::Integrity(_) => 5,
        EmaError::DiskSpace(_) => 4,
        EmaError::NotFound(_) => 3,
        EmaError::Hub(_) => 2,
        _ => 1,
    }
}
