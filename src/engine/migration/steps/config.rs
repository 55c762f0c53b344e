//! "Configuration migrated": the legacy `config.json` converted by migrate-config (the guide's mapping table) into
//! `<root>/config/enhanced_model_config.json` when no enhanced configuration exists there, then validated by the
//! full validator (every problem with its position and fix).

use crate::engine::config::migrate::migrate;
use crate::engine::config::validate;
use crate::engine::config::writer::{Overwrite, write_new};
use crate::engine::error::{EmaError, Result};
use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// Side by side, ema's configuration points at its own store and cache (the legacy directories stay the legacy
/// system's), says the storage is shared, and serves on another port than the legacy API (the spec's 8001).
fn side_by_side_settings(
    doc: &mut serde_json::Value,
    store: &std::path::Path,
    install: &std::path::Path,
    legacy_port: u16,
    log: &mut Vec<String>,
) {
    let storage = &mut doc["storage"];
    storage["models_directory"] = store.display().to_string().into();
    storage["cache_directory"] = install.join("cache").display().to_string().into();
    storage["shared_storage"] = true.into();
    log.push(format!(
        "side by side: storage.models_directory = {} (ema's store), storage.cache_directory = {}, \
         storage.shared_storage = true",
        store.display(),
        install.join("cache").display()
    ));
    let port = doc["api"]["port"].as_u64();
    if port.is_none_or(|p| p == u64::from(legacy_port)) {
        let p = legacy_port.checked_add(1).unwrap_or(legacy_port - 1);
        doc["api"]["port"] = p.into();
        log.push(format!(
            "side by side: api.port = {p} (the legacy API keeps {legacy_port})"
        ));
    }
}

pub(super) fn config_migrated(ctx: &MigrationContext) -> Result<StepOutcome> {
    let target = &ctx.plan.enhanced_config;
    let mut log = Vec::new();
    let wrote = if target.exists() {
        log.push(format!(
            "an enhanced configuration already exists at {}: kept as it is",
            target.display()
        ));
        false
    } else {
        let Some(legacy) = &ctx.plan.legacy_config else {
            return Ok(StepOutcome::not_applicable(
                format!(
                    "not applicable: {} has no legacy config.json and no enhanced configuration; ema's defaults \
                     apply (create one with `ema configure`)",
                    ctx.plan.root.display()
                ),
                log,
            ));
        };
        let text =
            std::fs::read_to_string(legacy).map_err(|e| EmaError::io("cannot read", legacy, e))?;
        let mut mig = migrate(&text, legacy)?;
        if let (Some(store), Some(install)) = (&ctx.plan.store, &ctx.plan.install_dir) {
            side_by_side_settings(
                &mut mig.document,
                store,
                install,
                ctx.plan.legacy_api_port,
                &mut log,
            );
        }
        write_new(target, &mig.render(), Overwrite::default())?;
        log.push(format!(
            "migrated {} → {}",
            legacy.display(),
            target.display()
        ));
        for c in &mig.changes {
            log.push(format!("{} = {} ({})", c.path, c.value, c.source));
        }
        log.extend(mig.notes.iter().map(|n| format!("note: {n}")));
        true
    };
    let text =
        std::fs::read_to_string(target).map_err(|e| EmaError::io("cannot read", target, e))?;
    let v = validate::validate_text(&text);
    log.extend(v.problems.iter().map(|p| p.human(target)));
    Ok(if v.is_valid() {
        StepOutcome::pass(
            format!(
                "{} {} and it validates",
                if wrote { "wrote" } else { "kept" },
                target.display()
            ),
            log,
        )
    } else {
        StepOutcome::fail(
            format!(
                "{} problem(s) in {}; repair with `ema fix-config --config {} --auto-fix`",
                v.problems.len(),
                target.display(),
                target.display()
            ),
            log,
        )
    })
}
