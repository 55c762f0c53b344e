//! The migration wizard from the command line, end to end on a sample legacy install (`ema demo --legacy`): the
//! real binary, its persisted state in an isolated state directory, a new process for every command.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::cli::ema_isolated as ema;
use support::data::find_in;
use support::http::free_port;

/// A legacy install written by `ema demo --legacy`, planned with a legacy port nothing uses.
fn planned(d: &Path, port: u16) -> PathBuf {
    let r = ema(d, d, &["demo", "--legacy", "--dir", "install", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = PathBuf::from(r.json()["legacy_dir"].as_str().unwrap());
    assert!(root.join("config.json").is_file() && root.join("models.db").is_file());
    let r = ema(
        d,
        &root,
        &["migrate", "plan", "--legacy-port", &port.to_string()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("What will happen, step by step"),
        "{}",
        r.stdout
    );
    root
}

fn state_of(status: &Value, step: &str) -> String {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == step)
        .unwrap()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_wizard_walks_a_legacy_install_step_by_step_and_its_state_survives() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // Nothing planned yet: every command but plan says so.
    let r = ema(d, d, &["migrate", "status"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("ema migrate plan"), "{}", r.stderr);

    let root = planned(d, free_port());
    // Side by side, ema's installation may not lie inside what the legacy system owns.
    let r = ema(
        d,
        &root,
        &[
            "migrate",
            "plan",
            "--mode",
            "side-by-side",
            "--install-dir",
            "models/ema",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--install-dir"), "{}", r.stderr);

    let plan = ema(d, &root, &["migrate", "status", "--json"]).json();
    assert_eq!(plan["plan"]["models"].as_array().unwrap().len(), 5);
    assert_eq!(plan["plan"]["root"], root.display().to_string());
    let state_dir = PathBuf::from(plan["state_dir"].as_str().unwrap());
    assert!(state_dir.starts_with(d.join("state")) && !state_dir.starts_with(&root));

    // next: system requirements (done or failed by this machine's disk), then the backup.
    let r = ema(d, &root, &["migrate", "next", "--json"]);
    assert_eq!(r.json()["step"], "system_requirements", "{}", r.stdout);
    let r = ema(d, &root, &["migrate", "next", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.json()["record"]["state"], "done", "{}", r.stdout);
    // A manual step waits for a person.
    let r = ema(d, &root, &["migrate", "next", "--json"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.json()["kind"], "waiting");
    assert_eq!(r.json()["step"], "plan_reviewed");
    let r = ema(d, &root, &["migrate", "next"]);
    assert!(
        r.stdout.contains("ema migrate done plan_reviewed --note"),
        "{}",
        r.stdout
    );

    // Manual steps need a note; automatic ones cannot be confirmed or skipped; unknown names list the valid ones.
    assert_eq!(ema(d, &root, &["migrate", "done", "plan_reviewed"]).code, 2);
    let r = ema(
        d,
        &root,
        &["migrate", "done", "plan_reviewed", "--note", " "],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("note is required"), "{}", r.stderr);
    let r = ema(d, &root, &["migrate", "skip", "backup", "--note", "no"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("automatic"), "{}", r.stderr);
    assert_eq!(
        ema(d, &root, &["migrate", "done", "installed", "--note", "x"]).code,
        2
    );
    let r = ema(d, &root, &["migrate", "run", "plan_reviewed"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("manual"), "{}", r.stderr);
    let r = ema(d, &root, &["migrate", "run", "no_such_step"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("system_requirements") && r.stderr.contains("rollback_verified"),
        "{}",
        r.stderr
    );

    let ok = |args: &[&str]| {
        let r = ema(d, &root, args);
        assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
        r
    };
    ok(&[
        "migrate",
        "done",
        "plan_reviewed",
        "--note",
        "read with ops",
    ]);
    ok(&[
        "migrate",
        "skip",
        "downtime_scheduled",
        "--note",
        "no consumers at night",
    ]);
    let r = ok(&["migrate", "next"]);
    assert!(
        r.stdout.contains("Rollback procedures tested — done"),
        "{}",
        r.stdout
    );
    ok(&["migrate", "done", "team_notified", "--note", "mail sent"]);
    for (step, want) in [
        ("services_stopped", "done"),
        ("installed", "done"),
        ("config_migrated", "done"),
        ("model_data_migrated", "done"),
    ] {
        let r = ema(d, &root, &["migrate", "next", "--json"]);
        let v = r.json();
        assert_eq!(v["step"], step, "{}", r.stdout);
        assert_eq!(v["record"]["state"], want, "{}", r.stdout);
    }
    assert!(root.join("config/enhanced_model_config.json").is_file());
    assert!(root.join("models/acme--cached.metadata.json").is_file());
    // The usage log goes into the migrated install's analytics database; bad lines are listed.
    let r = ema(d, &root, &["migrate", "next", "--json"]);
    let v = r.json();
    assert_eq!(v["step"], "database_migrated", "{}", r.stdout);
    assert_eq!(v["record"]["state"], "done", "{}", r.stdout);
    assert!(
        r.stdout.contains("5 imported") && r.stdout.contains("line 4"),
        "{}",
        r.stdout
    );
    assert!(root.join("cache/analytics.db").is_file());

    // A new process reads the same state: steps, notes, the backup.
    let st = ok(&["migrate", "status", "--json"]).json();
    assert_eq!(state_of(&st, "backup"), "done");
    assert_eq!(state_of(&st, "downtime_scheduled"), "skipped");
    assert_eq!(state_of(&st, "model_data_migrated"), "done");
    assert_eq!(state_of(&st, "database_migrated"), "done");
    let reviewed = find_in(&st["steps"], "id", "plan_reviewed");
    assert_eq!(reviewed["note"], "read with ops");
    let backup = PathBuf::from(st["last_backup"].as_str().unwrap());
    assert!(backup.join("manifest.json").is_file());
    let journal = std::fs::read_to_string(state_dir.join("journal.jsonl")).unwrap();
    assert!(journal.lines().count() >= 20, "{journal}");
    let human = ok(&["migrate", "status"]).stdout;
    assert!(human.contains("Migration Checklist 5/7"), "{human}");

    // The state lives outside what a rollback restores: after rolling the install back, it is still there.
    let r = ema(
        d,
        &root,
        &[
            "rollback",
            "--backup-dir",
            backup.to_str().unwrap(),
            "--verify-rollback",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!root.join("config/enhanced_model_config.json").exists());
    let st = ok(&["migrate", "status", "--json"]).json();
    assert_eq!(state_of(&st, "model_data_migrated"), "done");
}

#[test]
fn services_stopped_names_a_listener_and_a_process_holding_a_model_file() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = planned(d, port);

    let r = ema(d, &root, &["migrate", "run", "services_stopped", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = r.json();
    assert_eq!(v["state"], "failed");
    let log = v["log"].to_string();
    assert!(
        log.contains(&format!("pid {}", std::process::id()))
            && log.contains(&format!("listening on port {port}")),
        "{log}"
    );
    // Where systemd is not the service manager the step says so and relies on ports and processes
    // (tests/systemd.rs runs it under a real systemd).
    if !Path::new("/run/systemd/system").exists() {
        assert!(
            log.contains("systemd is not the service manager here"),
            "{log}"
        );
    }
    drop(listener);

    // Another process holds a model file open.
    let held = root.join("models/plain-bert/config.json");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3< '{}'; exec sleep 60", held.display()))
        .spawn()
        .unwrap();
    let pid = child.id();
    let fd = PathBuf::from(format!("/proc/{pid}/fd/3"));
    assert!(
        support::wait::wait_for(10, || std::fs::read_link(&fd).is_ok_and(|t| t == held)),
        "the child never opened {}",
        held.display()
    );
    let r = ema(d, &root, &["migrate", "run", "services_stopped", "--json"]);
    let v = r.json();
    assert_eq!(v["state"], "failed", "{}", r.stdout);
    let log = v["log"].to_string();
    assert!(
        log.contains(&format!("pid {pid}"))
            && log.contains("open: ")
            && log.contains("config.json"),
        "{log}"
    );
    assert!(v["details"].as_str().unwrap().contains("still runs"), "{v}");
    child.kill().unwrap();
    child.wait().unwrap();

    let r = ema(d, &root, &["migrate", "run", "services_stopped"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("nothing listens on port"), "{}", r.stdout);

    // Done: running it again is asked for explicitly.
    let r = ema(d, &root, &["migrate", "run", "services_stopped"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("`ema migrate run services_stopped --again`"),
        "{}",
        r.stderr
    );
    let r = ema(d, &root, &["migrate", "run", "services_stopped", "--again"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = ema(
        d,
        &root,
        &["migrate", "reset", "services_stopped", "--json"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["state"], "pending", "{}", r.stdout);
}

#[test]
fn features_working_runs_the_enhanced_feature_self_test_against_the_sample_hub() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let root = planned(d, free_port());
    let r = ema(d, &root, &["migrate", "run", "features_working", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rec = r.json();
    assert_eq!(rec["state"], "done", "{}", r.stdout);
    let details = rec["details"].as_str().unwrap();
    assert!(
        details.contains("http://127.0.0.1:") && !details.contains("not built"),
        "{details}"
    );
    let log: Vec<String> = rec["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect();
    // One line per proof, in order, each with its detail and figures.
    for (status, proof) in [
        ("passed", "temporary_store"),
        ("passed", "sample_hub_store"),
        ("passed", "sample_hub"),
        ("passed", "download_resume"),
        ("passed", "verify"),
        ("passed", "corrupt_and_repair"),
        ("passed", "health_monitoring"),
        ("passed", "intelligent_fallback"),
        ("passed", "usage_analytics"),
    ] {
        let line = log
            .iter()
            .find(|l| l.starts_with(&format!("{status} {proof}: ")))
            .unwrap_or_else(|| panic!("no {status} {proof} in {log:#?}"));
        if status == "passed" {
            assert!(line.contains("seconds="), "{line}");
        }
    }
    assert!(
        log.iter()
            .any(|l| l.contains("download_resume") && l.contains("bytes_fetched_again=0")),
        "{log:#?}"
    );
    // The temporary store is gone; the legacy install was not touched by the test.
    let ws = log
        .iter()
        .find_map(|l| l.split("path=").nth(1))
        .map(|p| p.split([',', ']']).next().unwrap().to_string())
        .unwrap();
    assert!(!Path::new(&ws).exists(), "{ws} left behind");
    let st = ema(d, &root, &["migrate", "status", "--json"]).json();
    assert_eq!(state_of(&st, "features_working"), "done");
}

/// Side by side, from the command line: the plan names ema's own installation; backup, configuration, model data and
/// the checks run on ema's side; nothing of the legacy install changes; the backup's rollback empties ema's side.
#[test]
fn the_side_by_side_wizard_leaves_the_legacy_install_as_it_was_and_rolls_back_ema_s_side() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let r = ema(d, d, &["demo", "--legacy", "--dir", "install", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = PathBuf::from(r.json()["legacy_dir"].as_str().unwrap());
    let before = support::data::snapshot(&root);
    let install = d.join("ema-install");
    let r = ema(
        d,
        &root,
        &[
            "migrate",
            "plan",
            "--mode",
            "side-by-side",
            "--install-dir",
            install.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("side by side:"), "{}", r.stdout);
    for step in [
        "backup",
        "services_stopped",
        "config_migrated",
        "model_data_migrated",
        "basic_functionality",
        "models_accessible",
    ] {
        let r = ema(d, &root, &["migrate", "run", step, "--json"]);
        assert_eq!(r.code, 0, "{step}: {}\n{}", r.stdout, r.stderr);
    }
    let r = ema(d, &root, &["migrate", "status", "--json"]);
    let st = r.json();
    assert_eq!(state_of(&st, "services_stopped"), "not_applicable");
    assert_eq!(state_of(&st, "model_data_migrated"), "done");
    let cfg: Value = serde_json::from_slice(
        &std::fs::read(install.join("config/enhanced_model_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["storage"]["shared_storage"], true);
    assert_eq!(
        cfg["storage"]["models_directory"],
        install.join("models").to_str().unwrap()
    );
    assert_ne!(cfg["api"]["port"], 8000, "another port than the legacy API");
    assert_eq!(
        std::fs::read_dir(install.join("models"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".metadata.json"))
            .count(),
        5
    );
    assert_eq!(
        support::data::snapshot(&root),
        before,
        "the legacy install is unchanged"
    );
    let backup = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "backup")
        .unwrap()["details"]
        .as_str()
        .unwrap()
        .rsplit(" to ")
        .next()
        .unwrap()
        .to_string();
    let r = ema(
        d,
        &root,
        &["rollback", "--backup-dir", &backup, "--verify-rollback"],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(support::data::snapshot(&root), before);
    assert_eq!(
        std::fs::read_dir(install.join("models")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(install.join("config")).unwrap().count(),
        0
    );
}

#[test]
fn services_started_and_api_responding_check_a_live_ema_start_on_the_configured_address() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let root = planned(d, free_port());
    // The configuration in force names the server's address (no migrated configuration exists yet).
    let port = free_port();
    let cfg = support::server::write_config(d, serde_json::json!({"api": {"port": port}}));
    let cfg_s = cfg.to_str().unwrap();

    // Nothing listens there yet: both fail, saying how to start the server.
    let r = ema(
        d,
        &root,
        &[
            "--config",
            cfg_s,
            "migrate",
            "run",
            "services_started",
            "--json",
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let rec = r.json();
    assert_eq!(rec["state"], "failed", "{rec}");
    let details = rec["details"].as_str().unwrap();
    assert!(
        details.contains(&format!("http://127.0.0.1:{port}"))
            && details.contains("`ema start`")
            && details.contains("systemctl start enhanced-model-availability"),
        "{details}"
    );

    let r = ema(
        d,
        &root,
        &[
            "--config",
            cfg_s,
            "migrate",
            "run",
            "api_responding",
            "--json",
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["state"], "failed");

    // With `ema start` on that address: both pass (run again), one log line per endpoint.
    let srv = support::server::EmaServer::start(&cfg, "http://127.0.0.1:9", &[], &[]);
    assert_eq!(srv.port(0), port);
    let r = ema(
        d,
        &root,
        &[
            "--config",
            cfg_s,
            "migrate",
            "run",
            "services_started",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rec = r.json();
    assert_eq!(rec["state"], "done", "{rec}");
    assert!(
        rec["details"]
            .as_str()
            .unwrap()
            .contains(&format!("answers at http://127.0.0.1:{port}")),
        "{rec}"
    );
    let r = ema(
        d,
        &root,
        &[
            "--config",
            cfg_s,
            "migrate",
            "run",
            "api_responding",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rec = r.json();
    assert_eq!(rec["state"], "done", "{rec}");
    let log: Vec<String> = rec["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect();
    for endpoint in [
        "GET /api/v1/models/status",
        "POST /api/v1/models/download",
        "GET /api/v1/models/status/detailed",
        "POST /api/v1/models/download/manage",
        "GET /ws",
    ] {
        assert!(
            log.iter()
                .any(|l| l.starts_with("pass ") && l.contains(&format!(" {endpoint}: "))),
            "{endpoint} not passed in {log:?}"
        );
    }
    assert_eq!(
        log.iter().filter(|l| l.starts_with("pass ")).count(),
        9,
        "{log:?}"
    );

    // The same checks from the command line: every endpoint passes while it runs, none once it stopped.
    let r = ema(
        d,
        &root,
        &["--config", cfg_s, "test-api-compatibility", "--json"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["passed"], 9);

    // "Monitoring configured": setup-monitoring's files beside the migrated configuration, the live server checked;
    // and test-monitoring on the configured address, a test alert followed end to end.
    let r = ema(
        d,
        &root,
        &[
            "--config",
            cfg_s,
            "migrate",
            "run",
            "monitoring_configured",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rec = r.json();
    assert_eq!(rec["state"], "done", "{rec}");
    assert!(
        rec["details"]
            .as_str()
            .unwrap()
            .contains("exports every metric they name"),
        "{rec}"
    );
    for f in [
        "prometheus.yml",
        "ema-alerts.yml",
        "ema-alerts.test.yml",
        "ema-dashboard.json",
    ] {
        assert!(root.join("config/monitoring").join(f).is_file(), "{f}");
    }
    let prom = std::fs::read_to_string(root.join("config/monitoring/prometheus.yml")).unwrap();
    assert!(prom.contains(&format!("\"127.0.0.1:{port}\"")), "{prom}");
    let r = ema(
        d,
        &root,
        &[
            "--config",
            cfg_s,
            "test-monitoring",
            "--generate-test-alerts",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["failed"], 0);
    let (code, _) = srv.stop();
    assert_eq!(code, 0);
    let r = ema(
        d,
        &root,
        &[
            "--config",
            cfg_s,
            "test-api-compatibility",
            "--legacy-endpoints",
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("api compatibility: 0 passed, 3 failed"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("`ema start`"), "{}", r.stdout);
}

#[test]
fn a_unit_name_systemd_cannot_have_is_refused_when_planning() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let r = ema(d, d, &["demo", "--legacy", "--dir", "install", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = PathBuf::from(r.json()["legacy_dir"].as_str().unwrap());
    let r = ema(
        d,
        &root,
        &["migrate", "plan", "--legacy-unit", "models;reboot"],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("\"models;reboot\" is not a systemd unit name")
            && r.stderr.contains("systemctl list-units"),
        "{}",
        r.stderr
    );
    // Nothing was planned.
    let r = ema(d, &root, &["migrate", "status", "--json"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
}
