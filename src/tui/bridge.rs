//! The thin bridge between the console and the engine: the few calls the console needs. The console only ever talks
//! to a `ConsoleBackend`; the implementation here drives the engine parts that exist (store inventory, event bus,
//! migration wizard).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::engine::config::{HubEnv, LoadedConfig};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Event, EventBus};
use crate::engine::inventory::{self, ModelInfo};
use crate::engine::migration::{self, MigrationContext, MigrationState, StepOutcome};
use crate::engine::store::{RepoId, Store};

use super::state::{HubFacts, StorageFacts};

/// Facts that do not change while the console runs.
#[derive(Debug, Clone)]
pub struct BackendInfo {
    pub store_root: PathBuf,
    pub hub_endpoint: String,
    pub offline_mode: bool,
}

/// What the console needs from the engine.
pub trait ConsoleBackend: Send + Sync + 'static {
    fn info(&self) -> BackendInfo;
    /// Engine events (progress, alerts, logs).
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    /// Every model in the store plus the watch list.
    fn models(&self) -> impl Future<Output = Result<Vec<ModelInfo>>> + Send + 'static;
    fn storage(&self) -> impl Future<Output = Result<StorageFacts>> + Send + 'static;
    /// Can the hub be reached right now?
    fn hub_reachable(&self) -> impl Future<Output = bool> + Send + 'static;
    /// Start (or resume) a download; the returned text is shown to the operator.
    fn download(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn pause(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn resume(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn cancel(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn verify(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn repair(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn delete(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn migration_load(&self) -> Result<MigrationState>;
    fn migration_save(
        &self,
        state: MigrationState,
    ) -> impl Future<Output = Result<()>> + Send + 'static;
    /// Run one automatic migration step (the backup made earlier is passed for the rollback check).
    fn migration_run(
        &self,
        step: String,
        last_backup: Option<PathBuf>,
    ) -> impl Future<Output = StepOutcome> + Send + 'static;
}

/// The backend over the engine parts that exist today: the store on disk, its metadata sidecars and the event bus.
/// Downloads and hash verification belong to the download engine and the integrity checker; until those are in
/// this build, asking for them returns an error that says so.
#[derive(Clone)]
pub struct StoreBackend {
    inner: Arc<Inner>,
}

struct Inner {
    loaded: LoadedConfig,
    config_flag: Option<PathBuf>,
    store: Store,
    bus: EventBus,
    hub: HubEnv,
}

impl StoreBackend {
    pub fn new(
        loaded: LoadedConfig,
        config_flag: Option<PathBuf>,
        bus: EventBus,
        hub: HubEnv,
    ) -> Self {
        let store = Store::new(loaded.config.storage.models_directory.clone());
        StoreBackend {
            inner: Arc::new(Inner {
                loaded,
                config_flag,
                store,
                bus,
                hub,
            }),
        }
    }

    fn not_in_build(what: &str, cmd: &str) -> EmaError {
        EmaError::Other(format!(
            "{what} is not available in this build yet (the download engine is not linked in); use `{cmd}` once \
             it is"
        ))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EmaError::Other(format!("background task failed: {e}")))?
}

// The futures must be `'static` (the console spawns them), which `async fn` with `&self` would not give.
#[allow(clippy::manual_async_fn)]
impl ConsoleBackend for StoreBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            store_root: self.inner.store.root().to_path_buf(),
            hub_endpoint: self.inner.hub.endpoint.clone(),
            offline_mode: self.inner.hub.offline,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.bus.subscribe()
    }

    fn models(&self) -> impl Future<Output = Result<Vec<ModelInfo>>> + Send + 'static {
        let inner = self.inner.clone();
        blocking(move || inventory::scan(&inner.store, &inner.loaded.config.storage.wanted_models))
    }

    fn storage(&self) -> impl Future<Output = Result<StorageFacts>> + Send + 'static {
        let inner = self.inner.clone();
        blocking(move || {
            let s = &inner.loaded.config.storage;
            let used = inventory::dir_size(inner.store.root());
            let disk = inventory::disk_space(inner.store.root()).ok();
            Ok(StorageFacts {
                used_bytes: used,
                max_storage_gb: s.max_storage_gb,
                cleanup_threshold_percent: s.cleanup_threshold_percent,
                disk_available_bytes: disk.map(|d| d.available_bytes),
                disk_total_bytes: disk.map(|d| d.total_bytes),
            })
        })
    }

    fn hub_reachable(&self) -> impl Future<Output = bool> + Send + 'static {
        let endpoint = self.inner.hub.endpoint.clone();
        let offline = self.inner.hub.offline;
        async move {
            if offline {
                return false;
            }
            inventory::endpoint_reachable(&endpoint, std::time::Duration::from_secs(3)).await
        }
    }

    fn download(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        async move {
            Err(Self::not_in_build(
                &format!("downloading {model_id}"),
                "ema download",
            ))
        }
    }

    fn pause(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        async move {
            Err(Self::not_in_build(
                &format!("pausing {model_id}"),
                "ema download",
            ))
        }
    }

    fn resume(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        async move {
            Err(Self::not_in_build(
                &format!("resuming {model_id}"),
                "ema download",
            ))
        }
    }

    fn cancel(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        async move {
            Err(Self::not_in_build(
                &format!("cancelling {model_id}"),
                "ema download",
            ))
        }
    }

    fn verify(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        async move {
            Err(EmaError::Other(format!(
                "verifying {model_id} needs the integrity checker, which is not in this build yet"
            )))
        }
    }

    fn repair(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        async move {
            Err(EmaError::Other(format!(
                "repairing {model_id} needs the integrity checker and the download engine, which are not in \
                 this build yet"
            )))
        }
    }

    fn delete(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let inner = self.inner.clone();
        blocking(move || {
            let id = RepoId::parse(&model_id)?;
            inventory::delete_model(
                &inner.store,
                &id,
                inner.loaded.config.storage.shared_storage,
            )?;
            inner.bus.emit(Event::AvailabilityChanged {
                model_id: model_id.clone(),
                old_status: None,
                new_status: crate::engine::events::Availability::Missing,
            });
            Ok(format!("deleted {model_id}"))
        })
    }

    fn migration_load(&self) -> Result<MigrationState> {
        MigrationState::load(&self.inner.store)
    }

    fn migration_save(
        &self,
        mut state: MigrationState,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let inner = self.inner.clone();
        blocking(move || state.save(&inner.store))
    }

    fn migration_run(
        &self,
        step: String,
        last_backup: Option<PathBuf>,
    ) -> impl Future<Output = StepOutcome> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            let r = tokio::task::spawn_blocking(move || {
                let mut ctx =
                    MigrationContext::new(inner.loaded.clone(), inner.config_flag.clone());
                ctx.last_backup = last_backup;
                migration::run_step(&step, &ctx)
            })
            .await;
            r.unwrap_or_else(|e| StepOutcome {
                ok: false,
                details: format!("the step's task failed: {e}"),
                log: vec![],
                backup: None,
            })
        }
    }
}

/// Hub facts for the status bar from the backend's static info.
pub fn hub_facts(info: &BackendInfo) -> HubFacts {
    HubFacts {
        endpoint: info.hub_endpoint.clone(),
        offline_mode: info.offline_mode,
        reachable: None,
    }
}
