//! `ema test-api-compatibility [--legacy-endpoints] [--enhanced-endpoints] [--url U]`: a running server checked
//! endpoint by endpoint against the shapes the guide's clients read (`engine::api_check`), each pass / fail with
//! its reason, as a table or one JSON document.

use clap::Args;

use crate::engine::api_check::{self, Target};
use crate::engine::error::{Result, exit};

use super::Ctx;

#[derive(Debug, Args)]
#[command(
    after_help = "With neither set flag, both sets are checked. Nothing is changed on the server: the POST \
endpoints are sent a request they must refuse. The token comes from EMA_API_TOKEN, else api.token. Exit codes: 0 \
every endpoint passed, 1 one failed (or no server answers), 2 a bad --url."
)]
pub struct ApiCompatArgs {
    /// The legacy endpoints (status, download, health).
    #[arg(long)]
    pub legacy_endpoints: bool,
    /// The enhanced endpoints (status/detailed, download/manage, downloads, fallback/suggest, admin/health, /ws).
    #[arg(long)]
    pub enhanced_endpoints: bool,
    /// The server (default: the configured api.host:api.port).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

pub fn run(a: ApiCompatArgs, ctx: &Ctx) -> Result<i32> {
    let cfg = ctx.load_config()?.config;
    let target = Target::new(&cfg, a.url.as_deref(), std::env::var("EMA_API_TOKEN").ok())?;
    let report = api_check::blocking(api_check::compatibility(
        &target,
        a.legacy_endpoints,
        a.enhanced_endpoints,
    ))?;
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
            "checks": report.checks,
        }));
        return Ok(code);
    }
    println!("server: {}", report.url);
    for c in &report.checks {
        let status = c
            .http_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<5} {:<9} {:<38} {:>3}  {}",
            if c.passed { "pass" } else { "FAIL" },
            c.set,
            c.endpoint,
            status,
            c.reason
        );
    }
    if report.checks.iter().all(|c| c.http_status.is_none())
        && let Ok(Err(why)) = api_check::blocking(api_check::alive(&target))
    {
        println!("{why}");
    }
    println!(
        "api compatibility: {} passed, {} failed",
        report.passed, report.failed
    );
    Ok(code)
}
