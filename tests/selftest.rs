//! `ema validate-migration`, `ema test-installation` and `ema test-enhanced-features` through the real binary:
//! validation of a migrated legacy install (intact, and with a flipped byte), of one whose legacy configuration was
//! never converted; the self-tests proving every claim on this machine against the built-in sample hub, only what
//! was asked run, and a temporary directory that cannot be used failing with the reason.

mod support;

use std::path::Path;
use std::process::Command;

use ema::engine::legacy::sample::legacy_install;
use serde_json::Value;
use support::cli::{Run, ema_cmd, run};
use support::data::{find_in, strs_in};
use support::server::EmaServer;

/// `ema` run in `cwd` with the platform directories inside `home` (no configuration of the machine is found).
fn ema_in(cwd: &Path, home: &Path, args: &[&str]) -> Run {
    let mut c: Command = ema_cmd();
    c.args(args)
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", home.join("xdg/config"))
        .env("XDG_DATA_HOME", home.join("xdg/data"))
        .env("XDG_CACHE_HOME", home.join("xdg/cache"));
    run(&mut c)
}

/// The check `name` of `report`, which must have the verdict `status`.
fn check_is<'a>(report: &'a Value, name: &str, status: &str) -> &'a Value {
    let c = find_in(&report["checks"], "name", name);
    assert_eq!(c["status"], status, "{c}");
    c
}

/// The check `name` of `report`, which must have the verdict `status` and a text `key` that `ok` accepts (the
/// check shown when not).
fn check_says<'a>(
    report: &'a Value,
    name: &str,
    status: &str,
    key: &str,
    ok: impl FnOnce(&str) -> bool,
) -> &'a Value {
    let c = check_is(report, name, status);
    assert!(ok(text(c, key)), "{c}");
    c
}

/// The string at `at` in `v` (there must be one).
fn text(v: &Value, at: impl serde_json::value::Index) -> &str {
    v[at].as_str().unwrap()
}

/// A legacy install at `<t>/app`, migrated as the guide says: migrate-config, then migrate-models.
fn migrated_install(t: &Path, flip_a_byte: bool) -> std::path::PathBuf {
    let root = t.join("app");
    legacy_install(&root, flip_a_byte);
    let r = ema_in(
        &root,
        t,
        &[
            "migrate-config",
            "--source",
            "config.json",
            "--target",
            "config/enhanced_model_config.json",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = ema_in(&root, t, &["migrate-models", "--models-dir", "models"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    root
}

#[test]
fn validate_migration_passes_on_a_migrated_legacy_install_and_says_what_is_not_applicable() {
    let t = tempfile::tempdir().unwrap();
    let root = migrated_install(t.path(), false);
    // The migrated configuration's server runs (on a free port): the api check reaches it.
    let cfg_path = root.join("config/enhanced_model_config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg["api"]["port"] = port.into();
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let srv = EmaServer::start(&cfg_path, "http://127.0.0.1:9", &[], &[]);
    let r = ema_in(&root, t.path(), &["validate-migration", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["checks"].as_array().unwrap().len(),
        4,
        "no flag = every check"
    );

    check_says(&v, "models", "pass", "figure", |s| {
        s.starts_with("5 intact, 0 damaged, 0 unadopted")
    });
    let c = check_says(&v, "config", "pass", "figure", |s| {
        s.ends_with("config/enhanced_model_config.json: 0 problems")
    });
    let detail = text(&c["details"], 0);
    assert!(detail.contains("config.json is converted"), "{c}");
    check_says(&v, "api", "pass", "figure", |s| {
        s == format!("9 of 9 endpoints pass at http://127.0.0.1:{port}")
    });
    let f = check_says(&v, "features", "pass", "reason", |s| {
        s.contains("every feature switched on has its engine part")
    });
    let details: Vec<&str> = f["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(details[0].starts_with("enhanced_downloads: on — built"));
    // The legacy file had health_check_enabled: false, and migrate-config kept it off.
    assert!(
        details[1].contains("stays off while health_monitoring.enabled is false"),
        "{details:?}"
    );

    // One check asked for by name: only that one runs; human output names the verdicts.
    let r = ema_in(&root, t.path(), &["validate-migration", "--check-api"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("pass            api"), "{}", r.stdout);
    assert!(!r.stdout.contains("models"), "{}", r.stdout);
    // With the server stopped, the api check fails and says how to start it.
    let (code, _) = srv.stop();
    assert_eq!(code, 0);
    let r = ema_in(&root, t.path(), &["validate-migration", "--check-api"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.starts_with("fail            api"), "{}", r.stdout);
    assert!(r.stdout.contains("`ema start`"), "{}", r.stdout);
}

#[test]
fn validate_migration_fails_on_the_flipped_byte_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let root = migrated_install(t.path(), true);
    let r = ema_in(
        &root,
        t.path(),
        &["validate-migration", "--check-models", "--json"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["ok"], false);
    let m = check_says(&v, "models", "fail", "figure", |s| {
        s.starts_with("4 intact, 1 damaged, 0 unadopted")
    });
    let d = text(&m["details"], 0);
    assert!(
        d.starts_with("acme/local-gpt: corrupted: model.safetensors:"),
        "{d}"
    );
    assert!(
        m["reason"].as_str().unwrap().contains("--repair-corrupted"),
        "{m}"
    );
    // Read-only: the damaged model is still damaged, and the check can be repeated with the same verdict.
    let again = ema_in(&root, t.path(), &["validate-migration", "--check-models"]);
    assert_eq!(again.code, 1);
    assert!(
        again
            .stdout
            .contains("acme/local-gpt: corrupted: model.safetensors"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("validation: FAILED (models)"));
}

#[test]
fn validate_migration_points_an_unconverted_legacy_config_at_migrate_config() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("app");
    legacy_install(&root, false);
    let r = ema_in(
        &root,
        t.path(),
        &[
            "validate-migration",
            "--check-config",
            "--check-models",
            "--models-dir",
            "models",
            "--json",
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let c = check_is(&v, "config", "fail");
    let reason = text(c, "reason");
    assert!(
        reason.contains("was never converted") && reason.contains("ema migrate-config --source"),
        "{reason}"
    );
    // Nothing adopted yet: every model is still in its legacy layout.
    let m = check_says(&v, "models", "fail", "figure", |s| {
        s.starts_with("0 intact, 0 damaged, 5 unadopted")
    });
    assert!(m["reason"].as_str().unwrap().contains("ema migrate-models"));

    // A models directory that does not exist: a failed check with the reason, not a crash.
    let r = ema_in(
        &root,
        t.path(),
        &[
            "validate-migration",
            "--check-models",
            "--models-dir",
            "nowhere",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("fail"), "{}", r.stdout);
    assert!(r.stdout.contains("nowhere"), "{}", r.stdout);
}

fn proof<'a>(v: &'a Value, name: &str) -> &'a Value {
    find_in(&v["proofs"], "name", name)
}

fn n(v: &Value, key: &str) -> u64 {
    v["figures"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn test_installation_proves_every_claim_on_this_machine() {
    let t = tempfile::tempdir().unwrap();
    let tmp = t.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = ema_cmd();
    c.args([
        "test-installation",
        "--sample-models",
        "--run-all-tests",
        "--json",
    ])
    .env("TMPDIR", &tmp)
    .current_dir(t.path());
    let r = run(&mut c);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["ok"], true);
    let names = strs_in(&v["proofs"], "name");
    assert_eq!(
        names,
        vec![
            "temporary_store",
            "sample_hub_store",
            "sample_hub",
            "download_resume",
            "verify",
            "corrupt_and_repair",
            "sample_models",
            "health_monitoring",
            "intelligent_fallback",
            "usage_analytics",
        ]
    );
    for p in v["proofs"].as_array().unwrap() {
        assert_eq!(p["status"], "passed", "{p}");
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{p}");
    }
    assert!(v["hub"].as_str().unwrap().starts_with("http://127.0.0.1:"));

    // The interruption landed mid-transfer, and resuming fetched again at most the bound.
    let d = proof(&v, "download_resume");
    let (total, at, again) = (
        n(d, "total_bytes"),
        n(d, "bytes_at_interruption"),
        n(d, "bytes_fetched_again"),
    );
    assert!(at > 0 && at < total, "{d}");
    assert!(again <= n(d, "bound_bytes") && again < at, "{d}");
    assert_eq!(n(d, "bytes_fetched"), total + again);

    // The flipped byte: caught, and only its file fetched again.
    let c = proof(&v, "corrupt_and_repair");
    assert_eq!(c["figures"]["detected_as"], "corrupted");
    assert_eq!(c["figures"]["state_after"], "healthy");
    assert_eq!(n(c, "bytes_fetched"), n(c, "file_bytes"), "{c}");
    assert!(n(c, "file_bytes") < n(c, "model_bytes"));

    let h = proof(&v, "health_monitoring");
    assert_eq!(h["figures"]["alert_severity"], "critical");
    assert_eq!(
        h["figures"]["states"],
        serde_json::json!(["corrupted", "healthy"])
    );
    assert!(n(h, "bytes_fetched") > 0);

    assert_eq!(
        proof(&v, "sample_models")["figures"]["models"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Progress went to stderr; the workspace is gone.
    assert!(r.stderr.contains("interrupted at"), "{}", r.stderr);
    let ws = Path::new(v["workspace"].as_str().unwrap());
    assert!(ws.starts_with(&tmp) && !ws.exists());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn test_enhanced_features_runs_only_what_was_asked() {
    let t = tempfile::tempdir().unwrap();
    // Health monitoring and usage analytics asked for by name: those two proofs (and their set-up), nothing else.
    let mut c = ema_cmd();
    c.args([
        "test-enhanced-features",
        "--health-monitoring",
        "--usage-analytics",
        "--json",
    ])
    .env("TMPDIR", t.path())
    .current_dir(t.path());
    let r = run(&mut c);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(proof(&v, "health_monitoring")["status"], "passed");
    let u = proof(&v, "usage_analytics");
    assert_eq!(u["status"], "passed", "{u}");
    assert_eq!(u["asked_explicitly"], true);
    assert!(
        u["figures"]["downloads_completed"].as_u64().unwrap() >= 1,
        "{u}"
    );
    assert!(u["figures"]["bytes"].as_u64().unwrap() > 0, "{u}");
    assert!(
        v["proofs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "download_resume" && p["name"] != "intelligent_fallback"),
        "only what was asked runs"
    );
}

#[test]
fn an_unusable_temporary_directory_fails_with_the_reason() {
    let t = tempfile::tempdir().unwrap();
    let not_a_dir = t.path().join("a-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let mut c = ema_cmd();
    c.args(["test-installation", "--json"])
        .env("TMPDIR", &not_a_dir)
        .current_dir(t.path());
    let r = run(&mut c);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let s = proof(&v, "temporary_store");
    assert_eq!(s["status"], "failed");
    let d = s["detail"].as_str().unwrap();
    assert!(
        d.contains(not_a_dir.to_str().unwrap())
            && d.contains("point TMPDIR at a writable directory"),
        "{d}"
    );
    for name in ["download_resume", "verify", "corrupt_and_repair"] {
        let p = proof(&v, name);
        assert_eq!(p["status"], "not_run", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("temporary store"));
    }
    // Human output: the reason and the verdict.
    let mut c = ema_cmd();
    c.args(["test-installation"])
        .env("TMPDIR", &not_a_dir)
        .current_dir(t.path());
    let r = run(&mut c);
    assert_eq!(r.code, 1);
    assert!(r.stdout.starts_with("failed"), "{}", r.stdout);
    assert!(
        r.stdout.contains("NOT everything was proven"),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read(&not_a_dir).unwrap(), b"x", "nothing changed");
}
