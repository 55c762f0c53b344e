//! Integrity and storage commands: generate-metadata, verify-all-models, check-models, health, cleanup,
//! move-models. Handlers only parse, call the engine and print.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::Ctx;
use crate::engine::config::LoadedConfig;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::events::HealthState;
use crate::engine::facade::Engine;
use crate::engine::health::{self, AlertStore, HealthSnapshot};
use crate::engine::hub::HubClient;
use crate::engine::integrity::generate::{self, GenerateAction, GenerateOptions};
use crate::engine::integrity::maintenance::{self, CleanupOptions, MoveOptions};
use crate::engine::integrity::repair::{self, HubMetadataSource, RepairOutcome};
use crate::engine::integrity::verify::{self, ModelHealth, VerifyOptions};
use crate::engine::store::{Store, now_rfc3339};

/// Where `--generate-report` writes, relative to the working directory.
pub const REPORT_PATH: &str = "reports/model_integrity_report.json";

#[derive(Debug, Args)]
pub struct GenerateMetadataArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Rewrite metadata that already exists.
    #[arg(long)]
    pub force_regenerate: bool,
    /// Report a model that fails and continue with the others (default: stop with exit 1).
    #[arg(long)]
    pub ignore_errors: bool,
    /// Do not ask the hub for expected hashes (also implied by HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Write reports/model_integrity_report.json (relative to the working directory).
    #[arg(long)]
    pub generate_report: bool,
    /// Re-download only the corrupted or missing files from the hub (resume engine), then verify again.
    #[arg(long)]
    pub repair_corrupted: bool,
    /// With repair: also delete stray files (refused when storage.shared_storage is on).
    #[arg(long)]
    pub remove_stray_files: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Existence, size and modification time only (no hashing): milliseconds for thousands of models.
    #[arg(long)]
    pub quick: bool,
    /// Repair what the check finds (re-download bad or missing files), then verify again.
    #[arg(long)]
    pub repair_if_needed: bool,
    /// With repair: also delete stray files (refused when storage.shared_storage is on).
    #[arg(long)]
    pub remove_stray_files: bool,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Acknowledge an alert by id (or `all`).
    #[arg(long, value_name = "ID")]
    pub acknowledge: Option<String>,
    /// How many recent alerts to show.
    #[arg(long, default_value_t = 20)]
    pub alerts: usize,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Remove stale partial downloads and temp files in `.ema/` (older than --temp-age-hours and not locked by a
    /// running download).
    #[arg(long)]
    pub remove_temp_files: bool,
    /// Remove log files older than --log-age-days from `.ema/logs` and `<cache>/logs`.
    #[arg(long)]
    pub remove_old_logs: bool,
    /// gzip timestamped configuration backups (`*.bak*`, `*.backup*`) beside the configuration and in
    /// `<cache>/backups`.
    #[arg(long)]
    pub compress_backups: bool,
    /// Only say what would be done.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, default_value_t = 24.0, value_name = "HOURS")]
    pub temp_age_hours: f64,
    #[arg(long, default_value_t = 14.0, value_name = "DAYS")]
    pub log_age_days: f64,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// Current models directory.
    #[arg(long, value_name = "DIR")]
    pub source: PathBuf,
    /// New models directory (created if needed; may be on another filesystem).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// Point `storage.models_directory` of the configuration file in force at the target.
    #[arg(long)]
    pub update_config: bool,
}

fn models_dir(flag: Option<&Path>, loaded: &LoadedConfig) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(|| loaded.config.storage.models_directory.clone())
}

fn open_store(dir: &Path) -> Result<Store> {
    if !dir.is_dir() {
        return Err(EmaError::NotFound(format!(
            "models directory {} does not exist; pass --models-dir or set storage.models_directory",
            dir.display()
        )));
    }
    Ok(Store::new(dir))
}

pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn paint(ctx: &Ctx, state: HealthState) -> String {
    let s = state.as_str();
    if !ctx.out.color {
        return s.to_string();
    }
    let code = match state {
        HealthState::Healthy => "32",
        HealthState::Degraded | HealthState::Unknown => "33",
        _ => "31",
    };
    format!("\x1b[{code}m{s:<10}\x1b[0m")
}

fn print_table(ctx: &Ctx, models: &[ModelHealth]) {
    let w = models
        .iter()
        .map(|m| m.model_id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<w$}  {:<10}  {:>9}  {:>9}  REASON",
        "MODEL", "STATE", "FILES", "SIZE"
    );
    for m in models {
        let state = paint(ctx, m.state);
        let files = if m.files_expected > 0 {
            format!("{}/{}", m.files_ok, m.files_expected)
        } else {
            "-".to_string()
        };
        println!(
            "{:<w$}  {:<10}  {:>9}  {:>9}  {}",
            m.model_id,
            state,
            files,
            human_bytes(m.total_bytes),
            m.reason
        );
    }
}

fn summary_line(models: &[ModelHealth]) -> String {
    let counts = verify::count_states(models);
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    format!(
        "{} model{}: {}",
        models.len(),
        if models.len() == 1 { "" } else { "s" },
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    )
}

#[derive(Serialize)]
struct CheckDocument<'a> {
    generated_at: String,
    ema_version: &'static str,
    models_directory: PathBuf,
    mode: verify::CheckMode,
    all_healthy: bool,
    summary: std::collections::BTreeMap<&'static str, usize>,
    bytes_hashed: u64,
    seconds: f64,
    sha_ni: bool,
    threads: usize,
    #[serde(skip_serializing_if = "<[RepairOutcome]>::is_empty")]
    repairs: &'a [RepairOutcome],
    models: &'a [ModelHealth],
}

fn exit_for(models: &[ModelHealth]) -> i32 {
    if models.iter().all(|m| m.is_healthy()) {
        exit::OK
    } else {
        exit::INTEGRITY
    }
}

pub fn generate_metadata(a: GenerateMetadataArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let dir = models_dir(a.models_dir.as_deref(), &loaded);
    let store = open_store(&dir)?;
    let opts = GenerateOptions {
        force: a.force_regenerate,
        ..Default::default()
    };
    let env = HubEnv::from_env();
    let use_hub = !(a.offline || env.offline);
    let rt = runtime()?;
    let source = if use_hub {
        Some(HubMetadataSource::new(
            HubClient::new(&env, &loaded.config.downloads)?,
            rt.handle().clone(),
        ))
    } else {
        None
    };
    let (outcomes, err) = generate::generate_all(
        &store,
        &opts,
        source.as_deref().map(|s| s as &dyn generate::HubSource),
        a.ignore_errors,
    )?;
    let hub_note = match &source {
        None => "hub not asked (offline)".to_string(),
        Some(s) if s.unreachable() => format!(
            "hub {} unreachable: {}",
            env.endpoint,
            s.last_error().unwrap_or_default()
        ),
        Some(_) => format!("hub {}", env.endpoint),
    };
    let failed = outcomes
        .iter()
        .filter(|o| o.action == GenerateAction::Failed)
        .count();
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "models_directory": dir,
            "hub": hub_note,
            "models": outcomes,
            "failed": failed,
            "stopped_by_error": err.as_ref().map(|e| serde_json::json!({
                "kind": e.kind(), "message": e.to_string(), "exit_code": exit::FAILURE,
            })),
        }));
    } else {
        for o in &outcomes {
            match o.action {
                GenerateAction::Kept => println!(
                    "{}: kept existing metadata (use --force-regenerate to rewrite)",
                    o.model_id
                ),
                GenerateAction::Written => {
                    let how = match o.hashes_from {
                        Some("hub") => "hashes from the hub".to_string(),
                        Some("local_dir_records") => {
                            "hashes from the hub's etags recorded by the local_dir download"
                                .to_string()
                        }
                        _ => "local, not checked against the hub".to_string(),
                    };
                    println!(
                        "{}: wrote metadata for {} files ({}), {}",
                        o.model_id,
                        o.files,
                        human_bytes(o.total_size),
                        how
                    );
                    if !o.hub_files_not_present.is_empty() {
                        println!(
                            "  {} file(s) the hub lists are not here and not expected (a partial download): {}",
                            o.hub_files_not_present.len(),
                            o.hub_files_not_present.join(", ")
                        );
                    }
                    for d in &o.disagreements {
                        println!(
                            "  {}: local bytes differ from the published hash ({}…); `ema verify-all-models` \
                             will report it",
                            d.path,
                            &d.expected[..d.expected.len().min(12)]
                        );
                    }
                }
                GenerateAction::Failed => println!(
                    "{}: FAILED: {}",
                    o.model_id,
                    o.error.as_deref().unwrap_or("")
                ),
            }
        }
        let written = outcomes
            .iter()
            .filter(|o| o.action == GenerateAction::Written)
            .count();
        let kept = outcomes
            .iter()
            .filter(|o| o.action == GenerateAction::Kept)
            .count();
        eprintln!(
            "{written} written, {kept} kept, {failed} failed in {} ({hub_note})",
            dir.display()
        );
    }
    if let Some(e) = err {
        // The JSON document above already carries the error: report on stderr only, so stdout holds one document.
        eprintln!(
            "error: {e}\nstopped at the first failing model; pass --ignore-errors to continue past failures"
        );
        return Ok(exit::FAILURE);
    }
    // Only reached without a stopping error: either nothing failed, or --ignore-errors asked to report failures
    // (listed above and counted in `failed`) and carry on.
    Ok(exit::OK)
}

fn run_full(ctx: &Ctx, store: &Store) -> Result<(Vec<ModelHealth>, f64, u64)> {
    let ids = store.list_models()?;
    let t = Instant::now();
    let mut opts = VerifyOptions::default();
    let bar = ctx.out.progress.then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "verifying {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    if let Some(b) = &bar {
        let b = b.clone();
        opts.progress = Some(std::sync::Arc::new(move |done, total| {
            b.set_length(total);
            b.set_position(done);
        }));
    }
    let models = verify::verify_models(store, &ids, &opts);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let models = models?;
    let secs = t.elapsed().as_secs_f64();
    let hashed = models.iter().map(|m| m.bytes_hashed).sum();
    for m in &models {
        if let Some(e) = &m.metadata_not_updated {
            ctx.out.warn(&format!(
                "{}: the verification result was not recorded in its metadata: {e}",
                m.model_id
            ));
        }
    }
    if let Err(e) = HealthSnapshot::record(store, &models)
        .and_then(|_| health::record_health_alerts(&AlertStore::new(store), &models))
    {
        ctx.out.warn(&format!(
            "the health history in {} was not updated: {e}",
            store.state_dir().display()
        ));
    }
    Ok((models, secs, hashed))
}

#[allow(clippy::too_many_arguments)]
fn print_check(
    ctx: &Ctx,
    dir: &Path,
    models: &[ModelHealth],
    mode: verify::CheckMode,
    secs: f64,
    hashed: u64,
    report: Option<&Path>,
    repairs: &[RepairOutcome],
) -> Result<()> {
    let doc = CheckDocument {
        repairs,
        generated_at: now_rfc3339(),
        ema_version: env!("CARGO_PKG_VERSION"),
        models_directory: dir.to_path_buf(),
        mode,
        all_healthy: models.iter().all(|m| m.is_healthy()),
        summary: verify::count_states(models),
        bytes_hashed: hashed,
        seconds: secs,
        sha_ni: crate::engine::integrity::hash::sha_ni_available(),
        threads: crate::engine::integrity::hash::default_threads(),
        models,
    };
    if let Some(p) = report {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| EmaError::io("cannot create directory", parent, e))?;
        }
        crate::engine::atomic::write_json_atomic(p, &doc)?;
    }
    if ctx.out.json {
        ctx.out.json(&doc);
        return Ok(());
    }
    for r in repairs {
        match &r.error {
            None => println!(
                "repaired {}: replaced {} file{}{} (from a verified local copy or the hub)",
                r.model_id,
                r.redownloaded.len(),
                if r.redownloaded.len() == 1 { "" } else { "s" },
                if r.strays_removed.is_empty() {
                    String::new()
                } else {
                    format!(", removed {} stray file(s)", r.strays_removed.len())
                }
            ),
            Some(e) => println!("repair of {} FAILED: {e}", r.model_id),
        }
    }
    print_table(ctx, models);
    println!();
    println!("{}", summary_line(models));
    if mode == verify::CheckMode::Full {
        let rate = if secs > 0.0 {
            hashed as f64 / secs
        } else {
            0.0
        };
        println!(
            "{} hashed in {secs:.2} s ({}/s, {} thread{}, SHA-NI {})",
            human_bytes(hashed),
            human_bytes(rate as u64),
            doc.threads,
            if doc.threads == 1 { "" } else { "s" },
            if doc.sha_ni { "on" } else { "off" }
        );
    } else {
        println!(
            "quick check (existence, size, mtime) in {:.1} ms",
            secs * 1e3
        );
    }
    if let Some(p) = report {
        let abs = std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or(p.to_path_buf());
        println!("report written to {}", abs.display());
    }
    for m in models.iter().filter(|m| !m.is_healthy()) {
        for i in m.issues.iter().filter(|i| !i.path.is_empty()) {
            println!("  {} {}: {}", m.model_id, i.path, i.detail);
        }
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))
}

type Reverified = (Vec<ModelHealth>, f64, u64, Vec<RepairOutcome>);

/// Repair the unhealthy models through the download engine, then verify them again.
fn repair_and_reverify(
    ctx: &Ctx,
    loaded: &LoadedConfig,
    dir: &Path,
    store: &Store,
    models: &[ModelHealth],
    remove_stray_files: bool,
) -> Result<Reverified> {
    let mut remove = remove_stray_files;
    if remove && loaded.config.storage.shared_storage {
        ctx.out.warn(
            "storage.shared_storage is on: stray files are left in place (another installation may own them)",
        );
        remove = false;
    }
    let mut config = loaded.config.clone();
    config.storage.models_directory = dir.to_path_buf();
    let rt = runtime()?;
    let repairs = rt.block_on(async {
        let engine = Engine::new(config, HubEnv::from_env())?;
        let repairer = engine.repairer();
        for m in models.iter().filter(|m| !m.files_to_download().is_empty()) {
            eprintln!(
                "repairing {}: replacing {} file(s) from a local copy with the expected hash, else from {}",
                m.model_id,
                m.files_to_download().len(),
                engine.hub_env().endpoint
            );
        }
        Ok::<_, EmaError>(repair::repair_models(store, models, &repairer, remove).await)
    })?;
    let (after, secs, hashed) = run_full(ctx, store)?;
    Ok((after, secs, hashed, repairs))
}

pub fn verify_all(a: VerifyArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let dir = models_dir(a.models_dir.as_deref(), &loaded);
    let store = open_store(&dir)?;
    let (mut models, mut secs, mut hashed) = run_full(ctx, &store)?;
    let mut repairs = Vec::new();
    if a.repair_corrupted && !models.iter().all(|m| m.is_healthy()) {
        let (m2, s2, h2, r) =
            repair_and_reverify(ctx, &loaded, &dir, &store, &models, a.remove_stray_files)?;
        (models, secs, hashed, repairs) = (m2, secs + s2, hashed + h2, r);
    }
    let report = a.generate_report.then(|| PathBuf::from(REPORT_PATH));
    print_check(
        ctx,
        &dir,
        &models,
        verify::CheckMode::Full,
        secs,
        hashed,
        report.as_deref(),
        &repairs,
    )?;
    Ok(exit_for(&models))
}

pub fn check_models(a: CheckArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let dir = models_dir(a.models_dir.as_deref(), &loaded);
    let store = open_store(&dir)?;
    if a.quick && a.repair_if_needed {
        return Err(EmaError::Config(
            "--repair-if-needed needs a full check (it must know which bytes are bad); drop --quick".into(),
        ));
    }
    if a.quick {
        let t = Instant::now();
        let ids = store.list_models()?;
        let models = verify::quick_check(
            &store,
            &ids,
            crate::engine::integrity::hash::default_threads(),
        );
        let secs = t.elapsed().as_secs_f64();
        print_check(
            ctx,
            &dir,
            &models,
            verify::CheckMode::Quick,
            secs,
            0,
            None,
            &[],
        )?;
        return Ok(exit_for(&models));
    }
    let (mut models, mut secs, mut hashed) = run_full(ctx, &store)?;
    let mut repairs = Vec::new();
    if a.repair_if_needed && !models.iter().all(|m| m.is_healthy()) {
        let (m2, s2, h2, r) =
            repair_and_reverify(ctx, &loaded, &dir, &store, &models, a.remove_stray_files)?;
        (models, secs, hashed, repairs) = (m2, secs + s2, hashed + h2, r);
    }
    print_check(
        ctx,
        &dir,
        &models,
        verify::CheckMode::Full,
        secs,
        hashed,
        None,
        &repairs,
    )?;
    Ok(exit_for(&models))
}

pub fn health_cmd(a: HealthArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let dir = models_dir(a.models_dir.as_deref(), &loaded);
    let store = open_store(&dir)?;
    let alerts = AlertStore::new(&store);
    if let Some(id) = &a.acknowledge {
        let n = alerts.acknowledge(id)?;
        if n == 0 && id != "all" {
            return Err(EmaError::NotFound(format!(
                "no unacknowledged alert with id {id}; `ema health` lists them"
            )));
        }
        if ctx.out.json {
            ctx.out.json(&serde_json::json!({"acknowledged": n}));
        } else {
            println!("acknowledged {n} alert{}", if n == 1 { "" } else { "s" });
        }
        return Ok(exit::OK);
    }
    let t = Instant::now();
    let ids = store.list_models()?;
    let models = verify::quick_check(
        &store,
        &ids,
        crate::engine::integrity::hash::default_threads(),
    );
    let secs = t.elapsed().as_secs_f64();
    let snap = HealthSnapshot::load(&store);
    let recent = alerts.recent(a.alerts)?;
    let usage = health::storage_usage(&store, &loaded.config);
    let monitor_enabled = health::HealthMonitor::enabled(&loaded.config);
    if ctx.out.json {
        let models_json: Vec<serde_json::Value> = models
            .iter()
            .map(|m| {
                let last = snap
                    .models
                    .get(&m.model_id)
                    .filter(|s| s.mode == verify::CheckMode::Full);
                serde_json::json!({
                    "model_id": m.model_id,
                    "state": m.state,
                    "reason": m.reason,
                    "issues": m.issues,
                    "total_bytes": m.total_bytes,
                    "verification": m.verification,
                    "last_full_check": last.map(|l| serde_json::json!({
                        "state": l.state, "reason": l.reason, "checked_at": l.checked_at,
                        "read_bytes_per_sec": l.read_bytes_per_sec,
                        "load_time_estimate_seconds": l.load_time_estimate_seconds,
                    })),
                })
            })
            .collect();
        ctx.out.json(&serde_json::json!({
            "models_directory": dir,
            "checked_in_ms": secs * 1e3,
            "summary": verify::count_states(&models),
            "models": models_json,
            "alerts": recent,
            "storage": usage,
            "monitoring_enabled": monitor_enabled,
        }));
    } else {
        print_table(ctx, &models);
        println!();
        println!("{}", summary_line(&models));
        println!(
            "storage: {} used of a {} budget ({:.0}%, alert at {}%){}",
            human_bytes(usage.used_bytes),
            human_bytes(usage.budget_bytes),
            usage.percent_of_budget,
            usage.threshold_percent,
            match (usage.percent_of_disk, usage.disk_available_bytes) {
                (Some(p), Some(av)) => format!("; disk {p:.0}% full, {} free", human_bytes(av)),
                _ => String::new(),
            }
        );
        println!(
            "health monitoring: {}",
            if monitor_enabled {
                "enabled in the configuration (runs inside the engine of long-running faces)"
            } else {
                "disabled in the configuration"
            }
        );
        if recent.is_empty() {
            println!("alerts: none");
        } else {
            println!("recent alerts (newest first):");
            for al in &recent {
                println!(
                    "  [{}] {:<8} {}{}{} (x{}, last {}){}",
                    al.id,
                    format!("{:?}", al.severity).to_lowercase(),
                    al.message,
                    if al.acknowledged {
                        " [acknowledged]"
                    } else {
                        ""
                    },
                    if al.resolved { " [resolved]" } else { "" },
                    al.count,
                    al.last_at,
                    al.suggested_action
                        .as_ref()
                        .map(|s| format!("\n      → {s}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(exit_for(&models))
}

pub fn cleanup_cmd(a: CleanupArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let dir = models_dir(a.models_dir.as_deref(), &loaded);
    let store = open_store(&dir)?;
    if !(a.remove_temp_files || a.remove_old_logs || a.compress_backups) {
        return Err(EmaError::Config(
            "nothing to do: pass --remove-temp-files, --remove-old-logs and/or --compress-backups (add --dry-run \
             to preview)"
                .into(),
        ));
    }
    if !(a.temp_age_hours >= 0.0 && a.log_age_days >= 0.0) {
        return Err(EmaError::Config(
            "--temp-age-hours and --log-age-days must be non-negative numbers".into(),
        ));
    }
    let cache = loaded.config.storage.cache_dir();
    let mut opts = CleanupOptions::new(&store);
    opts.remove_temp_files = a.remove_temp_files;
    opts.remove_old_logs = a.remove_old_logs;
    opts.compress_backups = a.compress_backups;
    opts.dry_run = a.dry_run;
    opts.temp_min_age = std::time::Duration::from_secs_f64(a.temp_age_hours * 3600.0);
    opts.log_max_age = std::time::Duration::from_secs_f64(a.log_age_days * 86400.0);
    opts.log_dirs.push(cache.join("logs"));
    opts.backup_dirs.push(cache.join("backups"));
    if let Some(p) = &loaded.path {
        opts.backup_dirs.push(
            p.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        );
    }
    let report = maintenance::cleanup(&store, &opts)?;
    if ctx.out.json {
        ctx.out.json(&report);
    } else {
        if report.items.is_empty() {
            println!("nothing to clean");
        }
        for i in &report.items {
            println!(
                "{:<15} {:<9} {:>9}  {}{}",
                i.action,
                i.kind,
                human_bytes(i.bytes),
                i.path.display(),
                i.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
        }
        println!(
            "{}{} freed",
            if report.dry_run {
                "dry run: nothing changed; "
            } else {
                ""
            },
            human_bytes(report.bytes_freed)
        );
    }
    Ok(if report.items.iter().any(|i| i.action == "failed") {
        exit::FAILURE
    } else {
        exit::OK
    })
}

pub fn move_cmd(a: MoveArgs, ctx: &Ctx) -> Result<i32> {
    let update_config = if a.update_config {
        let loaded = ctx.load_config()?;
        Some(loaded.path.ok_or_else(|| {
            EmaError::Config(
                "--update-config: no configuration file is in force (built-in defaults); pass --config PATH"
                    .into(),
            )
        })?)
    } else {
        None
    };
    let stop_after_files = std::env::var(maintenance::MOVE_STOP_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let r = maintenance::move_models(&MoveOptions {
        source: a.source,
        target: a.target,
        update_config,
        stop_after_files,
    })?;
    if ctx.out.json {
        ctx.out.json(&r);
    } else {
        println!(
            "moved {} files ({}) from {} to {}{}",
            r.files,
            human_bytes(r.bytes),
            r.source.display(),
            r.target.display(),
            if r.resumed {
                format!(" (resumed: {} already copied)", r.already_done)
            } else {
                String::new()
            }
        );
        println!("every file's sha256 was checked at the target");
        if let Some(c) = &r.config_updated {
            println!(
                "configuration {}: storage.models_directory {} → {}",
                c.display(),
                r.previous_models_directory.as_deref().unwrap_or("(unset)"),
                r.target.display()
            );
        }
        if r.source_deleted {
            println!("source {} removed", r.source.display());
        } else if !r.left_in_source.is_empty() {
            println!(
                "{} files appeared in the source during the move and were left there: {}",
                r.left_in_source.len(),
                r.left_in_source.join(", ")
            );
        }
    }
    Ok(exit::OK)
}
