//! Shared test fixtures for the console: a realistic demo state, an app over it, and helpers to press keys and render
//! frames on a `TestBackend`.

use std::path::PathBuf;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::events::{Availability, Event, HealthState, Severity};
use crate::engine::fallback::{Mock, Offer, Report, Requirements, Source, UsageHints, Via};
use crate::engine::inventory::ModelInfo;
use crate::engine::migration::{
    LogLine, MigrationPlan, MigrationState, Mode, PlannedModel, StepState,
};
use crate::engine::store::{FileRecord, ModelMetadata, RepoId, VerificationState};

use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::frame;
use crate::tui::state::ConsoleState;
use crate::tui::state::alerts::AlertView;
use crate::tui::state::{HubFacts, StorageFacts};
use crate::tui::theme::Theme;

pub(crate) const T0: &str = "2026-11-24T09:30:00Z";

pub(crate) fn meta(
    id: &str,
    task: &str,
    files: &[(&str, u64)],
    v: VerificationState,
) -> ModelMetadata {
    ModelMetadata {
        schema_version: 1,
        legacy_location: None,
        repo_id: RepoId::parse(id).unwrap(),
        requested_revision: "main".into(),
        commit: Some(format!("{:0<40}", id.len() * 1234567)),
        endpoint: Some("http://127.0.0.1:8080".into()),
        files: files
            .iter()
            .map(|(p, s)| FileRecord {
                path: p.to_string(),
                size: *s,
                sha256: p.ends_with(".safetensors").then(|| {
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()
                }),
                git_sha1: Some("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391".into()),
                lfs: p.ends_with(".safetensors"),
                verified_at: None,
                mtime_ns: None,
            })
            .collect(),
        total_size: files.iter().map(|f| f.1).sum(),
        pipeline_tag: Some(task.into()),
        library_name: Some("transformers".into()),
        tags: vec!["demo".into()],
        parameters: None,
        facts: Default::default(),
        created_at: T0.into(),
        updated_at: T0.into(),
        last_verified_at: (v == VerificationState::Verified).then(|| T0.into()),
        verification: v,
    }
}

pub(crate) fn model(
    id: &str,
    m: Option<ModelMetadata>,
    a: Availability,
    h: HealthState,
    wanted: bool,
    problems: &[&str],
) -> ModelInfo {
    ModelInfo {
        id: RepoId::parse(id).unwrap(),
        wanted,
        bytes_on_disk: m.as_ref().map(|m| m.total_size).unwrap_or(0),
        metadata: m,
        availability: a,
        health: h,
        problems: problems.iter().map(|s| s.to_string()).collect(),
    }
}

/// A realistic console: five models in every state, two downloads, alerts, a migration under way.
pub(crate) fn demo_state() -> ConsoleState {
    use VerificationState::*;
    let mut st = ConsoleState {
        store_root: PathBuf::from("/srv/models"),
        hub: HubFacts {
            endpoint: "http://127.0.0.1:8080".into(),
            offline_mode: false,
            reachable: Some(true),
        },
        ..Default::default()
    };
    st.set_models(vec![
        model(
            "ema-demo/tiny-bert",
            Some(meta(
                "ema-demo/tiny-bert",
                "text-classification",
                &[
                    ("config.json", 612),
                    ("model.safetensors", 17_563_920),
                    ("tokenizer.json", 711_396),
                ],
                Verified,
            )),
            Availability::Available,
            HealthState::Healthy,
            true,
            &[],
        ),
        model(
            "ema-demo/tiny-distilbert",
            Some(meta(
                "ema-demo/tiny-distilbert",
                "text-classification",
                &[("config.json", 540), ("model.safetensors", 9_210_000)],
                Verified,
            )),
            Availability::Available,
            HealthState::Healthy,
            false,
            &[],
        ),
        model(
            "ema-demo/tiny-gpt2",
            None,
            Availability::Missing,
            HealthState::Missing,
            true,
            &["not in the store; download it with `ema download ema-demo/tiny-gpt2`"],
        ),
        model(
            "ema-demo/tiny-roberta",
            Some(meta(
                "ema-demo/tiny-roberta",
                "text-classification",
                &[("config.json", 580), ("model.safetensors", 12_400_000)],
                Unverified,
            )),
            Availability::Incomplete,
            HealthState::Incomplete,
            true,
            &["1 of 2 files missing; resume with `ema download ema-demo/tiny-roberta`"],
        ),
        model(
            "ema-demo/tiny-t5",
            Some(meta(
                "ema-demo/tiny-t5",
                "text2text-generation",
                &[("config.json", 700), ("model.safetensors", 31_000_000)],
                Failed,
            )),
            Availability::Corrupted,
            HealthState::Corrupted,
            false,
            &["the last verification found a hash mismatch; repair with `ema repair ema-demo/tiny-t5`"],
        ),
    ]);
    st.set_storage(StorageFacts {
        used_bytes: 71_000_000,
        max_storage_gb: 500.0,
        cleanup_threshold_percent: 90,
        disk_available_bytes: Some(212_000_000_000),
        disk_total_bytes: Some(500_000_000_000),
    });
    for e in [
        Event::DownloadQueued {
            model_id: "ema-demo/tiny-gpt2".into(),
            revision: "main".into(),
            files: 3,
            total_bytes: 24_000_000,
        },
        Event::DownloadStarted {
            model_id: "ema-demo/tiny-gpt2".into(),
            commit: "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c".into(),
        },
        Event::FileVerified {
            model_id: "ema-demo/tiny-gpt2".into(),
            path: "config.json".into(),
            size: 665,
            hash: "x".into(),
        },
        Event::FileProgress {
            model_id: "ema-demo/tiny-gpt2".into(),
            path: "model.safetensors".into(),
            bytes_done: 9_400_000,
            bytes_total: 22_000_000,
        },
        Event::FileProgress {
            model_id: "ema-demo/tiny-gpt2".into(),
            path: "tokenizer.json".into(),
            bytes_done: 0,
            bytes_total: 1_999_335,
        },
        Event::Retry {
            model_id: "ema-demo/tiny-gpt2".into(),
            path: "model.safetensors".into(),
            attempt: 1,
            delay_ms: 1200,
            reason: "HTTP 503 from the hub".into(),
        },
        Event::ModelProgress {
            model_id: "ema-demo/tiny-gpt2".into(),
            bytes_done: 10_080_000,
            bytes_total: 24_000_000,
            files_done: 1,
            files_total: 3,
            progress_percent: 42.0,
            rate_bytes_per_sec: 2_500_000.0,
            eta_seconds: Some(5.6),
        },
        Event::DownloadQueued {
            model_id: "ema-demo/tiny-roberta".into(),
            revision: "main".into(),
            files: 2,
            total_bytes: 12_400_580,
        },
    ] {
        st.apply(&e);
    }
    for (i, r) in [
        0u64, 400_000, 1_200_000, 2_000_000, 2_600_000, 2_400_000, 1_900_000, 2_500_000,
    ]
    .iter()
    .enumerate()
    {
        st.rate_history.push_back(*r + i as u64);
    }
    st.apply(&Event::HealthAlert {
        id: "h1".into(),
        severity: Severity::Warning,
        model_id: Some("ema-demo/tiny-distilbert".into()),
        message: "ema-demo/tiny-distilbert not verified for 26 hours".into(),
        suggested_action: Some("v in the Models pane".into()),
        at: "2026-11-24T08:00:00Z".into(),
    });
    for a in &mut st.alerts {
        if a.derived {
            a.at = T0.into();
        }
    }
    st.alerts.push(AlertView {
        id: "old".into(),
        severity: Severity::Info,
        model_id: None,
        message: "hub was unreachable for 2 minutes".into(),
        suggested_action: None,
        at: "2026-11-23T22:10:00Z".into(),
        count: 3,
        acknowledged: true,
        derived: false,
        resolved: false,
    });
    st.alerts.push(AlertView {
        id: "fixed".into(),
        severity: Severity::Critical,
        model_id: Some("ema-demo/tiny-gpt".into()),
        message: "ema-demo/tiny-gpt was corrupted (model.safetensors)".into(),
        suggested_action: None,
        at: "2026-11-23T21:00:00Z".into(),
        count: 1,
        acknowledged: false,
        derived: false,
        resolved: true,
    });
    let mut mig = MigrationState::default();
    let log = |t: &str| LogLine {
        at: "2026-11-24T09:41:07Z".into(),
        text: t.into(),
    };
    for r in &mut mig.steps {
        match r.id.as_str() {
            "system_requirements" => {
                r.state = StepState::Done;
                r.details = Some("minimums met; 1 below the recommendation".into());
                r.log = vec![
                    log("started"),
                    log("disk: 212.0 GB free at /srv/models (minimum 50 GB, recommended 200 GB)"),
                    log("memory: 15.5 GB (minimum 8 GB, recommended 16 GB)"),
                    log("done"),
                ];
            }
            "backup" => {
                r.state = StepState::Done;
                r.details =
                    Some("backed up to /srv/cache/backups/pre-migration-20261124_094107".into());
            }
            "plan_reviewed" | "team_notified" => {
                r.state = StepState::Done;
                r.note = Some("reviewed with ops".into());
                r.details = Some("confirmed by the operator: reviewed with ops".into());
            }
            "downtime_scheduled" => {
                r.state = StepState::Skipped;
                r.note = Some("no consumers at night".into());
            }
            "database_migrated" => {
                r.state = StepState::Blocked;
                r.details = Some(
                    "needs the analytics import (issue 13), not built yet; found /srv/app/models.db".into(),
                );
            }
            "services_stopped" => {
                r.state = StepState::Failed;
                r.details = Some("interrupted: ema stopped while this step ran; retry it".into());
            }
            _ => {}
        }
    }
    mig.last_backup = Some(PathBuf::from(
        "/srv/cache/backups/pre-migration-20261124_094107",
    ));
    let model = |id: &str, layout: &str, bytes: u64| PlannedModel {
        repo_id: id.into(),
        layout: layout.into(),
        id_source: "_name_or_path in config.json".into(),
        location: PathBuf::from("/srv/app/models").join(id.replace('/', "--")),
        files: 3,
        bytes,
        action: "adopt".into(),
    };
    mig.plan = Some(MigrationPlan {
        root: "/srv/app".into(),
        mode: Mode::InPlace,
        planned_at: "2026-11-24T09:40:00Z".into(),
        legacy_config: Some("/srv/app/config.json".into()),
        models_dir: "/srv/app/models".into(),
        enhanced_config: "/srv/app/config/enhanced_model_config.json".into(),
        legacy_api_port: 8000,
        database: Some("/srv/app/models.db".into()),
        usage_log: None,
        backups_dir: "/srv/cache/backups".into(),
        backup_sources: vec![("models".into(), "/srv/app/models".into())],
        models: vec![
            model("acme/plain-bert", "plain folder", 440_000_000),
            model("acme/cached", "Hugging Face hub cache", 1_300_000_000),
        ],
        unrecognised: vec![],
        total_bytes: 1_740_000_000,
        state_dir: "/root/.local/state/ema/migration".into(),
        install_dir: None,
        store: None,
        legacy_unit: "model-management-service.service".into(),
        ema_unit: "enhanced-model-availability.service".into(),
    });
    st.migration = mig;
    let ids: Vec<String> = st.models.iter().map(|m| m.id.to_string()).collect();
    for id in ids {
        let r = fallback_report(&st, &id);
        st.fallback.insert(id, r);
    }
    st
}

/// The engine's fallback answer for `target` over the fixture models, scored with the engine's own gates and terms
/// (threshold 0.3, no rules, the mock when nothing qualifies).
pub(crate) fn fallback_report(st: &ConsoleState, target: &str) -> Report {
    use crate::engine::fallback::score::{self, Profile, Proof};
    let req = st
        .model(target)
        .and_then(|m| m.metadata.as_ref())
        .map(Profile::from_meta)
        .unwrap_or_else(|| Profile {
            id: target.into(),
            ..Profile::default()
        });
    let mut offers: Vec<Offer> = st
        .models
        .iter()
        .filter(|m| m.id.as_str() != target && m.availability == Availability::Available)
        .filter_map(|m| m.metadata.as_ref())
        .map(Profile::from_meta)
        .filter(|p| score::gate(&req, p, &Requirements::default()).is_ok())
        .map(|p| {
            let (s, reasons) = score::score(&req, &p, Proof::Verified, &UsageHints::default(), 0);
            Offer {
                path: st.store_root.join(p.id.replace('/', "--")),
                model_id: p.id,
                score: s,
                via: Via::Scored,
                rule: None,
                task: p.task,
                size_bytes: p.size_bytes,
                reasons,
                mock: false,
            }
        })
        .filter(|o| o.score >= 0.3)
        .collect();
    offers.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.model_id.cmp(&b.model_id))
    });
    Report {
        requested: target.into(),
        requested_status: st
            .model(target)
            .map(|m| m.availability)
            .unwrap_or(Availability::Missing),
        facts_from: if st.model(target).is_some_and(|m| m.metadata.is_some()) {
            Source::Store
        } else {
            Source::Nothing
        },
        unknown: req.unknown().into_iter().map(String::from).collect(),
        requested_facts: req,
        requirements: Requirements::default(),
        threshold: 0.3,
        scoring: true,
        mock: offers.is_empty().then(|| Mock {
            mock: true,
            model_id: "mock".into(),
            path: None,
            reason: format!("no real model qualifies for {target}"),
        }),
        suggestions: offers,
        below_threshold: Vec::new(),
        refused: Vec::new(),
        task_mismatches: 0,
    }
}

pub(crate) fn app() -> App {
    App::new(demo_state(), Theme::load("dark", false, None).unwrap())
}

pub(crate) fn render(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| frame::draw(f, app)).unwrap();
    t
}

pub(crate) fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

pub(crate) fn press(app: &mut App, c: KeyCode) -> Vec<Action> {
    app.on_key(key(c))
}

pub(crate) fn chars(app: &mut App, s: &str) -> Vec<Action> {
    s.chars()
        .flat_map(|c| press(app, KeyCode::Char(c)))
        .collect()
}

pub(crate) fn screen(t: &Terminal<TestBackend>) -> String {
    t.backend().to_string()
}
/// Press `c` and check the actions it asks the runtime for.
#[track_caller]
pub(crate) fn expect_actions(app: &mut App, c: KeyCode, want: Vec<Action>) {
    assert_eq!(press(app, c), want);
}
