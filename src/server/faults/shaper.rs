//! The body a fault layer hands out ([`Shaper`]): counts bytes, flips bytes, throttles, stalls or cuts it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::Stream;

use super::log::LogEntry;
use super::plan::Fault;

/// How long a stalled response stays open.
const STALL_LIMIT: Duration = Duration::from_secs(600);

type DataStream = Pin<Box<dyn Stream<Item = Result<Bytes, axum::Error>> + Send>>;

/// Wraps a response body: counts bytes, flips bytes, throttles, stalls or cuts it.
pub(crate) struct Shaper {
    inner: DataStream,
    /// File offset of the next byte.
    file_offset: u64,
    /// Body bytes handed out.
    sent: u64,
    drop_after: Option<u64>,
    stall_after: Option<u64>,
    flips: Vec<u64>,
    rate: Option<u64>,
    started: Option<tokio::time::Instant>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A chunk waiting to be handed out (after a throttle sleep, or the rest of a split chunk).
    pending: Option<Bytes>,
    done: bool,
    /// The drop limit was reached and the grace period started.
    dropping: bool,
    /// The stall limit was reached and the stall started.
    stalling: bool,
    entry: Arc<LogEntry>,
}

impl Stream for Shaper {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(s) = this.sleep.as_mut() {
            if s.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        // Limits on where the body may go.
        if let Some(n) = this.drop_after
            && this.sent >= n
        {
            if !this.dropping {
                // Give the connection a moment to flush the bytes already sent, then cut it.
                this.dropping = true;
                let mut s = Box::pin(tokio::time::sleep(Duration::from_millis(100)));
                if s.as_mut().poll(cx).is_pending() {
                    this.sleep = Some(s);
                    return Poll::Pending;
                }
            }
            this.done = true;
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "injected fault: connection dropped",
            ))));
        }
        if let Some(n) = this.stall_after
            && this.sent >= n
        {
            // Nothing more for ten minutes (far beyond any client's stall timeout), then cut the connection so a
            // stalled response never lives forever.
            if !this.stalling {
                this.stalling = true;
                let mut t = Box::pin(tokio::time::sleep(STALL_LIMIT));
                if t.as_mut().poll(cx).is_pending() {
                    this.sleep = Some(t);
                    return Poll::Pending;
                }
            }
            this.done = true;
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "injected fault: stalled response closed",
            ))));
        }
        let chunk = match this.pending.take() {
            Some(c) => c,
            None => match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(c))) => c,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(e))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            },
        };
        // How much of this chunk may go now.
        let mut take = chunk.len() as u64;
        for limit in [this.drop_after, this.stall_after].into_iter().flatten() {
            take = take.min(limit.saturating_sub(this.sent));
        }
        if let Some(rate) = this.rate {
            // Small slices so the rate is smooth: about 20 per second.
            take = take.min((rate / 20).max(1));
            let started = *this.started.get_or_insert_with(tokio::time::Instant::now);
            let due = started + Duration::from_secs_f64(this.sent as f64 / rate as f64);
            if due > tokio::time::Instant::now() {
                this.pending = Some(chunk);
                let mut s = Box::pin(tokio::time::sleep_until(due));
                if s.as_mut().poll(cx).is_pending() {
                    this.sleep = Some(s);
                    return Poll::Pending;
                }
                let c = this.pending.take().unwrap_or_default();
                return self.emit(c, take);
            }
        }
        self.emit(chunk, take)
    }
}

impl Shaper {
    /// `body`, starting at `file_offset` of its file, capped at `rate` bytes per second, with no faults yet.
    pub(crate) fn new(
        body: Body,
        file_offset: u64,
        rate: Option<u64>,
        entry: Arc<LogEntry>,
    ) -> Shaper {
        Shaper {
            inner: Box::pin(body.into_data_stream()),
            file_offset,
            sent: 0,
            drop_after: None,
            stall_after: None,
            flips: Vec::new(),
            rate,
            started: None,
            sleep: None,
            pending: None,
            done: false,
            dropping: false,
            stalling: false,
            entry,
        }
    }

    /// Apply a body fault too (the tightest limit and the slowest rate win).
    pub(crate) fn add(&mut self, fault: Fault) {
        match fault {
            Fault::DropAfter(n) => self.drop_after = Some(self.drop_after.map_or(n, |m| m.min(n))),
            Fault::Stall { after_bytes } => {
                self.stall_after =
                    Some(self.stall_after.map_or(after_bytes, |m| m.min(after_bytes)))
            }
            Fault::FlipByte(o) => self.flips.push(o),
            Fault::Trickle(r) => self.rate = Some(self.rate.map_or(r, |c| c.min(r)).max(1)),
            Fault::Status { .. } | Fault::IgnoreRange => {}
        }
    }

    fn emit(
        mut self: Pin<&mut Self>,
        chunk: Bytes,
        take: u64,
    ) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        let this = &mut *self;
        let take = (take as usize).min(chunk.len());
        if take < chunk.len() {
            this.pending = Some(chunk.slice(take..));
        }
        let mut out = chunk.slice(..take);
        let lo = this.file_offset;
        let hi = lo + take as u64;
        if this.flips.iter().any(|o| (lo..hi).contains(o)) {
            let mut v = out.to_vec();
            for o in &this.flips {
                if (lo..hi).contains(o) {
                    v[(o - lo) as usize] ^= 0xff;
                }
            }
            out = Bytes::from(v);
        }
        this.file_offset = hi;
        this.sent += take as u64;
        this.entry.add_body_bytes(take as u64);
        Poll::Ready(Some(Ok(out)))
    }
}
