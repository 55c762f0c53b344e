//! How an attempt at a file ends, and what that becomes: the reasons an attempt stops short, the outcome of a
//! file, and the errors that name a full disk or a file that keeps failing.

use std::path::Path;

use super::disk::is_enospc;
use crate::engine::error::EmaError;
use crate::engine::hub::HttpFailure;

/// Why an attempt ended without the file.
pub(super) enum AttemptEnd {
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

/// The result of downloading one file (`file::download_file`).
pub enum FileOutcome {
    /// Verified and placed; bytes fetched over the network in this run.
    Done { fetched: u64 },
    /// Stopped by pause-then-cancel or cancel.
    Cancelled,
    /// The server now publishes another hash for this path than the listing did: list again.
    UpstreamChanged,
}

impl AttemptEnd {
    /// How serious an end is: of several connections' ends, the most serious decides.
    fn rank(&self) -> u8 {
        match self {
            AttemptEnd::Fatal(_) => 5,
            AttemptEnd::UpstreamChanged => 4,
            AttemptEnd::Interrupted => 3,
            AttemptEnd::Restart(_) => 2,
            AttemptEnd::Transient { .. } => 1,
        }
    }

    /// The most serious of `ends`, if any.
    pub(super) fn worst(ends: Vec<AttemptEnd>) -> Option<AttemptEnd> {
        ends.into_iter().max_by_key(AttemptEnd::rank)
    }
}

pub(super) fn final_error(
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

pub(super) fn io_end(action: &'static str, path: &Path, e: std::io::Error) -> AttemptEnd {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
