//! What a step runner gets ([`MigrationContext`]: the configuration, the store, where backups go) and what it
//! gives back ([`StepOutcome`], recorded by the checklist).

use std::path::PathBuf;

use crate::engine::config::LoadedConfig;
use crate::engine::error::Result;
use crate::engine::store::Store;

/// What the runners need.
#[derive(Debug, Clone)]
pub struct MigrationContext {
    pub loaded: LoadedConfig,
    /// The `--config` flag, to reload the configuration the same way.
    pub config_flag: Option<PathBuf>,
    pub store: Store,
    /// Where backups go (default `<cache>/backups`).
    pub backup_root: PathBuf,
    /// The backup made earlier, if any (for the rollback check).
    pub last_backup: Option<PathBuf>,
}

impl MigrationContext {
    pub fn new(loaded: LoadedConfig, config_flag: Option<PathBuf>) -> Self {
        let store = Store::new(loaded.config.storage.models_directory.clone());
        let backup_root = loaded.config.storage.cache_dir().join("backups");
        MigrationContext {
            loaded,
            config_flag,
            store,
            backup_root,
            last_backup: None,
        }
    }
}

/// The result of running a step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepOutcome {
    pub ok: bool,
    pub details: String,
    pub log: Vec<String>,
    /// Set by the backup step.
    pub backup: Option<PathBuf>,
}

impl StepOutcome {
    pub(super) fn ok(details: impl Into<String>, log: Vec<String>) -> Self {
        StepOutcome {
            ok: true,
            details: details.into(),
            log,
            backup: None,
        }
    }
    pub(super) fn fail(details: impl Into<String>, log: Vec<String>) -> Self {
        StepOutcome {
            ok: false,
            ..StepOutcome::ok(details, log)
        }
    }

    /// The outcome of a runner that can fail with an error: the error is the failure's details and its log.
    pub(super) fn from_result(r: Result<StepOutcome>) -> Self {
        match r {
            Ok(o) => o,
            Err(e) => StepOutcome::fail(e.to_string(), vec![e.to_string()]),
        }
    }
}
