//! The download manager.
//!
//! A model download resolves the revision to a commit, lists the tree at that commit, filters it with the
//! include/exclude globs, checks free disk space against the bytes still needed, and fetches every missing file
//! (at most `downloads.max_concurrent_downloads` files at once across all models, large files in
//! `connections_per_file` parallel Range parts). Each file is hashed as it arrives and lands in the model folder only
//! when its sha256 (LFS) or git blob sha1 matches; the sidecar metadata is rewritten atomically as files land and
//! says `verified` only when every file is present and matched.
//!
//! An advisory lock per model keeps two `ema` processes from working on the same model: the second one waits (a
//! `Log` event says so) and then finds the work done. Without a working `flock` the design stays safe: partials are
//! named by the expected hash and the writing process (`<hash>.<pid>.part`; the partial of a dead process is adopted
//! by an atomic rename) and every placement is an atomic rename of verified bytes.
//!
//! Unfinished downloads are persisted in `<models_dir>/.ema/downloads.json` ([`queue`]); pause, resume and cancel
//! requests written there by another process are obeyed within about a second.

mod file;
pub mod queue;
mod sink;
pub mod util;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};

use self::file::{FileOutcome, FileProgress};
use self::queue::{Queue, QueueEntry, QueueState};
pub use self::util::Control;
use self::util::TokenBucket;
use super::config::DownloadsConfig;
use super::config::hub_env::HubEnv;
use super::error::{EmaError, Result};
use super::events::{Availability, Event, EventBus, Severity};
use super::hub::{HttpFailure, HubClient, ModelInfo, RemoteFile};
use super::store::{
    FileRecord, METADATA_SCHEMA_VERSION, ModelMetadata, RepoId, Store, VerificationState, mtime_ns,
    now_rfc3339,
};

/// Retries of a metadata request when nothing answers (connection refused or connect timeout).
const QUICK_CONNECT_RETRIES: u32 = 2;

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

/// The in-process view of a running download.
struct JobHandle {
    control: watch::Sender<Control>,
    live: Arc<Mutex<LiveStats>>,
}

#[derive(Debug, Clone, Default)]
struct LiveStats {
    state: Option<QueueState>,
    revision: Option<String>,
    commit: Option<String>,
    bytes_done: u64,
    bytes_total: u64,
    files_done: usize,
    files_total: usize,
    rate: f64,
    eta: Option<f64>,
}

struct Inner {
    cfg: DownloadsConfig,
    store: Store,
    env: HubEnv,
    hub: HubClient,
    bus: EventBus,
    files: Arc<Semaphore>,
    bucket: Option<Arc<TokenBucket>>,
    queue: Queue,
    jobs: Mutex<HashMap<RepoId, JobHandle>>,
}

/// The download manager: one per process, cheap to clone.
#[derive(Clone)]
pub struct DownloadManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DownloadManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadManager")
            .field("store", &self.inner.store.root())
            .finish()
    }
}

/// Is this I/O error "no space left on device" (or a quota)?
pub(crate) fn is_enospc(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

/// Extra bytes to keep free beyond what a download needs: `EMA_DISK_RESERVE_MB` (default 0). Operators use it to
/// keep headroom on a shared volume; it also lets tests exercise the pre-flight honestly.
pub fn disk_reserve_bytes() -> u64 {
    std::env::var("EMA_DISK_RESERVE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|mb| (mb * 1024.0 * 1024.0) as u64)
        .unwrap_or(0)
}

fn build_globs(globs: &[String], what: &str) -> Result<Option<GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| {
            EmaError::Config(format!(
                "invalid {what} glob {g:?}: {e}; use patterns like `*.safetensors` or `onnx/*`"
            ))
        })?;
        b.add(glob);
    }
    b.build()
        .map(Some)
        .map_err(|e| EmaError::Config(format!("invalid {what} globs: {e}")))
}

/// Keep the files matching `include` (all when empty) and not matching `exclude`.
pub fn filter_files(
    files: Vec<RemoteFile>,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<RemoteFile>> {
    let inc = build_globs(include, "--include")?;
    let exc = build_globs(exclude, "--exclude")?;
    Ok(files
        .into_iter()
        .filter(|f| inc.as_ref().is_none_or(|g| g.is_match(&f.path)))
        .filter(|f| exc.as_ref().is_none_or(|g| !g.is_match(&f.path)))
        .collect())
}

/// Releases the model lock when dropped.
struct ModelLock(std::fs::File);

impl Drop for ModelLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

impl DownloadManager {
    /// A manager for `store`, talking to the hub described by `env`.
    pub fn new(cfg: DownloadsConfig, store: Store, env: HubEnv, bus: EventBus) -> Result<Self> {
        let hub = HubClient::new(&env, &cfg)?;
        let bucket = TokenBucket::from_mbps(cfg.bandwidth_limit_mbps).map(Arc::new);
        Ok(DownloadManager {
            inner: Arc::new(Inner {
                files: Arc::new(Semaphore::new(cfg.max_concurrent_downloads.max(1) as usize)),
                queue: Queue::new(&store),
                cfg,
                store,
                env,
                hub,
                bus,
                bucket,
                jobs: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn hub(&self) -> &HubClient {
        &self.inner.hub
    }

    /// The persisted queue of this store.
    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// Repos downloading in this process right now.
    pub fn in_process(&self) -> Vec<RepoId> {
        self.inner
            .jobs
            .lock()
            .expect("jobs lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Every download: in this process (live figures) and persisted by others (last written figures).
    pub fn downloads(&self) -> Vec<DownloadSnapshot> {
        let jobs = self.inner.jobs.lock().expect("jobs lock");
        let mut out = Vec::new();
        for e in self.inner.queue.list() {
            if let Some(j) = jobs.get(&e.repo_id) {
                let l = j.live.lock().expect("live lock").clone();
                out.push(DownloadSnapshot {
                    model_id: e.repo_id.to_string(),
                    state: l.state.unwrap_or(e.state),
                    control: *j.control.borrow(),
                    revision: l.revision.or(e.revision),
                    commit: l.commit.or(e.commit),
                    bytes_done: l.bytes_done,
                    bytes_total: l.bytes_total,
                    files_done: l.files_done,
                    files_total: l.files_total,
                    rate_bytes_per_sec: l.rate,
                    eta_seconds: l.eta,
                    pid: Some(std::process::id()),
                    in_process: true,
                    error: e.error,
                });
            } else {
                out.push(snapshot_of_entry(e));
            }
        }
        out
    }

    /// Pause a download (here or in another process). Files stop at their current byte; partials are kept.
    pub fn pause(&self, repo: &RepoId) -> Result<()> {
        self.set_control(repo, Control::Pause)
    }

    /// Resume a paused download in whichever process holds it. (A download nobody runs any more is continued with
    /// [`DownloadManager::download`] or [`DownloadManager::resume_unfinished`].)
    pub fn resume(&self, repo: &RepoId) -> Result<()> {
        self.set_control(repo, Control::Run)
    }

    /// Cancel a download: it stops, its partial data is deleted and it leaves the queue.
    pub fn cancel(&self, repo: &RepoId) -> Result<()> {
        let running_here = self
            .inner
            .jobs
            .lock()
            .expect("jobs lock")
            .contains_key(repo);
        let alive_elsewhere = self
            .inner
            .queue
            .get(repo)
            .and_then(|e| e.pid)
            .is_some_and(|p| p != std::process::id() && pid_alive(p));
        self.set_control(repo, Control::Cancel)?;
        if !running_here && !alive_elsewhere {
            // Nobody will act on the request: clean up here.
            self.inner.queue.remove(repo)?;
            let _ = std::fs::remove_dir_all(self.inner.store.partial_dir(repo));
            self.inner.bus.emit(Event::DownloadCancelled {
                model_id: repo.to_string(),
            });
        }
        Ok(())
    }

    fn set_control(&self, repo: &RepoId, c: Control) -> Result<()> {
        let found = self.inner.queue.modify(repo, |e| {
            e.control = c;
            if c == Control::Pause {
                e.state = QueueState::Paused;
            }
        })?;
        let local = self
            .inner
            .jobs
            .lock()
            .expect("jobs lock")
            .get(repo)
            .map(|j| j.control.clone());
        match local {
            Some(tx) => {
                apply_control(&self.inner.bus, repo, &tx, c);
                Ok(())
            }
            None if found => Ok(()),
            None => Err(EmaError::NotFound(format!(
                "no download of {repo} is queued or running; start one with `ema download {repo}`"
            ))),
        }
    }

    /// Continue every persisted download nobody is working on (after a crash or a restart). Returns one result per
    /// download, in queue order.
    pub async fn resume_unfinished(&self) -> Vec<(RepoId, Result<DownloadReport>)> {
        let mut out = Vec::new();
        for e in self.inner.queue.list() {
            let alive = e
                .pid
                .is_some_and(|p| p != std::process::id() && pid_alive(p));
            if alive
                || self
                    .inner
                    .jobs
                    .lock()
                    .expect("jobs lock")
                    .contains_key(&e.repo_id)
            {
                continue;
            }
            if e.control == Control::Pause {
                let _ = self
                    .inner
                    .queue
                    .modify(&e.repo_id, |x| x.control = Control::Run);
            }
            let opts = DownloadOptions {
                revision: e.revision.clone(),
                include: e.include.clone(),
                exclude: e.exclude.clone(),
            };
            let r = self.download(&e.repo_id, opts).await;
            out.push((e.repo_id, r));
        }
        out
    }

    /// Download `repo` and wait for the outcome. Events go to the bus all along. Safe to call from several tasks
    /// for different repos; a second call for a repo already downloading in this process is refused.
    pub async fn download(&self, repo: &RepoId, opts: DownloadOptions) -> Result<DownloadReport> {
        let inner = &self.inner;
        // Validate globs before anything is persisted (or reported offline).
        build_globs(&opts.include, "--include")?;
        build_globs(&opts.exclude, "--exclude")?;
        if inner.env.offline {
            return self.offline_report(repo, &opts);
        }
        if let Some(tok) = &inner.env.token
            && inner.hub.token_withheld()
        {
            let _ = tok;
            inner.bus.emit(Event::Log {
                level: Severity::Warning,
                message: format!(
                    "not sending the token to {}: plain http to a non-loopback host (set \
                     downloads.allow_token_over_http to allow it)",
                    inner.hub.endpoint()
                ),
            });
        }
        inner.store.ensure()?;
        let (tx, rx) = watch::channel(Control::Run);
        let live = Arc::new(Mutex::new(LiveStats {
            state: Some(QueueState::Queued),
            revision: opts.revision.clone(),
            ..Default::default()
        }));
        {
            let mut jobs = inner.jobs.lock().expect("jobs lock");
            if jobs.contains_key(repo) {
                return Err(EmaError::Config(format!(
                    "{repo} is already downloading in this process; wait for it or cancel it first"
                )));
            }
            jobs.insert(
                repo.clone(),
                JobHandle {
                    control: tx.clone(),
                    live: live.clone(),
                },
            );
        }
        let result = self.run_job(repo, &opts, tx, rx, live).await;
        inner.jobs.lock().expect("jobs lock").remove(repo);
        match &result {
            Ok(r) if r.completed => {
                let _ = inner.queue.remove(repo);
            }
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                if matches!(e, EmaError::NotFound(_) | EmaError::Config(_)) {
                    // Nothing to resume: a typo or a missing revision stays missing.
                    if inner
                        .queue
                        .get(repo)
                        .is_some_and(|q| q.pid == Some(std::process::id()))
                    {
                        let _ = inner.queue.remove(repo);
                    }
                } else {
                    let _ = inner.queue.modify(repo, |q| {
                        if q.pid == Some(std::process::id()) {
                            q.state = QueueState::Failed;
                            q.pid = None;
                            q.error = Some(msg.clone());
                        }
                    });
                }
                inner.bus.emit(Event::DownloadFailed {
                    model_id: repo.to_string(),
                    error: msg,
                    exit_code: e.exit_code(),
                });
            }
        }
        result
    }

    async fn run_job(
        &self,
        repo: &RepoId,
        opts: &DownloadOptions,
        tx: watch::Sender<Control>,
        mut rx: watch::Receiver<Control>,
        live: Arc<Mutex<LiveStats>>,
    ) -> Result<DownloadReport> {
        let inner = &self.inner;
        let started = Instant::now();
        // One process per model: wait for another one to finish (it owns the queue entry meanwhile).
        let _lock = self.lock_model(repo, &mut rx).await?;
        if *rx.borrow() == Control::Cancel {
            return self.finish_cancelled(repo, started);
        }
        inner
            .queue
            .upsert_started(repo, opts.revision.as_deref(), &opts.include, &opts.exclude)?;
        // A pause requested before we started (e.g. persisted) is honoured at once.
        if let Some(e) = inner.queue.get(repo)
            && e.control != Control::Run
        {
            let _ = tx.send(e.control);
        }
        // Watch the persisted queue for requests from other processes.
        let watcher = {
            let queue = inner.queue.clone();
            let repo = repo.clone();
            let tx = tx.clone();
            let bus = inner.bus.clone();
            let live = live.clone();
            tokio::spawn(async move {
                let mut last_write = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let want = queue.get(&repo).map(|e| e.control).unwrap_or(Control::Run);
                    if want != *tx.borrow() {
                        apply_control(&bus, &repo, &tx, want);
                    }
                    if last_write.elapsed() >= Duration::from_secs(2) {
                        last_write = Instant::now();
                        let l = live.lock().expect("live lock").clone();
                        let _ = queue.modify(&repo, |e| {
                            e.bytes_done = l.bytes_done;
                            e.bytes_total = l.bytes_total;
                            e.files_done = l.files_done;
                            e.files_total = l.files_total;
                            e.rate_bytes_per_sec = l.rate;
                            if let Some(s) = l.state {
                                e.state = s;
                            }
                            e.commit = l.commit.clone();
                        });
                    }
                }
            })
        };
        let _watcher_guard = AbortOnDrop(watcher);

        // A file whose upstream changed under the same commit (a mirror being refreshed) restarts the round with a
        // fresh listing; verified files are kept.
        for round in 0..3 {
            match self.run_round(repo, opts, &rx, &live, started).await? {
                Some(report) => return Ok(report),
                None => {
                    self.inner.bus.emit(Event::Log {
                        level: Severity::Warning,
                        message: format!(
                            "the files of {repo} changed upstream during the download; listing them again (round {})",
                            round + 2
                        ),
                    });
                }
            }
        }
        Err(EmaError::Hub(format!(
            "the files of {repo} keep changing upstream during the download; retry later"
        )))
    }

    /// One pass: resolve, list, fetch. `None` when a file changed upstream and the listing must be fetched again.
    async fn run_round(
        &self,
        repo: &RepoId,
        opts: &DownloadOptions,
        rx: &watch::Receiver<Control>,
        live: &Arc<Mutex<LiveStats>>,
        started: Instant,
    ) -> Result<Option<DownloadReport>> {
        let inner = &self.inner;
        // Resolve the revision and list the files.
        let info = self
            .with_retries(repo, || {
                inner.hub.model_info(repo, opts.revision.as_deref())
            })
            .await?;
        let commit = info.commit.clone();
        let tree = self
            .with_retries(repo, || inner.hub.list_tree(repo, &commit))
            .await?;
        cross_check(repo, &info, &tree)?;
        let total_listed = tree.len();
        let files = filter_files(tree, &opts.include, &opts.exclude)?;
        if files.is_empty() {
            return Err(EmaError::NotFound(format!(
                "none of the {total_listed} files of {repo} at {commit} matches the --include/--exclude globs; \
                 check the patterns"
            )));
        }
        let total_bytes: u64 = files.iter().map(|f| f.size).sum();
        {
            let mut l = live.lock().expect("live lock");
            l.commit = Some(commit.clone());
            l.bytes_total = total_bytes;
            l.files_total = files.len();
        }
        let model_dir = inner.store.model_dir(repo);
        let partial_dir = inner.store.partial_dir(repo);
        std::fs::create_dir_all(&partial_dir)
            .map_err(|e| EmaError::io("cannot create directory", &partial_dir, e))?;

        // What is already in place (verified before, or adoptable by hash)?
        let previous = inner.store.read_metadata(repo).ok().flatten();
        let mut records: Vec<FileRecord> = Vec::with_capacity(files.len());
        let mut todo: Vec<(usize, String)> = Vec::new();
        let mut present_bytes = 0u64;
        for (i, f) in files.iter().enumerate() {
            let hash = f
                .expected_hash()
                .expect("validated listing has a hash")
                .to_string();
            let rec = FileRecord {
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
                git_sha1: f.git_sha1.clone(),
                lfs: f.is_lfs(),
                verified_at: None,
                mtime_ns: None,
            };
            match already_present(&model_dir, f, &hash, previous.as_ref()) {
                Some((verified_at, mtime)) => {
                    present_bytes += f.size;
                    records.push(FileRecord {
                        verified_at: Some(verified_at),
                        mtime_ns: Some(mtime),
                        ..rec
                    });
                }
                None => {
                    records.push(rec);
                    todo.push((i, hash));
                }
            }
        }

        // Disk pre-flight against the bytes still needed.
        let needed: u64 = todo
            .iter()
            .map(|(i, h)| file::bytes_remaining(&partial_dir, h, files[*i].size))
            .sum();
        check_disk(&partial_dir, needed)?;

        let now = now_rfc3339();
        let mut meta = ModelMetadata {
            schema_version: METADATA_SCHEMA_VERSION,
            repo_id: repo.clone(),
            requested_revision: opts.revision.clone().unwrap_or_else(|| "main".to_string()),
            commit: Some(commit.clone()),
            endpoint: Some(
                inner
                    .hub
                    .endpoint()
                    .as_str()
                    .trim_end_matches('/')
                    .to_string(),
            ),
            files: records,
            total_size: total_bytes,
            pipeline_tag: info.pipeline_tag.clone(),
            library_name: info.library_name.clone(),
            tags: info.tags.clone(),
            parameters: info.parameters,
            created_at: previous
                .as_ref()
                .map(|p| p.created_at.clone())
                .unwrap_or_else(|| now.clone()),
            updated_at: now.clone(),
            last_verified_at: None,
            verification: VerificationState::Unverified,
        };
        let was_available = previous.as_ref().is_some_and(|p| {
            p.verification == VerificationState::Verified && p.commit.as_deref() == Some(&commit)
        });
        if todo.is_empty() {
            meta.verification = VerificationState::Verified;
            meta.last_verified_at = Some(now.clone());
            inner.store.write_metadata(&meta)?;
            let _ = std::fs::remove_dir(&partial_dir);
            if !was_available {
                inner.bus.emit(Event::AvailabilityChanged {
                    model_id: repo.to_string(),
                    old_status: None,
                    new_status: Availability::Available,
                });
            }
            inner.bus.emit(Event::DownloadFinished {
                model_id: repo.to_string(),
                commit: commit.clone(),
                bytes: 0,
                seconds: started.elapsed().as_secs_f64(),
            });
            return Ok(Some(DownloadReport {
                model_id: repo.to_string(),
                commit,
                path: model_dir,
                files: files.len(),
                files_already_present: files.len(),
                total_bytes,
                bytes_fetched: 0,
                seconds: started.elapsed().as_secs_f64(),
                completed: true,
                offline: false,
            }));
        }
        inner.store.write_metadata(&meta)?;
        inner.bus.emit(Event::DownloadQueued {
            model_id: repo.to_string(),
            revision: opts.revision.clone().unwrap_or_else(|| "main".to_string()),
            files: files.len(),
            total_bytes,
        });
        inner.bus.emit(Event::AvailabilityChanged {
            model_id: repo.to_string(),
            old_status: previous.as_ref().map(|_| Availability::Incomplete),
            new_status: Availability::Downloading,
        });
        inner.bus.emit(Event::DownloadStarted {
            model_id: repo.to_string(),
            commit: commit.clone(),
        });
        live.lock().expect("live lock").state = Some(QueueState::Downloading);
        let _ = inner.queue.modify(repo, |e| {
            e.state = QueueState::Downloading;
            e.commit = Some(commit.clone());
            e.bytes_total = total_bytes;
        });

        let ctx = Arc::new(JobCtx {
            hub: inner.hub.clone(),
            repo: repo.clone(),
            commit: commit.clone(),
            cfg: inner.cfg.clone(),
            bus: inner.bus.clone(),
            bucket: inner.bucket.clone(),
            control: rx.clone(),
            model_dir: model_dir.clone(),
            partial_dir: partial_dir.clone(),
            bytes_done: AtomicU64::new(present_bytes),
        });
        let progresses: Vec<Arc<FileProgress>> = todo
            .iter()
            .map(|(i, _)| {
                Arc::new(FileProgress {
                    path: files[*i].path.clone(),
                    total: files[*i].size,
                    done: AtomicU64::new(0),
                    active: std::sync::atomic::AtomicBool::new(false),
                })
            })
            .collect();
        let files_done = Arc::new(AtomicU64::new((files.len() - todo.len()) as u64));
        let ticker = tokio::spawn(progress_ticker(
            ctx.clone(),
            progresses.clone(),
            files_done.clone(),
            files.len(),
            total_bytes,
            live.clone(),
        ));
        let _ticker_guard = AbortOnDrop(ticker);
        let meta = Arc::new(Mutex::new(meta));
        let last_meta_write = Arc::new(Mutex::new(Instant::now()));

        let mut set = tokio::task::JoinSet::new();
        for (k, (i, hash)) in todo.iter().enumerate() {
            let ctx = ctx.clone();
            let file = files[*i].clone();
            let hash = hash.clone();
            let progress = progresses[k].clone();
            let sem = inner.files.clone();
            let meta = meta.clone();
            let store = inner.store.clone();
            let files_done = files_done.clone();
            let last_meta_write = last_meta_write.clone();
            let idx = *i;
            set.spawn(async move {
                let _permit = sem
                    .acquire_owned()
                    .await
                    .map_err(|_| EmaError::Other("shutting down".into()))?;
                let out = file::download_file(&ctx, &file, &hash, &progress).await?;
                if let FileOutcome::Done { .. } = out {
                    files_done.fetch_add(1, Ordering::Relaxed);
                    let dest = ctx.model_dir.join(&file.path);
                    let mtime = std::fs::metadata(&dest).ok().and_then(|m| mtime_ns(&m));
                    let mut m = meta.lock().expect("meta lock");
                    m.files[idx].verified_at = Some(now_rfc3339());
                    m.files[idx].mtime_ns = mtime;
                    m.updated_at = now_rfc3339();
                    // Record progress at most once a second (the final write always happens); a file verified
                    // but not yet recorded is adopted by its hash on the next run.
                    let mut last = last_meta_write.lock().expect("meta write lock");
                    if last.elapsed() >= Duration::from_secs(1) {
                        *last = Instant::now();
                        store.write_metadata(&m)?;
                    }
                }
                Ok::<FileOutcome, EmaError>(out)
            });
        }
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
                    first_err
                        .get_or_insert(EmaError::Other(format!("a download task failed: {join}")));
                }
            }
        }
        if cancelled || *rx.borrow() == Control::Cancel {
            return self.finish_cancelled(repo, started).map(Some);
        }
        if upstream_changed && first_err.is_none() {
            return Ok(None);
        }
        if let Some(e) = first_err {
            {
                let mut m = meta.lock().expect("meta lock");
                if matches!(e, EmaError::Integrity(_)) {
                    m.verification = VerificationState::Failed;
                }
                m.updated_at = now_rfc3339();
                let _ = inner.store.write_metadata(&m);
            }
            inner.bus.emit(Event::AvailabilityChanged {
                model_id: repo.to_string(),
                old_status: Some(Availability::Downloading),
                new_status: if matches!(e, EmaError::Integrity(_)) {
                    Availability::Corrupted
                } else {
                    Availability::Incomplete
                },
            });
            return Err(e);
        }
        // Every file verified: the model is available.
        let now = now_rfc3339();
        {
            let mut m = meta.lock().expect("meta lock");
            m.verification = VerificationState::Verified;
            m.last_verified_at = Some(now.clone());
            m.updated_at = now;
            inner.store.write_metadata(&m)?;
        }
        let _ = std::fs::remove_dir_all(&partial_dir);
        let seconds = started.elapsed().as_secs_f64();
        emit_model_progress(
            &ctx,
            files.len(),
            files.len(),
            total_bytes,
            total_bytes,
            0.0,
            Some(0.0),
        );
        inner.bus.emit(Event::DownloadFinished {
            model_id: repo.to_string(),
            commit: commit.clone(),
            bytes: fetched_total,
            seconds,
        });
        inner.bus.emit(Event::AvailabilityChanged {
            model_id: repo.to_string(),
            old_status: Some(Availability::Downloading),
            new_status: Availability::Available,
        });
        Ok(Some(DownloadReport {
            model_id: repo.to_string(),
            commit,
            path: model_dir,
            files: files.len(),
            files_already_present: files.len() - todo.len(),
            total_bytes,
            bytes_fetched: fetched_total,
            seconds,
            completed: true,
            offline: false,
        }))
    }

    fn finish_cancelled(&self, repo: &RepoId, started: Instant) -> Result<DownloadReport> {
        let inner = &self.inner;
        let _ = std::fs::remove_dir_all(inner.store.partial_dir(repo));
        let _ = inner.queue.remove(repo);
        inner.bus.emit(Event::DownloadCancelled {
            model_id: repo.to_string(),
        });
        Ok(DownloadReport {
            model_id: repo.to_string(),
            commit: String::new(),
            path: inner.store.model_dir(repo),
            files: 0,
            files_already_present: 0,
            total_bytes: 0,
            bytes_fetched: 0,
            seconds: started.elapsed().as_secs_f64(),
            completed: false,
            offline: false,
        })
    }

    /// With HF_HUB_OFFLINE set nothing is fetched, but a model already complete in the store (at the asked
    /// revision, with every wanted file present and matching its recorded hash) is a success, as
    /// `huggingface_hub` returns its local snapshot offline. Anything else is an error naming what is missing.
    fn offline_report(&self, repo: &RepoId, opts: &DownloadOptions) -> Result<DownloadReport> {
        let started = Instant::now();
        let inner = &self.inner;
        let refuse = |why: String| {
            EmaError::Hub(format!(
                "HF_HUB_OFFLINE is set: ema does not touch the network, and {why}; unset HF_HUB_OFFLINE (or set it \
                 to 0) to download"
            ))
        };
        let meta = match inner.store.read_metadata(repo) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(refuse(format!("{repo} is not in the store"))),
            Err(e) => return Err(refuse(format!("{repo}'s metadata cannot be read ({e})"))),
        };
        let Some(commit) = meta.commit.clone() else {
            return Err(refuse(format!("{repo} has no pinned commit in the store")));
        };
        if let Some(rev) = &opts.revision
            && rev != &meta.requested_revision
            && rev != &commit
        {
            let at = if meta.requested_revision == commit {
                format!("commit {commit}")
            } else {
                format!("{} (commit {commit})", meta.requested_revision)
            };
            return Err(refuse(format!(
                "the store has {repo} at {at}, not at revision {rev:?}"
            )));
        }
        let wanted: Vec<RemoteFile> = meta
            .files
            .iter()
            .map(|r| RemoteFile {
                path: r.path.clone(),
                size: r.size,
                git_sha1: r.git_sha1.clone(),
                sha256: if r.lfs { r.sha256.clone() } else { None },
            })
            .collect();
        let wanted = filter_files(wanted, &opts.include, &opts.exclude)?;
        if wanted.is_empty() {
            return Err(refuse(format!(
                "none of the {} files the store has of {repo} matches the --include/--exclude globs",
                meta.files.len()
            )));
        }
        let model_dir = inner.store.model_dir(repo);
        for f in &wanted {
            let hash = f.expected_hash().ok_or_else(|| {
                refuse(format!(
                    "{} of {repo} has no recorded hash to check it against",
                    f.path
                ))
            })?;
            if already_present(&model_dir, f, hash, Some(&meta)).is_none() {
                return Err(refuse(format!(
                    "{} of {repo} is missing or damaged in the store",
                    f.path
                )));
            }
        }
        Ok(DownloadReport {
            model_id: repo.to_string(),
            commit,
            path: model_dir,
            files: wanted.len(),
            files_already_present: wanted.len(),
            total_bytes: wanted.iter().map(|f| f.size).sum(),
            bytes_fetched: 0,
            seconds: started.elapsed().as_secs_f64(),
            completed: true,
            offline: true,
        })
    }

    async fn lock_model(
        &self,
        repo: &RepoId,
        rx: &mut watch::Receiver<Control>,
    ) -> Result<ModelLock> {
        let path = self.inner.store.lock_path(repo);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| EmaError::io("cannot create directory", dir, e))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| EmaError::io("cannot open lock file", &path, e))?;
        let mut told = false;
        loop {
            match FileExt::try_lock_exclusive(&f) {
                Ok(true) => return Ok(ModelLock(f)),
                Ok(false) => {}
                // flock unsupported here: proceed; unique partials and atomic renames keep the model whole.
                Err(_) => return Ok(ModelLock(f)),
            }
            if !told {
                told = true;
                self.inner.bus.emit(Event::Log {
                    level: Severity::Info,
                    message: format!(
                        "another ema process is downloading {repo}; waiting for it to finish (lock {})",
                        path.display()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if *rx.borrow() == Control::Cancel {
                return Ok(ModelLock(f));
            }
        }
    }

    /// Run a metadata request with the retry policy.
    async fn with_retries<T, F, Fut>(&self, repo: &RepoId, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, HttpFailure>>,
    {
        let cfg = &self.inner.cfg;
        let mut attempt = 0u32;
        loop {
            let (message, retry_after, quick) = match f().await {
                Ok(v) => return Ok(v),
                Err(HttpFailure::Fatal(e)) => return Err(e),
                Err(HttpFailure::Transient {
                    message,
                    retry_after,
                }) => (message, retry_after, false),
                Err(HttpFailure::Unreachable { message }) => (message, None, true),
            };
            attempt += 1;
            // Nothing answering at all gets a few quick tries (a mirror being restarted), not minutes of backoff.
            let (tries, base) = if quick {
                (
                    cfg.max_retries.min(QUICK_CONNECT_RETRIES),
                    cfg.retry_delay_seconds.min(1.0),
                )
            } else {
                (cfg.max_retries, cfg.retry_delay_seconds)
            };
            if attempt > tries {
                let endpoint = self.inner.hub.endpoint();
                return Err(EmaError::Hub(if quick {
                    format!(
                        "{message} (after {attempt} attempts); nothing answers at {endpoint}: check that the hub \
                         or mirror is running and that HF_ENDPOINT is right (or set HF_HUB_OFFLINE=1 to work with \
                         local models only)"
                    )
                } else {
                    format!(
                        "{message} (after {attempt} attempts); check HF_ENDPOINT ({endpoint}) and the network, \
                         then retry"
                    )
                }));
            }
            let d = util::backoff(attempt, base, retry_after, cfg.max_retry_after_seconds);
            self.inner.bus.emit(Event::Retry {
                model_id: repo.to_string(),
                path: String::new(),
                attempt,
                delay_ms: d.as_millis() as u64,
                reason: message,
            });
            tokio::time::sleep(d).await;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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

fn apply_control(bus: &EventBus, repo: &RepoId, tx: &watch::Sender<Control>, c: Control) {
    let old = *tx.borrow();
    if old == c {
        return;
    }
    let _ = tx.send(c);
    let model_id = repo.to_string();
    match c {
        Control::Pause => {
            bus.emit(Event::DownloadPaused {
                model_id: model_id.clone(),
            });
            bus.emit(Event::AvailabilityChanged {
                model_id,
                old_status: Some(Availability::Downloading),
                new_status: Availability::Paused,
            });
        }
        Control::Run => {
            bus.emit(Event::DownloadResumed {
                model_id: model_id.clone(),
            });
            bus.emit(Event::AvailabilityChanged {
                model_id,
                old_status: Some(Availability::Paused),
                new_status: Availability::Downloading,
            });
        }
        Control::Cancel => {}
    }
}

/// Is a process with this pid alive (signal 0)?
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process's existence.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn snapshot_of_entry(e: QueueEntry) -> DownloadSnapshot {
    let alive = e.pid.is_some_and(pid_alive);
    // Another live process's last figures; a paused, failed or finished entry is not moving.
    let rate = if alive && e.state == QueueState::Downloading {
        e.rate_bytes_per_sec
    } else {
        0.0
    };
    let eta = (rate > 0.0).then(|| e.bytes_total.saturating_sub(e.bytes_done) as f64 / rate);
    DownloadSnapshot {
        model_id: e.repo_id.to_string(),
        state: if !alive && e.state == QueueState::Downloading {
            QueueState::Failed
        } else {
            e.state
        },
        control: e.control,
        revision: e.revision,
        commit: e.commit,
        bytes_done: e.bytes_done,
        bytes_total: e.bytes_total,
        files_done: e.files_done,
        files_total: e.files_total,
        rate_bytes_per_sec: rate,
        eta_seconds: eta,
        pid: if alive { e.pid } else { None },
        in_process: false,
        error: if !alive && e.state == QueueState::Downloading {
            Some(
                "the process downloading it stopped; run `ema downloads resume` to continue"
                    .to_string(),
            )
        } else {
            e.error
        },
    }
}

/// A file already in the model folder counts when the previous metadata verified the same hash and size and the
/// mtime is unchanged, or when hashing it now gives the expected hash (a crash between placement and the metadata
/// write, or files put there by another tool). Returns (verified_at, mtime).
fn already_present(
    model_dir: &std::path::Path,
    f: &RemoteFile,
    hash: &str,
    previous: Option<&ModelMetadata>,
) -> Option<(String, i64)> {
    let dest = model_dir.join(&f.path);
    let m = std::fs::symlink_metadata(&dest).ok()?;
    if !m.is_file() || m.len() != f.size {
        return None;
    }
    let mtime = mtime_ns(&m)?;
    if let Some(prev) = previous
        && let Some(r) = prev.files.iter().find(|r| r.path == f.path)
        && r.size == f.size
        && r.verified_at.is_some()
        && r.mtime_ns == Some(mtime)
        && (r.sha256.as_deref() == Some(hash)
            || (!f.is_lfs() && r.git_sha1.as_deref() == Some(hash)))
    {
        return Some((r.verified_at.clone().unwrap_or_else(now_rfc3339), mtime));
    }
    match util::hash_file(&dest, f.is_lfs(), f.size) {
        Ok(h) if h == hash => Some((now_rfc3339(), mtime)),
        _ => None,
    }
}

/// Sizes in the tree listing and the model info's siblings must agree.
fn cross_check(repo: &RepoId, info: &ModelInfo, tree: &[RemoteFile]) -> Result<()> {
    let by_path: HashMap<&str, &RemoteFile> =
        info.siblings.iter().map(|s| (s.path.as_str(), s)).collect();
    for f in tree {
        if let Some(s) = by_path.get(f.path.as_str()) {
            let size_known = s.size > 0 || s.sha256.is_some() || s.git_sha1.is_some();
            if size_known && s.size != f.size {
                return Err(EmaError::Integrity(format!(
                    "the hub lists {} of {repo} with {} bytes in the model info but {} in the tree; refusing an \
                     inconsistent listing",
                    f.path, s.size, f.size
                )));
            }
            if let (Some(a), Some(b)) = (&s.sha256, &f.sha256)
                && a != b
            {
                return Err(EmaError::Integrity(format!(
                    "the hub lists two different sha256 for {} of {repo}; refusing an inconsistent listing",
                    f.path
                )));
            }
        }
    }
    Ok(())
}

/// Fail before starting when the volume holding the partials (the same volume as the model folder) has less free
/// space than `needed` plus the configured reserve.
pub fn check_disk(dir: &std::path::Path, needed: u64) -> Result<()> {
    let free =
        fs4::available_space(dir).map_err(|e| EmaError::io("cannot read free space of", dir, e))?;
    let reserve = disk_reserve_bytes();
    let required = needed.saturating_add(reserve);
    if free < required {
        let reserve_note = if reserve > 0 {
            format!(
                " (including EMA_DISK_RESERVE_MB = {} kept free)",
                human_bytes(reserve)
            )
        } else {
            String::new()
        };
        return Err(EmaError::DiskSpace(format!(
            "not enough disk space at {}: {} required{reserve_note}, {} free; free some space, choose another \
             --models-dir, or narrow the download with --include/--exclude",
            dir.display(),
            human_bytes(required),
            human_bytes(free)
        )));
    }
    Ok(())
}

/// `1.5 GiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn emit_model_progress(
    ctx: &JobCtx,
    files_done: usize,
    files_total: usize,
    done: u64,
    total: u64,
    rate: f64,
    eta: Option<f64>,
) {
    let pct = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    ctx.bus.emit(Event::ModelProgress {
        model_id: ctx.repo.to_string(),
        bytes_done: done,
        bytes_total: total,
        files_done,
        files_total,
        progress_percent: (pct * 10.0).round() / 10.0,
        rate_bytes_per_sec: rate.round(),
        eta_seconds: eta.map(|e| (e * 10.0).round() / 10.0),
    });
}

/// Emits per-file and per-model progress at most 4 times a second, with a smoothed rate and an ETA.
async fn progress_ticker(
    ctx: Arc<JobCtx>,
    files: Vec<Arc<FileProgress>>,
    files_done: Arc<AtomicU64>,
    files_total: usize,
    total: u64,
    live: Arc<Mutex<LiveStats>>,
) {
    let mut last_done = ctx.bytes_done.load(Ordering::Relaxed);
    let mut last_t = Instant::now();
    let mut rate = 0.0f64;
    let mut last_file: Vec<u64> = vec![u64::MAX; files.len()];
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let done = ctx.bytes_done.load(Ordering::Relaxed).min(total);
        let dt = last_t.elapsed().as_secs_f64();
        if dt > 0.0 {
            let inst = done.saturating_sub(last_done) as f64 / dt;
            rate = if rate == 0.0 {
                inst
            } else {
                0.7 * rate + 0.3 * inst
            };
        }
        last_done = done;
        last_t = Instant::now();
        let paused = *ctx.control.borrow() != Control::Run;
        let eta = (rate > 1.0 && !paused).then(|| (total - done) as f64 / rate);
        for (k, f) in files.iter().enumerate() {
            let d = f.done.load(Ordering::Relaxed);
            if d != last_file[k] && (f.active.load(Ordering::Relaxed) || d == f.total) {
                last_file[k] = d;
                ctx.bus.emit(Event::FileProgress {
                    model_id: ctx.repo.to_string(),
                    path: f.path.clone(),
                    bytes_done: d,
                    bytes_total: f.total,
                });
            }
        }
        let fd = files_done.load(Ordering::Relaxed) as usize;
        emit_model_progress(
            &ctx,
            fd,
            files_total,
            done,
            total,
            if paused { 0.0 } else { rate },
            eta,
        );
        let mut l = live.lock().expect("live lock");
        l.bytes_done = done;
        l.files_done = fd;
        l.rate = rate;
        l.eta = eta;
        l.state = Some(if paused {
            QueueState::Paused
        } else {
            QueueState::Downloading
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rf(p: &str) -> RemoteFile {
        RemoteFile {
            path: p.into(),
            size: 1,
            git_sha1: Some("a".repeat(40)),
            sha256: None,
        }
    }

    #[test]
    fn globs_filter() {
        let files = vec![
            rf("config.json"),
            rf("model.safetensors"),
            rf("onnx/model.onnx"),
            rf("README.md"),
        ];
        let got: Vec<String> = filter_files(
            files.clone(),
            &["*.json".into(), "*.safetensors".into()],
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
        assert_eq!(got, vec!["config.json", "model.safetensors"]);
        let got: Vec<String> = filter_files(files, &[], &["onnx/*".into()])
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(got, vec!["config.json", "model.safetensors", "README.md"]);
        assert!(filter_files(vec![], &["[".into()], &[]).is_err());
    }

    #[test]
    fn disk_check_names_required_free_and_path() {
        let d = tempfile::tempdir().unwrap();
        let e = check_disk(d.path(), u64::MAX / 2).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, EmaError::DiskSpace(_)));
        assert!(
            m.contains("required")
                && m.contains("free")
                && m.contains(&d.path().display().to_string()),
            "{m}"
        );
        check_disk(d.path(), 1).unwrap();
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
