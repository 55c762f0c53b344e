//! Download jobs: one job per model with an id, started once and shared by every caller asking for that model,
//! running detached from whoever asked (a server client that disconnects neither stops nor leaks it), retried
//! `max_retries` times after a retryable failure, and remembered (bounded) after it ends.
//!
//! The board is what the server's `POST /api/v1/models/download/manage`, `GET /api/v1/downloads` and
//! `GET /api/v1/downloads/{job}` use; the bytes, rate and ETA of a running job come from the download manager.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::download::{Control, DownloadOptions, DownloadReport};
use super::error::{EmaError, Result};
use super::events::Event;
use super::facade::Engine;
use super::store::{RepoId, now_rfc3339};

/// Finished jobs kept for `GET /api/v1/downloads/{job}` (the oldest are forgotten first).
pub const MAX_FINISHED_JOBS: usize = 256;
/// The most whole-download retries a caller may ask for.
pub const MAX_RETRIES_LIMIT: u32 = 20;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Paused,
    /// Waiting before the next attempt after a retryable failure.
    Retrying,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job as its callers see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub job_id: String,
    pub model_id: String,
    pub state: JobState,
    /// Whole-model bytes done and total (0 until the file list is known).
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub progress_percent: f64,
    pub files_done: usize,
    pub files_total: usize,
    pub rate_bytes_per_sec: f64,
    pub eta_seconds: Option<f64>,
    /// Whole-download attempts made (1 for a download that never failed).
    pub attempts: u32,
    pub max_retries: u32,
    /// Retries: file-level retries the engine made plus whole-download retries.
    pub retries: u64,
    pub last_error: Option<String>,
    pub commit: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug)]
struct Job {
    view: JobView,
    /// Set to stop the job between attempts (a cancel while it waits to retry).
    stop: watch::Sender<bool>,
}

#[derive(Default)]
struct Board {
    jobs: HashMap<String, Job>,
    /// The job of each model that is not finished.
    active: HashMap<RepoId, String>,
    finished: VecDeque<String>,
}

/// The job board: cheap to clone.
#[derive(Clone)]
pub struct JobBoard {
    engine: Engine,
    board: Arc<Mutex<Board>>,
}

impl std::fmt::Debug for JobBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobBoard").finish_non_exhaustive()
    }
}

/// What `start` did.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub job: JobView,
    /// False when the model already had a job and the caller shares it.
    pub created: bool,
}

impl JobBoard {
    pub fn new(engine: Engine) -> Self {
        JobBoard {
            engine,
            board: Arc::new(Mutex::new(Board::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().expect("job board lock")
    }

    /// Start a job for `repo`, or hand back the one already running for it. Must be called inside a tokio
    /// runtime (the job runs on it, detached from the caller).
    pub fn start(&self, repo: &RepoId, max_retries: u32) -> Result<Started> {
        self.start_with(repo, max_retries, DownloadOptions::default())
    }

    /// [`Self::start`] with the revision and globs to download (a persisted download continues as it was asked).
    fn start_with(
        &self,
        repo: &RepoId,
        max_retries: u32,
        opts: DownloadOptions,
    ) -> Result<Started> {
        if max_retries > MAX_RETRIES_LIMIT {
            return Err(EmaError::Config(format!(
                "max_retries {max_retries} is over the limit of {MAX_RETRIES_LIMIT}; ask for fewer"
            )));
        }
        let mut b = self.lock();
        if let Some(id) = b.active.get(repo).cloned() {
            let job = self.view_locked(&b, &id).expect("active job exists");
            return Ok(Started {
                job,
                created: false,
            });
        }
        let id = format!("job-{}", hex::encode(rand::random::<[u8; 8]>()));
        let (stop, stop_rx) = watch::channel(false);
        let view = JobView {
            job_id: id.clone(),
            model_id: repo.to_string(),
            state: JobState::Queued,
            bytes_done: 0,
            bytes_total: 0,
            progress_percent: 0.0,
            files_done: 0,
            files_total: 0,
            rate_bytes_per_sec: 0.0,
            eta_seconds: None,
            attempts: 0,
            max_retries,
            retries: 0,
            last_error: None,
            commit: None,
            created_at: now_rfc3339(),
            finished_at: None,
        };
        b.jobs.insert(
            id.clone(),
            Job {
                view: view.clone(),
                stop,
            },
        );
        b.active.insert(repo.clone(), id.clone());
        drop(b);
        let me = self.clone();
        let repo = repo.clone();
        let job_id = id.clone();
        tokio::spawn(async move { me.run(job_id, repo, opts, max_retries, stop_rx).await });
        Ok(Started {
            job: view,
            created: true,
        })
    }

    /// The job of `repo` that is not finished, if any.
    pub fn active_job(&self, repo: &RepoId) -> Option<JobView> {
        let b = self.lock();
        let id = b.active.get(repo)?.clone();
        self.view_locked(&b, &id)
    }

    /// Pause the running job of `repo`.
    pub fn pause(&self, repo: &RepoId) -> Result<JobView> {
        let job = self.require_active(repo, "pause")?;
        self.engine.pause(repo)?;
        self.update(&job.job_id, |v| v.state = JobState::Paused);
        Ok(self.get(&job.job_id).unwrap_or(job))
    }

    /// Resume the paused job of `repo`; a model without a job (e.g. a download left by a stopped process) gets a
    /// new one that continues it.
    pub fn resume(&self, repo: &RepoId, max_retries: u32) -> Result<Started> {
        match self.active_job(repo) {
            Some(job) => {
                self.engine.resume(repo)?;
                self.update(&job.job_id, |v| {
                    if v.state == JobState::Paused {
                        v.state = JobState::Running
                    }
                });
                Ok(Started {
                    job: self.get(&job.job_id).unwrap_or(job),
                    created: false,
                })
            }
            None => match self.engine.download_manager().queue().get(repo) {
                Some(e) => self.start_with(repo, max_retries, e.options()),
                None => Err(EmaError::NotFound(format!(
                    "no download of {repo} to resume; start one with action \"start\""
                ))),
            },
        }
    }

    /// Continue, as jobs of `max_retries` each, the persisted downloads nobody works on that were running or queued
    /// when their process stopped (what a SIGTERM interrupted resumes on the next start), with the revision and
    /// globs they were asked with. A download paused or cancelled by an operator, or one that failed, stays as it
    /// is. Returns one result per model, in queue order.
    pub fn resume_persisted(&self, max_retries: u32) -> Vec<(RepoId, Result<Started>)> {
        use super::download::queue::QueueState;
        self.engine
            .download_manager()
            .orphaned()
            .into_iter()
            .filter(|e| {
                matches!(e.state, QueueState::Queued | QueueState::Downloading)
                    && e.control == Control::Run
            })
            .map(|e| {
                let r = self.start_with(&e.repo_id, max_retries, e.options());
                (e.repo_id, r)
            })
            .collect()
    }

    /// Cancel the job of `repo` (its partial data is deleted). A download with no job here (persisted by another
    /// process) is cancelled too.
    pub fn cancel(&self, repo: &RepoId) -> Result<Option<JobView>> {
        let job = self.active_job(repo);
        if let Some(j) = &job {
            let b = self.lock();
            if let Some(x) = b.jobs.get(&j.job_id) {
                let _ = x.stop.send(true);
            }
        }
        match self.engine.cancel(repo) {
            Ok(()) => {}
            // A job waiting to retry has no download running: the stop signal ends it.
            Err(EmaError::NotFound(_)) if job.is_some() => {}
            Err(e) => return Err(e),
        }
        Ok(job.and_then(|j| self.get(&j.job_id)))
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<JobView> {
        let b = self.lock();
        let mut ids: Vec<&String> = b.jobs.keys().collect();
        ids.sort_by(|a, c| {
            let (x, y) = (&b.jobs[*a].view, &b.jobs[*c].view);
            y.created_at.cmp(&x.created_at).then(c.cmp(a))
        });
        ids.into_iter()
            .filter_map(|id| self.view_locked(&b, id))
            .collect()
    }

    /// One job by id.
    pub fn get(&self, id: &str) -> Option<JobView> {
        let b = self.lock();
        self.view_locked(&b, id)
    }

    /// Jobs not finished.
    pub fn active_count(&self) -> usize {
        self.lock().active.len()
    }

    fn require_active(&self, repo: &RepoId, what: &str) -> Result<JobView> {
        self.active_job(repo).ok_or_else(|| {
            EmaError::NotFound(format!(
                "no download of {repo} is running to {what}; start one with action \"start\""
            ))
        })
    }

    /// The stored view with the live figures of the download manager filled in.
    fn view_locked(&self, b: &Board, id: &str) -> Option<JobView> {
        let mut v = b.jobs.get(id)?.view.clone();
        if !v.state.is_finished()
            && let Some(s) = self
                .engine
                .downloads()
                .into_iter()
                .find(|s| s.model_id == v.model_id)
        {
            v.bytes_done = s.bytes_done;
            v.bytes_total = s.bytes_total;
            v.files_done = s.files_done;
            v.files_total = s.files_total;
            v.rate_bytes_per_sec = s.rate_bytes_per_sec;
            v.eta_seconds = s.eta_seconds;
            v.commit = s.commit.or(v.commit);
            if s.control == Control::Pause {
                v.state = JobState::Paused;
            }
        }
        v.progress_percent = if v.bytes_total > 0 {
            (v.bytes_done as f64 * 100.0 / v.bytes_total as f64).min(100.0)
        } else if v.state == JobState::Completed {
            100.0
        } else {
            0.0
        };
        Some(v)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut JobView)) {
        if let Some(j) = self.lock().jobs.get_mut(id) {
            f(&mut j.view);
        }
    }

    /// The job's life: attempts until success, cancel, a failure that retrying cannot fix, or no retries left.
    async fn run(
        self,
        id: String,
        repo: RepoId,
        opts: DownloadOptions,
        max_retries: u32,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut events = self.engine.bus().subscribe();
        let model = repo.to_string();
        let mut outcome: Option<Result<DownloadReport>> = None;
        for attempt in 0..=max_retries {
            self.update(&id, |v| {
                v.attempts = attempt + 1;
                if v.state != JobState::Paused {
                    v.state = JobState::Running;
                }
            });
            let dl = self.engine.download(&repo, opts.clone());
            tokio::pin!(dl);
            let r = loop {
                tokio::select! {
                    r = &mut dl => break r,
                    ev = events.recv() => self.observe(&id, &model, ev),
                }
            };
            let retryable = match &r {
                Ok(_) => false,
                Err(e) => !matches!(e, EmaError::NotFound(_) | EmaError::Config(_)),
            };
            if let Err(e) = &r {
                let msg = e.to_string();
                self.update(&id, |v| v.last_error = Some(msg));
            }
            outcome = Some(r);
            if !retryable || attempt == max_retries || *stop.borrow() {
                break;
            }
            self.update(&id, |v| {
                v.state = JobState::Retrying;
                v.retries += 1;
            });
            let delay = Duration::from_millis((500u64 << attempt.min(5)).min(10_000));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let (state, commit, bytes) = match &outcome {
            Some(Ok(rep)) if rep.completed => (
                JobState::Completed,
                Some(rep.commit.clone()),
                Some((rep.total_bytes, rep.files)),
            ),
            Some(Ok(_)) => (JobState::Cancelled, None, None),
            _ if *stop.borrow() => (JobState::Cancelled, None, None),
            _ => (JobState::Failed, None, None),
        };
        let mut b = self.lock();
        if let Some(j) = b.jobs.get_mut(&id) {
            j.view.state = state;
            j.view.finished_at = Some(now_rfc3339());
            j.view.rate_bytes_per_sec = 0.0;
            j.view.eta_seconds = None;
            if let Some(c) = commit {
                j.view.commit = Some(c);
            }
            if let Some((n, files)) = bytes {
                j.view.bytes_done = n;
                j.view.bytes_total = n;
                j.view.files_done = files;
                j.view.files_total = files;
            }
        }
        if b.active.get(&repo) == Some(&id) {
            b.active.remove(&repo);
        }
        b.finished.push_back(id);
        while b.finished.len() > MAX_FINISHED_JOBS {
            if let Some(old) = b.finished.pop_front() {
                b.jobs.remove(&old);
            }
        }
    }

    /// Fold one bus event about this job's model into its view (lagging the bus only loses retry counts).
    fn observe(
        &self,
        id: &str,
        model: &str,
        ev: std::result::Result<Event, tokio::sync::broadcast::error::RecvError>,
    ) {
        match ev {
            Ok(Event::Retry {
                model_id, reason, ..
            }) if model_id == model => self.update(id, |v| {
                v.retries += 1;
                v.last_error = Some(reason);
            }),
            Ok(Event::ModelProgress {
                model_id,
                bytes_done,
                bytes_total,
                files_done,
                files_total,
                ..
            }) if model_id == model => self.update(id, |v| {
                v.bytes_done = bytes_done;
                v.bytes_total = bytes_total;
                v.files_done = files_done;
                v.files_total = files_total;
            }),
            Ok(Event::DownloadPaused { model_id }) if model_id == model => {
                self.update(id, |v| v.state = JobState::Paused)
            }
            Ok(Event::DownloadResumed { model_id }) if model_id == model => {
                self.update(id, |v| v.state = JobState::Running)
            }
            _ => {}
        }
    }
}
