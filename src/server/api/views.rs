//! The model views the API answers with, built from the engine: the legacy status map
//! (`{"<id>": {"available": …}}`), the enhanced detailed map (`{"models": {"<id>": {"is_available": …}}}`), both
//! over every model in the store plus the configured watch list, and the quick health of every model. One pass over
//! the store ([`status_views`]) builds both maps and the metrics' gauges; `cache.rs` keeps them between changes.

use std::collections::BTreeMap;

use crate::engine::Engine;
use crate::engine::download::queue::QueueState;
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Availability, HealthState};
use crate::engine::health::{self, HealthSnapshot};
use crate::engine::integrity::{hash, verify};
use crate::engine::inventory::ModelStatus;
use crate::engine::store::RepoId;

use super::types::{
    AlertView, DetailedModel, DetailedStatus, DetailedSummary, DownloadView, HealthView,
    LegacyModelStatus, LegacyStatus, ModelsHealth, QuickHealth, StorageView, wire_name,
};

/// Every model in the store and on the watch list, by id (blocking: reads the sidecars).
pub fn statuses(engine: &Engine) -> Result<BTreeMap<String, Option<ModelStatus>>> {
    let mut out: BTreeMap<String, Option<ModelStatus>> = engine
        .model_statuses(false)?
        .into_iter()
        .map(|m| (m.model_id.clone(), Some(m)))
        .collect();
    for id in &engine.config().storage.wanted_models {
        if RepoId::parse(id).is_ok() {
            out.entry(id.clone()).or_insert(None);
        }
    }
    Ok(out)
}

fn availability(m: &Option<ModelStatus>) -> Availability {
    m.as_ref()
        .map(|m| m.availability)
        .unwrap_or(Availability::Missing)
}

/// The legacy client's map: `{"<id>": {"available": bool, "status", "size_bytes", …}}`.
pub fn legacy_status(engine: &Engine) -> Result<LegacyStatus> {
    Ok(legacy_of(&statuses(engine)?))
}

fn legacy_of(all: &BTreeMap<String, Option<ModelStatus>>) -> LegacyStatus {
    all.iter()
        .map(|(id, m)| {
            let a = availability(m);
            let v = LegacyModelStatus {
                available: a == Availability::Available,
                status: a.as_str().to_string(),
                size_bytes: m.as_ref().map(|m| m.size_bytes).unwrap_or(0),
                commit: m.as_ref().and_then(|m| m.commit.clone()),
            };
            (id.clone(), v)
        })
        .collect()
}

/// The gauges `/metrics` exposes, read in the same pass as the status maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Downloads transferring now.
    pub downloads_active: u64,
    /// Downloads waiting (queued, paused, failed and resumable).
    pub downloads_queued: u64,
    /// Models by their last recorded health state (every state, 0 included).
    pub models_by_health: Vec<(HealthState, u64)>,
    /// Bytes of model files present in the store.
    pub store_bytes: u64,
}

/// The legacy map, the detailed document and the gauges, from one pass over the store.
#[derive(Debug)]
pub struct StatusViews {
    pub legacy: LegacyStatus,
    pub detailed: DetailedStatus,
    pub gauges: Gauges,
}

/// Every health state, in the order the gauges list them.
pub const HEALTH_STATES: [HealthState; 6] = [
    HealthState::Healthy,
    HealthState::Degraded,
    HealthState::Corrupted,
    HealthState::Incomplete,
    HealthState::Missing,
    HealthState::Unknown,
];

/// Both status maps and the gauges (blocking: reads every sidecar, stats every file, reads the health snapshot
/// and the download queue once).
pub fn status_views(engine: &Engine) -> Result<StatusViews> {
    let downloads = engine.downloads();
    let active = downloads
        .iter()
        .filter(|d| d.state == QueueState::Downloading)
        .count() as u64;
    let snap = HealthSnapshot::load(engine.store());
    let all = statuses(engine)?;
    let store_bytes = all.values().flatten().map(|m| m.present_bytes).sum();
    let models_by_health = HEALTH_STATES
        .iter()
        .map(|s| {
            (
                *s,
                snap.models.values().filter(|h| h.state == *s).count() as u64,
            )
        })
        .collect();
    Ok(StatusViews {
        legacy: legacy_of(&all),
        detailed: detailed_of(all, &snap),
        gauges: Gauges {
            downloads_active: active,
            downloads_queued: downloads.len() as u64 - active,
            models_by_health,
            store_bytes,
        },
    })
}

/// The enhanced client's document: `{"models": {"<id>": {"is_available": bool, …}}, "summary": {…}}`.
pub fn detailed_status(engine: &Engine) -> Result<DetailedStatus> {
    Ok(detailed_of(
        statuses(engine)?,
        &HealthSnapshot::load(engine.store()),
    ))
}

fn detailed_of(
    all: BTreeMap<String, Option<ModelStatus>>,
    snap: &HealthSnapshot,
) -> DetailedStatus {
    let mut models = BTreeMap::new();
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for (id, m) in all {
        let a = availability(&m);
        *by_status.entry(a.as_str().to_string()).or_default() += 1;
        let health = snap.models.get(&id).map(|h| HealthView {
            state: h.state.as_str().to_string(),
            reason: h.reason.clone(),
            checked_at: h.checked_at.clone(),
            mode: wire_name(&h.mode),
        });
        let v = match m {
            Some(m) => DetailedModel {
                is_available: a == Availability::Available,
                status: a.as_str().to_string(),
                commit: m.commit,
                requested_revision: m.requested_revision,
                size_bytes: m.size_bytes,
                present_bytes: m.present_bytes,
                files_total: m.files_total as u64,
                files_present: m.files_present as u64,
                verification: m.verification.as_ref().map(wire_name),
                last_verified_at: m.last_verified_at,
                pipeline_tag: m.pipeline_tag,
                health,
                download: m.download.map(|d| DownloadView {
                    state: wire_name(&d.state),
                    bytes_done: d.bytes_done,
                    bytes_total: d.bytes_total,
                    rate_bytes_per_sec: d.rate_bytes_per_sec,
                    eta_seconds: d.eta_seconds,
                    error: d.error,
                }),
                watched: false,
            },
            None => DetailedModel {
                is_available: false,
                status: a.as_str().to_string(),
                commit: None,
                requested_revision: None,
                size_bytes: 0,
                present_bytes: 0,
                files_total: 0,
                files_present: 0,
                verification: None,
                last_verified_at: None,
                pipeline_tag: None,
                health,
                download: None,
                watched: true,
            },
        };
        models.insert(id, v);
    }
    DetailedStatus {
        summary: DetailedSummary {
            total: models.len() as u64,
            by_status,
        },
        models,
    }
}

/// The legacy health answer: a quick check of every model (existence, size, mtime), recent alerts, storage.
pub fn models_health(engine: &Engine) -> Result<ModelsHealth> {
    let store = engine.store();
    let ids = store.list_models()?;
    let checked = verify::quick_check(store, &ids, hash::default_threads());
    let counts = verify::count_states(&checked);
    let healthy = checked.iter().all(|m| m.state == HealthState::Healthy);
    let models = checked
        .iter()
        .map(|m| {
            let v = QuickHealth {
                state: m.state.as_str().to_string(),
                reason: m.reason.clone(),
                healthy: m.state == HealthState::Healthy,
            };
            (m.model_id.clone(), v)
        })
        .collect();
    let alerts = engine
        .alerts()
        .recent(20)
        .map_err(|e| EmaError::Other(format!("cannot read the alert history: {e}")))?
        .into_iter()
        .map(AlertView::from)
        .collect();
    let usage = health::storage_usage(store, engine.config());
    Ok(ModelsHealth {
        status: if healthy { "healthy" } else { "degraded" }.to_string(),
        models,
        summary: counts
            .into_iter()
            .map(|(k, v)| (k.to_string(), v as u64))
            .collect(),
        alerts,
        storage: StorageView {
            used_bytes: usage.used_bytes,
            budget_bytes: usage.budget_bytes,
            percent_of_budget: usage.percent_of_budget,
            disk_available_bytes: usage.disk_available_bytes,
            disk_total_bytes: usage.disk_total_bytes,
            threshold_percent: usage.threshold_percent,
            models_directory: usage.path.clone(),
        },
        monitoring_enabled: health::HealthMonitor::enabled(engine.config()),
    })
}
