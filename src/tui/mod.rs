//! The console face (ratatui): `ema` with no subcommand, or `ema tui`.
//!
//! - [`state`]: the view model, fed by engine events and snapshots;
//! - [`action`]: what the operator asks for;
//! - [`bridge`]: the few engine calls the console makes ([`bridge::ConsoleBackend`]);
//! - [`app`]: focus, key and action routing; [`panes`]: one module per pane (its view state, keys and drawing);
//!   [`component`]: what the app and the panes share;
//! - [`frame`]: the frame around the panes; [`dialogs`]: confirmation and help overlays; [`widgets`], [`units`]:
//!   shared drawing bits and units;
//! - [`remote`]: the console attached to a running `ema start` (`ema --attach URL`), a second backend;
//! - [`runtime`]: the async loop; [`sync_backend`]: synchronized terminal updates; [`theme`]: themes.

pub mod action;
pub mod app;
pub mod bridge;
pub mod component;
pub mod dialogs;
pub mod frame;
pub mod panes;
pub mod remote;
pub mod runtime;
pub mod state;
pub mod sync_backend;
pub mod theme;
pub mod units;
pub mod widgets;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::Engine;
use crate::engine::config::LoadedConfig;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::migration::SampleHubStarter;

use app::App;
use bridge::{ConsoleBackend, EngineBackend};
use state::ConsoleState;
use theme::Theme;

/// What `ema` prints instead of drawing when stdout is not a terminal.
pub const NO_TTY_MESSAGE: &str = "ema: the console needs a terminal, but stdout is not a TTY.\n\
Use the headless commands instead: `ema --help` lists them (add --json for machine-readable output),\n\
e.g. `ema config show`. Over SSH, use `ssh -t` so a terminal is allocated.";

/// Build the initial view model from the backend (blocking scan before the terminal switches to the alternate
/// screen, so the first frame already has the store).
pub async fn initial_state<K: ConsoleBackend>(backend: &K) -> Result<ConsoleState> {
    let info = backend.info();
    let mut st = ConsoleState {
        store_root: info.store_root.clone(),
        hub: bridge::hub_facts(&info),
        migration: backend.migration_load()?,
        link: backend.link(),
        ..Default::default()
    };
    st.set_models(backend.models().await?);
    st.set_downloads(&backend.downloads());
    if let Ok(s) = backend.storage().await {
        st.set_storage(s);
    }
    if let Ok(a) = backend.alerts().await {
        st.set_alerts(a);
    }
    Ok(st)
}

/// Restores the terminal however the console exits.
struct RestoreGuard;

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// `ema` / `ema tui`: open the console on the configured store. Returns the exit code.
pub fn run_console(
    loaded: LoadedConfig,
    config_flag: Option<PathBuf>,
    theme_flag: Option<String>,
    sample_hub: Option<SampleHubStarter>,
) -> Result<i32> {
    run_console_with(
        loaded,
        config_flag,
        theme_flag,
        HubEnv::from_env(),
        sample_hub,
    )
}

/// Open the console against an explicit hub (`ema demo` points it at its built-in local hub). `sample_hub`: the
/// starter the Migration pane's "Enhanced features working" serves its sample hub with (the CLI hands in
/// `server::sample_hub`'s; the console never serves HTTP itself).
pub fn run_console_with(
    loaded: LoadedConfig,
    config_flag: Option<PathBuf>,
    theme_flag: Option<String>,
    hub_env: HubEnv,
    sample_hub: Option<SampleHubStarter>,
) -> Result<i32> {
    let theme = console_theme(&loaded, theme_flag)?;
    if !have_terminal() {
        eprintln!("{NO_TTY_MESSAGE}");
        return Ok(exit::USAGE);
    }

    let rt = console_runtime()?;
    let result = rt.block_on(async move {
        let engine = Engine::new(loaded.config.clone(), hub_env)?;
        engine.start_analytics();
        let analytics_engine = engine.clone();
        let backend = Arc::new(EngineBackend::new(engine, loaded, config_flag));
        if let Some(s) = sample_hub {
            backend.set_sample_hub(s);
        }
        let state = initial_state(backend.as_ref()).await?;
        let app = App::new(state, theme);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let monitor = backend.spawn_health_monitor(shutdown.clone());
        let r = on_terminal(app, backend).await;
        shutdown.cancel();
        if let Some(m) = monitor {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), m).await;
        }
        analytics_engine
            .stop_analytics(std::time::Duration::from_secs(2))
            .await;
        r?;
        Ok(exit::OK)
    });
    // Do not wait for blocking work still running (a migration step, a hash): its state says "running", which the
    // next start turns into "interrupted, retry".
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// The theme in force: `--theme`, else `ui.theme`; monochrome under `NO_COLOR`. A bad theme is a usage error
/// whether or not there is a terminal.
pub(crate) fn console_theme(loaded: &LoadedConfig, theme_flag: Option<String>) -> Result<Theme> {
    let theme_name = theme_flag.unwrap_or_else(|| loaded.config.ui.theme.clone());
    let config_dir = crate::engine::config::project_dirs().map(|d| d.config_dir().to_path_buf());
    let theme = Theme::load(&theme_name, false, config_dir.as_deref())?;
    Ok(if theme::no_color_env() {
        Theme::monochrome()
    } else {
        theme
    })
}

/// Both stdin and stdout are terminals.
pub(crate) fn have_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// The console's two-thread runtime.
pub(crate) fn console_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))
}

/// Take over the terminal and run the console's loop over `backend` until the operator quits; the terminal is
/// restored however it ends.
pub(crate) async fn on_terminal<K: ConsoleBackend>(mut app: App, backend: Arc<K>) -> Result<()> {
    // color-eyre's hooks first: ratatui::init() chains its restoring panic hook in front of them.
    let _ = color_eyre::install();
    // try_init: raw mode, alternate screen and the restoring panic hook; then draw through a backend that
    // brackets each frame in a synchronized update.
    let plain = ratatui::try_init()
        .map_err(|e| EmaError::Other(format!("cannot set up the terminal: {e}")))?;
    let _guard = RestoreGuard;
    drop(plain);
    let mut terminal = ratatui::Terminal::new(sync_backend::SyncUpdates::new(
        ratatui::backend::CrosstermBackend::new(std::io::stdout()),
    ))
    .map_err(|e| EmaError::Other(format!("cannot set up the terminal: {e}")))?;
    let input = crossterm::event::EventStream::new();
    runtime::run(&mut terminal, &mut app, backend, input).await
}

#[cfg(test)]
mod tests;
