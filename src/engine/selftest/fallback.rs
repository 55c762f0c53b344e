//! The intelligent-fallback proof: on a store of its own holding one sample model, ask for a related sample model
//! that is not there; the engine must offer the one on disk, scored at or above the threshold, with reasons whose
//! contributions add up to its score — and never a model of another task.

use std::time::Instant;

use super::install::{STEP_TIMEOUT, proof_engine};
use super::proof::{Progress, Proof, attempt};
use super::workspace::Workspace;
use crate::engine::download::DownloadOptions;
use crate::engine::error::{EmaError, Result};
use crate::engine::fallback::{Face, Request, Requirements, UsageHints};
use crate::engine::store::RepoId;

/// On disk: the small sample model that names the requested one as its base.
pub const FALLBACK_ON_DISK: &str = "ema-demo/tiny-gpt";
/// Asked for, missing.
pub const FALLBACK_REQUESTED: &str = "ema-demo/small-gpt";

pub async fn intelligent_fallback(ws: &Workspace, endpoint: &str, progress: Progress<'_>) -> Proof {
    attempt(
        "intelligent_fallback",
        "a scored fallback is suggested for a missing model",
        |p, started| run(ws, endpoint, progress, p, started),
    )
    .await
}

async fn run(
    ws: &Workspace,
    endpoint: &str,
    progress: Progress<'_>,
    p: Proof,
    started: Instant,
) -> Result<Proof> {
    let engine = proof_engine(&ws.store_dir("fallback"), endpoint, 0.0)?;
    let have = RepoId::parse(FALLBACK_ON_DISK)?;
    progress(&format!("downloading {have} as the only model on disk"));
    tokio::time::timeout(
        STEP_TIMEOUT,
        engine.download(&have, DownloadOptions::default()),
    )
    .await
    .map_err(|_| EmaError::Other(format!("the download of {have} did not finish in time")))??;
    progress(&format!(
        "asking for {FALLBACK_REQUESTED}, which is not on disk"
    ));
    let report = engine
        .suggest(&Request {
            model_id: RepoId::parse(FALLBACK_REQUESTED)?,
            requirements: Requirements::default(),
            face: Face::Cli,
            usage: UsageHints::default(),
        })
        .await?;
    let Some(best) = report.suggestions.first() else {
        return Ok(p.failed(
            started,
            format!(
                "no suggestion for {FALLBACK_REQUESTED} although {have} is on disk (threshold {}; below it: {})",
                report.threshold,
                report
                    .below_threshold
                    .iter()
                    .map(|o| format!(
                        "{} {:.2}: {}",
                        o.model_id,
                        o.score,
                        o.reasons
                            .iter()
                            .map(|t| format!("{} {:.3} ({})", t.term, t.contribution, t.detail))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let sum: f64 = best.reasons.iter().map(|t| t.contribution).sum();
    let problem = if best.model_id != have.as_str() {
        Some(format!(
            "the first suggestion is {}, not {have}",
            best.model_id
        ))
    } else if best.score < report.threshold {
        Some(format!(
            "{} scored {:.3}, under the threshold {}",
            best.model_id, best.score, report.threshold
        ))
    } else if (sum - best.score).abs() > 1e-6 {
        Some(format!(
            "the reasons add up to {sum:.4}, not to the score {:.4}",
            best.score
        ))
    } else if best.mock || best.path.as_os_str().is_empty() {
        Some("the suggestion is not a real model on disk".into())
    } else {
        None
    };
    let p = p
        .fig("requested", FALLBACK_REQUESTED)
        .fig("suggested", best.model_id.clone())
        .fig("score", (best.score * 1000.0).round() / 1000.0)
        .fig("threshold", report.threshold)
        .fig("terms", best.reasons.len() as u64);
    Ok(match problem {
        Some(why) => p.failed(started, why),
        None => p.passed(
            started,
            format!(
                "{} offered for the missing {FALLBACK_REQUESTED}, score {:.2} ≥ {} from {} terms ({})",
                best.model_id,
                best.score,
                report.threshold,
                best.reasons.len(),
                best.reasons
                    .iter()
                    .filter(|t| t.contribution > 0.0)
                    .map(|t| t.term.as_ref())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    })
}
