//! Test alerts (`ema test-monitoring --generate-test-alerts`, `POST /api/v1/admin/test-alerts`): raised through the
//! engine's real alert path — the alert history ([`AlertStore`], what `ema health` and the console list) and an
//! `Event::HealthAlert` on the bus (the WebSocket's `model_health_alert`, the `/metrics` alert gauges) — marked as
//! tests (kind `test`, a message starting `TEST ALERT <run>`), and resolved again by run.

use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Event, EventBus, Severity};
use crate::engine::health::{Alert, AlertStore, NewAlert};

/// The alert kind of test alerts.
pub const TEST_ALERT_KIND: &str = "test";
/// Every test alert's message starts with this.
pub const TEST_ALERT_PREFIX: &str = "TEST ALERT";
/// A raised test alert resolves itself after this long unless resolved before.
pub const DEFAULT_AUTO_RESOLVE_SECONDS: u64 = 300;
/// The longest a test alert may stay open.
pub const MAX_AUTO_RESOLVE_SECONDS: u64 = 3600;

/// A fresh run id (16 hex digits).
pub fn new_run_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A run id as a client may give it: 1 to 32 of `[A-Za-z0-9-]`.
pub fn check_run_id(run: &str) -> Result<()> {
    if run.is_empty()
        || run.len() > 32
        || !run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(EmaError::Config(format!(
            "run id {run:?} is not 1 to 32 letters, digits or '-'; leave it out to get a fresh one"
        )));
    }
    Ok(())
}

/// The message of run `run`'s test alert.
pub fn message(run: &str) -> String {
    format!(
        "{TEST_ALERT_PREFIX} {run}: raised by `ema test-monitoring` to prove the alert path end to end (console, \
         `ema health`, WebSocket, /metrics); nothing is wrong"
    )
}

fn is_run(a: &Alert, run: Option<&str>) -> bool {
    a.kind == TEST_ALERT_KIND
        && match run {
            Some(r) => a.message.starts_with(&format!("{TEST_ALERT_PREFIX} {r}:")),
            None => true,
        }
}

/// Raise run `run`'s test alert (a warning without a model) and publish it on the bus.
pub fn raise(alerts: &AlertStore, bus: &EventBus, run: &str) -> Result<Alert> {
    check_run_id(run)?;
    let (a, _) = alerts.record(NewAlert {
        kind: TEST_ALERT_KIND,
        severity: Severity::Warning,
        model_id: None,
        message: message(run),
        suggested_action: Some(
            "none: a test alert; `ema test-monitoring` resolves it, or it resolves itself within minutes".into(),
        ),
    })?;
    // Published even when the history deduplicated it: the caller is waiting to see it.
    bus.emit(a.to_event());
    Ok(a)
}

/// Resolve run `run`'s test alert (every open test alert with `None`); a log event says so. Returns the alerts
/// resolved.
pub fn resolve(alerts: &AlertStore, bus: &EventBus, run: Option<&str>) -> Result<Vec<Alert>> {
    if let Some(r) = run {
        check_run_id(r)?;
    }
    let done = alerts.resolve_where(|a| is_run(a, run))?;
    for a in &done {
        bus.emit(Event::Log {
            level: Severity::Info,
            message: format!("resolved: {}", a.message),
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::Store;

    #[test]
    fn raise_publishes_and_resolve_clears_only_its_run() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("models"));
        store.ensure().unwrap();
        let alerts = AlertStore::new(&store);
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let a = raise(&alerts, &bus, "run-1").unwrap();
        assert!(a.message.starts_with("TEST ALERT run-1:"));
        assert!(matches!(rx.try_recv().unwrap(), Event::HealthAlert { id, .. } if id == a.id));
        // One test alert at a time (the history keys alerts by model and kind): a newer run takes it over, and
        // the older run's resolution (e.g. its auto-resolve timer) leaves it open.
        let b = raise(&alerts, &bus, "run-2").unwrap();
        assert_eq!(b.id, a.id);
        assert!(resolve(&alerts, &bus, Some("run-1")).unwrap().is_empty());
        assert_eq!(resolve(&alerts, &bus, Some("run-2")).unwrap().len(), 1);
        assert!(alerts.list().unwrap().iter().all(|a| a.resolved));
        raise(&alerts, &bus, "run-3").unwrap();
        assert_eq!(resolve(&alerts, &bus, None).unwrap().len(), 1);
        assert!(check_run_id("bad id").is_err() && check_run_id("").is_err());
    }
}
