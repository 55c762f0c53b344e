//! One typed event bus. The engine publishes; every face (TUI, CLI, server) subscribes. Progress events are
//! rate-limited at the source so a slow subscriber never sees more than a few per second per file.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Where a model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Available,
    Downloading,
    Queued,
    Paused,
    Incomplete,
    Corrupted,
    Missing,
}

impl Availability {
    pub fn as_str(&self) -> &'static str {
        match self {
            Availability::Available => "available",
            Availability::Downloading => "downloading",
            Availability::Queued => "queued",
            Availability::Paused => "paused",
            Availability::Incomplete => "incomplete",
            Availability::Corrupted => "corrupted",
            Availability::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Health of one model, from integrity checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Healthy,
    Degraded,
    Corrupted,
    Incomplete,
    Missing,
    Unknown,
}

impl HealthState {
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Corrupted => "corrupted",
            HealthState::Incomplete => "incomplete",
            HealthState::Missing => "missing",
            HealthState::Unknown => "unknown",
        }
    }
}

/// Everything the engine tells the faces. Serialized with a `type` tag for `--json` NDJSON and the WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A download was accepted and resolved to a commit.
    DownloadQueued {
        model_id: String,
        revision: String,
        files: usize,
        total_bytes: u64,
    },
    DownloadStarted {
        model_id: String,
        commit: String,
    },
    /// Progress of one file (rate-limited).
    FileProgress {
        model_id: String,
        path: String,
        bytes_done: u64,
        bytes_total: u64,
    },
    /// Progress of a whole model (rate-limited).
    #[serde(rename = "model_download_progress")]
    ModelProgress {
        model_id: String,
        bytes_done: u64,
        bytes_total: u64,
        files_done: usize,
        files_total: usize,
        progress_percent: f64,
        rate_bytes_per_sec: f64,
        eta_seconds: Option<f64>,
    },
    FileVerified {
        model_id: String,
        path: String,
        size: u64,
        hash: String,
    },
    /// A retry is about to happen.
    Retry {
        model_id: String,
        path: String,
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    DownloadPaused {
        model_id: String,
    },
    DownloadResumed {
        model_id: String,
    },
    DownloadCancelled {
        model_id: String,
    },
    DownloadFinished {
        model_id: String,
        commit: String,
        bytes: u64,
        seconds: f64,
    },
    DownloadFailed {
        model_id: String,
        error: String,
        exit_code: i32,
    },
    #[serde(rename = "model_availability_change")]
    AvailabilityChanged {
        model_id: String,
        old_status: Option<Availability>,
        new_status: Availability,
    },
    #[serde(rename = "model_health_alert")]
    HealthAlert {
        id: String,
        severity: Severity,
        model_id: Option<String>,
        message: String,
        suggested_action: Option<String>,
        at: String,
    },
    HealthChanged {
        model_id: String,
        state: HealthState,
        reason: String,
    },
    /// A face asked for a model (the fallback call): which face, and whether it was available.
    ModelRequested {
        model_id: String,
        face: String,
        available: bool,
    },
    /// A substitute was offered for a requested model: by an operator rule or by the score.
    FallbackOffered {
        requested: String,
        substitute: String,
        score: f64,
        /// `rule` or `scored`.
        via: String,
    },
    /// Nothing real qualified and the mock stand-in was served.
    MockServed {
        requested: String,
        reason: String,
    },
    /// A free-form log line for the console's log views.
    Log {
        level: Severity,
        message: String,
    },
}

impl Event {
    /// What the event says about the engine's state: a [`Change::State`] (a download queued, paused or finished, a
    /// model's health or availability changed, an alert), mere [`Change::Progress`] of a transfer, or nothing the
    /// faces' views of the store show (logs, retries, fallback requests).
    pub fn change(&self) -> Change {
        match self {
            Event::FileProgress { .. } | Event::ModelProgress { .. } => Change::Progress,
            Event::Log { .. }
            | Event::Retry { .. }
            | Event::ModelRequested { .. }
            | Event::FallbackOffered { .. }
            | Event::MockServed { .. } => Change::None,
            _ => Change::State,
        }
    }
}

/// The kind of change an event reports (see [`Event::change`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    State,
    Progress,
    None,
}

/// How many events of each kind the bus has carried since it was made: a view built from the engine records these
/// before it reads, and is stale once they moved on (see [`EventBus::versions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Versions {
    /// Events that changed the engine's state.
    pub state: u64,
    /// Progress events.
    pub progress: u64,
}

/// A cloneable handle to the broadcast bus.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    state: std::sync::Arc<std::sync::atomic::AtomicU64>,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        EventBus {
            tx,
            state: Default::default(),
            progress: Default::default(),
        }
    }

    /// Publish an event. Having no subscriber is fine. The change is counted before it is sent, so a reader that
    /// saw the event also sees the count moved.
    pub fn emit(&self, event: Event) {
        use std::sync::atomic::Ordering::SeqCst;
        match event.change() {
            Change::State => {
                self.state.fetch_add(1, SeqCst);
            }
            Change::Progress => {
                self.progress.fetch_add(1, SeqCst);
            }
            Change::None => {}
        }
        let _ = self.tx.send(event);
    }

    /// The change counts so far. The engine emits after it changed what it reports, so a view built after reading
    /// these shows every change they count.
    pub fn versions(&self) -> Versions {
        use std::sync::atomic::Ordering::SeqCst;
        Versions {
            state: self.state.load(SeqCst),
            progress: self.progress.load(SeqCst),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_spec_type_names() {
        let e = Event::AvailabilityChanged {
            model_id: "a/b".into(),
            old_status: None,
            new_status: Availability::Available,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "model_availability_change");
        assert_eq!(v["new_status"], "available");
    }

    #[test]
    fn state_changes_and_progress_are_counted_apart() {
        let bus = EventBus::new();
        let v0 = bus.versions();
        bus.emit(Event::Log {
            level: Severity::Info,
            message: "x".into(),
        });
        assert_eq!(bus.versions(), v0);
        bus.emit(Event::ModelProgress {
            model_id: "a/b".into(),
            bytes_done: 1,
            bytes_total: 2,
            files_done: 0,
            files_total: 1,
            progress_percent: 50.0,
            rate_bytes_per_sec: 1.0,
            eta_seconds: None,
        });
        assert_eq!((bus.versions().state, bus.versions().progress), (0, 1));
        bus.clone().emit(Event::DownloadPaused {
            model_id: "a/b".into(),
        });
        assert_eq!((bus.versions().state, bus.versions().progress), (1, 1));
    }

    #[tokio::test]
    async fn subscribers_receive_in_order() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        bus.emit(Event::DownloadPaused {
            model_id: "x".into(),
        });
        bus.emit(Event::DownloadResumed {
            model_id: "x".into(),
        });
        assert!(matches!(
            rx.recv().await.unwrap(),
            Event::DownloadPaused { .. }
        ));
        assert!(matches!(
            rx.recv().await.unwrap(),
            Event::DownloadResumed { .. }
        ));
    }
}
