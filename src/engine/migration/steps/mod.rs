//! The step runners: what each automatic step does, one file per concern, and [`run_step`] dispatching a step id
//! to its runner. Every runner does real engine work on the recorded plan, or says plainly that the part it needs
//! is not built yet (a blocked outcome, never a pass).

mod api;
mod backup;
mod config;
mod features;
mod later;
mod models;
mod monitoring;
mod services;
mod system;

pub use services::{Holder, listeners_on, open_under};

use super::catalog::{StepKind, step_def, step_ids};
use super::context::{MigrationContext, StepOutcome};

/// Run an automatic step (blocking: call it from a blocking task). Manual steps return a failed outcome saying so.
pub fn run_step(id: &str, ctx: &MigrationContext) -> StepOutcome {
    match id {
        "system_requirements" => system::system_requirements(ctx),
        "backup" => StepOutcome::from_result(backup::backup(ctx)),
        "rollback_tested" => StepOutcome::from_result(backup::rollback_tested(ctx)),
        "services_stopped" => services::services_stopped(ctx),
        "installed" => system::installed(),
        "config_migrated" => StepOutcome::from_result(config::config_migrated(ctx)),
        "model_data_migrated" => StepOutcome::from_result(models::model_data_migrated(ctx)),
        "database_migrated" => later::database_migrated(ctx),
        "services_started" => StepOutcome::from_result(api::services_started(ctx)),
        "basic_functionality" => StepOutcome::from_result(models::basic_functionality(ctx)),
        "models_accessible" => StepOutcome::from_result(models::models_accessible(ctx)),
        "api_responding" => StepOutcome::from_result(api::api_responding(ctx)),
        "features_working" => StepOutcome::from_result(features::features_working(ctx)),
        "performance_acceptable" => StepOutcome::from_result(models::performance_acceptable(ctx)),
        "monitoring_configured" => StepOutcome::from_result(monitoring::monitoring_configured(ctx)),
        "rollback_verified" => StepOutcome::from_result(backup::rollback_verified(ctx)),
        other => match step_def(other) {
            Some(d) if d.kind == StepKind::Manual => StepOutcome::fail(
                format!(
                    "\"{}\" is manual: do it, then confirm it with a note",
                    d.title
                ),
                vec![],
            ),
            _ => StepOutcome::fail(
                format!("no migration step {other:?}; the steps are: {}", step_ids()),
                vec![],
            ),
        },
    }
}
