//! The connections of one file attempt: they take the unfinished parts in file order, and are added while they
//! help (the connection ramp).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;

use super::job::JobCtx;
use super::outcome::AttemptEnd;
use super::part::run_part;
use super::partial::Parts;
use super::progress::FileProgress;
use super::sink::{HotBlocks, PartialFile};
use crate::engine::hub::RemoteFile;

/// How often the number of connections for a file is reconsidered.
const RAMP_TICK: Duration = Duration::from_millis(200);

/// Fetch every unfinished part of the partial; returns how the connections that failed ended.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_connections(
    ctx: &Arc<JobCtx>,
    file: &RemoteFile,
    parts: &Arc<Parts>,
    partial_file: &Arc<PartialFile>,
    hot: &Arc<HotBlocks>,
    partial: &Path,
    progress: &Arc<FileProgress>,
    fetched: &Arc<AtomicU64>,
) -> Vec<AttemptEnd> {
    // `workers` connections take the incomplete chunks in file order, so the written prefix (and the hash behind
    // it) advances at the full transfer rate.
    let multi = parts.ranges.len() > 1;
    let pending: Vec<usize> = (0..parts.ranges.len())
        .filter(|&i| parts.ranges[i].0 + parts.done[i].load(Ordering::Acquire) < parts.ranges[i].1)
        .collect();
    let max_workers = if multi {
        (ctx.cfg.connections_per_file.max(1) as usize).min(pending.len())
    } else {
        pending.len()
    };
    let crew = Crew {
        ctx,
        file,
        parts,
        partial_file,
        hot,
        partial,
        progress,
        fetched,
        multi,
        pending,
        next: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        active: AtomicUsize::new(1),
    };
    ramp(&crew, max_workers).await
}

/// What the connections of one attempt share.
struct Crew<'a> {
    ctx: &'a Arc<JobCtx>,
    file: &'a RemoteFile,
    parts: &'a Arc<Parts>,
    partial_file: &'a Arc<PartialFile>,
    hot: &'a Arc<HotBlocks>,
    partial: &'a Path,
    progress: &'a Arc<FileProgress>,
    fetched: &'a Arc<AtomicU64>,
    multi: bool,
    /// The unfinished parts, in file order.
    pending: Vec<usize>,
    /// The index into `pending` of the next part to claim.
    next: AtomicUsize,
    /// A connection failed: the others stop at their part's end.
    failed: AtomicBool,
    /// Connections running.
    active: AtomicUsize,
}

impl Crew<'_> {
    /// One connection: it claims parts until none is left or one failed.
    async fn connection(&self) -> Vec<AttemptEnd> {
        let mut errors = Vec::new();
        let claim = || {
            self.pending
                .get(self.next.fetch_add(1, Ordering::AcqRel))
                .copied()
        };
        let mut carried: Option<usize> = None;
        loop {
            if self.failed.load(Ordering::Acquire) {
                break;
            }
            // A part claimed at the end of the previous one but not adjacent to it needs its own request.
            let Some(i) = carried.take().or_else(claim) else {
                break;
            };
            match run_part(
                self.ctx,
                self.file,
                self.parts,
                i,
                self.multi,
                &claim,
                &self.active,
                self.partial_file,
                self.hot,
                self.partial,
                self.progress,
                self.fetched,
            )
            .await
            {
                Ok(c) => carried = c,
                Err(e) => {
                    self.failed.store(true, Ordering::Release);
                    errors.push(e);
                    break;
                }
            }
        }
        errors
    }
}

/// Connections are added while they can help: one to start, more while the hasher mostly waits for data (the
/// network is the limit, e.g. a CDN capping each connection). When the hasher is busy the machine is the limit,
/// and more connections would only spread the data beyond the CPU cache before it is hashed.
async fn ramp(crew: &Crew<'_>, max_workers: usize) -> Vec<AttemptEnd> {
    let mut running = futures::stream::FuturesUnordered::new();
    running.push(crew.connection());
    let mut tick = tokio::time::interval(RAMP_TICK);
    tick.tick().await;
    let mut last = (std::time::Instant::now(), crew.hot.busy_ns());
    let mut errors = Vec::new();
    loop {
        tokio::select! {
            r = running.next() => match r {
                Some(e) => errors.extend(e),
                None => break,
            },
            _ = tick.tick(), if crew.active.load(Ordering::Acquire) < max_workers => {
                let (now, busy) = (std::time::Instant::now(), crew.hot.busy_ns());
                let frac = (busy - last.1) as f64 / (now - last.0).as_nanos().max(1) as f64;
                last = (now, busy);
                let now_active = crew.active.load(Ordering::Acquire);
                let add = if frac < 0.1 { max_workers - now_active } else if frac < 0.5 { 1 } else { 0 };
                for _ in 0..add {
                    if crew.failed.load(Ordering::Acquire) || crew.next.load(Ordering::Acquire) >= crew.pending.len() {
                        break;
                    }
                    crew.active.fetch_add(1, Ordering::AcqRel);
                    running.push(crew.connection());
                }
            }
        }
    }
    drop(running);
    errors
}
