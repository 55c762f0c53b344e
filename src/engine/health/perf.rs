//! Read-throughput measurements per model (`<store>/.ema/perf_baseline.json`) and the baseline they give.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::error::Result;
use crate::engine::store::Store;

pub const PERF_FILE: &str = "perf_baseline.json";
/// Throughput below this fraction of the baseline is a regression.
pub const PERF_REGRESSION_RATIO: f64 = 0.5;
/// Models smaller than this are not measured (too noisy).
pub const PERF_MIN_BYTES: u64 = 16 << 20;

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
        crate::engine::atomic::write_json_atomic(&Self::path(store), self)
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
    /// The latest measurement of `model` over the median of the ones before it (what the monitor compares against
    /// [`PERF_REGRESSION_RATIO`]); None with fewer than two measurements.
    pub fn latest_ratio(&self, model: &str) -> Option<f64> {
        let v = self.models.get(model)?;
        let (latest, earlier) = v.split_last()?;
        if earlier.is_empty() {
            return None;
        }
        let mut s = earlier.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let base = s[s.len() / 2];
        (base > 0.0).then(|| latest / base)
    }
    /// The latest measurement of `model`, bytes/s.
    pub fn latest(&self, model: &str) -> Option<f64> {
        self.models.get(model)?.last().copied()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_baseline_median() {
        let mut p = PerfBaselines::default();
        assert_eq!(p.observe("m", 100.0), None);
        p.observe("m", 300.0);
        p.observe("m", 200.0);
        assert_eq!(p.baseline("m"), Some(200.0));
        p.observe("m", 100.0);
        // 100 against the median of 100, 300, 200.
        assert_eq!(p.latest_ratio("m"), Some(0.5));
        assert_eq!(p.latest("m"), Some(100.0));
        assert_eq!(p.latest_ratio("unknown"), None);
    }
}
