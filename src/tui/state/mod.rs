//! The console's view model: what the panes show, updated by engine events (`apply`) and snapshots. No I/O here.
//! [`alerts`] holds the alert list and its rules.

pub mod alerts;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use crate::engine::download::queue::QueueState;
use crate::engine::download::{Control, DownloadSnapshot};
use crate::engine::events::{Availability, Event, Severity};
use crate::engine::fallback::{Offer, Report};
use crate::engine::inventory::ModelInfo;
use crate::engine::migration::MigrationState;

use alerts::AlertView;

/// Samples kept for the throughput sparkline (one a second).
pub const RATE_HISTORY: usize = 120;
const MAX_LOG: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadState {
    Queued,
    Running,
    Paused,
    Finished,
    Failed,
    Cancelled,
}

impl DownloadState {
    pub fn as_str(&self) -> &'static str {
        match self {
            DownloadState::Queued => "queued",
            DownloadState::Running => "downloading",
            DownloadState::Paused => "paused",
            DownloadState::Finished => "finished",
            DownloadState::Failed => "failed",
            DownloadState::Cancelled => "cancelled",
        }
    }
    pub fn active(&self) -> bool {
        matches!(
            self,
            DownloadState::Queued | DownloadState::Running | DownloadState::Paused
        )
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileProgress {
    pub done: u64,
    pub total: u64,
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DownloadView {
    pub model_id: String,
    pub revision: String,
    pub commit: Option<String>,
    pub state: DownloadState,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: usize,
    pub files_total: usize,
    pub rate: f64,
    pub eta: Option<f64>,
    pub retries: u32,
    pub last_error: Option<String>,
    pub files: BTreeMap<String, FileProgress>,
}

impl DownloadView {
    pub fn ratio(&self) -> f64 {
        if self.bytes_total == 0 {
            if self.state == DownloadState::Finished {
                1.0
            } else {
                0.0
            }
        } else {
            (self.bytes_done as f64 / self.bytes_total as f64).clamp(0.0, 1.0)
        }
    }
}

/// What the hub says about a model that is not in the store (task and size for the watch list and the fallback).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteModel {
    pub pipeline_tag: Option<String>,
    pub total_size: u64,
    pub commit: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageFacts {
    pub used_bytes: u64,
    pub max_storage_gb: f64,
    pub cleanup_threshold_percent: u8,
    pub disk_available_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
}

impl StorageFacts {
    pub fn used_ratio(&self) -> f64 {
        if self.max_storage_gb <= 0.0 {
            return 0.0;
        }
        self.used_bytes as f64 / (self.max_storage_gb * 1e9)
    }
    pub fn over_threshold(&self) -> bool {
        self.used_ratio() * 100.0 >= self.cleanup_threshold_percent as f64
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HubFacts {
    pub endpoint: String,
    /// `HF_HUB_OFFLINE` is set.
    pub offline_mode: bool,
    /// Result of the last reachability probe; None before the first.
    pub reachable: Option<bool>,
}

/// The analytics summary line of the Health pane (last 24 hours).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AnalyticsFacts {
    /// Not asked yet.
    #[default]
    Unknown,
    /// Recording is off in the configuration.
    Off,
    Ready(Box<crate::engine::analytics::AnalyticsSummary>),
    /// The database could not be read (why).
    Unavailable(String),
}

/// The Health pane's performance recommendations (the set `ema analyze-performance --generate-recommendations`
/// saved, those not yet in force).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RecommendationFacts {
    /// Not asked yet.
    #[default]
    Unknown,
    Ready(Vec<crate::engine::advice::Recommendation>),
    /// Not available (why: attached to a server, or the saved set cannot be read).
    Unavailable(String),
}

/// The server the console is attached to (`ema --attach URL`) and whether its event stream is up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkFacts {
    /// The server's base URL (never with a token).
    pub server: String,
    pub connected: bool,
    /// Successful connections so far: a change means the view must be reloaded (events may have been missed).
    pub generation: u64,
    /// Why it is disconnected (the last error), shown beside the reconnect notice.
    pub error: Option<String>,
}

/// The whole view model.
#[derive(Debug, Clone, Default)]
pub struct ConsoleState {
    pub store_root: PathBuf,
    pub models: Vec<ModelInfo>,
    /// Keyed by model id; `download_order` keeps arrival order for display.
    pub downloads: HashMap<String, DownloadView>,
    pub download_order: Vec<String>,
    /// Total throughput samples (bytes/s), oldest first.
    pub rate_history: VecDeque<u64>,
    pub alerts: Vec<AlertView>,
    pub log: VecDeque<(Severity, String)>,
    pub storage: StorageFacts,
    pub analytics: AnalyticsFacts,
    pub recommendations: RecommendationFacts,
    pub hub: HubFacts,
    pub migration: MigrationState,
    /// Migration step currently running in the engine.
    pub migration_running: Option<String>,
    /// Bumped whenever `models` changes, so views can cache derived orderings.
    pub models_generation: u64,
    /// Hub facts about models that are not in the store, by id.
    pub remote: HashMap<String, RemoteModel>,
    /// The engine's fallback answer per requested model (the Fallback pane); cleared when the store is rescanned.
    pub fallback: HashMap<String, Report>,
    /// Set when the console is attached to a server rather than running the engine in-process.
    pub link: Option<LinkFacts>,
}

impl ConsoleState {
    /// Replace the model list with a fresh snapshot and re-derive store alerts.
    pub fn set_models(&mut self, models: Vec<ModelInfo>) {
        self.models = models;
        self.models_generation += 1;
        self.derive_alerts();
    }

    /// Fold in the engine's download list (at startup and on refresh; live figures come from events).
    pub fn set_downloads(&mut self, snaps: &[DownloadSnapshot]) {
        for sn in snaps {
            let d = self.entry(&sn.model_id);
            d.state = match sn.state {
                QueueState::Queued => DownloadState::Queued,
                QueueState::Downloading if sn.control == Control::Pause => DownloadState::Paused,
                QueueState::Downloading => DownloadState::Running,
                QueueState::Paused => DownloadState::Paused,
                QueueState::Failed => DownloadState::Failed,
            };
            if let Some(r) = &sn.revision {
                d.revision = r.clone();
            }
            if sn.commit.is_some() {
                d.commit = sn.commit.clone();
            }
            if sn.bytes_done >= d.bytes_done {
                d.bytes_done = sn.bytes_done;
                d.bytes_total = sn.bytes_total.max(d.bytes_total);
                d.files_done = sn.files_done.max(d.files_done);
                d.files_total = sn.files_total.max(d.files_total);
                d.rate = sn.rate_bytes_per_sec;
                d.eta = sn.eta_seconds;
            }
            if sn.error.is_some() {
                d.last_error = sn.error.clone();
            }
        }
        self.derive_alerts();
    }

    /// The model's task: from its metadata, else from the hub.
    pub fn task_of<'a>(&'a self, m: &'a ModelInfo) -> Option<&'a str> {
        m.pipeline_tag().or_else(|| {
            self.remote
                .get(m.id.as_str())
                .and_then(|r| r.pipeline_tag.as_deref())
        })
    }

    /// The model's size: from its metadata or disk, else from the hub.
    pub fn size_of(&self, m: &ModelInfo) -> u64 {
        match m.size() {
            0 => self
                .remote
                .get(m.id.as_str())
                .map(|r| r.total_size)
                .unwrap_or(0),
            s => s,
        }
    }

    pub fn set_remote(&mut self, id: String, r: RemoteModel) {
        self.remote.insert(id, r);
        self.models_generation += 1;
    }

    pub fn model(&self, id: &str) -> Option<&ModelInfo> {
        self.models.iter().find(|m| m.id.as_str() == id)
    }

    pub fn download(&self, id: &str) -> Option<&DownloadView> {
        self.downloads.get(id)
    }

    /// Downloads in arrival order.
    pub fn downloads_in_order(&self) -> impl Iterator<Item = &DownloadView> {
        self.download_order
            .iter()
            .filter_map(|id| self.downloads.get(id))
    }

    pub fn active_downloads(&self) -> usize {
        self.downloads.values().filter(|d| d.state.active()).count()
    }

    pub fn total_rate(&self) -> f64 {
        self.downloads
            .values()
            .filter(|d| d.state == DownloadState::Running)
            .map(|d| d.rate)
            .sum()
    }

    /// What the Models pane shows in its status column.
    pub fn status_label(&self, m: &ModelInfo) -> String {
        if let Some(d) = self.downloads.get(m.id.as_str()) {
            match d.state {
                DownloadState::Running => {
                    return format!("downloading {:.0}%", d.ratio() * 100.0);
                }
                DownloadState::Queued => return "queued".into(),
                DownloadState::Paused => return format!("paused {:.0}%", d.ratio() * 100.0),
                _ => {}
            }
        }
        m.availability.as_str().to_string()
    }

    /// The availability that counts for display, with live downloads taken into account.
    pub fn effective_availability(&self, m: &ModelInfo) -> Availability {
        match self.downloads.get(m.id.as_str()).map(|d| d.state) {
            Some(DownloadState::Running) => Availability::Downloading,
            Some(DownloadState::Queued) => Availability::Queued,
            Some(DownloadState::Paused) => Availability::Paused,
            _ => m.availability,
        }
    }

    /// The engine's suggestions for `id` (empty until its answer arrived).
    pub fn fallback_offers(&self, id: &str) -> &[Offer] {
        self.fallback
            .get(id)
            .map(|r| r.suggestions.as_slice())
            .unwrap_or(&[])
    }

    fn entry(&mut self, model_id: &str) -> &mut DownloadView {
        if !self.downloads.contains_key(model_id) {
            self.download_order.push(model_id.to_string());
        }
        self.downloads
            .entry(model_id.to_string())
            .or_insert_with(|| DownloadView {
                model_id: model_id.to_string(),
                revision: "main".into(),
                commit: None,
                state: DownloadState::Queued,
                bytes_done: 0,
                bytes_total: 0,
                files_done: 0,
                files_total: 0,
                rate: 0.0,
                eta: None,
                retries: 0,
                last_error: None,
                files: BTreeMap::new(),
            })
    }

    fn push_log(&mut self, level: Severity, msg: String) {
        self.log.push_back((level, msg));
        while self.log.len() > MAX_LOG {
            self.log.pop_front();
        }
    }

    pub fn set_storage(&mut self, s: StorageFacts) {
        self.storage = s;
        self.derive_alerts();
    }

    /// One throughput sample (call once a second while downloads run). Returns true when it changed the view.
    pub fn sample_rate(&mut self) -> bool {
        if self.active_downloads() == 0 && self.rate_history.iter().all(|r| *r == 0) {
            return false;
        }
        self.rate_history
            .push_back(self.total_rate().max(0.0) as u64);
        while self.rate_history.len() > RATE_HISTORY {
            self.rate_history.pop_front();
        }
        true
    }

    /// Fold one engine event in. Returns true when something visible changed; the caller may want a model
    /// refresh after `DownloadFinished`/`AvailabilityChanged`/`HealthChanged` (see [`Event`] handling in the app).
    pub fn apply(&mut self, ev: &Event) -> bool {
        match ev {
            Event::DownloadQueued {
                model_id,
                revision,
                files,
                total_bytes,
            } => {
                let d = self.entry(model_id);
                d.revision = revision.clone();
                d.files_total = *files;
                d.bytes_total = *total_bytes;
                d.state = DownloadState::Queued;
                d.last_error = None;
                self.derive_alerts();
            }
            Event::DownloadStarted { model_id, commit } => {
                let d = self.entry(model_id);
                d.commit = Some(commit.clone());
                d.state = DownloadState::Running;
            }
            Event::FileProgress {
                model_id,
                path,
                bytes_done,
                bytes_total,
            } => {
                let d = self.entry(model_id);
                let f = d.files.entry(path.clone()).or_default();
                f.done = *bytes_done;
                f.total = *bytes_total;
            }
            Event::ModelProgress {
                model_id,
                bytes_done,
                bytes_total,
                files_done,
                files_total,
                rate_bytes_per_sec,
                eta_seconds,
                ..
            } => {
                let d = self.entry(model_id);
                d.bytes_done = *bytes_done;
                d.bytes_total = *bytes_total;
                d.files_done = *files_done;
                d.files_total = *files_total;
                d.rate = *rate_bytes_per_sec;
                d.eta = *eta_seconds;
                if d.state == DownloadState::Queued {
                    d.state = DownloadState::Running;
                }
            }
            Event::FileVerified {
                model_id,
                path,
                size,
                ..
            } => {
                let d = self.entry(model_id);
                let f = d.files.entry(path.clone()).or_default();
                f.done = *size;
                f.total = *size;
                f.verified = true;
            }
            Event::Retry {
                model_id,
                path,
                attempt,
                reason,
                ..
            } => {
                let d = self.entry(model_id);
                d.retries += 1;
                d.last_error = Some(format!("{path}: {reason} (attempt {attempt})"));
            }
            Event::DownloadPaused { model_id } => {
                let d = self.entry(model_id);
                d.state = DownloadState::Paused;
                d.rate = 0.0;
            }
            Event::DownloadResumed { model_id } => {
                self.entry(model_id).state = DownloadState::Running;
            }
            Event::DownloadCancelled { model_id } => {
                let d = self.entry(model_id);
                d.state = DownloadState::Cancelled;
                d.rate = 0.0;
                d.eta = None;
            }
            Event::DownloadFinished {
                model_id, commit, ..
            } => {
                let d = self.entry(model_id);
                d.state = DownloadState::Finished;
                d.commit = Some(commit.clone());
                d.bytes_done = d.bytes_total.max(d.bytes_done);
                d.files_done = d.files_total.max(d.files_done);
                d.rate = 0.0;
                d.eta = None;
                let msg = format!("{model_id} downloaded");
                self.push_log(Severity::Info, msg);
            }
            Event::DownloadFailed {
                model_id, error, ..
            } => {
                let d = self.entry(model_id);
                d.state = DownloadState::Failed;
                d.last_error = Some(error.clone());
                d.rate = 0.0;
                d.eta = None;
                let at = crate::engine::store::now_rfc3339();
                self.add_alert(AlertView {
                    id: format!("download:{model_id}"),
                    severity: Severity::Critical,
                    model_id: Some(model_id.clone()),
                    message: format!("download of {model_id} failed: {error}"),
                    suggested_action: Some("retry with d in the Models pane".into()),
                    at,
                    count: 1,
                    acknowledged: false,
                    derived: false,
                    resolved: false,
                });
            }
            Event::AvailabilityChanged {
                model_id,
                new_status,
                ..
            } => {
                if let Some(m) = self.models.iter_mut().find(|m| m.id.as_str() == model_id) {
                    m.availability = *new_status;
                    self.models_generation += 1;
                } else {
                    return false;
                }
            }
            Event::HealthAlert {
                id,
                severity,
                model_id,
                message,
                suggested_action,
                at,
            } => {
                self.add_alert(AlertView {
                    id: id.clone(),
                    severity: *severity,
                    model_id: model_id.clone(),
                    message: message.clone(),
                    suggested_action: suggested_action.clone(),
                    at: at.clone(),
                    count: 1,
                    acknowledged: false,
                    derived: false,
                    resolved: false,
                });
            }
            Event::HealthChanged {
                model_id,
                state,
                reason,
            } => {
                if let Some(m) = self.models.iter_mut().find(|m| m.id.as_str() == model_id) {
                    m.health = *state;
                    if !reason.is_empty() && !m.problems.contains(reason) {
                        m.problems.push(reason.clone());
                    }
                    self.models_generation += 1;
                } else {
                    return false;
                }
            }
            Event::Log { level, message } => {
                self.push_log(*level, message.clone());
            }
            // Recorded by analytics; the Fallback pane shows the engine's answer itself.
            Event::ModelRequested { .. }
            | Event::FallbackOffered { .. }
            | Event::MockServed { .. } => {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_events_drive_a_download_to_finished() {
        let mut s = ConsoleState::default();
        s.apply(&Event::DownloadQueued {
            model_id: "a/b".into(),
            revision: "main".into(),
            files: 2,
            total_bytes: 100,
        });
        assert_eq!(s.active_downloads(), 1);
        s.apply(&Event::DownloadStarted {
            model_id: "a/b".into(),
            commit: "c".into(),
        });
        s.apply(&Event::ModelProgress {
            model_id: "a/b".into(),
            bytes_done: 50,
            bytes_total: 100,
            files_done: 1,
            files_total: 2,
            progress_percent: 50.0,
            rate_bytes_per_sec: 10.0,
            eta_seconds: Some(5.0),
        });
        assert_eq!(s.total_rate(), 10.0);
        assert!(s.sample_rate());
        s.apply(&Event::Retry {
            model_id: "a/b".into(),
            path: "w.bin".into(),
            attempt: 1,
            delay_ms: 10,
            reason: "503".into(),
        });
        assert_eq!(s.download("a/b").unwrap().retries, 1);
        s.apply(&Event::DownloadFinished {
            model_id: "a/b".into(),
            commit: "c".into(),
            bytes: 100,
            seconds: 1.0,
        });
        let d = s.download("a/b").unwrap();
        assert_eq!(d.state, DownloadState::Finished);
        assert_eq!(d.ratio(), 1.0);
        assert_eq!(s.active_downloads(), 0);
    }
}
