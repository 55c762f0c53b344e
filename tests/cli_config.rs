//! The configuration commands through the real `ema` binary: validate-config, migrate-config, fix-config,
//! configure, enable-feature. Every test runs in its own temp dir (also its working directory, so discovery is
//! controlled), with EMA_CONFIG removed and the platform config/data dirs pointed inside the temp dir.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::cli::{EMA, Run, ema_cmd, run, words};

/// `ema <args>` run in `dir`, with the platform config and data dirs (and HOME) inside it.
fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = ema_cmd();
    c.args(args)
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join(".xdg-config"))
        .env("XDG_DATA_HOME", dir.join(".xdg-data"))
        .env("HOME", dir.join(".home"))
        .stdin(Stdio::null());
    c
}

fn ema(dir: &Path, args: &[&str]) -> Run {
    run(&mut cmd(dir, args))
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

const SPEC_LEGACY: &str = r#"{
  "models_directory": "/data/models",
  "download_retries": 3,
  "max_concurrent_downloads": 2,
  "health_check_enabled": false,
  "fallback_to_mock": true
}"#;

/// The migration guide's "Enhanced Configuration Equivalent", verbatim.
const SPEC_ENHANCED: &str = r#"{
  "storage": {
    "models_directory": "/data/models",
    "cache_directory": "/data/cache",
    "max_storage_gb": 500,
    "cleanup_threshold_percent": 90
  },
  "downloads": {
    "max_concurrent_downloads": 2,
    "max_retries": 3,
    "retry_delay_seconds": 30,
    "bandwidth_limit_mbps": 0,
    "resume_enabled": true,
    "integrity_check_enabled": true
  },
  "health_monitoring": {
    "enabled": true,
    "check_interval_hours": 24,
    "auto_repair_enabled": true,
    "performance_monitoring_enabled": true
  },
  "fallback": {
    "intelligent_fallback_enabled": true,
    "suggestion_threshold": 0.7,
    "queue_requests_enabled": true,
    "mock_fallback_enabled": true
  },
  "features": {
    "enhanced_downloads": true,
    "health_monitoring": true,
    "intelligent_fallback": true,
    "usage_analytics": true
  }
}"#;

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn legacy_example_file_is_the_spec_example() {
    let ours = read_json(&repo_file("config/legacy_config.example.json"));
    let spec: Value = serde_json::from_str(SPEC_LEGACY).unwrap();
    assert_eq!(ours, spec);
    assert_eq!(keys(&ours), keys(&spec));
}

#[test]
fn example_enhanced_config_is_complete_and_valid() {
    let p = repo_file("config/enhanced_model_config.json");
    let doc = read_json(&p);
    assert_eq!(doc["storage"]["models_directory"], "models");
    for s in [
        "storage",
        "downloads",
        "health_monitoring",
        "fallback",
        "features",
        "api",
        "analytics",
        "migration",
        "ui",
    ] {
        assert!(doc[s].is_object(), "section {s} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let r = ema(
        dir.path(),
        &["validate-config", "--config", p.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn migrate_spec_example_field_by_field_and_whole_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(
        repo_file("config/legacy_config.example.json"),
        d.join("config.json"),
    )
    .unwrap();
    let r = ema(
        d,
        &words(
            "migrate-config --source config.json --target config/enhanced_model_config.json --backup",
        ),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The report names the documented conflict.
    assert!(r.stdout.contains("mapping table"), "{}", r.stdout);
    assert!(
        r.stdout.contains("health_monitoring.enabled"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Unmapped legacy settings: none"),
        "{}",
        r.stdout
    );

    let out = read_json(&d.join("config/enhanced_model_config.json"));
    // The mapping table, field by field.
    assert_eq!(out["storage"]["models_directory"], json!("/data/models"));
    assert_eq!(out["downloads"]["max_retries"], json!(3));
    assert_eq!(out["downloads"]["max_concurrent_downloads"], json!(2));
    assert_eq!(out["health_monitoring"]["enabled"], json!(false));
    assert_eq!(out["fallback"]["mock_fallback_enabled"], json!(true));
    // New features at their defaults.
    assert_eq!(out["analytics"]["enabled"], json!(true));
    assert_eq!(out["downloads"]["resume_enabled"], json!(true));
    assert_eq!(out["fallback"]["intelligent_fallback_enabled"], json!(true));

    // The whole spec equivalent: every value (except the documented health_monitoring.enabled conflict) and the
    // structure: the spec's sections first, in order, each starting with the spec's keys in order.
    let spec: Value = serde_json::from_str(SPEC_ENHANCED).unwrap();
    assert_eq!(keys(&out)[..5], keys(&spec)[..]);
    for (section, sv) in spec.as_object().unwrap() {
        let spec_keys = keys(sv);
        assert_eq!(
            keys(&out[section])[..spec_keys.len()],
            spec_keys[..],
            "key order in {section}"
        );
        for (k, v) in sv.as_object().unwrap() {
            if section == "health_monitoring" && k == "enabled" {
                continue;
            }
            assert_eq!(&out[section][k], v, "{section}.{k}");
        }
    }
    // And it validates.
    let r = ema(
        d,
        &words("validate-config --config config/enhanced_model_config.json"),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn migrate_keeps_unknown_legacy_keys_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.json"),
        r#"{"models_directory": "models", "log_level": "debug", "retry_policy": {"a": [1, 2]}}"#,
    )
    .unwrap();
    let r = ema(
        d,
        &words("migrate-config --source config.json --target out.json --json"),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rep = r.json();
    assert_eq!(
        rep["unmapped_legacy_settings"],
        json!({"log_level": "debug", "retry_policy": {"a": [1, 2]}})
    );
    let out = read_json(&d.join("out.json"));
    assert_eq!(
        out["migration"]["unmapped_legacy_settings"],
        json!({"log_level": "debug", "retry_policy": {"a": [1, 2]}})
    );
    assert_eq!(out["storage"]["cache_directory"], "cache");
    assert_eq!(ema(d, &["validate-config", "--config", "out.json"]).code, 0);
}

#[test]
fn migrate_bad_sources_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text, needle) in [
        (
            "broken.json",
            "{\"models_directory\": \"/m\",\n}",
            "not valid JSON",
        ),
        ("array.json", "[1, 2]", "not a legacy configuration"),
        ("other.json", "{\"hello\": 1}", "not a legacy configuration"),
        (
            "enhanced.json",
            "{\"storage\": {}}",
            "already looks like an enhanced",
        ),
        (
            "badtype.json",
            "{\"download_retries\": \"many\"}",
            "download_retries",
        ),
    ] {
        std::fs::write(d.join(name), text).unwrap();
        let r = ema(
            d,
            &["migrate-config", "--source", name, "--target", "t.json"],
        );
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{name}: {}", r.stderr);
        assert!(!d.join("t.json").exists(), "{name}: something was written");
    }
    let r = ema(
        d,
        &words("migrate-config --source missing.json --target t.json"),
    );
    assert_eq!(r.code, 2);
    assert!(!d.join("t.json").exists());
}

#[test]
fn migrate_refuses_overwrite_then_backs_up_or_forces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("config.json"), SPEC_LEGACY).unwrap();
    std::fs::create_dir(d.join("config")).unwrap();
    let target = d.join("config/enhanced_model_config.json");
    std::fs::write(&target, b"{\"ui\": {\"theme\": \"light\"}}\n").unwrap();
    let old = std::fs::read(&target).unwrap();
    let args = [
        "migrate-config",
        "--source",
        "config.json",
        "--target",
        "config/enhanced_model_config.json",
    ];

    let r = ema(d, &args);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--backup") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&target).unwrap(), old);

    let r = ema(d, &[&args[..], &["--backup", "--json"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rep = r.json();
    let backup = d.join(rep["backup"].as_str().unwrap());
    assert!(
        backup
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .contains(".backup-")
    );
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        old,
        "backup holds the old target"
    );
    assert_eq!(read_json(&target)["downloads"]["max_retries"], 3);

    // Human output prints the backup path.
    std::fs::write(&target, &old).unwrap();
    let r = ema(d, &[&args[..], &["--backup"]].concat());
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Backup of the previous"), "{}", r.stdout);

    std::fs::write(&target, &old).unwrap();
    let before = std::fs::read_dir(d.join("config")).unwrap().count();
    let r = ema(d, &[&args[..], &["--force"]].concat());
    assert_eq!(r.code, 0);
    assert_eq!(
        std::fs::read_dir(d.join("config")).unwrap().count(),
        before,
        "--force makes no backup"
    );
    assert_eq!(read_json(&target)["downloads"]["max_retries"], 3);
}

#[test]
fn interactive_without_a_terminal_refuses_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("config.json"), SPEC_LEGACY).unwrap();
    let r = ema(
        d,
        &words("migrate-config --source config.json --target t.json --interactive"),
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a terminal"), "{}", r.stderr);
    assert!(!d.join("t.json").exists());
}

/// Five different mistakes: all five reported, each with path and line:column; exit 2.
#[test]
fn five_mistakes_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("c.json"),
        r#"{
  "storage": {
    "modles_directory": "/data/models"
  },
  "downloads": {
    "max_concurrent_downloads": 0,
    "max_retries": "3"
  },
  "fallback": {
    "suggestion_threshold": 0.5,
    "port": 8000
  },
  "api": {"host": "0.0.0.0", "host": "127.0.0.1"}
}
"#,
    )
    .unwrap();
    let r = ema(d, &["validate-config", "--config", "c.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    for line in [
        "c.json:3:5: storage.modles_directory: unknown key",
        "c.json:6:33: downloads.max_concurrent_downloads: 0 is below the minimum 1",
        "c.json:7:20: downloads.max_retries: \"3\" is a string",
        "c.json:11:5: fallback.port: `port` belongs in section `api`",
        "c.json:13:30: api.host: key `host` appears again",
    ] {
        assert!(
            r.stdout.contains(line),
            "missing `{line}` in:\n{}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("did you mean `models_directory`"));
    assert!(r.stdout.contains("5 problem(s)"), "{}", r.stdout);
    // --json: one document with all five.
    let r = ema(d, &["--config", "c.json", "validate-config", "--json"]);
    assert_eq!(r.code, 2);
    let doc = r.json();
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["file"], "c.json");
    let problems = doc["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 5);
    for p in problems {
        for field in [
            "path", "line", "column", "kind", "message", "expected", "fix",
        ] {
            assert!(!p[field].is_null(), "{field} missing in {p}");
        }
    }
}

/// Each class of validation error against its message and position.
#[test]
fn each_validation_class_message_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &str, u64, u64, &str, &str)] = &[
        (
            "{\n  \"api\": {\"port\": 8000,}\n}",
            "",
            2,
            24,
            "syntax",
            "trailing comma",
        ),
        ("{\"storage\" {}}", "", 1, 12, "syntax", "':'"),
        (
            "{\n\"ui\": {\"theme\": \"dark\"}\n",
            "",
            3,
            1,
            "syntax",
            "end of file",
        ),
        (
            "{\"downlods\": {}}",
            "downlods",
            1,
            2,
            "unknown_key",
            "unknown section",
        ),
        (
            "{\"api\": {\"prot\": 1}}",
            "api.prot",
            1,
            10,
            "unknown_key",
            "unknown key `prot`",
        ),
        (
            "{\"max_retries\": 3}",
            "max_retries",
            1,
            2,
            "misplaced_key",
            "belongs in section `downloads`",
        ),
        (
            "{\"download_retries\": 3}",
            "download_retries",
            1,
            2,
            "misplaced_key",
            "legacy setting",
        ),
        (
            "{\"features\": {\"usage_analytics\": \"yes\"}}",
            "features.usage_analytics",
            1,
            34,
            "wrong_type",
            "is a string",
        ),
        (
            "{\"storage\": []}",
            "storage",
            1,
            13,
            "wrong_type",
            "section `storage` is an array",
        ),
        (
            "{\"fallback\": {\"suggestion_threshold\": 1.01}}",
            "fallback.suggestion_threshold",
            1,
            39,
            "out_of_range",
            "above the maximum 1",
        ),
        (
            "{\"storage\": {\"cleanup_threshold_percent\": 0}}",
            "storage.cleanup_threshold_percent",
            1,
            43,
            "out_of_range",
            "below the minimum 1",
        ),
        (
            "{\"downloads\": {\"connections_per_file\": 0}}",
            "downloads.connections_per_file",
            1,
            40,
            "out_of_range",
            "below the minimum 1",
        ),
        (
            "{\"downloads\": {\"connect_timeout_seconds\": -1}}",
            "downloads.connect_timeout_seconds",
            1,
            43,
            "out_of_range",
            "not above 0",
        ),
        (
            "{\"storage\": {\"max_storage_gb\": -5}}",
            "storage.max_storage_gb",
            1,
            32,
            "out_of_range",
            "not above 0",
        ),
        (
            "{\"api\": {\"port\": 0}}",
            "api.port",
            1,
            18,
            "out_of_range",
            "below the minimum 1",
        ),
        (
            "{\"analytics\": {\"db_url\": \"mysql://h/db\"}}",
            "analytics.db_url",
            1,
            26,
            "invalid_value",
            "scheme `mysql` is not supported",
        ),
        (
            "{\"ui\": {\"theme\": 1, \"theme\": 2}}",
            "ui.theme",
            1,
            21,
            "duplicate_key",
            "appears again",
        ),
    ];
    for (i, (text, path, line, col, kind, needle)) in cases.iter().enumerate() {
        let f = format!("c{i}.json");
        std::fs::write(d.join(&f), text).unwrap();
        let r = ema(d, &["validate-config", "--config", &f, "--json"]);
        assert_eq!(r.code, 2, "{text}");
        let doc = r.json();
        let p = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["kind"] == *kind)
            .unwrap_or_else(|| panic!("no {kind} for {text}: {doc}"));
        assert_eq!(p["path"], *path, "{text}");
        assert_eq!(
            (p["line"].as_u64().unwrap(), p["column"].as_u64().unwrap()),
            (*line, *col),
            "{text}: {p}"
        );
        assert!(
            p["message"].as_str().unwrap().contains(needle),
            "{text}: {p}"
        );
        assert!(!p["fix"].as_str().unwrap().is_empty());
    }
}

#[test]
fn config_flag_works_before_and_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad.json"), "{\"api\": {\"port\": 0}}").unwrap();
    std::fs::write(d.join("good.json"), "{\"api\": {\"port\": 9}}").unwrap();
    assert_eq!(ema(d, &["--config", "bad.json", "validate-config"]).code, 2);
    assert_eq!(ema(d, &["validate-config", "--config", "bad.json"]).code, 2);
    assert_eq!(
        ema(d, &["--config", "good.json", "validate-config"]).code,
        0
    );
    assert_eq!(
        ema(d, &["validate-config", "--config", "good.json"]).code,
        0
    );
    // A named file that does not exist is a configuration error.
    let r = ema(d, &["validate-config", "--config", "nope.json"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("does not exist"));
    // Discovery: ./config/enhanced_model_config.json, and EMA_CONFIG.
    std::fs::create_dir(d.join("config")).unwrap();
    std::fs::write(
        d.join("config/enhanced_model_config.json"),
        "{\"ui\": {\"theme\": \"\"}}",
    )
    .unwrap();
    let r = ema(d, &["validate-config"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout
            .contains("config/enhanced_model_config.json:1:18: ui.theme"),
        "{}",
        r.stdout
    );
    let r = run(cmd(d, &["validate-config"]).env("EMA_CONFIG", "good.json"));
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn verbose_lists_effective_values_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("c.json"),
        "{\"downloads\": {\"max_retries\": 9}, \"api\": {\"token\": \"hf_secret\"}}",
    )
    .unwrap();
    let r = ema(d, &["validate-config", "--config", "c.json", "--verbose"]);
    assert_eq!(r.code, 0);
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("downloads.max_retries"))
        .unwrap();
    assert!(line.contains('9') && !line.contains("(default)"), "{line}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("downloads.connections_per_file"))
        .unwrap();
    assert!(line.contains("(default)"), "{line}");
    assert!(
        !r.stdout.contains("hf_secret"),
        "the token must never be printed"
    );
    let r = ema(
        d,
        &words("validate-config --config c.json --verbose --json"),
    );
    let doc = r.json();
    let e = doc["effective"].as_array().unwrap();
    assert!(
        e.iter()
            .any(|e| e["path"] == "downloads.max_retries" && e["from_file"] == true)
    );
    assert!(!r.stdout.contains("hf_secret"));
}

#[test]
fn fix_config_dry_run_then_auto_fix_with_backup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = r#"{
  "storage": {"modles_directory": "/m", "cleanup_threshold_percent": 150},
  "downloads": {"max_retries": "3", "max_concurrent_downloads": 0},
  "fallback": {"suggestion_threshold": -0.5},
  "max_storage_gb": 100,
  "featurs": {"usage_analytics": false},
  "weird_thing": 1
}
"#;
    std::fs::write(d.join("c.json"), text).unwrap();
    let r = ema(d, &["fix-config", "--config", "c.json"]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("Would change"), "{}", r.stdout);
    assert!(r.stdout.contains("Nothing was written"));
    assert_eq!(
        std::fs::read_to_string(d.join("c.json")).unwrap(),
        text,
        "dry run writes nothing"
    );
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 1);

    let r = ema(
        d,
        &["fix-config", "--config", "c.json", "--auto-fix", "--json"],
    );
    let rep = r.json();
    assert_eq!(r.code, 2, "weird_thing cannot be fixed: {}", r.stdout);
    let remaining: Vec<_> = rep["remaining"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].clone())
        .collect();
    assert_eq!(remaining, [json!("weird_thing")]);
    let backup = PathBuf::from(rep["backup"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(d.join(&backup)).unwrap(),
        text,
        "backup is the original"
    );
    let out = read_json(&d.join("c.json"));
    assert_eq!(out["storage"]["models_directory"], "/m");
    assert_eq!(out["storage"]["cleanup_threshold_percent"], 100);
    assert_eq!(
        out["storage"]["max_storage_gb"], 100,
        "moved into its section"
    );
    assert_eq!(out["downloads"]["max_retries"], 3);
    assert_eq!(out["downloads"]["max_concurrent_downloads"], 1);
    assert_eq!(out["fallback"]["suggestion_threshold"], 0);
    assert_eq!(out["features"]["usage_analytics"], false);
    assert!(out["api"].is_object(), "missing sections added");
    let changes = rep["changes"].as_array().unwrap();
    assert!(changes.len() >= 8, "{changes:?}");

    // Remove the unfixable key by hand: now it validates.
    let mut v = out.clone();
    v.as_object_mut().unwrap().remove("weird_thing");
    std::fs::write(d.join("c.json"), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    assert_eq!(
        ema(d, &["fix-config", "--config", "c.json", "--auto-fix"]).code,
        0
    );
    assert_eq!(ema(d, &["validate-config", "--config", "c.json"]).code, 0);
}

#[test]
fn configure_set_preserves_order_and_unknown_content() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = r#"{
  "ui": {"theme": "light"},
  "downloads": {"resume_enabled": false, "max_retries": 1},
  "migration": {"unmapped_legacy_settings": {"zeta": 1, "alpha": {"x": null}}}
}
"#;
    std::fs::write(d.join("c.json"), text).unwrap();
    let r = ema(
        d,
        &words("configure --config c.json --set downloads.max_retries=7 --set api.port=9001"),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = read_json(&d.join("c.json"));
    assert_eq!(keys(&out), ["ui", "downloads", "migration", "api"]);
    assert_eq!(keys(&out["downloads"]), ["resume_enabled", "max_retries"]);
    assert_eq!(out["downloads"]["max_retries"], 7);
    assert_eq!(out["api"]["port"], 9001);
    assert_eq!(
        keys(&out["migration"]["unmapped_legacy_settings"]),
        ["zeta", "alpha"]
    );
    assert_eq!(
        out["migration"]["unmapped_legacy_settings"]["alpha"],
        json!({"x": null})
    );

    // A bad key or value: error with did-you-mean, nothing written.
    let before = std::fs::read(d.join("c.json")).unwrap();
    let r = ema(
        d,
        &words("configure --config c.json --set downloads.max_retires=3"),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean `downloads.max_retries`"),
        "{}",
        r.stderr
    );
    let r = ema(
        d,
        &words("configure --config c.json --set api.port=eighty --basic-mode"),
    );
    assert_eq!(r.code, 2);
    let r = ema(
        d,
        &words("configure --config c.json --set fallback.suggestion_threshold=3"),
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("above the maximum 1"), "{}", r.stderr);
    assert_eq!(std::fs::read(d.join("c.json")).unwrap(), before);

    // The flags.
    let r = ema(
        d,
        &words(
            "configure --config c.json --enable-legacy-api --legacy-endpoints-only --basic-mode --json",
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json();
    let out = read_json(&d.join("c.json"));
    assert_eq!(out["api"]["legacy_support"], true);
    assert_eq!(out["api"]["legacy_endpoints_only"], true);
    assert_eq!(out["migration"]["legacy_api_support"], true);
    assert_eq!(out["health_monitoring"]["enabled"], false);
    assert_eq!(out["analytics"]["enabled"], false);
    assert_eq!(out["fallback"]["intelligent_fallback_enabled"], false);
    assert_eq!(out["downloads"]["connections_per_file"], 1);
    assert_eq!(
        out["downloads"]["integrity_check_enabled"],
        Value::Null,
        "basic mode leaves integrity alone"
    );
    assert_eq!(ema(d, &["validate-config", "--config", "c.json"]).code, 0);
}

#[test]
fn configure_creates_the_file_in_force_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = ema(d, &["configure", "--disable-analytics"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = d.join("config/enhanced_model_config.json");
    assert_eq!(read_json(&p)["analytics"]["enabled"], false);
    // The created file is now the one in force.
    let r = ema(d, &["config", "path"]);
    assert!(
        r.stdout
            .contains("found at ./config/enhanced_model_config.json"),
        "{}",
        r.stdout
    );
    // --config names a new file: created there.
    let r = ema(
        d,
        &words("--config other/x.json configure --set ui.theme=light"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read_json(&d.join("other/x.json"))["ui"]["theme"], "light");
    // EMA_CONFIG names a new file: created there.
    let r =
        run(cmd(d, &["configure", "--set", "api.port=8080"]).env("EMA_CONFIG", d.join("env.json")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read_json(&d.join("env.json"))["api"]["port"], 8080);
    // No settings at all: a usage error.
    assert_eq!(ema(d, &["configure"]).code, 2);
}

#[test]
fn enable_feature_tests_first_and_refuses_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("models"), b"not a directory").unwrap();
    std::fs::write(
        d.join("c.json"),
        "{\"storage\": {\"models_directory\": \"models\"}, \"health_monitoring\": {\"enabled\": false}}\n",
    )
    .unwrap();
    let before = std::fs::read(d.join("c.json")).unwrap();
    let r = ema(
        d,
        &words("enable-feature --config c.json --feature health-monitoring --test-first"),
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not a directory"), "{}", r.stderr);
    assert_eq!(std::fs::read(d.join("c.json")).unwrap(), before);
    let r = ema(
        d,
        &words("enable-feature --config c.json --feature health-monitoring --test-first --json"),
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["enabled"], false);

    std::fs::remove_file(d.join("models")).unwrap();
    std::fs::create_dir(d.join("models")).unwrap();
    let r = ema(
        d,
        &words("enable-feature --config c.json --feature health-monitoring --test-first"),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("ok   models directory writable"),
        "{}",
        r.stdout
    );
    let out = read_json(&d.join("c.json"));
    assert_eq!(out["health_monitoring"]["enabled"], true);
    assert_eq!(out["features"]["health_monitoring"], true);

    // Analytics: a real sqlite database is opened.
    let r = ema(
        d,
        &words("enable-feature --config c.json --feature usage-analytics --test-first --json"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["enabled"], true);
    assert!(d.join("cache/analytics.db").is_file());

    let r = ema(
        d,
        &words("enable-feature --config c.json --feature helth-monitoring"),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean `health-monitoring`"),
        "{}",
        r.stderr
    );
}

/// A write that fails leaves the old file byte-identical: the process is limited to small files
/// (RLIMIT_FSIZE also binds root), so writing the new configuration fails part way.
#[test]
fn failed_writes_leave_the_old_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = b"{\"ui\": {\"theme\": \"light\"}}\n".to_vec();
    std::fs::write(d.join("c.json"), &old).unwrap();
    for ignore_signal in [true, false] {
        let mut c = cmd(
            d,
            &words(
                "configure --config c.json --set storage.models_directory=/a/very/long/path/that/makes/the/file/larger/than/the/limit/allows/for/sure/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            ),
        );
        unsafe {
            c.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: 40,
                    rlim_max: 40,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if ignore_signal {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                }
                Ok(())
            });
        }
        let r = Run::from(c.output().unwrap());
        assert_ne!(r.code, 0, "the write must fail");
        assert_eq!(
            std::fs::read(d.join("c.json")).unwrap(),
            old,
            "old file byte-identical"
        );
        if ignore_signal {
            assert_eq!(r.code, 1, "{}", r.stderr);
            // A clean failure also removes its temporary file.
            let names: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), 1, "{names:?}");
        }
    }

    // The target is a directory: refused, its content untouched.
    std::fs::create_dir(d.join("target")).unwrap();
    std::fs::write(d.join("target/keep"), b"keep").unwrap();
    std::fs::write(d.join("config.json"), SPEC_LEGACY).unwrap();
    let r = ema(
        d,
        &words("migrate-config --source config.json --target target --force"),
    );
    assert_eq!(r.code, 2);
    assert_eq!(std::fs::read(d.join("target/keep")).unwrap(), b"keep");

    // A read-only directory (only meaningful when not running as root).
    let ro = d.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("c.json"), &old).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let privileged = std::fs::write(ro.join("probe"), b"x").is_ok();
    if !privileged {
        let r = ema(
            d,
            &words("configure --config ro/c.json --set api.port=1234"),
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(std::fs::read(ro.join("c.json")).unwrap(), old);
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Round trip: the effective configuration printed by `config show` is itself a valid file that loads to the same
/// configuration.
#[test]
fn round_trip_through_show_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("config.json"), SPEC_LEGACY).unwrap();
    assert_eq!(
        ema(
            d,
            &words("migrate-config --source config.json --target a.json")
        )
        .code,
        0
    );
    let shown = ema(d, &["--config", "a.json", "config", "show"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    std::fs::write(d.join("b.json"), &shown.stdout).unwrap();
    assert_eq!(ema(d, &["validate-config", "--config", "b.json"]).code, 0);
    let again = ema(d, &["--config", "b.json", "config", "show"]);
    assert_eq!(again.json(), shown.json());
}

/// `--interactive` on a real terminal: `script` (util-linux) gives the process a pseudo-terminal; the answers are
/// typed into it. Edit the models directory, use the default retries, keep the rest; turn health monitoring on.
#[test]
fn interactive_review_on_a_terminal() {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!(
            "skipped: /usr/bin/script (util-linux) is not installed, no pseudo-terminal available"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("config.json"), SPEC_LEGACY).unwrap();
    let inner = format!(
        "{} migrate-config --source config.json --target out.json --interactive",
        EMA
    );
    let mut c = Command::new("/usr/bin/script");
    c.args(["-qec", &inner, "/dev/null"])
        .current_dir(d)
        .env_remove("EMA_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        // models_directory: edit; cache: keep; retries: default; concurrency: keep; health: default (on); mock: keep
        stdin.write_all(b"e\n/srv/models\ny\nn\ny\nn\ny\n").unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("interactive migration did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = Run::from(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("keep it? [y]es"), "{}", r.stdout);
    assert!(r.stdout.contains("(changed in review)"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("Note: health_check_enabled is false"),
        "{}",
        r.stdout
    );
    let out = read_json(&d.join("out.json"));
    assert_eq!(out["storage"]["models_directory"], "/srv/models");
    assert_eq!(out["storage"]["cache_directory"], "/srv/cache");
    assert_eq!(out["downloads"]["max_retries"], 5);
    assert_eq!(out["downloads"]["max_concurrent_downloads"], 2);
    assert_eq!(out["health_monitoring"]["enabled"], true);
    assert_eq!(ema(d, &["validate-config", "--config", "out.json"]).code, 0);
}

/// Errors with `--json` are still exactly one JSON document on stdout; an invalid file is not edited, and duplicate
/// keys are never rewritten by fix-config.
#[test]
fn errors_are_one_json_document_and_invalid_files_are_not_edited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("config.json"), SPEC_LEGACY).unwrap();
    std::fs::write(d.join("t.json"), b"{}\n").unwrap();
    let r = ema(
        d,
        &words("migrate-config --source config.json --target t.json --json"),
    );
    assert_eq!(r.code, 2);
    let doc = r.json();
    assert_eq!(doc["error"]["kind"], "config");
    assert_eq!(doc["error"]["exit_code"], 2);

    let text = "{\"api\": {\"port\": 0, \"port\": 1}, \"ui\": {\"theme\": 3}}\n";
    std::fs::write(d.join("bad.json"), text).unwrap();
    let r = ema(
        d,
        &words("configure --config bad.json --set api.host=0.0.0.0"),
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("fix-config"), "{}", r.stderr);
    let r = ema(
        d,
        &["fix-config", "--config", "bad.json", "--auto-fix", "--json"],
    );
    assert_eq!(r.code, 2);
    let doc = r.json();
    assert_eq!(doc["written"], false);
    assert_eq!(doc["remaining"].as_array().unwrap().len(), 3);
    assert_eq!(std::fs::read_to_string(d.join("bad.json")).unwrap(), text);
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        3,
        "no backup when nothing is written"
    );

    // Malformed JSON: fix-config reports the position and writes nothing.
    std::fs::write(d.join("broken.json"), "{\n  \"api\": {\"port\": 80\n}\n").unwrap();
    let r = ema(d, &["fix-config", "--config", "broken.json", "--auto-fix"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout
            .contains("broken.json:4:1: (document): malformed JSON"),
        "{}",
        r.stdout
    );
}

/// Credentials never reach the output: api.token, secret-looking legacy keys, database URLs.
#[test]
fn credentials_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = ema(
        d,
        &words("configure --config c.json --set api.token=hf_SECRET1 --json"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json();
    let r2 = ema(
        d,
        &words("configure --config c.json --set api.token=hf_SECRET2"),
    );
    assert_eq!(r2.code, 0, "{}", r2.stderr);
    assert_eq!(read_json(&d.join("c.json"))["api"]["token"], "hf_SECRET2");
    std::fs::write(
        d.join("config.json"),
        r#"{"models_directory": "m", "hf_token": "hf_SECRET3", "db": {"password": "SECRET4"}}"#,
    )
    .unwrap();
    let r3 = ema(
        d,
        &words("migrate-config --source config.json --target o.json"),
    );
    let r4 = ema(
        d,
        &words("migrate-config --source config.json --target o2.json --json"),
    );
    assert_eq!((r3.code, r4.code), (0, 0));
    assert_eq!(
        read_json(&d.join("o.json"))["migration"]["unmapped_legacy_settings"]["hf_token"],
        "hf_SECRET3",
        "kept verbatim in the file"
    );
    std::fs::write(
        d.join("bad.json"),
        r#"{"analytics": {"db_url": "mysql://u:SECRET5@h/db"}, "api": {"token": 12345}}"#,
    )
    .unwrap();
    let r5 = ema(d, &["validate-config", "--config", "bad.json", "--verbose"]);
    let r6 = ema(
        d,
        &words("validate-config --config o.json --verbose --json"),
    );
    for r in [&r, &r2, &r3, &r4, &r5, &r6] {
        let all = format!("{}{}", r.stdout, r.stderr);
        for s in [
            "SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5", "12345",
        ] {
            assert!(!all.contains(s), "{s} leaked:\n{all}");
        }
    }
}

#[test]
fn a_closed_stdout_is_a_quiet_successful_exit() {
    // `ema completions bash | head -1`: the reader is gone before ema writes. Quiet exit 0, no panic message.
    let d = tempfile::tempdir().unwrap();
    let mut c = cmd(d.path(), &["completions", "bash"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
