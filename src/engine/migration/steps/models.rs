//! The store and its models: metadata created and every model verified, the store writable, every model accessible.

use crate::engine::error::{EmaError, Result};
use crate::engine::events::HealthState;
use crate::engine::health;
use crate::engine::integrity::{generate, hash, verify};
use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// Create metadata for models that have none (from their bytes, no network), then verify every model in full and
/// record the results (health snapshot and alerts), as `migrate-models --create-metadata --verify-integrity`.
pub(super) fn model_data_migrated(ctx: &MigrationContext) -> Result<StepOutcome> {
    let store = &ctx.store;
    let ids = store.list_models()?;
    let mut log = Vec::new();
    let mut created = 0;
    for id in &ids {
        if store.metadata_path(id).exists() || !store.model_dir(id).is_dir() {
            continue;
        }
        let meta =
            generate::generate_local_metadata(store, id, &generate::GenerateOptions::default())?;
        store.write_metadata(&meta)?;
        created += 1;
        log.push(format!(
            "{id}: metadata created from its {} file(s)",
            meta.files.len()
        ));
    }
    let results = verify::verify_models(store, &ids, &verify::VerifyOptions::default())?;
    health::HealthSnapshot::record(store, &results)?;
    health::record_health_alerts(&health::AlertStore::new(store), &results)?;
    let mut bad = 0;
    for h in &results {
        if !h.is_healthy() {
            bad += 1;
        }
        log.push(format!(
            "{}: {} — {}",
            h.model_id,
            h.state.as_str(),
            h.reason
        ));
    }
    let summary = format!(
        "{} model(s): metadata created for {created}, {} verified healthy",
        results.len(),
        results.len() - bad
    );
    Ok(if bad == 0 {
        StepOutcome::ok(summary, log)
    } else {
        StepOutcome::fail(
            format!("{summary}, {bad} not; repair them from the Models pane (r)"),
            log,
        )
    })
}

/// Write and remove a probe file in the store's state directory and list the store.
pub(super) fn basic_functionality(ctx: &MigrationContext) -> Result<StepOutcome> {
    let probe = ctx.store.state_dir().join("probe.tmp");
    ctx.store.ensure()?;
    crate::engine::atomic::write_atomic(&probe, b"probe")?;
    std::fs::remove_file(&probe).map_err(|e| EmaError::io("cannot remove", &probe, e))?;
    let models = ctx.store.list_models()?;
    Ok(StepOutcome::ok(
        format!(
            "store {} is writable; {} model(s) listed",
            ctx.store.root().display(),
            models.len()
        ),
        vec![],
    ))
}

/// Quick check of every model: files present with the sizes their metadata records.
pub(super) fn models_accessible(ctx: &MigrationContext) -> Result<StepOutcome> {
    let ids = ctx.store.list_models()?;
    let results = verify::quick_check(&ctx.store, &ids, hash::default_threads());
    let bad: Vec<String> = results
        .iter()
        .filter(|h| {
            matches!(
                h.state,
                HealthState::Missing | HealthState::Corrupted | HealthState::Incomplete
            )
        })
        .map(|h| format!("{}: {} ({})", h.model_id, h.state.as_str(), h.reason))
        .collect();
    Ok(if bad.is_empty() {
        StepOutcome::ok(
            format!(
                "all {} model(s) present with the recorded sizes (quick check)",
                results.len()
            ),
            vec![],
        )
    } else {
        StepOutcome::fail(
            format!(
                "{} of {} model(s) are not accessible; repair them from the Models pane (r)",
                bad.len(),
                results.len()
            ),
            bad,
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::engine::migration::{run_step, test_context as ctx};

    #[test]
    fn model_checks_name_the_bad_models() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        c.store.ensure().unwrap();
        std::fs::create_dir_all(c.store.root().join("legacy")).unwrap();
        std::fs::write(c.store.root().join("legacy").join("w.bin"), b"weights").unwrap();
        // Accessible only once it has metadata; the migration step creates it and verifies.
        let o = run_step("model_data_migrated", &c);
        assert!(o.ok, "{o:?}");
        assert!(
            o.log.iter().any(|l| l.contains("legacy: metadata created")),
            "{o:?}"
        );
        assert!(
            c.store
                .metadata_path(&crate::engine::store::RepoId::parse("legacy").unwrap())
                .exists()
        );
        assert!(run_step("models_accessible", &c).ok);
        std::fs::write(c.store.root().join("legacy").join("w.bin"), b"short").unwrap();
        let o = run_step("models_accessible", &c);
        assert!(!o.ok && o.log[0].contains("legacy"), "{o:?}");
        assert!(run_step("basic_functionality", &c).ok);
    }
}
