//! Integrity and storage commands: generate-metadata, verify-all-models, check-models, health, cleanup,
//! move-models. Handlers only parse, call the engine and print.
//!
//! - `args.rs`: the commands' arguments.
//! - `check.rs`: verify-all-models and check-models; `report.rs`: printing their results.
//! - `generate.rs`, `health.rs`, `storage.rs` (cleanup, move-models): one command file each.
//! - `common.rs`: the models directory, byte sizes, the runtime.

mod args;
mod check;
mod common;
mod generate;
mod health;
mod report;
mod storage;

pub use args::{
    CheckArgs, CleanupArgs, GenerateMetadataArgs, HealthArgs, MoveArgs, REPORT_PATH, VerifyArgs,
};
pub use check::{check_models, verify_all};
pub use common::human_bytes;
pub use generate::generate_metadata;
pub use health::health_cmd;
pub use storage::{cleanup_cmd, move_cmd};
