//! The self-test's workspace: a temporary folder under `$TMPDIR` (removed when the test ends) holding the sample
//! hub's store (the models the built-in hub serves) and the stores the proofs download into; and the one deliberate
//! damage a proof does, a flipped byte.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::proof::{Progress, Proof};
use crate::engine::demo::generate_sample_hub;
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{EmaError, Result};
use crate::engine::store::{RepoId, Store};

/// A temporary folder for one self-test run; everything in it is removed when this is dropped.
pub struct Workspace {
    dir: tempfile::TempDir,
    /// The sample hub's store: serve it with `ema mirror`'s code (the CLI does).
    pub hub_dir: PathBuf,
    /// The sample repos the hub serves.
    pub samples: Vec<RepoId>,
}

impl Workspace {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A store folder of its own for one proof.
    pub fn store_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The hub's record of a sample model (its files, sizes and hashes).
    pub fn hub_metadata(&self, repo: &RepoId) -> Result<crate::engine::store::ModelMetadata> {
        Store::new(&self.hub_dir)
            .read_metadata(repo)?
            .ok_or_else(|| EmaError::NotFound(format!("the sample hub has no {repo}")))
    }
}

/// Create the workspace and the sample hub's store. Returns the proofs of both (a failure is a failed proof, with
/// the reason and the fix) and the workspace when both worked.
pub fn prepare(progress: Progress) -> (Vec<Proof>, Option<Workspace>) {
    let started = Instant::now();
    let base = std::env::temp_dir();
    let p = Proof::new("temporary_store", "a temporary store on this machine")
        .fig("tmpdir", base.display().to_string());
    progress(&format!(
        "creating a temporary store under {}",
        base.display()
    ));
    let dir = match tempfile::Builder::new()
        .prefix("ema-selftest-")
        .tempdir_in(&base)
    {
        Ok(d) => d,
        Err(e) => {
            return (
                vec![p.failed(
                    started,
                    format!(
                        "cannot create a temporary folder in {} ({e}); point TMPDIR at a writable directory with a \
                         few hundred MB free, e.g. `TMPDIR=/var/tmp ema test-installation`",
                        base.display()
                    ),
                )],
                None,
            );
        }
    };
    if let Err(e) = probe(dir.path()) {
        return (
            vec![p.failed(
                started,
                format!(
                    "the temporary folder {} does not take a write: {e}; point TMPDIR at a writable directory",
                    dir.path().display()
                ),
            )],
            None,
        );
    }
    let p = p.fig("path", dir.path().display().to_string()).passed(
        started,
        format!(
            "{} created; a file written, synced, read back and removed (it is all removed at the end)",
            dir.path().display()
        ),
    );
    let mut proofs = vec![p];

    let started = Instant::now();
    let hub_dir = dir.path().join("hub");
    progress("generating the sample models the built-in hub serves");
    let gen_proof = Proof::new("sample_hub_store", "the sample models for the built-in hub");
    match generate_sample_hub(&hub_dir) {
        Ok(samples) => {
            let hub = Store::new(&hub_dir);
            let (mut files, mut bytes) = (0usize, 0u64);
            for r in &samples {
                if let Ok(Some(m)) = hub.read_metadata(r) {
                    files += m.files.len();
                    bytes += m.total_size;
                }
            }
            proofs.push(
                gen_proof
                    .fig("models", samples.len())
                    .fig("files", files)
                    .fig("bytes", bytes)
                    .passed(
                        started,
                        format!(
                            "{} sample models ({files} files, {}) written with their sha256 / git sha1 records",
                            samples.len(),
                            human_bytes(bytes)
                        ),
                    ),
            );
            (
                proofs,
                Some(Workspace {
                    dir,
                    hub_dir,
                    samples,
                }),
            )
        }
        Err(e) => {
            proofs.push(gen_proof.failed(
                started,
                format!(
                    "cannot write the sample models in {}: {e}",
                    hub_dir.display()
                ),
            ));
            (proofs, None)
        }
    }
}

/// Write, sync, read back and remove a small file in `dir`.
fn probe(dir: &Path) -> std::io::Result<()> {
    let p = dir.join(".probe");
    {
        let mut f = std::fs::File::create(&p)?;
        f.write_all(b"ema self-test")?;
        f.sync_all()?;
    }
    let back = std::fs::read(&p)?;
    std::fs::remove_file(&p)?;
    if back != b"ema self-test" {
        return Err(std::io::Error::other("read back other bytes than written"));
    }
    Ok(())
}

/// Flip the lowest bit of the byte at `offset` of `path` in place (the size stays; the content no longer matches
/// its hash). Returns the byte's old and new value.
pub fn flip_byte(path: &Path, offset: u64) -> Result<(u8, u8)> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| EmaError::io("cannot open", path, e))?;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut b))
        .map_err(|e| EmaError::io("cannot read", path, e))?;
    let old = b[0];
    b[0] ^= 0x01;
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.write_all(&b))
        .and_then(|_| f.sync_all())
        .map_err(|e| EmaError::io("cannot write", path, e))?;
    Ok((old, b[0]))
}
