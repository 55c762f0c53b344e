//! Where received bytes go: aligned blocks written to the partial file (with `O_DIRECT` where the filesystem allows
//! it, so a multi-gigabyte model neither doubles its cost through the page cache nor evicts everything else), and
//! kept in memory for the in-order hasher so nothing is read back from disk while the transfer runs.
//!
//! The disk is the truth for resume: a part's progress counts a block only after its write returned. The hasher
//! takes blocks from memory as they arrive (the verdict waits for every write), falls back to reading the file for
//! anything not (or no longer) in memory, and memory for blocks waiting on an earlier, slower part is capped.
//!
//! A connection gathers its part's bytes into blocks with a [`BlockWriter`]: one block fills while earlier ones are
//! written, and a part's progress advances as their writes return.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::outcome::{AttemptEnd, io_end};
use super::partial::Parts;
use crate::engine::error::EmaError;

/// Alignment of direct writes (offset, length and buffer address).
pub(super) const ALIGN: usize = 4096;
/// Bytes gathered before one write.
pub(super) const BLOCK: usize = 2 << 20;
/// Received bytes the hasher may lag behind while it is busy (see [`HotBlocks::room`]).
const AHEAD: usize = 16 << 20;
/// Memory for received blocks the hasher has not reached yet; beyond it the hasher reads them back from disk.
const HOT_CAP: usize = 64 << 20;
/// Block writes under way per connection: direct writes of one block at a time leave the disk idle between them.
const WRITES_IN_FLIGHT: usize = 8;
/// A block filling for longer than this is written as it is (slow links: little to lose in a crash).
const BLOCK_MAX_AGE: Duration = Duration::from_millis(250);

/// A buffer whose usable region starts at a 4 KiB-aligned address, holding the bytes of `[start, start + len)`.
pub(super) struct Block {
    buf: Vec<u8>,
    at: usize,
    cap: usize,
    len: usize,
    pub(super) start: u64,
}

impl Block {
    /// An empty block for bytes from `start`, holding at most `cap` (≤ [`BLOCK`]) bytes.
    pub(super) fn new(start: u64, cap: usize) -> Block {
        let cap = cap.clamp(1, BLOCK);
        let buf = if cap == BLOCK {
            take_pooled().unwrap_or_else(|| vec![0u8; BLOCK + ALIGN])
        } else {
            vec![0u8; cap + ALIGN]
        };
        let at = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Block {
            buf,
            at,
            cap,
            len: 0,
            start,
        }
    }

    /// Copy as much of `data` as fits; returns how many bytes were taken.
    pub(super) fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.cap - self.len);
        let from = self.at + self.len;
        self.buf[from..from + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    /// The unfilled room (to read into); [`Block::advance`] then counts what was put there.
    pub(super) fn spare(&mut self) -> &mut [u8] {
        let from = self.at + self.len;
        &mut self.buf[from..self.at + self.cap]
    }

    pub(super) fn advance(&mut self, n: usize) {
        assert!(self.len + n <= self.cap, "advanced past the block's room");
        self.len += n;
    }

    pub(super) fn is_full(&self) -> bool {
        self.len == self.cap
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.len]
    }

    pub(super) fn end(&self) -> u64 {
        self.start + self.len as u64
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.buf));
    }
}

/// Full-size buffers kept for reuse, so the transfer neither faults in fresh pages nor zeroes memory per block.
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const POOL_MAX: usize = 16;

fn take_pooled() -> Option<Vec<u8>> {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).pop()
}

/// Keep a full-size buffer for reuse (smaller ones are just freed).
fn give_back(buf: Vec<u8>) {
    let mut p = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if p.len() < POOL_MAX && buf.len() == BLOCK + ALIGN {
        p.push(buf);
    }
}

/// How much a block starting at `pos` may hold so that every later block of the part starts 4 KiB-aligned.
pub(super) fn block_cap(pos: u64, end: u64) -> usize {
    let to_align = (ALIGN as u64 - pos % ALIGN as u64) as usize;
    let first = if to_align == ALIGN { BLOCK } else { to_align };
    (end - pos).min(first as u64) as usize
}

/// The partial file, opened twice: buffered (reads, unaligned writes, fsync) and, where possible, direct.
pub(super) struct PartialFile {
    pub(super) file: std::fs::File,
    direct: Option<std::fs::File>,
    direct_ok: AtomicBool,
}

impl PartialFile {
    /// Open the partial; `direct`: also try an O_DIRECT handle (downloads.direct_io).
    pub(super) fn open(path: &Path, direct: bool) -> std::io::Result<PartialFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let direct = if direct { open_direct(path) } else { None };
        let direct_ok = AtomicBool::new(direct.is_some());
        Ok(PartialFile {
            file,
            direct,
            direct_ok,
        })
    }

    /// Write `data` at `off`: directly when offset, length and address are aligned and the filesystem accepts it,
    /// else through the page cache.
    pub(super) fn write_at(&self, data: &[u8], off: u64) -> std::io::Result<()> {
        if let Some(d) = &self.direct
            && self.direct_ok.load(Ordering::Relaxed)
            && off.is_multiple_of(ALIGN as u64)
            && data.len().is_multiple_of(ALIGN)
            && (data.as_ptr() as usize).is_multiple_of(ALIGN)
        {
            match d.write_all_at(data, off) {
                Ok(()) => return Ok(()),
                // A filesystem that takes O_DIRECT at open but not for this write: stop trying for this file.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct_ok.store(false, Ordering::Relaxed)
                }
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(data, off)
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<std::fs::File> {
    None
}

/// Received blocks the hasher has not reached yet, by start offset. The hasher takes them as they arrive (still in
/// the CPU cache when it keeps up), independently of their writes; the verdict waits for every write anyway.
#[derive(Default)]
pub(super) struct HotBlocks {
    inner: Mutex<(BTreeMap<u64, Arc<Block>>, usize)>,
    arrived: Condvar,
    /// The hashing thread has nothing it can hash (it waits on a gap, or ended).
    starved: AtomicBool,
    /// The hashing thread moved on.
    hashed: tokio::sync::Notify,
    /// Time spent hashing, ns.
    busy: AtomicU64,
}

impl HotBlocks {
    /// Offer a received block; not kept (the hasher reads it from disk once written) when memory is at the cap.
    pub(super) fn offer(&self, b: Arc<Block>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.1 + b.len > HOT_CAP {
            return;
        }
        g.1 += b.len;
        g.0.insert(b.start, b);
        drop(g);
        self.arrived.notify_one();
    }

    /// Wait until a block arrives or `d` passes (the hasher, with nothing to hash).
    pub(super) fn wait(&self, d: std::time::Duration) {
        self.set_starved(true);
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.arrived.wait_timeout(g, d);
    }

    /// The hasher says whether it has work; receivers held back by [`HotBlocks::room`] re-check.
    pub(super) fn set_starved(&self, starved: bool) {
        self.starved.store(starved, Ordering::Release);
        self.hashed.notify_waiters();
    }

    pub(super) fn add_busy(&self, d: std::time::Duration) {
        self.busy.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Total time the hasher spent hashing so far, ns.
    pub(super) fn busy_ns(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    fn pending(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Wait while the hasher is busy and more than [`AHEAD`] received bytes wait for it. A receiver that runs
    /// further ahead only makes the hasher's data go cold in the CPU cache (hashing from memory is then ~40 %
    /// slower); held back, it leaves the CPU to the hasher and lets TCP flow control pace the sender. A hasher
    /// waiting on a gap (an earlier part not yet arrived) holds nobody back.
    pub(super) async fn room(&self) {
        loop {
            let hashed = self.hashed.notified();
            if self.pending() < AHEAD || self.starved.load(Ordering::Acquire) {
                return;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(5), hashed).await;
        }
    }

    /// The block holding byte `off`, if in memory; forgets every block that ends at or before `off`. Also returns
    /// where the next block in memory starts (so a read from disk stops there).
    pub(super) fn at(&self, off: u64) -> (Option<Arc<Block>>, Option<u64>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, bytes) = &mut *g;
        let stale: Vec<u64> = map
            .range(..=off)
            .filter(|(_, b)| b.end() <= off)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(b) = map.remove(&k) {
                *bytes -= b.len;
            }
        }
        let hit = map
            .range(..=off)
            .next_back()
            .filter(|(_, b)| b.end() > off)
            .map(|(_, b)| b.clone());
        let next = map.range(off + 1..).next().map(|(k, _)| *k);
        (hit, next)
    }
}

/// Gathers one part's bytes into blocks and writes them, one write in flight while the next block fills.
pub(super) struct BlockWriter<'a> {
    out: &'a Arc<PartialFile>,
    hot: &'a Arc<HotBlocks>,
    parts: &'a Arc<Parts>,
    i: usize,
    out_path: &'a Path,
    pub(super) block: Block,
    /// When the block being filled got its first byte (or was created).
    block_since: std::time::Instant,
    /// The write in flight and the part its block belongs to.
    inflight:
        std::collections::VecDeque<(usize, tokio::task::JoinHandle<std::io::Result<Arc<Block>>>)>,
}

impl BlockWriter<'_> {
    pub(super) async fn push(
        &mut self,
        mut data: &[u8],
        end: u64,
    ) -> std::result::Result<(), AttemptEnd> {
        while !data.is_empty() {
            let n = self.block.push(data);
            data = &data[n..];
            if self.block.is_full() {
                self.rotate(end).await?;
            }
        }
        Ok(())
    }

    /// Submit the block being filled and start the next one right after it (ending by `end`).
    async fn rotate(&mut self, end: u64) -> std::result::Result<(), AttemptEnd> {
        let at = self.block.end();
        let b = std::mem::replace(&mut self.block, Block::new(at, block_cap(at, end)));
        self.submit(b).await
    }

    /// Write a block that has been filling for longer than [`BLOCK_MAX_AGE`]; land writes that already returned.
    pub(super) async fn keep_fresh(&mut self, end: u64) -> std::result::Result<(), AttemptEnd> {
        if !self.block.is_empty() && self.block_since.elapsed() >= BLOCK_MAX_AGE {
            self.rotate(end).await?;
        }
        while self.inflight.front().is_some_and(|(_, h)| h.is_finished()) {
            self.land().await?;
        }
        Ok(())
    }

    /// `n` bytes were read into the block's spare room.
    pub(super) async fn filled(
        &mut self,
        n: usize,
        end: u64,
    ) -> std::result::Result<(), AttemptEnd> {
        self.block.advance(n);
        if self.block.is_full() {
            self.rotate(end).await?;
        }
        Ok(())
    }

    /// Start writing `b` (after the oldest write if [`WRITES_IN_FLIGHT`] are under way).
    async fn submit(&mut self, b: Block) -> std::result::Result<(), AttemptEnd> {
        self.block_since = std::time::Instant::now();
        let b = Arc::new(b);
        self.hot.room().await;
        self.hot.offer(b.clone());
        // Writes that already returned count as done now (a slow link must not hold back what a resume trusts).
        while self.inflight.len() >= WRITES_IN_FLIGHT
            || self.inflight.front().is_some_and(|(_, h)| h.is_finished())
        {
            self.land().await?;
        }
        let out = self.out.clone();
        let part = self.i;
        self.inflight.push_back((
            part,
            tokio::task::spawn_blocking(move || {
                out.write_at(b.bytes(), b.start)?;
                Ok(b)
            }),
        ));
        Ok(())
    }

    /// The connection goes on with part `i` from `pos` (its start) to `end`. The previous part's blocks are all
    /// submitted: its end is where a block ended.
    pub(super) fn next_part(&mut self, i: usize, pos: u64, end: u64) {
        debug_assert!(self.block.is_empty());
        self.i = i;
        self.block = Block::new(pos, block_cap(pos, end));
        self.block_since = std::time::Instant::now();
    }

    /// Wait for the oldest write in flight; its bytes then count as done (what a resume trusts).
    async fn land(&mut self) -> std::result::Result<(), AttemptEnd> {
        let Some((part, h)) = self.inflight.pop_front() else {
            return Ok(());
        };
        let b = h
            .await
            .map_err(|e| {
                AttemptEnd::Fatal(EmaError::Other(format!("the writing thread failed: {e}")))
            })?
            .map_err(|e| io_end("cannot write", self.out_path, e))?;
        let (start, _) = self.parts.ranges[part];
        self.parts.done[part].store(b.end() - start, Ordering::Release);
        Ok(())
    }

    pub(super) async fn finish(mut self) -> std::result::Result<(), AttemptEnd> {
        if !self.block.is_empty() {
            let at = self.block.end();
            let last = std::mem::replace(&mut self.block, Block::new(at, 1));
            self.submit(last).await?;
        }
        while !self.inflight.is_empty() {
            self.land().await?;
        }
        Ok(())
    }
}

impl<'a> BlockWriter<'a> {
    /// A writer for part `i` of `parts`, receiving bytes from `from` to `end`.
    pub(super) fn new(
        out: &'a Arc<PartialFile>,
        hot: &'a Arc<HotBlocks>,
        parts: &'a Arc<Parts>,
        i: usize,
        out_path: &'a Path,
        from: u64,
        end: u64,
    ) -> Self {
        BlockWriter {
            out,
            hot,
            parts,
            i,
            out_path,
            block: Block::new(from, block_cap(from, end)),
            block_since: std::time::Instant::now(),
            inflight: std::collections::VecDeque::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_first_are_aligned() {
        assert_eq!(block_cap(0, 10 << 20), BLOCK);
        assert_eq!(block_cap(100, 10 << 20), ALIGN - 100);
        assert_eq!(block_cap(4096, 4096 + 10), 10);
        let b = Block::new(0, BLOCK);
        assert_eq!(b.bytes().as_ptr() as usize % ALIGN, 0);
    }

    #[test]
    fn push_fills_up_to_the_cap() {
        let mut b = Block::new(10, 8);
        assert_eq!(b.push(b"abcde"), 5);
        assert_eq!(b.push(b"fghij"), 3);
        assert!(b.is_full());
        assert_eq!(b.bytes(), b"abcdefgh");
        assert_eq!(b.end(), 18);
    }

    #[test]
    fn hot_blocks_find_cover_and_forget() {
        let h = HotBlocks::default();
        let mut a = Block::new(0, 4);
        a.push(b"abcd");
        let mut c = Block::new(8, 4);
        c.push(b"ijkl");
        h.offer(Arc::new(a));
        h.offer(Arc::new(c));
        let (hit, next) = h.at(2);
        assert_eq!(hit.unwrap().start, 0);
        assert_eq!(next, Some(8));
        // Byte 5 is in no block in memory: read it from disk up to 8.
        let (hit, next) = h.at(5);
        assert!(hit.is_none());
        assert_eq!(next, Some(8));
        assert_eq!(
            h.inner.lock().unwrap().1,
            4,
            "the block behind the hasher is forgotten"
        );
        let (hit, _) = h.at(9);
        assert_eq!(hit.unwrap().bytes(), b"ijkl");
    }

    #[test]
    fn writes_land_on_a_memory_filesystem_too() {
        // tmpfs may refuse O_DIRECT (older kernels): the partial then falls back to buffered writes, same bytes.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let p = dir.path().join("x.part");
        std::fs::File::create(&p)
            .unwrap()
            .set_len(2 * ALIGN as u64)
            .unwrap();
        for direct in [true, false] {
            let f = PartialFile::open(&p, direct).unwrap();
            let mut b = Block::new(0, 2 * ALIGN);
            b.push(&vec![if direct { 3u8 } else { 4u8 }; 2 * ALIGN]);
            f.write_at(b.bytes(), 0).unwrap();
            let got = std::fs::read(&p).unwrap();
            assert!(got.iter().all(|&x| x == if direct { 3 } else { 4 }));
        }
    }

    #[test]
    fn direct_and_buffered_writes_land_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.part");
        std::fs::File::create(&p)
            .unwrap()
            .set_len(3 * ALIGN as u64 + 7)
            .unwrap();
        let f = PartialFile::open(&p, true).unwrap();
        let mut b = Block::new(0, 2 * ALIGN);
        b.push(&vec![7u8; 2 * ALIGN]);
        f.write_at(b.bytes(), 0).unwrap();
        let mut t = Block::new(2 * ALIGN as u64, ALIGN + 7);
        t.push(&vec![9u8; ALIGN + 7]);
        f.write_at(t.bytes(), t.start).unwrap();
        let got = std::fs::read(&p).unwrap();
        assert!(got[..2 * ALIGN].iter().all(|&x| x == 7));
        assert!(got[2 * ALIGN..].iter().all(|&x| x == 9));
        assert_eq!(got.len(), 3 * ALIGN + 7);
    }
}
