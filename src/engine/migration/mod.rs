//! The migration wizard's engine: the spec's three checklists (pre-migration, migration, post-migration) as one
//! persisted state machine over a recorded plan of the legacy setup, driven the same way by the CLI (`ema migrate
//! …`) and the console's Migration pane.
//!
//! Every step ema can do runs real engine work on the planned install (check-system, backup, a test restore of the
//! backup, /proc checks that the legacy service is stopped, migrate-config, migrate-models, verify-migration, read
//! throughput against baselines, the backup re-hashed against its manifest); steps that need parts of ema that do
//! not exist yet say so (blocked, never a pass); only the human steps are manual, each confirmed with a note.
//!
//! - `catalog.rs`: the steps, their phases, kinds and prerequisites.
//! - `plan.rs`: detecting and recording the legacy setup ([`MigrationPlan`]).
//! - `checklist.rs`: the persisted [`MigrationState`] and its transitions.
//! - `wizard.rs`: the [`Wizard`] both faces call: state directory, journal, lock, plan / run / next / confirm.
//! - `context.rs`: what a runner gets ([`MigrationContext`]) and gives back ([`StepOutcome`]).
//! - `steps/`: the step runners, one file per concern, and [`run_step`].

mod catalog;
mod checklist;
mod context;
mod plan;
mod steps;
pub mod systemd;
mod wizard;

pub use catalog::{Phase, STEPS, StepDef, StepKind, step_def, step_ids};
pub use checklist::{LogLine, MigrationState, SCHEMA_VERSION, STATE_FILE, StepRecord, StepState};
pub use context::{MigrationContext, StepOutcome, Verdict};
pub use plan::{DEFAULT_LEGACY_PORT, MigrationPlan, Mode, PlanRequest, PlannedModel, make_plan};
pub use steps::{Holder, listeners_on, open_under, run_step};
pub use wizard::{Next, RunEnv, Wizard, default_dir, default_install_dir};

/// The hook a face provides so "Enhanced features working" can serve its sample hub (the engine cannot serve HTTP).
pub use crate::engine::selftest::{SampleHub, SampleHubStarter};

#[cfg(test)]
mod tests;
