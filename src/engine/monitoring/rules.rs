//! The alerting rules ema's generated Prometheus set-up loads (`ema-alerts.yml`) and their promtool unit tests
//! (`ema-alerts.test.yml`: per alert, evaluation times where it must not fire and one where it must, with the exact
//! labels and annotations). One table ([`RULES`]) feeds both files, so a rule cannot go untested.

use crate::engine::health::PERF_REGRESSION_RATIO;

use super::{metric_names, yaml_str};

/// The rules file's name (the test file and the scrape configuration name it).
pub const RULES_FILE: &str = "ema-alerts.yml";
/// The promtool unit tests' file name.
pub const RULES_TEST_FILE: &str = "ema-alerts.test.yml";
/// The scrape job's name (the server-down rule selects it).
pub const JOB: &str = "ema";

/// A promtool unit test of one rule (series sampled every minute).
pub struct RuleTest {
    /// (series, values in promtool's expanding notation).
    pub series: &'static [(&'static str, &'static str)],
    /// Evaluation times at which the alert must not fire.
    pub quiet_at: &'static [&'static str],
    /// The evaluation time at which it must fire.
    pub firing_at: &'static str,
    /// The firing alert's labels from the series (the rule's `severity` is added).
    pub labels: &'static [(&'static str, &'static str)],
}

/// One alerting rule.
pub struct Rule {
    pub name: &'static str,
    /// The expression; `{ratio}` stands for the engine's own regression ratio.
    pub expr: &'static str,
    pub for_: &'static str,
    pub severity: &'static str,
    pub summary: &'static str,
    /// May name `{{ $labels.X }}` of the alert's labels.
    pub description: &'static str,
    pub test: RuleTest,
}

impl Rule {
    /// The expression as written into the rules file.
    pub fn expr(&self) -> String {
        self.expr
            .replace("{ratio}", &PERF_REGRESSION_RATIO.to_string())
    }

    /// The metrics the expression names (ema's own and Prometheus' `up`).
    pub fn metrics(&self) -> Vec<String> {
        metric_names(&self.expr())
    }
}

const INSTANCE: (&str, &str) = ("instance", "ema-host:8000");
const JOB_LABEL: (&str, &str) = ("job", JOB);

/// Every rule, in the file's order.
pub const RULES: &[Rule] = &[
    Rule {
        name: "EmaDownloadsFailing",
        expr: r#"increase(ema_downloads_total{outcome="failed"}[30m]) >= 3"#,
        for_: "0m",
        severity: "warning",
        summary: "ema downloads are failing repeatedly",
        description: "3 or more downloads failed within 30 minutes on {{ $labels.instance }}: the hub may be \
                      unreachable, the token refused or the disk full. See `ema downloads list` and the server's log.",
        test: RuleTest {
            series: &[(
                r#"ema_downloads_total{outcome="failed", job="ema", instance="ema-host:8000"}"#,
                "0 0 0 1 2 3 3 3 3 3",
            )],
            quiet_at: &["3m"],
            firing_at: "6m",
            labels: &[("outcome", "failed"), JOB_LABEL, INSTANCE],
        },
    },
    Rule {
        name: "EmaModelCorruptedOrMissing",
        expr: r#"ema_models{health=~"corrupted|missing|incomplete"} > 0"#,
        for_: "5m",
        severity: "critical",
        summary: "a model in ema's store is corrupted or missing",
        description: "{{ $labels.instance }} holds models whose health is {{ $labels.health }}. Run `ema health` to \
                      see which, and `ema verify-all-models --repair-corrupted` to re-download only the bad files.",
        test: RuleTest {
            series: &[
                (
                    r#"ema_models{health="corrupted", job="ema", instance="ema-host:8000"}"#,
                    "0 0 1x10",
                ),
                (
                    r#"ema_models{health="healthy", job="ema", instance="ema-host:8000"}"#,
                    "3x12",
                ),
            ],
            quiet_at: &["1m", "4m"],
            firing_at: "8m",
            labels: &[("health", "corrupted"), JOB_LABEL, INSTANCE],
        },
    },
    Rule {
        name: "EmaStoreAboveCleanupThreshold",
        expr: "ema_store_usage_ratio >= ignoring(of) group_left ema_store_cleanup_threshold_ratio",
        for_: "10m",
        severity: "warning",
        summary: "ema's model store is above its cleanup threshold",
        description: "The store's use of its {{ $labels.of }} on {{ $labels.instance }} passed \
                      storage.cleanup_threshold_percent. Run `ema cleanup --remove-temp-files`, delete unused \
                      models, or `ema move-models` to larger storage.",
        test: RuleTest {
            series: &[
                (
                    r#"ema_store_usage_ratio{of="budget", job="ema", instance="ema-host:8000"}"#,
                    "0.5 0.6 0.95x16",
                ),
                (
                    r#"ema_store_usage_ratio{of="disk", job="ema", instance="ema-host:8000"}"#,
                    "0.3x18",
                ),
                (
                    r#"ema_store_cleanup_threshold_ratio{job="ema", instance="ema-host:8000"}"#,
                    "0.9x18",
                ),
            ],
            quiet_at: &["1m", "5m"],
            firing_at: "14m",
            labels: &[("of", "budget"), JOB_LABEL, INSTANCE],
        },
    },
    Rule {
        name: "EmaServerDown",
        expr: r#"up{job="ema"} == 0"#,
        for_: "2m",
        severity: "critical",
        summary: "the ema server does not answer Prometheus",
        description: "{{ $labels.instance }} has not answered GET /metrics for 2 minutes. Check \
                      `systemctl status enhanced-model-availability` (or start it with `ema start`).",
        test: RuleTest {
            series: &[(
                r#"up{job="ema", instance="ema-host:8000"}"#,
                "1 1 1 0 0 0 0 0",
            )],
            quiet_at: &["2m", "4m"],
            firing_at: "6m",
            labels: &[JOB_LABEL, INSTANCE],
        },
    },
    Rule {
        name: "EmaVerificationThroughputRegressed",
        expr: "ema_verification_throughput_ratio < {ratio}",
        for_: "0m",
        severity: "warning",
        summary: "model read throughput during verification regressed",
        description: "A model's read throughput in its last full verification on {{ $labels.instance }} fell \
                      below half of its recorded baseline: loading models will be slower. Check the disk (SMART, \
                      other I/O load) or move the models to faster storage with `ema move-models`.",
        test: RuleTest {
            series: &[(
                r#"ema_verification_throughput_ratio{job="ema", instance="ema-host:8000"}"#,
                "1 0.9 1.1 0.4 0.4 0.4",
            )],
            quiet_at: &["2m"],
            firing_at: "4m",
            labels: &[JOB_LABEL, INSTANCE],
        },
    },
    Rule {
        name: "EmaTestAlert",
        expr: r#"sum by (instance, job) (ema_alerts_open{kind="test"}) > 0"#,
        for_: "0m",
        severity: "info",
        summary: "a test alert raised by `ema test-monitoring`",
        description: "{{ $labels.instance }} holds an open test alert: the alert path from ema to Prometheus works. \
                      Nothing is wrong; it clears itself.",
        test: RuleTest {
            series: &[(
                r#"ema_alerts_open{kind="test", severity="warning", job="ema", instance="ema-host:8000"}"#,
                "0 0 1 1 0 0",
            )],
            quiet_at: &["1m", "5m"],
            firing_at: "3m",
            labels: &[JOB_LABEL, INSTANCE],
        },
    },
];

/// `ema-alerts.yml`.
pub fn rules_yaml(header: &str) -> String {
    let mut s = String::new();
    s.push_str(header);
    s.push_str("groups:\n  - name: ema\n    rules:\n");
    for r in RULES {
        s.push_str(&format!("      - alert: {}\n", r.name));
        s.push_str(&format!("        expr: {}\n", yaml_str(&r.expr())));
        s.push_str(&format!("        for: {}\n", r.for_));
        s.push_str(&format!(
            "        labels:\n          severity: {}\n",
            r.severity
        ));
        s.push_str("        annotations:\n");
        s.push_str(&format!("          summary: {}\n", yaml_str(r.summary)));
        s.push_str(&format!(
            "          description: {}\n",
            yaml_str(r.description)
        ));
    }
    s
}

/// A description with `{{ $labels.X }}` filled from `labels` (what Prometheus renders for the test's alert).
fn rendered(template: &str, labels: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v);
    }
    out
}

/// `ema-alerts.test.yml`: `promtool test rules ema-alerts.test.yml`.
pub fn tests_yaml(header: &str) -> String {
    let mut s = String::new();
    s.push_str(header);
    s.push_str(&format!(
        "rule_files:\n  - {RULES_FILE}\nevaluation_interval: 1m\ntests:\n"
    ));
    for r in RULES {
        let t = &r.test;
        s.push_str(&format!(
            "  - name: {}\n    interval: 1m\n    input_series:\n",
            yaml_str(&format!(
                "{}: quiet at {}, firing at {}",
                r.name,
                t.quiet_at.join(", "),
                t.firing_at
            ))
        ));
        for (series, values) in t.series {
            s.push_str(&format!(
                "      - series: {}\n        values: {}\n",
                yaml_str(series),
                yaml_str(values)
            ));
        }
        s.push_str("    alert_rule_test:\n");
        for q in t.quiet_at {
            s.push_str(&format!(
                "      - eval_time: {q}\n        alertname: {}\n        exp_alerts: []\n",
                r.name
            ));
        }
        s.push_str(&format!(
            "      - eval_time: {}\n        alertname: {}\n        exp_alerts:\n          - exp_labels:\n",
            t.firing_at, r.name
        ));
        s.push_str(&format!("              severity: {}\n", r.severity));
        for (k, v) in t.labels {
            s.push_str(&format!("              {k}: {}\n", yaml_str(v)));
        }
        s.push_str("            exp_annotations:\n");
        s.push_str(&format!("              summary: {}\n", yaml_str(r.summary)));
        s.push_str(&format!(
            "              description: {}\n",
            yaml_str(&rendered(r.description, t.labels))
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_a_firing_and_a_quiet_test_and_names_metrics() {
        let y = tests_yaml("");
        for r in RULES {
            assert!(
                !r.test.quiet_at.is_empty() && !r.metrics().is_empty(),
                "{}",
                r.name
            );
            assert!(y.contains(&format!("alertname: {}", r.name)));
        }
        let d = rendered(RULES[1].description, RULES[1].test.labels);
        assert!(
            d.contains("ema-host:8000 holds models whose health is corrupted"),
            "{d}"
        );
        assert!(rules_yaml("").contains("ema_verification_throughput_ratio < 0.5"));
    }
}
