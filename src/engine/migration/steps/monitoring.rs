//! "Monitoring configured": `ema setup-monitoring`'s files (the Prometheus scrape configuration, the alerting rules
//! with their promtool unit tests, the Grafana dashboard) written into `monitoring/` beside the migrated
//! configuration, for the server it configures; then the running server checked as `ema test-monitoring` does
//! (`/metrics` answers, parses, and exports every metric the files name).

use crate::engine::api_check::{self, Target};
use crate::engine::error::Result;
use crate::engine::migration::context::{MigrationContext, StepOutcome};
use crate::engine::monitoring::{self, Parts, live};

use super::api::server_config;

pub(super) fn monitoring_configured(ctx: &MigrationContext) -> Result<StepOutcome> {
    let (cfg, from) = server_config(ctx);
    let target = Target::new(&cfg, None, std::env::var("EMA_API_TOKEN").ok())?;
    let dir = ctx
        .plan
        .enhanced_config
        .parent()
        .map(|p| p.join("monitoring"))
        .unwrap_or_else(|| "monitoring".into());
    let mut log = vec![format!(
        "address {} (api.host/api.port of {from})",
        target.base
    )];
    let files = monitoring::generate(Parts::default(), &target)?;
    let written = match monitoring::write(&dir, &files, false) {
        Ok(w) => w,
        Err(e) => {
            return Ok(StepOutcome::fail(
                format!(
                    "{e} (to replace them: `ema setup-monitoring --out {} --force`)",
                    dir.display()
                ),
                log,
            ));
        }
    };
    log.extend(
        written
            .iter()
            .map(|w| format!("{} {} ({})", w.action, w.path.display(), w.about)),
    );
    if target.has_token() {
        log.push(format!(
            "a token is configured: put it in {} for Prometheus (ema never writes it)",
            dir.join(monitoring::prometheus::TOKEN_FILE).display()
        ));
    }
    let report = api_check::blocking(live::check(&target, false))?;
    log.extend(report.checks.iter().map(|c| {
        format!(
            "{} {}: {}",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.detail
        )
    }));
    Ok(if report.all_passed() {
        StepOutcome::pass(
            format!(
                "monitoring files in {}; the server at {} exports every metric they name (point Prometheus at \
                 prometheus.yml, import ema-dashboard.json into Grafana)",
                dir.display(),
                target.base
            ),
            log,
        )
    } else {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect();
        StepOutcome::fail(
            format!(
                "monitoring files written to {}, but the server check failed ({}); start the server (`ema start`) \
                 and run this step again, or `ema test-monitoring --url {}`",
                dir.display(),
                failed.join(", "),
                target.base
            ),
            log,
        )
    })
}
