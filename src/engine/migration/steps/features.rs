//! "Enhanced features working": the enhanced-feature self-test (`ema test-enhanced-features`) run for real — a
//! temporary store, the built-in sample hub served through the face's hook, an interrupted download resumed,
//! verified, a flipped byte repaired, the health monitor catching and repairing a corrupted file — one log line
//! per proof. Fallback and analytics (issue 13) are reported as not built and do not fail the step.

use crate::engine::error::Result;
use crate::engine::migration::context::{MigrationContext, StepOutcome};
use crate::engine::selftest::{self, Ask, Proof, ProofStatus, SelfTestPlan};

/// Every enhanced feature, as `ema test-enhanced-features` with no flag runs them.
const PLAN: SelfTestPlan = SelfTestPlan {
    download_management: Ask::Implicitly,
    sample_models: false,
    health_monitoring: Ask::Implicitly,
    intelligent_fallback: Ask::Implicitly,
    usage_analytics: Ask::Implicitly,
};

pub(super) fn features_working(ctx: &MigrationContext) -> Result<StepOutcome> {
    let Some(starter) = &ctx.sample_hub else {
        return Ok(StepOutcome::blocked(
            "the face running this step did not provide a sample hub starter (the engine cannot serve HTTP), so \
             the enhanced-feature self-test cannot run here; run `ema test-enhanced-features` (an interrupted \
             download resumed, verify, corrupt-and-repair, the health monitor; fallback and analytics are issue \
             13), or this step from the CLI: `ema migrate run features_working`",
            vec!["ema test-enhanced-features".into()],
        ));
    };
    let report = selftest::run_blocking(&PLAN, starter, &|_: &str| {})?;
    let log: Vec<String> = report.proofs.iter().map(log_line).collect();
    let (ok, _) = selftest::verdict(&report.proofs);
    let names = |s: ProofStatus| {
        report
            .proofs
            .iter()
            .filter(|p| p.status == s)
            .map(|p| p.name)
            .collect::<Vec<_>>()
    };
    if !ok {
        let first = report
            .proofs
            .iter()
            .find(|p| p.status == ProofStatus::Failed)
            .or_else(|| {
                report
                    .proofs
                    .iter()
                    .find(|p| p.status == ProofStatus::NotRun)
            });
        let why = first.map_or_else(
            || "a proof did not pass".to_string(),
            |p| format!("{} ({}): {}", p.name, p.title, p.detail),
        );
        return Ok(StepOutcome::fail(
            format!("the enhanced-feature self-test failed: {why}; the log lists every proof"),
            log,
        ));
    }
    let passed = names(ProofStatus::Passed);
    let not_built = names(ProofStatus::NotBuilt);
    Ok(StepOutcome::pass(
        format!(
            "{} proofs passed against the built-in sample hub at {} in a temporary store (removed): {}{}",
            passed.len(),
            report.endpoint.as_deref().unwrap_or("?"),
            passed.join(", "),
            if not_built.is_empty() {
                String::new()
            } else {
                format!(
                    "; not built yet (issue 13), not counted: {}",
                    not_built.join(", ")
                )
            }
        ),
        log,
    ))
}

/// `passed download_resume: <detail> [bytes=…, seconds=…]`
fn log_line(p: &Proof) -> String {
    let mut figures: Vec<String> = p
        .figures
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect();
    if p.status == ProofStatus::Passed || p.status == ProofStatus::Failed {
        figures.push(format!("seconds={}", p.seconds));
    }
    let figures = if figures.is_empty() {
        String::new()
    } else {
        format!(" [{}]", figures.join(", "))
    };
    format!("{} {}: {}{figures}", p.status.as_str(), p.name, p.detail)
}
