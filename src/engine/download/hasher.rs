//! The hashing thread of a file attempt: it follows the received blocks in file order (from memory, else read back
//! from the partial), so the hash is done when the last byte lands, and starts the kernel's writeback behind it.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::outcome::{AttemptEnd, io_end};
use super::partial::Parts;
use super::sink::{HotBlocks, PartialFile};
use super::util::FileHasher;
use crate::engine::error::EmaError;

const HASH_CHUNK: usize = 4 << 20;
/// Hashed bytes are handed to the kernel's writeback in chunks of this size.
const WRITEBACK_CHUNK: u64 = 32 << 20;

/// The hashing thread of one attempt. Dropped midway (the caller gave up), it still tells the thread to end.
pub(super) struct HashThread {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<std::io::Result<(FileHasher, u64)>>,
    _stop_on_drop: StopOnDrop,
}

impl HashThread {
    /// Start hashing the partial from `off` (with `h` holding the hash of the bytes before it).
    pub(super) fn start(
        partial_file: &Arc<PartialFile>,
        hot: &Arc<HotBlocks>,
        h: FileHasher,
        off: u64,
        parts: &Arc<Parts>,
        size: u64,
    ) -> HashThread {
        let stop = Arc::new(AtomicBool::new(false));
        // If this attempt is dropped midway (the caller gave up), the hashing thread must still end.
        let stop_on_drop = StopOnDrop(stop.clone());
        let task = {
            let parts = parts.clone();
            let stop = stop.clone();
            let f = partial_file.clone();
            let hot = hot.clone();
            tokio::task::spawn_blocking(move || {
                run_hasher(&f.file, &hot, h, off, &parts, &stop, size)
            })
        };
        HashThread {
            stop,
            task,
            _stop_on_drop: stop_on_drop,
        }
    }

    /// The writers are done: let the thread hash what is there and return the state reached.
    pub(super) async fn finish(
        self,
        partial: &Path,
    ) -> std::result::Result<(FileHasher, u64), AttemptEnd> {
        self.stop.store(true, Ordering::Release);
        let hashed = self.task.await.map_err(|e| {
            AttemptEnd::Fatal(EmaError::Other(format!("the hashing thread failed: {e}")))
        })?;
        hashed.map_err(|e| io_end("cannot read back", partial, e))
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Hash the file in order from `off`: received blocks from memory, anything else (a resumed prefix, blocks beyond
/// the memory cap) read back from the file once written. Returns the state reached when the writers stopped.
fn run_hasher(
    f: &std::fs::File,
    hot: &HotBlocks,
    mut h: FileHasher,
    mut off: u64,
    parts: &Parts,
    stop: &AtomicBool,
    size: u64,
) -> std::io::Result<(FileHasher, u64)> {
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut flushed = off;
    loop {
        let written = parts.frontier(size);
        let t0 = std::time::Instant::now();
        let (hit, next) = hot.at(off);
        if let Some(b) = &hit {
            h.update(&b.bytes()[(off - b.start) as usize..]);
            off = b.end();
        } else if off < written {
            let upto = next.map_or(written, |n| n.min(written));
            let n = ((upto - off) as usize).min(HASH_CHUNK);
            f.read_exact_at(&mut buf[..n], off)?;
            h.update(&buf[..n]);
            off += n as u64;
        } else if off >= size || stop.load(Ordering::Acquire) {
            // Done, or the writers are done and nothing more will come.
            hot.set_starved(true);
            return Ok((h, off));
        } else {
            hot.wait(Duration::from_millis(2));
            continue;
        }
        hot.add_busy(t0.elapsed());
        hot.set_starved(false);
        // Bytes written through the page cache start going to disk now, so the fsync before placement has little
        // left to do (a no-op for directly written ranges).
        let w = off.min(written);
        if w > flushed && (w - flushed >= WRITEBACK_CHUNK || w == size) {
            start_writeback(f, flushed, w - flushed);
            flushed = w;
        }
    }
}

/// Ask the kernel to start writing back a range (no wait). Linux only; elsewhere the final fsync does it all.
fn start_writeback(f: &std::fs::File, off: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open fd; sync_file_range only initiates writeback of the given range.
        unsafe {
            libc::sync_file_range(
                f.as_raw_fd(),
                off as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, off, len);
}
