//! File-tree primitives for backups and rollbacks: walk a tree without following links, clone a file by reflink
//! (FICLONE) or copy it while hashing, and put back a mode and an mtime.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::engine::error::{EmaError, Result};
use crate::engine::integrity::hash::{HashKinds, READ_BUF_BYTES, StreamHasher, hash_file};

use super::manifest::{Entry, EntryKind};

/// One path found by [`scan`].
#[derive(Debug, Clone)]
pub struct Found {
    /// Relative path with `/` separators, starting with the name given to [`scan`].
    pub rel: String,
    pub abs: PathBuf,
    pub kind: EntryKind,
    pub mode: u32,
    pub mtime_ns: Option<i64>,
    pub size: u64,
    pub target: Option<String>,
    pub dev: u64,
}

/// Walk `top` (a file, directory or symlink) depth-first in name order, naming it `name`. Symlinks are recorded,
/// never followed. Names must be UTF-8 (the manifest is JSON): anything else is refused with its path.
pub fn scan(top: &Path, name: &str) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let md = std::fs::symlink_metadata(top).map_err(|e| EmaError::io("cannot read", top, e))?;
    push(&mut out, top, name.to_string(), &md)?;
    if md.is_dir() {
        walk_dir(top, name, &mut out)?;
    }
    Ok(out)
}

fn walk_dir(dir: &Path, rel: &str, out: &mut Vec<Found>) -> Result<()> {
    let mut names = Vec::new();
    for ent in std::fs::read_dir(dir).map_err(|e| EmaError::io("cannot list", dir, e))? {
        let ent = ent.map_err(|e| EmaError::io("cannot list", dir, e))?;
        names.push(ent.file_name());
    }
    names.sort();
    for n in names {
        let abs = dir.join(&n);
        let Some(s) = n.to_str() else {
            return Err(EmaError::Config(format!(
                "{} has a name that is not valid UTF-8; rename it before backing up (the manifest records names as text)",
                abs.display()
            )));
        };
        let child_rel = format!("{rel}/{s}");
        let md =
            std::fs::symlink_metadata(&abs).map_err(|e| EmaError::io("cannot read", &abs, e))?;
        push(out, &abs, child_rel.clone(), &md)?;
        if md.is_dir() {
            walk_dir(&abs, &child_rel, out)?;
        }
    }
    Ok(())
}

fn push(out: &mut Vec<Found>, abs: &Path, rel: String, md: &std::fs::Metadata) -> Result<()> {
    let ft = md.file_type();
    let (kind, target, size) = if ft.is_symlink() {
        let t =
            std::fs::read_link(abs).map_err(|e| EmaError::io("cannot read the link", abs, e))?;
        let t = t.to_str().map(str::to_string).ok_or_else(|| {
            EmaError::Config(format!(
                "{} points to a path that is not valid UTF-8; fix the link before backing up",
                abs.display()
            ))
        })?;
        (EntryKind::Symlink, Some(t), 0)
    } else if ft.is_dir() {
        (EntryKind::Directory, None, 0)
    } else if ft.is_file() {
        (EntryKind::File, None, md.len())
    } else {
        return Err(EmaError::Config(format!(
            "{} is neither a file, a directory nor a symlink (a socket, fifo or device): move it out of the tree \
             before backing up",
            abs.display()
        )));
    };
    out.push(Found {
        rel,
        abs: abs.to_path_buf(),
        kind,
        mode: md.mode() & 0o7777,
        mtime_ns: (kind != EntryKind::Symlink).then(|| mtime_ns_of(md)),
        size,
        target,
        dev: md.dev(),
    });
    Ok(())
}

impl Found {
    /// Its manifest entry, with the file's sha256 and (in a pre-rollback backup) where its bytes are kept.
    pub fn entry(&self, sha256: Option<String>, same_as: Option<PathBuf>) -> Entry {
        Entry {
            path: self.rel.clone(),
            kind: self.kind,
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            size: self.size,
            sha256,
            target: self.target.clone(),
            same_as,
        }
    }
}

/// Nanoseconds since the epoch, negative for times before it.
pub fn mtime_ns_of(md: &std::fs::Metadata) -> i64 {
    md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec()
}

/// How a file's bytes reached its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    Reflink,
    Copy,
}

/// Files at least this large are hashed and written on two threads at once.
const PARALLEL_COPY_BYTES: u64 = 8 << 20;
/// Buffers in flight between the reading-and-hashing thread and the writing thread.
const BUFFERS_IN_FLIGHT: usize = 4;

/// Create `dst` (which must not exist) with the bytes of `src` and return the sha256 of what was written:
/// a reflink when `try_reflink` and the filesystem allows it (then the source is hashed), otherwise a copy with the
/// hash computed in the same pass. `dst` is fsynced. On error `dst` is removed.
pub fn clone_hashed(src: &Path, dst: &Path, try_reflink: bool) -> Result<(String, CopyMethod)> {
    let input = File::open(src).map_err(|e| EmaError::io("cannot open", src, e))?;
    let size = input
        .metadata()
        .map_err(|e| EmaError::io("cannot stat", src, e))?
        .len();
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| EmaError::io("cannot create", dst, e))?;
    // From here on `dst` is ours: remove it on any failure.
    let r = fill(&input, &mut output, size, src, dst, try_reflink);
    if r.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    r
}

fn fill(
    input: &File,
    output: &mut File,
    size: u64,
    src: &Path,
    dst: &Path,
    try_reflink: bool,
) -> Result<(String, CopyMethod)> {
    let method = if try_reflink && ficlone(input, output) {
        CopyMethod::Reflink
    } else {
        CopyMethod::Copy
    };
    let sha = match method {
        CopyMethod::Reflink => hash_file(src, HashKinds::SHA256)?
            .digests
            .sha256
            .unwrap_or_default(),
        CopyMethod::Copy => copy_pipelined(input, output, size, src, dst)?,
    };
    output
        .sync_all()
        .map_err(|e| EmaError::io("cannot fsync", dst, e))?;
    Ok((sha, method))
}

/// Read `input`, hash every chunk and write that same chunk to `output`: the digest is of exactly the bytes written.
/// Large files overlap the hash with the write (a writer thread takes filled buffers through a bounded channel).
fn copy_pipelined(
    input: &File,
    output: &mut File,
    size: u64,
    src: &Path,
    dst: &Path,
) -> Result<String> {
    let mut h = StreamHasher::new(HashKinds::SHA256, size);
    let mut i = input;
    let chunk = (size as usize).clamp(1, READ_BUF_BYTES);
    let read_into = |i: &mut &File, buf: &mut Vec<u8>| -> Result<usize> {
        buf.resize(chunk, 0);
        loop {
            match i.read(buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(EmaError::io("cannot read", src, e)),
            }
        }
    };
    if size < PARALLEL_COPY_BYTES {
        let mut buf = Vec::with_capacity(chunk);
        while read_into(&mut i, &mut buf)? > 0 {
            h.update(&buf);
            output
                .write_all(&buf)
                .map_err(|e| EmaError::io("cannot write", dst, e))?;
        }
        return Ok(h.finish().sha256.unwrap_or_default());
    }
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BUFFERS_IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BUFFERS_IN_FLIGHT + 1);
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<()> {
            for buf in full_rx {
                output
                    .write_all(&buf)
                    .map_err(|e| EmaError::io("cannot write", dst, e))?;
                let _ = empty_tx.try_send(buf);
            }
            Ok(())
        });
        let mut read_err = None;
        loop {
            let mut buf = empty_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(chunk));
            match read_into(&mut i, &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    h.update(&buf);
                    if full_tx.send(buf).is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    read_err = Some(e);
                    break;
                }
            }
        }
        drop(full_tx);
        let written = writer.join().expect("writer thread");
        if let Some(e) = read_err {
            return Err(e);
        }
        written
    })?;
    Ok(h.finish().sha256.unwrap_or_default())
}

/// `ioctl(FICLONE)`: share `src`'s blocks with the empty `dst` (XFS, btrfs). False when the filesystem cannot.
fn ficlone(src: &File, dst: &File) -> bool {
    use std::os::fd::AsRawFd;
    // _IOW(0x94, 9, int)
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: both descriptors are open for the duration of the call; FICLONE reads only its integer argument.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) };
    rc == 0
}

/// Put back permission bits and (for files and directories) the modification time.
pub fn apply_meta(path: &Path, kind: EntryKind, mode: u32, mtime_ns: Option<i64>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if kind == EntryKind::Symlink {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| EmaError::io("cannot set the mode of", path, e))?;
    if let Some(ns) = mtime_ns {
        set_mtime(path, ns)?;
    }
    Ok(())
}

/// Set a path's mtime (and atime, to the same value) in nanoseconds, without following a final symlink.
pub fn set_mtime(path: &Path, ns: i64) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| EmaError::Other(format!("{} contains a NUL byte", path.display())))?;
    let ts = libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    };
    let times = [ts, ts];
    // SAFETY: `c` is a valid NUL-terminated path and `times` two valid timespecs, both alive for the call.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(EmaError::io(
            "cannot set the modification time of",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Create a symlink `at` pointing to `target` exactly as recorded.
pub fn make_symlink(target: &str, at: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, at)
        .map_err(|e| EmaError::io("cannot create the link", at, e))
}

/// Filesystem facts of the filesystem holding `path`: free bytes for unprivileged users and whether it can
/// reflink (XFS, btrfs).
pub struct FsFacts {
    pub free_bytes: u64,
    pub reflink_capable: bool,
    pub dev: u64,
}

pub fn fs_facts(path: &Path) -> Result<FsFacts> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| EmaError::Other(format!("{} contains a NUL byte", path.display())))?;
    // SAFETY: statfs fills the zeroed struct; `c` is a valid NUL-terminated path for the call's duration.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(EmaError::io(
            "cannot read the filesystem of",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    const XFS_MAGIC: i64 = 0x5846_5342;
    const BTRFS_MAGIC: i64 = 0x9123_683E;
    let magic = st.f_type as i64;
    let dev = std::fs::metadata(path)
        .map_err(|e| EmaError::io("cannot stat", path, e))?
        .dev();
    Ok(FsFacts {
        free_bytes: (st.f_bavail as u64).saturating_mul(st.f_bsize as u64),
        reflink_capable: magic == XFS_MAGIC || magic == BTRFS_MAGIC,
        dev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_records_links_without_following_them() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("m");
        std::fs::create_dir_all(top.join("sub")).unwrap();
        std::fs::write(top.join("sub/a"), b"abc").unwrap();
        std::os::unix::fs::symlink("../../outside", top.join("sub/link")).unwrap();
        std::os::unix::fs::symlink("/etc", top.join("abs")).unwrap();
        let f = scan(&top, "models").unwrap();
        let rels: Vec<_> = f.iter().map(|x| (x.rel.as_str(), x.kind)).collect();
        assert_eq!(
            rels,
            vec![
                ("models", EntryKind::Directory),
                ("models/abs", EntryKind::Symlink),
                ("models/sub", EntryKind::Directory),
                ("models/sub/a", EntryKind::File),
                ("models/sub/link", EntryKind::Symlink),
            ]
        );
        assert_eq!(f[4].target.as_deref(), Some("../../outside"));
        assert_eq!(f[3].size, 3);
    }

    #[test]
    fn copy_hashes_what_it_wrote_small_and_large() {
        let d = tempfile::tempdir().unwrap();
        for size in [0usize, 5, (9 << 20) + 7] {
            let src = d.path().join(format!("s{size}"));
            let dst = d.path().join(format!("d{size}"));
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(&src, &data).unwrap();
            let (sha, _) = clone_hashed(&src, &dst, true).unwrap();
            assert_eq!(sha, crate::engine::integrity::hash::sha256_hex(&data));
            assert_eq!(std::fs::read(&dst).unwrap(), data);
        }
        // An existing destination is never overwritten.
        let src = d.path().join("s5");
        let e = clone_hashed(&src, &src, false).unwrap_err();
        assert!(e.to_string().contains("cannot create"), "{e}");
        assert_eq!(std::fs::read(&src).unwrap().len(), 5);
    }

    #[test]
    fn mtimes_round_trip_in_nanoseconds() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        set_mtime(&p, 1_700_000_000_123_456_789).unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(mtime_ns_of(&md), 1_700_000_000_123_456_789);
    }
}
