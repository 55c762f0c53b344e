//! `ema verify-all-models` and `ema check-models`: full (or quick) verification of every model, optional repair
//! through the download engine and a second verification.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::args::{CheckArgs, REPORT_PATH, VerifyArgs};
use super::common::{open_models, runtime};
use super::report::{exit_for, print_check};
use crate::cli::Ctx;
use crate::engine::config::LoadedConfig;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{EmaError, Result};
use crate::engine::facade::Engine;
use crate::engine::health::{self, AlertStore, HealthSnapshot};
use crate::engine::integrity::repair::{self, RepairOutcome};
use crate::engine::integrity::verify::{self, ModelHealth, VerifyOptions};
use crate::engine::store::Store;

/// Quick check of every model of the store; returns the results and the seconds it took.
pub(super) fn run_quick(store: &Store) -> Result<(Vec<ModelHealth>, f64)> {
    let t = Instant::now();
    let ids = store.list_models()?;
    let models = verify::quick_check(
        store,
        &ids,
        crate::engine::integrity::hash::default_threads(),
    );
    Ok((models, t.elapsed().as_secs_f64()))
}

/// Fully verify every model of the store (with a progress bar) and record the health history.
pub(super) fn run_full(ctx: &Ctx, store: &Store) -> Result<(Vec<ModelHealth>, f64, u64)> {
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

/// Verify every model in full, repair and verify again when asked and something is unhealthy, print the results.
fn full_check(
    ctx: &Ctx,
    loaded: &LoadedConfig,
    dir: &Path,
    store: &Store,
    repair: bool,
    remove_stray_files: bool,
    report: Option<&Path>,
) -> Result<i32> {
    let (mut models, mut secs, mut hashed) = run_full(ctx, store)?;
    let mut repairs = Vec::new();
    if repair && !models.iter().all(|m| m.is_healthy()) {
        let (m2, s2, h2, r) =
            repair_and_reverify(ctx, loaded, dir, store, &models, remove_stray_files)?;
        (models, secs, hashed, repairs) = (m2, secs + s2, hashed + h2, r);
    }
    print_check(
        ctx,
        dir,
        &models,
        verify::CheckMode::Full,
        secs,
        hashed,
        report,
        &repairs,
    )?;
    Ok(exit_for(&models))
}

pub fn verify_all(a: VerifyArgs, ctx: &Ctx) -> Result<i32> {
    let (loaded, dir, store) = open_models(ctx, a.models_dir.as_deref())?;
    let report = a.generate_report.then(|| PathBuf::from(REPORT_PATH));
    full_check(
        ctx,
        &loaded,
        &dir,
        &store,
        a.repair_corrupted,
        a.remove_stray_files,
        report.as_deref(),
    )
}

pub fn check_models(a: CheckArgs, ctx: &Ctx) -> Result<i32> {
    let (loaded, dir, store) = open_models(ctx, a.models_dir.as_deref())?;
    if a.quick && a.repair_if_needed {
        return Err(EmaError::Config(
            "--repair-if-needed needs a full check (it must know which bytes are bad); drop --quick".into(),
        ));
    }
    if a.quick {
        let (models, secs) = run_quick(&store)?;
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
    full_check(
        ctx,
        &loaded,
        &dir,
        &store,
        a.repair_if_needed,
        a.remove_stray_files,
        None,
    )
}
