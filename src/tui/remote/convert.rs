//! The server's JSON read into the console's types: `status/detailed` models into [`ModelInfo`] rows, download
//! jobs into [`DownloadSnapshot`]s (and finished jobs into the events that say how they ended), the health
//! answer's alerts and storage. Unknown fields are ignored; a malformed document is an error naming it.

use serde::Deserialize;
use serde_json::Value;

use crate::engine::download::queue::QueueState;
use crate::engine::download::{Control, DownloadSnapshot};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Availability, Event, HealthState, Severity};
use crate::engine::inventory::ModelInfo;
use crate::engine::store::{ModelMetadata, RepoId, VerificationState};
use crate::tui::state::StorageFacts;
use crate::tui::state::alerts::AlertView;

fn malformed(what: &str, e: impl std::fmt::Display) -> EmaError {
    EmaError::Other(format!(
        "the server's {what} is not what this console understands ({e}); attach with an `ema` of the \
         server's version"
    ))
}

#[derive(Debug, Deserialize)]
struct Health {
    state: HealthState,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
struct DetailedModel {
    status: Availability,
    #[serde(default)]
    commit: Option<String>,
    #[serde(default)]
    requested_revision: Option<String>,
    #[serde(default)]
    size_bytes: u64,
    #[serde(default)]
    present_bytes: u64,
    #[serde(default)]
    files_total: usize,
    #[serde(default)]
    verification: Option<VerificationState>,
    #[serde(default)]
    last_verified_at: Option<String>,
    #[serde(default)]
    pipeline_tag: Option<String>,
    #[serde(default)]
    health: Option<Health>,
    #[serde(default)]
    watched: bool,
}

/// `GET /api/v1/models/status/detailed` (or a WebSocket snapshot's `models`) as the Models pane's rows, by id.
pub fn models(doc: &Value) -> Result<Vec<ModelInfo>> {
    let map = doc["models"]
        .as_object()
        .ok_or_else(|| malformed("model status", "no \"models\" object"))?;
    let mut rows = Vec::with_capacity(map.len());
    for (id, v) in map {
        let repo = RepoId::parse(id).map_err(|e| malformed("model status", e))?;
        let m: DetailedModel =
            serde_json::from_value(v.clone()).map_err(|e| malformed("model status", e))?;
        rows.push(row(repo, m));
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

fn row(id: RepoId, m: DetailedModel) -> ModelInfo {
    // The server keeps the files list to itself; the row carries what the detailed status says.
    let metadata = m.verification.map(|verification| ModelMetadata {
        schema_version: 1,
        repo_id: id.clone(),
        requested_revision: m
            .requested_revision
            .clone()
            .unwrap_or_else(|| "main".into()),
        commit: m.commit.clone(),
        endpoint: None,
        files: Vec::new(),
        total_size: m.size_bytes,
        pipeline_tag: m.pipeline_tag.clone(),
        library_name: None,
        tags: Vec::new(),
        parameters: None,
        created_at: String::new(),
        updated_at: String::new(),
        last_verified_at: m.last_verified_at.clone(),
        verification,
        legacy_location: None,
        facts: Default::default(),
    });
    let (health, mut problems) = match &m.health {
        Some(h) if m.status != Availability::Missing => (
            h.state,
            if h.state == HealthState::Healthy || h.reason.is_empty() {
                vec![]
            } else {
                vec![h.reason.clone()]
            },
        ),
        _ => (default_health(m.status, m.verification), vec![]),
    };
    if m.status == Availability::Missing {
        problems.push(format!(
            "not on the server; download it with d (or `ema download {id}` there)"
        ));
    } else if m.files_total > 0
        && m.present_bytes < m.size_bytes
        && m.status != Availability::Available
    {
        problems.push(format!(
            "{} of {} bytes present on the server",
            m.present_bytes, m.size_bytes
        ));
    }
    ModelInfo {
        id,
        wanted: m.watched,
        metadata,
        availability: m.status,
        health,
        bytes_on_disk: m.present_bytes,
        problems,
    }
}

/// The health a model's status implies when no integrity check was recorded (as the store scan derives it).
fn default_health(a: Availability, v: Option<VerificationState>) -> HealthState {
    match a {
        Availability::Missing => HealthState::Missing,
        Availability::Corrupted => HealthState::Corrupted,
        Availability::Incomplete => HealthState::Incomplete,
        Availability::Available => match v {
            Some(VerificationState::Verified | VerificationState::LocalOnly) => {
                HealthState::Healthy
            }
            _ => HealthState::Unknown,
        },
        _ => HealthState::Unknown,
    }
}

/// One job of `GET /api/v1/downloads` (the fields the console reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Job {
    pub job_id: String,
    pub model_id: String,
    pub state: String,
    #[serde(default)]
    pub bytes_done: u64,
    #[serde(default)]
    pub bytes_total: u64,
    #[serde(default)]
    pub files_done: usize,
    #[serde(default)]
    pub files_total: usize,
    #[serde(default)]
    pub rate_bytes_per_sec: f64,
    #[serde(default)]
    pub eta_seconds: Option<f64>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
}

impl Job {
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "failed" | "cancelled")
    }
}

/// A list of jobs (`{"downloads": [...]}` or a snapshot's `downloads`).
pub fn jobs(list: &Value) -> Result<Vec<Job>> {
    serde_json::from_value(list.clone()).map_err(|e| malformed("download list", e))
}

/// The unfinished jobs as the console's download snapshots (finished ones arrive as events, see [`ending`]).
pub fn snapshots(jobs: &[Job]) -> Vec<DownloadSnapshot> {
    jobs.iter()
        .filter_map(|j| {
            let state = match j.state.as_str() {
                "queued" | "retrying" => QueueState::Queued,
                "running" => QueueState::Downloading,
                "paused" => QueueState::Paused,
                _ => return None,
            };
            Some(DownloadSnapshot {
                model_id: j.model_id.clone(),
                state,
                control: Control::Run,
                revision: None,
                commit: j.commit.clone(),
                bytes_done: j.bytes_done,
                bytes_total: j.bytes_total,
                files_done: j.files_done,
                files_total: j.files_total,
                rate_bytes_per_sec: j.rate_bytes_per_sec,
                eta_seconds: j.eta_seconds,
                pid: None,
                in_process: false,
                error: j.last_error.clone(),
            })
        })
        .collect()
}

/// How a finished job ended, as the event the engine published then (for a console that was not attached).
pub fn ending(j: &Job) -> Option<Event> {
    let model_id = j.model_id.clone();
    match j.state.as_str() {
        "completed" => Some(Event::DownloadFinished {
            model_id,
            commit: j.commit.clone().unwrap_or_default(),
            bytes: j.bytes_total,
            seconds: seconds_between(&j.created_at, j.finished_at.as_deref()),
        }),
        "failed" => Some(Event::DownloadFailed {
            model_id,
            error: j
                .last_error
                .clone()
                .unwrap_or_else(|| "failed on the server".into()),
            exit_code: 1,
        }),
        "cancelled" => Some(Event::DownloadCancelled { model_id }),
        _ => None,
    }
}

fn seconds_between(from: &str, to: Option<&str>) -> f64 {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    match (parse(from), to.and_then(parse)) {
        (Some(a), Some(b)) => (b - a).num_milliseconds().max(0) as f64 / 1000.0,
        _ => 0.0,
    }
}

#[derive(Debug, Deserialize)]
struct RemoteAlert {
    id: String,
    severity: Severity,
    #[serde(default)]
    model_id: Option<String>,
    message: String,
    #[serde(default)]
    suggested_action: Option<String>,
    #[serde(default)]
    last_at: String,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    acknowledged: bool,
    #[serde(default)]
    resolved: bool,
}

/// The alert history from `GET /api/v1/models/health` (newest first, as the server keeps it).
pub fn alerts(health: &Value) -> Result<Vec<AlertView>> {
    let list: Vec<RemoteAlert> =
        serde_json::from_value(health["alerts"].clone()).map_err(|e| malformed("alert list", e))?;
    Ok(list
        .into_iter()
        .map(|a| AlertView {
            id: a.id,
            severity: a.severity,
            model_id: a.model_id,
            message: a.message,
            suggested_action: a.suggested_action,
            at: a.last_at,
            count: a.count.clamp(1, u32::MAX as u64) as u32,
            acknowledged: a.acknowledged,
            derived: false,
            resolved: a.resolved,
        })
        .collect())
}

/// Storage use from `GET /api/v1/models/health`.
pub fn storage(health: &Value) -> Result<StorageFacts> {
    let s = &health["storage"];
    let used = s["used_bytes"]
        .as_u64()
        .ok_or_else(|| malformed("storage figures", "no used_bytes"))?;
    let threshold = s["threshold_percent"]
        .as_u64()
        .ok_or_else(|| malformed("storage figures", "no threshold_percent"))?;
    Ok(StorageFacts {
        used_bytes: used,
        max_storage_gb: s["budget_bytes"].as_u64().unwrap_or(0) as f64 / 1e9,
        cleanup_threshold_percent: threshold.min(100) as u8,
        disk_available_bytes: s["disk_available_bytes"].as_u64(),
        disk_total_bytes: s["disk_total_bytes"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detailed_models_become_rows() {
        let doc = json!({"models": {
            "b/watched": {"is_available": false, "status": "missing", "size_bytes": 0, "present_bytes": 0,
                          "files_total": 0, "verification": null, "health": null, "download": null, "watched": true},
            "a/here": {"is_available": true, "status": "available", "commit": "c0ffee", "size_bytes": 10,
                       "present_bytes": 10, "files_total": 2, "files_present": 2, "verification": "verified",
                       "pipeline_tag": "fill-mask", "health": {"state": "healthy", "reason": "ok"}},
        }});
        let rows = models(&doc).unwrap();
        assert_eq!(rows[0].id.as_str(), "a/here");
        assert_eq!(rows[0].availability, Availability::Available);
        assert_eq!(rows[0].health, HealthState::Healthy);
        assert_eq!(rows[0].pipeline_tag(), Some("fill-mask"));
        assert_eq!(rows[0].size(), 10);
        assert!(rows[0].problems.is_empty());
        assert!(rows[1].wanted && rows[1].metadata.is_none());
        assert_eq!(rows[1].health, HealthState::Missing);
        assert!(models(&json!({"models": {"not an id": {}}})).is_err());
        assert!(models(&json!([])).is_err());
    }

    #[test]
    fn jobs_split_into_snapshots_and_endings() {
        let list = json!([
            {"job_id": "job-1", "model_id": "a/b", "state": "running", "bytes_done": 5, "bytes_total": 10},
            {"job_id": "job-2", "model_id": "a/c", "state": "completed", "bytes_total": 7, "commit": "abc",
             "created_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:02.5Z"},
            {"job_id": "job-3", "model_id": "a/d", "state": "paused"},
        ]);
        let js = jobs(&list).unwrap();
        let snaps = snapshots(&js);
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].state, QueueState::Downloading);
        assert_eq!(snaps[1].state, QueueState::Paused);
        assert!(js[1].is_finished() && !js[0].is_finished());
        assert_eq!(
            ending(&js[1]),
            Some(Event::DownloadFinished {
                model_id: "a/c".into(),
                commit: "abc".into(),
                bytes: 7,
                seconds: 2.5
            })
        );
        assert_eq!(ending(&js[0]), None);
    }
}
