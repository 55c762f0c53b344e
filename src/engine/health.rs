//! The health monitor and what it remembers.
//!
//! Inside the engine when `health_monitoring.enabled && features.health_monitoring`: a quick check of every model
//! every `quick_check_interval_minutes`, a full verification every `check_interval_hours` or as soon as a quick
//! check sees a change; `HealthChanged` and `HealthAlert` events on the bus; automatic repair when
//! `auto_repair_enabled`; storage alerts past `cleanup_threshold_percent` of `max_storage_gb` or of the disk; read
//! throughput per model against a recorded baseline when `performance_monitoring_enabled`.
//!
//! Persisted under `<store>/.ema/`: `alerts.jsonl` (bounded, deduplicated by (model, kind) with counts, with
//! acknowledgement), `health.json` (the last result per model) and `perf_baseline.json`.
//! [`HealthMonitor::run_once`] is one tick with no sleeping (what tests drive); [`HealthMonitor::run`] loops.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::atomic::{open_lock_file, write_atomic};
use super::config::Config;
use super::error::{EmaError, Result};
use super::events::{Event, EventBus, HealthState, Severity};
use super::integrity::Repairer;
use super::integrity::hash;
use super::integrity::verify::{
    self, CheckMode, FileProblem, ModelHealth, VerifyOptions, state_rank,
};
use super::store::{RepoId, Store, now_rfc3339};

pub const ALERTS_FILE: &str = "alerts.jsonl";
pub const SNAPSHOT_FILE: &str = "health.json";
pub const PERF_FILE: &str = "perf_baseline.json";
/// Alerts kept in the history (oldest dropped first).
pub const MAX_ALERTS: usize = 500;
/// Throughput below this fraction of the baseline is a regression.
pub const PERF_REGRESSION_RATIO: f64 = 0.5;
/// Models smaller than this are not measured (too noisy).
pub const PERF_MIN_BYTES: u64 = 16 << 20;

/// One alert in the history. The same (model, kind) is one entry with a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    /// `health`, `storage`, `storage_disk`, `performance`, `repair`.
    pub kind: String,
    pub severity: Severity,
    pub model_id: Option<String>,
    pub message: String,
    pub suggested_action: Option<String>,
    pub first_at: String,
    pub last_at: String,
    pub count: u64,
    #[serde(default)]
    pub acknowledged: bool,
    /// The condition has cleared (e.g. the model is healthy again).
    #[serde(default)]
    pub resolved: bool,
}

impl Alert {
    pub fn to_event(&self) -> Event {
        Event::HealthAlert {
            id: self.id.clone(),
            severity: self.severity,
            model_id: self.model_id.clone(),
            message: self.message.clone(),
            suggested_action: self.suggested_action.clone(),
            at: self.last_at.clone(),
        }
    }
}

/// A new occurrence of a problem.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub kind: &'static str,
    pub severity: Severity,
    pub model_id: Option<String>,
    pub message: String,
    pub suggested_action: Option<String>,
}

/// The persisted alert history (`<store>/.ema/alerts.jsonl`), safe across processes (an exclusive lock around each
/// read-modify-write; the file itself is replaced atomically).
#[derive(Debug, Clone)]
pub struct AlertStore {
    path: PathBuf,
    lock_path: PathBuf,
}

impl AlertStore {
    pub fn new(store: &Store) -> Self {
        AlertStore {
            path: store.state_dir().join(ALERTS_FILE),
            lock_path: store.state_dir().join("alerts.lock"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every alert, oldest first. Unparseable lines are skipped.
    pub fn list(&self) -> Result<Vec<Alert>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(EmaError::io("cannot read alert history", &self.path, e)),
        }
    }

    fn save(&self, alerts: &[Alert]) -> Result<()> {
        let mut buf = Vec::new();
        for a in alerts {
            serde_json::to_writer(&mut buf, a)
                .map_err(|e| EmaError::Other(format!("cannot serialize alert: {e}")))?;
            buf.write_all(b"\n").expect("vec write");
        }
        write_atomic(&self.path, &buf)
    }

    fn locked<T>(&self, f: impl FnOnce(&mut Vec<Alert>) -> T) -> Result<T> {
        let lock = open_lock_file(&self.lock_path)?;
        lock.lock()
            .map_err(|e| EmaError::io("cannot lock", &self.lock_path, e))?;
        let mut alerts = self.list()?;
        let before = alerts.clone();
        let out = f(&mut alerts);
        if alerts.len() > MAX_ALERTS {
            // Drop the oldest by last occurrence.
            alerts.sort_by(|a, b| a.last_at.cmp(&b.last_at));
            let excess = alerts.len() - MAX_ALERTS;
            alerts.drain(..excess);
        }
        if alerts != before {
            self.save(&alerts)?;
        }
        Ok(out)
    }

    /// Record an occurrence. Returns the alert and whether it is news (new, re-opened after acknowledgement or
    /// resolution, or changed severity or message) — only news is published on the bus.
    pub fn record(&self, new: NewAlert) -> Result<(Alert, bool)> {
        let now = now_rfc3339();
        self.locked(|alerts| {
            if let Some(a) = alerts
                .iter_mut()
                .find(|a| a.model_id == new.model_id && a.kind == new.kind)
            {
                let news = a.acknowledged
                    || a.resolved
                    || a.severity != new.severity
                    || a.message != new.message;
                a.count += 1;
                a.last_at = now.clone();
                a.severity = new.severity;
                a.message = new.message;
                a.suggested_action = new.suggested_action;
                if news {
                    a.acknowledged = false;
                    a.resolved = false;
                }
                return (a.clone(), news);
            }
            let a = Alert {
                id: format!("{:016x}", rand::random::<u64>()),
                kind: new.kind.to_string(),
                severity: new.severity,
                model_id: new.model_id,
                message: new.message,
                suggested_action: new.suggested_action,
                first_at: now.clone(),
                last_at: now,
                count: 1,
                acknowledged: false,
                resolved: false,
            };
            alerts.push(a.clone());
            (a, true)
        })
    }

    /// The condition behind (model, kind) has cleared.
    pub fn resolve(&self, model_id: Option<&str>, kind: &str) -> Result<bool> {
        self.locked(|alerts| {
            let mut changed = false;
            for a in alerts.iter_mut() {
                if a.model_id.as_deref() == model_id && a.kind == kind && !a.resolved {
                    a.resolved = true;
                    changed = true;
                }
            }
            changed
        })
    }

    /// Acknowledge one alert by id, or every alert with `"all"`. Returns how many changed.
    pub fn acknowledge(&self, id: &str) -> Result<usize> {
        self.locked(|alerts| {
            let mut n = 0;
            for a in alerts.iter_mut() {
                if (id == "all" || a.id == id) && !a.acknowledged {
                    a.acknowledged = true;
                    n += 1;
                }
            }
            n
        })
    }

    /// Newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Alert>> {
        let mut v = self.list()?;
        v.sort_by(|a, b| b.last_at.cmp(&a.last_at));
        v.truncate(limit);
        Ok(v)
    }
}

/// The last check result per model (`<store>/.ema/health.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthSnapshot {
    pub updated_at: Option<String>,
    pub models: BTreeMap<String, ModelHealth>,
}

impl HealthSnapshot {
    pub fn path(store: &Store) -> PathBuf {
        store.state_dir().join(SNAPSHOT_FILE)
    }

    pub fn load(store: &Store) -> HealthSnapshot {
        std::fs::read(Self::path(store))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Merge results into the snapshot and save it atomically. A quick result does not replace a full one for a
    /// model unless it shows a problem the full one did not.
    pub fn record(store: &Store, results: &[ModelHealth]) -> Result<()> {
        store.ensure()?;
        let mut snap = Self::load(store);
        for h in results {
            let keep_full = snap.models.get(&h.model_id).is_some_and(|old| {
                old.mode == CheckMode::Full
                    && h.mode == CheckMode::Quick
                    && state_rank(h.state) >= state_rank(old.state)
            });
            if !keep_full {
                snap.models.insert(h.model_id.clone(), h.clone());
            }
        }
        if let Ok(ids) = store.list_models() {
            let ids: std::collections::HashSet<String> =
                ids.iter().map(|i| i.to_string()).collect();
            snap.models.retain(|k, _| ids.contains(k));
        }
        snap.updated_at = Some(now_rfc3339());
        super::atomic::write_json_atomic(&Self::path(store), &snap)
    }
}

/// Storage use of the models directory against the budget and the disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageUsage {
    pub path: PathBuf,
    pub used_bytes: u64,
    pub budget_bytes: u64,
    pub percent_of_budget: f64,
    pub disk_total_bytes: Option<u64>,
    pub disk_available_bytes: Option<u64>,
    pub percent_of_disk: Option<f64>,
    pub threshold_percent: u8,
}

impl StorageUsage {
    pub fn over_budget(&self) -> bool {
        self.percent_of_budget >= self.threshold_percent as f64
    }
    pub fn over_disk(&self) -> bool {
        self.percent_of_disk
            .is_some_and(|p| p >= self.threshold_percent as f64)
    }
}

pub fn storage_usage(store: &Store, config: &Config) -> StorageUsage {
    let used = super::inventory::dir_size(store.root());
    let budget = (config.storage.max_storage_gb.max(0.0) * 1e9) as u64;
    let stats = fs4::statvfs(store.root()).ok();
    let total = stats.as_ref().map(|s| s.total_space());
    let avail = stats.as_ref().map(|s| s.available_space());
    StorageUsage {
        path: store.root().to_path_buf(),
        used_bytes: used,
        budget_bytes: budget,
        percent_of_budget: if budget > 0 {
            used as f64 * 100.0 / budget as f64
        } else {
            0.0
        },
        disk_total_bytes: total,
        disk_available_bytes: avail,
        percent_of_disk: match (total, avail) {
            (Some(t), Some(a)) if t > 0 => Some((t - a.min(t)) as f64 * 100.0 / t as f64),
            _ => None,
        },
        threshold_percent: config.storage.cleanup_threshold_percent,
    }
}

/// Read-throughput measurements per model (`perf_baseline.json`): the last few, bytes/s.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PerfBaselines {
    pub models: BTreeMap<String, Vec<f64>>,
}

impl PerfBaselines {
    fn path(store: &Store) -> PathBuf {
        store.state_dir().join(PERF_FILE)
    }
    pub fn load(store: &Store) -> Self {
        std::fs::read(Self::path(store))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
    pub fn save(&self, store: &Store) -> Result<()> {
        store.ensure()?;
        super::atomic::write_json_atomic(&Self::path(store), self)
    }
    /// The baseline: the median of the recorded measurements.
    pub fn baseline(&self, model: &str) -> Option<f64> {
        let v = self.models.get(model)?;
        if v.is_empty() {
            return None;
        }
        let mut s = v.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        Some(s[s.len() / 2])
    }
    /// Record a measurement (keeps the last 5). Returns the baseline before it, if any.
    pub fn observe(&mut self, model: &str, bytes_per_sec: f64) -> Option<f64> {
        let before = self.baseline(model);
        let v = self.models.entry(model.to_string()).or_default();
        v.push(bytes_per_sec);
        if v.len() > 5 {
            v.remove(0);
        }
        before
    }
}

/// Record a `health` alert for every model that is not healthy (and resolve it for those that are). Returns the
/// alerts that are news (to publish). Used by the monitor and by the verify commands.
pub fn record_health_alerts(alerts: &AlertStore, results: &[ModelHealth]) -> Result<Vec<Alert>> {
    let mut news_out = Vec::new();
    for h in results {
        if h.state == HealthState::Healthy {
            alerts.resolve(Some(&h.model_id), "health")?;
            continue;
        }
        let (severity, action) = match h.state {
            HealthState::Corrupted | HealthState::Missing | HealthState::Incomplete => (
                Severity::Critical,
                format!(
                    "run `ema verify-all-models --repair-corrupted` (re-downloads only the bad files) for {}",
                    h.model_id
                ),
            ),
            HealthState::Degraded => (
                Severity::Warning,
                "review the stray files listed by `ema verify-all-models`; `ema check-models --repair-if-needed --remove-stray-files` deletes them"
                    .into(),
            ),
            _ => (
                Severity::Info,
                "run `ema generate-metadata` and `ema verify-all-models`".into(),
            ),
        };
        let (a, news) = alerts.record(NewAlert {
            kind: "health",
            severity,
            model_id: Some(h.model_id.clone()),
            message: format!("{} is {}: {}", h.model_id, h.state.as_str(), h.reason),
            suggested_action: Some(action),
        })?;
        if news {
            news_out.push(a);
        }
    }
    Ok(news_out)
}

/// What one tick did (for tests and the console).
#[derive(Debug, Clone, Default)]
pub struct TickReport {
    pub quick_ran: bool,
    pub full_ran: bool,
    pub models: Vec<ModelHealth>,
    pub alerts: Vec<Alert>,
    pub repaired: Vec<String>,
    pub storage: Option<StorageUsage>,
}

/// The monitor. Hashing runs on blocking threads; `run_once` never sleeps.
pub struct HealthMonitor {
    store: Store,
    config: Config,
    bus: EventBus,
    alerts: AlertStore,
    repairer: Option<Arc<dyn Repairer>>,
    last_quick: Option<Instant>,
    last_full: Option<Instant>,
    states: HashMap<String, HealthState>,
    /// What the previous quick check saw per model: (path, problem) pairs.
    quick_seen: HashMap<String, Vec<(String, FileProblem)>>,
}

impl HealthMonitor {
    pub fn new(
        store: Store,
        config: Config,
        bus: EventBus,
        repairer: Option<Arc<dyn Repairer>>,
    ) -> Self {
        let states = HealthSnapshot::load(&store)
            .models
            .into_iter()
            .map(|(k, v)| (k, v.state))
            .collect();
        HealthMonitor {
            alerts: AlertStore::new(&store),
            store,
            config,
            bus,
            repairer,
            last_quick: None,
            last_full: None,
            states,
            quick_seen: HashMap::new(),
        }
    }

    /// Whether the configuration asks for the monitor.
    pub fn enabled(config: &Config) -> bool {
        config.health_monitoring.enabled && config.features.health_monitoring
    }

    fn quick_interval(&self) -> Duration {
        Duration::from_secs_f64(
            (self.config.health_monitoring.quick_check_interval_minutes * 60.0).max(1.0),
        )
    }

    fn full_interval(&self) -> Duration {
        Duration::from_secs_f64(
            (self.config.health_monitoring.check_interval_hours * 3600.0).max(60.0),
        )
    }

    /// How long until the next tick has something to do.
    pub fn next_due(&self, now: Instant) -> Duration {
        match self.last_quick {
            None => Duration::ZERO,
            Some(t) => (t + self.quick_interval()).saturating_duration_since(now),
        }
    }

    /// One tick at `now`: a quick check when due, a full verification when due or when the quick check saw a
    /// change, then events, alerts, repair, storage and performance checks.
    pub async fn run_once(&mut self, now: Instant) -> Result<TickReport> {
        let mut report = TickReport::default();
        let quick_due = self
            .last_quick
            .is_none_or(|t| now.duration_since(t) >= self.quick_interval());
        let mut full_due = self
            .last_full
            .is_none_or(|t| now.duration_since(t) >= self.full_interval());
        // Models being downloaded (their lock is held, here or in another process) are not judged mid-flight.
        let ids: Vec<RepoId> = self
            .store
            .list_models()?
            .into_iter()
            .filter(|id| !super::integrity::maintenance::lock_held(&self.store.lock_path(id)))
            .collect();
        let mut results = Vec::new();
        if quick_due || full_due {
            let store = self.store.clone();
            let ids2 = ids.clone();
            let quick = tokio::task::spawn_blocking(move || {
                verify::quick_check(&store, &ids2, hash::default_threads())
            })
            .await
            .map_err(|e| EmaError::Other(format!("quick check task failed: {e}")))?;
            self.last_quick = Some(now);
            report.quick_ran = true;
            // A change in what the quick check sees (a file modified, resized, gone, new) since the previous quick
            // check triggers a full verification; a problem that merely persists does not re-hash everything.
            let mut changed = false;
            let mut seen = HashMap::new();
            for h in &quick {
                let mut fp: Vec<(String, FileProblem)> = h
                    .issues
                    .iter()
                    .map(|i| (i.path.clone(), i.problem))
                    .collect();
                fp.sort_by(|a, b| a.0.cmp(&b.0));
                let is_new_problem = fp.iter().any(|(_, p)| *p == FileProblem::Changed);
                if self.quick_seen.get(&h.model_id) != Some(&fp) || is_new_problem {
                    changed = true;
                }
                seen.insert(h.model_id.clone(), fp);
            }
            changed |= self.quick_seen.len() != seen.len();
            self.quick_seen = seen;
            full_due |= changed;
            results = quick;
        }
        if full_due {
            results = self.full_verify(&ids).await?;
            self.last_full = Some(now);
            report.full_ran = true;
            // Tell the faces what was found before repairing it.
            self.publish(&results, &mut report)?;
            if self.config.health_monitoring.auto_repair_enabled
                && let Some(rep) = self.repairer.clone()
            {
                let mut again = Vec::new();
                for h in &results {
                    let files = h.files_to_download();
                    if files.is_empty() {
                        continue;
                    }
                    let id = RepoId::parse(&h.model_id)?;
                    match rep.repair(&id, &files).await {
                        Ok(()) => {
                            report.repaired.push(h.model_id.clone());
                            again.push(id);
                        }
                        Err(e) => {
                            let (a, news) = self.alerts.record(NewAlert {
                                kind: "repair",
                                severity: Severity::Critical,
                                model_id: Some(h.model_id.clone()),
                                message: format!("automatic repair failed: {e}"),
                                suggested_action: Some(format!(
                                    "run `ema verify-all-models --repair-corrupted` or `ema download {}`",
                                    h.model_id
                                )),
                            })?;
                            if news {
                                self.bus.emit(a.to_event());
                                report.alerts.push(a);
                            }
                        }
                    }
                }
                if !again.is_empty() {
                    let fresh = self.full_verify(&again).await?;
                    self.publish(&fresh, &mut report)?;
                    for f in fresh {
                        if let Some(slot) = results.iter_mut().find(|h| h.model_id == f.model_id) {
                            *slot = f;
                        }
                    }
                }
            }
        }
        if report.quick_ran || report.full_ran {
            if !report.full_ran {
                self.publish(&results, &mut report)?;
            }
            HealthSnapshot::record(&self.store, &results)?;
            let usage = storage_usage(&self.store, &self.config);
            self.storage_alerts(&usage, &mut report)?;
            report.storage = Some(usage);
        }
        report.models = results;
        Ok(report)
    }

    async fn full_verify(&mut self, ids: &[RepoId]) -> Result<Vec<ModelHealth>> {
        let store = self.store.clone();
        let ids = ids.to_vec();
        let results = tokio::task::spawn_blocking(move || {
            verify::verify_models(&store, &ids, &VerifyOptions::default())
        })
        .await
        .map_err(|e| EmaError::Other(format!("verification task failed: {e}")))??;
        if self.config.health_monitoring.performance_monitoring_enabled {
            let mut perf = PerfBaselines::load(&self.store);
            let mut alerts = Vec::new();
            for h in &results {
                let Some(bps) = h.read_bytes_per_sec else {
                    continue;
                };
                if h.bytes_hashed < PERF_MIN_BYTES {
                    continue;
                }
                if let Some(base) = perf.observe(&h.model_id, bps)
                    && bps < base * PERF_REGRESSION_RATIO
                {
                    alerts.push(NewAlert {
                        kind: "performance",
                        severity: Severity::Warning,
                        model_id: Some(h.model_id.clone()),
                        message: format!(
                            "read throughput fell to {:.0} MB/s from a baseline of {:.0} MB/s; loading would take \
                             about {:.1} s",
                            bps / 1e6,
                            base / 1e6,
                            h.load_time_estimate_seconds.unwrap_or(0.0)
                        ),
                        suggested_action: Some(
                            "check the disk (SMART, other I/O load) or move the models to faster storage with \
                             `ema move-models`"
                                .into(),
                        ),
                    });
                }
            }
            perf.save(&self.store)?;
            for a in alerts {
                let (a, news) = self.alerts.record(a)?;
                if news {
                    self.bus.emit(a.to_event());
                }
            }
        }
        Ok(results)
    }

    fn publish(&mut self, results: &[ModelHealth], report: &mut TickReport) -> Result<()> {
        for h in results {
            let old = self.states.insert(h.model_id.clone(), h.state);
            if old != Some(h.state) {
                self.bus.emit(Event::HealthChanged {
                    model_id: h.model_id.clone(),
                    state: h.state,
                    reason: h.reason.clone(),
                });
            }
        }
        for a in record_health_alerts(&self.alerts, results)? {
            self.bus.emit(a.to_event());
            report.alerts.push(a);
        }
        Ok(())
    }

    fn storage_alerts(&mut self, u: &StorageUsage, report: &mut TickReport) -> Result<()> {
        let checks = [
            (
                "storage",
                u.over_budget(),
                format!(
                    "models use {:.1} GB, {:.0}% of the {:.0} GB budget (threshold {}%)",
                    u.used_bytes as f64 / 1e9,
                    u.percent_of_budget,
                    u.budget_bytes as f64 / 1e9,
                    u.threshold_percent
                ),
            ),
            (
                "storage_disk",
                u.over_disk(),
                format!(
                    "the disk holding {} is {:.0}% full (threshold {}%)",
                    u.path.display(),
                    u.percent_of_disk.unwrap_or(0.0),
                    u.threshold_percent
                ),
            ),
        ];
        for (kind, over, message) in checks {
            if over {
                let (a, news) = self.alerts.record(NewAlert {
                    kind,
                    severity: Severity::Warning,
                    model_id: None,
                    message,
                    suggested_action: Some(
                        "run `ema cleanup --remove-temp-files`, delete unused models, or `ema move-models` to \
                         larger storage"
                            .into(),
                    ),
                })?;
                if news {
                    self.bus.emit(a.to_event());
                    report.alerts.push(a);
                }
            } else {
                self.alerts.resolve(None, kind)?;
            }
        }
        Ok(())
    }

    /// Loop until `shutdown` is cancelled. Errors of one tick are published as a log event, not fatal.
    pub async fn run(mut self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(e) = self.run_once(Instant::now()).await {
                self.bus.emit(Event::Log {
                    level: Severity::Warning,
                    message: format!("health check failed: {e}"),
                });
            }
            let wait = self.next_due(Instant::now()).max(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Start the monitor on the current tokio runtime when the configuration enables it.
pub fn spawn(
    store: Store,
    config: Config,
    bus: EventBus,
    repairer: Option<Arc<dyn Repairer>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if !HealthMonitor::enabled(&config) {
        return None;
    }
    let m = HealthMonitor::new(store, config, bus, repairer);
    Some(tokio::spawn(m.run(shutdown)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::integrity::generate::{GenerateOptions, generate_local_metadata};

    fn setup() -> (tempfile::TempDir, Store, RepoId) {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("models"));
        store.ensure().unwrap();
        let id = RepoId::parse("org/m").unwrap();
        let dir = store.model_dir(&id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("weights.bin"), vec![7u8; 100_000]).unwrap();
        let m = generate_local_metadata(&store, &id, &GenerateOptions::default()).unwrap();
        store.write_metadata(&m).unwrap();
        (d, store, id)
    }

    #[test]
    fn alerts_dedupe_acknowledge_and_reopen() {
        let (_d, store, _) = setup();
        let a = AlertStore::new(&store);
        let mk = |msg: &str| NewAlert {
            kind: "health",
            severity: Severity::Critical,
            model_id: Some("org/m".into()),
            message: msg.into(),
            suggested_action: None,
        };
        let (first, news) = a.record(mk("bad")).unwrap();
        assert!(news);
        let (again, news) = a.record(mk("bad")).unwrap();
        assert!(!news);
        assert_eq!(again.id, first.id);
        assert_eq!(again.count, 2);
        assert_eq!(a.list().unwrap().len(), 1);
        assert_eq!(a.acknowledge(&first.id).unwrap(), 1);
        let (re, news) = a.record(mk("bad")).unwrap();
        assert!(news && !re.acknowledged && re.count == 3);
        assert!(a.resolve(Some("org/m"), "health").unwrap());
        assert!(a.recent(10).unwrap()[0].resolved);
    }

    #[tokio::test]
    async fn tick_detects_corruption_alerts_and_counts_storage() {
        let (_d, store, id) = setup();
        let mut cfg = Config::default();
        cfg.storage.max_storage_gb = 0.0001; // 100 kB budget: over threshold
        cfg.health_monitoring.auto_repair_enabled = false;
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let mut m = HealthMonitor::new(store.clone(), cfg, bus, None);
        let t0 = Instant::now();
        let r = m.run_once(t0).await.unwrap();
        assert!(r.quick_ran && r.full_ran);
        assert_eq!(r.models[0].state, HealthState::Healthy);
        assert!(r.storage.as_ref().unwrap().over_budget());
        assert!(r.alerts.iter().any(|a| a.kind == "storage"));
        // Nothing due right after.
        let r = m.run_once(t0).await.unwrap();
        assert!(!r.quick_ran && !r.full_ran);
        // Corrupt a byte; the next quick tick sees the change and runs a full verify.
        let p = store.model_dir(&id).join("weights.bin");
        let mut b = std::fs::read(&p).unwrap();
        b[5] = 0;
        b.push(1);
        std::fs::write(&p, &b).unwrap();
        let later = t0 + Duration::from_secs(3600);
        let r = m.run_once(later).await.unwrap();
        assert!(r.full_ran);
        assert_eq!(r.models[0].state, HealthState::Corrupted);
        let mut saw_alert = false;
        let mut saw_change = false;
        while let Ok(e) = rx.try_recv() {
            match e {
                Event::HealthAlert {
                    model_id: Some(mid),
                    severity: Severity::Critical,
                    ..
                } if mid == "org/m" => saw_alert = true,
                Event::HealthChanged {
                    state: HealthState::Corrupted,
                    ..
                } => saw_change = true,
                _ => {}
            }
        }
        assert!(saw_alert && saw_change);
        let snap = HealthSnapshot::load(&store);
        assert_eq!(snap.models["org/m"].state, HealthState::Corrupted);
        // The problem persists but nothing changed: the next quick check does not re-hash everything.
        let r = m.run_once(later + Duration::from_secs(600)).await.unwrap();
        assert!(r.quick_ran && !r.full_ran);
        assert_eq!(r.models[0].state, HealthState::Corrupted);
        assert!(
            AlertStore::new(&store)
                .list()
                .unwrap()
                .iter()
                .any(|a| a.kind == "health")
        );
    }

    #[test]
    fn perf_baseline_median() {
        let mut p = PerfBaselines::default();
        assert_eq!(p.observe("m", 100.0), None);
        p.observe("m", 300.0);
        p.observe("m", 200.0);
        assert_eq!(p.baseline("m"), Some(200.0));
    }
}
