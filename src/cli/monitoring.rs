//! `ema setup-monitoring` (the Prometheus scrape configuration, alerting rules with their promtool unit tests, and a
//! Grafana dashboard for this server, written into a directory) and `ema test-monitoring` (a running server's
//! metrics checked against those files, and test alerts followed end to end): the engine part is
//! `engine::monitoring`.

use std::path::PathBuf;

use clap::Args;

use crate::engine::api_check::{self, Target};
use crate::engine::error::{Result, exit};
use crate::engine::monitoring::{self, Parts, live};

use super::Ctx;

#[derive(Debug, Args)]
#[command(
    after_help = "With no part flag, all three are written: prometheus.yml (scrape configuration), ema-alerts.yml \
and ema-alerts.test.yml (alerting rules and their `promtool test rules` unit tests), ema-dashboard.json (Grafana). \
A configured token (api.token or EMA_API_TOKEN) is never written: prometheus.yml reads it from the file \
ema-api-token beside it, which you fill. Files that exist with other contents are left alone unless --force. Exit \
codes: 0 written (or unchanged), 1 cannot write, 2 a bad --url or files in the way."
)]
pub struct SetupMonitoringArgs {
    /// The Prometheus scrape configuration (prometheus.yml).
    #[arg(long)]
    pub prometheus: bool,
    /// The Grafana dashboard (ema-dashboard.json).
    #[arg(long)]
    pub grafana: bool,
    /// The alerting rules and their unit tests (ema-alerts.yml, ema-alerts.test.yml).
    #[arg(long)]
    pub alerting: bool,
    /// The directory to write into (created when missing).
    #[arg(long, value_name = "DIR", default_value = "monitoring")]
    pub out: PathBuf,
    /// The server Prometheus scrapes (default: the configured api.host:api.port).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Replace files that exist with other contents.
    #[arg(long)]
    pub force: bool,
}

pub fn setup(a: SetupMonitoringArgs, ctx: &Ctx) -> Result<i32> {
    let cfg = ctx.load_config()?.config;
    let target = Target::new(&cfg, a.url.as_deref(), std::env::var("EMA_API_TOKEN").ok())?;
    let parts = Parts {
        prometheus: a.prometheus,
        grafana: a.grafana,
        alerting: a.alerting,
    };
    let files = monitoring::generate(parts, &target)?;
    let written = monitoring::write(&a.out, &files, a.force)?;
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "out": a.out,
            "server": target.base,
            "token_file": target.has_token().then(|| a.out.join(monitoring::prometheus::TOKEN_FILE)),
            "files": written,
        }));
        return Ok(exit::OK);
    }
    println!("monitoring for the ema server at {}:", target.base);
    for w in &written {
        println!("  {:<9} {}  ({})", w.action, w.path.display(), w.about);
    }
    if target.has_token()
        && written
            .iter()
            .any(|w| w.name == monitoring::prometheus::PROMETHEUS_FILE)
    {
        println!(
            "a token is configured: put it in {} (readable by Prometheus only); it is never written by ema",
            a.out.join(monitoring::prometheus::TOKEN_FILE).display()
        );
    }
    println!(
        "check them: promtool check config {0}/prometheus.yml; promtool test rules {0}/ema-alerts.test.yml; then \
         `ema test-monitoring` against the running server",
        a.out.display()
    );
    Ok(exit::OK)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Checks that the server answers, that /metrics answers and parses, and that every metric the \
generated alert rules and dashboard name is exported. --generate-test-alerts also raises a test alert on the server \
(POST /api/v1/admin/test-alerts: kind test, its message starts \"TEST ALERT\"), looks for it on the WebSocket, in \
the alert history (`ema health`) and in /metrics, then resolves it and checks it cleared. The token comes from \
EMA_API_TOKEN, else api.token. Exit codes: 0 every check passed, 1 one failed (or no server answers), 2 a bad --url."
)]
pub struct TestMonitoringArgs {
    /// Raise a test alert and follow it through every face, then resolve it.
    #[arg(long)]
    pub generate_test_alerts: bool,
    /// The server (default: the configured api.host:api.port).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

pub fn test(a: TestMonitoringArgs, ctx: &Ctx) -> Result<i32> {
    let cfg = ctx.load_config()?.config;
    let target = Target::new(&cfg, a.url.as_deref(), std::env::var("EMA_API_TOKEN").ok())?;
    let report = api_check::blocking(live::check(&target, a.generate_test_alerts))?;
    let code = if report.all_passed() {
        exit::OK
    } else {
        exit::FAILURE
    };
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "ok": report.all_passed(),
            "url": report.url,
            "passed": report.passed,
            "failed": report.failed,
            "test_run": report.test_run,
            "checks": report.checks,
        }));
        return Ok(code);
    }
    println!("server: {}", report.url);
    for c in &report.checks {
        println!(
            "{:<5} {:<46} {}",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    println!(
        "monitoring: {} passed, {} failed",
        report.passed, report.failed
    );
    Ok(code)
}
