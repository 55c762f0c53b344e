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
//!
//! The layers, top-down: [`DownloadManager`] runs one job per model (this file: the per-model orchestration);
//! `plan` lists and plans a round, `fetch` runs a task per missing file, `file` makes attempts at one file,
//! `schedule` and `part` run its connections over Range parts, `sink` and `hasher` write and hash the blocks,
//! `partial` keeps the resumable state and `place` moves a verified file into the model folder.

mod control;
pub mod disk;
mod fetch;
mod file;
mod hasher;
mod job;
mod outcome;
mod part;
mod partial;
mod place;
pub mod plan;
mod progress;
pub mod queue;
mod schedule;
mod sink;
mod types;
pub mod util;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Semaphore, watch};

use self::control::{apply_control, lock_model, snapshot_of_entry, watch_queue};
use self::fetch::{Fetched, fetch_files};
use self::job::{JobCtx, LiveStats};
use self::plan::Plan;
use self::progress::{Tracking, emit_model_progress};
use self::queue::{Queue, QueueState};
pub use self::types::{DownloadOptions, DownloadReport, DownloadSnapshot};
pub use self::util::Control;
use self::util::{TokenBucket, pid_alive};
use super::config::DownloadsConfig;
use super::config::hub_env::HubEnv;
use super::error::{EmaError, Result};
use super::events::{Availability, Event, EventBus, Severity};
use super::hub::HubClient;
use super::store::{ModelMetadata, RepoId, Store, VerificationState, now_rfc3339};

/// The in-process view of a running download.
struct JobHandle {
    control: watch::Sender<Control>,
    live: Arc<Mutex<LiveStats>>,
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

    /// The persisted downloads nobody works on: no live other process holds them and no job of this process runs
    /// them (what a crash, a kill or a stop left behind). In queue order.
    pub fn orphaned(&self) -> Vec<queue::QueueEntry> {
        let running = self.inner.jobs.lock().expect("jobs lock");
        self.inner
            .queue
            .list()
            .into_iter()
            .filter(|e| {
                let other_alive = e
                    .pid
                    .is_some_and(|p| p != std::process::id() && pid_alive(p));
                !other_alive && !running.contains_key(&e.repo_id)
            })
            .collect()
    }

    /// Continue every persisted download nobody is working on (after a crash or a restart), paused ones included.
    /// Returns one result per download, in queue order.
    pub async fn resume_unfinished(&self) -> Vec<(RepoId, Result<DownloadReport>)> {
        let mut out = Vec::new();
        for e in self.orphaned() {
            if e.control == Control::Pause {
                let _ = self
                    .inner
                    .queue
                    .modify(&e.repo_id, |x| x.control = Control::Run);
            }
            let r = self.download(&e.repo_id, e.options()).await;
            out.push((e.repo_id, r));
        }
        out
    }

    /// Download `repo` and wait for the outcome. Events go to the bus all along. Safe to call from several tasks
    /// for different repos; a second call for a repo already downloading in this process is refused.
    pub async fn download(&self, repo: &RepoId, opts: DownloadOptions) -> Result<DownloadReport> {
        let inner = &self.inner;
        // Validate globs before anything is persisted (or reported offline).
        plan::validate_globs(&opts)?;
        if inner.env.offline {
            return plan::offline_report(&inner.store, repo, &opts);
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
        let _lock = lock_model(&inner.store, &inner.bus, repo, &mut rx).await?;
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
        let _watcher_guard = watch_queue(&inner.queue, repo, &tx, &inner.bus, &live);

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

    /// One pass: resolve, list, plan, fetch. `None` when a file changed upstream and the listing must be fetched
    /// again.
    async fn run_round(
        &self,
        repo: &RepoId,
        opts: &DownloadOptions,
        rx: &watch::Receiver<Control>,
        live: &Arc<Mutex<LiveStats>>,
        started: Instant,
    ) -> Result<Option<DownloadReport>> {
        let inner = &self.inner;
        let (info, files) =
            plan::list_files(&inner.hub, &inner.cfg, &inner.bus, repo, opts).await?;
        {
            let mut l = live.lock().expect("live lock");
            l.commit = Some(info.commit.clone());
            l.bytes_total = files.iter().map(|f| f.size).sum();
            l.files_total = files.len();
        }
        let (plan, meta) =
            plan::plan_round(&inner.store, repo, opts, inner.hub.endpoint(), &info, files)?;
        if plan.todo.is_empty() {
            return self.finish_present(repo, &plan, meta, started).map(Some);
        }
        inner.store.write_metadata(&meta)?;
        self.announce_start(repo, opts, &plan, live);

        let ctx = Arc::new(JobCtx {
            hub: inner.hub.clone(),
            repo: repo.clone(),
            commit: plan.commit.clone(),
            cfg: inner.cfg.clone(),
            bus: inner.bus.clone(),
            bucket: inner.bucket.clone(),
            control: rx.clone(),
            model_dir: plan.model_dir.clone(),
            partial_dir: plan.partial_dir.clone(),
            bytes_done: AtomicU64::new(plan.present_bytes),
        });
        let tracking = Tracking::start(&ctx, &plan.files, &plan.todo, plan.total_bytes, live);
        let meta = Arc::new(Mutex::new(meta));
        let fetched = fetch_files(
            &ctx,
            &plan.files,
            &plan.todo,
            &tracking,
            &inner.files,
            &inner.store,
            &meta,
        )
        .await;
        let Fetched {
            fetched_total,
            cancelled,
            upstream_changed,
            first_err,
        } = fetched;
        if cancelled || *rx.borrow() == Control::Cancel {
            return self.finish_cancelled(repo, started).map(Some);
        }
        if upstream_changed && first_err.is_none() {
            return Ok(None);
        }
        if let Some(e) = first_err {
            return Err(self.finish_failed(repo, &meta, e));
        }
        self.finish_verified(repo, &ctx, &plan, &meta, fetched_total, started)
            .map(Some)
    }

    /// Every wanted file was already in place: the model is verified without fetching anything.
    fn finish_present(
        &self,
        repo: &RepoId,
        plan: &Plan,
        mut meta: ModelMetadata,
        started: Instant,
    ) -> Result<DownloadReport> {
        let inner = &self.inner;
        meta.verification = VerificationState::Verified;
        meta.last_verified_at = Some(meta.updated_at.clone());
        meta.facts = local_facts(std::mem::take(&mut meta.facts), &plan.model_dir);
        inner.store.write_metadata(&meta)?;
        let _ = std::fs::remove_dir(&plan.partial_dir);
        if !plan.was_available() {
            inner.bus.emit(Event::AvailabilityChanged {
                model_id: repo.to_string(),
                old_status: None,
                new_status: Availability::Available,
            });
        }
        inner.bus.emit(Event::DownloadFinished {
            model_id: repo.to_string(),
            commit: plan.commit.clone(),
            bytes: 0,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(DownloadReport {
            model_id: repo.to_string(),
            commit: plan.commit.clone(),
            path: plan.model_dir.clone(),
            files: plan.files.len(),
            files_already_present: plan.files.len(),
            total_bytes: plan.total_bytes,
            bytes_fetched: 0,
            seconds: started.elapsed().as_secs_f64(),
            completed: true,
            offline: false,
        })
    }

    /// Files are to be fetched: say so (events, live figures, the persisted queue).
    fn announce_start(
        &self,
        repo: &RepoId,
        opts: &DownloadOptions,
        plan: &Plan,
        live: &Arc<Mutex<LiveStats>>,
    ) {
        let inner = &self.inner;
        inner.bus.emit(Event::DownloadQueued {
            model_id: repo.to_string(),
            revision: opts.revision.clone().unwrap_or_else(|| "main".to_string()),
            files: plan.files.len(),
            total_bytes: plan.total_bytes,
        });
        inner.bus.emit(Event::AvailabilityChanged {
            model_id: repo.to_string(),
            old_status: plan.previous.as_ref().map(|_| Availability::Incomplete),
            new_status: Availability::Downloading,
        });
        inner.bus.emit(Event::DownloadStarted {
            model_id: repo.to_string(),
            commit: plan.commit.clone(),
        });
        live.lock().expect("live lock").state = Some(QueueState::Downloading);
        let _ = inner.queue.modify(repo, |e| {
            e.state = QueueState::Downloading;
            e.commit = Some(plan.commit.clone());
            e.bytes_total = plan.total_bytes;
        });
    }

    /// A file failed: the metadata says so (failed verification on an integrity error) and the model is left
    /// incomplete or corrupted. Returns the error.
    fn finish_failed(
        &self,
        repo: &RepoId,
        meta: &Arc<Mutex<ModelMetadata>>,
        e: EmaError,
    ) -> EmaError {
        let inner = &self.inner;
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
        e
    }

    /// Every file verified: the model is available.
    fn finish_verified(
        &self,
        repo: &RepoId,
        ctx: &JobCtx,
        plan: &Plan,
        meta: &Arc<Mutex<ModelMetadata>>,
        fetched_total: u64,
        started: Instant,
    ) -> Result<DownloadReport> {
        let inner = &self.inner;
        let files = &plan.files;
        let total_bytes = plan.total_bytes;
        let now = now_rfc3339();
        {
            let mut m = meta.lock().expect("meta lock");
            m.verification = VerificationState::Verified;
            m.last_verified_at = Some(now.clone());
            m.updated_at = now;
            m.facts = local_facts(std::mem::take(&mut m.facts), &plan.model_dir);
            inner.store.write_metadata(&m)?;
        }
        let _ = std::fs::remove_dir_all(&plan.partial_dir);
        let seconds = started.elapsed().as_secs_f64();
        emit_model_progress(
            ctx,
            files.len(),
            files.len(),
            total_bytes,
            total_bytes,
            0.0,
            Some(0.0),
        );
        inner.bus.emit(Event::DownloadFinished {
            model_id: repo.to_string(),
            commit: plan.commit.clone(),
            bytes: fetched_total,
            seconds,
        });
        inner.bus.emit(Event::AvailabilityChanged {
            model_id: repo.to_string(),
            old_status: Some(Availability::Downloading),
            new_status: Availability::Available,
        });
        Ok(DownloadReport {
            model_id: repo.to_string(),
            commit: plan.commit.clone(),
            path: plan.model_dir.clone(),
            files: files.len(),
            files_already_present: files.len() - plan.todo.len(),
            total_bytes,
            bytes_fetched: fetched_total,
            seconds,
            completed: true,
            offline: false,
        })
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
}

/// The model's `config.json` facts (architectures, model_type, quantization) added once its files are in place.
fn local_facts(
    facts: crate::engine::store::ModelFacts,
    dir: &std::path::Path,
) -> crate::engine::store::ModelFacts {
    crate::engine::fallback::facts::with_local_config(facts, dir)
}
