//! One connection's transfer: the Range it asks for, the checks on the server's answer, and the body received into
//! blocks (going on into the next part when that one starts right where this one ended).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use tokio::sync::watch;
use url::Url;

use super::job::JobCtx;
use super::outcome::AttemptEnd;
use super::partial::Parts;
use super::progress::FileProgress;
use super::sink::{BlockWriter, HotBlocks, PartialFile};
use super::util::Control;
use crate::engine::error::EmaError;
use crate::engine::hub::failure::describe_reqwest;
use crate::engine::hub::{FileBody, FileResponse, RemoteFile, Subject};

/// Fetch part `i` (and, for a connection working alone, the untouched parts after it) into the partial. Returns a
/// part claimed at the end that does not continue this one (it needs its own request).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_part(
    ctx: &Arc<JobCtx>,
    file: &RemoteFile,
    parts: &Arc<Parts>,
    i: usize,
    multi: bool,
    claim: &(dyn Fn() -> Option<usize> + Sync),
    connections: &AtomicUsize,
    out: &Arc<PartialFile>,
    hot: &Arc<HotBlocks>,
    out_path: &Path,
    progress: &Arc<FileProgress>,
    fetched: &Arc<AtomicU64>,
) -> std::result::Result<Option<usize>, AttemptEnd> {
    let (start, end) = parts.ranges[i];
    let done0 = parts.done[i].load(Ordering::Acquire);
    let from = start + done0;
    let upto = request_end(parts, i, end, multi, connections);
    let range = if !multi && from == 0 {
        None
    } else {
        Some((from, (upto < file.size).then(|| upto - 1)))
    };
    let (resp, url) = ctx
        .hub
        .get_file(&ctx.repo, &ctx.commit, &file.path, range)
        .await?;
    check_answer(ctx, file, &resp, &url, range.is_some(), from)?;
    let mut body = Body::of(resp.body);
    // Bytes are gathered into aligned blocks; one block is being written while the next fills. A part's `done`
    // (what a resume trusts) advances only when a block's write has returned.
    let mut w = BlockWriter::new(out, hot, parts, i, out_path, from, end);
    let mut claimed = None;
    let span = Span { from, end, upto };
    let received = receive(
        ctx,
        file,
        &mut body,
        &mut w,
        parts,
        span,
        multi,
        claim,
        &mut claimed,
        progress,
        fetched,
    )
    .await;
    // Whatever ended the transfer, the bytes received so far are written so a resume continues after them.
    let flushed = w.finish().await;
    match (received, flushed) {
        (_, Err(e @ AttemptEnd::Fatal(_))) => Err(e),
        (Err(e), _) => Err(e),
        (Ok(()), r) => r.map(|()| claimed),
    }
}

/// Where a request for part `i` (ending at `end`) ends. A whole file from zero in one part needs no Range. A
/// connection working alone asks for its part and the untouched parts right after it, and goes on into them as
/// long as nobody else took them (no new request per part); with other connections at work it asks for its own
/// part only, so nothing is fetched twice.
fn request_end(parts: &Parts, i: usize, end: u64, multi: bool, connections: &AtomicUsize) -> u64 {
    let mut upto = end;
    if multi && connections.load(Ordering::Acquire) <= 1 {
        for j in i + 1..parts.ranges.len() {
            if parts.ranges[j].0 != upto || parts.done[j].load(Ordering::Acquire) != 0 {
                break;
            }
            upto = parts.ranges[j].1;
        }
    }
    upto
}

/// The server's answer must be the asked bytes of the listed file: 200 for a request without Range, 206 from
/// `from` otherwise; anything else restarts the file, is retried or is final.
fn check_answer(
    ctx: &JobCtx,
    file: &RemoteFile,
    resp: &FileResponse,
    url: &Url,
    ranged: bool,
    from: u64,
) -> std::result::Result<(), AttemptEnd> {
    let status = resp.status;
    match status {
        StatusCode::OK => {
            if ranged {
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
                    url,
                    status,
                    &resp.headers,
                )
                .into());
        }
    }
    Ok(())
}

/// The bytes a request covers: from `from` to the current part's `end`, possibly on up to `upto`.
#[derive(Clone, Copy)]
struct Span {
    from: u64,
    end: u64,
    upto: u64,
}

/// Receive the body into `w` until the span is done; at the end of a part, go on into the next claimed part when
/// it starts right here, else leave it in `claimed`.
#[allow(clippy::too_many_arguments)]
async fn receive(
    ctx: &JobCtx,
    file: &RemoteFile,
    body: &mut Body,
    w: &mut BlockWriter<'_>,
    parts: &Parts,
    span: Span,
    multi: bool,
    claim: &(dyn Fn() -> Option<usize> + Sync),
    claimed: &mut Option<usize>,
    progress: &FileProgress,
    fetched: &AtomicU64,
) -> std::result::Result<(), AttemptEnd> {
    let stall = ctx.hub.stall_timeout();
    let Span {
        mut from,
        mut end,
        upto,
    } = span;
    let mut pos = from;
    let mut carry: Option<bytes::Bytes> = None;
    let mut control = ctx.control.clone();
    let mut control_alive = true;
    loop {
        if *control.borrow_and_update() != Control::Run {
            return Err(AttemptEnd::Interrupted);
        }
        let got = match read_some(
            body,
            &mut carry,
            w,
            &mut control,
            &mut control_alive,
            stall,
            file,
        )
        .await?
        {
            Read::Got(got) => got,
            Read::Again => continue,
            Read::End => break,
        };
        let Some(n) = take_in(ctx, w, got, end, pos, &mut carry).await? else {
            continue;
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
            *claimed = claim();
            match *claimed {
                Some(j) if parts.ranges[j].0 + parts.done[j].load(Ordering::Acquire) == pos => {
                    *claimed = None;
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

/// What one read of the body gave.
enum Read {
    Got(Got),
    /// The control changed: look at it again.
    Again,
    /// The body ended.
    End,
}

/// Read the next bytes of the body, giving up on a connection silent for `stall`. The general client hands out
/// chunks to copy (the rest of one that crossed into the next part first); ema's reader fills the block in place.
async fn read_some(
    body: &mut Body,
    carry: &mut Option<bytes::Bytes>,
    w: &mut BlockWriter<'_>,
    control: &mut watch::Receiver<Control>,
    control_alive: &mut bool,
    stall: Duration,
    file: &RemoteFile,
) -> std::result::Result<Read, AttemptEnd> {
    let got = match body {
        Body::Chunks(_) if carry.is_some() => Got::Chunk(carry.take().unwrap_or_default()),
        Body::Chunks(stream) => {
            let next = tokio::select! {
                n = tokio::time::timeout(stall, stream.next()) => n,
                r = control.changed(), if *control_alive => {
                    *control_alive = r.is_ok();
                    return Ok(Read::Again);
                }
            };
            match next {
                Err(_) => return Err(stalled(stall)),
                Ok(None) => return Ok(Read::End),
                Ok(Some(Err(e))) if e.is_timeout() => return Err(stalled(stall)),
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
                r = control.changed(), if *control_alive => {
                    *control_alive = r.is_ok();
                    return Ok(Read::Again);
                }
            };
            match next {
                Err(_) => return Err(stalled(stall)),
                Ok(Err(e)) => {
                    return Err(AttemptEnd::Transient {
                        message: format!("the transfer of {} broke: {e}", file.path),
                        retry_after: None,
                    });
                }
                Ok(Ok(0)) => return Ok(Read::End),
                Ok(Ok(n)) => Got::InBlock(n),
            }
        }
    };
    Ok(Read::Got(got))
}

/// Take what was read into the block (after the bandwidth limit): at most up to the part's `end`, the rest of a
/// chunk being carried to the next part. Returns the bytes taken; `None` for an empty chunk.
async fn take_in(
    ctx: &JobCtx,
    w: &mut BlockWriter<'_>,
    got: Got,
    end: u64,
    pos: u64,
    carry: &mut Option<bytes::Bytes>,
) -> std::result::Result<Option<usize>, AttemptEnd> {
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
                return Ok(None);
            }
            let room = end - pos;
            let data = if (chunk.len() as u64) > room {
                *carry = Some(chunk.slice(room as usize..));
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
    Ok(Some(n))
}

fn stalled(stall: Duration) -> AttemptEnd {
    AttemptEnd::Transient {
        message: format!(
            "the connection stalled: no byte for {:.1} s; dropped it",
            stall.as_secs_f64()
        ),
        retry_after: None,
    }
}

/// A response body: chunks from the general client, or ema's HTTP/1.1 reader filling blocks in place.
enum Body {
    Chunks(std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>),
    Direct(crate::engine::http1::RawBody),
}

impl Body {
    fn of(body: FileBody) -> Body {
        match body {
            FileBody::Client(r) => Body::Chunks(Box::pin(r.bytes_stream())),
            FileBody::Direct(b) => Body::Direct(b),
        }
    }
}

enum Got {
    Chunk(bytes::Bytes),
    InBlock(usize),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
