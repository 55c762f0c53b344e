//! The monitor itself: one tick ([`HealthMonitor::run_once`], no sleeping: what tests drive) runs a quick check
//! when due, a full verification when due or when the quick check saw a change, then publishes events and alerts,
//! repairs, and checks storage and read performance; [`HealthMonitor::run`] loops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::alerts::{Alert, AlertStore, NewAlert, record_health_alerts};
use super::perf::{PERF_MIN_BYTES, PERF_REGRESSION_RATIO, PerfBaselines};
use super::snapshot::HealthSnapshot;
use super::storage::{StorageUsage, storage_usage};
use crate::engine::config::Config;
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Event, EventBus, HealthState, Severity};
use crate::engine::integrity::Repairer;
use crate::engine::integrity::hash;
use crate::engine::integrity::verify::{self, FileProblem, ModelHealth, VerifyOptions};
use crate::engine::store::{RepoId, Store};

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
            .filter(|id| !crate::engine::atomic::lock_held(&self.store.lock_path(id)))
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
    use crate::engine::health::test_store as setup;

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
}
