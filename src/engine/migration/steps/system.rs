//! The machine: system requirements (`check-system` on the planned models directory) and the installed binary.

use crate::engine::migration::context::{MigrationContext, StepOutcome};
use crate::engine::syscheck::{self, Status, SystemCheckInput};

/// `check-system`: every line pass / warn / fail with its figure; the step fails when any line fails.
pub(super) fn system_requirements(ctx: &MigrationContext) -> StepOutcome {
    let input = SystemCheckInput {
        models_dir: ctx.plan.models_dir.clone(),
        hub_endpoint: ctx.hub.as_ref().map(|h| h.endpoint.clone()),
        hub_timeout: std::time::Duration::from_secs(5),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return StepOutcome::fail(format!("cannot start a runtime: {e}"), vec![]),
    };
    let checks = rt.block_on(syscheck::check_system(&input));
    let log: Vec<String> = checks
        .iter()
        .map(|c| {
            format!(
                "{} {}: {} — {}",
                c.status.as_str(),
                c.name,
                c.figure,
                c.detail
            )
        })
        .collect();
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (fails, warns) = (count(Status::Fail), count(Status::Warn));
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name)
        .collect();
    if fails > 0 {
        StepOutcome::fail(
            format!(
                "{fails} requirement(s) not met: {} (see the log)",
                failed.join(", ")
            ),
            log,
        )
    } else {
        StepOutcome::pass(
            format!(
                "{} checks passed{}",
                checks.len() - warns,
                if warns > 0 {
                    format!(", {warns} warning(s) (below a recommendation)")
                } else {
                    String::new()
                }
            ),
            log,
        )
    }
}

/// The running binary's version and path.
pub(super) fn installed() -> StepOutcome {
    match std::env::current_exe() {
        Ok(exe) => StepOutcome::pass(
            format!("ema {} at {}", env!("CARGO_PKG_VERSION"), exe.display()),
            vec![format!("binary: {}", exe.display())],
        ),
        Err(e) => StepOutcome::fail(format!("cannot find the running ema binary: {e}"), vec![]),
    }
}
