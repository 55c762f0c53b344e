//! `ema benchmark` through the real binary: downloads from the built-in sample hub on loopback, the installed models
//! read in full, a missing API server reported as not measured, the baseline saved, and a regression beyond the noise
//! band flagged against a baseline with synthetic figures.

mod support;

use std::path::Path;

use serde_json::Value;
use support::cli::{Run, ema_cmd, run};
use support::http::free_port;

fn ema(cfg: &Path, args: &[&str]) -> Run {
    let mut c = ema_cmd();
    c.arg("--config").arg(cfg).args(args);
    run(&mut c)
}

#[test]
fn benchmark_measures_keeps_a_baseline_and_flags_a_regression_beyond_the_noise() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("config.json");
    let doc = serde_json::json!({
        "storage": {"models_directory": support::store::sample_hub(), "cache_directory": t.path().join("cache")},
        "api": {"port": free_port()},
    });
    std::fs::write(&cfg, doc.to_string()).unwrap();

    let r = ema(
        &cfg,
        &[
            "benchmark",
            "--repetitions",
            "2",
            "--save-baseline",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let figs = j["report"]["figures"].as_array().unwrap();
    let names: Vec<&str> = figs.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"download_parallel"), "{names:?}");
    assert!(names.contains(&"download_one_connection"), "{names:?}");
    let reads = names.iter().filter(|n| n.starts_with("read:")).count();
    assert!(reads >= 3, "every installed sample model read: {names:?}");
    for f in figs {
        assert_eq!(f["samples"].as_array().unwrap().len(), 2, "{f}");
        assert!(f["median"].as_f64().unwrap() > 0.0, "{f}");
        assert!(["MB/s", "ms"].contains(&f["unit"].as_str().unwrap()), "{f}");
    }
    let skipped = &j["report"]["skipped"];
    assert_eq!(skipped[0]["part"], "api", "{j}");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no ema server answers"),
        "{j}"
    );
    let baseline_path = t.path().join("cache/benchmarks/baseline.json");
    assert_eq!(j["baseline"]["path"], baseline_path.to_str().unwrap());
    let mut baseline: Value =
        serde_json::from_slice(&std::fs::read(&baseline_path).unwrap()).unwrap();
    assert!(
        baseline["figures"]["download_parallel"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // A baseline with synthetic figures: downloads once 100× faster, with tight samples. Now they regressed.
    let p = &mut baseline["figures"]["download_parallel"];
    let fast = p["median"].as_f64().unwrap() * 100.0;
    p["median"] = fast.into();
    p["samples"] = serde_json::json!([fast, fast * 1.01]);
    std::fs::write(&baseline_path, baseline.to_string()).unwrap();
    let r = ema(
        &cfg,
        &[
            "benchmark",
            "--test-downloads",
            "--repetitions",
            "2",
            "--compare-with-baseline",
            "--json",
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["regressed"], true);
    let c = j["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "download_parallel")
        .unwrap();
    assert_eq!(c["verdict"], "regressed", "{c}");
    assert!(c["ratio"].as_f64().unwrap() < 0.05, "{c}");
    // The human report says it too.
    let r = ema(
        &cfg,
        &[
            "benchmark",
            "--test-downloads",
            "--repetitions",
            "1",
            "--compare-with-baseline",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("REGRESSED"), "{}", r.stdout);
    assert!(r.stdout.contains("over one connection"), "{}", r.stdout);

    // A damaged baseline is named, with the fix.
    std::fs::write(&baseline_path, b"{").unwrap();
    let r = ema(
        &cfg,
        &[
            "benchmark",
            "--test-model-loading",
            "--compare-with-baseline",
        ],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--save-baseline"), "{}", r.stderr);
}
