//! `ema analyze-performance`, `ema optimize` and `ema optimize-config`: the facts read and the recommendations made
//! from them (with the evidence and the exact change), kept so `optimize` applies what was shown; applied to the
//! configuration file in force (backup first, atomic, every change printed, `--dry-run` only shows) and a running
//! server told (SIGHUP) or the restart named.

use clap::Args;

use crate::engine::advice::apply::{self, Outcome, SavedSet, Status};
use crate::engine::advice::server::{self, ServerReport};
use crate::engine::advice::{self, Analysis, Inputs, Recommendation, Takes, facts};
use crate::engine::config::hub_env::HubEnv;
use crate::engine::config::{Config, LoadedConfig};
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::store::now_rfc3339;

use super::Ctx;

#[derive(Debug, Args)]
#[command(
    after_help = "Reads <cache>/benchmarks/baseline.json (ema benchmark --save-baseline), the usage analytics of the \
last 30 days and this machine's facts. With --generate-recommendations the set is saved to \
<cache>/advice/recommendations.json for `ema optimize --apply-recommendations`. Exit codes: 0 done, 2 bad input (a \
damaged baseline, an invalid configuration)."
)]
pub struct AnalyzeArgs {
    /// Make recommendations (each with its evidence and the exact change) and save them for `ema optimize`.
    #[arg(long)]
    pub generate_recommendations: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Applies the set `ema analyze-performance --generate-recommendations` saved. Without \
--apply-recommendations (or with --dry-run) it only shows the changes. A change already in force is left alone, a key \
changed since the analysis is not overwritten. Exit codes: 0 done, 2 bad input (no saved set, no configuration file, \
an invalid one)."
)]
pub struct OptimizeArgs {
    /// Write the saved recommendations into the configuration file in force (backup first).
    #[arg(long)]
    pub apply_recommendations: bool,
    /// Say how to restart a running server for changes that need it (ema does not restart a server it did not
    /// start).
    #[arg(long)]
    pub restart_if_needed: bool,
    /// Show the changes; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Analyzes now (as analyze-performance --generate-recommendations) and applies the result to the \
configuration file in force. Exit codes: 0 done, 2 bad input."
)]
pub struct OptimizeConfigArgs {
    /// Tune for download and verification performance (the one goal there is).
    #[arg(long, required = true)]
    pub for_performance: bool,
    /// Where the system facts come from: read on this machine.
    #[arg(long, value_name = "SOURCE", default_value = "auto-detect", value_parser = ["auto-detect"])]
    pub system_specs: String,
    /// Show the changes; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Say how to restart a running server for changes that need it.
    #[arg(long)]
    pub restart_if_needed: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))
}

/// Analyze, and keep the set for `optimize`.
fn analyze_and_save(
    loaded: &LoadedConfig,
    rt: &tokio::runtime::Runtime,
) -> Result<(Inputs, Analysis, std::path::PathBuf)> {
    let inputs = rt.block_on(facts::gather(&loaded.config, &HubEnv::from_env()))?;
    let analysis = advice::analyze(&inputs);
    let path = apply::set_path(&loaded.config.storage.cache_dir());
    apply::save_set(
        &path,
        &SavedSet {
            format: apply::SET_FORMAT.into(),
            generated_at: now_rfc3339(),
            config_file: loaded.path.clone(),
            recommendations: analysis.recommendations.clone(),
        },
    )?;
    Ok((inputs, analysis, path))
}

pub fn analyze_performance(a: AnalyzeArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let rt = runtime()?;
    let (inputs, analysis, saved) = if a.generate_recommendations {
        let (i, an, p) = analyze_and_save(&loaded, &rt)?;
        (i, an, Some(p))
    } else {
        let i = rt.block_on(facts::gather(&loaded.config, &HubEnv::from_env()))?;
        let an = advice::analyze(&i);
        (i, an, None)
    };
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "config_file": loaded.path,
            "facts": facts_json(&inputs),
            "recommendations": a.generate_recommendations.then_some(&analysis.recommendations),
            "notes": a.generate_recommendations.then_some(&analysis.notes),
            "saved_to": saved,
        }));
        return Ok(exit::OK);
    }
    print_facts(&loaded, &inputs);
    if !a.generate_recommendations {
        println!(
            "\n{} recommendation(s) follow from these facts: see them with --generate-recommendations",
            analysis.recommendations.len()
        );
        return Ok(exit::OK);
    }
    println!("\nrecommendations ({}):", analysis.recommendations.len());
    for r in &analysis.recommendations {
        print_recommendation(r);
    }
    if !analysis.notes.is_empty() {
        println!("\nno change recommended:");
        for n in &analysis.notes {
            println!("  {}: {}", n.rule, n.reason);
        }
    }
    if let Some(p) = saved {
        println!(
            "\nsaved: {}\napply with `ema optimize --apply-recommendations` (`--dry-run` shows the changes first)",
            p.display()
        );
    }
    Ok(exit::OK)
}

fn facts_json(i: &Inputs) -> serde_json::Value {
    serde_json::json!({
        "system": i.system,
        "store": i.store,
        "baseline": i.baseline.as_ref().map(|b| serde_json::json!({
            "saved_at": b.saved_at,
            "figures": b.figures.values().map(|f| serde_json::json!({
                "name": f.name, "median": f.median, "unit": f.unit, "settings": f.settings,
            })).collect::<Vec<_>>(),
        })),
        "downloads": i.downloads,
        "downloads_missing": i.downloads_missing,
    })
}

fn print_facts(loaded: &LoadedConfig, i: &Inputs) {
    let s = &i.system;
    println!(
        "configuration: {}",
        loaded
            .path
            .as_ref()
            .map_or("(none: built-in defaults)".to_string(), |p| p
                .display()
                .to_string())
    );
    println!("facts read:");
    println!("  cores          {}", s.cores);
    println!(
        "  memory         {}",
        s.memory_bytes.map_or("unknown".into(), human_bytes)
    );
    println!(
        "  disk           {} free of {}, {}",
        s.disk_free_bytes.map_or("unknown".into(), human_bytes),
        s.disk_total_bytes.map_or("unknown".into(), human_bytes),
        match (s.disk_rotational, &s.disk_device) {
            (Some(true), d) => format!("rotational ({})", d.as_deref().unwrap_or("?")),
            (Some(false), d) => format!("not rotational ({})", d.as_deref().unwrap_or("?")),
            (None, _) => "type unknown (no block device under the models directory)".into(),
        }
    );
    println!(
        "  hub            {}",
        match s.hub.reachable {
            Some(true) => format!("reachable — {}", s.hub.detail),
            Some(false) => format!("NOT reachable — {}", s.hub.detail),
            None => format!("not checked — {}", s.hub.detail),
        }
    );
    println!(
        "  store          {} in {} file(s) of {} model(s)",
        human_bytes(i.store.bytes),
        i.store.files,
        i.store.models
    );
    match &i.baseline {
        Some(b) => {
            println!("  baseline       saved {}", b.saved_at);
            for f in b.figures.values() {
                println!(
                    "                 {:<36} {:>10.2} {}",
                    f.name, f.median, f.unit
                );
            }
        }
        None => println!("  baseline       none (save one with `ema benchmark --save-baseline`)"),
    }
    match &i.downloads {
        Some(d) => println!(
            "  downloads      {} started, {} completed, {} failed, {} retries, median rate {}",
            d.started,
            d.completed,
            d.failed,
            d.retries,
            d.rate_p50_bytes_per_sec
                .map_or("n/a".into(), |r| format!("{:.1} MB/s", r / 1e6))
        ),
        None => println!(
            "  downloads      no history: {}",
            i.downloads_missing.as_deref().unwrap_or("unknown")
        ),
    }
    let c = &i.config;
    println!(
        "  in force       max_concurrent_downloads {}, connections_per_file {}, parallel_threshold_mb {}, \
         bandwidth_limit_mbps {}, check_interval_hours {}, max_storage_gb {}",
        c.downloads.max_concurrent_downloads,
        c.downloads.connections_per_file,
        c.downloads.parallel_threshold_mb,
        c.downloads.bandwidth_limit_mbps,
        c.health_monitoring.check_interval_hours,
        c.storage.max_storage_gb
    );
}

fn print_recommendation(r: &Recommendation) {
    println!("  [{}] {}", r.id, r.title);
    match r.takes {
        Takes::Manual => println!("      to do: {}", r.change()),
        t => println!(
            "      change: {}   ({})",
            r.change(),
            if t == Takes::Live {
                "applied live on reload"
            } else {
                "a running server needs a restart"
            }
        ),
    }
    for e in &r.evidence {
        println!("      · {e}");
    }
}

/// The configuration file the changes go into, or a clear error.
fn target(loaded: &LoadedConfig) -> Result<std::path::PathBuf> {
    loaded.path.clone().ok_or_else(|| {
        EmaError::Config(
            "no configuration file is in force (built-in defaults), so there is nothing to change; create one with \
             `ema configure --set KEY=VALUE` or name one with --config; nothing was written"
                .into(),
        )
    })
}

pub fn optimize(a: OptimizeArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let file = target(&loaded)?;
    let path = apply::set_path(&loaded.config.storage.cache_dir());
    let set = apply::load_set(&path)?.ok_or_else(|| {
        EmaError::Config(format!(
            "no saved recommendations at {}: run `ema analyze-performance --generate-recommendations` first",
            path.display()
        ))
    })?;
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if set.config_file.as_deref().map(canon) != Some(canon(&file)) {
        return Err(EmaError::Config(format!(
            "the saved recommendations were made for {}, but {} is in force: run `ema analyze-performance \
             --generate-recommendations` again; nothing was written",
            set.config_file
                .as_ref()
                .map_or("the built-in defaults".to_string(), |p| p
                    .display()
                    .to_string()),
            file.display()
        )));
    }
    let dry_run = a.dry_run || !a.apply_recommendations;
    let outcome = apply::apply(&file, &set.recommendations, dry_run)?;
    finish(
        &loaded.config,
        outcome,
        a.restart_if_needed,
        !a.apply_recommendations && !a.dry_run,
        Some(&set.generated_at),
        ctx,
    )
}

pub fn optimize_config(a: OptimizeConfigArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let file = target(&loaded)?;
    let rt = runtime()?;
    let (_, analysis, _) = analyze_and_save(&loaded, &rt)?;
    let outcome = apply::apply(&file, &analysis.recommendations, a.dry_run)?;
    if !ctx.out.json {
        println!(
            "system specs: auto-detected; {} recommendation(s), {} rule(s) without one (`ema analyze-performance \
             --generate-recommendations` says why)",
            analysis.recommendations.len(),
            analysis.notes.len()
        );
    }
    finish(
        &loaded.config,
        outcome,
        a.restart_if_needed,
        false,
        None,
        ctx,
    )
}

fn finish(
    config: &Config,
    outcome: Outcome,
    restart_if_needed: bool,
    show_only: bool,
    generated_at: Option<&str>,
    ctx: &Ctx,
) -> Result<i32> {
    let server: Option<ServerReport> = if outcome.dry_run {
        None
    } else {
        let rt = runtime()?;
        Some(rt.block_on(server::tell(
            config,
            outcome.keys(Takes::Live),
            outcome.keys(Takes::Restart),
            restart_if_needed,
        )))
    };
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "file": outcome.file,
            "dry_run": outcome.dry_run,
            "backup": outcome.backup,
            "changes": outcome.changes,
            "manual": outcome.manual,
            "server": server,
        }));
        return Ok(exit::OK);
    }
    if let Some(g) = generated_at {
        println!("recommendations of {g} for {}", outcome.file.display());
    }
    if outcome.changes.is_empty() && outcome.manual.is_empty() {
        println!("nothing to change: no recommendation");
    }
    for c in &outcome.changes {
        let what = match c.status {
            Status::Applied => "applied ",
            Status::WouldApply => "would apply",
            Status::AlreadyApplied => "already ",
            Status::ChangedSince => "skipped ",
        };
        let tail = match c.status {
            Status::ChangedSince => format!(
                "   (now {}: changed since the analysis; run analyze-performance again)",
                c.before
            ),
            Status::AlreadyApplied => "   (in force)".into(),
            _ => format!(
                "   ({})",
                if c.takes == Takes::Live {
                    "live"
                } else {
                    "restart"
                }
            ),
        };
        println!("  {what:<11} {}: {} → {}{tail}", c.key, c.from, c.to);
    }
    for m in &outcome.manual {
        println!("  to do by hand: {} — {}", m.title, m.change());
    }
    if let Some(b) = &outcome.backup {
        println!("backup: {}", b.display());
    }
    if outcome.dry_run {
        println!(
            "{}nothing was written",
            if show_only {
                "apply these with --apply-recommendations; "
            } else {
                "dry run: "
            }
        );
    }
    for l in server.iter().flat_map(|s| &s.lines) {
        println!("{l}");
    }
    Ok(exit::OK)
}
