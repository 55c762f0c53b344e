//! `ema validate-migration`: the guide's post-migration validation (`engine::validate_migration`), each check pass /
//! fail / not applicable with its figure and reason, as a table or one JSON document.

use std::path::PathBuf;

use clap::Args;

use crate::engine::error::{EmaError, Result, exit};
use crate::engine::integrity::hash::default_threads;
use crate::engine::validate_migration::{ValidateInput, validate_migration as run_checks};

use super::Ctx;

#[derive(Debug, Args)]
#[command(
    after_help = "No check flag runs every check. A check that needs a part ema does not have yet says \"not \
applicable\" with the reason, never \"pass\". Exit codes: 0 nothing failed, 1 a check failed (its reason and fix \
are printed)."
)]
pub struct ValidateMigrationArgs {
    /// Every adopted model hashed against its sidecar; nothing left in a legacy layout.
    #[arg(long)]
    pub check_models: bool,
    /// The configuration in force is valid; no legacy config.json left unconverted.
    #[arg(long)]
    pub check_config: bool,
    /// The configured server's REST API, endpoint by endpoint (as `ema test-api-compatibility`).
    #[arg(long)]
    pub check_api: bool,
    /// Each features.* flag and whether its engine part exists.
    #[arg(long)]
    pub check_features: bool,
    /// The migrated models directory (default: the configured one).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// The install directory whose config.json may be a legacy configuration (default: the working directory).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

pub fn validate_migration(a: ValidateMigrationArgs, ctx: &Ctx) -> Result<i32> {
    let all = !(a.check_models || a.check_config || a.check_api || a.check_features);
    let root = match a.root {
        Some(r) if !r.is_dir() => {
            return Err(EmaError::NotFound(format!(
                "--root {} is not a directory; give the install directory (where the legacy config.json was)",
                r.display()
            )));
        }
        Some(r) => r,
        None => PathBuf::from("."),
    };
    let report = run_checks(&ValidateInput {
        check_models: all || a.check_models,
        check_config: all || a.check_config,
        check_api: all || a.check_api,
        check_features: all || a.check_features,
        models_dir: a.models_dir,
        config_flag: ctx.config_flag.clone(),
        root,
        threads: default_threads(),
    });
    let code = if report.failed() {
        exit::FAILURE
    } else {
        exit::OK
    };
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "ok": !report.failed(),
            "config_file": report.config_file,
            "models_dir": report.models_dir,
            "checks": report.checks,
        }));
        return Ok(code);
    }
    for c in &report.checks {
        println!("{:<15} {:<9} {}", c.status.as_str(), c.name, c.figure);
        println!("                          {}", c.reason);
        for d in &c.details {
            println!("                            {d}");
        }
    }
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.status == crate::engine::validate_migration::CheckStatus::Fail)
        .map(|c| c.name)
        .collect();
    if failed.is_empty() {
        println!("validation: nothing failed");
    } else {
        println!("validation: FAILED ({})", failed.join(", "));
    }
    Ok(code)
}
