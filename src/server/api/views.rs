//! The model views the API answers with, built from the engine: the legacy status map
//! (`{"<id>": {"available": …}}`), the enhanced detailed map (`{"models": {"<id>": {"is_available": …}}}`), both
//! over every model in the store plus the configured watch list, and the quick health of every model.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::engine::Engine;
use crate::engine::error::{EmaError, Result};
use crate::engine::events::Availability;
use crate::engine::health::{self, HealthSnapshot};
use crate::engine::integrity::{hash, verify};
use crate::engine::inventory::ModelStatus;
use crate::engine::store::RepoId;

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
pub fn legacy_status(engine: &Engine) -> Result<Value> {
    let mut map = serde_json::Map::new();
    for (id, m) in statuses(engine)? {
        let a = availability(&m);
        map.insert(
            id,
            json!({
                "available": a == Availability::Available,
                "status": a.as_str(),
                "size_bytes": m.as_ref().map(|m| m.size_bytes).unwrap_or(0),
                "commit": m.as_ref().and_then(|m| m.commit.clone()),
            }),
        );
    }
    Ok(Value::Object(map))
}

/// The enhanced client's document: `{"models": {"<id>": {"is_available": bool, …}}, "summary": {…}}`.
pub fn detailed_status(engine: &Engine) -> Result<Value> {
    let snap = HealthSnapshot::load(engine.store());
    let mut models = serde_json::Map::new();
    let mut summary: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (id, m) in statuses(engine)? {
        let a = availability(&m);
        *summary.entry(a.as_str()).or_default() += 1;
        let health = snap.models.get(&id).map(|h| {
            json!({"state": h.state, "reason": h.reason, "checked_at": h.checked_at, "mode": h.mode})
        });
        let v = match &m {
            Some(m) => json!({
                "is_available": a == Availability::Available,
                "status": a.as_str(),
                "commit": m.commit,
                "requested_revision": m.requested_revision,
                "size_bytes": m.size_bytes,
                "present_bytes": m.present_bytes,
                "files_total": m.files_total,
                "files_present": m.files_present,
                "verification": m.verification,
                "last_verified_at": m.last_verified_at,
                "pipeline_tag": m.pipeline_tag,
                "health": health,
                "download": m.download.as_ref().map(|d| json!({
                    "state": d.state, "bytes_done": d.bytes_done, "bytes_total": d.bytes_total,
                    "rate_bytes_per_sec": d.rate_bytes_per_sec, "eta_seconds": d.eta_seconds,
                    "error": d.error,
                })),
            }),
            None => json!({
                "is_available": false,
                "status": a.as_str(),
                "commit": null,
                "size_bytes": 0,
                "present_bytes": 0,
                "files_total": 0,
                "files_present": 0,
                "verification": null,
                "last_verified_at": null,
                "pipeline_tag": null,
                "health": health,
                "download": null,
                "watched": true,
            }),
        };
        models.insert(id, v);
    }
    Ok(json!({
        "models": models,
        "summary": {"total": models.len(), "by_status": summary},
    }))
}

/// The legacy health answer: a quick check of every model (existence, size, mtime), recent alerts, storage.
pub fn models_health(engine: &Engine) -> Result<Value> {
    let store = engine.store();
    let ids = store.list_models()?;
    let checked = verify::quick_check(store, &ids, hash::default_threads());
    let counts = verify::count_states(&checked);
    let healthy = checked
        .iter()
        .all(|m| m.state == crate::engine::events::HealthState::Healthy);
    let models: serde_json::Map<String, Value> = checked
        .iter()
        .map(|m| {
            (
                m.model_id.clone(),
                json!({"state": m.state, "reason": m.reason, "healthy": m.state == crate::engine::events::HealthState::Healthy}),
            )
        })
        .collect();
    let alerts = engine
        .alerts()
        .recent(20)
        .map_err(|e| EmaError::Other(format!("cannot read the alert history: {e}")))?;
    let usage = health::storage_usage(store, engine.config());
    Ok(json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "models": models,
        "summary": counts,
        "alerts": alerts,
        "storage": {
            "used_bytes": usage.used_bytes,
            "budget_bytes": usage.budget_bytes,
            "percent_of_budget": usage.percent_of_budget,
            "disk_available_bytes": usage.disk_available_bytes,
            "disk_total_bytes": usage.disk_total_bytes,
            "threshold_percent": usage.threshold_percent,
            "models_directory": usage.path,
        },
        "monitoring_enabled": health::HealthMonitor::enabled(engine.config()),
    }))
}
