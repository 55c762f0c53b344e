//! Storage use of the models directory against the budget (`storage.max_storage_gb`) and the disk.

use std::path::PathBuf;

use serde::Serialize;

use crate::engine::config::Config;
use crate::engine::store::Store;

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
    let used = crate::engine::inventory::dir_size(store.root());
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
