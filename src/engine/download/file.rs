//! Downloading one file: parallel Range parts written with positioned writes into one preallocated partial under
//! the store's partial directory, hashed in order by a reader that follows the contiguous written frontier (so the
//! hash is done when the last byte lands), persisted part progress for resume across runs, retries with backoff,
//! and placement into the model folder only once the hash matches.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::sink::{Block, HotBlocks, PartialFile, block_cap};
use super::util::{Control, FileHasher, backoff, sleep_or_control, wait_while_paused};
use super::{JobCtx, is_enospc};
use crate::engine::atomic::{sync_dir, write_json_atomic};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::Event;
use crate::engine::hub::{FileBody, HttpFailure, RemoteFile, Subject, describe_reqwest};

const PARTIAL_STATE_VERSION: u32 = 1;
/// Block writes under way per connection: direct writes of one block at a time leave the disk idle between them.
const WRITES_IN_FLIGHT: usize = 8;
/// A block filling for longer than this is written as it is (slow links: little to lose in a crash).
const BLOCK_MAX_AGE: Duration = Duration::from_millis(250);
/// How often the number of connections for a file is reconsidered.
const RAMP_TICK: Duration = Duration::from_millis(200);
const HASH_CHUNK: usize = 4 << 20;
/// Hashed bytes are handed to the kernel's writeback in chunks of this size.
const WRITEBACK_CHUNK: u64 = 32 << 20;
/// Files smaller than this restart from zero after a crash instead of persisting part progress.
const PERSIST_MIN_SIZE: u64 = 1 << 20;

/// Persisted progress of one partial file (`<hash>.json` beside `<hash>.part`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartialState {
    version: u32,
    path: String,
    size: u64,
    hash: String,
    /// The upstream ETag the bytes came from; a different one on resume restarts from zero.
    etag: Option<String>,
    parts: Vec<PartState>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PartState {
    start: u64,
    /// Exclusive.
    end: u64,
    done: u64,
}

/// Live part progress shared between the writers, the hasher and the persister.
struct Parts {
    ranges: Vec<(u64, u64)>,
    done: Vec<AtomicU64>,
}

impl Parts {
    fn from_state(st: &PartialState) -> Arc<Self> {
        Arc::new(Parts {
            ranges: st.parts.iter().map(|p| (p.start, p.end)).collect(),
            done: st.parts.iter().map(|p| AtomicU64::new(p.done)).collect(),
        })
    }

    /// End of the contiguous written prefix.
    fn frontier(&self, size: u64) -> u64 {
        for (i, (s, e)) in self.ranges.iter().enumerate() {
            let d = self.done[i].load(Ordering::Acquire);
            if s + d < *e {
                return s + d;
            }
        }
        size
    }

    fn complete(&self) -> bool {
        self.ranges
            .iter()
            .enumerate()
            .all(|(i, (s, e))| s + self.done[i].load(Ordering::Acquire) >= *e)
    }

    fn bytes_done(&self) -> u64 {
        self.done.iter().map(|d| d.load(Ordering::Acquire)).sum()
    }

    fn snapshot(&self, base: &PartialState) -> PartialState {
        let mut st = base.clone();
        for (i, p) in st.parts.iter_mut().enumerate() {
            p.done = self.done[i].load(Ordering::Acquire);
        }
        st
    }
}

/// Why an attempt ended without the file.
enum AttemptEnd {
    /// Retry after a backoff (network, 5xx, 429, stall, hash mismatch).
    Transient {
        message: String,
        retry_after: Option<f64>,
    },
    /// Start again from zero at once, in one part (the server ignored Range, answered 416, or the ETag changed).
    Restart(String),
    /// Paused or cancelled.
    Interrupted,
    /// The file's ETag no longer matches the listing's hash.
    UpstreamChanged,
    Fatal(EmaError),
}

impl From<HttpFailure> for AttemptEnd {
    fn from(f: HttpFailure) -> Self {
        match f {
            HttpFailure::Transient {
                message,
                retry_after,
            } => AttemptEnd::Transient {
                message,
                retry_after,
            },
            HttpFailure::Unreachable { message } => AttemptEnd::Transient {
                message,
                retry_after: None,
            },
            HttpFailure::Fatal(e) => AttemptEnd::Fatal(e),
        }
    }
}

/// The result of [`download_file`].
pub enum FileOutcome {
    /// Verified and placed; bytes fetched over the network in this run.
    Done { fetched: u64 },
    /// Stopped by pause-then-cancel or cancel.
    Cancelled,
    /// The server now publishes another hash for this path than the listing did: list again.
    UpstreamChanged,
}

/// Per-file live progress for the job's ticker.
pub struct FileProgress {
    pub path: String,
    pub total: u64,
    pub done: AtomicU64,
    pub active: AtomicBool,
}

pub(super) struct FilePaths {
    pub partial: PathBuf,
    pub state: PathBuf,
}

/// This process's partial of a file: `<hash>.<pid>.part` and its state `<hash>.<pid>.json`. Names are unique per
/// writer, so even where `flock` silently does nothing two processes never write into the same file.
pub(super) fn partial_paths(partial_dir: &Path, hash: &str) -> FilePaths {
    let pid = std::process::id();
    FilePaths {
        partial: partial_dir.join(format!("{hash}.{pid}.part")),
        state: partial_dir.join(format!("{hash}.{pid}.json")),
    }
}

/// Partials of `hash` left by processes that are gone (a crash, `kill -9`, an earlier run): (pid, state path).
fn orphans(partial_dir: &Path, hash: &str) -> Vec<(u32, PathBuf)> {
    let me = std::process::id();
    let prefix = format!("{hash}.");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(partial_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|p| p.parse::<u32>().ok())
            && pid != me
            && !super::pid_alive(pid)
        {
            out.push((pid, entry.path()));
        }
    }
    out
}

/// Take over an orphaned partial (atomic renames: of two processes racing for it, one wins, the other starts fresh).
fn adopt_orphan(partial_dir: &Path, hash: &str, paths: &FilePaths) {
    if paths.state.exists() {
        return;
    }
    for (pid, state) in orphans(partial_dir, hash) {
        let part = partial_dir.join(format!("{hash}.{pid}.part"));
        if std::fs::rename(&part, &paths.partial).is_ok() {
            let _ = std::fs::rename(&state, &paths.state);
            return;
        }
    }
}

/// Download, verify and place one file. `hash` is the validated expected hash.
pub(super) async fn download_file(
    ctx: &Arc<JobCtx>,
    file: &RemoteFile,
    hash: &str,
    progress: &Arc<FileProgress>,
) -> Result<FileOutcome> {
    let paths = partial_paths(&ctx.partial_dir, hash);
    if ctx.cfg.resume_enabled {
        adopt_orphan(&ctx.partial_dir, hash, &paths);
    } else {
        // downloads.resume_enabled = false: never continue a partial from an earlier run.
        reset_partial(&paths);
    }
    let mut control = ctx.control.clone();
    let mut hasher: Option<(FileHasher, u64)> = None;
    let mut attempt: u32 = 0;
    let mut restarts: u32 = 0;
    let mut single_part = false;
    let fetched = Arc::new(AtomicU64::new(0));
    loop {
        if wait_while_paused(&mut control).await == Control::Cancel {
            return Ok(FileOutcome::Cancelled);
        }
        progress.active.store(true, Ordering::Relaxed);
        let end = attempt_once(
            ctx,
            file,
            hash,
            &paths,
            &mut hasher,
            single_part,
            progress,
            &fetched,
        )
        .await;
        progress.active.store(false, Ordering::Relaxed);
        let (message, retry_after) = match end {
            Ok(()) => {
                return Ok(FileOutcome::Done {
                    fetched: fetched.load(Ordering::Relaxed),
                });
            }
            Err(AttemptEnd::Fatal(e)) => return Err(e),
            Err(AttemptEnd::UpstreamChanged) => return Ok(FileOutcome::UpstreamChanged),
            Err(AttemptEnd::Interrupted) => {
                if *control.borrow() == Control::Cancel {
                    return Ok(FileOutcome::Cancelled);
                }
                continue;
            }
            Err(AttemptEnd::Restart(why)) => {
                restarts += 1;
                hasher = None;
                single_part = true;
                reset_partial(&paths);
                if restarts <= 3 {
                    ctx.bus.emit(Event::Retry {
                        model_id: ctx.repo.to_string(),
                        path: file.path.clone(),
                        attempt: attempt + 1,
                        delay_ms: 0,
                        reason: format!("{why}; restarting the file from zero"),
                    });
                    continue;
                }
                (why, None)
            }
            Err(AttemptEnd::Transient {
                message,
                retry_after,
            }) => (message, retry_after),
        };
        attempt += 1;
        if attempt > ctx.cfg.max_retries {
            return Err(final_error(&ctx.repo, &file.path, attempt, &message));
        }
        let delay = backoff(
            attempt,
            ctx.cfg.retry_delay_seconds,
            retry_after,
            ctx.cfg.max_retry_after_seconds,
        );
        ctx.bus.emit(Event::Retry {
            model_id: ctx.repo.to_string(),
            path: file.path.clone(),
            attempt,
            delay_ms: delay.as_millis() as u64,
            reason: message,
        });
        if sleep_or_control(delay, &mut control).await == Control::Cancel {
            return Ok(FileOutcome::Cancelled);
        }
    }
}

fn final_error(
    repo: &crate::engine::store::RepoId,
    path: &str,
    attempts: u32,
    last: &str,
) -> EmaError {
    if last.starts_with("hash mismatch") {
        EmaError::Integrity(format!(
            "{path} of {repo} failed verification {attempts} times ({last}); the server keeps sending bytes that \
             do not match the published hash. Nothing was marked available; try another HF_ENDPOINT or retry later"
        ))
    } else {
        EmaError::Hub(format!(
            "{path} of {repo} failed after {attempts} attempts: {last}. The partial data is kept; run the same \
             `ema download` again to resume, or raise downloads.max_retries"
        ))
    }
}

/// Remove a partial and its state (start from zero).
pub(super) fn reset_partial(paths: &FilePaths) {
    let _ = std::fs::remove_file(&paths.partial);
    let _ = std::fs::remove_file(&paths.state);
}

fn io_end(action: &'static str, path: &Path, e: std::io::Error) -> AttemptEnd {
    if is_enospc(&e) {
        AttemptEnd::Fatal(EmaError::DiskSpace(format!(
            "the disk holding {} is full ({action}); free space and run the same `ema download` again — the \
             partial data is kept and will be resumed",
            path.display()
        )))
    } else {
        AttemptEnd::Fatal(EmaError::io(action, path, e))
    }
}

/// Load the persisted state if it matches this file, else start a fresh one (and a fresh partial).
fn load_or_create_state(
    file: &RemoteFile,
    hash: &str,
    paths: &FilePaths,
    etag: Option<&str>,
    parts_wanted: u32,
) -> std::result::Result<(PartialState, bool), AttemptEnd> {
    if let Ok(bytes) = std::fs::read(&paths.state)
        && let Ok(st) = serde_json::from_slice::<PartialState>(&bytes)
        && st.version == PARTIAL_STATE_VERSION
        && st.size == file.size
        && st.hash == hash
        && std::fs::metadata(&paths.partial)
            .map(|m| m.len() == file.size)
            .unwrap_or(false)
        && st
            .parts
            .iter()
            .all(|p| p.start + p.done <= p.end && p.end <= file.size)
    {
        if st.etag.as_deref() == etag || etag.is_none() {
            return Ok((st, true));
        }
        // The upstream changed since these bytes were fetched: they cannot be trusted.
        reset_partial(paths);
    }
    let n = parts_wanted.max(1) as u64;
    let size = file.size;
    let mut parts = Vec::new();
    if size > 0 {
        // Several chunks per connection (8 to 64 MiB each) so the connections stay close together in the file.
        let chunk = if n == 1 {
            size
        } else {
            (size / (n * 8)).clamp(8 << 20, 64 << 20)
        };
        let mut s = 0;
        while s < size {
            let e = (s + chunk).min(size);
            parts.push(PartState {
                start: s,
                end: e,
                done: 0,
            });
            s = e;
        }
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&paths.partial)
        .map_err(|e| io_end("cannot create", &paths.partial, e))?;
    f.set_len(size)
        .map_err(|e| io_end("cannot size", &paths.partial, e))?;
    let st = PartialState {
        version: PARTIAL_STATE_VERSION,
        path: file.path.clone(),
        size,
        hash: hash.to_string(),
        etag: etag.map(str::to_string),
        parts,
    };
    if size >= PERSIST_MIN_SIZE {
        write_json_atomic(&paths.state, &st).map_err(AttemptEnd::Fatal)?;
    }
    Ok((st, false))
}

#[allow(clippy::too_many_arguments)]
async fn attempt_once(
    ctx: &Arc<JobCtx>,
    file: &RemoteFile,
    hash: &str,
    paths: &FilePaths,
    hasher: &mut Option<(FileHasher, u64)>,
    single_part: bool,
    progress: &Arc<FileProgress>,
    fetched: &Arc<AtomicU64>,
) -> std::result::Result<(), AttemptEnd> {
    // Metadata first: the commit, the size and the ETag the bytes will come from.
    let head = ctx
        .hub
        .head_file(&ctx.repo, &ctx.commit, &file.path)
        .await?;
    if let Some(c) = &head.commit
        && c != &ctx.commit
    {
        return Err(AttemptEnd::Fatal(EmaError::Integrity(format!(
            "the hub resolved {} of {} to commit {c}, not the pinned {}; refusing mixed commits",
            file.path, ctx.repo, ctx.commit
        ))));
    }
    // An ETag that is a hash but not the listed one: the file changed upstream since the listing.
    if let Some(etag) = &head.etag
        && (crate::engine::hub::is_hex(etag, 40) || crate::engine::hub::is_hex(etag, 64))
        && etag.len() == hash.len()
        && etag != hash
    {
        return Err(AttemptEnd::UpstreamChanged);
    }
    if let Some(s) = head.size
        && s != file.size
    {
        return Err(AttemptEnd::Fatal(EmaError::Integrity(format!(
            "the hub's listing says {} of {} has {} bytes but its headers say {s}; refusing an inconsistent file",
            file.path, ctx.repo, file.size
        ))));
    }
    let parts_wanted =
        if single_part || file.size < ctx.cfg.parallel_threshold_mb.saturating_mul(1 << 20) {
            1
        } else {
            ctx.cfg.connections_per_file.max(1)
        };
    let (state, resumed) =
        load_or_create_state(file, hash, paths, head.etag.as_deref(), parts_wanted)?;
    if !resumed {
        *hasher = None;
    }
    let parts = Parts::from_state(&state);
    progress.done.store(parts.bytes_done(), Ordering::Relaxed);

    let partial_file = Arc::new(
        PartialFile::open(&paths.partial, ctx.cfg.direct_io)
            .map_err(|e| io_end("cannot open", &paths.partial, e))?,
    );
    let (h0, off0) = hasher
        .take()
        .unwrap_or_else(|| (FileHasher::new(file.is_lfs(), file.size), 0));
    let hot = Arc::new(HotBlocks::default());

    // The hashing thread follows the received blocks in file order.
    let stop = Arc::new(AtomicBool::new(false));
    // If this attempt is dropped midway (the caller gave up), the hashing thread must still end.
    let _stop_on_drop = StopOnDrop(stop.clone());
    let hasher_task = {
        let parts = parts.clone();
        let stop = stop.clone();
        let f = partial_file.clone();
        let hot = hot.clone();
        let size = file.size;
        tokio::task::spawn_blocking(move || {
            run_hasher(&f.file, &hot, h0, off0, &parts, &stop, size)
        })
    };

    // Persist progress about once a second while parts run.
    let persist = file.size >= PERSIST_MIN_SIZE;
    let persist_stop = Arc::new(tokio::sync::Notify::new());
    let persister = {
        let parts = parts.clone();
        let state = state.clone();
        let path = paths.state.clone();
        let notify = persist_stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if persist {
                            let _ = write_json_atomic(&path, &parts.snapshot(&state));
                        }
                    }
                    _ = notify.notified() => return,
                }
            }
        })
    };

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
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let active = std::sync::atomic::AtomicUsize::new(1);
    let worker = {
        let (next, failed, pending, parts, partial_file, hot, active) = (
            &next,
            &failed,
            &pending,
            &parts,
            &partial_file,
            &hot,
            &active,
        );
        move || async move {
            let mut errors = Vec::new();
            let claim = || pending.get(next.fetch_add(1, Ordering::AcqRel)).copied();
            let mut carried: Option<usize> = None;
            loop {
                if failed.load(Ordering::Acquire) {
                    break;
                }
                // A part claimed at the end of the previous one but not adjacent to it needs its own request.
                let Some(i) = carried.take().or_else(claim) else {
                    break;
                };
                match run_part(
                    ctx,
                    file,
                    parts,
                    i,
                    multi,
                    &claim,
                    active,
                    partial_file,
                    hot,
                    &paths.partial,
                    progress,
                    fetched,
                )
                .await
                {
                    Ok(c) => carried = c,
                    Err(e) => {
                        failed.store(true, Ordering::Release);
                        errors.push(e);
                        break;
                    }
                }
            }
            errors
        }
    };
    // Connections are added while they can help: one to start, more while the hasher mostly waits for data (the
    // network is the limit, e.g. a CDN capping each connection). When the hasher is busy the machine is the limit,
    // and more connections would only spread the data beyond the CPU cache before it is hashed.
    let mut running = futures::stream::FuturesUnordered::new();
    running.push(worker());
    let mut tick = tokio::time::interval(RAMP_TICK);
    tick.tick().await;
    let mut last = (std::time::Instant::now(), hot.busy_ns());
    let mut errors = Vec::new();
    loop {
        tokio::select! {
            r = running.next() => match r {
                Some(e) => errors.extend(e),
                None => break,
            },
            _ = tick.tick(), if active.load(Ordering::Acquire) < max_workers => {
                let (now, busy) = (std::time::Instant::now(), hot.busy_ns());
                let frac = (busy - last.1) as f64 / (now - last.0).as_nanos().max(1) as f64;
                last = (now, busy);
                let now_active = active.load(Ordering::Acquire);
                let add = if frac < 0.1 { max_workers - now_active } else if frac < 0.5 { 1 } else { 0 };
                for _ in 0..add {
                    if failed.load(Ordering::Acquire) || next.load(Ordering::Acquire) >= pending.len() {
                        break;
                    }
                    active.fetch_add(1, Ordering::AcqRel);
                    running.push(worker());
                }
            }
        }
    }
    drop(running);
    persist_stop.notify_one();
    let _ = persister.await;
    if persist && !parts.complete() {
        let _ = write_json_atomic(&paths.state, &parts.snapshot(&state));
    }
    stop.store(true, Ordering::Release);
    let hashed = hasher_task.await.map_err(|e| {
        AttemptEnd::Fatal(EmaError::Other(format!("the hashing thread failed: {e}")))
    })?;
    let (h, off) = hashed.map_err(|e| io_end("cannot read back", &paths.partial, e))?;

    // The most serious failure decides.
    let rank = |a: &AttemptEnd| match a {
        AttemptEnd::Fatal(_) => 5,
        AttemptEnd::UpstreamChanged => 4,
        AttemptEnd::Interrupted => 3,
        AttemptEnd::Restart(_) => 2,
        AttemptEnd::Transient { .. } => 1,
    };
    let worst = errors.into_iter().max_by_key(rank);
    if let Some(w) = worst {
        *hasher = Some((h, off));
        return Err(w);
    }
    if off != file.size || !parts.complete() {
        *hasher = Some((h, off));
        return Err(AttemptEnd::Transient {
            message: "the transfer ended early".to_string(),
            retry_after: None,
        });
    }
    let got = h.finish_hex();
    if got != hash {
        reset_partial(paths);
        return Err(AttemptEnd::Transient {
            message: format!("hash mismatch: expected {hash}, got {got}; the bytes were discarded"),
            retry_after: None,
        });
    }
    partial_file
        .file
        .sync_all()
        .map_err(|e| io_end("cannot fsync", &paths.partial, e))?;
    drop(partial_file);
    place(ctx, &file.path, &paths.partial).map_err(AttemptEnd::Fatal)?;
    let _ = std::fs::remove_file(&paths.state);
    ctx.bus.emit(Event::FileVerified {
        model_id: ctx.repo.to_string(),
        path: file.path.clone(),
        size: file.size,
        hash: got,
    });
    Ok(())
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Hash the file in order from `off`: received blocks from memory, anything else (a resumed prefix, blocks beyond
/// the memory cap) read back from the file once written. Returns the state reached when the writers stopped.
fn run_hasher(
    f: &std::fs::File,
    hot: &HotBlocks,
    mut h: FileHasher,
    mut off: u64,
    parts: &Parts,
    stop: &AtomicBool,
    size: u64,
) -> std::io::Result<(FileHasher, u64)> {
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut flushed = off;
    loop {
        let written = parts.frontier(size);
        let t0 = std::time::Instant::now();
        let (hit, next) = hot.at(off);
        if let Some(b) = &hit {
            h.update(&b.bytes()[(off - b.start) as usize..]);
            off = b.end();
        } else if off < written {
            let upto = next.map_or(written, |n| n.min(written));
            let n = ((upto - off) as usize).min(HASH_CHUNK);
            f.read_exact_at(&mut buf[..n], off)?;
            h.update(&buf[..n]);
            off += n as u64;
        } else if off >= size || stop.load(Ordering::Acquire) {
            // Done, or the writers are done and nothing more will come.
            hot.set_starved(true);
            return Ok((h, off));
        } else {
            hot.wait(Duration::from_millis(2));
            continue;
        }
        hot.add_busy(t0.elapsed());
        hot.set_starved(false);
        // Bytes written through the page cache start going to disk now, so the fsync before placement has little
        // left to do (a no-op for directly written ranges).
        let w = off.min(written);
        if w > flushed && (w - flushed >= WRITEBACK_CHUNK || w == size) {
            start_writeback(f, flushed, w - flushed);
            flushed = w;
        }
    }
}

/// Ask the kernel to start writing back a range (no wait). Linux only; elsewhere the final fsync does it all.
fn start_writeback(f: &std::fs::File, off: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open fd; sync_file_range only initiates writeback of the given range.
        unsafe {
            libc::sync_file_range(
                f.as_raw_fd(),
                off as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, off, len);
}

/// Parse `Content-Range: bytes S-E/T`.
fn content_range(h: &reqwest::header::HeaderMap) -> Option<(u64, u64, Option<u64>)> {
    let v = h.get("content-range")?.to_str().ok()?.trim();
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (s, e) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((s.parse().ok()?, e.parse().ok()?, total))
}

#[allow(clippy::too_many_arguments)]
async fn run_part(
    ctx: &Arc<JobCtx>,
    file: &RemoteFile,
    parts: &Arc<Parts>,
    i: usize,
    multi: bool,
    claim: &(dyn Fn() -> Option<usize> + Sync),
    connections: &std::sync::atomic::AtomicUsize,
    out: &Arc<PartialFile>,
    hot: &Arc<HotBlocks>,
    out_path: &Path,
    progress: &Arc<FileProgress>,
    fetched: &Arc<AtomicU64>,
) -> std::result::Result<Option<usize>, AttemptEnd> {
    let (start, end) = parts.ranges[i];
    let done0 = parts.done[i].load(Ordering::Acquire);
    let from = start + done0;
    // A whole file from zero in one part needs no Range. A connection working alone asks for its part and the
    // untouched parts right after it, and goes on into them as long as nobody else took them (no new request per
    // part); with other connections at work it asks for its own part only, so nothing is fetched twice.
    let mut upto = end;
    if multi && connections.load(Ordering::Acquire) <= 1 {
        for j in i + 1..parts.ranges.len() {
            if parts.ranges[j].0 != upto || parts.done[j].load(Ordering::Acquire) != 0 {
                break;
            }
            upto = parts.ranges[j].1;
        }
    }
    let range = if !multi && from == 0 {
        None
    } else {
        Some((from, (upto < file.size).then(|| upto - 1)))
    };
    let (resp, url) = ctx
        .hub
        .get_file(&ctx.repo, &ctx.commit, &file.path, range)
        .await?;
    let status = resp.status;
    match status {
        StatusCode::OK => {
            if range.is_some() {
                return Err(AttemptEnd::Restart(format!(
                    "the server ignored the Range request (answered 200 for bytes from {from})"
                )));
            }
            if let Some(len) = resp.content_length
                && len != file.size
            {
                return Err(AttemptEnd::Fatal(EmaError::Integrity(format!(
                    "the server sends {} of {} with {len} bytes but the listing says {}; refusing",
                    file.path, ctx.repo, file.size
                ))));
            }
        }
        StatusCode::PARTIAL_CONTENT => {
            let Some((s, _e, total)) = content_range(&resp.headers) else {
                return Err(AttemptEnd::Restart(
                    "the server answered 206 without a usable Content-Range".to_string(),
                ));
            };
            if s != from {
                return Err(AttemptEnd::Restart(format!(
                    "the server answered bytes from {s} when asked for {from}"
                )));
            }
            if let Some(t) = total
                && t != file.size
            {
                return Err(AttemptEnd::Fatal(EmaError::Integrity(format!(
                    "the server says {} of {} has {t} bytes but the listing says {}; refusing",
                    file.path, ctx.repo, file.size
                ))));
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(AttemptEnd::Restart(format!(
                "the server answered 416 for bytes from {from}"
            )));
        }
        _ => {
            return Err(ctx
                .hub
                .status_failure(
                    &ctx.repo,
                    Subject::File {
                        revision: &ctx.commit,
                        path: &file.path,
                    },
                    &url,
                    status,
                    &resp.headers,
                )
                .into());
        }
    }
    let stall = ctx.hub.stall_timeout();
    let mut body = match resp.body {
        FileBody::Client(r) => Body::Chunks(Box::pin(r.bytes_stream())),
        FileBody::Direct(b) => Body::Direct(b),
    };
    // Bytes are gathered into aligned blocks; one block is being written while the next fills. A part's `done`
    // (what a resume trusts) advances only when a block's write has returned.
    let mut w = BlockWriter {
        out,
        hot,
        parts,
        i,
        out_path,
        block: Block::new(from, block_cap(from, end)),
        block_since: std::time::Instant::now(),
        inflight: std::collections::VecDeque::new(),
    };
    let stalled = || AttemptEnd::Transient {
        message: format!(
            "the connection stalled: no byte for {:.1} s; dropped it",
            stall.as_secs_f64()
        ),
        retry_after: None,
    };
    let mut claimed = None;
    let received = async {
        let (mut end, mut from) = (end, from);
        let mut pos = from;
        let mut carry: Option<bytes::Bytes> = None;
        let mut control = ctx.control.clone();
        let mut control_alive = true;
        loop {
            if *control.borrow_and_update() != Control::Run {
                return Err(AttemptEnd::Interrupted);
            }
            // The general client hands out chunks to copy (the rest of one that crossed into the next part
            // first); ema's reader fills the block in place.
            let got = match &mut body {
                Body::Chunks(_) if carry.is_some() => Got::Chunk(carry.take().unwrap_or_default()),
                Body::Chunks(stream) => {
                    let next = tokio::select! {
                        n = tokio::time::timeout(stall, stream.next()) => n,
                        r = control.changed(), if control_alive => {
                            control_alive = r.is_ok();
                            continue;
                        }
                    };
                    match next {
                        Err(_) => return Err(stalled()),
                        Ok(None) => break,
                        Ok(Some(Err(e))) if e.is_timeout() => return Err(stalled()),
                        Ok(Some(Err(e))) => {
                            return Err(AttemptEnd::Transient {
                                message: format!(
                                    "the transfer of {} broke: {}",
                                    file.path,
                                    describe_reqwest(&e)
                                ),
                                retry_after: None,
                            });
                        }
                        Ok(Some(Ok(c))) => Got::Chunk(c),
                    }
                }
                Body::Direct(raw) => {
                    let next = tokio::select! {
                        n = tokio::time::timeout(stall, raw.read(w.block.spare())) => n,
                        r = control.changed(), if control_alive => {
                            control_alive = r.is_ok();
                            continue;
                        }
                    };
                    match next {
                        Err(_) => return Err(stalled()),
                        Ok(Err(e)) => {
                            return Err(AttemptEnd::Transient {
                                message: format!("the transfer of {} broke: {e}", file.path),
                                retry_after: None,
                            });
                        }
                        Ok(Ok(0)) => break,
                        Ok(Ok(n)) => Got::InBlock(n),
                    }
                }
            };
            let n = match got {
                Got::InBlock(n) => {
                    // The reader never reads past the part's end: the block's room ends there.
                    if let Some(b) = &ctx.bucket {
                        b.take(n).await;
                    }
                    w.filled(n, end).await?;
                    n
                }
                Got::Chunk(chunk) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    let room = end - pos;
                    let data = if (chunk.len() as u64) > room {
                        carry = Some(chunk.slice(room as usize..));
                        &chunk[..room as usize]
                    } else {
                        &chunk[..]
                    };
                    if let Some(b) = &ctx.bucket {
                        b.take(data.len()).await;
                    }
                    w.push(data, end).await?;
                    data.len()
                }
            };
            pos += n as u64;
            progress.done.fetch_add(n as u64, Ordering::Relaxed);
            fetched.fetch_add(n as u64, Ordering::Relaxed);
            ctx.bytes_done.fetch_add(n as u64, Ordering::Relaxed);
            // On a slow link a block would take long to fill: what arrived is written after a while anyway, so a
            // crash loses little; and writes that returned count as done at once.
            w.keep_fresh(end).await?;
            if pos >= end {
                if !multi || end >= upto {
                    break;
                }
                // This part is done; the next one continues on this connection if it starts right here.
                claimed = claim();
                match claimed {
                    Some(j) if parts.ranges[j].0 + parts.done[j].load(Ordering::Acquire) == pos => {
                        claimed = None;
                        end = parts.ranges[j].1;
                        from = pos;
                        w.next_part(j, pos, end);
                    }
                    _ => break,
                }
            }
        }
        if pos < end {
            return Err(AttemptEnd::Transient {
                message: format!(
                    "the server closed the connection after {} of {} bytes",
                    pos - from,
                    end - from
                ),
                retry_after: None,
            });
        }
        Ok(())
    }
    .await;
    // Whatever ended the transfer, the bytes received so far are written so a resume continues after them.
    let flushed = w.finish().await;
    match (received, flushed) {
        (_, Err(e @ AttemptEnd::Fatal(_))) => Err(e),
        (Err(e), _) => Err(e),
        (Ok(()), r) => r.map(|()| claimed),
    }
}

/// A response body: chunks from the general client, or ema's HTTP/1.1 reader filling blocks in place.
enum Body {
    Chunks(std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>),
    Direct(crate::engine::http1::RawBody),
}

enum Got {
    Chunk(bytes::Bytes),
    InBlock(usize),
}

/// Gathers one part's bytes into blocks and writes them, one write in flight while the next block fills.
struct BlockWriter<'a> {
    out: &'a Arc<PartialFile>,
    hot: &'a Arc<HotBlocks>,
    parts: &'a Arc<Parts>,
    i: usize,
    out_path: &'a Path,
    block: Block,
    /// When the block being filled got its first byte (or was created).
    block_since: std::time::Instant,
    /// The write in flight and the part its block belongs to.
    inflight:
        std::collections::VecDeque<(usize, tokio::task::JoinHandle<std::io::Result<Arc<Block>>>)>,
}

impl BlockWriter<'_> {
    async fn push(&mut self, mut data: &[u8], end: u64) -> std::result::Result<(), AttemptEnd> {
        while !data.is_empty() {
            let n = self.block.push(data);
            data = &data[n..];
            if self.block.is_full() {
                self.rotate(end).await?;
            }
        }
        Ok(())
    }

    /// Submit the block being filled and start the next one right after it (ending by `end`).
    async fn rotate(&mut self, end: u64) -> std::result::Result<(), AttemptEnd> {
        let at = self.block.end();
        let b = std::mem::replace(&mut self.block, Block::new(at, block_cap(at, end)));
        self.submit(b).await
    }

    /// Write a block that has been filling for longer than [`BLOCK_MAX_AGE`]; land writes that already returned.
    async fn keep_fresh(&mut self, end: u64) -> std::result::Result<(), AttemptEnd> {
        if !self.block.is_empty() && self.block_since.elapsed() >= BLOCK_MAX_AGE {
            self.rotate(end).await?;
        }
        while self.inflight.front().is_some_and(|(_, h)| h.is_finished()) {
            self.land().await?;
        }
        Ok(())
    }

    /// `n` bytes were read into the block's spare room.
    async fn filled(&mut self, n: usize, end: u64) -> std::result::Result<(), AttemptEnd> {
        self.block.advance(n);
        if self.block.is_full() {
            self.rotate(end).await?;
        }
        Ok(())
    }

    /// Start writing `b` (after the oldest write if [`WRITES_IN_FLIGHT`] are under way).
    async fn submit(&mut self, b: Block) -> std::result::Result<(), AttemptEnd> {
        self.block_since = std::time::Instant::now();
        let b = Arc::new(b);
        self.hot.room().await;
        self.hot.offer(b.clone());
        // Writes that already returned count as done now (a slow link must not hold back what a resume trusts).
        while self.inflight.len() >= WRITES_IN_FLIGHT
            || self.inflight.front().is_some_and(|(_, h)| h.is_finished())
        {
            self.land().await?;
        }
        let out = self.out.clone();
        let part = self.i;
        self.inflight.push_back((
            part,
            tokio::task::spawn_blocking(move || {
                out.write_at(b.bytes(), b.start)?;
                Ok(b)
            }),
        ));
        Ok(())
    }

    /// The connection goes on with part `i` from `pos` (its start) to `end`. The previous part's blocks are all
    /// submitted: its end is where a block ended.
    fn next_part(&mut self, i: usize, pos: u64, end: u64) {
        debug_assert!(self.block.is_empty());
        self.i = i;
        self.block = Block::new(pos, block_cap(pos, end));
        self.block_since = std::time::Instant::now();
    }

    /// Wait for the oldest write in flight; its bytes then count as done (what a resume trusts).
    async fn land(&mut self) -> std::result::Result<(), AttemptEnd> {
        let Some((part, h)) = self.inflight.pop_front() else {
            return Ok(());
        };
        let b = h
            .await
            .map_err(|e| {
                AttemptEnd::Fatal(EmaError::Other(format!("the writing thread failed: {e}")))
            })?
            .map_err(|e| io_end("cannot write", self.out_path, e))?;
        let (start, _) = self.parts.ranges[part];
        self.parts.done[part].store(b.end() - start, Ordering::Release);
        Ok(())
    }

    async fn finish(mut self) -> std::result::Result<(), AttemptEnd> {
        if !self.block.is_empty() {
            let at = self.block.end();
            let last = std::mem::replace(&mut self.block, Block::new(at, 1));
            self.submit(last).await?;
        }
        while !self.inflight.is_empty() {
            self.land().await?;
        }
        Ok(())
    }
}

/// Move a verified partial to its place in the model folder. Every existing ancestor inside the model folder must
/// be a real directory (never a symlink); a destination that is a symlink is replaced, not written through.
pub(super) fn place(ctx: &JobCtx, rel: &str, partial: &Path) -> Result<()> {
    let dest = safe_dest(&ctx.model_dir, rel)?;
    if let Ok(m) = std::fs::symlink_metadata(&dest)
        && m.is_dir()
    {
        return Err(EmaError::Other(format!(
            "cannot place {rel}: {} is a directory; move it away and run `ema download` again",
            dest.display()
        )));
    }
    std::fs::rename(partial, &dest)
        .map_err(|e| EmaError::io("cannot move into place", &dest, e))?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// The destination of `rel` inside `model_dir`, creating parent folders; refuses to pass through a symlink.
pub(crate) fn safe_dest(model_dir: &Path, rel: &str) -> Result<PathBuf> {
    crate::engine::store::validate_repo_path(rel)?;
    ensure_real_dir(model_dir, rel)?;
    let segs: Vec<&str> = rel.split('/').collect();
    let mut p = model_dir.to_path_buf();
    for seg in &segs[..segs.len() - 1] {
        p.push(seg);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(EmaError::Integrity(format!(
                    "refusing repo file name {rel:?}: {} is a symlink and writing through it could escape the \
                     model folder; remove the link and run `ema download` again",
                    p.display()
                )));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(EmaError::Other(format!(
                    "cannot place {rel:?}: {} is a file, not a folder; move it away and run `ema download` again",
                    p.display()
                )));
            }
            Err(_) => match std::fs::create_dir(&p) {
                Ok(()) => {}
                // Another file of the model, placed at the same moment, created it: fine if it is a real folder.
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) => {}
                Err(e) => return Err(EmaError::io("cannot create directory", &p, e)),
            },
        }
    }
    p.push(segs[segs.len() - 1]);
    Ok(p)
}

fn ensure_real_dir(model_dir: &Path, rel: &str) -> Result<()> {
    match std::fs::symlink_metadata(model_dir) {
        Ok(m) if m.file_type().is_symlink() => Err(EmaError::Integrity(format!(
            "refusing to write {rel:?}: the model folder {} is a symlink; remove it and run `ema download` again",
            model_dir.display()
        ))),
        Ok(_) => Ok(()),
        Err(_) => std::fs::create_dir_all(model_dir)
            .map_err(|e| EmaError::io("cannot create directory", model_dir, e)),
    }
}

/// Bytes still to fetch for a file given its persisted partial state (for the disk pre-flight).
pub(super) fn bytes_remaining(partial_dir: &Path, hash: &str, size: u64) -> u64 {
    let own = partial_paths(partial_dir, hash).state;
    std::iter::once(own)
        .chain(orphans(partial_dir, hash).into_iter().map(|(_, p)| p))
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|b| serde_json::from_slice::<PartialState>(&b).ok())
        .filter(|st| st.size == size && st.hash == hash)
        .map(|st| size.saturating_sub(st.parts.iter().map(|p| p.done).sum()))
        .min()
        .unwrap_or(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_follows_contiguous_parts() {
        let st = PartialState {
            version: 1,
            path: "x".into(),
            size: 30,
            hash: "h".into(),
            etag: None,
            parts: vec![
                PartState {
                    start: 0,
                    end: 10,
                    done: 10,
                },
                PartState {
                    start: 10,
                    end: 20,
                    done: 3,
                },
                PartState {
                    start: 20,
                    end: 30,
                    done: 10,
                },
            ],
        };
        let p = Parts::from_state(&st);
        assert_eq!(p.frontier(30), 13);
        assert!(!p.complete());
        p.done[1].store(10, Ordering::Release);
        assert_eq!(p.frontier(30), 30);
        assert!(p.complete());
        assert_eq!(p.bytes_done(), 30);
    }

    #[test]
    fn a_full_disk_is_a_disk_space_error_that_keeps_the_partial() {
        let d = tempfile::tempdir().unwrap();
        let part = d.path().join("x.part");
        std::fs::write(&part, b"partial").unwrap();
        let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
        match io_end("cannot write", &part, e) {
            AttemptEnd::Fatal(err @ EmaError::DiskSpace(_)) => {
                let m = err.to_string();
                assert!(m.contains("full") && m.contains("resumed"), "{m}");
                assert_eq!(err.exit_code(), 6);
            }
            _ => panic!("ENOSPC must be a disk-space error"),
        }
        assert!(part.exists(), "the partial is kept for resume");
        let other = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(
            io_end("cannot write", &part, other),
            AttemptEnd::Fatal(EmaError::Io { .. })
        ));
    }

    #[test]
    fn content_range_parsing() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("content-range", "bytes 5-9/10".parse().unwrap());
        assert_eq!(content_range(&h), Some((5, 9, Some(10))));
        h.insert("content-range", "bytes 5-9/*".parse().unwrap());
        assert_eq!(content_range(&h), Some((5, 9, None)));
        h.insert("content-range", "junk".parse().unwrap());
        assert_eq!(content_range(&h), None);
    }

    #[test]
    fn symlinked_parent_refused_and_link_destination_replaced() {
        let d = tempfile::tempdir().unwrap();
        let model = d.path().join("m");
        std::fs::create_dir(&model).unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, model.join("sub")).unwrap();
        let e = safe_dest(&model, "sub/x.bin").unwrap_err().to_string();
        assert!(e.contains("sub/x.bin") && e.contains("symlink"), "{e}");
        assert!(safe_dest(&model, "../x").is_err());
        let p = safe_dest(&model, "a/b/c.txt").unwrap();
        assert_eq!(p, model.join("a/b/c.txt"));
        assert!(model.join("a/b").is_dir());
    }
}
