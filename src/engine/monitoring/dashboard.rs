//! The Grafana dashboard ema's set-up writes (`ema-dashboard.json`): downloads and their rate, models by health
//! state, verification throughput, store use against the cleanup threshold, open alerts, and API latency and
//! requests — every query over a metric `ema start` exports on `/metrics`.

use serde_json::{Value, json};

/// The dashboard's file name.
pub const DASHBOARD_FILE: &str = "ema-dashboard.json";

/// One panel: title, unit, and its queries (expression, legend).
struct Panel {
    title: &'static str,
    unit: &'static str,
    kind: &'static str,
    queries: &'static [(&'static str, &'static str)],
}

const PANELS: &[Panel] = &[
    Panel {
        title: "Downloads finished, by outcome (per minute)",
        unit: "short",
        kind: "timeseries",
        queries: &[(
            "sum by (outcome) (rate(ema_downloads_total[5m])) * 60",
            "{{outcome}}",
        )],
    },
    Panel {
        title: "Download rate",
        unit: "Bps",
        kind: "timeseries",
        queries: &[("rate(ema_downloaded_bytes_total[5m])", "bytes/s")],
    },
    Panel {
        title: "Downloads active and queued",
        unit: "short",
        kind: "timeseries",
        queries: &[
            ("ema_downloads_active", "active"),
            ("ema_downloads_queued", "queued"),
        ],
    },
    Panel {
        title: "Download retries (per minute) and duration",
        unit: "short",
        kind: "timeseries",
        queries: &[
            ("rate(ema_download_retries_total[5m]) * 60", "retries/min"),
            (
                "histogram_quantile(0.5, sum by (le) (rate(ema_download_duration_seconds_bucket[1h])))",
                "p50 duration (s)",
            ),
        ],
    },
    Panel {
        title: "Models by health state",
        unit: "short",
        kind: "timeseries",
        queries: &[("ema_models", "{{health}}")],
    },
    Panel {
        title: "Verifications, by result (per hour)",
        unit: "short",
        kind: "timeseries",
        queries: &[(
            "sum by (result) (increase(ema_verifications_total[1h]))",
            "{{result}}",
        )],
    },
    Panel {
        title: "Verification read throughput",
        unit: "Bps",
        kind: "timeseries",
        queries: &[(
            "ema_verification_throughput_bytes_per_second",
            "median of the models' last read",
        )],
    },
    Panel {
        title: "Verification throughput against baseline (lowest model)",
        unit: "percentunit",
        kind: "timeseries",
        queries: &[("ema_verification_throughput_ratio", "latest / baseline")],
    },
    Panel {
        title: "Store use against the cleanup threshold",
        unit: "percentunit",
        kind: "timeseries",
        queries: &[
            ("ema_store_usage_ratio", "{{of}}"),
            ("ema_store_cleanup_threshold_ratio", "cleanup threshold"),
        ],
    },
    Panel {
        title: "Store size",
        unit: "bytes",
        kind: "stat",
        queries: &[("ema_store_bytes", "model files")],
    },
    Panel {
        title: "Open alerts, by kind and severity",
        unit: "short",
        kind: "timeseries",
        queries: &[(
            "sum by (kind, severity) (ema_alerts_open)",
            "{{kind}} {{severity}}",
        )],
    },
    Panel {
        title: "Alerts raised (per hour)",
        unit: "short",
        kind: "timeseries",
        queries: &[(
            "sum by (severity) (increase(ema_alerts_raised_total[1h]))",
            "{{severity}}",
        )],
    },
    Panel {
        title: "API latency (p50, p99)",
        unit: "s",
        kind: "timeseries",
        queries: &[
            (
                "histogram_quantile(0.5, sum by (le) (rate(ema_http_request_duration_seconds_bucket[5m])))",
                "p50",
            ),
            (
                "histogram_quantile(0.99, sum by (le) (rate(ema_http_request_duration_seconds_bucket[5m])))",
                "p99",
            ),
        ],
    },
    Panel {
        title: "API requests, by route and status (per second)",
        unit: "reqps",
        kind: "timeseries",
        queries: &[(
            "sum by (route, code) (rate(ema_http_requests_total[5m]))",
            "{{route}} {{code}}",
        )],
    },
];

/// Every query of the dashboard.
pub fn queries() -> Vec<&'static str> {
    PANELS
        .iter()
        .flat_map(|p| p.queries.iter().map(|q| q.0))
        .collect()
}

/// The dashboard (Grafana's dashboard JSON model, importable; the data source is chosen on import).
pub fn dashboard() -> Value {
    let ds = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let panels: Vec<Value> = PANELS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let targets: Vec<Value> = p
                .queries
                .iter()
                .enumerate()
                .map(|(j, (expr, legend))| {
                    json!({
                        "datasource": ds,
                        "expr": expr,
                        "legendFormat": legend,
                        "refId": ((b'A' + j as u8) as char).to_string(),
                    })
                })
                .collect();
            json!({
                "id": i + 1,
                "type": p.kind,
                "title": p.title,
                "datasource": ds,
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
                "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                "options": {},
                "targets": targets,
            })
        })
        .collect();
    json!({
        "__inputs": [{
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "the Prometheus that scrapes ema",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }],
        "title": "ema — Enhanced Model Availability",
        "uid": "ema-overview",
        "description": "Generated by `ema setup-monitoring`: downloads, model health, verification throughput, \
                        store use, alerts and API latency of an ema server.",
        "tags": ["ema"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    })
}
