//! The thin bridge between the console and the engine: the few calls the console needs. The console only ever talks
//! to a `ConsoleBackend`; [`EngineBackend`] implements it over the engine.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::engine::Engine;
use crate::engine::config::LoadedConfig;
use crate::engine::download::{DownloadOptions, DownloadReport, DownloadSnapshot};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::Event;
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
    /// Every download the engine knows (in this process or persisted by another).
    fn downloads(&self) -> Vec<DownloadSnapshot>;
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
    /// Continue downloads left unfinished by an earlier run (called once at startup, in the background).
    fn resume_unfinished(&self) -> impl Future<Output = ()> + Send + 'static;
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

/// The backend over the real engine: the [`Engine`] facade (downloads with pause/resume/cancel, its event bus), the
/// store inventory and the migration wizard. Hash verification and repair belong to the integrity checker; until it
/// is in this build, asking for them returns an error that says so.
#[derive(Clone)]
pub struct EngineBackend {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    loaded: LoadedConfig,
    config_flag: Option<PathBuf>,
}

impl EngineBackend {
    pub fn new(engine: Engine, loaded: LoadedConfig, config_flag: Option<PathBuf>) -> Self {
        EngineBackend {
            inner: Arc::new(Inner {
                engine,
                loaded,
                config_flag,
            }),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn store(&self) -> &Store {
        self.inner.engine.store()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EmaError::Other(format!("background task failed: {e}")))?
}

fn report_text(r: &DownloadReport) -> String {
    if !r.completed {
        format!("download of {} cancelled", r.model_id)
    } else if r.bytes_fetched == 0 {
        format!(
            "{} is complete: {} file(s) already present and verified",
            r.model_id, r.files
        )
    } else {
        format!(
            "downloaded {}: {} file(s), {} in {:.1}s",
            r.model_id,
            r.files,
            super::state::human_bytes(r.bytes_fetched),
            r.seconds
        )
    }
}

// The futures must be `'static` (the console spawns them), which `async fn` with `&self` would not give.
#[allow(clippy::manual_async_fn)]
impl ConsoleBackend for EngineBackend {
    fn info(&self) -> BackendInfo {
        let env = self.inner.engine.hub_env();
        BackendInfo {
            store_root: self.store().root().to_path_buf(),
            hub_endpoint: env.endpoint.clone(),
            offline_mode: env.offline,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.engine.bus().subscribe()
    }

    fn models(&self) -> impl Future<Output = Result<Vec<ModelInfo>>> + Send + 'static {
        let inner = self.inner.clone();
        blocking(move || {
            let mut wanted = inner.loaded.config.storage.wanted_models.clone();
            // Models with a download in the queue show up even before their folder exists.
            for d in inner.engine.downloads() {
                if !wanted.contains(&d.model_id) {
                    wanted.push(d.model_id);
                }
            }
            let mut rows = inventory::scan(inner.engine.store(), &wanted)?;
            let configured = &inner.loaded.config.storage.wanted_models;
            for r in &mut rows {
                r.wanted = configured.iter().any(|w| w.trim() == r.id.as_str());
            }
            Ok(rows)
        })
    }

    fn downloads(&self) -> Vec<DownloadSnapshot> {
        self.inner.engine.downloads()
    }

    fn storage(&self) -> impl Future<Output = Result<StorageFacts>> + Send + 'static {
        let inner = self.inner.clone();
        blocking(move || {
            let s = &inner.loaded.config.storage;
            let root = inner.engine.store().root();
            let used = inventory::dir_size(root);
            let disk = inventory::disk_space(root).ok();
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
        let env = self.inner.engine.hub_env().clone();
        async move {
            if env.offline {
                return false;
            }
            inventory::endpoint_reachable(&env.endpoint, std::time::Duration::from_secs(3)).await
        }
    }

    fn download(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            let repo = RepoId::parse(&model_id)?;
            let report = engine.download(&repo, DownloadOptions::default()).await?;
            Ok(report_text(&report))
        }
    }

    fn pause(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            engine.pause(&RepoId::parse(&model_id)?)?;
            Ok(format!("paused {model_id}; u resumes it"))
        }
    }

    fn resume(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            let repo = RepoId::parse(&model_id)?;
            let running_here = engine
                .downloads()
                .iter()
                .any(|d| d.model_id == model_id && d.in_process);
            if running_here {
                engine.resume(&repo)?;
                Ok(format!("resumed {model_id}"))
            } else {
                // Nobody works on it (failed, or left by a stopped process): continue it here.
                let report = engine.download(&repo, DownloadOptions::default()).await?;
                Ok(report_text(&report))
            }
        }
    }

    fn cancel(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            engine.cancel(&RepoId::parse(&model_id)?)?;
            Ok(format!("cancelled {model_id}"))
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
                "repairing {model_id} needs the integrity checker, which is not in this build yet; d re-downloads \
                 missing files"
            )))
        }
    }

    fn delete(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let inner = self.inner.clone();
        blocking(move || {
            let id = RepoId::parse(&model_id)?;
            inventory::delete_model(
                inner.engine.store(),
                &id,
                inner.loaded.config.storage.shared_storage,
            )?;
            inner.engine.bus().emit(Event::AvailabilityChanged {
                model_id: model_id.clone(),
                old_status: None,
                new_status: crate::engine::events::Availability::Missing,
            });
            Ok(format!("deleted {model_id}"))
        })
    }

    fn resume_unfinished(&self) -> impl Future<Output = ()> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            let _ = engine.resume_unfinished().await;
        }
    }

    fn migration_load(&self) -> Result<MigrationState> {
        MigrationState::load(self.store())
    }

    fn migration_save(
        &self,
        mut state: MigrationState,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let store = self.store().clone();
        blocking(move || state.save(&store))
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
