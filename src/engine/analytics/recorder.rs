//! The recorder: records reach the database without ever blocking the caller. A bounded queue feeds one writer task
//! that writes batches in transactions; a full queue, a recorder that fell behind the event bus, or a database that
//! is away (PostgreSQL stopped) drops events, and every dropped event is counted per kind and persisted as soon as
//! the database answers again. Shutdown flushes within a deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::db::AnalyticsDb;
use super::record::{EventMapper, Record, kind};
use super::url::DbUrl;
use crate::engine::events::Event;

/// Records the queue holds before new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 32_768;
/// Records per write transaction at most.
pub const BATCH_MAX: usize = 5_000;
/// After a failed write or open, how long the writer waits before trying the database again (records arriving
/// meanwhile are dropped and counted).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the recorder did so far (this process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecorderStats {
    /// Records accepted into the queue.
    pub accepted: u64,
    /// Records written to the database.
    pub written: u64,
    /// Records dropped (queue full, bus lag, database away, shutdown deadline).
    pub dropped: u64,
    /// Dropped counts not yet persisted (the database has not answered since).
    pub dropped_unpersisted: u64,
    /// The last write failed: the database is away.
    pub database_away: bool,
}

#[derive(Default)]
struct Shared {
    accepted: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    /// Of `accepted`, how many the writer dropped (database away, shutdown).
    accepted_dropped: AtomicU64,
    away: AtomicBool,
    /// Dropped per kind, waiting to be added to the persisted counters.
    pending_dropped: Mutex<HashMap<String, u64>>,
    /// When shutting down: the moment the writer stops writing and counts what is left as dropped.
    deadline: Mutex<Option<Instant>>,
}

impl Shared {
    fn drop_n(&self, kind: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.dropped.fetch_add(n, Ordering::Relaxed);
        let mut m = self
            .pending_dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *m.entry(kind.to_string()).or_default() += n;
    }
}

/// A handle to a running recorder: cheap to clone, `record` never waits.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
    shared: Arc<Shared>,
    /// Stops the writer, once the followers are done.
    stop: CancellationToken,
    /// Stops the followers of the event bus (first, so that what they drain still reaches the writer).
    follow_stop: CancellationToken,
    /// The writer.
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// The followers of the event bus.
    followers: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    url: DbUrl,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder({})", self.url.redacted())
    }
}

impl Recorder {
    /// Start the writer on the current tokio runtime. The database is opened by the writer (an unreachable one is
    /// retried every [`RETRY_AFTER`] while records are dropped and counted), so starting never waits on it.
    pub fn start(url: DbUrl) -> Recorder {
        Self::start_with(url, QUEUE_CAPACITY)
    }

    /// As [`Recorder::start`] with a chosen queue capacity (tests of overload).
    pub fn start_with(url: DbUrl, capacity: usize) -> Recorder {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let writer = tokio::spawn(writer(url.clone(), rx, shared.clone(), stop.clone()));
        Recorder {
            tx,
            shared,
            stop,
            follow_stop: CancellationToken::new(),
            tasks: Arc::new(Mutex::new(vec![writer])),
            followers: Arc::new(Mutex::new(Vec::new())),
            url,
        }
    }

    /// Queue a record; when the queue is full it is dropped and counted. Never waits.
    pub fn record(&self, r: Record) {
        match self.tx.try_send(r) {
            Ok(()) => {
                self.shared.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) => {
                self.shared.drop_n(&r.kind, 1);
            }
        }
    }

    /// Record what the engine publishes on `rx` (mapped by [`EventMapper`]); events missed because this
    /// subscriber fell behind are counted as dropped (kind `unknown`).
    pub fn follow(&self, mut rx: broadcast::Receiver<Event>) {
        let me = self.clone();
        let stop = self.follow_stop.clone();
        let task = tokio::spawn(async move {
            use broadcast::error::{RecvError, TryRecvError};
            let mut mapper = EventMapper::default();
            loop {
                let ev = tokio::select! {
                    biased;
                    r = rx.recv() => match r {
                        Ok(ev) => ev,
                        Err(RecvError::Lagged(n)) => { me.shared.drop_n(kind::UNKNOWN, n); continue }
                        Err(RecvError::Closed) => return,
                    },
                    _ = stop.cancelled() => {
                        // Take what is already on the bus, then stop.
                        loop {
                            match rx.try_recv() {
                                Ok(ev) => mapper.map_all(&ev).into_iter().for_each(|r| me.record(r)),
                                Err(TryRecvError::Lagged(n)) => me.shared.drop_n(kind::UNKNOWN, n),
                                Err(_) => return,
                            }
                        }
                    }
                };
                for r in mapper.map_all(&ev) {
                    me.record(r);
                }
            }
        });
        self.followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    pub fn stats(&self) -> RecorderStats {
        let pending: u64 = self
            .shared
            .pending_dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum();
        RecorderStats {
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            dropped_unpersisted: pending,
            database_away: self.shared.away.load(Ordering::Relaxed),
        }
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// Wait until every record accepted so far is written or counted as dropped, and the dropped counts are
    /// persisted, or `timeout` passes. True when everything landed.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.stats();
            let settled = s.written + self.queued_dropped() >= s.accepted;
            if settled && s.dropped_unpersisted == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Records accepted into the queue and later dropped by the writer (database away, shutdown).
    fn queued_dropped(&self) -> u64 {
        self.shared.accepted_dropped.load(Ordering::Relaxed)
    }

    /// Stop: take what is on the bus, write what is queued, persist the dropped counts — all within `timeout`;
    /// what is still queued then is counted as dropped (and reported in the returned stats).
    pub async fn shutdown(&self, timeout: Duration) -> RecorderStats {
        *self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + timeout);
        // A write in flight at the deadline is bounded by the database timeouts; give it a moment beyond.
        let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(1);
        // The followers first: what they take from the bus on the way out must reach a writer still draining.
        self.follow_stop.cancel();
        let followers: Vec<_> =
            std::mem::take(&mut *self.followers.lock().unwrap_or_else(|e| e.into_inner()));
        for t in followers {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
        self.stop.cancel();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
        self.stats()
    }
}

/// The writer: batches from the queue, one transaction each; on shutdown drains within the caller's deadline.
async fn writer(
    url: DbUrl,
    mut rx: mpsc::Receiver<Record>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut db: Option<AnalyticsDb> = None;
    let mut retry_at: Option<Instant> = None;
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH_MAX);
    loop {
        batch.clear();
        let stopping = stop.is_cancelled();
        let past_deadline = shared
            .deadline
            .lock()
            .map(|d| d.is_some_and(|d| Instant::now() >= d))
            .unwrap_or(false);
        if stopping && past_deadline {
            // Out of time: what is still queued is counted as dropped, not lost.
            while let Ok(r) = rx.try_recv() {
                shared.drop_n(&r.kind, 1);
                shared.accepted_dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if stopping {
            // The bus follower has queued its last records once it returns; take everything queued now.
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
                if batch.len() >= BATCH_MAX {
                    break;
                }
            }
        } else {
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, BATCH_MAX) => if n == 0 { return },
                _ = stop.cancelled() => continue,
                _ = tokio::time::sleep(Duration::from_millis(500)), if has_pending(&shared) => {}
            }
        }
        if batch.is_empty() && !has_pending(&shared) {
            if stopping {
                return;
            }
            continue;
        }
        // The database: open it when needed, but not more often than RETRY_AFTER after a failure.
        if db.is_none() && retry_at.is_none_or(|t| Instant::now() >= t) {
            match AnalyticsDb::open(&url).await {
                Ok(d) => db = Some(d),
                Err(_) => retry_at = Some(Instant::now() + RETRY_AFTER),
            }
        }
        let ok = match &db {
            Some(d) if retry_at.is_none_or(|t| Instant::now() >= t) => {
                let dropped = std::mem::take(
                    &mut *shared
                        .pending_dropped
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()),
                );
                match d.write(&batch, &dropped).await {
                    Ok(_) => {
                        shared
                            .written
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        shared.away.store(false, Ordering::Relaxed);
                        retry_at = None;
                        true
                    }
                    Err(_) => {
                        // Put the counts back; the batch joins them below.
                        let mut m = shared
                            .pending_dropped
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        for (k, n) in dropped {
                            *m.entry(k).or_default() += n;
                        }
                        retry_at = Some(Instant::now() + RETRY_AFTER);
                        false
                    }
                }
            }
            _ => false,
        };
        if !ok {
            shared.away.store(true, Ordering::Relaxed);
            for r in &batch {
                shared.drop_n(&r.kind, 1);
            }
            shared
                .accepted_dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if stopping {
                return;
            }
        }
    }
}

fn has_pending(shared: &Shared) -> bool {
    shared
        .pending_dropped
        .lock()
        .map(|m| !m.is_empty())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unusable_database_drops_and_counts_every_record() {
        let d = tempfile::tempdir().unwrap();
        let rec = Recorder::start(DbUrl::sqlite_file(&d.path().join("missing/dir/a.db")));
        for _ in 0..100 {
            rec.record(Record::new(kind::MODEL_SERVED, Some("a/b")));
        }
        let st = rec.shutdown(Duration::from_secs(2)).await;
        assert_eq!(
            (st.accepted, st.written, st.dropped),
            (100, 0, 100),
            "{st:?}"
        );
        assert!(st.database_away);
        assert_eq!(st.dropped_unpersisted, 100);
    }

    /// What the followers take off the bus while stopping still reaches the writer: events emitted just before
    /// shutdown are written, never lost to a writer that finished first (the selftest's flake).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_on_the_bus_at_shutdown_are_written() {
        let d = tempfile::tempdir().unwrap();
        for round in 0..20 {
            let rec = Recorder::start(DbUrl::sqlite_file(&d.path().join(format!("{round}.db"))));
            let bus = crate::engine::events::EventBus::new();
            rec.follow(bus.subscribe());
            bus.emit(Event::DownloadStarted {
                model_id: "org/m".into(),
                commit: "c".into(),
            });
            let st = rec.shutdown(Duration::from_secs(5)).await;
            assert_eq!(
                (st.accepted, st.written, st.dropped),
                (1, 1, 0),
                "round {round}: {st:?}"
            );
        }
    }
}
