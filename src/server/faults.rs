//! Fault injection for the mirror: the test hub is the real mirror with an [`FaultPlan`] in
//! [`MirrorOptions::faults`](super::mirror::MirrorOptions::faults), controlled at runtime by the test.
//!
//! Rules match requests whose URL path contains a pattern (`""` matches every request) and apply to the first
//! `times` matching requests (`None`: every one). Status faults ([`Fault::Status`]) apply to `GET` and `HEAD` and
//! answer without calling the server. [`Fault::IgnoreRange`] applies to `GET` requests that carry a `Range`
//! header. The other body faults apply to `GET` responses that have a body (`200`/`206`): a `302` to the CDN does
//! not consume them — target the `/cdn/` path for redirected LFS files.
//!
//! Every request is logged ([`FaultPlan::requests`]) with the bytes of body actually handed to the connection,
//! so a test can assert what was re-fetched. The log never holds a token: only whether `Authorization` was sent
//! and a short sha256 fingerprint of its value.
//!
//! Fixture repos that do not come from the disk (hostile file names, lying metadata) are added with
//! [`FaultPlan::add_virtual_repo`].

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};

use super::mirror::{BodyStart, FileEntry, Repo, derive_commit};

/// When to come back, for 429/503 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: N` (delta seconds).
    Seconds(u64),
    /// `Retry-After: <HTTP date N seconds from now>`.
    HttpDateIn(u64),
}

/// One kind of misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Send the headers and the first N bytes of the body, then cut the connection.
    DropAfter(u64),
    /// Answer this status (e.g. 500, 503, 429) without serving, with an optional `Retry-After`.
    Status {
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    /// Flip (xor 0xff) the byte at this offset of the FILE (not of the body), if the body covers it.
    FlipByte(u64),
    /// Send the body at this many bytes per second.
    Trickle(u64),
    /// Ignore the `Range` header: answer 200 with the whole file.
    IgnoreRange,
    /// Send the headers and the first N bytes of the body, then nothing, keeping the connection open (for ten
    /// minutes, then it is closed).
    Stall { after_bytes: u64 },
}

impl Fault {
    fn is_status(&self) -> bool {
        matches!(self, Fault::Status { .. })
    }
}

#[derive(Debug)]
struct Rule {
    pattern: String,
    remaining: Option<u32>,
    fault: Fault,
}

/// What the server saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// The URL path (no query string, so no signature).
    pub path: String,
    /// The `Host` header.
    pub host: Option<String>,
    /// Whether an `Authorization` header was sent.
    pub authorization: bool,
    /// First 16 hex digits of sha256 of the `Authorization` value, to compare without storing the token.
    pub authorization_fingerprint: Option<String>,
    /// The `Range` header as sent.
    pub range: Option<String>,
    /// The status answered (0 while the handler has not answered yet).
    pub status: u16,
    /// Body bytes handed to the connection so far.
    pub body_bytes: u64,
}

/// The request log keeps the most recent requests only (a long benchmark run must not grow without bound).
const MAX_LOG: usize = 100_000;

#[derive(Debug)]
struct LogEntry {
    method: String,
    path: String,
    host: Option<String>,
    authorization_fingerprint: Option<String>,
    authorization: bool,
    range: Option<String>,
    status: AtomicU16,
    body_bytes: AtomicU64,
}

impl LogEntry {
    fn snapshot(&self) -> RequestRecord {
        RequestRecord {
            method: self.method.clone(),
            path: self.path.clone(),
            host: self.host.clone(),
            authorization: self.authorization,
            authorization_fingerprint: self.authorization_fingerprint.clone(),
            range: self.range.clone(),
            status: self.status.load(Ordering::Relaxed),
            body_bytes: self.body_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The fingerprint [`RequestRecord::authorization_fingerprint`] holds for an `Authorization` value, e.g.
/// `fingerprint("Bearer hf_x")`.
pub fn fingerprint(authorization_value: &str) -> String {
    hex::encode(Sha256::digest(authorization_value.as_bytes()))[..16].to_string()
}

/// A file of a [`VirtualRepo`].
#[derive(Debug, Clone)]
pub struct VirtualFile {
    pub path: String,
    pub content: Vec<u8>,
    /// Size the listing claims (headers tell the truth). `None`: the real size.
    pub listed_size: Option<u64>,
    /// sha256 the listing and headers claim. `None`: the real one.
    pub listed_sha256: Option<String>,
}

impl VirtualFile {
    pub fn new(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        VirtualFile {
            path: path.into(),
            content: content.into(),
            listed_size: None,
            listed_sha256: None,
        }
    }
}

/// An in-memory repo served beside the store, for hostile and lying fixtures.
#[derive(Debug, Clone)]
pub struct VirtualRepo {
    pub id: String,
    /// The commit the server claims (`None`: derived from the files, a valid 40-hex).
    pub commit: Option<String>,
    pub files: Vec<VirtualFile>,
}

impl VirtualRepo {
    /// A repo whose listing contains `../evil`, `/etc/x`, `a\b`, `sub/../../x` and one good file `ok.txt`.
    pub fn hostile_names(id: &str) -> Self {
        VirtualRepo {
            id: id.to_string(),
            commit: None,
            files: vec![
                VirtualFile::new("../evil", b"evil\n".to_vec()),
                VirtualFile::new("/etc/x", b"evil\n".to_vec()),
                VirtualFile::new("a\\b", b"evil\n".to_vec()),
                VirtualFile::new("sub/../../x", b"evil\n".to_vec()),
                VirtualFile::new("ok.txt", b"fine\n".to_vec()),
            ],
        }
    }

    /// A repo that claims a commit that is not 40-hex.
    pub fn non_hex_commit(id: &str) -> Self {
        VirtualRepo {
            id: id.to_string(),
            commit: Some("../../not-a-commit".to_string()),
            files: vec![VirtualFile::new("config.json", b"{}\n".to_vec())],
        }
    }

    /// A repo whose LFS file `model.safetensors` claims a sha256 of the wrong length.
    pub fn bad_sha256(id: &str) -> Self {
        let mut f = VirtualFile::new("model.safetensors", vec![7u8; 4096]);
        f.listed_sha256 = Some("abc123".to_string());
        VirtualRepo {
            id: id.to_string(),
            commit: None,
            files: vec![f],
        }
    }

    /// A repo whose `model.safetensors` is listed with one size but served with another.
    pub fn size_mismatch(id: &str) -> Self {
        let mut f = VirtualFile::new("model.safetensors", vec![9u8; 4096]);
        f.listed_size = Some(4000);
        VirtualRepo {
            id: id.to_string(),
            commit: None,
            files: vec![f],
        }
    }

    fn into_repo(self) -> Repo {
        let mut files = BTreeMap::new();
        for f in self.files {
            let mut e = FileEntry::from_bytes(&f.path, Bytes::from(f.content));
            e.listed_size = f.listed_size;
            if f.listed_sha256.is_some() {
                e.lfs = true;
                e.listed_sha256 = f.listed_sha256;
            }
            files.insert(f.path, Arc::new(e));
        }
        let commit = self.commit.unwrap_or_else(|| derive_commit(&files));
        Repo {
            id: self.id,
            commit,
            recorded_revision: None,
            files,
            pipeline_tag: None,
            library_name: None,
            tags: Vec::new(),
            safetensors: BTreeMap::new(),
            last_modified: "2026-01-01T00:00:00.000Z".to_string(),
            card_data: None,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    rules: Vec<Rule>,
    connection_cap: Option<u64>,
    virtual_repos: HashMap<String, Arc<Repo>>,
    /// (repo id, path) → the new content ("upstream changed").
    changed: HashMap<(String, String), Arc<FileEntry>>,
}

/// The runtime-controllable fault plan and request log. Share it with `Arc` between the test and the server.
#[derive(Debug, Default)]
pub struct FaultPlan {
    inner: Mutex<Inner>,
    log: Mutex<Vec<Arc<LogEntry>>>,
}

impl FaultPlan {
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply `fault` to the first `times` requests (`None`: all) whose path contains `path_contains`.
    pub fn add(&self, path_contains: impl Into<String>, times: Option<u32>, fault: Fault) {
        self.lock().rules.push(Rule {
            pattern: path_contains.into(),
            remaining: times,
            fault,
        });
    }

    /// Remove every rule and the per-connection cap (virtual repos and changed files stay).
    pub fn clear(&self) {
        let mut i = self.lock();
        i.rules.clear();
        i.connection_cap = None;
    }

    /// Cap every response body at `bytes_per_sec` (`None`: no cap). HTTP/1.1 sends one response at a time on a
    /// connection, so this caps each connection: a client only gets more by opening more connections.
    pub fn set_connection_cap(&self, bytes_per_sec: Option<u64>) {
        self.lock().connection_cap = bytes_per_sec.filter(|b| *b > 0);
    }

    /// "Upstream changed": serve `content` for `path` of `repo_id` from now on, with its own hashes (new ETag,
    /// sha256 and size) in the listing, the headers and on the CDN; the commit stays.
    pub fn change_upstream(&self, repo_id: &str, path: &str, content: impl Into<Vec<u8>>) {
        let e = FileEntry::from_bytes(path, Bytes::from(content.into()));
        self.lock()
            .changed
            .insert((repo_id.to_string(), path.to_string()), Arc::new(e));
    }

    /// Serve an in-memory fixture repo (it shadows a store model of the same id).
    pub fn add_virtual_repo(&self, repo: VirtualRepo) {
        let r = repo.into_repo();
        self.lock().virtual_repos.insert(r.id.clone(), Arc::new(r));
    }

    /// Every request seen so far (the most recent 100 000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|e| e.snapshot())
            .collect()
    }

    /// Forget the request log.
    pub fn clear_log(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Body bytes sent for requests whose path contains `path_contains`.
    pub fn body_bytes_sent(&self, path_contains: &str) -> u64 {
        self.requests()
            .iter()
            .filter(|r| r.path.contains(path_contains))
            .map(|r| r.body_bytes)
            .sum()
    }

    pub(crate) fn virtual_repo(&self, id: &str) -> Option<Arc<Repo>> {
        self.lock().virtual_repos.get(id).cloned()
    }

    pub(crate) fn virtual_repos(&self) -> Vec<Arc<Repo>> {
        self.lock().virtual_repos.values().cloned().collect()
    }

    pub(crate) fn changed_files(&self, repo_id: &str) -> Vec<(String, Arc<FileEntry>)> {
        self.lock()
            .changed
            .iter()
            .filter(|((r, _), _)| r == repo_id)
            .map(|((_, p), f)| (p.clone(), f.clone()))
            .collect()
    }

    pub(crate) fn changed_file(&self, repo_id: &str, path: &str) -> Option<Arc<FileEntry>> {
        self.lock()
            .changed
            .get(&(repo_id.to_string(), path.to_string()))
            .cloned()
    }

    pub(crate) fn file_by_sha256(&self, sha: &str) -> Option<Arc<FileEntry>> {
        let i = self.lock();
        i.changed
            .values()
            .chain(i.virtual_repos.values().flat_map(|r| r.files.values()))
            .find(|f| f.sha256.as_deref() == Some(sha) || f.listed_sha256.as_deref() == Some(sha))
            .cloned()
    }

    /// Take the first matching status fault, consuming one use.
    fn take_status(&self, path: &str) -> Option<Fault> {
        let mut i = self.lock();
        take_matching(&mut i.rules, path, |f| f.is_status())
            .into_iter()
            .next()
    }

    fn take_ignore_range(&self, path: &str) -> bool {
        let mut i = self.lock();
        !take_matching(&mut i.rules, path, |f| *f == Fault::IgnoreRange).is_empty()
    }

    /// Take every matching body fault (one use each).
    fn take_body_faults(&self, path: &str) -> (Vec<Fault>, Option<u64>) {
        let mut i = self.lock();
        let faults = take_matching(&mut i.rules, path, |f| {
            matches!(
                f,
                Fault::DropAfter(_) | Fault::FlipByte(_) | Fault::Trickle(_) | Fault::Stall { .. }
            )
        });
        (faults, i.connection_cap)
    }
}

fn take_matching(rules: &mut Vec<Rule>, path: &str, kind: impl Fn(&Fault) -> bool) -> Vec<Fault> {
    let mut out = Vec::new();
    for r in rules.iter_mut() {
        if !kind(&r.fault) || !path.contains(&r.pattern) || r.remaining == Some(0) {
            continue;
        }
        if let Some(n) = r.remaining.as_mut() {
            *n -= 1;
        }
        out.push(r.fault.clone());
    }
    rules.retain(|r| r.remaining != Some(0));
    out
}

/// Put the fault layer around the mirror's router.
pub(crate) fn wrap(router: Router, plan: Arc<FaultPlan>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(plan, layer))
}

async fn layer(State(plan): State<Arc<FaultPlan>>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let hs = req.headers();
    let auth = hs.get(header::AUTHORIZATION);
    let entry = Arc::new(LogEntry {
        method: method.to_string(),
        path: path.clone(),
        host: hs
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        authorization: auth.is_some(),
        authorization_fingerprint: auth.and_then(|v| v.to_str().ok()).map(fingerprint),
        range: hs
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        status: AtomicU16::new(0),
        body_bytes: AtomicU64::new(0),
    });
    {
        let mut log = plan.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= MAX_LOG {
            log.drain(..MAX_LOG / 10);
        }
        log.push(entry.clone());
    }

    if (method == Method::GET || method == Method::HEAD)
        && let Some(Fault::Status {
            status,
            retry_after,
        }) = plan.take_status(&path)
    {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut r = Response::new(Body::from(format!("injected fault: {status}")));
        *r.status_mut() = code;
        let ra = match retry_after {
            Some(RetryAfter::Seconds(s)) => Some(s.to_string()),
            Some(RetryAfter::HttpDateIn(s)) => Some(httpdate::fmt_http_date(
                SystemTime::now() + Duration::from_secs(s),
            )),
            None => None,
        };
        if let Some(ra) = ra
            && let Ok(v) = HeaderValue::from_str(&ra)
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        entry.status.store(status, Ordering::Relaxed);
        return r;
    }

    if method == Method::GET
        && req.headers().contains_key(header::RANGE)
        && plan.take_ignore_range(&path)
    {
        req.headers_mut().remove(header::RANGE);
    }

    let resp = next.run(req).await;
    entry
        .status
        .store(resp.status().as_u16(), Ordering::Relaxed);
    let has_body = method == Method::GET
        && matches!(resp.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT);
    let (faults, cap) = if has_body {
        plan.take_body_faults(&path)
    } else {
        (Vec::new(), None)
    };
    let start = resp
        .extensions()
        .get::<BodyStart>()
        .map(|b| b.0)
        .unwrap_or(0);
    let mut shaper = Shaper {
        inner: None,
        file_offset: start,
        sent: 0,
        drop_after: None,
        stall_after: None,
        flips: Vec::new(),
        rate: cap,
        started: None,
        sleep: None,
        pending: None,
        done: false,
        dropping: false,
        stalling: false,
        entry: entry.clone(),
    };
    for f in faults {
        match f {
            Fault::DropAfter(n) => {
                shaper.drop_after = Some(shaper.drop_after.map_or(n, |m| m.min(n)))
            }
            Fault::Stall { after_bytes } => {
                shaper.stall_after = Some(
                    shaper
                        .stall_after
                        .map_or(after_bytes, |m| m.min(after_bytes)),
                )
            }
            Fault::FlipByte(o) => shaper.flips.push(o),
            Fault::Trickle(r) => shaper.rate = Some(shaper.rate.map_or(r, |c| c.min(r)).max(1)),
            Fault::Status { .. } | Fault::IgnoreRange => {}
        }
    }
    let (parts, body) = resp.into_parts();
    shaper.inner = Some(Box::pin(body.into_data_stream()));
    Response::from_parts(parts, Body::from_stream(shaper))
}

/// How long a stalled response stays open.
const STALL_LIMIT: Duration = Duration::from_secs(600);

type DataStream = Pin<Box<dyn Stream<Item = Result<Bytes, axum::Error>> + Send>>;

/// Wraps a response body: counts bytes, flips bytes, throttles, stalls or cuts it.
struct Shaper {
    inner: Option<DataStream>,
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
            None => match this.inner.as_mut().map(|s| s.as_mut().poll_next(cx)) {
                Some(Poll::Ready(Some(Ok(c)))) => c,
                Some(Poll::Ready(Some(Err(e)))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(e))));
                }
                Some(Poll::Ready(None)) | None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(Poll::Pending) => return Poll::Pending,
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
        this.entry
            .body_bytes
            .fetch_add(take as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(out)))
    }
}
