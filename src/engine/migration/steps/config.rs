//! The configuration step: the configuration in force validated by the full validator.

use std::path::PathBuf;

use crate::engine::config;
use crate::engine::config::validate;
use crate::engine::error::EmaError;
use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// Validate the configuration in force with the full validator (every problem, with positions and fixes). A
/// legacy `config.json` with no enhanced file in force is pointed at `ema migrate-config`.
pub(super) fn config_migrated(ctx: &MigrationContext) -> StepOutcome {
    let (path, source, _) = match config::discover(ctx.config_flag.as_deref()) {
        Ok(d) => d,
        Err(e) => return StepOutcome::fail(e.to_string(), vec![e.to_string()]),
    };
    let Some(path) = path else {
        let legacy = PathBuf::from("config.json");
        if legacy.is_file() {
            return StepOutcome::fail(
                "a legacy config.json is here but no enhanced configuration is in force; run `ema migrate-config \
                 --source config.json --target config/enhanced_model_config.json --backup`",
                vec![],
            );
        }
        return StepOutcome::ok(
            "no configuration file: built-in defaults are in force (create one with `ema configure`)",
            vec![source.describe().to_string()],
        );
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            let e = EmaError::io("cannot read configuration file", &path, e);
            return StepOutcome::fail(e.to_string(), vec![]);
        }
    };
    let v = validate::validate_text(&text);
    let mut log = vec![format!(
        "configuration: {} ({})",
        path.display(),
        source.describe()
    )];
    log.extend(v.problems.iter().map(|p| p.human(&path)));
    if v.is_valid() {
        StepOutcome::ok("the configuration validates", log)
    } else {
        StepOutcome::fail(
            format!(
                "{} problem(s) in {}; repair with `ema fix-config --config {} --auto-fix`",
                v.problems.len(),
                path.display(),
                path.display()
            ),
            log,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::migration::{run_step, test_context as ctx};

    #[test]
    fn config_step_lists_every_problem() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        assert!(run_step("config_migrated", &c).ok);
        std::fs::write(
            c.loaded.path.as_ref().unwrap(),
            r#"{"storage": {"modles_directory": "x", "max_storage_gb": -1}}"#,
        )
        .unwrap();
        let o = run_step("config_migrated", &c);
        assert!(!o.ok, "{o:?}");
        assert!(o.details.contains("2 problem(s)"), "{o:?}");
        assert!(
            o.log.iter().any(|l| l.contains("modles_directory")),
            "{o:?}"
        );
    }
}
