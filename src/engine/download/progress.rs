//! Progress of a model download: per-file counters, and the ticker that turns them into `FileProgress` and
//! `ModelProgress` events (a smoothed rate, an ETA) and into the live figures the faces read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::job::{JobCtx, LiveStats};
use super::queue::QueueState;
use super::util::{AbortOnDrop, Control};
use crate::engine::events::Event;
use crate::engine::hub::RemoteFile;

/// Per-file live progress for the job's ticker.
pub struct FileProgress {
    pub path: String,
    pub total: u64,
    pub done: AtomicU64,
    pub active: AtomicBool,
}

/// The progress counters of the files a round fetches, and the ticker reporting them (stopped when dropped).
pub(super) struct Tracking {
    /// One per file to fetch, in the order of the round's to-do list.
    pub progresses: Vec<Arc<FileProgress>>,
    /// Files of the model verified so far (present before or fetched).
    pub files_done: Arc<AtomicU64>,
    _ticker: AbortOnDrop,
}

impl Tracking {
    /// Counters for `todo` (indexes into `files`) and a ticker over them; `files.len() - todo.len()` files are
    /// already done.
    pub(super) fn start(
        ctx: &Arc<JobCtx>,
        files: &[RemoteFile],
        todo: &[(usize, String)],
        total_bytes: u64,
        live: &Arc<Mutex<LiveStats>>,
    ) -> Tracking {
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
        Tracking {
            progresses,
            files_done,
            _ticker: AbortOnDrop(ticker),
        }
    }
}

pub(super) fn emit_model_progress(
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
