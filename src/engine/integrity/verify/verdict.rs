//! The verdict of a check: the check mode, the problems a file can have, and the health of a model with its
//! issues and the one-line reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::events::HealthState;
use crate::engine::store::VerificationState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    Quick,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileProblem {
    /// In the metadata, not on disk.
    Missing,
    WrongSize,
    HashMismatch,
    /// A safetensors header or JSON file is malformed.
    BadStructure,
    /// An index file names a shard that does not exist.
    MissingShard,
    /// On disk, not in the metadata.
    Stray,
    Unreadable,
    /// Modified (mtime) since the last full verification.
    Changed,
    /// The metadata records no hash for it: it could only be size-checked.
    NoExpectedHash,
    /// The metadata file itself is damaged.
    BadMetadata,
}

impl FileProblem {
    /// The health state this problem puts its model in.
    pub(super) fn state(self) -> HealthState {
        match self {
            FileProblem::WrongSize
            | FileProblem::HashMismatch
            | FileProblem::BadStructure
            | FileProblem::Unreadable => HealthState::Corrupted,
            FileProblem::Missing | FileProblem::MissingShard => HealthState::Incomplete,
            FileProblem::Changed | FileProblem::NoExpectedHash | FileProblem::BadMetadata => {
                HealthState::Unknown
            }
            FileProblem::Stray => HealthState::Degraded,
        }
    }

    /// Repairing re-downloads these files.
    pub fn needs_download(self) -> bool {
        matches!(
            self,
            FileProblem::Missing
                | FileProblem::WrongSize
                | FileProblem::HashMismatch
                | FileProblem::BadStructure
                | FileProblem::Unreadable
        )
    }
}

/// Severity order of states, worst first.
pub fn state_rank(s: HealthState) -> u8 {
    match s {
        HealthState::Missing => 0,
        HealthState::Corrupted => 1,
        HealthState::Incomplete => 2,
        HealthState::Unknown => 3,
        HealthState::Degraded => 4,
        HealthState::Healthy => 5,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileIssue {
    pub path: String,
    pub problem: FileProblem,
    pub detail: String,
}

/// The health of one model and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHealth {
    pub model_id: String,
    pub state: HealthState,
    /// One line: the worst problems, or "all N files verified".
    pub reason: String,
    pub mode: CheckMode,
    pub files_expected: usize,
    pub files_ok: usize,
    pub total_bytes: u64,
    pub bytes_hashed: u64,
    pub issues: Vec<FileIssue>,
    pub verification: Option<VerificationState>,
    pub seconds: f64,
    /// Read throughput measured while hashing (bytes/s), a load-time basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bytes_per_sec: Option<f64>,
    /// `total_bytes / read_bytes_per_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_time_estimate_seconds: Option<f64>,
    pub checked_at: String,
    /// Set when the outcome could not be recorded in the metadata (e.g. a read-only store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_not_updated: Option<String>,
}

impl ModelHealth {
    pub fn is_healthy(&self) -> bool {
        self.state == HealthState::Healthy
    }

    /// Repo paths a repair must re-download.
    pub fn files_to_download(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .issues
            .iter()
            .filter(|i| i.problem.needs_download())
            .map(|i| i.path.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn stray_files(&self) -> Vec<String> {
        self.issues
            .iter()
            .filter(|i| i.problem == FileProblem::Stray)
            .map(|i| i.path.clone())
            .collect()
    }
}

/// One line: the worst three issues, or that every file checked out.
pub(super) fn summarize(issues: &[FileIssue], files: usize, mode: CheckMode) -> String {
    if issues.is_empty() {
        return match mode {
            CheckMode::Full => format!("all {files} files verified"),
            CheckMode::Quick => format!("all {files} files present with the recorded size"),
        };
    }
    let mut sorted: Vec<&FileIssue> = issues.iter().collect();
    sorted.sort_by_key(|i| state_rank(i.problem.state()));
    let mut parts: Vec<String> = sorted
        .iter()
        .take(3)
        .map(|i| {
            if i.path.is_empty() {
                i.detail.clone()
            } else {
                format!("{}: {}", i.path, i.detail)
            }
        })
        .collect();
    if sorted.len() > 3 {
        parts.push(format!("and {} more", sorted.len() - 3));
    }
    parts.join("; ")
}

/// The worst state among the issues (healthy when none).
pub(super) fn state_of(issues: &[FileIssue]) -> HealthState {
    issues
        .iter()
        .map(|i| i.problem.state())
        .min_by_key(|s| state_rank(*s))
        .unwrap_or(HealthState::Healthy)
}

/// Counts per state, for summaries.
pub fn count_states(models: &[ModelHealth]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for s in [
        HealthState::Healthy,
        HealthState::Degraded,
        HealthState::Corrupted,
        HealthState::Incomplete,
        HealthState::Missing,
        HealthState::Unknown,
    ] {
        m.insert(s.as_str(), 0);
    }
    for h in models {
        *m.entry(h.state.as_str()).or_insert(0) += 1;
    }
    m
}
