//! "Services started" (where systemd runs, ema's unit is active; and an ema server answers
//! `GET /api/v1/admin/health` on the configured address) and "API
//! endpoints responding" (every endpoint in the shape the guide's clients read: `engine::api_check`, the checks
//! of `ema test-api-compatibility`). The configured address is the migrated configuration's `api.host:api.port`
//! when it exists, else the configuration in force's; the token is `EMA_API_TOKEN`, else `api.token`.

use crate::engine::api_check::{self, Target};
use crate::engine::config::{self, Config};
use crate::engine::error::Result;
use crate::engine::migration::context::{MigrationContext, StepOutcome};
use crate::engine::migration::systemd;

/// The configuration that says where the server listens, and which file it came from.
pub(super) fn server_config(ctx: &MigrationContext) -> (Config, String) {
    let migrated = &ctx.plan.enhanced_config;
    if migrated.is_file()
        && let Ok(l) = config::load(Some(migrated))
    {
        return (l.config, migrated.display().to_string());
    }
    let from = ctx
        .loaded
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the built-in defaults".into());
    (ctx.loaded.config.clone(), from)
}

fn target(ctx: &MigrationContext) -> Result<(Target, String)> {
    let (cfg, from) = server_config(ctx);
    let t = Target::new(&cfg, None, std::env::var("EMA_API_TOKEN").ok())?;
    Ok((t, from))
}

pub(super) fn services_started(ctx: &MigrationContext) -> Result<StepOutcome> {
    let (t, from) = target(ctx)?;
    let unit = &ctx.plan.ema_unit;
    let mut log = vec![format!("address {} (api.host/api.port of {from})", t.base)];
    let mut by_systemd = "";
    match systemd::ask(unit) {
        Ok(s) if !s.exists() => log.push(format!(
            "systemd: no unit {unit} installed (the Debian package installs it: scripts/package.sh); checked the \
             address only"
        )),
        Ok(s) if !s.running() => {
            log.push(format!("systemd: {unit} is {}", s.describe()));
            return Ok(StepOutcome::fail(
                format!(
                    "ema's unit {unit} is {} (systemd); start it with `systemctl start {unit}` (and `systemctl \
                     enable {unit}` to start it at boot), then run this step again",
                    s.describe()
                ),
                log,
            ));
        }
        Ok(s) => {
            log.push(format!("systemd: {unit} is {}", s.describe()));
            by_systemd = " under systemd";
        }
        Err(why) => log.push(why),
    }
    Ok(match api_check::blocking(api_check::alive(&t))? {
        Ok(a) => StepOutcome::pass(
            format!(
                "ema {} answers at {} (up {:.0} s){by_systemd}",
                a.version, t.base, a.uptime_seconds
            ),
            log,
        ),
        Err(why) => StepOutcome::fail(why, log),
    })
}

pub(super) fn api_responding(ctx: &MigrationContext) -> Result<StepOutcome> {
    let (t, from) = target(ctx)?;
    let report = api_check::blocking(api_check::compatibility(&t, true, true))?;
    let mut log = vec![format!("address {} (api.host/api.port of {from})", t.base)];
    log.extend(report.checks.iter().map(|c| {
        format!(
            "{} {} {}: {}",
            if c.passed { "pass" } else { "FAIL" },
            c.set,
            c.endpoint,
            c.reason
        )
    }));
    Ok(if report.all_passed() {
        StepOutcome::pass(
            format!(
                "{} endpoints at {} answer as the guide's legacy and enhanced clients read them",
                report.passed, t.base
            ),
            log,
        )
    } else {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.endpoint)
            .collect();
        StepOutcome::fail(
            format!(
                "{} of {} endpoints at {} failed ({}); see the log, or run `ema test-api-compatibility --url {}`",
                report.failed,
                report.checks.len(),
                t.base,
                failed.join(", "),
                t.base
            ),
            log,
        )
    })
}
