//! Per-model verification.
//!
//! - **Full** ([`verify_models`]): every byte of every file hashed against the metadata's expected sha256 (or git
//!   blob sha1), plus structure checks: safetensors headers, JSON files parse, every shard a
//!   `*.safetensors.index.json` weight map names exists. Files on disk but not in the metadata are strays.
//!   The metadata's `verified_at` / `mtime` / `last_verified_at` / `verification` are updated atomically afterwards.
//! - **Quick** ([`quick_check`]): existence, size and mtime against the metadata; no hashing; parallel stats.
//!
//! Health states: `missing` (metadata but no folder), `corrupted` (wrong size, wrong hash, bad structure),
//! `incomplete` (a file or an index's shard is missing), `unknown` (no metadata, no expected hash, or changed
//! since the last full verification), `degraded` (stray files), `healthy`.
//!
//! - `verdict.rs`: check modes, file problems, [`ModelHealth`] and the one-line reason.
//! - `files.rs`: walking a model folder, expected hashes, structure checks.
//! - `plan.rs`: what a check starts from and the issues found without hashing.
//! - `full.rs`: [`verify_models`] and recording its outcome in the metadata.
//! - `quick.rs`: [`quick_check`].

mod files;
mod full;
mod plan;
mod quick;
mod verdict;

pub use files::{DiskFile, HF_LOCAL_DIR_CACHE, expected_hash, structure_issues, walk_model_dir};
pub use full::{ProgressFn, VerifyOptions, verify_models};
pub use quick::quick_check;
pub use verdict::{CheckMode, FileIssue, FileProblem, ModelHealth, count_states, state_rank};

#[cfg(test)]
mod tests;
