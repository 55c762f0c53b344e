//! The request log of the fault layer: what the server saw of each request, without any token.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::header;
use sha2::{Digest, Sha256};

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
pub(crate) struct LogEntry {
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
    /// What `req` shows before it is answered.
    pub(crate) fn of(req: &Request) -> LogEntry {
        let hs = req.headers();
        let auth = hs.get(header::AUTHORIZATION);
        LogEntry {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
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
        }
    }

    pub(crate) fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    pub(crate) fn add_body_bytes(&self, n: u64) {
        self.body_bytes.fetch_add(n, Ordering::Relaxed);
    }

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

/// The most recent requests, oldest first.
#[derive(Debug, Default)]
pub(crate) struct RequestLog(Mutex<Vec<Arc<LogEntry>>>);

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<LogEntry>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Log `entry`, forgetting the oldest tenth when the log is full.
    pub(crate) fn push(&self, entry: Arc<LogEntry>) {
        let mut log = self.lock();
        if log.len() >= MAX_LOG {
            log.drain(..MAX_LOG / 10);
        }
        log.push(entry);
    }

    pub(crate) fn records(&self) -> Vec<RequestRecord> {
        self.lock().iter().map(|e| e.snapshot()).collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
