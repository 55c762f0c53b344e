//! The view model's alert list: engine alerts folded in with a count, the persisted history, acknowledgement, and
//! the alerts derived from the store scan and the storage budget (they go away when the condition clears).

use crate::engine::events::{Availability, Severity};

use super::ConsoleState;

#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub id: String,
    pub severity: Severity,
    pub model_id: Option<String>,
    pub message: String,
    pub suggested_action: Option<String>,
    /// When last seen (RFC 3339).
    pub at: String,
    /// How many times the same alert arrived.
    pub count: u32,
    pub acknowledged: bool,
    /// Derived from the store scan (goes away when the condition clears) rather than sent by the engine.
    pub derived: bool,
    /// The condition cleared (e.g. repaired); kept in the history, not counted as needing attention.
    pub resolved: bool,
}

impl ConsoleState {
    pub fn unacknowledged_alerts(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| !a.acknowledged && !a.resolved)
            .count()
    }

    /// Add or refresh an alert; the same (model, message) is one alert with a count.
    pub fn add_alert(&mut self, mut a: AlertView) {
        if let Some(old) = self
            .alerts
            .iter_mut()
            .find(|x| x.model_id == a.model_id && x.message == a.message)
        {
            old.count += 1;
            old.at = a.at;
            old.severity = old.severity.max(a.severity);
            old.acknowledged = false;
            old.resolved = a.resolved;
            self.sort_alerts();
            return;
        }
        a.count = a.count.max(1);
        self.alerts.push(a);
        self.sort_alerts();
    }

    fn sort_alerts(&mut self) {
        // Open alerts first (by severity), then the resolved history; newest first within each.
        self.alerts.sort_by(|a, b| {
            a.resolved
                .cmp(&b.resolved)
                .then_with(|| b.severity.cmp(&a.severity))
                .then_with(|| b.at.cmp(&a.at))
                .then_with(|| a.id.cmp(&b.id))
        });
    }

    pub fn acknowledge(&mut self, id: &str) -> bool {
        match self.alerts.iter_mut().find(|a| a.id == id) {
            Some(a) if !a.acknowledged => {
                a.acknowledged = true;
                true
            }
            _ => false,
        }
    }

    /// Alerts that follow from the store scan and the storage budget. They disappear when the condition clears.
    pub(super) fn derive_alerts(&mut self) {
        let mut wanted: Vec<AlertView> = Vec::new();
        let now = crate::engine::store::now_rfc3339();
        for m in &self.models {
            // The health checker's own alert for the model says more.
            if self
                .alerts
                .iter()
                .any(|a| !a.derived && !a.resolved && a.model_id.as_deref() == Some(m.id.as_str()))
            {
                continue;
            }
            // A model being downloaded is incomplete by definition.
            if self
                .downloads
                .get(m.id.as_str())
                .is_some_and(|d| d.state.active())
            {
                continue;
            }
            let (sev, what) = match m.availability {
                Availability::Corrupted => (Severity::Critical, "corrupted"),
                Availability::Incomplete => (Severity::Warning, "incomplete"),
                Availability::Missing if m.wanted => (Severity::Info, "wanted but missing"),
                _ => continue,
            };
            wanted.push(AlertView {
                id: format!("store:{}:{what}", m.id),
                severity: sev,
                model_id: Some(m.id.to_string()),
                message: format!("{} is {what}", m.id),
                suggested_action: m.problems.first().cloned(),
                at: now.clone(),
                count: 1,
                acknowledged: false,
                derived: true,
                resolved: false,
            });
        }
        let engine_storage_alert = self
            .alerts
            .iter()
            .any(|a| !a.derived && a.model_id.is_none() && a.message.contains("storage"));
        if self.storage.max_storage_gb > 0.0
            && self.storage.over_threshold()
            && !engine_storage_alert
        {
            wanted.push(AlertView {
                id: "store:storage".into(),
                severity: Severity::Warning,
                model_id: None,
                message: format!(
                    "storage at {:.0}% of max_storage_gb ({} GB), above the {}% cleanup threshold",
                    self.storage.used_ratio() * 100.0,
                    self.storage.max_storage_gb,
                    self.storage.cleanup_threshold_percent
                ),
                suggested_action: Some("delete unused models (Models pane, x)".into()),
                at: now.clone(),
                count: 1,
                acknowledged: false,
                derived: true,
                resolved: false,
            });
        }
        // Drop derived alerts whose condition cleared; keep acknowledgement and first-seen time of the rest.
        self.alerts
            .retain(|a| !a.derived || wanted.iter().any(|w| w.id == a.id));
        for w in wanted {
            if !self.alerts.iter().any(|a| a.id == w.id) {
                self.alerts.push(w);
            }
        }
        self.sort_alerts();
    }

    /// Replace the engine's alerts with the persisted history; alerts only seen as events (download failures) and
    /// those derived from the store scan stay.
    pub fn set_alerts(&mut self, persisted: Vec<AlertView>) {
        self.alerts
            .retain(|a| a.derived || a.id.starts_with("download:"));
        for a in persisted {
            if !self.alerts.iter().any(|x| x.id == a.id) {
                self.alerts.push(a);
            }
        }
        self.derive_alerts();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::Event;

    #[test]
    fn alerts_are_deduplicated_and_sorted() {
        let mut s = ConsoleState::default();
        for (id, sev, at) in [
            ("1", Severity::Info, "2026-01-01T00:00:00Z"),
            ("2", Severity::Critical, "2026-01-01T00:00:01Z"),
            ("3", Severity::Info, "2026-01-01T00:00:02Z"),
        ] {
            s.apply(&Event::HealthAlert {
                id: id.into(),
                severity: sev,
                model_id: Some(format!("m{id}")),
                message: format!("msg {id}"),
                suggested_action: None,
                at: at.into(),
            });
        }
        s.apply(&Event::HealthAlert {
            id: "9".into(),
            severity: Severity::Info,
            model_id: Some("m1".into()),
            message: "msg 1".into(),
            suggested_action: None,
            at: "2026-01-01T00:00:09Z".into(),
        });
        let ids: Vec<&str> = s.alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, vec!["2", "1", "3"]);
        assert_eq!(s.alerts[1].count, 2);
        assert!(s.acknowledge("2"));
        assert_eq!(s.unacknowledged_alerts(), 2);
    }
}
