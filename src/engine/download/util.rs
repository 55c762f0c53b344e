//! Small pieces of the download manager: hashing, the shared bandwidth bucket, backoff, pause/cancel control,
//! whether a process is alive, and aborting a helper task when its owner goes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::integrity::hash::{HashKinds, StreamHasher};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What a download has been asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    #[default]
    Run,
    Pause,
    Cancel,
}

/// The hash a hub file's bytes must match: sha256 for LFS files, the git blob sha1 for the others. A thin view of
/// the integrity module's [`StreamHasher`], so downloads and verification hash the same way.
#[derive(Clone)]
pub struct FileHasher {
    inner: StreamHasher,
    lfs: bool,
}

impl FileHasher {
    pub fn new(lfs: bool, size: u64) -> Self {
        let kinds = if lfs {
            HashKinds::SHA256
        } else {
            HashKinds::GIT_SHA1
        };
        FileHasher {
            inner: StreamHasher::new(kinds, size),
            lfs,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The digest in lowercase hex. A stream whose length differs from the size given to [`FileHasher::new`] has no
    /// valid git sha1; it gets a description instead, which never equals an expected hash.
    pub fn finish_hex(self) -> String {
        let d = self.inner.finish();
        let got = if self.lfs { d.sha256 } else { d.git_sha1 };
        got.unwrap_or_else(|| format!("(no digest: {} bytes, not the listed size)", d.size))
    }
}

/// Hash a whole file on disk (used to adopt a file already in place).
pub fn hash_file(path: &std::path::Path, lfs: bool, size: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = FileHasher::new(lfs, size);
    let mut buf = vec![0u8; crate::engine::integrity::hash::READ_BUF_BYTES];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish_hex())
}

/// A token bucket shared by every transfer: `rate` bytes per second, bursts up to a quarter second's worth.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// `None` when `mbps` is 0 (no limit).
    pub fn from_mbps(mbps: f64) -> Option<Self> {
        (mbps > 0.0).then(|| {
            let rate = mbps * 1_000_000.0 / 8.0;
            TokenBucket {
                rate,
                state: Mutex::new((0.0, Instant::now())),
            }
        })
    }

    /// Take `n` bytes' worth, sleeping as long as the rate requires.
    pub async fn take(&self, n: usize) {
        let wait = {
            let mut st = self.state.lock().expect("bucket lock");
            let now = Instant::now();
            let burst = self.rate / 4.0;
            let refill = now.duration_since(st.1).as_secs_f64() * self.rate;
            st.0 = (st.0 + refill).min(burst);
            st.1 = now;
            st.0 -= n as f64;
            if st.0 < 0.0 {
                Duration::from_secs_f64(-st.0 / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Backoff before retry `attempt` (1-based): `base * 2^(attempt-1)` with ±50 % jitter, capped at 10 minutes; a
/// server's `Retry-After` (capped by `max_retry_after`) wins when given.
pub fn backoff(
    attempt: u32,
    base: f64,
    retry_after: Option<f64>,
    max_retry_after: f64,
) -> Duration {
    if let Some(ra) = retry_after {
        return Duration::from_secs_f64(ra.clamp(0.0, max_retry_after.max(0.0)));
    }
    let exp = base.max(0.0) * 2f64.powi(attempt.saturating_sub(1).min(20) as i32);
    let jitter = 0.5 + rand::random::<f64>();
    Duration::from_secs_f64((exp * jitter).min(600.0))
}

/// Sleep `d`, waking early when the control leaves `Run`. Returns the control seen.
pub async fn sleep_or_control(d: Duration, rx: &mut watch::Receiver<Control>) -> Control {
    let sleep = tokio::time::sleep(d);
    tokio::pin!(sleep);
    loop {
        if *rx.borrow() != Control::Run {
            return *rx.borrow();
        }
        tokio::select! {
            _ = &mut sleep => return *rx.borrow(),
            r = rx.changed() => if r.is_err() { return Control::Run },
        }
    }
}

/// Wait while paused. Returns `Run` or `Cancel`.
pub async fn wait_while_paused(rx: &mut watch::Receiver<Control>) -> Control {
    loop {
        let c = *rx.borrow();
        if c != Control::Pause {
            return c;
        }
        if rx.changed().await.is_err() {
            return Control::Run;
        }
    }
}

/// Is a process with this pid alive (signal 0)?
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process's existence.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Aborts a helper task (a watcher, a ticker) when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_sha1_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let mut h = FileHasher::new(false, 6);
        h.update(b"hello\n");
        assert_eq!(h.finish_hex(), "ce013625030ba8dba906f756967f9e9ca394464a");
        let mut h = FileHasher::new(true, 0);
        h.update(b"");
        assert_eq!(
            h.finish_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn backoff_grows_and_obeys_retry_after() {
        let d1 = backoff(1, 1.0, None, 10.0).as_secs_f64();
        assert!((0.5..=1.5).contains(&d1), "{d1}");
        let d3 = backoff(3, 1.0, None, 10.0).as_secs_f64();
        assert!((2.0..=6.0).contains(&d3), "{d3}");
        assert_eq!(backoff(1, 1.0, Some(3.0), 10.0), Duration::from_secs(3));
        assert_eq!(backoff(1, 1.0, Some(300.0), 10.0), Duration::from_secs(10));
    }
}
