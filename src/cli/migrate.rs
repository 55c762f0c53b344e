//! `ema migrate-models` (adopt a legacy models directory in place) and `ema verify-migration` (prove it read-only),
//! human output or one JSON document.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use crate::engine::config::LoadedConfig;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{Result, exit};
use crate::engine::hub::HubClient;
use crate::engine::integrity::generate::HubSource;
use crate::engine::integrity::hash::default_threads;
use crate::engine::integrity::repair::HubMetadataSource;
use crate::engine::legacy::{self, AdoptOptions};

use super::Ctx;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every model adopted and intact, 3 a file does not match its expected hash \
(its model is adopted as corrupted; repair it with verify-all-models --repair-corrupted), 1 a model could not be \
adopted (its reason is printed; nothing of it was touched), 2 bad input (--map), 5 no such models directory."
)]
pub struct MigrateModelsArgs {
    /// The legacy models directory (plain folders, --local-dir downloads, a hub cache, a transformers cache).
    #[arg(long, value_name = "DIR")]
    pub models_dir: PathBuf,
    /// Hash every file and compare with the layout's hashes and, when HF_ENDPOINT answers, the hub's listing
    /// (API calls only: no file bytes are downloaded).
    #[arg(long)]
    pub verify_integrity: bool,
    /// Also write sidecars for folders already in ema's layout that lack one.
    #[arg(long)]
    pub create_metadata: bool,
    /// Lines `folder repo_id` naming the repo of folders nothing else identifies.
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,
    /// Show what would be done (layout, repo id and how it was inferred, files, bytes, action); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Side-by-side migration: the legacy system keeps running on its models directory, so ema records the models
    /// where they lie (links in its own store) and changes nothing there. Also on with `storage.shared_storage: true`.
    #[arg(long)]
    pub side_by_side: bool,
    /// Side-by-side: ema's own store, apart from the legacy directory (default: storage.models_directory).
    /// Implies --side-by-side.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every model adopted and intact, 3 a problem (damaged, missing or extra \
files, or models not adopted yet)."
)]
pub struct VerifyMigrationArgs {
    /// The migrated models directory.
    #[arg(long, value_name = "DIR")]
    pub models_dir: PathBuf,
    /// Side-by-side migration: the legacy system keeps running on its models directory, so ema records the models
    /// where they lie (links in its own store) and changes nothing there. Also on with `storage.shared_storage: true`.
    #[arg(long)]
    pub side_by_side: bool,
    /// Side-by-side: ema's own store, apart from the legacy directory (default: storage.models_directory).
    /// Implies --side-by-side.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

/// Side-by-side: ema's store (`--store`, else the configured models directory) when `--side-by-side`, `--store` or
/// `storage.shared_storage: true` asks for it; None: in place.
pub(super) fn side_store(
    flag: bool,
    store: Option<PathBuf>,
    loaded: &LoadedConfig,
) -> Option<PathBuf> {
    let on = flag || store.is_some() || loaded.config.storage.shared_storage;
    on.then(|| store.unwrap_or_else(|| loaded.config.storage.models_directory.clone()))
}

pub fn migrate_models(a: MigrateModelsArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let side = side_store(a.side_by_side, a.store.clone(), &loaded);
    let map = match &a.map {
        Some(p) => legacy::read_map(p)?,
        None => BTreeMap::new(),
    };
    let env = HubEnv::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            crate::engine::EmaError::Other(format!("cannot start the async runtime: {e}"))
        })?;
    let source = if a.verify_integrity && !env.offline {
        Some(HubMetadataSource::new(
            HubClient::new(&env, &loaded.config.downloads)?,
            rt.handle().clone(),
        ))
    } else {
        None
    };
    let opts = AdoptOptions {
        verify_integrity: a.verify_integrity,
        create_metadata: a.create_metadata,
        dry_run: a.dry_run,
        hub: source.as_deref().map(|s| s as &dyn HubSource),
        threads: default_threads(),
        store: side.as_deref(),
    };
    let report = legacy::migrate_models(&a.models_dir, &map, &opts)?;
    let code = if report.mismatches() > 0 {
        exit::INTEGRITY
    } else if report.conflicts() > 0 {
        exit::FAILURE
    } else {
        exit::OK
    };
    if ctx.out.json {
        ctx.out.json(&report);
        return Ok(code);
    }
    println!(
        "{} {}{}",
        if report.dry_run {
            "plan for"
        } else {
            "migrated"
        },
        report.models_dir.display(),
        match &report.store {
            Some(s) => format!(
                " side by side into ema's store {} (nothing under the legacy directory is changed)",
                s.display()
            ),
            None => String::new(),
        }
    );
    for m in &report.models {
        println!(
            "  {:<22} {}  ({}; id from {})",
            m.result,
            m.repo_id,
            m.layout.describe(),
            m.id_source.describe()
        );
        println!(
            "      {} → {}  {} files, {}{}",
            m.location.display(),
            m.target.display(),
            m.files,
            human_bytes(m.bytes),
            match (m.moved, m.cloned, m.linked) {
                (0, 0, 0) => String::new(),
                (0, 0, l) => format!(", {l} linked where they lie"),
                (mv, 0, _) => format!(", {mv} renamed"),
                (mv, c, _) => format!(", {mv} renamed, {c} cloned"),
            }
        );
        if let Some(v) = m.verification {
            println!(
                "      verification: {} (hashes from {})",
                serde_json::to_value(v)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                m.hashes_from.unwrap_or("-")
            );
        }
        for x in &m.mismatches {
            println!(
                "      DAMAGED {}: sha {} expected {}",
                x.path, x.actual, x.expected
            );
        }
        for p in &m.hub_files_missing {
            println!("      the hub lists {p}, not here (not fetched)");
        }
        if let Some(r) = &m.reason {
            println!("      {r}");
        }
        for n in &m.notes {
            println!("      note: {n}");
        }
    }
    for u in &report.unrecognised {
        println!("  left alone (no model ema recognises): {}", u.display());
    }
    let store = report.store.as_ref().unwrap_or(&report.models_dir);
    if report.mismatches() > 0 {
        println!(
            "{} damaged file(s): their models are adopted as corrupted; repair with `ema verify-all-models \
             --models-dir {} --repair-corrupted`{}",
            report.mismatches(),
            store.display(),
            if report.store.is_some() {
                " (the repaired copy goes into ema's store; the legacy file is left as it is)"
            } else {
                ""
            }
        );
    }
    if !report.dry_run && code != exit::FAILURE {
        println!(
            "check with: ema verify-migration --models-dir {}{}",
            report.models_dir.display(),
            match &report.store {
                Some(s) => format!(" --store {}", s.display()),
                None => String::new(),
            }
        );
    }
    Ok(code)
}

pub fn verify_migration(a: VerifyMigrationArgs, ctx: &Ctx) -> Result<i32> {
    let side = if a.side_by_side || a.store.is_some() {
        side_store(true, a.store.clone(), &ctx.load_config()?)
    } else {
        ctx.load_config()
            .ok()
            .and_then(|l| side_store(false, None, &l))
    };
    let check = legacy::verify_migration(&a.models_dir, side.as_deref(), default_threads())?;
    let code = if check.all_good() {
        exit::OK
    } else {
        exit::INTEGRITY
    };
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "models_dir": check.models_dir,
            "store": check.store,
            "all_good": check.all_good(),
            "models": check.models,
            "unadopted": check.unadopted,
            "unrecognised": check.unrecognised,
        }));
        return Ok(code);
    }
    for m in &check.models {
        // The reason line summarises the issues; with issues, list each once instead.
        if m.issues.is_empty() {
            println!("  {:<10} {}  {}", m.state.as_str(), m.model_id, m.reason);
        } else {
            println!("  {:<10} {}", m.state.as_str(), m.model_id);
        }
        for i in &m.issues {
            println!("      {}: {}", i.path, i.detail);
        }
    }
    for u in &check.unadopted {
        println!(
            "  unadopted  {} ({}) at {}: {}",
            u.repo_id,
            u.layout.describe(),
            u.location.display(),
            u.why
        );
    }
    for u in &check.unrecognised {
        println!("  left alone (no model ema recognises): {}", u.display());
    }
    let healthy = check.models.iter().filter(|m| m.is_healthy()).count();
    println!(
        "{healthy} of {} adopted models intact, {} not adopted{}",
        check.models.len(),
        check.unadopted.len(),
        if check.all_good() {
            ": the migration is complete"
        } else {
            ""
        }
    );
    Ok(code)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every requirement met (warnings allowed), 1 a requirement failed."
)]
pub struct CheckSystemArgs {
    /// The models directory to check (default: the configured one).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

pub fn check_system(a: CheckSystemArgs, ctx: &Ctx) -> Result<i32> {
    use crate::engine::syscheck::{self, Status, SystemCheckInput};
    let loaded = ctx.load_config()?;
    let env = HubEnv::from_env();
    let input = SystemCheckInput {
        models_dir: a
            .models_dir
            .unwrap_or_else(|| loaded.config.storage.models_directory.clone()),
        hub_endpoint: (!env.offline).then(|| env.endpoint.to_string()),
        hub_timeout: std::time::Duration::from_secs(5),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            crate::engine::EmaError::Other(format!("cannot start the async runtime: {e}"))
        })?;
    let checks = rt.block_on(syscheck::check_system(&input));
    let overall = syscheck::overall(&checks);
    if ctx.out.json {
        ctx.out
            .json(&serde_json::json!({ "overall": overall, "checks": checks }));
    } else {
        for c in &checks {
            println!(
                "{:<5} {:<18} {}\n      {}",
                c.status.as_str(),
                c.name,
                c.figure,
                c.detail
            );
        }
        println!("overall: {}", overall.as_str());
    }
    Ok(if overall == Status::Fail {
        exit::FAILURE
    } else {
        exit::OK
    })
}
