//! `ema start` (alias `ema serve`): the engine and the REST + WebSocket API, metrics and the Hub mirror on one
//! port (or the legacy and enhanced sets on two), until SIGINT or SIGTERM. A daemon as systemd expects one
//! (`cli::daemon`): `READY=1` once it listens and `STOPPING=1` on the way out (`$NOTIFY_SOCKET`), the
//! configuration reloaded on SIGHUP, downloads a stop interrupted resumed at the next start.

use std::io::Write;
use std::net::IpAddr;

use crate::engine::Engine;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::events::Severity;
use crate::server::notify::Notifier;
use crate::server::start::{ApiServer, StartOptions, check_exposure};

use super::{Ctx, daemon};

/// The environment variable that gives the API token (wins over `api.token`).
pub const TOKEN_ENV: &str = "EMA_API_TOKEN";

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Address to listen on (default: api.host, 127.0.0.1). Any other than loopback needs api.token or
    /// EMA_API_TOKEN.
    #[arg(long)]
    pub host: Option<String>,
    /// Port (default: api.port, 8000; 0 picks a free one, printed).
    #[arg(long)]
    pub port: Option<u16>,
    /// Serve the legacy endpoints on this port (with --enhanced-port: the guide's side-by-side path).
    #[arg(long, requires = "enhanced_port", value_name = "PORT")]
    pub legacy_port: Option<u16>,
    /// Serve the enhanced endpoints, the WebSocket and the Hub mirror on this port.
    #[arg(long, requires = "legacy_port", value_name = "PORT")]
    pub enhanced_port: Option<u16>,
    /// The store to serve (default: the configured models directory).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<std::path::PathBuf>,
}

fn parse_host(host: &str) -> Result<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    host.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| {
            EmaError::Config(format!(
                "--host / api.host {host:?} is not an IP address; use 127.0.0.1 (this machine only) or, with a \
                 token, 0.0.0.0 (every interface)"
            ))
        })
}

/// Whole-download retries of the jobs that continue interrupted downloads at start.
const RESUME_RETRIES: u32 = 3;

pub fn run(args: StartArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let config_path = loaded.path.clone();
    let mut cfg = loaded.config;
    if let Some(d) = args.models_dir {
        cfg.storage.models_directory = d;
    }
    let host = parse_host(args.host.as_deref().unwrap_or(&cfg.api.host))?;
    let env_token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let token = env_token
        .clone()
        .or_else(|| cfg.api.token.clone().filter(|t| !t.is_empty()));
    check_exposure(host, token.as_deref())?;
    let opts = StartOptions {
        host,
        port: args.port.unwrap_or(cfg.api.port),
        split: args.legacy_port.zip(args.enhanced_port),
        token,
        allowed_hosts: cfg.api.allowed_hosts.clone(),
        allowed_origins: cfg.api.allowed_origins.clone(),
        legacy_support: cfg.api.legacy_support,
        legacy_only: cfg.api.legacy_endpoints_only,
    };
    let authenticated = opts.token.is_some();
    let models_dir = cfg.storage.models_directory.clone();
    let mut reloader = daemon::Reloader::new(config_path, cfg.clone(), env_token);
    let engine = Engine::new(cfg, HubEnv::from_env())?;
    let notifier = Notifier::from_env();
    let rt = super::download::runtime()?;
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let signal_err =
            |e: std::io::Error| EmaError::Other(format!("cannot handle signals: {e}"));
        let mut hup = signal(SignalKind::hangup()).map_err(signal_err)?;
        let mut term = signal(SignalKind::terminate()).map_err(signal_err)?;
        let mut int = signal(SignalKind::interrupt()).map_err(signal_err)?;
        let event_log = daemon::spawn_event_log(engine.bus());
        // Usage analytics: downloads, requests and alerts handled by the server are recorded (when enabled).
        let recorder = engine.clone();
        recorder.start_analytics();
        let server = ApiServer::start(engine, opts).await?;
        if ctx.out.json {
            ctx.out.json_line(&serde_json::json!({
                "listening": server.listening(),
                "models_directory": models_dir,
                "token_required": authenticated,
            }));
        } else {
            let mut text = String::new();
            for l in server.listening() {
                let what = match l.serves {
                    "legacy" => "legacy API",
                    "enhanced" => "enhanced API, WebSocket, metrics, Hub mirror",
                    _ => "API, WebSocket, metrics, Hub mirror",
                };
                text.push_str(&format!("Listening on {} ({what})\n", l.url));
            }
            text.push_str(&format!(
                "Models directory: {}\nAuthentication: {}\nPress Ctrl-C to stop.\n",
                models_dir.display(),
                if authenticated {
                    "bearer token required (admin/health and /metrics are open)"
                } else {
                    "none (loopback only)"
                }
            ));
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        for (model, r) in server.resume_persisted(RESUME_RETRIES) {
            match r {
                Ok(job) => daemon::log(
                    Severity::Info,
                    &format!("resuming the interrupted download of {model} ({job})"),
                ),
                Err(e) => daemon::log(
                    Severity::Warning,
                    &format!("cannot resume the download of {model}: {e}"),
                ),
            }
        }
        let urls: Vec<String> = server.listening().iter().map(|l| l.url.clone()).collect();
        let status = format!("listening on {}", urls.join(", "));
        if let Err(e) = notifier.ready(&status) {
            daemon::log(Severity::Warning, &format!("cannot notify systemd: {e}"));
        }
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let _ = notifier.reloading();
                    for (level, line) in reloader.reload(&server) {
                        daemon::log(level, &line);
                    }
                    let _ = notifier.ready(&status);
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        let _ = notifier.stopping();
        let running = server.active_jobs();
        if running > 0 {
            daemon::log(
                Severity::Info,
                &format!(
                    "stopping: {running} download(s) interrupted; their progress is kept and the next start \
                     resumes them"
                ),
            );
        } else {
            daemon::log(Severity::Info, "stopping the server");
        }
        server.shutdown().await;
        recorder
            .stop_analytics(std::time::Duration::from_secs(2))
            .await;
        event_log.abort();
        Ok(exit::OK)
    })
}
