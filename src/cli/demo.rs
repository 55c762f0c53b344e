//! `ema demo`: sample models on a built-in local hub, and the console against it — everything works offline.
//!
//! The demo lives in one folder (default: `<platform data dir>/demo`): `hub/` is the built-in hub's store (four
//! small but real sample models, generated once, deterministic), `models/` is the operator's store the console
//! manages, `config/enhanced_model_config.json` is the demo's own configuration (kept between runs, so the watch
//! list and any edits survive). The hub is `ema mirror` of `hub/`, served in-process on loopback.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use crate::engine::Engine;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::config::{self, ConfigSource, LoadedConfig};
use crate::engine::download::DownloadOptions;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::store::RepoId;
use crate::server::mirror::Mirror;
use crate::server::options::MirrorOptions;

use super::Ctx;

/// The built-in hub's default port: stable, so from another shell `HF_ENDPOINT=http://127.0.0.1:8090` reaches it
/// while the demo runs (e.g. to repair the demo store with `ema verify-all-models --repair-corrupted`).
pub const DEMO_PORT: u16 = 8090;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo folder (default: the platform data dir's `demo`, e.g. ~/.local/share/ema/demo).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Port of the built-in hub on 127.0.0.1 (0 = any free port). When the default port is taken, any free port
    /// is used instead.
    #[arg(long, default_value_t = DEMO_PORT)]
    pub port: u16,
    /// Download bandwidth cap in Mbit/s for the demo, so progress is visible (0 = none).
    #[arg(long, value_name = "MBPS", default_value_t = 80.0)]
    pub rate_mbps: f64,
    /// Start from an empty demo store (the sample hub and the demo configuration are kept).
    #[arg(long)]
    pub fresh: bool,
    /// No console: download every sample model with progress on stderr, then print the status table.
    /// Automatic when stdout is not a terminal.
    #[arg(long)]
    pub headless: bool,
    /// Theme for the console: dark, light, high-contrast, or a path to a theme .toml.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    /// Instead: write a sample legacy install (legacy config.json, config/, logs/, models.db, models/ in every
    /// layout) into a fresh directory (--dir, default <data dir>/legacy-demo-YYYYmmdd_HHMMSS) and print the
    /// commands that migrate it with the wizard.
    #[arg(long)]
    pub legacy: bool,
}

pub fn run(args: DemoArgs, ctx: &Ctx) -> Result<i32> {
    if ctx.config_flag.is_some() {
        return Err(EmaError::Config(
            "`ema demo` uses its own configuration inside the demo folder; drop --config (use --dir to choose \
             the demo folder)"
                .into(),
        ));
    }
    if args.legacy {
        return legacy_demo(args.dir, ctx);
    }
    if !(args.rate_mbps.is_finite() && args.rate_mbps >= 0.0) {
        return Err(EmaError::Config(format!(
            "--rate-mbps {} is not a rate; give a number of Mbit/s, or 0 for no cap",
            args.rate_mbps
        )));
    }
    let dir = match args.dir {
        Some(d) => d,
        None => config::project_dirs()
            .map(|d| d.data_dir().join("demo"))
            .ok_or_else(|| {
                EmaError::Config("cannot find a home directory for the demo; pass --dir DIR".into())
            })?,
    };
    let hub_dir = dir.join("hub");
    let models_dir = dir.join("models");
    let config_path = dir.join("config").join(config::CONFIG_FILE_NAME);
    for d in [&hub_dir, &models_dir, &dir.join("config")] {
        std::fs::create_dir_all(d).map_err(|e| EmaError::io("cannot create directory", d, e))?;
    }
    let samples = crate::engine::demo::generate_sample_hub(&hub_dir)?;
    if args.fresh {
        clear_store(&models_dir)?;
    }
    let loaded = demo_config(&config_path, &samples, args.rate_mbps)?;

    // The built-in hub: the mirror of `hub/`, on its own thread and runtime, for as long as the demo runs.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<std::net::SocketAddr>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let port = args.port;
    let hub_root = hub_dir.clone();
    let hub_thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = addr_tx.send(Err(EmaError::Other(format!(
                    "cannot start the demo hub's runtime: {e}"
                ))));
                return;
            }
        };
        rt.block_on(async move {
            let bound = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Err(_) if port == DEMO_PORT => tokio::net::TcpListener::bind(("127.0.0.1", 0)).await,
                r => r,
            };
            let listener = match bound {
                Ok(l) => l,
                Err(e) => {
                    let _ = addr_tx.send(Err(EmaError::Other(format!(
                        "cannot listen on 127.0.0.1:{port} for the demo hub: {e}; pick another --port or 0"
                    ))));
                    return;
                }
            };
            match Mirror::start(&hub_root, MirrorOptions::default(), listener).await {
                Ok((_mirror, handle)) => {
                    let _ = addr_tx.send(Ok(handle.addr));
                    let _ = stop_rx.await;
                    handle.shutdown().await;
                }
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                }
            }
        });
    });
    let addr = addr_rx
        .recv()
        .map_err(|_| EmaError::Other("the demo hub stopped before it started".into()))??;
    let hub_env = HubEnv {
        endpoint: format!("http://{addr}"),
        token: None,
        token_source: None,
        offline: false,
    };

    let headless = args.headless || ctx.out.json || !std::io::stdout().is_terminal();
    let result = if headless {
        headless_demo(ctx, &loaded, hub_env, &samples, &dir)
    } else {
        crate::tui::run_console_with(
            loaded,
            Some(config_path.clone()),
            args.theme,
            hub_env,
            Some(crate::server::sample_hub::starter()),
        )
    };
    let _ = stop_tx.send(());
    let _ = hub_thread.join();
    if !headless && result.is_ok() {
        eprintln!(
            "The demo store is at {}. Headless commands work on it too, e.g.\n  ema --config {} status",
            models_dir.display(),
            config_path.display()
        );
    }
    result
}

/// The demo's configuration: created on the first run (models in `models/`, the sample models on the watch list,
/// a bandwidth cap so a download is visible), then kept; the cap follows `--rate-mbps`.
fn demo_config(path: &std::path::Path, samples: &[RepoId], rate_mbps: f64) -> Result<LoadedConfig> {
    let mut cfg = if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EmaError::io("cannot read configuration file", path, e))?;
        config::parse(&text, path)?
    } else {
        let mut c = config::Config::default();
        c.storage.models_directory = PathBuf::from("models");
        c.storage.max_storage_gb = 1.0;
        c.storage.wanted_models = samples.iter().map(|r| r.to_string()).collect();
        // The built-in hub's store is a local source for repair: a damaged demo model is repaired even when the
        // demo is not running (`ema verify-all-models --repair-corrupted`).
        c.storage.repair_sources = vec![PathBuf::from("hub")];
        // Quick checks are cheap (milliseconds): in the demo, a damaged file shows up within seconds.
        c.health_monitoring.quick_check_interval_minutes = 0.1;
        c
    };
    cfg.downloads.bandwidth_limit_mbps = rate_mbps;
    crate::engine::atomic::write_json_atomic(path, &cfg)?;
    config::load(Some(path)).map(|l| LoadedConfig {
        source: ConfigSource::Flag,
        ..l
    })
}

/// Remove every model and sidecar from the demo store (never anything outside it).
fn clear_store(models_dir: &std::path::Path) -> Result<()> {
    let rd =
        std::fs::read_dir(models_dir).map_err(|e| EmaError::io("cannot list", models_dir, e))?;
    for entry in rd.flatten() {
        let p = entry.path();
        let r = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| EmaError::io("cannot remove", &p, e))?;
    }
    Ok(())
}

fn headless_demo(
    ctx: &Ctx,
    loaded: &LoadedConfig,
    hub_env: HubEnv,
    samples: &[RepoId],
    dir: &std::path::Path,
) -> Result<i32> {
    if !ctx.out.json {
        eprintln!(
            "demo hub: {} serving {} sample models; demo store: {}",
            hub_env.endpoint,
            samples.len(),
            loaded.config.storage.models_directory.display()
        );
    }
    let engine = Engine::new(loaded.config.clone(), hub_env)?;
    let rt = super::download::runtime()?;
    let mut code = exit::OK;
    rt.block_on(async { engine.start_analytics() });
    for repo in samples {
        let res = rt.block_on(super::download::with_event_printer(
            ctx,
            &engine,
            engine.download(repo, DownloadOptions::default()),
        ));
        match res {
            Ok(r) => super::download::print_report(ctx, &r),
            Err(e) => code = code.max(super::download::stream_error(ctx, &e)),
        }
    }
    rt.block_on(engine.stop_analytics(std::time::Duration::from_secs(2)));
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let models = engine.model_statuses(false)?;
    if ctx.out.json {
        ctx.out.json_line(&serde_json::json!({
            "type": "demo_status",
            "demo_dir": dir,
            "models": models,
        }));
    } else {
        println!();
        for m in &models {
            println!(
                "{:<28} {:<12} {}",
                m.model_id,
                m.availability.as_str(),
                m.commit
                    .as_deref()
                    .map(|c| &c[..c.len().min(12)])
                    .unwrap_or("-")
            );
        }
        println!(
            "\nOpen the console on this store with `ema --config {} tui`.",
            dir.join("config").join(config::CONFIG_FILE_NAME).display()
        );
    }
    Ok(code)
}

/// `ema demo --legacy`: a sample legacy install in a fresh directory, and the commands that migrate it.
fn legacy_demo(dir: Option<PathBuf>, ctx: &Ctx) -> Result<i32> {
    let dir = match dir {
        Some(d) => d,
        None => config::project_dirs()
            .map(|d| {
                d.data_dir().join(format!(
                    "legacy-demo-{}",
                    chrono::Local::now().format("%Y%m%d_%H%M%S")
                ))
            })
            .ok_or_else(|| {
                EmaError::Config("cannot find a home directory for the demo; pass --dir DIR".into())
            })?,
    };
    if std::fs::read_dir(&dir).is_ok_and(|mut rd| rd.next().is_some()) {
        return Err(EmaError::Config(format!(
            "{} is not empty; `ema demo --legacy` writes a fresh legacy install: pass --dir with a new or empty \
             directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| EmaError::io("cannot create directory", &dir, e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| EmaError::io("cannot resolve", &dir, e))?;
    crate::engine::legacy::sample::legacy_install(&dir, false);
    let commands = [
        format!("cd {}", dir.display()),
        "ema migrate plan".to_string(),
        "ema migrate next".to_string(),
        "ema migrate status".to_string(),
        "ema".to_string(),
    ];
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "legacy_dir": dir,
            "commands": commands,
        }));
        return Ok(exit::OK);
    }
    println!(
        "A legacy install (the migration guide's \"basic\" setup) is at {}:\n  config.json (legacy schema, plus a key \
         ema does not know), config/, logs/usage.log, models.db, and models/ with a model in every layout: a plain \
         folder, an `hf download --local-dir` folder, a hub cache (symlinks, a blob shared by two snapshots), an old \
         transformers cache, and one that nothing identifies.\n",
        dir.display()
    );
    println!("Migrate it with the wizard:");
    println!("  {:<22} # the install directory", commands[0]);
    println!(
        "  {:<22} # detect and record the setup, see what will happen",
        commands[1]
    );
    println!(
        "  {:<22} # run the next step; repeat. Manual steps: ema migrate done STEP --note \"what was done\"",
        commands[2]
    );
    println!("  {:<22} # where you are", commands[3]);
    println!(
        "  {:<22} # or walk the same wizard in the console: press 5 (Enter runs a step, m confirms one)",
        commands[4]
    );
    println!(
        "Everything is undone with `ema rollback --backup-dir <the backup the wizard names> --verify-rollback`."
    );
    Ok(exit::OK)
}
