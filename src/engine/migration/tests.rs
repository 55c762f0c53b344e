//! The wizard engine on a real legacy install (`legacy::sample::legacy_install`) in a temporary directory.

use std::path::Path;

use super::*;
use crate::engine::config::{Config, ConfigSource, LoadedConfig};
use crate::engine::legacy::sample::legacy_install;

fn env() -> RunEnv {
    RunEnv {
        loaded: LoadedConfig {
            config: Config::default(),
            path: None,
            source: ConfigSource::Defaults,
            searched: vec![],
        },
        hub: None,
        sample_hub: None,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn planned(d: &Path) -> Wizard {
    legacy_install(&d.join("install"), false);
    let w = Wizard::at(d.join("state"));
    w.plan(
        &PlanRequest {
            root: d.join("install"),
            mode: Mode::InPlace,
            legacy_port: Some(free_port()),
            backups_dir: d.join("backups"),
            state_dir: d.join("state"),
            install_dir: d.join("ema"),
            legacy_unit: None,
            ema_unit: None,
        },
        false,
    )
    .unwrap();
    w
}

fn run(w: &Wizard, step: &str) -> StepRecord {
    w.run(step, &env()).unwrap()
}

#[test]
fn every_automatic_step_does_real_work_on_a_legacy_install() {
    let d = tempfile::tempdir().unwrap();
    let w = planned(d.path());
    let plan = w.load().unwrap().plan.unwrap();
    assert_eq!(plan.models.len(), 5, "{:?}", plan.models);
    assert!(plan.legacy_config.is_some() && plan.database.is_some());

    let b = run(&w, "backup");
    assert_eq!(b.state, StepState::Done, "{b:?}");
    let backup = w.load().unwrap().last_backup.unwrap();
    assert!(backup.starts_with(d.path().join("backups")));
    assert!(backup.join("manifest.json").is_file());
    let r = run(&w, "rollback_tested");
    assert_eq!(r.state, StepState::Done, "{r:?}");
    assert!(
        !std::fs::read_dir(d.path().join("backups"))
            .unwrap()
            .flatten()
            .any(|e| e
                .file_name()
                .to_string_lossy()
                .starts_with(".rollback-test-"))
    );
    assert_eq!(run(&w, "services_stopped").state, StepState::Done);
    assert_eq!(run(&w, "installed").state, StepState::Done);
    let c = run(&w, "config_migrated");
    assert_eq!(c.state, StepState::Done, "{c:?}");
    assert!(plan.enhanced_config.is_file());
    let m = run(&w, "model_data_migrated");
    assert_eq!(m.state, StepState::Done, "{m:?}");
    let db = run(&w, "database_migrated");
    assert_eq!(db.state, StepState::Done, "{db:?}");
    assert!(db.details.unwrap().contains("5 imported"));
    // No ema server runs on the migrated configuration's address: both fail, saying how to start one.
    let r = run(&w, "services_started");
    assert_eq!(r.state, StepState::Failed, "{r:?}");
    let d = r.details.unwrap();
    assert!(
        d.contains("`ema start`") && d.contains("systemctl start enhanced-model-availability"),
        "{d}"
    );
    let r = run(&w, "api_responding");
    assert_eq!(r.state, StepState::Failed, "{r:?}");
    assert!(
        r.details
            .unwrap()
            .contains("ema test-api-compatibility --url http://")
    );
    // The monitoring files are written beside the migrated configuration; no server answers, so the check fails.
    let r = run(&w, "monitoring_configured");
    assert_eq!(r.state, StepState::Failed, "{r:?}");
    assert!(
        r.details
            .unwrap()
            .contains("ema test-monitoring --url http://")
    );
    let mon = plan.enhanced_config.parent().unwrap().join("monitoring");
    for f in [
        "prometheus.yml",
        "ema-alerts.yml",
        "ema-alerts.test.yml",
        "ema-dashboard.json",
    ] {
        assert!(mon.join(f).is_file(), "{f}");
    }
    let r = run(&w, "features_working");
    assert_eq!(r.state, StepState::Blocked, "{r:?}");
    assert!(
        r.details
            .unwrap()
            .contains("run `ema test-enhanced-features`")
    );
    for s in [
        "basic_functionality",
        "models_accessible",
        "performance_acceptable",
        "rollback_verified",
    ] {
        let r = run(&w, s);
        assert_eq!(r.state, StepState::Done, "{s}: {r:?}");
    }
    // The first performance run recorded baselines; the next compares with them.
    w.reset("performance_acceptable").unwrap();
    let p = run(&w, "performance_acceptable");
    assert_eq!(p.state, StepState::Done, "{p:?}");
    assert!(
        p.log
            .iter()
            .filter(|l| l.text.contains("/s (baseline "))
            .count()
            >= 5,
        "{p:?}"
    );

    // A backup file changed after the fact: "Rollback procedures verified" fails and names it.
    let f = backup.join("config.json");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[3] ^= 1;
    std::fs::write(&f, &bytes).unwrap();
    w.reset("rollback_verified").unwrap();
    let r = run(&w, "rollback_verified");
    assert_eq!(r.state, StepState::Failed);
    assert!(r.details.unwrap().contains("config.json"));

    // The journal recorded intent and outcome of every run.
    let j = std::fs::read_to_string(w.journal_path()).unwrap();
    assert!(j.contains("\"intent\"") && j.contains("\"blocked\""));
}

#[test]
fn database_not_applicable_without_db_or_usage_log_and_bad_plans_refused() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("install");
    legacy_install(&root, false);
    std::fs::remove_file(root.join("models.db")).unwrap();
    std::fs::remove_file(root.join("logs/usage.log")).unwrap();
    let req = |mode, state: &Path| PlanRequest {
        root: root.clone(),
        mode,
        legacy_port: None,
        backups_dir: d.path().join("backups"),
        state_dir: state.to_path_buf(),
        install_dir: d.path().join("ema"),
        legacy_unit: None,
        ema_unit: None,
    };
    let w = Wizard::at(d.path().join("state"));
    // Side by side, ema's installation may not overlap what the legacy system owns.
    let mut bad = req(Mode::SideBySide, w.dir());
    bad.install_dir = root.join("models/ema");
    let e = w.plan(&bad, false).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("--install-dir"), "{e}");
    let st = w.plan(&req(Mode::SideBySide, w.dir()), false).unwrap();
    let p = st.plan.unwrap();
    assert_eq!(
        p.store.as_deref(),
        Some(d.path().join("ema/models").as_path())
    );
    assert_eq!(
        p.enhanced_config,
        d.path().join("ema/config/enhanced_model_config.json")
    );
    let w = Wizard::at(d.path().join("state2"));
    // The state must not live where a rollback restores.
    let inside = Wizard::at(root.join("models/.state"));
    let e = inside
        .plan(&req(Mode::InPlace, inside.dir()), false)
        .unwrap_err();
    assert!(e.to_string().contains("rollback restores"), "{e}");
    let st = w.plan(&req(Mode::InPlace, w.dir()), false).unwrap();
    assert_eq!(st.plan.unwrap().legacy_api_port, DEFAULT_LEGACY_PORT);
    // Planned again with a port nothing uses (8000 may be taken on this machine): the same install, same state.
    let mut again = req(Mode::InPlace, w.dir());
    again.legacy_port = Some(free_port());
    w.plan(&again, false).unwrap();
    run(&w, "backup");
    assert_eq!(run(&w, "services_stopped").state, StepState::Done);
    w.confirm("plan_reviewed", "read", false).unwrap();
    assert_eq!(run(&w, "database_migrated").state, StepState::NotApplicable);
}

#[test]
fn features_working_fails_with_the_hub_s_reason_when_the_face_s_starter_fails() {
    let d = tempfile::tempdir().unwrap();
    let w = planned(d.path());
    let mut e = env();
    e.sample_hub = Some(SampleHubStarter::new(|store: &Path| {
        assert!(
            store.is_dir(),
            "the sample hub store exists before the hub starts"
        );
        Err(crate::engine::error::EmaError::Other(
            "cannot listen on 127.0.0.1 for the sample hub: refused by this test".into(),
        ))
    }));
    let r = w.run("features_working", &e).unwrap();
    assert_eq!(r.state, StepState::Failed, "{r:?}");
    let details = r.details.clone().unwrap();
    assert!(
        details.contains("sample_hub") && details.contains("refused by this test"),
        "{details}"
    );
    let log: Vec<&str> = r.log.iter().map(|l| l.text.as_str()).collect();
    assert!(
        log.iter()
            .any(|l| l.starts_with("passed temporary_store: ")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.starts_with("failed sample_hub: ")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("not run download_resume: ")),
        "{log:?}"
    );
}
