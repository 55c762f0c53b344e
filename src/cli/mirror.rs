//! `ema mirror`: serve the local store over the Hugging Face Hub protocol so other machines download from it.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::engine::error::{EmaError, Result, exit};
use crate::server::faults::FaultPlan;
use crate::server::mirror::Mirror;
use crate::server::options::MirrorOptions;

use super::Ctx;

/// Default port of `ema mirror` (the REST API uses 8000).
pub const DEFAULT_PORT: u16 = 8090;

#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address to listen on. Only loopback addresses unless --allow-remote is given.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The store to serve (default: the configured models directory).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Allow a non-loopback --host: everything in the store becomes downloadable by anyone who can reach it.
    #[arg(long)]
    pub allow_remote: bool,
    /// Benchmark aid: cap each connection at BYTES per second (simulates a CDN with a per-connection limit).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub throttle_per_connection: Option<u64>,
    /// Test aid: entries per page of tree listings.
    #[arg(long, hide = true, value_name = "N")]
    pub tree_page_size: Option<usize>,
}

fn parse_host(host: &str) -> Result<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| {
            EmaError::Config(format!(
                "--host {host:?} is not an IP address; use e.g. 127.0.0.1 (this machine only) or, with \
                 --allow-remote, 0.0.0.0 (every interface)"
            ))
        })
}

pub fn run(args: MirrorArgs, ctx: &Ctx) -> Result<i32> {
    let ip = parse_host(&args.host)?;
    if !ip.is_loopback() {
        if !args.allow_remote {
            return Err(EmaError::Config(format!(
                "refusing to serve on {ip}: it is not a loopback address, so every model in the store would be \
                 downloadable by anyone who can reach this machine, without authentication; pass --allow-remote \
                 if that is what you want (behind a firewall or on a trusted network)"
            )));
        }
        ctx.out.warn(&format!(
            "serving on {ip} without authentication: anyone who can reach this machine can download every model \
             in the store"
        ));
    }
    let root = match args.models_dir {
        Some(d) => d,
        None => ctx.load_config()?.config.storage.models_directory,
    };
    if !root.is_dir() {
        return Err(EmaError::NotFound(format!(
            "the models directory {} does not exist; download a model first (`ema download REPO`) or pass \
             --models-dir",
            root.display()
        )));
    }
    let mut opts = MirrorOptions::default();
    if let Some(n) = args.tree_page_size {
        opts.tree_page_size = n.max(1);
    }
    if let Some(cap) = args.throttle_per_connection {
        let plan = FaultPlan::new();
        plan.set_connection_cap(Some(cap));
        opts.faults = Some(plan);
    }
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let addr = SocketAddr::new(ip, args.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            EmaError::Config(format!(
                "cannot listen on {addr}: {e}; choose another --port (0 picks a free one)"
            ))
        })?;
        let mirror = Mirror::load(&root, opts).await?;
        let handle = mirror.serve(listener)?;
        let endpoint = handle.url();
        let models = mirror.models();
        if ctx.out.json {
            ctx.out.json_line(&serde_json::json!({
                "address": handle.addr.to_string(),
                "endpoint": endpoint,
                "models_directory": root,
                "models": models,
                "skipped": mirror.skipped(),
            }));
        } else {
            // Written in one go, ignoring a closed stdout: the mirror keeps serving either way.
            let mut text = format!(
                "Serving {} model(s) from {} on {endpoint}\n",
                models.len(),
                root.display()
            );
            for m in &models {
                text.push_str(&format!(
                    "  {:<40} {:>4} files {:>10}  commit {}\n",
                    m.repo_id,
                    m.files,
                    human_size(m.total_size),
                    &m.commit[..m.commit.len().min(12)]
                ));
            }
            if ip.is_unspecified() {
                text.push_str(&format!(
                    "Point clients at this machine's address (not {ip}):\n"
                ));
            } else {
                text.push_str("Point clients at it with:\n");
            }
            text.push_str(&format!("HF_ENDPOINT={endpoint}\nPress Ctrl-C to stop.\n"));
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        for s in mirror.skipped() {
            ctx.out
                .warn(&format!("not serving {}: {}", s.repo_id, s.reason));
        }
        if models.is_empty() {
            ctx.out.warn(&format!(
                "{} holds no complete model; nothing to download from this mirror yet",
                root.display()
            ));
        }
        wait_for_stop().await;
        eprintln!("stopping the mirror");
        handle.shutdown().await;
        Ok(exit::OK)
    })
}

fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Until SIGINT or SIGTERM.
pub(crate) async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
