//! The step runners: what each automatic step does, one file per concern, and [`run_step`] dispatching a step id
//! to its runner. A new automatic step is a runner in one of these files (or a new file) plus an arm below.

mod api;
mod backup;
mod config;
mod models;
mod system;

use super::checklist::{StepKind, step_def};
use super::context::{MigrationContext, StepOutcome};

/// Run an automatic step (blocking: call it from a blocking task). Manual steps return a failed outcome saying so.
pub fn run_step(id: &str, ctx: &MigrationContext) -> StepOutcome {
    match id {
        "system_requirements" => system::system_requirements(ctx),
        "backup" => StepOutcome::from_result(backup::backup(ctx)),
        "installed" => system::installed(),
        "config_migrated" => config::config_migrated(ctx),
        "model_data_migrated" => StepOutcome::from_result(models::model_data_migrated(ctx)),
        "basic_functionality" => StepOutcome::from_result(models::basic_functionality(ctx)),
        "models_accessible" => StepOutcome::from_result(models::models_accessible(ctx)),
        "api_responding" => api::api_responding(ctx),
        "rollback_verified" => backup::rollback_verified(ctx),
        other => match step_def(other) {
            Some(d) if d.kind == StepKind::Manual => StepOutcome::fail(
                format!("\"{}\" is manual: do it, then mark it done", d.title),
                vec![],
            ),
            _ => StepOutcome::fail(format!("no migration step {other:?}"), vec![]),
        },
    }
}
