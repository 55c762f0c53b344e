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

use super::analytics::{self, Record, Recorder, RecorderStats};
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
    /// The usage-analytics recorder, once started ([`Engine::start_analytics`]).
    recorder: std::sync::Arc<std::sync::OnceLock<Recorder>>,
    /// The analytics database the fallback score reads, opened once (schema checked once) and shared by every call.
    usage_db: std::sync::Arc<std::sync::Mutex<Option<analytics::AnalyticsDb>>>,
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
            recorder: Default::default(),
            usage_db: Default::default(),
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

    /// Start recording usage analytics on the current tokio runtime, following the event bus — when the
    /// configuration enables it (`analytics.enabled` and `features.usage_analytics`). Never waits on the database
    /// (an unreachable one makes the recorder count dropped events). Idempotent; None when disabled or the
    /// configured URL is unusable (said on the bus).
    pub fn start_analytics(&self) -> Option<&Recorder> {
        if !analytics::enabled(&self.config) {
            return None;
        }
        if let Some(r) = self.recorder.get() {
            return Some(r);
        }
        match analytics::locate(None, &self.config) {
            Ok(url) => Some(self.recorder.get_or_init(|| {
                let r = Recorder::start(url);
                r.follow(self.bus.subscribe());
                r
            })),
            Err(e) => {
                self.bus.emit(super::events::Event::Log {
                    level: super::events::Severity::Warning,
                    message: format!("usage analytics off: {e}"),
                });
                None
            }
        }
    }

    /// The running analytics recorder, if started.
    pub fn analytics(&self) -> Option<&Recorder> {
        self.recorder.get()
    }

    /// Record one analytics event (model requested, served, fallback offered or taken, …) when the recorder runs.
    /// Never waits.
    pub fn record(&self, r: Record) {
        if let Some(rec) = self.recorder.get() {
            rec.record(r);
        }
    }

    /// Stop the recorder: flush within `timeout` (what remains is counted as dropped). None when not started.
    pub async fn stop_analytics(&self, timeout: std::time::Duration) -> Option<RecorderStats> {
        match self.recorder.get() {
            Some(r) => Some(r.shutdown(timeout).await),
            None => None,
        }
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
        let failed = outcomes.iter().find_map(|o| o.error.clone());
        self.record(
            Record::new(analytics::kind::REPAIR, Some(repo.as_str())).result(if failed.is_some() {
                "failed"
            } else {
                "ok"
            }),
        );
        if let Some(e) = failed {
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
        if req.usage.successes.is_empty() {
            let mut req = req.clone();
            req.usage = self.usage_hints().await;
            return super::fallback::suggest(&ctx, &req).await;
        }
        super::fallback::suggest(&ctx, req).await
    }

    /// Recent successful use per model (the last 30 days) from the analytics database, for the fallback score.
    /// Empty when analytics is off, its database does not exist yet (it is never created here) or does not answer
    /// within half a second.
    pub async fn usage_hints(&self) -> super::fallback::UsageHints {
        let mut hints = super::fallback::UsageHints::default();
        if !analytics::enabled(&self.config) {
            return hints;
        }
        let Ok(url) = analytics::url::DbUrl::resolve(None, &self.config) else {
            return hints;
        };
        if url.sqlite_path().is_some_and(|p| !p.exists()) {
            return hints;
        }
        let since = analytics::record::now_ms() - 30 * 24 * 3600 * 1000;
        let cached = self.usage_db.lock().ok().and_then(|g| g.clone());
        let query = async {
            let db = match cached {
                Some(db) => db,
                None => {
                    let db = analytics::db::AnalyticsDb::open(&url).await.ok()?;
                    if let Ok(mut g) = self.usage_db.lock() {
                        *g = Some(db.clone());
                    }
                    db
                }
            };
            analytics::report::successes_since(&db, since).await.ok()
        };
        if let Ok(Some(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(500), query).await
        {
            hints.successes = m;
        }
        hints
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
