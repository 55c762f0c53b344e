//! The fault plan ([`FaultPlan`]): the rules a test sets at run time, the per-connection cap, the fixture repos and
//! "upstream changed" files, and the request log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::fixtures::VirtualRepo;
use super::log::{RequestLog, RequestRecord};
use crate::server::hub::repo::{FileEntry, Repo};
use crate::server::hub::view::Overlay;

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
    pub(crate) log: RequestLog,
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
        self.log.records()
    }

    /// Forget the request log.
    pub fn clear_log(&self) {
        self.log.clear();
    }

    /// Body bytes sent for requests whose path contains `path_contains`.
    pub fn body_bytes_sent(&self, path_contains: &str) -> u64 {
        self.requests()
            .iter()
            .filter(|r| r.path.contains(path_contains))
            .map(|r| r.body_bytes)
            .sum()
    }

    /// Take the first matching status fault, consuming one use.
    pub(crate) fn take_status(&self, path: &str) -> Option<Fault> {
        let mut i = self.lock();
        take_matching(&mut i.rules, path, |f| f.is_status())
            .into_iter()
            .next()
    }

    pub(crate) fn take_ignore_range(&self, path: &str) -> bool {
        let mut i = self.lock();
        !take_matching(&mut i.rules, path, |f| *f == Fault::IgnoreRange).is_empty()
    }

    /// Take every matching body fault (one use each).
    pub(crate) fn take_body_faults(&self, path: &str) -> (Vec<Fault>, Option<u64>) {
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

/// The plan's fixture repos and changed files, handed to the routes as a request extension by the fault layer.
impl Overlay for FaultPlan {
    fn repo(&self, id: &str) -> Option<Arc<Repo>> {
        self.lock().virtual_repos.get(id).cloned()
    }

    fn repos(&self) -> Vec<Arc<Repo>> {
        self.lock().virtual_repos.values().cloned().collect()
    }

    fn changed_files(&self, repo_id: &str) -> Vec<(String, Arc<FileEntry>)> {
        self.lock()
            .changed
            .iter()
            .filter(|((r, _), _)| r == repo_id)
            .map(|((_, p), f)| (p.clone(), f.clone()))
            .collect()
    }

    fn changed_file(&self, repo_id: &str, path: &str) -> Option<Arc<FileEntry>> {
        self.lock()
            .changed
            .get(&(repo_id.to_string(), path.to_string()))
            .cloned()
    }

    fn file_by_sha256(&self, sha: &str) -> Option<Arc<FileEntry>> {
        let i = self.lock();
        i.changed
            .values()
            .chain(i.virtual_repos.values().flat_map(|r| r.files.values()))
            .find(|f| f.sha256.as_deref() == Some(sha) || f.listed_sha256.as_deref() == Some(sha))
            .cloned()
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
