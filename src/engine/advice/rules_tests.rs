//! Unit tests of the advice rules: crafted baselines, histories and system facts in, recommendations (or the note
//! saying what is missing) out.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::engine::advice::{Inputs, StoreFacts, SystemFacts, Takes, analyze};
use crate::engine::analytics::report::DownloadFigures;
use crate::engine::benchmark::{BASELINE_FORMAT, Baseline, Figure};
use crate::engine::config::Config;

fn inputs() -> Inputs {
    Inputs {
        config: Config::default(),
        system: SystemFacts {
            cores: 8,
            ..Default::default()
        },
        store: StoreFacts::default(),
        baseline: None,
        downloads: None,
        downloads_missing: Some("usage analytics are off".into()),
    }
}

fn fig(name: &str, median: f64, settings: &[(&str, serde_json::Value)]) -> Figure {
    let mut f = Figure::new(name, "MB/s", true, vec![median; 3], String::new());
    f.settings = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    f
}

fn baseline(figs: Vec<Figure>) -> Option<Baseline> {
    Some(Baseline {
        format: BASELINE_FORMAT.into(),
        saved_at: "2026-12-01T00:00:00Z".into(),
        figures: figs
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect::<BTreeMap<_, _>>(),
    })
}

fn link(one: f64, parallel: f64, connections: u64, hub: &str) -> Vec<Figure> {
    let s = [
        ("hub", json!(hub)),
        ("downloads.connections_per_file", json!(connections)),
        ("downloads.max_concurrent_downloads", json!(4)),
    ];
    vec![
        fig("download_parallel", parallel, &s),
        fig("download_one_connection", one, &s),
    ]
}

fn rec<'a>(a: &'a crate::engine::advice::Analysis, key: &str) -> Option<&'a Recommendation> {
    a.recommendations
        .iter()
        .find(|r| r.key.as_deref() == Some(key))
}

fn note<'a>(a: &'a crate::engine::advice::Analysis, rule: &str) -> &'a str {
    &a.notes
        .iter()
        .find(|n| n.rule == rule)
        .unwrap_or_else(|| panic!("no note for {rule}: {a:?}"))
        .reason
}

#[test]
fn a_capped_per_connection_rate_with_a_near_linear_gain_raises_connections_per_file() {
    let mut i = inputs();
    // 4 connections bring 3.8× one connection (12 MB/s each): every stream is capped.
    i.baseline = baseline(link(12.0, 45.6, 4, "https://hub.example.org"));
    i.downloads = Some(DownloadFigures {
        completed: 7,
        rate_p50_bytes_per_sec: Some(40e6),
        ..Default::default()
    });
    let a = analyze(&i);
    let r = rec(&a, "downloads.connections_per_file").expect("recommended");
    assert_eq!(r.from, Some(json!(4)));
    assert_eq!(r.to, Some(json!(8)));
    assert_eq!(r.takes, Takes::Restart);
    let ev = r.evidence.join("\n");
    assert!(ev.contains("12.0 MB/s"), "{ev}");
    assert!(ev.contains("3.80×"), "{ev}");
    assert!(ev.contains("7 completed"), "{ev}");
    assert_eq!(r.change(), "downloads.connections_per_file: 4 → 8");
    // The same link at 16 already: the most advised.
    i.config.downloads.connections_per_file = 16;
    let a = analyze(&i);
    assert!(rec(&a, "downloads.connections_per_file").is_none());
}

#[test]
fn a_sublinear_gain_or_a_loopback_baseline_recommends_no_more_connections_and_says_why() {
    let mut i = inputs();
    i.baseline = baseline(link(50.0, 60.0, 4, "https://hub.example.org"));
    let a = analyze(&i);
    assert!(rec(&a, "downloads.connections_per_file").is_none());
    assert!(note(&a, "downloads.connections_per_file").contains("would not help"));
    i.baseline = baseline(link(12.0, 45.6, 4, "http://127.0.0.1:4321"));
    let a = analyze(&i);
    assert!(rec(&a, "downloads.connections_per_file").is_none());
    assert!(note(&a, "downloads.connections_per_file").contains("loopback"));
    assert!(note(&a, "downloads.parallel_threshold_mb").contains("loopback"));
}

#[test]
fn a_slow_or_rotational_disk_means_fewer_concurrent_files() {
    let mut i = inputs();
    i.baseline = baseline(vec![
        fig("read:a/b", 80.0, &[]),
        fig("read:c/d", 95.0, &[]),
        fig("read:e/f", 70.0, &[]),
    ]);
    let a = analyze(&i);
    let r = rec(&a, "downloads.max_concurrent_downloads").expect("slow disk");
    assert_eq!(
        (r.from.clone(), r.to.clone()),
        (Some(json!(4)), Some(json!(2)))
    );
    assert!(
        r.evidence.join("\n").contains("80 MB/s"),
        "{:?}",
        r.evidence
    );

    let mut i = inputs();
    i.system.disk_rotational = Some(true);
    i.system.disk_device = Some("sdb".into());
    let a = analyze(&i);
    let r = rec(&a, "downloads.max_concurrent_downloads").expect("rotational");
    assert_eq!(r.to, Some(json!(2)));
    assert!(r.evidence.join("\n").contains("sdb, a rotational disk"));

    // A virtual disk's rotational flag is no evidence alone; its measured read rate is.
    let mut i = inputs();
    i.system.disk_rotational = Some(true);
    i.system.disk_device = Some("vda".into());
    let a = analyze(&i);
    assert!(rec(&a, "downloads.max_concurrent_downloads").is_none());
    assert!(note(&a, "downloads.max_concurrent_downloads").contains("virtual disk"));
    i.baseline = baseline(vec![fig("read:a/b", 2000.0, &[])]);
    assert!(rec(&analyze(&i), "downloads.max_concurrent_downloads").is_none());

    // A fast SSD with 8 cores: 4 at once is fine.
    let mut i = inputs();
    i.system.disk_rotational = Some(false);
    i.baseline = baseline(vec![fig("read:a/b", 2000.0, &[])]);
    let a = analyze(&i);
    assert!(rec(&a, "downloads.max_concurrent_downloads").is_none());
    // One core caps it at 2 per core.
    i.system.cores = 1;
    let a = analyze(&i);
    assert_eq!(
        rec(&a, "downloads.max_concurrent_downloads").unwrap().to,
        Some(json!(2))
    );
}

#[test]
fn no_evidence_means_no_recommendation_and_every_rule_says_what_is_missing() {
    let a = analyze(&inputs());
    assert!(a.recommendations.is_empty(), "{:?}", a.recommendations);
    assert_eq!(a.notes.len(), RULES.len());
    assert!(note(&a, "downloads.connections_per_file").contains("ema benchmark --test-downloads"));
    assert!(note(&a, "downloads.max_concurrent_downloads").contains("--test-model-loading"));
    assert!(note(&a, "downloads.bandwidth_limit_mbps").contains("usage analytics are off"));
    assert!(note(&a, "health_monitoring.check_interval_hours").contains("no model read figures"));
    assert!(note(&a, "storage.max_storage_gb").contains("below the 90 % cleanup threshold"));
}

#[test]
fn the_parallel_threshold_follows_what_one_connection_fetches_in_two_seconds() {
    let mut i = inputs();
    // 10 MB/s per connection: a 20 MB file takes 2 s; the 64 MB default leaves 16–64 MB files unsplit.
    i.baseline = baseline(link(10.0, 30.0, 4, "https://hub.example.org"));
    let a = analyze(&i);
    let r = rec(&a, "downloads.parallel_threshold_mb").expect("lower");
    assert_eq!(
        (r.from.clone(), r.to.clone()),
        (Some(json!(64)), Some(json!(32)))
    );
    // 100 MB/s per connection: 200 MB in 2 s → 256.
    i.baseline = baseline(link(100.0, 300.0, 4, "https://hub.example.org"));
    let a = analyze(&i);
    assert_eq!(
        rec(&a, "downloads.parallel_threshold_mb").unwrap().to,
        Some(json!(256))
    );
}

#[test]
fn retries_and_failures_of_recorded_downloads_set_a_bandwidth_cap_and_a_quiet_history_does_not() {
    let mut i = inputs();
    i.downloads = Some(DownloadFigures {
        started: 10,
        completed: 8,
        failed: 2,
        retries: 14,
        rate_p50_bytes_per_sec: Some(20e6),
        rate_p95_bytes_per_sec: Some(25e6),
        ..Default::default()
    });
    let a = analyze(&i);
    let r = rec(&a, "downloads.bandwidth_limit_mbps").expect("cap");
    // 25 MB/s = 200 Mbps; 80 % = 160.
    assert_eq!(r.to, Some(json!(160.0)));
    assert_eq!(r.from, Some(json!(0.0)));
    i.downloads.as_mut().unwrap().retries = 1;
    i.downloads.as_mut().unwrap().failed = 0;
    let a = analyze(&i);
    assert!(rec(&a, "downloads.bandwidth_limit_mbps").is_none());
    assert!(note(&a, "downloads.bandwidth_limit_mbps").contains("no sign of a saturated link"));
}

#[test]
fn a_full_verification_taking_much_of_its_interval_lengthens_it() {
    let mut i = inputs();
    i.store = StoreFacts {
        models: 3,
        files: 40,
        bytes: 2_000_000_000_000,
    };
    i.baseline = baseline(vec![fig("read:a/b", 200.0, &[])]);
    // 2 TB at 200 MB/s = 10 000 s, 11.6 % of 24 h; at 2 % → 138.9 h → 139.
    let a = analyze(&i);
    let r = rec(&a, "health_monitoring.check_interval_hours").expect("longer");
    assert_eq!(r.to, Some(json!(139.0)));
    i.config.health_monitoring.enabled = false;
    assert!(rec(&analyze(&i), "health_monitoring.check_interval_hours").is_none());
}

#[test]
fn a_store_above_its_threshold_gets_a_larger_budget_when_the_disk_has_room_else_a_cleanup() {
    let mut i = inputs();
    i.config.storage.max_storage_gb = 100.0;
    i.store.bytes = 95_000_000_000;
    i.system.disk_total_bytes = Some(1_000_000_000_000);
    i.system.disk_free_bytes = Some(600_000_000_000);
    let a = analyze(&i);
    let r = rec(&a, "storage.max_storage_gb").expect("raise");
    // 95 GB at 80 % → 118.75 → 119 (3 significant digits, rounded up).
    assert_eq!(r.to, Some(json!(119.0)));
    i.system.disk_free_bytes = Some(5_000_000_000);
    i.system.disk_total_bytes = Some(100_000_000_000);
    let a = analyze(&i);
    let r = a
        .recommendations
        .iter()
        .find(|r| r.id == "storage.cleanup")
        .expect("cleanup");
    assert_eq!(r.takes, Takes::Manual);
    assert!(r.key.is_none());
    assert!(r.change().contains("ema move-models"));
}

#[test]
fn loopback_is_recognised() {
    assert!(is_loopback("http://127.0.0.1:8080"));
    assert!(is_loopback("http://localhost:1/x"));
    assert!(is_loopback("http://[::1]:9"));
    assert!(!is_loopback("https://huggingface.co"));
    assert!(!is_loopback("http://10.0.0.2:80"));
}
