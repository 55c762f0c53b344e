//! Storage maintenance: `cleanup` (stale temp files, old logs, backup compression) and `move-models` (copy,
//! verify, switch the configuration, delete; journaled so an interrupted move loses nothing and a re-run finishes).
//!
//! - `cleanup.rs`: [`cleanup`].
//! - `relocate.rs`: [`move_models`] and its journal.

mod cleanup;
mod relocate;

pub use cleanup::{CleanupItem, CleanupOptions, CleanupReport, cleanup, gzip_file};
pub use relocate::{
    MOVE_JOURNAL, MOVE_STOP_ENV, MoveJournal, MoveOptions, MovePhase, MoveReport, move_models,
    normalize, set_models_directory,
};
