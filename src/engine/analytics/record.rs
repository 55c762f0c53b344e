//! One analytics record (a row of the events table), its kinds, and the mapping from the engine's bus events to
//! records: `EventMapper::map` is the one place a new `Event` variant gets its analytics meaning.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::engine::events::Event;

/// The kinds of record (the `kind` column).
pub mod kind {
    pub const MODEL_REQUESTED: &str = "model_requested";
    pub const MODEL_SERVED: &str = "model_served";
    pub const FALLBACK_OFFERED: &str = "fallback_offered";
    pub const FALLBACK_TAKEN: &str = "fallback_taken";
    pub const MOCK_SERVED: &str = "mock_served";
    pub const DOWNLOAD_STARTED: &str = "download_started";
    pub const DOWNLOAD_COMPLETED: &str = "download_completed";
    pub const DOWNLOAD_FAILED: &str = "download_failed";
    pub const DOWNLOAD_CANCELLED: &str = "download_cancelled";
    pub const FILE_VERIFIED: &str = "file_verified";
    pub const VERIFICATION: &str = "verification";
    pub const REPAIR: &str = "repair";
    pub const HEALTH_ALERT: &str = "health_alert";
    /// Events lost before their kind was known (the recorder fell behind the bus).
    pub const UNKNOWN: &str = "unknown";
}

/// One row of the events table. Build with [`Record::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub kind: String,
    pub model_id: Option<String>,
    /// Which face asked (`cli`, `console`, `server`, `legacy`).
    pub face: Option<String>,
    pub substitute: Option<String>,
    pub score: Option<f64>,
    pub bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    pub retries: Option<i64>,
    /// Bytes per second.
    pub rate: Option<f64>,
    pub result: Option<String>,
    /// Anything else, as JSON.
    pub detail: Option<serde_json::Value>,
    /// Unique key of an imported line (content hash); None for live events.
    pub source_key: Option<String>,
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Record {
    /// A record of `kind` for `model_id`, stamped now.
    pub fn new(kind: &str, model_id: Option<&str>) -> Self {
        Record {
            ts_ms: now_ms(),
            kind: kind.to_string(),
            model_id: model_id.map(str::to_string),
            face: None,
            substitute: None,
            score: None,
            bytes: None,
            duration_ms: None,
            retries: None,
            rate: None,
            result: None,
            detail: None,
            source_key: None,
        }
    }

    pub fn face(mut self, face: &str) -> Self {
        self.face = Some(face.to_string());
        self
    }

    pub fn result(mut self, result: &str) -> Self {
        self.result = Some(result.to_string());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// Turns bus events into records. Keeps per-model download state (start time, retries) so a completed or failed
/// download carries its duration, retries and average rate.
#[derive(Debug, Default)]
pub struct EventMapper {
    started: HashMap<String, (Instant, u32)>,
}

impl EventMapper {
    /// Every record an event becomes: [`EventMapper::map`]'s, and for a request of a model that is on disk also a
    /// `model_served` (the model itself answers the request; nothing needs a substitute).
    pub fn map_all(&mut self, event: &Event) -> Vec<Record> {
        let mut out: Vec<Record> = self.map(event).into_iter().collect();
        if let Event::ModelRequested {
            model_id,
            face,
            available: true,
        } = event
        {
            let mut r = Record::new(kind::MODEL_SERVED, Some(model_id)).result("ok");
            r.face = Some(face.clone());
            out.push(r);
        }
        out
    }

    /// The record an event becomes, if any. Progress, availability and log events are not recorded.
    pub fn map(&mut self, event: &Event) -> Option<Record> {
        match event {
            Event::DownloadStarted { model_id, commit } => {
                self.started.insert(model_id.clone(), (Instant::now(), 0));
                Some(
                    Record::new(kind::DOWNLOAD_STARTED, Some(model_id))
                        .detail(serde_json::json!({ "commit": commit })),
                )
            }
            Event::Retry { model_id, .. } => {
                if let Some((_, n)) = self.started.get_mut(model_id) {
                    *n += 1;
                }
                None
            }
            Event::DownloadFinished {
                model_id,
                commit,
                bytes,
                seconds,
            } => {
                let retries = self.started.remove(model_id).map(|(_, n)| n).unwrap_or(0);
                let mut r = Record::new(kind::DOWNLOAD_COMPLETED, Some(model_id)).result("ok");
                r.bytes = Some(*bytes as i64);
                r.duration_ms = Some((seconds * 1000.0).round() as i64);
                r.retries = Some(retries as i64);
                r.rate = (*seconds > 0.0).then(|| *bytes as f64 / seconds);
                r.detail = Some(serde_json::json!({ "commit": commit }));
                Some(r)
            }
            Event::DownloadFailed {
                model_id,
                error,
                exit_code,
            } => {
                let mut r = Record::new(kind::DOWNLOAD_FAILED, Some(model_id)).result("failed");
                if let Some((t0, n)) = self.started.remove(model_id) {
                    r.duration_ms = Some(t0.elapsed().as_millis() as i64);
                    r.retries = Some(n as i64);
                }
                r.detail = Some(serde_json::json!({ "error": error, "exit_code": exit_code }));
                Some(r)
            }
            Event::DownloadCancelled { model_id } => {
                self.started.remove(model_id);
                Some(Record::new(kind::DOWNLOAD_CANCELLED, Some(model_id)))
            }
            Event::FileVerified {
                model_id,
                path,
                size,
                ..
            } => {
                let mut r = Record::new(kind::FILE_VERIFIED, Some(model_id))
                    .result("ok")
                    .detail(serde_json::json!({ "path": path }));
                r.bytes = Some(*size as i64);
                Some(r)
            }
            Event::HealthChanged {
                model_id,
                state,
                reason,
            } => Some(
                Record::new(kind::VERIFICATION, Some(model_id))
                    .result(state.as_str())
                    .detail(serde_json::json!({ "reason": reason })),
            ),
            Event::HealthAlert {
                severity,
                model_id,
                message,
                ..
            } => Some(
                Record::new(kind::HEALTH_ALERT, model_id.as_deref())
                    .result(severity_str(*severity))
                    .detail(serde_json::json!({ "message": message })),
            ),
            Event::ModelRequested {
                model_id,
                face,
                available,
            } => {
                let mut r = Record::new(kind::MODEL_REQUESTED, Some(model_id))
                    .result(if *available { "available" } else { "missing" });
                r.face = Some(face.clone());
                Some(r)
            }
            Event::FallbackOffered {
                requested,
                substitute,
                score,
                via,
            } => {
                let mut r = Record::new(kind::FALLBACK_OFFERED, Some(requested))
                    .detail(serde_json::json!({ "via": via }));
                r.substitute = Some(substitute.clone());
                r.score = Some(*score);
                Some(r)
            }
            Event::MockServed { requested, reason } => Some(
                Record::new(kind::MOCK_SERVED, Some(requested))
                    .detail(serde_json::json!({ "reason": reason })),
            ),
            Event::DownloadQueued { .. }
            | Event::FileProgress { .. }
            | Event::ModelProgress { .. }
            | Event::DownloadPaused { .. }
            | Event::DownloadResumed { .. }
            | Event::AvailabilityChanged { .. }
            | Event::Log { .. } => None,
        }
    }
}

fn severity_str(s: crate::engine::events::Severity) -> &'static str {
    use crate::engine::events::Severity;
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_offers_and_mocks_are_recorded_with_face_substitute_and_score() {
        let mut m = EventMapper::default();
        let r = m
            .map(&Event::ModelRequested {
                model_id: "a/b".into(),
                face: "cli".into(),
                available: false,
            })
            .unwrap();
        assert_eq!(
            (r.kind.as_str(), r.face.as_deref(), r.result.as_deref()),
            (kind::MODEL_REQUESTED, Some("cli"), Some("missing"))
        );
        // A missing model is requested, not served; one on disk is both.
        let missing = Event::ModelRequested {
            model_id: "a/b".into(),
            face: "cli".into(),
            available: false,
        };
        assert_eq!(m.map_all(&missing).len(), 1);
        let on_disk = Event::ModelRequested {
            model_id: "a/b".into(),
            face: "server".into(),
            available: true,
        };
        let kinds: Vec<String> = m.map_all(&on_disk).into_iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [kind::MODEL_REQUESTED, kind::MODEL_SERVED]);
        let r = m
            .map(&Event::FallbackOffered {
                requested: "a/b".into(),
                substitute: "a/c".into(),
                score: 0.8,
                via: "scored".into(),
            })
            .unwrap();
        assert_eq!(r.kind, kind::FALLBACK_OFFERED);
        assert_eq!(r.model_id.as_deref(), Some("a/b"));
        assert_eq!(r.substitute.as_deref(), Some("a/c"));
        assert_eq!(r.score, Some(0.8));
        let r = m
            .map(&Event::MockServed {
                requested: "a/b".into(),
                reason: "nothing qualifies".into(),
            })
            .unwrap();
        assert_eq!(r.kind, kind::MOCK_SERVED);
    }

    #[test]
    fn a_download_becomes_started_and_completed_with_retries_and_rate() {
        let mut m = EventMapper::default();
        let s = m
            .map(&Event::DownloadStarted {
                model_id: "a/b".into(),
                commit: "c".into(),
            })
            .unwrap();
        assert_eq!(s.kind, kind::DOWNLOAD_STARTED);
        for attempt in 1..=2 {
            assert!(
                m.map(&Event::Retry {
                    model_id: "a/b".into(),
                    path: "f".into(),
                    attempt,
                    delay_ms: 1,
                    reason: "x".into(),
                })
                .is_none()
            );
        }
        let done = m
            .map(&Event::DownloadFinished {
                model_id: "a/b".into(),
                commit: "c".into(),
                bytes: 4000,
                seconds: 2.0,
            })
            .unwrap();
        assert_eq!(done.kind, kind::DOWNLOAD_COMPLETED);
        assert_eq!(done.retries, Some(2));
        assert_eq!(done.duration_ms, Some(2000));
        assert_eq!(done.rate, Some(2000.0));
        assert!(
            m.map(&Event::Log {
                level: crate::engine::events::Severity::Info,
                message: "x".into()
            })
            .is_none()
        );
    }
}
