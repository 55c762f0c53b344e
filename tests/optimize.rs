//! `ema analyze-performance`, `ema optimize` and `ema optimize-config` through the real binary: recommendations from
//! a crafted baseline (capped per-connection rate → more connections; a slow disk → fewer files at once), applied to
//! exactly the named keys (the configuration diffed before and after, the backup kept, `--dry-run` writing nothing,
//! a second run changing nothing), a running `ema start` sent SIGHUP, bad input refused with exit 2, and the path
//! end to end from `ema benchmark --save-baseline` on the sample hub.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::cli::{Run, ema_cmd, run};
use support::http::free_port;

/// `ema --config CFG ARGS…`, offline (the hub is not asked), in `dir`.
fn ema(cfg: &Path, args: &[&str]) -> Run {
    let mut c = ema_cmd();
    c.env("HF_HUB_OFFLINE", "1")
        .arg("--config")
        .arg(cfg)
        .args(args);
    run(&mut c)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".backup-"))
        .collect();
    v.sort();
    v
}

fn figure(name: &str, median: f64, settings: Value) -> Value {
    json!({"name": name, "unit": "MB/s", "higher_is_better": true, "median": median,
           "samples": [median, median, median], "detail": "", "settings": settings})
}

/// A baseline measured against a remote hub: one connection 10 MB/s, four connections 38 MB/s (each capped), and
/// installed models read at 60–90 MB/s (a slow disk).
fn write_crafted_baseline(cache: &Path) {
    let s = json!({"hub": "https://hub.example.org", "downloads.connections_per_file": 4,
                   "downloads.max_concurrent_downloads": 4, "downloads.parallel_threshold_mb": 64});
    let figs = [
        figure("download_parallel", 38.0, s.clone()),
        figure("download_one_connection", 10.0, s),
        figure("read:org/a", 60.0, json!({})),
        figure("read:org/b", 75.0, json!({})),
        figure("read:org/c", 90.0, json!({})),
    ];
    let b = json!({
        "format": "ema-benchmark-baseline/1",
        "saved_at": "2026-12-01T00:00:00Z",
        "figures": figs.iter().map(|f| (f["name"].as_str().unwrap().to_string(), f.clone())).collect::<serde_json::Map<_, _>>(),
    });
    std::fs::create_dir_all(cache.join("benchmarks")).unwrap();
    std::fs::write(cache.join("benchmarks/baseline.json"), b.to_string()).unwrap();
}

/// Every `section.key` whose value differs between two configuration documents.
fn changed_keys(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let sections: std::collections::BTreeSet<&String> = before
        .as_object()
        .unwrap()
        .keys()
        .chain(after.as_object().unwrap().keys())
        .collect();
    for sec in sections {
        let b = before.get(sec).and_then(Value::as_object).unwrap_or(&empty);
        let a = after.get(sec).and_then(Value::as_object).unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        for k in keys {
            if b.get(k) != a.get(k) {
                out.push(format!("{sec}.{k}"));
            }
        }
    }
    out
}

#[test]
fn crafted_figures_give_more_connections_and_fewer_files_applied_to_exactly_those_keys_and_a_running_server_is_told()
 {
    let t = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = support::server::write_config(
        t.path(),
        json!({"api": {"port": port}, "ui": {"theme": "light"}, "downloads": {"max_retries": 7}}),
    );
    write_crafted_baseline(&t.path().join("cache"));

    let r = ema(
        &cfg,
        &[
            "analyze-performance",
            "--generate-recommendations",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let recs = j["recommendations"].as_array().unwrap();
    let find = |k: &str| recs.iter().find(|r| r["key"] == k).cloned();
    let conn = find("downloads.connections_per_file").expect("capped connections");
    assert_eq!(
        (conn["from"].clone(), conn["to"].clone()),
        (json!(4), json!(8))
    );
    assert_eq!(conn["takes"], "restart");
    assert!(conn["evidence"].to_string().contains("3.80×"), "{conn}");
    let files = find("downloads.max_concurrent_downloads").expect("slow disk");
    assert_eq!(
        (files["from"].clone(), files["to"].clone()),
        (json!(4), json!(2))
    );
    assert!(files["evidence"].to_string().contains("75 MB/s"), "{files}");
    // The facts read are reported, and the rules without evidence say what is missing.
    assert!(j["facts"]["system"]["cores"].as_u64().unwrap() >= 1);
    let notes = j["notes"].to_string();
    assert!(notes.contains("analytics"), "{notes}");
    let saved = PathBuf::from(j["saved_to"].as_str().unwrap());
    assert!(saved.is_file());

    // The human report shows the exact change.
    let r = ema(&cfg, &["analyze-performance", "--generate-recommendations"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("downloads.connections_per_file: 4 → 8"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("facts read:"), "{}", r.stdout);

    // --dry-run (and no --apply-recommendations) writes nothing.
    let before_text = std::fs::read(&cfg).unwrap();
    for args in [
        &["optimize", "--apply-recommendations", "--dry-run"][..],
        &["optimize"][..],
    ] {
        let r = ema(&cfg, args);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("would apply"), "{}", r.stdout);
        assert!(r.stdout.contains("nothing was written"), "{}", r.stdout);
        assert_eq!(std::fs::read(&cfg).unwrap(), before_text);
        assert!(backups(t.path()).is_empty());
    }

    // A running server on the configured port is told.
    let server = support::server::EmaServer::start(&cfg, "http://127.0.0.1:1", &[], &[]);
    assert_eq!(server.port(0), port);
    let before = read_json(&cfg);
    let r = ema(
        &cfg,
        &[
            "optimize",
            "--apply-recommendations",
            "--restart-if-needed",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let after = read_json(&cfg);
    let mut expected: Vec<String> = recs
        .iter()
        .filter_map(|r| r["key"].as_str().map(str::to_string))
        .collect();
    expected.sort();
    assert_eq!(changed_keys(&before, &after), expected, "{before}\n{after}");
    for r in recs.iter().filter(|r| r["key"].is_string()) {
        let (sec, k) = r["key"].as_str().unwrap().split_once('.').unwrap();
        assert_eq!(after[sec][k], r["to"], "{after}");
    }
    // Key order is kept: the sections already there come first, as they were.
    let order: Vec<&str> = after
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(order[..4], ["storage", "health_monitoring", "api", "ui"]);
    let backup = PathBuf::from(j["backup"].as_str().unwrap());
    assert_eq!(std::fs::read(&backup).unwrap(), before_text);
    assert_eq!(backups(t.path()), vec![backup.clone()]);
    let srv = &j["server"];
    assert_eq!(srv["running"], true, "{j}");
    assert_eq!(srv["pid"], server.pid(), "{j}");
    assert_eq!(srv["signalled"], true, "{j}");
    assert!(
        srv["lines"].to_string().contains("systemctl restart"),
        "{j}"
    );
    assert!(
        support::wait::wait_for(10, || server
            .stderr()
            .contains("needs a restart to take effect")),
        "{}",
        server.stderr()
    );
    assert!(
        server.stderr().contains("downloads.connections_per_file"),
        "{}",
        server.stderr()
    );

    // Running it again changes nothing and makes no new backup.
    let r = ema(&cfg, &["optimize", "--apply-recommendations"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("already"), "{}", r.stdout);
    assert!(!r.stdout.contains("applied "), "{}", r.stdout);
    assert_eq!(read_json(&cfg), after);
    assert_eq!(backups(t.path()).len(), 1);
    server.stop();
}

#[test]
fn bad_input_is_refused_with_exit_2_and_nothing_written() {
    let t = tempfile::tempdir().unwrap();
    let cfg = support::server::write_config(t.path(), json!({"api": {"port": free_port()}}));

    // No saved set yet.
    let r = ema(&cfg, &["optimize", "--apply-recommendations"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("analyze-performance --generate-recommendations"),
        "{}",
        r.stderr
    );

    // A named configuration file that does not exist.
    let r = ema(
        &t.path().join("nope.json"),
        &["optimize", "--apply-recommendations"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);

    // No configuration file in force at all.
    let empty = tempfile::tempdir().unwrap();
    let mut c = ema_cmd();
    c.current_dir(empty.path())
        .env("HOME", empty.path())
        .env("XDG_CONFIG_HOME", empty.path().join("xdg"))
        .env("HF_HUB_OFFLINE", "1")
        .args([
            "optimize-config",
            "--for-performance",
            "--system-specs",
            "auto-detect",
        ]);
    let r = run(&mut c);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no configuration file is in force"),
        "{}",
        r.stderr
    );

    // Only auto-detect is known.
    let r = ema(
        &cfg,
        &[
            "optimize-config",
            "--for-performance",
            "--system-specs",
            "manual",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);

    // An invalid file: the saved set is not applied, the file is untouched, no backup.
    write_crafted_baseline(&t.path().join("cache"));
    let r = ema(&cfg, &["analyze-performance", "--generate-recommendations"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut doc = read_json(&cfg);
    doc["downloads"] = json!({"max_concurrent_downloads": 0});
    let bad = serde_json::to_vec_pretty(&doc).unwrap();
    std::fs::write(&cfg, &bad).unwrap();
    let r = ema(&cfg, &["optimize", "--apply-recommendations"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("fix-config"), "{}", r.stderr);
    assert_eq!(std::fs::read(&cfg).unwrap(), bad);
    assert!(backups(t.path()).is_empty());

    // A damaged saved set is named.
    std::fs::write(t.path().join("cache/advice/recommendations.json"), b"{").unwrap();
    // c.json is written valid again: the damaged set is refused before the file is read.
    let cfg2 = support::server::write_config(t.path(), json!({}));
    let r = ema(&cfg2, &["optimize", "--apply-recommendations"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
}

#[test]
fn end_to_end_benchmark_then_analyze_then_optimize_changes_the_configuration_as_recommended() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("config.json");
    // The sample hub's models as the store, a tiny budget (the store is above its cleanup threshold) and a full
    // verification every 36 ms: both rules have their evidence once the benchmark read the models.
    let doc = json!({
        "storage": {"models_directory": support::store::sample_hub(), "cache_directory": t.path().join("cache"),
                    "max_storage_gb": 0.001},
        "health_monitoring": {"check_interval_hours": 0.00001},
        "api": {"port": free_port()},
    });
    std::fs::write(&cfg, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    let r = ema(
        &cfg,
        &[
            "benchmark",
            "--test-downloads",
            "--test-model-loading",
            "--repetitions",
            "1",
            "--save-baseline",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    let r = ema(
        &cfg,
        &[
            "analyze-performance",
            "--generate-recommendations",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let figs = j["facts"]["baseline"]["figures"].to_string();
    assert!(
        figs.contains("download_parallel") && figs.contains("read:"),
        "{figs}"
    );
    // The download figures came from loopback: no connection advice, and the note says why.
    let notes = j["notes"].to_string();
    assert!(notes.contains("loopback"), "{notes}");
    let recs = j["recommendations"].as_array().unwrap().clone();
    let keys: Vec<&str> = recs.iter().filter_map(|r| r["key"].as_str()).collect();
    assert!(keys.contains(&"storage.max_storage_gb"), "{recs:?}");
    assert!(
        keys.contains(&"health_monitoring.check_interval_hours"),
        "{recs:?}"
    );
    assert!(
        !keys.contains(&"downloads.connections_per_file"),
        "{recs:?}"
    );

    let before = read_json(&cfg);
    let r = ema(&cfg, &["optimize", "--apply-recommendations"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("backup: "), "{}", r.stdout);
    assert!(r.stdout.contains("no ema server answers"), "{}", r.stdout);
    let after = read_json(&cfg);
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(changed_keys(&before, &after), expected);
    for rec in recs.iter().filter(|r| r["key"].is_string()) {
        let (sec, k) = rec["key"].as_str().unwrap().split_once('.').unwrap();
        assert_eq!(after[sec][k], rec["to"]);
        assert!(
            r.stdout.contains(rec["key"].as_str().unwrap()),
            "{}",
            r.stdout
        );
    }

    // optimize-config analyzes again: the store is now within its budget, the interval long enough.
    let r = ema(
        &cfg,
        &[
            "optimize-config",
            "--for-performance",
            "--system-specs",
            "auto-detect",
            "--dry-run",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(read_json(&cfg), after);
    assert!(!r.stdout.contains("would apply storage"), "{}", r.stdout);
}
