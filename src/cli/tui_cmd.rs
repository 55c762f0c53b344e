//! `ema` (no command) and `ema tui`: open the console, on the local store or attached to a running server
//! (`--attach http://HOST:PORT`).

use std::path::PathBuf;

use crate::engine::error::{EmaError, Result};

use super::Ctx;

/// `--attach URL [--token-file FILE]` (top level or on `ema tui`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct AttachArgs {
    /// Attach the console to a running `ema start` (http://HOST:PORT) instead of opening the local store; the
    /// token comes from EMA_API_TOKEN or --token-file.
    #[arg(long, value_name = "URL")]
    pub attach: Option<String>,
    /// A file whose first line is the server's API token (instead of EMA_API_TOKEN).
    #[arg(long, value_name = "FILE", requires = "attach")]
    pub token_file: Option<PathBuf>,
}

impl AttachArgs {
    /// These given at the top level and on `ema tui`: the top level's fill what `tui` left out.
    pub fn or(self, other: AttachArgs) -> AttachArgs {
        AttachArgs {
            attach: self.attach.or(other.attach),
            token_file: self.token_file.or(other.token_file),
        }
    }

    /// `--attach` goes with the console only.
    pub fn refuse_with_a_command(&self) -> Result<()> {
        if self.attach.is_some() || self.token_file.is_some() {
            return Err(EmaError::Config(
                "--attach opens the console on a server; use it with no command (`ema --attach URL`) or with \
                 `ema tui --attach URL`"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Default, clap::Args)]
pub struct TuiArgs {
    /// Theme: dark (default), light, high-contrast, or a path to a theme .toml (overrides config ui.theme).
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    #[command(flatten)]
    pub attach: AttachArgs,
}

pub fn run(args: TuiArgs, ctx: &Ctx) -> Result<i32> {
    if ctx.out.json {
        return Err(EmaError::Config(
            "the console has no JSON output; run a headless command with --json (see `ema --help`)"
                .into(),
        ));
    }
    let loaded = ctx.load_config()?;
    if let Some(url) = &args.attach.attach {
        return crate::tui::remote::run_attached(
            url,
            args.attach.token_file.as_deref(),
            &loaded,
            args.theme,
        );
    }
    crate::tui::run_console(
        loaded,
        ctx.config_flag.clone(),
        args.theme,
        Some(crate::server::sample_hub::starter()),
    )
}
