//! The status answers kept between changes ([`StatusCache`]): `GET /api/v1/models/status`, `…/status/detailed`,
//! `GET /api/v1/models/health`, the WebSocket's snapshot and the `/metrics` gauges are served from a snapshot of the
//! engine, serialized once, instead of walking the store on every request.
//!
//! A snapshot records the engine bus's change counts ([`Versions`]) read before it was built. A request is answered
//! from it unless:
//! - the engine changed since (a download queued, paused, finished or failed, a health change or alert: a state
//!   event on the bus), an API call changed something ([`StatusCache::invalidate`]), or it is older than
//!   [`MAX_AGE`] ([`REFRESH_AFTER`] for a `/metrics` scrape): the request waits for a new one (one build serves
//!   every request waiting for it);
//! - only progress events arrived, or it is older than [`REFRESH_AFTER`] (changes made by other processes or by
//!   hand: a model added, removed or damaged): the request is answered from it and a new one is built in the
//!   background.
//!
//! Builds happen only on demand, so an idle server does no work; a busy one walks the store at most once per
//! [`REFRESH_AFTER`] plus once per state change, never per request. [`StatusCache::builds`] counts the walks
//! (`ema_status_builds_total` on `/metrics`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

use super::error::{ApiError, error_response};
use super::types::{DetailedStatus, ModelsHealth};
use super::views::{self, Gauges};
use crate::engine::Engine;
use crate::engine::error::{EmaError, Result};
use crate::engine::events::Versions;

/// After this long a snapshot is rebuilt in the background on the next request (which it still answers).
pub const REFRESH_AFTER: Duration = Duration::from_secs(2);
/// A snapshot older than this is never served: the request waits for a new one.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// One serialized JSON answer, or the error it came to.
#[derive(Debug, Clone)]
pub enum Answer {
    Json(Bytes),
    Error {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl Answer {
    fn of<T: Serialize>(r: Result<T>) -> Answer {
        match r {
            Ok(v) => match serde_json::to_vec(&v) {
                Ok(b) => Answer::Json(Bytes::from(b)),
                Err(e) => {
                    Answer::failed(EmaError::Other(format!("cannot serialize the answer: {e}")))
                }
            },
            Err(e) => Answer::failed(e),
        }
    }

    fn failed(e: EmaError) -> Answer {
        let e = ApiError::from(e);
        Answer::Error {
            status: e.status,
            code: e.code,
            message: e.message,
        }
    }

    /// The HTTP answer: the JSON body as `application/json` (the bytes `axum::Json` would send), or the error.
    pub fn response(&self) -> Response {
        match self {
            Answer::Json(b) => {
                let mut r = b.clone().into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            Answer::Error {
                status,
                code,
                message,
            } => error_response(*status, code, message),
        }
    }
}

/// What one pass over the store gives the status routes.
#[derive(Debug)]
pub struct StatusSnapshot {
    pub legacy: Answer,
    pub detailed: Answer,
    /// The detailed document itself (the WebSocket's snapshot sends its models).
    pub detailed_value: Option<Arc<DetailedStatus>>,
    /// `None` when the store could not be read.
    pub gauges: Option<Gauges>,
}

impl StatusSnapshot {
    fn build(engine: &Engine) -> StatusSnapshot {
        match views::status_views(engine) {
            Ok(v) => StatusSnapshot {
                legacy: Answer::of(Ok(&v.legacy)),
                detailed: Answer::of(Ok(&v.detailed)),
                gauges: Some(v.gauges),
                detailed_value: Some(Arc::new(v.detailed)),
            },
            Err(e) => StatusSnapshot::of_error(Answer::failed(e)),
        }
    }

    fn of_error(a: Answer) -> StatusSnapshot {
        StatusSnapshot {
            legacy: a.clone(),
            detailed: a,
            detailed_value: None,
            gauges: None,
        }
    }
}

/// A value built from the engine, with the versions it saw.
struct Built<T> {
    value: Arc<T>,
    versions: Versions,
    invalidated: u64,
    at: Instant,
}

/// One cached value: the current build, the lock one build at a time holds, the background-refresh flag.
struct Slot<T> {
    current: RwLock<Option<Arc<Built<T>>>>,
    building: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    make: fn(&Engine) -> T,
    /// The value standing for a build that panicked.
    failed: fn(String) -> T,
}

/// What a build must have seen to serve a request.
#[derive(Clone, Copy)]
struct Need {
    state: u64,
    progress: u64,
    invalidated: u64,
    not_before: Option<Instant>,
}

impl<T> Built<T> {
    fn serves(&self, n: &Need) -> bool {
        self.versions.state >= n.state
            && self.versions.progress >= n.progress
            && self.invalidated >= n.invalidated
            && n.not_before.is_none_or(|t| self.at >= t)
    }
}

/// The cached status answers of one server (every listener shares it).
pub struct StatusCache {
    engine: Engine,
    status: Slot<StatusSnapshot>,
    health: Slot<Answer>,
    invalidated: AtomicU64,
    /// `ema_status_builds_total`.
    builds: Counter,
    /// [`REFRESH_AFTER`] and [`MAX_AGE`] (longer in the unit tests, so that their counts never depend on speed).
    refresh_after: Duration,
    max_age: Duration,
}

fn build_health(engine: &Engine) -> Answer {
    Answer::of::<ModelsHealth>(views::models_health(engine))
}

impl StatusCache {
    /// The cache of `engine`'s answers; each walk of the store counts on `builds`.
    pub fn new(engine: Engine, builds: Counter) -> Arc<StatusCache> {
        Self::with_ages(engine, builds, REFRESH_AFTER, MAX_AGE)
    }

    fn with_ages(
        engine: Engine,
        builds: Counter,
        refresh_after: Duration,
        max_age: Duration,
    ) -> Arc<StatusCache> {
        fn slot<T>(make: fn(&Engine) -> T, failed: fn(String) -> T) -> Slot<T> {
            Slot {
                current: RwLock::new(None),
                building: tokio::sync::Mutex::new(()),
                refreshing: AtomicBool::new(false),
                make,
                failed,
            }
        }
        Arc::new(StatusCache {
            engine,
            status: slot(StatusSnapshot::build, |m| {
                StatusSnapshot::of_error(Answer::failed(EmaError::Other(m)))
            }),
            health: slot(build_health, |m| Answer::failed(EmaError::Other(m))),
            invalidated: AtomicU64::new(0),
            builds,
            refresh_after,
            max_age,
        })
    }

    /// The status maps and gauges as of now (see the module's rules).
    pub async fn status(self: &Arc<Self>) -> Arc<StatusSnapshot> {
        self.get(|c| &c.status, self.max_age).await
    }

    /// The same, never older than [`REFRESH_AFTER`] (a scrape's gauges are of the scrape; at most one walk per
    /// [`REFRESH_AFTER`] however often `/metrics` is asked).
    pub async fn status_for_scrape(self: &Arc<Self>) -> Arc<StatusSnapshot> {
        self.get(|c| &c.status, self.refresh_after).await
    }

    /// The legacy health answer as of now.
    pub async fn health(self: &Arc<Self>) -> Arc<Answer> {
        self.get(|c| &c.health, self.max_age).await
    }

    /// Something changed that the bus does not carry (an API call started, paused or cancelled a job): the next
    /// request waits for a new build.
    pub fn invalidate(&self) {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
    }

    /// How many times the store was walked for these answers since the server started.
    pub fn builds(&self) -> u64 {
        self.builds.get()
    }

    fn now_versions(&self) -> (Versions, u64) {
        (
            self.engine.bus().versions(),
            self.invalidated.load(Ordering::SeqCst),
        )
    }

    async fn get<T: Send + Sync + 'static>(
        self: &Arc<Self>,
        slot: fn(&StatusCache) -> &Slot<T>,
        max_age: Duration,
    ) -> Arc<T> {
        let (v, inv) = self.now_versions();
        let now = Instant::now();
        let must = Need {
            state: v.state,
            progress: 0,
            invalidated: inv,
            not_before: now.checked_sub(max_age),
        };
        let current = slot(self).current.read().expect("cache lock").clone();
        if let Some(b) = current
            && b.serves(&must)
        {
            let fresh = Need {
                progress: v.progress,
                not_before: now.checked_sub(self.refresh_after),
                ..must
            };
            if !b.serves(&fresh) {
                self.refresh_in_background(slot, fresh);
            }
            return b.value.clone();
        }
        self.rebuild(slot, must).await
    }

    fn refresh_in_background<T: Send + Sync + 'static>(
        self: &Arc<Self>,
        slot: fn(&StatusCache) -> &Slot<T>,
        need: Need,
    ) {
        if slot(self).refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.rebuild(slot, need).await;
            slot(&me).refreshing.store(false, Ordering::SeqCst);
        });
    }

    /// Build unless a build that serves `need` landed while waiting for the lock (one build at a time per slot).
    async fn rebuild<T: Send + Sync + 'static>(
        self: &Arc<Self>,
        slot: fn(&StatusCache) -> &Slot<T>,
        need: Need,
    ) -> Arc<T> {
        let s = slot(self);
        let _one = s.building.lock().await;
        if let Some(b) = s.current.read().expect("cache lock").clone()
            && b.serves(&need)
        {
            return b.value.clone();
        }
        let at = Instant::now();
        let (versions, invalidated) = self.now_versions();
        let engine = self.engine.clone();
        let make = s.make;
        self.builds.inc();
        let value = match tokio::task::spawn_blocking(move || make(&engine)).await {
            Ok(v) => Arc::new(v),
            // The build panicked: keep serving the last one (the next request retries), or say what failed.
            Err(e) => match s.current.read().expect("cache lock").clone() {
                Some(b) => return b.value.clone(),
                None => return Arc::new((s.failed)(format!("the status build failed: {e}"))),
            },
        };
        let built = Arc::new(Built {
            value: value.clone(),
            versions,
            invalidated,
            at,
        });
        *s.current.write().expect("cache lock") = Some(built);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Config;
    use crate::engine::config::hub_env::HubEnv;
    use crate::engine::events::Event;

    fn cache(dir: &std::path::Path) -> (Arc<StatusCache>, Engine) {
        let mut cfg = Config::default();
        cfg.storage.models_directory = dir.to_path_buf();
        cfg.storage.wanted_models = vec!["org/wanted".into()];
        let engine = Engine::new(cfg, HubEnv::from_env()).unwrap();
        engine.store().ensure().unwrap();
        let hour = Duration::from_secs(3600);
        let c = StatusCache::with_ages(engine.clone(), Counter::default(), hour, hour);
        (c, engine)
    }

    fn body(a: &Answer) -> serde_json::Value {
        match a {
            Answer::Json(b) => serde_json::from_slice(b).unwrap(),
            Answer::Error { message, .. } => panic!("{message}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_are_reused_until_a_state_change_or_an_api_change() {
        let d = tempfile::tempdir().unwrap();
        let (c, engine) = cache(d.path());
        let first = c.status().await;
        assert_eq!(c.builds(), 1);
        let v = body(&first.detailed);
        assert_eq!(v["models"]["org/wanted"]["status"], "missing");
        assert_eq!(body(&first.legacy)["org/wanted"]["available"], false);
        // The same snapshot while nothing changed, whatever the number of requests.
        for _ in 0..50 {
            assert!(Arc::ptr_eq(&c.status().await, &first));
        }
        assert_eq!(c.builds(), 1);
        // A log line changes nothing; a state event does, and the next request waits for it.
        engine.bus().emit(Event::Log {
            level: crate::engine::events::Severity::Info,
            message: "x".into(),
        });
        assert!(Arc::ptr_eq(&c.status().await, &first));
        engine.bus().emit(Event::DownloadCancelled {
            model_id: "org/wanted".into(),
        });
        let second = c.status().await;
        assert!(!Arc::ptr_eq(&second, &first));
        assert_eq!(c.builds(), 2);
        assert!(Arc::ptr_eq(&c.status().await, &second));
        // An API call that changed a job.
        c.invalidate();
        assert!(!Arc::ptr_eq(&c.status().await, &second));
        assert_eq!(c.builds(), 3);
        // The gauges come with it.
        let g = c.status().await.gauges.clone().unwrap();
        assert_eq!(
            (g.downloads_active, g.downloads_queued, g.store_bytes),
            (0, 0, 0)
        );
        assert_eq!(g.models_by_health.len(), views::HEALTH_STATES.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_after_a_change_share_one_build() {
        let d = tempfile::tempdir().unwrap();
        let (c, engine) = cache(d.path());
        c.status().await;
        engine.bus().emit(Event::DownloadCancelled {
            model_id: "org/wanted".into(),
        });
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.status().await })
            })
            .collect();
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        assert_eq!(c.builds(), 2, "one build for the 16 requests");
        assert!(got.iter().all(|s| Arc::ptr_eq(s, &got[0])));
    }
}
