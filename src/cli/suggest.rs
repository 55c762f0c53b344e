//! `ema suggest MODEL [--require KEY=VALUE]… [--queue] [--json]`: what to use instead of a model, ranked and
//! explained (the engine's fallback call), and optionally the requested model's download queued and started.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::engine::Engine;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::events::Availability;
use crate::engine::fallback::{self, Face, Offer, Report, Request, Requirements, UsageHints};
use crate::engine::store::RepoId;

/// `ema suggest`.
#[derive(Debug, Args)]
#[command(
    after_help = "Requirements: quality=high|medium|low, max_size_gb=N, task=PIPELINE_TAG, library=NAME.\n\
Exit codes: 0 at least one real model qualifies, 5 none does (the mock, when enabled, is printed but flagged), \
2 bad input (unknown requirement, bad rule, queueing disabled), 4 --queue while HF_HUB_OFFLINE is set."
)]
pub struct SuggestArgs {
    /// The requested repo id, e.g. `org/name`.
    pub model: String,
    /// A requirement of the substitute, KEY=VALUE (repeatable).
    #[arg(long = "require", value_name = "KEY=VALUE")]
    pub require: Vec<String>,
    /// Also queue the requested model's download and start it in the background (fallback.queue_requests_enabled).
    #[arg(long)]
    pub queue: bool,
    /// Models directory (default: storage.models_directory of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

pub fn run(a: SuggestArgs, ctx: &Ctx) -> Result<i32> {
    let repo = RepoId::parse(a.model.trim())?;
    let requirements = Requirements::from_pairs(&a.require)?;
    let mut cfg = ctx.load_config()?.config;
    if let Some(d) = &a.models_dir {
        cfg.storage.models_directory = d.clone();
    }
    let models_dir = cfg.storage.models_directory.clone();
    let engine = Engine::new(cfg, HubEnv::from_env())?;
    if a.queue {
        // Refuse before doing anything when queueing cannot work.
        if !engine.config().fallback.queue_requests_enabled {
            return Err(fallback::enqueue(engine.config(), engine.store(), &repo).unwrap_err());
        }
        if engine.hub_env().offline {
            return Err(EmaError::Hub(format!(
                "cannot queue {repo}'s download: HF_HUB_OFFLINE is set; unset it (or run `ema download {repo}` \
                 when the hub is reachable)"
            )));
        }
    }
    let rt = super::download::runtime()?;
    // The request, the offers and the mock are usage analytics (when recording is on); flushed before exiting.
    let report = rt.block_on(async {
        engine.start_analytics();
        let r = engine
            .suggest(&Request {
                model_id: repo.clone(),
                requirements,
                face: Face::Cli,
                usage: UsageHints::default(),
            })
            .await;
        engine
            .stop_analytics(std::time::Duration::from_secs(2))
            .await;
        r
    })?;
    let queued = if a.queue && report.requested_status != Availability::Available {
        fallback::enqueue(engine.config(), engine.store(), &repo)?;
        let exe = std::env::current_exe().map_err(|e| {
            EmaError::Other(format!(
                "cannot find the ema binary to start the download: {e}"
            ))
        })?;
        let mut args: Vec<OsString> = Vec::new();
        if let Some(c) = &ctx.config_flag {
            args.extend([OsString::from("--config"), c.clone().into_os_string()]);
        }
        args.extend([
            OsString::from("download"),
            OsString::from(repo.as_str()),
            OsString::from("--models-dir"),
            models_dir.into_os_string(),
        ]);
        Some(fallback::worker::start(&exe, &args, engine.store(), &repo)?)
    } else {
        None
    };
    if ctx.out.json {
        let mut v = serde_json::to_value(&report)
            .map_err(|e| EmaError::Other(format!("cannot serialize the report: {e}")))?;
        v["qualifies"] = serde_json::json!(report.qualifies());
        v["queued"] = serde_json::json!(queued);
        ctx.out.json(&v);
    } else {
        print_human(&report);
        if a.queue {
            match &queued {
                Some(w) => println!(
                    "\nqueued {repo}: downloading in the background (pid {}). Follow it with `ema downloads list` \
                     or `ema status`; log: {}",
                    w.pid,
                    w.log.display()
                ),
                None => println!("\n{repo} is already available: nothing to queue."),
            }
        }
    }
    Ok(if report.qualifies() {
        exit::OK
    } else {
        exit::NOT_FOUND
    })
}

fn offer_lines(i: usize, o: &Offer) {
    println!(
        "{:>2}. {}  score {:.2}  ({})  {}",
        i + 1,
        o.model_id,
        o.score,
        match o.via {
            fallback::Via::Rule => "operator rule",
            fallback::Via::Scored => "scored",
        },
        o.path.display()
    );
    for t in &o.reasons {
        println!(
            "      {:<12} {:.2} × {:.2} = {:.3}  {}",
            t.term, t.weight, t.value, t.contribution, t.detail
        );
    }
}

fn print_human(r: &Report) {
    println!(
        "{}: {} · facts from {}",
        r.requested,
        r.requested_status.as_str(),
        r.facts_from.describe()
    );
    if !r.unknown.is_empty() {
        println!(
            "unknown about it: {} (those terms score 0)",
            r.unknown.join(", ")
        );
    }
    let req = serde_json::to_value(&r.requirements).unwrap_or_default();
    if let Some(m) = req.as_object().filter(|m| !m.is_empty()) {
        let parts: Vec<String> = m
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map(str::to_string).unwrap_or(v.to_string())
                )
            })
            .collect();
        println!("requirements: {}", parts.join(", "));
    }
    println!(
        "threshold {:.2} · {}",
        r.threshold,
        if r.scoring {
            "scoring on"
        } else {
            "scoring off (fallback.intelligent_fallback_enabled / features.intelligent_fallback): rules only"
        }
    );
    println!();
    if r.suggestions.is_empty() {
        println!("No real model qualifies.");
    } else {
        println!("Suggestions (best first):");
        for (i, o) in r.suggestions.iter().enumerate() {
            offer_lines(i, o);
        }
    }
    if !r.below_threshold.is_empty() {
        println!("\nBelow the threshold (not suggested):");
        for o in &r.below_threshold {
            println!("    {}  score {:.2}", o.model_id, o.score);
        }
    }
    if !r.refused.is_empty() {
        println!("\nNot offered:");
        for x in &r.refused {
            println!("    {} — {}", x.model_id, x.reason);
        }
    }
    if r.task_mismatches > 0 {
        println!(
            "\n{} model(s) of another task left out (a task mismatch is never suggested).",
            r.task_mismatches
        );
    }
    if let Some(m) = &r.mock {
        println!(
            "\nMOCK (not a real model, no files): {} — {}",
            m.model_id, m.reason
        );
    }
}
