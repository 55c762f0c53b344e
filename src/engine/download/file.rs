//! Downloading one file: attempts with retries and backoff (a restart from zero in one part when the server
//! mishandles ranges), each attempt a sequence of steps — check the file's headers, open or resume its partial,
//! hash while the connections fetch the parts, then judge the hash and place the file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::hasher::HashThread;
use super::job::JobCtx;
use super::outcome::{AttemptEnd, FileOutcome, final_error, io_end};
use super::partial::{
    FilePaths, Parts, Persister, claim_partial, load_or_create_state, persists, reset_partial,
};
use super::place::place;
use super::progress::FileProgress;
use super::schedule::run_connections;
use super::sink::{HotBlocks, PartialFile};
use super::util::{Control, FileHasher, backoff, sleep_or_control, wait_while_paused};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::Event;
use crate::engine::hub::listing::is_hex;
use crate::engine::hub::{FileHead, RemoteFile};

/// Download, verify and place one file. `hash` is the validated expected hash.
pub(super) async fn download_file(
    ctx: &Arc<JobCtx>,
    file: &RemoteFile,
    hash: &str,
    progress: &Arc<FileProgress>,
) -> Result<FileOutcome> {
    let paths = claim_partial(&ctx.partial_dir, hash, ctx.cfg.resume_enabled);
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

/// One attempt at the file: resumes from the partial (and `hasher`, the hash of its verified prefix) where it can.
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
    let head = check_head(ctx, file, hash).await?;
    let parts_wanted = parts_wanted(ctx, file, single_part);
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
    let hashing = HashThread::start(&partial_file, &hot, h0, off0, &parts, file.size);
    // Persist progress about once a second while parts run.
    let persist = persists(file.size);
    let persister = Persister::start(&parts, &state, &paths.state, persist);
    let errors = run_connections(
        ctx,
        file,
        &parts,
        &partial_file,
        &hot,
        &paths.partial,
        progress,
        fetched,
    )
    .await;
    persister.stop(&parts, &state, &paths.state, persist).await;
    let (h, off) = hashing.finish(&paths.partial).await?;
    let got = verdict(file, hash, paths, &parts, errors, hasher, h, off)?;
    place_verified(ctx, file, paths, partial_file, got)
}

/// HEAD the file at the pinned commit; it must be the listed file: the same commit, the listed size, and no other
/// hash as its ETag (that means the file changed upstream since the listing).
async fn check_head(
    ctx: &JobCtx,
    file: &RemoteFile,
    hash: &str,
) -> std::result::Result<FileHead, AttemptEnd> {
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
        && (is_hex(etag, 40) || is_hex(etag, 64))
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
    Ok(head)
}

/// Parts of a fresh partial: one for a small file or after a restart, else one per connection.
fn parts_wanted(ctx: &JobCtx, file: &RemoteFile, single_part: bool) -> u32 {
    if single_part || file.size < ctx.cfg.parallel_threshold_mb.saturating_mul(1 << 20) {
        1
    } else {
        ctx.cfg.connections_per_file.max(1)
    }
}

/// Judge the attempt once the writers and the hasher stopped: the most serious connection failure decides; else
/// every byte must be there and hash to `hash`. Returns the hash; an unfinished attempt leaves the hash of its
/// prefix in `hasher` for the next one, and a mismatch discards the bytes.
#[allow(clippy::too_many_arguments)]
fn verdict(
    file: &RemoteFile,
    hash: &str,
    paths: &FilePaths,
    parts: &Parts,
    errors: Vec<AttemptEnd>,
    hasher: &mut Option<(FileHasher, u64)>,
    h: FileHasher,
    off: u64,
) -> std::result::Result<String, AttemptEnd> {
    // The most serious failure decides.
    if let Some(w) = AttemptEnd::worst(errors) {
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
    Ok(got)
}

/// Make the verified bytes durable, move them into the model folder and say so.
fn place_verified(
    ctx: &JobCtx,
    file: &RemoteFile,
    paths: &FilePaths,
    partial_file: Arc<PartialFile>,
    got: String,
) -> std::result::Result<(), AttemptEnd> {
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
