//! Hashing model files: sha256 and the git blob sha1 (`sha1("blob {size}\0" + content)`) in one read pass, with
//! large buffered reads, in parallel across files on a bounded pool of threads sized to the cores.
//!
//! The `sha2` and `sha1` crates pick the SHA-NI code path at run time when the CPU has it
//! ([`sha_ni_available`] says whether it does). [`StreamHasher`] is the streaming form the downloader reuses to hash
//! bytes while they arrive.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::engine::error::{EmaError, Result};

/// Read buffer size for hashing: large enough that the syscall cost is noise next to the hash.
pub const READ_BUF_BYTES: usize = 2 << 20;

/// Which digests to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKinds {
    pub sha256: bool,
    pub git_sha1: bool,
}

impl HashKinds {
    pub const BOTH: HashKinds = HashKinds {
        sha256: true,
        git_sha1: true,
    };
    pub const SHA256: HashKinds = HashKinds {
        sha256: true,
        git_sha1: false,
    };
    pub const GIT_SHA1: HashKinds = HashKinds {
        sha256: false,
        git_sha1: true,
    };
}

/// The digests of one byte stream, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Digests {
    pub size: u64,
    pub sha256: Option<String>,
    /// `None` when not asked for, or when the stream's length differed from the size declared up front (the git
    /// prefix would be wrong, so no git sha1 is reported rather than a wrong one).
    pub git_sha1: Option<String>,
}

/// Streaming hasher: feed bytes with [`StreamHasher::update`], then [`StreamHasher::finish`].
///
/// The git blob sha1 commits to the size before the content, so it needs the size up front
/// ([`StreamHasher::new`]); a stream that turns out to have another length gets no git sha1.
#[derive(Clone)]
pub struct StreamHasher {
    sha256: Option<Sha256>,
    sha1: Option<Sha1>,
    declared_size: u64,
    len: u64,
}

impl std::fmt::Debug for StreamHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHasher")
            .field("sha256", &self.sha256.is_some())
            .field("git_sha1", &self.sha1.is_some())
            .field("declared_size", &self.declared_size)
            .field("len", &self.len)
            .finish()
    }
}

impl StreamHasher {
    /// A hasher computing `kinds` over a stream of `size` bytes.
    pub fn new(kinds: HashKinds, size: u64) -> Self {
        let sha1 = kinds.git_sha1.then(|| {
            let mut h = Sha1::new();
            h.update(format!("blob {size}\0").as_bytes());
            h
        });
        StreamHasher {
            sha256: kinds.sha256.then(Sha256::new),
            sha1,
            declared_size: size,
            len: 0,
        }
    }

    /// sha256 only (no size needed).
    pub fn sha256_only() -> Self {
        Self::new(HashKinds::SHA256, 0)
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        self.len += data.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digests {
        let git_sha1 = match self.sha1 {
            Some(h) if self.len == self.declared_size => Some(hex::encode(h.finalize())),
            _ => None,
        };
        Digests {
            size: self.len,
            sha256: self.sha256.map(|h| hex::encode(h.finalize())),
            git_sha1,
        }
    }
}

/// The git blob sha1 of an in-memory byte string.
pub fn git_blob_sha1(data: &[u8]) -> String {
    let mut h = StreamHasher::new(HashKinds::GIT_SHA1, data.len() as u64);
    h.update(data);
    h.finish().git_sha1.unwrap_or_default()
}

/// The sha256 of an in-memory byte string.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// True when the CPU has the SHA extensions the hash crates use automatically.
pub fn sha_ni_available() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        std::is_x86_feature_detected!("sha")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
    {
        false
    }
}

/// The digests of one file plus how long reading (not hashing) took, for throughput estimates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub digests: Digests,
    /// Nanoseconds spent inside `read` calls.
    pub read_nanos: u64,
    /// Nanoseconds for the whole pass (read + hash).
    pub total_nanos: u64,
}

/// Hash one file in a single read pass with a caller-provided buffer.
pub fn hash_file_with(path: &Path, kinds: HashKinds, buf: &mut [u8]) -> Result<FileDigest> {
    hash_file_progress(path, kinds, buf, &|_| {})
}

/// [`hash_file_with`], calling `on_bytes(n)` after each read of `n` bytes (for progress displays).
pub fn hash_file_progress(
    path: &Path,
    kinds: HashKinds,
    buf: &mut [u8],
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<FileDigest> {
    let start = Instant::now();
    let mut f = std::fs::File::open(path).map_err(|e| EmaError::io("cannot open", path, e))?;
    let size = f
        .metadata()
        .map_err(|e| EmaError::io("cannot stat", path, e))?
        .len();
    advise_sequential(&f);
    let mut h = StreamHasher::new(kinds, size);
    let mut read_nanos = 0u64;
    loop {
        let t = Instant::now();
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(EmaError::io("cannot read", path, e)),
        };
        read_nanos += t.elapsed().as_nanos() as u64;
        h.update(&buf[..n]);
        on_bytes(n as u64);
    }
    Ok(FileDigest {
        digests: h.finish(),
        read_nanos,
        total_nanos: start.elapsed().as_nanos() as u64,
    })
}

/// Hash one file in a single read pass.
pub fn hash_file(path: &Path, kinds: HashKinds) -> Result<FileDigest> {
    let mut buf = vec![0u8; READ_BUF_BYTES];
    hash_file_with(path, kinds, &mut buf)
}

#[cfg(target_os = "linux")]
fn advise_sequential(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open for the call's duration.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_sequential(_f: &std::fs::File) {}

/// One file to hash.
#[derive(Debug, Clone)]
pub struct HashJob {
    pub path: PathBuf,
    pub kinds: HashKinds,
    /// Used to schedule the largest files first (so the pool finishes together).
    pub size_hint: u64,
}

/// Worker threads for hashing: the cores this process may use (respects CPU affinity, e.g. `taskset`),
/// overridable with `EMA_HASH_THREADS`.
pub fn default_threads() -> usize {
    if let Some(n) = std::env::var("EMA_HASH_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Hash many files in parallel on at most `threads` threads (never more than there are files). Results come back
/// in the order of `jobs`. `on_done(index, &result)` is called from the worker threads as each file finishes.
pub fn hash_files_parallel<F>(
    jobs: &[HashJob],
    threads: usize,
    on_done: F,
) -> Vec<Result<FileDigest>>
where
    F: Fn(usize, &Result<FileDigest>) + Sync,
{
    hash_files_parallel_progress(jobs, threads, on_done, &|_| {})
}

/// [`hash_files_parallel`], also calling `on_bytes(n)` from the workers as bytes are hashed.
pub fn hash_files_parallel_progress<F>(
    jobs: &[HashJob],
    threads: usize,
    on_done: F,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Vec<Result<FileDigest>>
where
    F: Fn(usize, &Result<FileDigest>) + Sync,
{
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|a, b| jobs[*b].size_hint.cmp(&jobs[*a].size_hint));
    let results: Vec<Mutex<Option<Result<FileDigest>>>> =
        (0..jobs.len()).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = threads.max(1).min(jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; READ_BUF_BYTES];
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let job = &jobs[i];
                    let r = hash_file_progress(&job.path, job.kinds, &mut buf, on_bytes);
                    on_done(i, &r);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Err(EmaError::Other("hash worker did not run".into())))
        })
        .collect()
}

/// True for a 64-hex lowercase sha256.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True for a 40-hex lowercase sha1 (git blob ids and commits).
pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // The empty blob.
        assert_eq!(
            git_blob_sha1(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn streaming_matches_one_shot_and_wrong_length_gives_no_sha1() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut h = StreamHasher::new(HashKinds::BOTH, data.len() as u64);
        for chunk in data.chunks(4097) {
            h.update(chunk);
        }
        let d = h.finish();
        assert_eq!(d.sha256.unwrap(), sha256_hex(&data));
        assert_eq!(d.git_sha1.unwrap(), git_blob_sha1(&data));
        let mut h = StreamHasher::new(HashKinds::BOTH, 10);
        h.update(b"short");
        assert_eq!(h.finish().git_sha1, None);
    }

    #[test]
    fn parallel_hashing_matches_and_keeps_order() {
        let d = tempfile::tempdir().unwrap();
        let mut jobs = Vec::new();
        let mut want = Vec::new();
        for i in 0..7usize {
            let data: Vec<u8> = (0..(i * 700_001)).map(|j| (j % 256) as u8).collect();
            let p = d.path().join(format!("f{i}"));
            std::fs::write(&p, &data).unwrap();
            want.push((sha256_hex(&data), git_blob_sha1(&data)));
            jobs.push(HashJob {
                path: p,
                kinds: HashKinds::BOTH,
                size_hint: data.len() as u64,
            });
        }
        jobs.push(HashJob {
            path: d.path().join("absent"),
            kinds: HashKinds::SHA256,
            size_hint: 0,
        });
        let done = AtomicUsize::new(0);
        let res = hash_files_parallel(&jobs, 3, |_, _| {
            done.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(done.load(Ordering::Relaxed), jobs.len());
        for (i, (s256, s1)) in want.iter().enumerate() {
            let fd = res[i].as_ref().unwrap();
            assert_eq!(fd.digests.sha256.as_deref(), Some(s256.as_str()));
            assert_eq!(fd.digests.git_sha1.as_deref(), Some(s1.as_str()));
        }
        assert!(res[7].is_err());
    }

    #[test]
    fn hex_checks() {
        assert!(is_sha256_hex(&sha256_hex(b"")));
        assert!(!is_sha256_hex("../etc"));
        assert!(is_sha1_hex(&git_blob_sha1(b"")));
        assert!(!is_sha1_hex(&"A".repeat(40)));
    }
}
