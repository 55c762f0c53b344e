//! `ema` (no command) and `ema tui`: open the console.

use crate::engine::error::{EmaError, Result};

use super::Ctx;

#[derive(Debug, Default, clap::Args)]
pub struct TuiArgs {
    /// Theme: dark (default), light, high-contrast, or a path to a theme .toml (overrides config ui.theme).
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
}

pub fn run(args: TuiArgs, ctx: &Ctx) -> Result<i32> {
    if ctx.out.json {
        return Err(EmaError::Config(
            "the console has no JSON output; run a headless command with --json (see `ema --help`)"
                .into(),
        ));
    }
    let loaded = ctx.load_config()?;
    crate::tui::run_console(
        loaded,
        ctx.config_flag.clone(),
        args.theme,
        Some(crate::server::sample_hub::starter()),
    )
}
