//! "Database migrated": the legacy usage log into the analytics database.

use crate::engine::analytics;
use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// Not applicable without `models.db` and `logs/usage.log`; otherwise the usage log is imported into the analytics
/// database the configuration names (idempotent: running the step again adds nothing). `models.db`, the legacy
/// model registry, is not imported: the store describes every model from its files (model data migrated) and the
/// backup keeps the file.
pub(super) fn database_migrated(ctx: &MigrationContext) -> StepOutcome {
    let p = &ctx.plan;
    if p.database.is_none() && p.usage_log.is_none() {
        return StepOutcome::not_applicable(
            format!(
                "not applicable: {} has no models.db and no logs/usage.log",
                p.root.display()
            ),
            vec![],
        );
    }
    let mut log = Vec::new();
    if let Some(db) = &p.database {
        log.push(format!(
            "{}: the legacy model registry is not imported — ema describes every model from its files and              sidecars; the backup keeps it",
            db.display()
        ));
    }
    let Some(usage) = &p.usage_log else {
        return StepOutcome::pass(
            "no usage log to import; the legacy models.db needs no import".to_string(),
            log,
        );
    };
    // The migrated installation's analytics database: the enhanced configuration the wizard wrote, else the one
    // in force when it is a real file.
    let config = if p.enhanced_config.is_file() {
        match crate::engine::config::load(Some(&p.enhanced_config)) {
            Ok(l) => l.config,
            Err(e) => {
                return StepOutcome::fail(
                    format!("cannot read {}: {e}", p.enhanced_config.display()),
                    log,
                );
            }
        }
    } else if ctx.loaded.path.is_some() {
        ctx.loaded.config.clone()
    } else {
        return StepOutcome::blocked(
            format!(
                "run \"Configuration migrated\" first: the analytics database goes where {} says",
                p.enhanced_config.display()
            ),
            log,
        );
    };
    let src = usage.clone();
    let r = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::engine::EmaError::Other(format!("cannot start a runtime: {e}")))?;
        rt.block_on(async {
            let db = analytics::open(None, &config).await?;
            let r = analytics::import_usage_log(&db, &src).await;
            db.close().await;
            r
        })
    })
    .join()
    .unwrap_or_else(|_| Err(crate::engine::EmaError::Other("the import panicked".into())));
    match r {
        Ok(rep) => {
            log.extend(
                rep.bad_lines
                    .iter()
                    .map(|b| format!("{} line {}: {}", rep.source, b.line, b.reason)),
            );
            StepOutcome::pass(
                format!(
                    "imported {} into {}: {} lines, {} imported, {} already present, {} bad (kept out, listed in                      the log)",
                    rep.source, rep.target, rep.lines, rep.imported, rep.already_present, rep.bad
                ),
                log,
            )
        }
        Err(e) => StepOutcome::fail(
            format!(
                "the usage log {} could not be imported: {e}",
                usage.display()
            ),
            log,
        ),
    }
}
