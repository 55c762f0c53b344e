//! The model steps, all on the planned legacy models directory: "Model data migrated" (migrate-models with
//! --verify-integrity --create-metadata), "Basic functionality tested" (the migrated configuration and store, and
//! verify-migration's summary), "All models accessible" (verify-migration per model) and "Performance acceptable"
//! (read throughput of every model against its recorded baseline).

use std::collections::BTreeMap;

use crate::engine::config::hub_env::HubEnv;
use crate::engine::config::{self, DownloadsConfig};
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{EmaError, Result};
use crate::engine::health::{PERF_MIN_BYTES, PERF_REGRESSION_RATIO, PerfBaselines};
use crate::engine::hub::HubClient;
use crate::engine::integrity::generate::HubSource;
use crate::engine::integrity::hash::default_threads;
use crate::engine::integrity::repair::HubMetadataSource;
use crate::engine::integrity::verify::{VerifyOptions, verify_models};
use crate::engine::legacy::{AdoptOptions, migrate_models, verify_migration};
use crate::engine::migration::context::{MigrationContext, StepOutcome};
use crate::engine::store::Store;

/// `migrate-models --verify-integrity --create-metadata` on the planned models directory; the hub's listing is
/// consulted when the hub answers (API calls only, no file bytes).
pub(super) fn model_data_migrated(ctx: &MigrationContext) -> Result<StepOutcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start a runtime: {e}")))?;
    let source = match &ctx.hub {
        Some(env) if !env.offline => Some(hub_source(env, &ctx.loaded.config.downloads, &rt)?),
        _ => None,
    };
    let opts = AdoptOptions {
        verify_integrity: true,
        create_metadata: true,
        dry_run: false,
        hub: source.as_deref().map(|s| s as &dyn HubSource),
        threads: default_threads(),
        store: ctx.plan.store.as_deref(),
    };
    let report = migrate_models(&ctx.plan.models_dir, &BTreeMap::new(), &opts);
    drop(source);
    rt.shutdown_background();
    let report = report?;
    let mut log = Vec::new();
    for m in &report.models {
        log.push(format!(
            "{} {} ({}; {} files, {}; hashes from {})",
            m.result,
            m.repo_id,
            m.layout.describe(),
            m.files,
            human_bytes(m.bytes),
            m.hashes_from.unwrap_or("-")
        ));
        for x in &m.mismatches {
            log.push(format!(
                "  DAMAGED {}: sha {} expected {}",
                x.path, x.actual, x.expected
            ));
        }
        if let Some(r) = &m.reason {
            log.push(format!("  {r}"));
        }
    }
    let summary = format!(
        "{} model(s) in {}{}, {} hashed",
        report.models.len(),
        report.models_dir.display(),
        match &report.store {
            Some(s) => format!(" recorded where they lie in ema's store {}", s.display()),
            None => String::new(),
        },
        human_bytes(report.bytes_hashed)
    );
    Ok(if report.mismatches() > 0 {
        StepOutcome::fail(
            format!(
                "{summary}: {} damaged file(s), their models adopted as corrupted; repair with `ema \
                 verify-all-models --models-dir {} --repair-corrupted`, then run this step again",
                report.mismatches(),
                report
                    .store
                    .as_ref()
                    .unwrap_or(&report.models_dir)
                    .display()
            ),
            log,
        )
    } else if report.conflicts() > 0 {
        StepOutcome::fail(
            format!(
                "{summary}: {} model(s) could not be adopted (see the log; nothing of them was touched)",
                report.conflicts()
            ),
            log,
        )
    } else {
        StepOutcome::pass(format!("{summary}: every model adopted and intact"), log)
    })
}

fn hub_source(
    env: &HubEnv,
    downloads: &DownloadsConfig,
    rt: &tokio::runtime::Runtime,
) -> Result<std::sync::Arc<HubMetadataSource>> {
    Ok(HubMetadataSource::new(
        HubClient::new(env, downloads)?,
        rt.handle().clone(),
    ))
}

/// The migrated configuration loads and names the planned models directory; the store lists its models; and
/// verify-migration's summary.
pub(super) fn basic_functionality(ctx: &MigrationContext) -> Result<StepOutcome> {
    let plan = &ctx.plan;
    let mut log = Vec::new();
    if !plan.enhanced_config.is_file() {
        return Ok(StepOutcome::fail(
            format!(
                "no enhanced configuration at {}: run \"Configuration migrated\" first",
                plan.enhanced_config.display()
            ),
            log,
        ));
    }
    let loaded = config::load(Some(&plan.enhanced_config))?;
    let configured = &loaded.config.storage.models_directory;
    let same = configured.canonicalize().ok().as_deref() == Some(plan.store_dir());
    log.push(format!(
        "configuration {} loads; storage.models_directory = {}",
        plan.enhanced_config.display(),
        configured.display()
    ));
    if !same {
        return Ok(StepOutcome::fail(
            format!(
                "the migrated configuration's models directory {} is not the migrated one {}; fix it with `ema \
                 configure --config {} --set storage.models_directory={}`",
                configured.display(),
                plan.store_dir().display(),
                plan.enhanced_config.display(),
                plan.store_dir().display()
            ),
            log,
        ));
    }
    let listed = Store::new(plan.store_dir()).list_models()?.len();
    log.push(format!("the store lists {listed} model(s)"));
    let check = verify_migration(&plan.models_dir, plan.store.as_deref(), default_threads())?;
    let healthy = check.models.iter().filter(|m| m.is_healthy()).count();
    let summary = format!(
        "{healthy} of {} adopted model(s) intact, {} not adopted",
        check.models.len(),
        check.unadopted.len()
    );
    for u in &check.unadopted {
        log.push(format!(
            "not adopted: {} ({}): {}",
            u.repo_id,
            u.location.display(),
            u.why
        ));
    }
    Ok(if check.all_good() {
        StepOutcome::pass(format!("configuration and store work; {summary}"), log)
    } else {
        StepOutcome::fail(
            format!(
                "{summary}; see `ema verify-migration --models-dir {}`",
                plan.models_dir.display()
            ),
            log,
        )
    })
}

/// Every adopted model's files read in full and hashed against its sidecar; nothing left unadopted.
pub(super) fn models_accessible(ctx: &MigrationContext) -> Result<StepOutcome> {
    let check = verify_migration(
        &ctx.plan.models_dir,
        ctx.plan.store.as_deref(),
        default_threads(),
    )?;
    if check.models.is_empty() && check.unadopted.is_empty() {
        return Ok(StepOutcome::not_applicable(
            format!(
                "not applicable: no models in {}",
                ctx.plan.models_dir.display()
            ),
            vec![],
        ));
    }
    let mut log: Vec<String> = check
        .models
        .iter()
        .map(|m| format!("{}: {} — {}", m.model_id, m.state.as_str(), m.reason))
        .collect();
    log.extend(
        check
            .unadopted
            .iter()
            .map(|u| format!("{}: not adopted ({})", u.repo_id, u.why)),
    );
    let bad = check.models.iter().filter(|m| !m.is_healthy()).count() + check.unadopted.len();
    let total = check.models.len() + check.unadopted.len();
    Ok(if bad == 0 {
        StepOutcome::pass(
            format!("all {total} model(s) readable and intact (every file hashed)"),
            log,
        )
    } else {
        StepOutcome::fail(
            format!(
                "{bad} of {total} model(s) not accessible; repair with `ema verify-all-models --models-dir {} \
                 --repair-corrupted`",
                ctx.plan.store_dir().display()
            ),
            log,
        )
    })
}

/// Read every adopted model in full; its throughput against the recorded baseline (the median of the last five).
/// The first run records the baseline. Models under 16 MiB are measured but too small to judge.
pub(super) fn performance_acceptable(ctx: &MigrationContext) -> Result<StepOutcome> {
    let store = Store::new(ctx.plan.store_dir());
    let ids = store.list_models()?;
    if ids.is_empty() {
        return Ok(StepOutcome::not_applicable(
            format!(
                "not applicable: no adopted models in {} yet",
                ctx.plan.store_dir().display()
            ),
            vec![],
        ));
    }
    // One model at a time, timed: the throughput of reading (and hashing) exactly that model's bytes.
    let mut results = Vec::new();
    for id in &ids {
        let started = std::time::Instant::now();
        let mut r = verify_models(
            &store,
            std::slice::from_ref(id),
            &VerifyOptions {
                threads: default_threads(),
                update_metadata: false,
                progress: None,
            },
        )?;
        let secs = started.elapsed().as_secs_f64();
        for h in &mut r {
            if h.read_bytes_per_sec.is_none() && h.total_bytes > 0 && secs > 0.0 {
                h.read_bytes_per_sec = Some(h.total_bytes as f64 / secs);
            }
        }
        results.extend(r);
    }
    let mut perf = PerfBaselines::load(&store);
    let mut log = Vec::new();
    let (mut slow, mut first) = (Vec::new(), 0);
    for h in &results {
        let Some(bps) = h.read_bytes_per_sec.filter(|b| *b > 0.0) else {
            log.push(format!("{}: not measured (no bytes to read)", h.model_id));
            continue;
        };
        let rate = format!("{}/s", human_bytes(bps as u64));
        let before = perf.observe(&h.model_id, bps);
        let judged = h.total_bytes >= PERF_MIN_BYTES;
        match before {
            None => {
                first += 1;
                log.push(format!("{}: {rate}, recorded as its baseline", h.model_id));
            }
            Some(b) if judged && bps < b * PERF_REGRESSION_RATIO => {
                slow.push(h.model_id.clone());
                log.push(format!(
                    "{}: {rate}, below half of its baseline {}/s",
                    h.model_id,
                    human_bytes(b as u64)
                ));
            }
            Some(b) => log.push(format!(
                "{}: {rate} (baseline {}/s){}",
                h.model_id,
                human_bytes(b as u64),
                if judged {
                    ""
                } else {
                    "; under 16 MiB, too small to judge"
                }
            )),
        }
    }
    perf.save(&store)?;
    Ok(if slow.is_empty() {
        StepOutcome::pass(
            format!(
                "{} model(s) read in full: none below half of its baseline{}",
                results.len(),
                if first > 0 {
                    format!(" ({first} first measurement(s) recorded as baselines)")
                } else {
                    String::new()
                }
            ),
            log,
        )
    } else {
        StepOutcome::fail(
            format!(
                "{} model(s) read below half of their baseline: {}; check the disk (and what else reads it)",
                slow.len(),
                slow.join(", ")
            ),
            log,
        )
    })
}
