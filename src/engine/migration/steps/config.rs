//! "Configuration migrated": the legacy `config.json` converted by migrate-config (the guide's mapping table) into
//! `<root>/config/enhanced_model_config.json` when no enhanced configuration exists there, then validated by the
//! full validator (every problem with its position and fix).

use crate::engine::config::migrate::migrate;
use crate::engine::config::validate;
use crate::engine::config::writer::{Overwrite, write_new};
use crate::engine::error::{EmaError, Result};
use crate::engine::migration::context::{MigrationContext, StepOutcome};

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
        let mig = migrate(&text, legacy)?;
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
