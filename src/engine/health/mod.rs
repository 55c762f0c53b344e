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
//!
//! - `monitor.rs`: [`HealthMonitor`], one tick ([`HealthMonitor::run_once`]) and the loop.
//! - `alerts.rs`: the alert history ([`AlertStore`]) and the `health` alerts from verification results.
//! - `snapshot.rs`: the last result per model ([`HealthSnapshot`]).
//! - `storage.rs`: storage use against the budget and the disk ([`StorageUsage`]).
//! - `perf.rs`: read-throughput baselines ([`PerfBaselines`]).

mod alerts;
mod monitor;
mod perf;
mod snapshot;
mod storage;

pub use alerts::{ALERTS_FILE, Alert, AlertStore, MAX_ALERTS, NewAlert, record_health_alerts};
pub use monitor::{HealthMonitor, TickReport, spawn};
pub use perf::{PERF_FILE, PERF_MIN_BYTES, PERF_REGRESSION_RATIO, PerfBaselines};
pub use snapshot::{HealthSnapshot, SNAPSHOT_FILE};
pub use storage::{StorageUsage, storage_usage};

/// A store under a temporary folder holding one model `org/m` with metadata, for the tests of this module.
#[cfg(test)]
fn test_store() -> (
    tempfile::TempDir,
    crate::engine::store::Store,
    crate::engine::store::RepoId,
) {
    use crate::engine::integrity::generate::{GenerateOptions, generate_local_metadata};
    use crate::engine::store::{RepoId, Store};
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
