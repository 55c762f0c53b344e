//! `ema test-installation` and `ema test-enhanced-features`: self-tests on this machine. A temporary store, the
//! built-in sample hub served on loopback (`server::sample_hub`, the mirror's code), then the engine's proofs
//! (`engine::selftest::run_blocking`) — progress on stderr, the proofs as a table or one JSON document.

use clap::Args;
use serde_json::json;

use crate::engine::error::Result;
use crate::engine::selftest::{self, Ask, ProofStatus, SelfTestPlan};
use crate::server::sample_hub;

use super::Ctx;

const EXIT_HELP: &str = "Exit codes: 0 every proof that ran passed (a feature that is not built yet is reported as \
such and never counted as a pass; it changes the exit code only when asked for by name), 1 a proof failed or could \
not run (the reason is printed), 5 nothing failed but a feature asked for by name is not built yet. \
Everything happens in a temporary folder under $TMPDIR (removed at the end) against a hub on 127.0.0.1; nothing \
of the configured store is touched.";

#[derive(Debug, Args)]
#[command(after_help = EXIT_HELP)]
pub struct TestInstallationArgs {
    /// Also download every sample model and verify it.
    #[arg(long)]
    pub sample_models: bool,
    /// Also run every enhanced-feature test (as `ema test-enhanced-features` with no flag).
    #[arg(long)]
    pub run_all_tests: bool,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_HELP)]
pub struct TestEnhancedFeaturesArgs {
    /// Download with a forced interruption and resume, verify, corrupt a byte and repair it.
    #[arg(long)]
    pub download_management: bool,
    /// The health monitor detects a corrupted file, raises an alert and repairs it.
    #[arg(long)]
    pub health_monitoring: bool,
    /// A scored, explained fallback suggestion for a missing model (a related sample model on disk).
    #[arg(long)]
    pub intelligent_fallback: bool,
    /// A download and a request recorded in a fresh analytics database and read back.
    #[arg(long)]
    pub usage_analytics: bool,
}

pub fn test_installation(a: TestInstallationArgs, ctx: &Ctx) -> Result<i32> {
    let all = if a.run_all_tests {
        Ask::Implicitly
    } else {
        Ask::No
    };
    let plan = SelfTestPlan {
        download_management: Ask::Implicitly,
        sample_models: a.sample_models,
        health_monitoring: all,
        intelligent_fallback: all,
        usage_analytics: all,
    };
    run("test-installation", &plan, ctx)
}

pub fn test_enhanced_features(a: TestEnhancedFeaturesArgs, ctx: &Ctx) -> Result<i32> {
    let any =
        a.download_management || a.health_monitoring || a.intelligent_fallback || a.usage_analytics;
    let ask = |flag: bool| match (any, flag) {
        (false, _) => Ask::Implicitly,
        (true, true) => Ask::Explicitly,
        (true, false) => Ask::No,
    };
    let plan = SelfTestPlan {
        download_management: ask(a.download_management),
        sample_models: false,
        health_monitoring: ask(a.health_monitoring),
        intelligent_fallback: ask(a.intelligent_fallback),
        usage_analytics: ask(a.usage_analytics),
    };
    run("test-enhanced-features", &plan, ctx)
}

fn run(command: &str, plan: &SelfTestPlan, ctx: &Ctx) -> Result<i32> {
    let progress = |m: &str| eprintln!("{command}: {m}");
    let report = selftest::run_blocking(plan, &sample_hub::starter(), &progress)?;
    let (proofs, workspace, endpoint) = (report.proofs, report.workspace, report.endpoint);
    let (ok, code) = selftest::verdict(&proofs);
    let count = |s: ProofStatus| proofs.iter().filter(|p| p.status == s).count();
    let summary = json!({
        "passed": count(ProofStatus::Passed),
        "failed": count(ProofStatus::Failed),
        "not_built": count(ProofStatus::NotBuilt),
        "not_run": count(ProofStatus::NotRun),
    });
    if ctx.out.json {
        ctx.out.json(&json!({
            "command": command,
            "ok": ok,
            "exit_code": code,
            "workspace": workspace,
            "workspace_removed": true,
            "hub": endpoint,
            "summary": summary,
            "proofs": proofs,
        }));
        return Ok(code);
    }
    for p in &proofs {
        println!("{:<10} {}", p.status.as_str(), p.title);
        println!("           {}", p.detail);
    }
    println!(
        "\nproofs: {} — {} passed, {} failed, {} not run, {} not built: {}",
        proofs.len(),
        summary["passed"],
        summary["failed"],
        summary["not_run"],
        summary["not_built"],
        match code {
            0 => "everything that ran was proven on this machine",
            5 => "a feature asked for by name is not built yet",
            _ => "NOT everything was proven (see above)",
        }
    );
    Ok(code)
}
