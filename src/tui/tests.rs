//! Console tests: snapshots of every pane (TestBackend + insta), key handling, dialogs, and the async loop driving a
//! real engine over a temporary store.

use std::path::PathBuf;
use std::sync::Arc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Modifier;

use crate::engine::events::{Availability, Event, HealthState, Severity};
use crate::engine::inventory::ModelInfo;
use crate::engine::migration::{LogLine, MigrationState, StepState};
use crate::engine::store::{FileRecord, ModelMetadata, RepoId, VerificationState};

use super::action::Action;
use super::app::{App, Pane};
use super::state::{AlertView, ConsoleState, HubFacts, StorageFacts};
use super::theme::Theme;
use super::ui;

const T0: &str = "2026-11-24T09:30:00Z";

fn meta(id: &str, task: &str, files: &[(&str, u64)], v: VerificationState) -> ModelMetadata {
    ModelMetadata {
        schema_version: 1,
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
        created_at: T0.into(),
        updated_at: T0.into(),
        last_verified_at: (v == VerificationState::Verified).then(|| T0.into()),
        verification: v,
    }
}

fn model(
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
            "plan_reviewed" | "team_notified" => r.state = StepState::Done,
            "downtime_scheduled" => r.state = StepState::Skipped,
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
    st.migration = mig;
    st
}

fn app() -> App {
    App::new(demo_state(), Theme::load("dark", false, None).unwrap())
}

fn render(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    t
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn press(app: &mut App, c: KeyCode) -> Vec<Action> {
    app.on_key(key(c))
}

fn chars(app: &mut App, s: &str) -> Vec<Action> {
    s.chars()
        .flat_map(|c| press(app, KeyCode::Char(c)))
        .collect()
}

fn screen(t: &Terminal<TestBackend>) -> String {
    t.backend().to_string()
}

#[test]
fn snapshots_every_pane_at_80x24_and_120x40() {
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        for p in Pane::ALL {
            let mut a = app();
            a.focus = p;
            if p == Pane::Fallback {
                a.fallback_for = Some("ema-demo/tiny-roberta".into());
            }
            if p == Pane::Migration {
                a.migration_pos.selected = 0;
            }
            let t = render(&mut a, w, h);
            insta::assert_snapshot!(
                format!("pane_{}_{w}x{h}", p.title().to_lowercase()),
                screen(&t)
            );
        }
    }
}

#[test]
fn snapshot_wide_terminal_shows_two_panes() {
    let mut a = app();
    press(&mut a, KeyCode::Char('3'));
    let t = render(&mut a, 170, 30);
    let s = screen(&t);
    assert!(s.contains("1 Models") && s.contains("3 Health"), "{s}");
    insta::assert_snapshot!("wide_models_and_health_170x30", s);
}

#[test]
fn snapshot_too_small() {
    let mut a = app();
    let t = render(&mut a, 70, 20);
    let s = screen(&t);
    assert!(
        s.contains("Terminal too small") && s.contains("70×20"),
        "{s}"
    );
    insta::assert_snapshot!("too_small_70x20", s);
    // Resizing back restores the console.
    let t = render(&mut a, 80, 24);
    assert!(screen(&t).contains("1 Models"));
}

#[test]
fn snapshot_help_overlay_lists_every_key() {
    let mut a = app();
    press(&mut a, KeyCode::Char('?'));
    assert!(a.help);
    let t = render(&mut a, 120, 40);
    insta::assert_snapshot!("help_120x40", screen(&t));
    // Generated from the key lists: every key of every pane is in the overlay's lines.
    let text: String = ui::help_lines(&a.theme)
        .iter()
        .map(|l| l.to_string() + "\n")
        .collect();
    for p in Pane::ALL {
        for k in p.keys() {
            assert!(text.contains(k.keys) && text.contains(k.action), "{k:?}");
        }
    }
    press(&mut a, KeyCode::Esc);
    assert!(!a.help);
}

#[test]
fn snapshot_details_filter_and_delete_dialog() {
    let mut a = app();
    press(&mut a, KeyCode::Enter);
    let t = render(&mut a, 120, 40);
    let s = screen(&t);
    assert!(
        s.contains("model.safetensors") && s.contains("sha256:9f86d081"),
        "{s}"
    );
    insta::assert_snapshot!("models_details_120x40", s);

    let mut a = app();
    chars(&mut a, "/t5");
    let t = render(&mut a, 80, 24);
    insta::assert_snapshot!("models_filter_80x24", screen(&t));

    let mut a = app();
    press(&mut a, KeyCode::Char('x'));
    let t = render(&mut a, 80, 24);
    let s = screen(&t);
    assert!(s.contains("Delete ema-demo/tiny-bert"), "{s}");
    insta::assert_snapshot!("delete_dialog_80x24", s);
}

#[test]
fn meaning_is_not_carried_by_colour_alone() {
    let mut a = App::new(demo_state(), Theme::monochrome());
    let t = render(&mut a, 120, 40);
    let buf = t.backend().buffer();
    // The selected row is REVERSED, and statuses have symbols.
    let row = (0..buf.area.height)
        .find(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, *y)].symbol())
                .collect::<String>()
                .contains("ema-demo/tiny-bert")
        })
        .unwrap();
    assert!(buf[(5, row)].modifier.contains(Modifier::REVERSED));
    let s = screen(&t);
    for sym in ["✓", "↓", "…", "✗"] {
        assert!(s.contains(sym), "{sym} missing:\n{s}");
    }
    // In colour, a corrupted model is red.
    let mut a = app();
    let t = render(&mut a, 120, 40);
    let buf = t.backend().buffer();
    let row = (0..buf.area.height)
        .find(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, *y)].symbol())
                .collect::<String>()
                .contains("tiny-t5")
        })
        .unwrap();
    assert_eq!(buf[(1, row)].symbol(), "✗");
    assert_eq!(buf[(1, row)].fg, a.theme.error.fg.unwrap());
}

#[test]
fn navigation_keys_move_and_switch_panes() {
    let mut a = app();
    assert_eq!(
        a.selected_model().unwrap().id.as_str(),
        "ema-demo/tiny-bert"
    );
    press(&mut a, KeyCode::Char('j'));
    press(&mut a, KeyCode::Down);
    assert_eq!(
        a.selected_model().unwrap().id.as_str(),
        "ema-demo/tiny-gpt2"
    );
    press(&mut a, KeyCode::Char('G'));
    assert_eq!(a.selected_model().unwrap().id.as_str(), "ema-demo/tiny-t5");
    press(&mut a, KeyCode::Char('k'));
    assert_eq!(
        a.selected_model().unwrap().id.as_str(),
        "ema-demo/tiny-roberta"
    );
    press(&mut a, KeyCode::Home);
    assert_eq!(a.models_pos.selected, 0);
    press(&mut a, KeyCode::Up);
    assert_eq!(a.models_pos.selected, 0);
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.focus, Pane::Downloads);
    press(&mut a, KeyCode::BackTab);
    press(&mut a, KeyCode::BackTab);
    assert_eq!(a.focus, Pane::Migration);
    press(&mut a, KeyCode::Char('3'));
    assert_eq!(a.focus, Pane::Health);
    press(&mut a, KeyCode::Char('1'));
    // Sort cycles and reverses.
    press(&mut a, KeyCode::Char('s'));
    assert_eq!(a.sort.as_str(), "task");
    press(&mut a, KeyCode::Char('s'));
    assert_eq!(a.sort.as_str(), "size");
    assert_eq!(
        a.selected_model().unwrap().id.as_str(),
        "ema-demo/tiny-bert"
    );
    press(&mut a, KeyCode::Char('g'));
    assert_eq!(a.selected_model().unwrap().id.as_str(), "ema-demo/tiny-t5");
}

#[test]
fn filter_as_you_type() {
    let mut a = app();
    chars(&mut a, "/distil");
    assert!(a.filtering);
    assert_eq!(a.view.len(), 1);
    // Keys go to the filter while it is open, not to actions.
    assert!(chars(&mut a, "q").is_empty());
    assert!(!a.quit);
    press(&mut a, KeyCode::Backspace);
    press(&mut a, KeyCode::Enter);
    assert!(!a.filtering);
    assert_eq!(a.filter.value(), "distil");
    assert_eq!(
        a.selected_model().unwrap().id.as_str(),
        "ema-demo/tiny-distilbert"
    );
    // Filter by task too.
    let mut a = app();
    chars(&mut a, "/text2text");
    assert_eq!(a.view.len(), 1);
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.view.len(), 5);
    assert_eq!(a.filter.value(), "");
}

#[test]
fn delete_asks_first() {
    let mut a = app();
    assert!(press(&mut a, KeyCode::Char('x')).is_empty());
    assert!(a.confirm.is_some());
    // Other keys do nothing while the dialog is open.
    assert!(press(&mut a, KeyCode::Char('j')).is_empty());
    assert!(press(&mut a, KeyCode::Char('n')).is_empty());
    assert!(a.confirm.is_none());
    press(&mut a, KeyCode::Char('x'));
    assert_eq!(
        press(&mut a, KeyCode::Char('y')),
        vec![Action::Delete {
            model_id: "ema-demo/tiny-bert".into(),
            confirmed: true
        }]
    );
}

#[test]
fn model_actions_map_to_engine_requests() {
    let mut a = app();
    press(&mut a, KeyCode::Char('j'));
    press(&mut a, KeyCode::Char('j'));
    assert_eq!(
        press(&mut a, KeyCode::Char('d')),
        vec![Action::Download("ema-demo/tiny-gpt2".into())]
    );
    assert_eq!(
        press(&mut a, KeyCode::Char('v')),
        vec![Action::Verify("ema-demo/tiny-gpt2".into())]
    );
    assert_eq!(
        press(&mut a, KeyCode::Char('r')),
        vec![Action::Repair("ema-demo/tiny-gpt2".into())]
    );
    // f opens the Fallback pane on the model; Enter there uses the top suggestion.
    press(&mut a, KeyCode::Char('j'));
    assert!(press(&mut a, KeyCode::Char('f')).is_empty());
    assert_eq!(a.focus, Pane::Fallback);
    assert_eq!(a.fallback_target().unwrap(), "ema-demo/tiny-roberta");
    let s = a.state.fallback_for("ema-demo/tiny-roberta");
    // Both are the same task and healthy; the closer size ranks first.
    assert_eq!(s[0].model_id, "ema-demo/tiny-distilbert");
    assert!(s[0].score > s[1].score);
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    assert_eq!(a.focus, Pane::Models);
    assert_eq!(
        a.selected_model().unwrap().id.as_str(),
        "ema-demo/tiny-distilbert"
    );
    press(&mut a, KeyCode::Char('4'));
    assert_eq!(
        press(&mut a, KeyCode::Char('d')),
        vec![Action::Download("ema-demo/tiny-roberta".into())]
    );
}

#[test]
fn downloads_pause_resume_cancel() {
    let mut a = app();
    press(&mut a, KeyCode::Char('2'));
    assert_eq!(
        press(&mut a, KeyCode::Char('p')),
        vec![Action::Pause("ema-demo/tiny-gpt2".into())]
    );
    assert_eq!(
        press(&mut a, KeyCode::Char('u')),
        vec![Action::Resume("ema-demo/tiny-gpt2".into())]
    );
    assert!(press(&mut a, KeyCode::Char('c')).is_empty());
    assert_eq!(
        press(&mut a, KeyCode::Enter),
        vec![Action::Cancel {
            model_id: "ema-demo/tiny-gpt2".into(),
            confirmed: true
        }]
    );
    press(&mut a, KeyCode::Char('j'));
    assert_eq!(
        press(&mut a, KeyCode::Char('p')),
        vec![Action::Pause("ema-demo/tiny-roberta".into())]
    );
}

#[test]
fn health_acknowledge() {
    let mut a = app();
    press(&mut a, KeyCode::Char('3'));
    let before = a.state.unacknowledged_alerts();
    assert!(before >= 2);
    // Critical first.
    assert_eq!(a.state.alerts[0].severity, Severity::Critical);
    press(&mut a, KeyCode::Char('a'));
    assert_eq!(a.state.unacknowledged_alerts(), before - 1);
    press(&mut a, KeyCode::Char('A'));
    assert_eq!(a.state.unacknowledged_alerts(), 0);
}

#[test]
fn quit_asks_when_downloads_are_active() {
    let mut a = app();
    assert!(a.state.active_downloads() > 0);
    assert!(press(&mut a, KeyCode::Char('q')).is_empty());
    let q = a.confirm.clone().unwrap();
    assert!(q.question.contains("download(s) are active"), "{q:?}");
    let t = render(&mut a, 80, 24);
    insta::assert_snapshot!("quit_dialog_80x24", screen(&t));
    press(&mut a, KeyCode::Esc);
    assert!(!a.quit);
    press(&mut a, KeyCode::Char('q'));
    assert_eq!(
        press(&mut a, KeyCode::Char('y')),
        vec![Action::Quit { confirmed: true }]
    );
    assert!(a.quit);

    let mut idle = App::new(ConsoleState::default(), Theme::monochrome());
    assert_eq!(
        idle.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        vec![Action::Quit { confirmed: true }]
    );
}

#[test]
fn migration_keys_respect_step_kinds_and_confirmation() {
    let mut a = app();
    press(&mut a, KeyCode::Char('5'));
    // Step 0 (system requirements) is automatic.
    assert_eq!(
        press(&mut a, KeyCode::Enter),
        vec![Action::MigrationRun {
            step: "system_requirements".into(),
            confirmed: false
        }]
    );
    // Manual steps are confirmed, not run.
    press(&mut a, KeyCode::Char('j'));
    press(&mut a, KeyCode::Char('j'));
    assert!(press(&mut a, KeyCode::Char('r')).is_empty());
    assert!(a.message.as_ref().unwrap().1.contains("manual"));
    assert_eq!(
        press(&mut a, KeyCode::Char('m')),
        vec![Action::MigrationMarkDone {
            step: "plan_reviewed".into(),
            confirmed: false
        }]
    );
    // "Services stopped" asks first.
    for _ in 0..4 {
        press(&mut a, KeyCode::Char('j'));
    }
    assert!(press(&mut a, KeyCode::Char('m')).is_empty());
    assert!(
        a.confirm
            .as_ref()
            .unwrap()
            .question
            .contains("Services stopped")
    );
    assert_eq!(
        press(&mut a, KeyCode::Char('y')),
        vec![Action::MigrationMarkDone {
            step: "services_stopped".into(),
            confirmed: true
        }]
    );
    assert_eq!(
        press(&mut a, KeyCode::Char('s')),
        vec![Action::MigrationSkip("services_stopped".into())]
    );
    assert_eq!(
        press(&mut a, KeyCode::Char('t')),
        vec![Action::MigrationRetry("services_stopped".into())]
    );
}

#[test]
fn list_window_keeps_selection_visible_with_5000_models() {
    let mut st = ConsoleState::default();
    st.set_models(
        (0..5000)
            .map(|i| {
                model(
                    &format!("org/model-{i:05}"),
                    Some(meta(
                        &format!("org/model-{i:05}"),
                        "text-generation",
                        &[("model.safetensors", 1000 + i as u64)],
                        VerificationState::Verified,
                    )),
                    Availability::Available,
                    HealthState::Healthy,
                    false,
                    &[],
                )
            })
            .collect(),
    );
    let mut a = App::new(st, Theme::load("dark", false, None).unwrap());
    press(&mut a, KeyCode::Char('G'));
    let t = render(&mut a, 120, 40);
    assert!(screen(&t).contains("org/model-04999"));
    press(&mut a, KeyCode::PageUp);
    press(&mut a, KeyCode::PageUp);
    let t = render(&mut a, 120, 40);
    let s = screen(&t);
    let sel = a.selected_model().unwrap().id.to_string();
    assert!(s.contains(&sel) && !s.contains("org/model-04999"), "{s}");
    chars(&mut a, "/model-0420");
    assert_eq!(a.view.len(), 10);
}

/// The loop itself, over a real engine and a temporary store: keys in, state persisted, clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_marks_a_step_done_and_persists_it_across_restarts() {
    use super::bridge::{ConsoleBackend, EngineBackend};
    use crate::engine::Engine;
    use crate::engine::config::hub_env::HubEnv;
    use crate::engine::config::{Config, ConfigSource, LoadedConfig};

    let d = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.models_directory = d.path().join("models");
    config.storage.wanted_models = vec!["org/wanted".into()];
    let loaded = LoadedConfig {
        config: config.clone(),
        path: None,
        source: ConfigSource::Defaults,
        searched: vec![],
    };
    let hub = HubEnv {
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        token_source: None,
        offline: true,
    };
    let make = || {
        Arc::new(EngineBackend::new(
            Engine::new(config.clone(), hub.clone()).unwrap(),
            loaded.clone(),
            None,
        ))
    };
    let backend = make();
    let st = super::initial_state(backend.as_ref()).await.unwrap();
    assert_eq!(st.models.len(), 1);
    let mut app = App::new(st, Theme::monochrome());
    let keys: Vec<std::io::Result<TermEvent>> = ['5', 'j', 'j', 'm', 'j', 's', 'q']
        .into_iter()
        .map(|c| Ok(TermEvent::Key(key(KeyCode::Char(c)))))
        .collect();
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        super::runtime::run(
            &mut term,
            &mut app,
            backend.clone(),
            futures::stream::iter(keys),
        ),
    )
    .await
    .expect("the loop ends")
    .unwrap();
    assert!(app.quit);
    assert!(screen(&term).contains("5 Migration"));

    // A restart reads the same state back.
    let again = make().migration_load().unwrap();
    assert_eq!(
        again.record("plan_reviewed").unwrap().state,
        StepState::Done
    );
    assert_eq!(
        again.record("downtime_scheduled").unwrap().state,
        StepState::Skipped
    );
    assert_eq!(
        again.record("team_notified").unwrap().state,
        StepState::Pending
    );
}

#[test]
fn readme_keys_table_matches_the_key_lists() {
    let readme = include_str!("../../README.md");
    let mut all: Vec<(&str, &super::app::KeyHelp)> = super::app::GLOBAL_KEYS
        .iter()
        .map(|k| ("Everywhere", k))
        .collect();
    let titles = [
        "1 Models",
        "2 Downloads",
        "3 Health",
        "4 Fallback",
        "5 Migration",
    ];
    for (p, t) in Pane::ALL.iter().zip(titles) {
        all.extend(p.keys().iter().map(|k| (t, k)));
    }
    for (t, k) in all {
        let row = format!("| {t} | `{}` | {} |", k.keys, k.action);
        assert!(readme.contains(&row), "README's keys table lacks: {row}");
    }
}

#[test]
fn hub_facts_give_missing_models_a_task_size_and_fallbacks() {
    let mut st = demo_state();
    // tiny-gpt2 is wanted but not in the store: no task, so no suggestions yet.
    assert!(st.fallback_for("ema-demo/tiny-gpt2").is_empty());
    st.set_remote(
        "ema-demo/tiny-gpt2".into(),
        super::state::RemoteModel {
            pipeline_tag: Some("text-classification".into()),
            total_size: 10_000_000,
            commit: "c".repeat(40),
        },
    );
    let s = st.fallback_for("ema-demo/tiny-gpt2");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].model_id, "ema-demo/tiny-distilbert");
    let mut a = App::new(st, Theme::monochrome());
    chars(&mut a, "/classification");
    assert_eq!(a.view.len(), 4);
    let t = render(&mut a, 120, 40);
    assert!(
        screen(&t).lines().any(|l| l.contains("tiny-gpt2")
            && l.contains("text-classification")
            && l.contains("10 MB")),
        "{}",
        screen(&t)
    );
}

#[test]
fn watch_prompt_adds_a_repo_id() {
    let mut a = app();
    assert!(press(&mut a, KeyCode::Char('w')).is_empty());
    assert!(a.watch_input.is_some());
    // Keys go to the prompt: not a download, not a quit.
    assert!(chars(&mut a, "org/bad name").is_empty());
    assert!(press(&mut a, KeyCode::Enter).is_empty());
    assert!(a.message.as_ref().unwrap().1.contains("invalid repo id"));
    for _ in 0.."bad name".len() {
        press(&mut a, KeyCode::Backspace);
    }
    chars(&mut a, "new-model");
    let t = render(&mut a, 80, 24);
    assert!(screen(&t).contains("watch: org/new-model"));
    assert_eq!(
        press(&mut a, KeyCode::Enter),
        vec![Action::Watch("org/new-model".into())]
    );
    assert!(a.watch_input.is_none());
    press(&mut a, KeyCode::Char('w'));
    press(&mut a, KeyCode::Esc);
    assert!(a.watch_input.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_saves_the_watch_list_in_the_configuration_file() {
    use super::bridge::{ConsoleBackend, EngineBackend};
    use crate::engine::Engine;
    use crate::engine::config::{self, hub_env::HubEnv};

    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.json");
    std::fs::write(
        &cfg,
        serde_json::json!({"storage": {"models_directory": d.path().join("m"), "wanted_models": ["a/one"]}})
            .to_string(),
    )
    .unwrap();
    let loaded = config::load(Some(&cfg)).unwrap();
    let hub = HubEnv {
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        token_source: None,
        offline: true,
    };
    let b = EngineBackend::new(
        Engine::new(loaded.config.clone(), hub).unwrap(),
        loaded,
        Some(cfg.clone()),
    );
    b.watch("b/two".into()).await.unwrap();
    assert!(b.watch("b/two".into()).await.unwrap().contains("already"));
    assert!(b.watch("bad id".into()).await.is_err());
    let again = config::load(Some(&cfg)).unwrap();
    assert_eq!(again.config.storage.wanted_models, vec!["a/one", "b/two"]);
    let ids: Vec<String> = b
        .models()
        .await
        .unwrap()
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    assert_eq!(ids, vec!["a/one", "b/two"]);
}
