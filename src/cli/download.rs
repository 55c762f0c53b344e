//! `ema download`, `ema status` and `ema downloads …`: the headless face of the download engine.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Ctx;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::download::disk::human_bytes;
use crate::engine::download::util::pid_alive;
use crate::engine::download::{DownloadOptions, DownloadReport};
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::events::{Event, Severity};
use crate::engine::store::RepoId;
use crate::engine::{Engine, inventory::ModelStatus};

/// `ema download`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 available, 3 integrity (a file kept failing its hash), 4 hub unreachable, \
    unauthorized or HF_HUB_OFFLINE without a complete local copy, 5 repo, revision or file not found, 6 not enough \
    disk space, 130 interrupted (the partials are kept: the same command resumes) or cancelled.\n\
    Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (sent only to the endpoint's own host), \
    HF_HUB_OFFLINE=1."
)]
pub struct DownloadArgs {
    /// Repo id, e.g. `org/name`.
    pub repo: String,
    /// Branch, tag or commit sha (default: the repo's default branch).
    #[arg(long)]
    pub revision: Option<String>,
    /// Only files matching this glob (repeatable), e.g. `*.safetensors`.
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files matching this glob (repeatable), e.g. `onnx/*`.
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Models directory (default: storage.models_directory of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

/// `ema status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Per-file detail.
    #[arg(long)]
    pub detailed: bool,
    /// Models directory (default: storage.models_directory of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

/// `ema downloads …`.
#[derive(Debug, Args)]
pub struct DownloadsArgs {
    #[command(subcommand)]
    pub command: DownloadsCommand,
    /// Models directory (default: storage.models_directory of the configuration).
    #[arg(long, value_name = "DIR", global = true)]
    pub models_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DownloadsCommand {
    /// List queued, running, paused and failed downloads.
    List,
    /// Pause a download (running here or in another ema process); partial data is kept.
    Pause { repo: String },
    /// Resume a paused download; a download no process runs any more (after a crash) is continued here. Without
    /// REPO: every unfinished download.
    Resume { repo: Option<String> },
    /// Cancel a download and delete its partial data.
    Cancel { repo: String },
}

fn engine(ctx: &Ctx, models_dir: Option<PathBuf>) -> Result<Engine> {
    let mut cfg = ctx.load_config()?.config;
    if let Some(d) = models_dir {
        cfg.storage.models_directory = d;
    }
    Engine::new(cfg, HubEnv::from_env())
}

/// How long a command waits at its end for the analytics recorder to write what it recorded.
pub(super) const ANALYTICS_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))
}

/// Print events while `fut` runs: NDJSON on stdout with `--json`, else a progress bar (terminal) or log lines on
/// stderr.
pub(super) async fn with_event_printer<T>(
    ctx: &Ctx,
    engine: &Engine,
    fut: impl std::future::Future<Output = T>,
) -> T {
    let mut rx = engine.bus().subscribe();
    let json = ctx.out.json;
    let bar = (!json && ctx.out.progress).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    });
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let printer = {
        let bar = bar.clone();
        async move {
            use tokio::sync::broadcast::error::{RecvError, TryRecvError};
            let mut draining = false;
            loop {
                let ev = if draining {
                    // The work is over and every event it emitted is already on the bus: print them and stop.
                    match rx.try_recv() {
                        Ok(ev) => ev,
                        Err(TryRecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    }
                } else {
                    tokio::select! {
                        biased;
                        r = rx.recv() => match r {
                            Ok(ev) => ev,
                            Err(RecvError::Lagged(_)) => continue,
                            Err(_) => return,
                        },
                        _ = &mut done_rx => {
                            draining = true;
                            continue;
                        }
                    }
                };
                if json {
                    if let Ok(s) = serde_json::to_string(&ev) {
                        out_line(&s);
                    }
                    continue;
                }
                let line = match &ev {
                    Event::ModelProgress {
                        model_id,
                        bytes_done,
                        bytes_total,
                        ..
                    } => {
                        if let Some(b) = &bar {
                            b.set_length(*bytes_total);
                            b.set_position(*bytes_done);
                            b.set_message(model_id.clone());
                        }
                        None
                    }
                    Event::Retry {
                        path,
                        attempt,
                        delay_ms,
                        reason,
                        ..
                    } => Some(format!(
                        "retry {attempt} of {} in {:.1} s: {reason}",
                        if path.is_empty() { "the listing" } else { path },
                        *delay_ms as f64 / 1000.0
                    )),
                    Event::Log { level, message } => Some(match level {
                        Severity::Info => message.clone(),
                        _ => format!("warning: {message}"),
                    }),
                    Event::DownloadPaused { model_id } => Some(format!("{model_id}: paused")),
                    Event::DownloadResumed { model_id } => Some(format!("{model_id}: resumed")),
                    Event::DownloadCancelled { model_id } => Some(format!("{model_id}: cancelled")),
                    Event::DownloadQueued {
                        model_id,
                        files,
                        total_bytes,
                        ..
                    } => Some(format!(
                        "{model_id}: {files} files, {}",
                        human_bytes(*total_bytes)
                    )),
                    _ => None,
                };
                if let Some(l) = line {
                    match &bar {
                        Some(b) => b.println(l),
                        None => eprintln!("{l}"),
                    }
                }
            }
        }
    };
    let task = tokio::spawn(printer);
    let out = fut.await;
    // Let the printer drain what is already on the bus (then it ends by itself).
    let _ = done_tx.send(());
    let _ = task.await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    out
}

/// One line on stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out_line(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

pub(super) fn print_report(ctx: &Ctx, r: &DownloadReport) {
    if ctx.out.json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), "download_result".into());
        }
        out_line(&v.to_string());
    } else if !r.completed {
        println!("{}: cancelled", r.model_id);
    } else if r.files_already_present == r.files {
        print_available(
            r,
            &format!(
                "nothing to fetch{}",
                if r.offline {
                    "; offline: not checked against the hub for a newer commit"
                } else {
                    ""
                }
            ),
        );
    } else {
        let rate = if r.seconds > 0.0 {
            r.bytes_fetched as f64 / r.seconds
        } else {
            0.0
        };
        print_available(
            r,
            &format!(
                "fetched {} in {:.1} s, {}/s; every file verified",
                human_bytes(r.bytes_fetched),
                r.seconds,
                human_bytes(rate as u64)
            ),
        );
    }
}

/// `<model> is available at <path> (commit <short>, <n> files, <size>; <how>)`.
fn print_available(r: &DownloadReport, how: &str) {
    println!(
        "{} is available at {} (commit {}, {} files, {}; {how})",
        r.model_id,
        r.path.display(),
        short(&r.commit),
        r.files,
        human_bytes(r.total_bytes),
    );
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

/// Report an error for a streaming command: one NDJSON line with `--json`, and the message on stderr.
pub(super) fn stream_error(ctx: &Ctx, e: &EmaError) -> i32 {
    if ctx.out.json {
        out_line(
            &serde_json::json!({
                "type": "error",
                "error": { "kind": e.kind(), "message": e.to_string(), "exit_code": e.exit_code() }
            })
            .to_string(),
        );
    }
    let plain = super::output::Output {
        json: false,
        ..ctx.out
    };
    plain.error(e);
    e.exit_code()
}

/// `ema download`.
pub fn download(args: DownloadArgs, ctx: &Ctx) -> Result<i32> {
    let repo = RepoId::parse(&args.repo)?;
    let engine = engine(ctx, args.models_dir)?;
    let rt = runtime()?;
    let opts = DownloadOptions {
        revision: args.revision,
        include: args.include,
        exclude: args.exclude,
    };
    let res = rt.block_on(async {
        engine.start_analytics();
        let dl = engine.download(&repo, opts);
        tokio::pin!(dl);
        let e2 = engine.clone();
        let r2 = repo.clone();
        let r = with_event_printer(ctx, &engine, async move {
            tokio::select! {
                r = &mut dl => r.map(Some),
                _ = tokio::signal::ctrl_c() => {
                    // Ctrl-C: stop at the current byte, keep the partials, leave it resumable.
                    let _ = e2.pause(&r2);
                    Ok(None)
                }
            }
        })
        .await;
        engine.stop_analytics(ANALYTICS_FLUSH).await;
        r
    });
    // The hashing threads end as soon as their transfer is gone; do not wait on anything else.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match res {
        Ok(Some(r)) => {
            print_report(ctx, &r);
            Ok(if r.completed {
                exit::OK
            } else {
                exit::INTERRUPTED
            })
        }
        Ok(None) => {
            ctx.out.warn(&format!(
                "interrupted; the partial data is kept — run `ema download {repo}` or `ema downloads resume {repo}` \
                 to continue"
            ));
            Ok(exit::INTERRUPTED)
        }
        Err(e) => Ok(stream_error(ctx, &e)),
    }
}

/// `ema status`.
pub fn status(args: StatusArgs, ctx: &Ctx) -> Result<i32> {
    let engine = engine(ctx, args.models_dir)?;
    let models = engine.model_statuses(args.detailed)?;
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "models_directory": engine.store().root(),
            "models": models,
        }));
        return Ok(exit::OK);
    }
    if models.is_empty() {
        println!(
            "no models in {}; download one with `ema download ORG/NAME`",
            engine.store().root().display()
        );
        return Ok(exit::OK);
    }
    println!(
        "{:<40} {:<12} {:>10} {:>7} {:<12} {:<10}",
        "MODEL", "STATUS", "SIZE", "FILES", "COMMIT", "VERIFIED"
    );
    for m in &models {
        print_status_row(m, args.detailed);
    }
    Ok(exit::OK)
}

fn print_status_row(m: &ModelStatus, detailed: bool) {
    let verification = m
        .verification
        .map(|v| {
            serde_json::to_value(v)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .unwrap_or_else(|| "-".to_string());
    println!(
        "{:<40} {:<12} {:>10} {:>7} {:<12} {:<10}",
        m.model_id,
        m.availability.as_str(),
        human_bytes(m.size_bytes),
        format!("{}/{}", m.files_present, m.files_total),
        m.commit.as_deref().map(short).unwrap_or("-"),
        verification
    );
    if let Some(d) = &m.download {
        let pct = if d.bytes_total > 0 {
            d.bytes_done as f64 * 100.0 / d.bytes_total as f64
        } else {
            0.0
        };
        println!(
            "    download: {}, {:.1} % of {}{}",
            format!("{:?}", d.state).to_lowercase(),
            pct,
            human_bytes(d.bytes_total),
            d.error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        );
    }
    if detailed {
        if let Some(lv) = &m.last_verified_at {
            println!("    last verified: {lv}");
        }
        for f in m.files.iter().flatten() {
            let state = if !f.present {
                "missing"
            } else if !f.size_ok {
                "wrong size"
            } else if f.modified_since_verified {
                "modified"
            } else if f.verified {
                "verified"
            } else {
                "unverified"
            };
            println!("    {:<10} {:>10}  {}", state, human_bytes(f.size), f.path);
        }
    }
}

/// `ema downloads …`.
pub fn downloads(args: DownloadsArgs, ctx: &Ctx) -> Result<i32> {
    let engine = engine(ctx, args.models_dir)?;
    match args.command {
        DownloadsCommand::List => {
            let list = engine.downloads();
            if ctx.out.json {
                ctx.out.json(&serde_json::json!({ "downloads": list }));
            } else if list.is_empty() {
                println!("no downloads queued, running, paused or failed");
            } else {
                println!(
                    "{:<40} {:<12} {:<8} {:>10} {:>10} {:>7} {:>12} {:>6}  NOTE",
                    "MODEL", "STATE", "REQUEST", "DONE", "TOTAL", "FILES", "RATE", "ETA"
                );
                for d in list {
                    println!(
                        "{:<40} {:<12} {:<8} {:>10} {:>10} {:>7} {:>12} {:>6}  {}",
                        d.model_id,
                        format!("{:?}", d.state).to_lowercase(),
                        format!("{:?}", d.control).to_lowercase(),
                        human_bytes(d.bytes_done),
                        human_bytes(d.bytes_total),
                        if d.files_total > 0 {
                            format!("{}/{}", d.files_done, d.files_total)
                        } else {
                            "-".into()
                        },
                        if d.rate_bytes_per_sec > 0.0 {
                            format!("{}/s", human_bytes(d.rate_bytes_per_sec as u64))
                        } else {
                            "-".into()
                        },
                        d.eta_seconds
                            .map_or_else(|| "-".into(), |e| format!("{}s", e.ceil() as u64)),
                        match (d.pid, &d.error) {
                            (_, Some(e)) => e.clone(),
                            (Some(p), None) => format!("process {p}"),
                            (None, None) =>
                                "not running: `ema downloads resume` continues it".into(),
                        }
                    );
                }
            }
            Ok(exit::OK)
        }
        DownloadsCommand::Pause { repo } => {
            let repo = RepoId::parse(&repo)?;
            engine.pause(&repo)?;
            done_msg(ctx, "pause", &repo, "paused (the partial data is kept)");
            Ok(exit::OK)
        }
        DownloadsCommand::Cancel { repo } => {
            let repo = RepoId::parse(&repo)?;
            engine.cancel(&repo)?;
            done_msg(
                ctx,
                "cancel",
                &repo,
                "cancelled (its partial data is deleted)",
            );
            Ok(exit::OK)
        }
        DownloadsCommand::Resume { repo } => resume(engine, repo, ctx),
    }
}

fn done_msg(ctx: &Ctx, action: &str, repo: &RepoId, human: &str) {
    if ctx.out.json {
        ctx.out.json(
            &serde_json::json!({ "action": action, "model_id": repo.to_string(), "ok": true }),
        );
    } else {
        println!("{repo}: {human}");
    }
}

fn resume(engine: Engine, repo: Option<String>, ctx: &Ctx) -> Result<i32> {
    let queue = engine.download_manager().queue().clone();
    let rt = runtime()?;
    match repo {
        Some(r) => {
            let repo = RepoId::parse(&r)?;
            let entry = queue.get(&repo).ok_or_else(|| {
                EmaError::NotFound(format!(
                    "no download of {repo} is queued, paused or failed; start one with `ema download {repo}`"
                ))
            })?;
            if entry
                .pid
                .is_some_and(|p| p != std::process::id() && pid_alive(p))
            {
                engine.resume(&repo)?;
                done_msg(
                    ctx,
                    "resume",
                    &repo,
                    "resumed in the process downloading it",
                );
                return Ok(exit::OK);
            }
            // Nobody runs it: continue it here.
            queue.modify(&repo, |e| e.control = crate::engine::download::Control::Run)?;
            let opts = entry.options();
            let res = rt.block_on(async {
                engine.start_analytics();
                let r = with_event_printer(ctx, &engine, engine.download(&repo, opts)).await;
                engine.stop_analytics(ANALYTICS_FLUSH).await;
                r
            });
            match res {
                Ok(r) => {
                    print_report(ctx, &r);
                    Ok(exit::OK)
                }
                Err(e) => Ok(stream_error(ctx, &e)),
            }
        }
        None => {
            let results = rt.block_on(async {
                engine.start_analytics();
                let r = with_event_printer(ctx, &engine, engine.resume_unfinished()).await;
                engine.stop_analytics(ANALYTICS_FLUSH).await;
                r
            });
            if results.is_empty() && !ctx.out.json {
                println!("nothing to resume");
            }
            let mut code = exit::OK;
            for (_, r) in results {
                match r {
                    Ok(rep) => print_report(ctx, &rep),
                    Err(e) => code = stream_error(ctx, &e),
                }
            }
            Ok(code)
        }
    }
}
