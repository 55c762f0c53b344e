//! The Prometheus configuration ema's set-up writes (`prometheus.yml`): a scrape job `ema` for this server's
//! `/metrics` and the alerting rules file beside it. A configured API token is never written: the job reads it
//! from a credentials file the operator fills.

use super::rules::{JOB, RULES_FILE};
use super::yaml_str;

/// The configuration's file name.
pub const PROMETHEUS_FILE: &str = "prometheus.yml";
/// The credentials file the scrape job names when a token is configured (relative to `prometheus.yml`).
pub const TOKEN_FILE: &str = "ema-api-token";

/// `prometheus.yml` for the server at `base` (`http://HOST:PORT`); `rules`: load the alerting rules.
pub fn prometheus_yaml(header: &str, base: &url::Url, with_token: bool, rules: bool) -> String {
    let host = base.host_str().unwrap_or("127.0.0.1");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let port = base.port_or_known_default().unwrap_or(80);
    let mut s = String::new();
    s.push_str(header);
    s.push_str("global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n");
    if rules {
        s.push_str(&format!("rule_files:\n  - {RULES_FILE}\n"));
    }
    s.push_str("scrape_configs:\n");
    s.push_str(&format!("  - job_name: {JOB}\n"));
    s.push_str("    metrics_path: /metrics\n    scheme: http\n");
    s.push_str(&format!(
        "    static_configs:\n      - targets:\n          - {}\n",
        yaml_str(&format!("{host}:{port}"))
    ));
    if with_token {
        s.push_str(&format!(
            "    # ema has api.token set. /metrics itself needs no token; the job still sends it, read from this file\n\
             \x20   # (relative to this configuration): put the token in it, readable by Prometheus only. The token is\n\
             \x20   # never written here.\n\
             \x20   authorization:\n      type: Bearer\n      credentials_file: {TOKEN_FILE}\n"
        ));
    }
    s
}
