//! The engine facade the faces (console, CLI, server) build on: one value holding the configuration, the Hub
//! environment, the store, the event bus and the download manager.
//!
//! ```no_run
//! # async fn demo() -> ema::engine::Result<()> {
//! use ema::engine::{Engine, config, download::DownloadOptions, store::RepoId};
//! let engine = Engine::new(config::Config::default(), config::HubEnv::from_env())?;
//! let mut events = engine.bus().subscribe();          // progress, state changes, retries …
//! let repo = RepoId::parse("org/model")?;
//! let report = engine.download(&repo, DownloadOptions::default()).await?;
//! for m in engine.model_statuses(false)? { println!("{} {:?}", m.model_id, m.availability); }
//! # let _ = (report, events.try_recv()); Ok(()) }
//! ```

use super::config::{Config, HubEnv};
use super::download::{DownloadManager, DownloadOptions, DownloadReport, DownloadSnapshot};
use super::error::Result;
use super::events::EventBus;
use super::status::{self, ModelStatus};
use super::store::{RepoId, Store};

/// The engine: cheap to clone, shareable across tasks.
#[derive(Clone, Debug)]
pub struct Engine {
    config: Config,
    hub_env: HubEnv,
    store: Store,
    bus: EventBus,
    downloads: DownloadManager,
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
        status::model_statuses(&self.store, &self.downloads(), detailed)
    }

    /// The status of one model.
    pub fn model_status(&self, repo: &RepoId, detailed: bool) -> Result<ModelStatus> {
        let dl = self
            .downloads()
            .into_iter()
            .find(|d| d.model_id == repo.as_str());
        status::model_status(&self.store, repo, dl, detailed)
    }
}
