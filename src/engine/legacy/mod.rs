//! Legacy model directories: recognising what older tools left on disk (plain folders, `--local-dir` downloads,
//! a hub cache, the old transformers cache), identifying each model, and adopting it into ema's store in place.

pub mod adopt;
pub mod identify;
pub mod journal;
pub mod side_by_side;
pub mod survey;
pub mod verify;

pub use adopt::{AdoptOptions, MigrateReport, ModelOutcome, migrate_models};
pub use identify::{IdSource, read_map};
pub use survey::{Action, Layout, LegacyFile, LegacyModel, Survey, survey};
pub use verify::{MigrationCheck, verify_migration};

pub mod sample;
#[cfg(test)]
mod tests;
