//! The alert history (`<store>/.ema/alerts.jsonl`): bounded, deduplicated by (model, kind) with counts, with
//! acknowledgement and resolution; and the `health` alerts recorded from verification results.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::atomic::{open_lock_file, write_atomic};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Event, HealthState, Severity};
use crate::engine::integrity::verify::ModelHealth;
use crate::engine::store::{Store, now_rfc3339};

pub const ALERTS_FILE: &str = "alerts.jsonl";
/// Alerts kept in the history (oldest dropped first).
pub const MAX_ALERTS: usize = 500;

/// One alert in the history. The same (model, kind) is one entry with a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    /// `health`, `storage`, `storage_disk`, `performance`, `repair`, `test` (raised by `ema test-monitoring`).
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

    /// Resolve every open alert `pick` selects. Returns the alerts resolved.
    pub fn resolve_where(&self, pick: impl Fn(&Alert) -> bool) -> Result<Vec<Alert>> {
        self.locked(|alerts| {
            let mut out = Vec::new();
            for a in alerts.iter_mut() {
                if !a.resolved && pick(a) {
                    a.resolved = true;
                    out.push(a.clone());
                }
            }
            out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::health::test_store;

    #[test]
    fn alerts_dedupe_acknowledge_and_reopen() {
        let (_d, store, _) = test_store();
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
}
