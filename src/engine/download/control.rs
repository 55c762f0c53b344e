//! Pause, resume and cancel across processes: applying a control (and the events saying so), watching the
//! persisted queue for requests from other processes, the per-model lock that keeps two processes off one model,
//! and the view of a download another process runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;
use tokio::sync::watch;

use super::job::LiveStats;
use super::queue::{Queue, QueueEntry, QueueState};
use super::types::DownloadSnapshot;
use super::util::{AbortOnDrop, Control, pid_alive};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Availability, Event, EventBus, Severity};
use crate::engine::store::{RepoId, Store};

/// Apply control `c` to a download of this process, with the events saying so (nothing when it is already in
/// force; a cancel has its own events where it is carried out).
pub(super) fn apply_control(
    bus: &EventBus,
    repo: &RepoId,
    tx: &watch::Sender<Control>,
    c: Control,
) {
    let old = *tx.borrow();
    if old == c {
        return;
    }
    let _ = tx.send(c);
    let model_id = repo.to_string();
    let (said, old_status, new_status) = match c {
        Control::Pause => (
            Event::DownloadPaused {
                model_id: model_id.clone(),
            },
            Availability::Downloading,
            Availability::Paused,
        ),
        Control::Run => (
            Event::DownloadResumed {
                model_id: model_id.clone(),
            },
            Availability::Paused,
            Availability::Downloading,
        ),
        Control::Cancel => return,
    };
    bus.emit(said);
    bus.emit(Event::AvailabilityChanged {
        model_id,
        old_status: Some(old_status),
        new_status,
    });
}

/// Watch the persisted queue for requests from other processes (applied within about a second), and write this
/// download's live figures there every two seconds. Stops when the returned guard is dropped.
pub(super) fn watch_queue(
    queue: &Queue,
    repo: &RepoId,
    tx: &watch::Sender<Control>,
    bus: &EventBus,
    live: &Arc<Mutex<LiveStats>>,
) -> AbortOnDrop {
    let watcher = {
        let queue = queue.clone();
        let repo = repo.clone();
        let tx = tx.clone();
        let bus = bus.clone();
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
    AbortOnDrop(watcher)
}

/// Releases the model lock when dropped.
pub(super) struct ModelLock(std::fs::File);

impl Drop for ModelLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

/// Take the lock of `repo`, waiting (and saying so once) while another process holds it; a cancel stops the wait.
pub(super) async fn lock_model(
    store: &Store,
    bus: &EventBus,
    repo: &RepoId,
    rx: &mut watch::Receiver<Control>,
) -> Result<ModelLock> {
    let path = store.lock_path(repo);
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
            bus.emit(Event::Log {
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

/// A download persisted by another process (or by nobody any more), as the faces see it.
pub(super) fn snapshot_of_entry(e: QueueEntry) -> DownloadSnapshot {
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
