//! The quick check ([`quick_check`]): existence, size and mtime against the metadata, strays; no hashing.

use std::collections::BTreeSet;
use std::time::Instant;

use super::plan::{base_health, plan, presence_issues};
use super::verdict::{
    CheckMode, FileIssue, FileProblem, ModelHealth, state_of, state_rank, summarize,
};
use crate::engine::events::HealthState;
use crate::engine::store::{RepoId, Store, VerificationState, now_rfc3339};

/// Quick check of `ids`: existence, size and mtime against the metadata, strays; no hashing. Stats run in
/// parallel. A model whose last full verification failed stays `corrupted` until verified again.
pub fn quick_check(store: &Store, ids: &[RepoId], threads: usize) -> Vec<ModelHealth> {
    crate::engine::integrity::parallel_map(ids, threads, |id| {
        let start = Instant::now();
        let p = plan(store, id);
        if let Some(h) = base_health(&p, CheckMode::Quick) {
            return h;
        }
        let mut issues = presence_issues(&p, CheckMode::Quick);
        let files_expected = p.meta.as_ref().map(|m| m.files.len()).unwrap_or(0);
        let (state, reason) = match &p.meta {
            None => (
                HealthState::Unknown,
                format!(
                    "no metadata for {} files on disk; run `ema generate-metadata`",
                    p.disk.len()
                ),
            ),
            Some(m) => {
                let mut s = state_of(&issues);
                if m.verification == VerificationState::Failed
                    && state_rank(s) > state_rank(HealthState::Corrupted)
                {
                    s = HealthState::Corrupted;
                    issues.insert(
                        0,
                        FileIssue {
                            path: String::new(),
                            problem: FileProblem::HashMismatch,
                            detail:
                                "the last full verification failed; run `ema verify-all-models` \
                                     or repair it"
                                    .into(),
                        },
                    );
                }
                (s, summarize(&issues, m.files.len(), CheckMode::Quick))
            }
        };
        let bad: BTreeSet<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        let files_ok = p
            .meta
            .as_ref()
            .map(|m| {
                m.files
                    .iter()
                    .filter(|f| !bad.contains(f.path.as_str()))
                    .count()
            })
            .unwrap_or(0);
        ModelHealth {
            model_id: p.id.to_string(),
            state,
            reason,
            mode: CheckMode::Quick,
            files_expected,
            files_ok,
            total_bytes: p
                .meta
                .as_ref()
                .map(|m| m.total_size)
                .unwrap_or_else(|| p.disk.iter().map(|f| f.size).sum()),
            bytes_hashed: 0,
            issues,
            verification: p.meta.as_ref().map(|m| m.verification),
            seconds: start.elapsed().as_secs_f64(),
            read_bytes_per_sec: None,
            load_time_estimate_seconds: None,
            checked_at: now_rfc3339(),
            metadata_not_updated: None,
        }
    })
}
