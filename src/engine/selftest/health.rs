//! The health-monitoring proof: the engine's own health monitor, one real tick after another, on a store of its own
//! — a healthy model first, then a flipped byte that the next tick must notice (quick check), prove (full hash),
//! raise a critical alert for, repair from the hub, and mark resolved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::install::{STEP_TIMEOUT, fetched_in, largest_file, proof_engine};
use super::proof::{Progress, Proof, attempt, round3};
use super::workspace::{Workspace, flip_byte};
use crate::engine::download::DownloadOptions;
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Event, HealthState, Severity};
use crate::engine::health::HealthMonitor;
use crate::engine::integrity::Repairer;
use crate::engine::integrity::repair::DownloadRepairer;
use crate::engine::store::RepoId;

/// The (small) model the health proof watches.
pub const HEALTH_MODEL: &str = "ema-demo/tiny-gpt";

pub async fn health_monitoring(ws: &Workspace, endpoint: &str, progress: Progress<'_>) -> Proof {
    attempt(
        "health_monitoring",
        "the health monitor detects a corrupted file, alerts and repairs it",
        |p, started| run(ws, endpoint, progress, p, started),
    )
    .await
}

async fn run(
    ws: &Workspace,
    endpoint: &str,
    progress: Progress<'_>,
    p: Proof,
    started: Instant,
) -> Result<Proof> {
    let repo = RepoId::parse(HEALTH_MODEL)?;
    let engine = proof_engine(&ws.store_dir("health"), endpoint, 0.0)?;
    progress(&format!(
        "downloading {repo} for the health monitor to watch"
    ));
    tokio::time::timeout(
        STEP_TIMEOUT,
        engine.download(&repo, DownloadOptions::default()),
    )
    .await
    .map_err(|_| EmaError::Other(format!("the download of {repo} did not finish in time")))??;

    let mut config = engine.config().clone();
    config.health_monitoring.enabled = true;
    config.features.health_monitoring = true;
    config.health_monitoring.auto_repair_enabled = true;
    config.health_monitoring.performance_monitoring_enabled = false;
    // The shortest quick-check interval the monitor allows (1 s), so the second tick is due a second later.
    config.health_monitoring.quick_check_interval_minutes = 1.0 / 60.0;
    let repairer: Arc<dyn Repairer> = Arc::new(DownloadRepairer {
        manager: engine.download_manager().clone(),
        local_sources: Vec::new(),
    });
    let mut monitor = HealthMonitor::new(
        engine.store().clone(),
        config,
        engine.bus().clone(),
        Some(repairer),
    );
    let first = monitor.run_once(Instant::now()).await?;
    let healthy_first = first
        .models
        .iter()
        .any(|h| h.model_id == repo.as_str() && h.state == HealthState::Healthy);
    if !first.full_ran || !healthy_first {
        return Ok(p.failed(
            started,
            format!("the monitor's first tick did not find {repo} healthy"),
        ));
    }

    let (file, size) = largest_file(&engine, &repo)?;
    let offset = size / 3;
    flip_byte(&engine.store().model_dir(&repo).join(&file), offset)?;
    progress(&format!(
        "flipped the byte at offset {offset} of {repo}/{file}; running the monitor's next tick"
    ));
    let mut rx = engine.bus().subscribe();
    let wait = monitor.next_due(Instant::now());
    tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
    let t = Instant::now();
    let tick = monitor.run_once(Instant::now()).await?;
    let tick_s = t.elapsed().as_secs_f64();

    // What the tick published, in order: the alert, the state changes, the repair download.
    let mut alert: Option<(String, Severity, String)> = None;
    let mut states = Vec::new();
    let mut refetched = 0;
    while let Ok(ev) = rx.try_recv() {
        match ev {
            Event::HealthAlert {
                id,
                severity,
                model_id: Some(m),
                message,
                ..
            } if m == repo.as_str() && alert.is_none() => alert = Some((id, severity, message)),
            Event::HealthChanged {
                model_id, state, ..
            } if model_id == repo.as_str() => states.push(state.as_str()),
            Event::DownloadFinished {
                model_id, bytes, ..
            } if model_id == repo.as_str() => refetched += bytes,
            _ => {}
        }
    }
    refetched += fetched_in(&mut rx, &repo);
    let history = engine.alerts().list()?;
    let recorded = alert
        .as_ref()
        .and_then(|(id, _, _)| history.iter().find(|a| &a.id == id));
    let p = p
        .fig("model", repo.as_str())
        .fig("file", file.as_str())
        .fig("offset", offset)
        .fig("tick_seconds", round3(tick_s))
        .fig("quick_check_ran", tick.quick_ran)
        .fig("full_check_ran", tick.full_ran)
        .fig("states", states.clone())
        .fig("repaired", tick.repaired.clone())
        .fig("bytes_fetched", refetched);
    let Some((id, severity, message)) = alert else {
        return Ok(p.failed(
            started,
            format!(
                "the monitor's tick raised no alert for the flipped byte in {file} (states seen: {})",
                if states.is_empty() {
                    "none".to_string()
                } else {
                    states.join(" → ")
                }
            ),
        ));
    };
    let p = p
        .fig("alert_id", id.as_str())
        .fig(
            "alert_severity",
            serde_json::to_value(severity).unwrap_or_default(),
        )
        .fig("alert_message", message.as_str());
    if !states.contains(&"corrupted") || severity != Severity::Critical {
        return Ok(p.failed(
            started,
            format!(
                "the alert was raised but does not say corrupted at critical severity: {message}"
            ),
        ));
    }
    let final_state = tick
        .models
        .iter()
        .find(|h| h.model_id == repo.as_str())
        .map(|h| h.state);
    let resolved = recorded.is_some_and(|a| a.resolved);
    if final_state != Some(HealthState::Healthy) || !resolved {
        return Ok(p.failed(
            started,
            format!(
                "the monitor raised the alert ({message}) but {repo} is {} after its automatic repair{}",
                final_state.map(|s| s.as_str()).unwrap_or("unknown"),
                if resolved {
                    ""
                } else {
                    " and the alert is still open"
                }
            ),
        ));
    }
    Ok(p.passed(
        started,
        format!(
            "one monitor tick ({tick_s:.2} s) noticed {file} changed (quick check), hashed it (corrupted), raised \
             critical alert {id} “{message}”, repaired it from the hub ({} fetched) and marked the alert resolved",
            human_bytes(refetched)
        ),
    ))
}
