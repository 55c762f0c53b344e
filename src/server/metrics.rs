//! `GET /metrics`: the Prometheus text exposition (format 0.0.4) through the official `prometheus-client` crate.
//! Names start with `ema_`, values are in base units, counters end in `_total`, and every label has a small fixed
//! set of values (the route template, never the path; the outcome; the health state).
//!
//! Counters and histograms of downloads and verifications follow the engine's event bus ([`Metrics::follow`]);
//! the gauges come from the status snapshot the status routes answer from (`api/cache.rs`); HTTP requests are counted by the [`track`] middleware.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::broadcast::error::RecvError;

use super::api::types::wire_name;
use super::api::views::Gauges;
use crate::engine::Engine;
use crate::engine::events::{Event, HealthState};
use crate::engine::health::PerfBaselines;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;
/// A float gauge that is absent (no sample) while its value is unknown: a family over the empty label set.
type Optional = Family<Labels, Gauge<f64, AtomicU64>>;

/// Every metric of the server, registered once.
pub struct Metrics {
    registry: Registry,
    downloaded_bytes: Counter,
    downloads: Family<Labels, Counter>,
    retries: Counter,
    verifications: Family<Labels, Counter>,
    http_requests: Family<Labels, Counter>,
    /// Walks of the store made to build the status answers (shared with `api/cache.rs`).
    pub status_builds: Counter,
    downloads_active: Gauge,
    downloads_queued: Gauge,
    models: Family<Labels, Gauge>,
    store_bytes: Gauge,
    download_duration: Histogram,
    http_latency: HistogramFamily,
    store_usage: Optional,
    store_threshold: Gauge<f64, AtomicU64>,
    verify_throughput: Optional,
    verify_ratio: Optional,
    verify_models: Gauge,
    alerts_open: Family<Labels, Gauge>,
    alerts_raised: Family<Labels, Counter>,
    /// The (kind, severity) pairs `alerts_open` has exposed (set back to 0 when their alerts leave the history).
    alert_keys: Mutex<BTreeSet<(String, String)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 9))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("ema"),
            downloaded_bytes: Counter::default(),
            downloads: Family::default(),
            retries: Counter::default(),
            verifications: Family::default(),
            http_requests: Family::default(),
            status_builds: Counter::default(),
            downloads_active: Gauge::default(),
            downloads_queued: Gauge::default(),
            models: Family::default(),
            store_bytes: Gauge::default(),
            download_duration: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            http_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            store_usage: Family::default(),
            store_threshold: Gauge::default(),
            verify_throughput: Family::default(),
            verify_ratio: Family::default(),
            verify_models: Gauge::default(),
            alerts_open: Family::default(),
            alerts_raised: Family::default(),
            // The engine's alert kinds with their severities, exposed from the start (0).
            alert_keys: Mutex::new(
                [
                    ("health", "critical"),
                    ("health", "warning"),
                    ("health", "info"),
                    ("storage", "warning"),
                    ("storage_disk", "warning"),
                    ("performance", "warning"),
                    ("repair", "critical"),
                    ("test", "warning"),
                ]
                .into_iter()
                .map(|(k, s)| (k.to_string(), s.to_string()))
                .collect(),
            ),
        };
        let r = &mut m.registry;
        r.register_with_unit(
            "downloaded",
            "Bytes fetched over the network by finished downloads",
            Unit::Bytes,
            m.downloaded_bytes.clone(),
        );
        r.register(
            "downloads",
            "Downloads ended, by outcome (completed, failed, cancelled)",
            m.downloads.clone(),
        );
        r.register(
            "download_retries",
            "File transfer retries made by the download engine",
            m.retries.clone(),
        );
        r.register(
            "verifications",
            "Model verifications, by result (the health state found)",
            m.verifications.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status code",
            m.http_requests.clone(),
        );
        r.register(
            "status_builds",
            "Walks of the store made to build the status answers (cached between changes, never one per request)",
            m.status_builds.clone(),
        );
        r.register(
            "downloads_active",
            "Downloads transferring now",
            m.downloads_active.clone(),
        );
        r.register(
            "downloads_queued",
            "Downloads waiting (queued, paused or failed and resumable)",
            m.downloads_queued.clone(),
        );
        r.register(
            "models",
            "Models in the store by their last recorded health state",
            m.models.clone(),
        );
        r.register_with_unit(
            "store",
            "Bytes of model files present in the store",
            Unit::Bytes,
            m.store_bytes.clone(),
        );
        r.register_with_unit(
            "download_duration",
            "Wall time of finished downloads",
            Unit::Seconds,
            m.download_duration.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to the response head), by route template",
            Unit::Seconds,
            m.http_latency.clone(),
        );
        r.register(
            "store_usage_ratio",
            "Use of the models directory as a fraction of the storage budget (of=budget, absent without one) and \
             of its disk (of=disk)",
            m.store_usage.clone(),
        );
        r.register(
            "store_cleanup_threshold_ratio",
            "storage.cleanup_threshold_percent as a fraction: the engine alerts when a store_usage_ratio reaches it",
            m.store_threshold.clone(),
        );
        r.register(
            "verification_throughput_bytes_per_second",
            "Median over the measured models of their read throughput in their last full verification (absent \
             until one is measured)",
            m.verify_throughput.clone(),
        );
        r.register(
            "verification_throughput_ratio",
            "Lowest ratio, over the measured models, of the last verification's read throughput to the model's \
             baseline (median of its earlier measurements); absent until a model has two",
            m.verify_ratio.clone(),
        );
        r.register(
            "verification_measured_models",
            "Models with a recorded read-throughput measurement (the two throughput gauges are absent while none \
             has one; the ratio needs two measurements of a model)",
            m.verify_models.clone(),
        );
        r.register(
            "alerts_open",
            "Alerts in the alert history not resolved, by kind and severity (kind=test: raised by ema \
             test-monitoring)",
            m.alerts_open.clone(),
        );
        r.register(
            "alerts_raised",
            "Alerts published by the engine, by severity",
            m.alerts_raised.clone(),
        );
        for sev in ["info", "warning", "critical"] {
            let _ = m
                .alerts_raised
                .get_or_create(&vec![("severity", sev.to_string())]);
        }
        for h in [
            HealthState::Healthy,
            HealthState::Degraded,
            HealthState::Corrupted,
            HealthState::Incomplete,
            HealthState::Missing,
            HealthState::Unknown,
        ] {
            let _ = m
                .verifications
                .get_or_create(&vec![("result", h.as_str().to_string())]);
        }
        // Every outcome is exposed from the start (0), so rates and absences are queryable.
        for o in ["completed", "failed", "cancelled"] {
            let _ = m.downloads.get_or_create(&vec![("outcome", o.to_string())]);
        }
        m
    }

    /// Fold one engine event into the counters and histograms.
    pub fn observe(&self, ev: &Event) {
        match ev {
            Event::DownloadFinished { bytes, seconds, .. } => {
                self.downloaded_bytes.inc_by(*bytes);
                self.download_duration.observe(*seconds);
                self.outcome("completed");
            }
            Event::DownloadFailed { .. } => self.outcome("failed"),
            Event::DownloadCancelled { .. } => self.outcome("cancelled"),
            Event::Retry { .. } => {
                self.retries.inc();
            }
            Event::HealthAlert { severity, .. } => {
                self.alerts_raised
                    .get_or_create(&vec![("severity", wire_name(severity))])
                    .inc();
            }
            Event::HealthChanged { state, .. } => {
                self.verifications
                    .get_or_create(&vec![("result", state.as_str().to_string())])
                    .inc();
            }
            _ => {}
        }
    }

    fn outcome(&self, o: &str) {
        self.downloads
            .get_or_create(&vec![("outcome", o.to_string())])
            .inc();
    }

    /// Follow the engine's bus until it closes (a lag loses only the events missed).
    pub fn follow(self: Arc<Self>, engine: &Engine) -> tokio::task::JoinHandle<()> {
        let mut rx = engine.bus().subscribe();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => self.observe(&ev),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// Set the gauges from the status snapshot's (`None`: the store could not be read, the last values stay).
    fn set_gauges(&self, g: Option<&Gauges>) {
        let Some(g) = g else { return };
        self.downloads_active.set(clamp(g.downloads_active));
        self.downloads_queued.set(clamp(g.downloads_queued));
        for (s, n) in &g.models_by_health {
            self.models
                .get_or_create(&vec![("health", s.as_str().to_string())])
                .set(clamp(*n));
        }
        self.store_bytes.set(clamp(g.store_bytes));
    }

    /// Store use against the budget (the snapshot's model bytes, no walk of the store) and the disk (statvfs), and
    /// the threshold (what the monitor's storage alerts compare).
    fn refresh_storage(&self, engine: &Engine, store_bytes: Option<u64>) {
        let config = engine.config();
        self.store_threshold
            .set(config.storage.cleanup_threshold_percent as f64 / 100.0);
        let budget = (config.storage.max_storage_gb.max(0.0) * 1e9) as u64;
        let disk = fs4::statvfs(engine.store().root()).ok().and_then(|s| {
            let (t, a) = (s.total_space(), s.available_space());
            (t > 0).then(|| (t - a.min(t)) as f64 / t as f64)
        });
        for (of, ratio) in [
            (
                "budget",
                store_bytes
                    .filter(|_| budget > 0)
                    .map(|b| b as f64 / budget as f64),
            ),
            ("disk", disk),
        ] {
            let l = vec![("of", of.to_string())];
            match ratio {
                Some(r) => {
                    self.store_usage.get_or_create(&l).set(r);
                }
                None => {
                    self.store_usage.remove(&l);
                }
            }
        }
    }

    /// Read throughput recorded by full verifications (`perf_baseline.json`).
    fn refresh_throughput(&self, engine: &Engine) {
        let perf = PerfBaselines::load(engine.store());
        let mut latest: Vec<f64> = perf.models.keys().filter_map(|m| perf.latest(m)).collect();
        latest.sort_by(|a, b| a.total_cmp(b));
        self.verify_models.set(latest.len() as i64);
        let lowest = perf
            .models
            .keys()
            .filter_map(|m| perf.latest_ratio(m))
            .min_by(|a, b| a.total_cmp(b));
        let none: Labels = Vec::new();
        match latest.get(latest.len() / 2) {
            Some(v) if !latest.is_empty() => {
                self.verify_throughput.get_or_create(&none).set(*v);
            }
            _ => self.verify_throughput.clear(),
        }
        match lowest {
            Some(r) => {
                self.verify_ratio.get_or_create(&none).set(r);
            }
            None => self.verify_ratio.clear(),
        }
    }

    /// Open alerts by kind and severity, from the alert history.
    fn refresh_alerts(&self, engine: &Engine) {
        let Ok(list) = engine.alerts().list() else {
            return;
        };
        let mut keys = self.alert_keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts: std::collections::BTreeMap<(String, String), i64> =
            keys.iter().map(|k| (k.clone(), 0)).collect();
        for a in &list {
            let n = counts
                .entry((a.kind.clone(), wire_name(&a.severity)))
                .or_insert(0);
            if !a.resolved {
                *n += 1;
            }
        }
        for ((kind, sev), n) in counts {
            self.alerts_open
                .get_or_create(&vec![("kind", kind.clone()), ("severity", sev.clone())])
                .set(n);
            keys.insert((kind, sev));
        }
    }

    /// The exposition text: the gauges of the status snapshot `gauges`, and the storage, verification-throughput
    /// and alert gauges read from the engine (blocking: a statvfs and two small files).
    pub fn encode(&self, engine: &Engine, gauges: Option<&Gauges>) -> String {
        self.set_gauges(gauges);
        self.refresh_storage(engine, gauges.map(|g| g.store_bytes));
        self.refresh_throughput(engine);
        self.refresh_alerts(engine);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }

    fn http(&self, route: &'static str, method: &str, status: StatusCode, secs: f64) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "OPTIONS" => method.to_string(),
            _ => "other".to_string(),
        };
        self.http_requests
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("method", method),
                ("code", status.as_u16().to_string()),
            ])
            .inc();
        self.http_latency
            .get_or_create(&vec![("route", route.to_string())])
            .observe(secs);
    }
}

fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// The route template of a path: a fixed, small set of values (never the path itself).
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/api/v1/models/status" => "/api/v1/models/status",
        "/api/v1/models/download" => "/api/v1/models/download",
        "/api/v1/models/health" => "/api/v1/models/health",
        "/api/v1/models/status/detailed" => "/api/v1/models/status/detailed",
        "/api/v1/models/download/manage" => "/api/v1/models/download/manage",
        "/api/v1/downloads" => "/api/v1/downloads",
        "/api/v1/admin/health" => "/api/v1/admin/health",
        "/api/v1/admin/test-alerts" => "/api/v1/admin/test-alerts",
        "/api/v1/openapi.json" => "/api/v1/openapi.json",
        "/api/v1/models/fallback/suggest" => "/api/v1/models/fallback/suggest",
        "/api/v1/models/analytics" => "/api/v1/models/analytics",
        "/ws" => "/ws",
        "/metrics" => "/metrics",
        p if p.starts_with("/api/v1/downloads/") => "/api/v1/downloads/{job}",
        p if p.starts_with("/api/v1/") => "/api/v1/other",
        p if p.starts_with("/api/models") || p.contains("/resolve/") || p.starts_with("/cdn/") => {
            "hub"
        }
        _ => "other",
    }
}

/// Count and time every request (outermost layer, so refusals by the security layer are counted too).
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let method = req.method().as_str().to_string();
    let t = Instant::now();
    let resp = next.run(req).await;
    m.http(route, &method, resp.status(), t.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "metrics", operation_id = "metrics", security(()),
    responses(
        (status = 200, description = "the Prometheus text exposition (format 0.0.4)", body = String,
         content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 403, description = "Host not allowed", body = super::api::types::ErrorBody),
    ))]
pub async fn handler(State(ctx): State<Arc<super::api::ApiContext>>) -> Response {
    let snap = ctx.status.status_for_scrape().await;
    let c = ctx.clone();
    match tokio::task::spawn_blocking(move || c.metrics.encode(&c.engine, snap.gauges.as_ref()))
        .await
    {
        Ok(body) => {
            let mut r = body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
            );
            r
        }
        Err(_) => super::api::error::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the metrics could not be gathered",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::Severity;

    #[test]
    fn route_labels_are_templates() {
        assert_eq!(
            route_label("/api/v1/downloads/job-1234"),
            "/api/v1/downloads/{job}"
        );
        assert_eq!(route_label("/org/name/resolve/main/x.bin"), "hub");
        assert_eq!(route_label("/api/v1/models/whatever"), "/api/v1/other");
        assert_eq!(
            route_label("/api/v1/models/analytics"),
            "/api/v1/models/analytics"
        );
        assert_eq!(route_label("/favicon.ico"), "other");
    }

    #[test]
    fn events_move_the_counters() {
        let m = Metrics::new();
        m.observe(&Event::DownloadFinished {
            model_id: "a/b".into(),
            commit: "c".into(),
            bytes: 1234,
            seconds: 2.0,
        });
        m.observe(&Event::DownloadFailed {
            model_id: "a/b".into(),
            error: "x".into(),
            exit_code: 1,
        });
        let mut out = String::new();
        prometheus_text::encode(&mut out, &m.registry).unwrap();
        assert!(out.contains("ema_downloaded_bytes_total 1234\n"), "{out}");
        assert!(
            out.contains("ema_downloads_total{outcome=\"failed\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("ema_download_duration_seconds_count 1\n"),
            "{out}"
        );
        m.observe(&Event::HealthAlert {
            id: "x".into(),
            severity: Severity::Critical,
            model_id: None,
            message: "m".into(),
            suggested_action: None,
            at: "t".into(),
        });
        let mut out = String::new();
        prometheus_text::encode(&mut out, &m.registry).unwrap();
        assert!(
            out.contains("ema_alerts_raised_total{severity=\"critical\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("ema_verifications_total{result=\"corrupted\"} 0\n"),
            "{out}"
        );
    }
}
