//! The thin bridge between the console and the engine: the few calls the console needs. The console only ever talks
//! to a `ConsoleBackend`; [`EngineBackend`] implements it over the engine.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::engine::Engine;
use crate::engine::analytics;
use crate::engine::config::LoadedConfig;
use crate::engine::config::edit;
use crate::engine::download::{DownloadOptions, DownloadReport, DownloadSnapshot};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::Event;
use crate::engine::fallback::{self, Face, Report, Request, Requirements, UsageHints};
use crate::engine::health::{self, AlertStore, HealthSnapshot};
use crate::engine::integrity::repair;
use crate::engine::integrity::verify::{self, ModelHealth, VerifyOptions};
use crate::engine::inventory::{self, ModelInfo};
use crate::engine::migration::{self, MigrationState, Wizard};
use crate::engine::store::{RepoId, Store};

use super::state::alerts::AlertView;
use super::state::{HubFacts, LinkFacts, RemoteModel, StorageFacts};

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
    /// Hash every file of a model against its metadata; records the result and its alerts.
    fn verify(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn repair(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    fn delete(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    /// What the hub says about a model (task, size, commit), for models not in the store.
    fn remote_model(
        &self,
        model_id: String,
    ) -> impl Future<Output = Result<RemoteModel>> + Send + 'static;
    /// The engine's fallback answer for a requested model: operator rules, the scored ranking with its terms, the
    /// mock when nothing qualifies.
    fn suggest(&self, model_id: String) -> impl Future<Output = Result<Report>> + Send + 'static;
    /// Queue a requested model's download (refused when `fallback.queue_requests_enabled` is off) and run it in this
    /// process; `AvailabilityChanged` says when it is available.
    fn queue_request(
        &self,
        model_id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static;
    /// The operator took `substitute` in place of `requested` (usage analytics; nothing when recording is off).
    fn fallback_taken(&self, _requested: &str, _substitute: &str) {}
    /// Add a model to the watch list, saved in the configuration file in force.
    fn watch(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static;
    /// The alert history, newest first (resolved ones included, marked).
    fn alerts(&self) -> impl Future<Output = Result<Vec<AlertView>>> + Send + 'static;
    /// The usage-analytics summary of the last 24 hours; None when recording is off.
    fn analytics(
        &self,
    ) -> impl Future<Output = Result<Option<crate::engine::analytics::AnalyticsSummary>>> + Send + 'static;
    /// The saved performance recommendations (`ema analyze-performance --generate-recommendations`) not yet in force.
    fn recommendations(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::engine::advice::Recommendation>>> + Send + 'static;
    /// Apply one saved recommendation to the configuration file in force (backup first, a running server told);
    /// the text says what changed and what needs a restart.
    fn apply_recommendation(
        &self,
        id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static;
    /// Acknowledge an alert in the persisted history.
    fn acknowledge(
        &self,
        alert_id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static;
    /// Continue downloads left unfinished by an earlier run (called once at startup, in the background).
    fn resume_unfinished(&self) -> impl Future<Output = ()> + Send + 'static;
    /// The wizard's persisted state (the same one `ema migrate …` drives).
    fn migration_load(&self) -> Result<MigrationState>;
    /// Run one automatic step through the wizard (persisted, journaled); the state afterwards.
    fn migration_run(
        &self,
        step: String,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static;
    /// Confirm (or skip) a manual step with the operator's note; the state afterwards.
    fn migration_confirm(
        &self,
        step: String,
        note: String,
        skip: bool,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static;
    /// Put a step back to pending; the state afterwards.
    fn migration_reset(
        &self,
        step: String,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static;
    /// The server this console is attached to and the state of the link; None for the in-process engine.
    fn link(&self) -> Option<LinkFacts> {
        None
    }
}

/// The backend over the real engine: the [`Engine`] facade (downloads with pause/resume/cancel, its event bus), the
/// integrity checker (verify, repair through the download engine), the alert history, the store inventory and the
/// migration wizard.
#[derive(Clone)]
pub struct EngineBackend {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    loaded: LoadedConfig,
    /// The migration wizard (ema's state directory), None when there is no home directory to keep it in.
    wizard: Option<Wizard>,
    /// Starts the sample hub for "Enhanced features working": handed in by the CLI (the console never serves HTTP).
    sample_hub: std::sync::OnceLock<migration::SampleHubStarter>,
    /// The watch list: the configuration's, plus what the operator added in the console.
    wanted: std::sync::Mutex<Vec<String>>,
    /// The analytics database, opened on first use.
    analytics_db: tokio::sync::OnceCell<analytics::AnalyticsDb>,
}

impl EngineBackend {
    /// `_config_flag`: the configuration was already loaded through it (kept for the callers' symmetry).
    pub fn new(engine: Engine, loaded: LoadedConfig, _config_flag: Option<PathBuf>) -> Self {
        let wizard = migration::default_dir().ok().map(Wizard::at);
        Self::with_wizard(engine, loaded, wizard)
    }

    /// The backend with the migration wizard at a chosen state directory (tests, demos).
    pub fn with_wizard(engine: Engine, loaded: LoadedConfig, wizard: Option<Wizard>) -> Self {
        EngineBackend {
            inner: Arc::new(Inner {
                wanted: std::sync::Mutex::new(loaded.config.storage.wanted_models.clone()),
                engine,
                loaded,
                wizard,
                sample_hub: std::sync::OnceLock::new(),
                analytics_db: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The sample hub starter the wizard's "Enhanced features working" runs with (set once, by the face that
    /// opens the console; without it that step is blocked, saying so).
    pub fn set_sample_hub(&self, starter: migration::SampleHubStarter) {
        let _ = self.inner.sample_hub.set(starter);
    }

    fn wizard(&self) -> Result<Wizard> {
        self.inner.wizard.clone().ok_or_else(|| {
            EmaError::Config("no home directory to keep the migration state in; set HOME".into())
        })
    }

    fn run_env(&self) -> migration::RunEnv {
        let hub = self.inner.engine.hub_env().clone();
        migration::RunEnv {
            loaded: self.inner.loaded.clone(),
            hub: (!hub.offline).then_some(hub),
            sample_hub: self.inner.sample_hub.get().cloned(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Start the health monitor on the current runtime when the configuration enables it (quick checks, full
    /// verifications, alerts and auto-repair while the console runs).
    pub fn spawn_health_monitor(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let e = &self.inner.engine;
        health::spawn(
            e.store().clone(),
            self.inner.loaded.config.clone(),
            e.bus().clone(),
            Some(std::sync::Arc::new(e.repairer())),
            shutdown,
        )
    }

    fn store(&self) -> &Store {
        self.inner.engine.store()
    }
}

/// Alerts the console loads from the history.
const MAX_ALERTS_SHOWN: usize = 200;

/// Fully verify one model, record the result and its alerts, and publish them on the bus.
fn verify_one(engine: &Engine, repo: &RepoId) -> Result<ModelHealth> {
    let store = engine.store();
    let mut res =
        verify::verify_models(store, std::slice::from_ref(repo), &VerifyOptions::default())?;
    HealthSnapshot::record(store, &res)?;
    let news = health::record_health_alerts(&AlertStore::new(store), &res)?;
    for a in news {
        engine.bus().emit(a.to_event());
    }
    let h = res.pop().ok_or_else(|| {
        EmaError::NotFound(format!("{repo} is not in the store; nothing to verify"))
    })?;
    engine.bus().emit(Event::HealthChanged {
        model_id: h.model_id.clone(),
        state: h.state,
        reason: h.reason.clone(),
    });
    Ok(h)
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
            super::units::human_bytes(r.bytes_fetched),
            r.seconds
        )
    }
}

// The futures must be `'static` (the console spawns them), which `async fn` with `&self` would not give.
#[allow(clippy::manual_async_fn)]
impl ConsoleBackend for EngineBackend {
    fn fallback_taken(&self, requested: &str, substitute: &str) {
        let mut r = analytics::Record::new(analytics::kind::FALLBACK_TAKEN, Some(requested));
        r.substitute = Some(substitute.to_string());
        r.face = Some("console".into());
        self.inner.engine.record(r);
    }

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
            let configured = inner.wanted.lock().expect("wanted lock").clone();
            let mut wanted = configured.clone();
            // Models with a download in the queue show up even before their folder exists.
            for d in inner.engine.downloads() {
                if !wanted.contains(&d.model_id) {
                    wanted.push(d.model_id);
                }
            }
            let mut rows = inventory::scan(inner.engine.store(), &wanted)?;
            let snap = HealthSnapshot::load(inner.engine.store());
            for r in &mut rows {
                r.wanted = configured.iter().any(|w| w.trim() == r.id.as_str());
                // The last integrity check knows more than the quick scan.
                if let Some(h) = snap.models.get(r.id.as_str())
                    && r.availability != crate::engine::events::Availability::Missing
                {
                    r.health = h.state;
                    if h.state != crate::engine::events::HealthState::Healthy
                        && !r.problems.contains(&h.reason)
                    {
                        r.problems.push(h.reason.clone());
                    }
                }
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
            crate::engine::online::endpoint_reachable(
                &env.endpoint,
                std::time::Duration::from_secs(3),
            )
            .await
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
        let engine = self.inner.engine.clone();
        blocking(move || {
            let h = verify_one(&engine, &RepoId::parse(&model_id)?)?;
            Ok(format!("{model_id}: {} — {}", h.state.as_str(), h.reason))
        })
    }

    fn repair(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let engine = self.inner.engine.clone();
        let shared = self.inner.loaded.config.storage.shared_storage;
        async move {
            let repo = RepoId::parse(&model_id)?;
            let (e2, r2) = (engine.clone(), repo.clone());
            let before = blocking(move || verify_one(&e2, &r2)).await?;
            if before.is_healthy() {
                return Ok(format!("{model_id} is healthy; nothing to repair"));
            }
            let repairer = engine.repairer();
            let outcomes = repair::repair_models(
                engine.store(),
                std::slice::from_ref(&before),
                &repairer,
                !shared,
            )
            .await;
            let (e2, r2) = (engine.clone(), repo.clone());
            let after = blocking(move || verify_one(&e2, &r2)).await?;
            if let Some(err) = outcomes.iter().find_map(|o| o.error.clone()) {
                return Err(EmaError::Integrity(format!(
                    "repair of {model_id} failed: {err}; the model is {}",
                    after.state.as_str()
                )));
            }
            let n: usize = outcomes.iter().map(|o| o.redownloaded.len()).sum();
            let strays: usize = outcomes.iter().map(|o| o.strays_removed.len()).sum();
            Ok(format!(
                "repaired {model_id}: {n} file(s) replaced, {strays} stray file(s) removed; now {}",
                after.state.as_str()
            ))
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

    fn remote_model(
        &self,
        model_id: String,
    ) -> impl Future<Output = Result<RemoteModel>> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            if engine.hub_env().offline {
                return Err(EmaError::Hub(
                    "offline (HF_HUB_OFFLINE is set); unset it to ask the hub".into(),
                ));
            }
            let repo = RepoId::parse(&model_id)?;
            let info = engine
                .download_manager()
                .hub()
                .model_info(&repo, None)
                .await
                .map_err(|e| e.into_error())?;
            Ok(RemoteModel {
                pipeline_tag: info.pipeline_tag,
                total_size: info.siblings.iter().map(|f| f.size).sum(),
                commit: info.commit,
            })
        }
    }

    fn suggest(&self, model_id: String) -> impl Future<Output = Result<Report>> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            let req = Request {
                model_id: RepoId::parse(&model_id)?,
                requirements: Requirements::default(),
                face: Face::Console,
                usage: UsageHints::default(),
            };
            engine.suggest(&req).await
        }
    }

    fn queue_request(
        &self,
        model_id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            let repo = RepoId::parse(&model_id)?;
            fallback::enqueue(engine.config(), engine.store(), &repo)?;
            let report = engine.download(&repo, DownloadOptions::default()).await?;
            Ok(format!(
                "{} — {model_id} is available",
                report_text(&report)
            ))
        }
    }

    fn watch(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let inner = self.inner.clone();
        blocking(move || {
            let id = RepoId::parse(model_id.trim())?;
            let Some(path) = inner.loaded.path.clone() else {
                return Err(EmaError::Config(
                    "no configuration file is in force, so the watch list cannot be saved; create one with \
                     `ema configure` (or start ema with --config FILE)"
                        .into(),
                ));
            };
            let mut list = inner.wanted.lock().expect("wanted lock").clone();
            if list.iter().any(|w| w.trim() == id.as_str()) {
                return Ok(format!("{id} is already on the watch list"));
            }
            list.push(id.to_string());
            edit::edit_file(
                &path,
                &[edit::Setting {
                    path: "storage.wanted_models".into(),
                    value: serde_json::json!(list),
                }],
                false,
            )?;
            *inner.wanted.lock().expect("wanted lock") = list;
            Ok(format!(
                "{id} added to the watch list in {}",
                path.display()
            ))
        })
    }

    fn analytics(
        &self,
    ) -> impl Future<Output = Result<Option<analytics::AnalyticsSummary>>> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            let config = &inner.loaded.config;
            if !analytics::enabled(config) {
                return Ok(None);
            }
            let db = inner
                .analytics_db
                .get_or_try_init(|| analytics::open(None, config))
                .await?;
            let day_ago = analytics::record::now_ms() - 86_400_000;
            analytics::summary(db, Some(day_ago)).await.map(Some)
        }
    }

    fn alerts(&self) -> impl Future<Output = Result<Vec<AlertView>>> + Send + 'static {
        let store = self.store().clone();
        blocking(move || {
            Ok(AlertStore::new(&store)
                .recent(MAX_ALERTS_SHOWN)?
                .into_iter()
                .map(|a| AlertView {
                    id: a.id,
                    severity: a.severity,
                    model_id: a.model_id,
                    message: a.message,
                    suggested_action: a.suggested_action,
                    at: a.last_at,
                    count: a.count.min(u32::MAX as u64) as u32,
                    acknowledged: a.acknowledged,
                    derived: false,
                    resolved: a.resolved,
                })
                .collect())
        })
    }

    fn recommendations(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::engine::advice::Recommendation>>> + Send + 'static
    {
        let cache = self.inner.loaded.config.storage.cache_dir();
        let file = self.inner.loaded.path.clone();
        blocking(move || crate::engine::advice::apply::pending(&cache, file.as_deref()))
    }

    fn apply_recommendation(
        &self,
        id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static {
        use crate::engine::advice::{Takes, apply, server};
        let config = self.inner.loaded.config.clone();
        let file = self.inner.loaded.path.clone();
        async move {
            let file = file.ok_or_else(|| {
                EmaError::Config(
                    "no configuration file is in force, so there is nothing to change; create one with `ema \
                     configure` (or start ema with --config FILE)"
                        .into(),
                )
            })?;
            let cache = config.storage.cache_dir();
            let out = tokio::task::spawn_blocking(move || apply::apply_saved(&cache, &file, &id))
                .await
                .map_err(|e| EmaError::Other(format!("the apply task failed: {e}")))??;
            let mut parts: Vec<String> = out
                .changes
                .iter()
                .map(|c| match c.status {
                    apply::Status::Applied => format!("applied {}: {} → {}", c.key, c.from, c.to),
                    apply::Status::AlreadyApplied => format!("{} is already {}", c.key, c.to),
                    _ => format!(
                        "{} is now {} (changed since the analysis): left alone",
                        c.key, c.before
                    ),
                })
                .collect();
            parts.extend(
                out.manual
                    .iter()
                    .map(|m| format!("to do by hand: {}", m.change())),
            );
            if let Some(b) = &out.backup {
                parts.push(format!("backup {}", b.display()));
            }
            let told = server::tell(
                &config,
                out.keys(Takes::Live),
                out.keys(Takes::Restart),
                false,
            )
            .await;
            parts.extend(told.lines);
            Ok(parts.join("; "))
        }
    }

    fn acknowledge(
        &self,
        alert_id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static {
        let store = self.store().clone();
        blocking(move || {
            let n = AlertStore::new(&store).acknowledge(&alert_id)?;
            Ok(format!("{n} alert(s) acknowledged"))
        })
    }

    fn resume_unfinished(&self) -> impl Future<Output = ()> + Send + 'static {
        let engine = self.inner.engine.clone();
        async move {
            let _ = engine.resume_unfinished().await;
        }
    }

    fn migration_load(&self) -> Result<MigrationState> {
        match &self.inner.wizard {
            Some(w) => w.load(),
            None => Ok(MigrationState::default()),
        }
    }

    fn migration_run(
        &self,
        step: String,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static {
        let w = self.wizard();
        let env = self.run_env();
        blocking(move || {
            let w = w?;
            w.run(&step, &env)?;
            w.load()
        })
    }

    fn migration_confirm(
        &self,
        step: String,
        note: String,
        skip: bool,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static {
        let w = self.wizard();
        blocking(move || w?.confirm(&step, &note, skip))
    }

    fn migration_reset(
        &self,
        step: String,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static {
        let w = self.wizard();
        blocking(move || w?.reset(&step))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_saves_the_watch_list_in_the_configuration_file() {
        use crate::engine::Engine;
        use crate::engine::config::{self, hub_env::HubEnv};

        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("c.json");
        std::fs::write(
            &cfg,
            serde_json::json!({"storage": {"models_directory": d.path().join("m"), "wanted_models": ["a/one"]}})
                .to_string(),
        )
        .unwrap();
        let loaded = config::load(Some(&cfg)).unwrap();
        let hub = HubEnv {
            endpoint: "http://127.0.0.1:9".into(),
            token: None,
            token_source: None,
            offline: true,
        };
        let b = EngineBackend::new(
            Engine::new(loaded.config.clone(), hub).unwrap(),
            loaded,
            Some(cfg.clone()),
        );
        b.watch("b/two".into()).await.unwrap();
        assert!(b.watch("b/two".into()).await.unwrap().contains("already"));
        assert!(b.watch("bad id".into()).await.is_err());
        let again = config::load(Some(&cfg)).unwrap();
        assert_eq!(again.config.storage.wanted_models, vec!["a/one", "b/two"]);
        let ids: Vec<String> = b
            .models()
            .await
            .unwrap()
            .iter()
            .map(|m| m.id.to_string())
            .collect();
        assert_eq!(ids, vec!["a/one", "b/two"]);
    }
}
