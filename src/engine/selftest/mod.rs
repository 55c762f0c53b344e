//! Self-tests on this machine (`ema test-installation`, `ema test-enhanced-features`, the migration wizard's
//! "Enhanced features working"): real work in a temporary store against a sample hub a face serves on loopback
//! through the [`SampleHubStarter`] hook, since the engine never imports the server. Each proof
//! reports what it proved with its figures; a feature that does not exist yet is reported as not built, never as
//! a pass.
//!
//! - `proof.rs`: [`Proof`], [`SelfTestPlan`], the verdict and exit code.
//! - `workspace.rs`: the temporary folder, the sample hub's store, the flipped byte.
//! - `install.rs`: interrupted-and-resumed download, verification, corruption and repair, every sample model.
//! - `hub.rs`: the [`SampleHub`] hook a face provides and [`run_blocking`] (workspace, hub, proofs).
//! - `health.rs`: the health monitor catching, alerting on and repairing a corrupted file.
//! - `fallback.rs`: a scored, explained substitute offered for a missing model.
//! - `analytics.rs`: a download and a request recorded in a fresh analytics database and read back.

pub mod analytics;
pub mod fallback;
pub mod health;
pub mod hub;
pub mod install;
pub mod proof;
pub mod workspace;

pub use hub::{RunReport, SampleHub, SampleHubStarter, StartSampleHub, run_blocking};
pub use proof::{Ask, Proof, ProofStatus, SelfTestPlan, verdict};
pub use workspace::{Workspace, prepare};

/// Run the proofs of `plan` against the hub at `endpoint` serving `ws.hub_dir`, in order: a proof whose
/// prerequisite failed is reported as not run.
pub async fn run(
    ws: &Workspace,
    endpoint: &str,
    plan: &SelfTestPlan,
    progress: proof::Progress<'_>,
) -> Vec<Proof> {
    let mut out = Vec::new();
    if plan.download_management.wanted() {
        let explicit = plan.download_management == Ask::Explicitly;
        let mark = |mut p: Proof| {
            p.asked_explicitly = explicit;
            p
        };
        let d = install::download_resume(ws, endpoint, progress).await;
        let ok = d.status == ProofStatus::Passed;
        out.push(mark(d));
        if ok {
            let v = install::verify(ws, endpoint, progress).await;
            let ok = v.status == ProofStatus::Passed;
            out.push(mark(v));
            if ok {
                out.push(mark(
                    install::corrupt_and_repair(ws, endpoint, progress).await,
                ));
            } else {
                out.push(mark(not_run_repair("the model did not verify")));
            }
        } else {
            out.push(mark(
                Proof::new(
                    "verify",
                    "every byte of the downloaded model matches the hub's hashes",
                )
                .not_run("needs the downloaded model, and its download failed".into()),
            ));
            out.push(mark(not_run_repair(
                "needs the downloaded model, and its download failed",
            )));
        }
    }
    if plan.sample_models {
        out.push(install::sample_models(ws, endpoint, progress).await);
    }
    if plan.health_monitoring.wanted() {
        let mut p = health::health_monitoring(ws, endpoint, progress).await;
        p.asked_explicitly = plan.health_monitoring == Ask::Explicitly;
        out.push(p);
    }
    if plan.intelligent_fallback.wanted() {
        let mut p = fallback::intelligent_fallback(ws, endpoint, progress).await;
        p.asked_explicitly = plan.intelligent_fallback == Ask::Explicitly;
        out.push(p);
    }
    if plan.usage_analytics.wanted() {
        let mut p = analytics::usage_analytics(ws, endpoint, progress).await;
        p.asked_explicitly = plan.usage_analytics == Ask::Explicitly;
        out.push(p);
    }
    out
}

/// Every proof of `plan`, not run because `why` (the workspace or the hub could not be set up); features not
/// built yet are still reported as such.
pub fn not_run_all(plan: &SelfTestPlan, why: &str) -> Vec<Proof> {
    let mut out = Vec::new();
    let mut push = |name, title, ask: Ask| {
        let mut p = Proof::new(name, title).not_run(why.to_string());
        p.asked_explicitly = ask == Ask::Explicitly;
        out.push(p);
    };
    if plan.download_management.wanted() {
        for (n, t) in [
            (
                "download_resume",
                "a download interrupted mid-transfer resumes where it stopped",
            ),
            (
                "verify",
                "every byte of the downloaded model matches the hub's hashes",
            ),
            (
                "corrupt_and_repair",
                "a flipped byte is caught and repaired from the hub",
            ),
        ] {
            push(n, t, plan.download_management);
        }
    }
    if plan.sample_models {
        push(
            "sample_models",
            "every sample model downloads and verifies",
            Ask::Implicitly,
        );
    }
    if plan.health_monitoring.wanted() {
        push(
            "health_monitoring",
            "the health monitor detects a corrupted file, alerts and repairs it",
            plan.health_monitoring,
        );
    }
    if plan.intelligent_fallback.wanted() {
        push(
            "intelligent_fallback",
            "a scored fallback is suggested for a missing model",
            plan.intelligent_fallback,
        );
    }
    if plan.usage_analytics.wanted() {
        push(
            "usage_analytics",
            "a usage record lands in the analytics database",
            plan.usage_analytics,
        );
    }
    out
}

fn not_run_repair(why: &str) -> Proof {
    Proof::new(
        "corrupt_and_repair",
        "a flipped byte is caught and repaired from the hub",
    )
    .not_run(why.to_string())
}
