//! The engine facade the faces (console, CLI, server) build on: one value holding the configuration, the Hub
//! environment, the store, the event bus and the download manager.
//!
//! ```no_run
//! # async fn demo() -> ema::engine::Result<()> {
//! use ema::engine::{Engine, config, download::DownloadOptions, store::RepoId};
//! let engine = Engine::new(config::Config::default(), config::hub_env::HubEnv::from_env())?;
//! let mut events = engine.bus().subscribe();          // progress, state changes, retries …
//! let repo = RepoId::parse("org/model")?;
//! let report = engine.download(&repo, DownloadOptions::default()).await?;
//! for m in engine.model_statuses(false)? { println!("{} {:?}", m.model_id, m.availability); }
//! # let _ = (report, events.try_recv()); Ok(()) }
//! ```

use super::config::Config;
use super::config::hub_env::HubEnv;
use super::download::{DownloadManager, DownloadOptions, DownloadReport, DownloadSnapshot};
use super::error::Result;
use super::events::EventBus;
use super::inventory::{self, ModelStatus};
use super::store::{RepoId, Store};
use super::{health, integrity};

/// The engine: cheap to clone, shareable across tasks.
#[derive(Clone, Debug)]
pub struct Engine {
    config: Config,
    hub_env: HubEnv,
    store: Store,
    bus: EventBus,
    downloads: DownloadManager,
    fallback: super::fallback::index::Index,
}

impl Engine {
    /// An engine over `config.storage.models_directory`, talking to the hub in `hub_env`.
    pub fn new(config: Config, hub_env: HubEnv) -> Result<Self> {
        let store = Store::new(config.storage.models_directory.clone());
        let bus = EventBus::new();
        let downloads = DownloadManager::new(
            config.downloads.clone(),
            store.clone(),
            hub_env.clone(),
            bus.clone(),
        )?;
        Ok(Engine {
            config,
            hub_env,
            store,
            bus,
            downloads,
            fallback: Default::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn hub_env(&self) -> &HubEnv {
        &self.hub_env
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The event bus: subscribe to receive every [`crate::engine::events::Event`].
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub fn download_manager(&self) -> &DownloadManager {
        &self.downloads
    }

    /// Download a model and wait for the outcome (spawn it to run in the background). Progress on the bus.
    pub async fn download(&self, repo: &RepoId, opts: DownloadOptions) -> Result<DownloadReport> {
        self.downloads.download(repo, opts).await
    }

    /// Pause a download running here or in another `ema` process.
    pub fn pause(&self, repo: &RepoId) -> Result<()> {
        self.downloads.pause(repo)
    }

    /// Resume a paused download running here or in another process.
    pub fn resume(&self, repo: &RepoId) -> Result<()> {
        self.downloads.resume(repo)
    }

    /// Cancel a download: it stops and its partial data is deleted.
    pub fn cancel(&self, repo: &RepoId) -> Result<()> {
        self.downloads.cancel(repo)
    }

    /// Every download in this process or persisted by another.
    pub fn downloads(&self) -> Vec<DownloadSnapshot> {
        self.downloads.downloads()
    }

    /// Continue the persisted downloads no process is working on (call at startup).
    pub async fn resume_unfinished(&self) -> Vec<(RepoId, Result<DownloadReport>)> {
        self.downloads.resume_unfinished().await
    }

    /// Every model in the store and every download in flight: availability, size, commit, verification state,
    /// last verification; per-file detail when `detailed`.
    pub fn model_statuses(&self, detailed: bool) -> Result<Vec<ModelStatus>> {
        inventory::model_statuses(&self.store, &self.downloads(), detailed)
    }

    /// Start the health monitor on the current tokio runtime when the configuration enables it
    /// (`health_monitoring.enabled && features.health_monitoring`); it repairs through this engine's downloads
    /// when `auto_repair_enabled`. Stops when `shutdown` is cancelled.
    pub fn spawn_health_monitor(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let repairer = std::sync::Arc::new(self.repairer());
        health::spawn(
            self.store.clone(),
            self.config.clone(),
            self.bus.clone(),
            Some(repairer),
            shutdown,
        )
    }

    /// Fully verify models (every byte hashed; all models when `ids` is empty) on blocking threads; results are
    /// recorded in the metadata, the health snapshot and the alert history, and published as `HealthChanged`.
    pub async fn verify_models(
        &self,
        ids: &[RepoId],
    ) -> Result<Vec<integrity::verify::ModelHealth>> {
        let store = self.store.clone();
        let ids = if ids.is_empty() {
            store.list_models()?
        } else {
            ids.to_vec()
        };
        let results = tokio::task::spawn_blocking(move || {
            let r = integrity::verify::verify_models(
                &store,
                &ids,
                &integrity::verify::VerifyOptions::default(),
            )?;
            health::HealthSnapshot::record(&store, &r)?;
            let news = health::record_health_alerts(&health::AlertStore::new(&store), &r)?;
            Ok::<_, super::EmaError>((r, news))
        })
        .await
        .map_err(|e| super::EmaError::Other(format!("verification task failed: {e}")))??;
        let (results, news) = results;
        for h in &results {
            self.bus.emit(super::events::Event::HealthChanged {
                model_id: h.model_id.clone(),
                state: h.state,
                reason: h.reason.clone(),
            });
        }
        for a in news {
            self.bus.emit(a.to_event());
        }
        Ok(results)
    }

    /// The repairer: local copies first (`storage.repair_sources`, the Hugging Face cache), then the hub.
    pub fn repairer(&self) -> integrity::repair::DownloadRepairer {
        use integrity::repair::LocalSource;
        let mut local_sources: Vec<LocalSource> = self
            .config
            .storage
            .repair_sources
            .iter()
            .cloned()
            .map(LocalSource::Store)
            .collect();
        local_sources.push(LocalSource::HfCache(super::config::hub_env::hf_hub_cache()));
        integrity::repair::DownloadRepairer {
            manager: self.downloads.clone(),
            local_sources,
        }
    }

    /// Repair a model: verify it, re-download only its bad or missing files, verify again.
    pub async fn repair_model(&self, repo: &RepoId) -> Result<integrity::verify::ModelHealth> {
        let before = self.verify_models(std::slice::from_ref(repo)).await?;
        let repairer = self.repairer();
        let outcomes =
            integrity::repair::repair_models(&self.store, &before, &repairer, false).await;
        if let Some(e) = outcomes.iter().find_map(|o| o.error.clone()) {
            return Err(super::EmaError::Other(e));
        }
        let mut after = self.verify_models(std::slice::from_ref(repo)).await?;
        Ok(after.remove(0))
    }

    /// The persisted alert history (`<store>/.ema/alerts.jsonl`): list, acknowledge.
    pub fn alerts(&self) -> health::AlertStore {
        health::AlertStore::new(&self.store)
    }

    /// Substitutes for a requested model: operator rules, then the score, then the mock (see
    /// [`super::fallback`]); publishes `ModelRequested`, `FallbackOffered` / `MockServed`.
    pub async fn suggest(&self, req: &super::fallback::Request) -> Result<super::fallback::Report> {
        let ctx = super::fallback::Context {
            config: &self.config,
            store: &self.store,
            downloads: &self.downloads,
            bus: &self.bus,
            index: &self.fallback,
            offline: self.hub_env.offline,
        };
        super::fallback::suggest(&ctx, req).await
    }

    /// The status of one model.
    pub fn model_status(&self, repo: &RepoId, detailed: bool) -> Result<ModelStatus> {
        let dl = self
            .downloads()
            .into_iter()
            .find(|d| d.model_id == repo.as_str());
        inventory::model_status(&self.store, repo, dl, detailed)
    }
}
