//! Console snapshot tests: every pane (TestBackend + insta), the wide layout, the "too small" screen, the help
//! overlay and the dialogs, and what the frame conveys without colour. Pane key handling is tested in each pane's
//! module, shared fixtures live in [`fixtures`].

pub(crate) mod fixtures;

use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Modifier;

use super::action::Action;
use super::app::App;
use super::dialogs;
use super::panes::Pane;
use super::state::ConsoleState;
use super::theme::Theme;
use fixtures::{app, chars, demo_state, expect_actions, press, render, screen};

#[test]
fn snapshots_every_pane_at_80x24_and_120x40() {
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        for p in Pane::ALL {
            let mut a = app();
            a.focus = p;
            if p == Pane::Fallback {
                a.fallback.target = Some("ema-demo/tiny-roberta".into());
            }
            if p == Pane::Migration {
                a.migration.pos.selected = 0;
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
    let text: String = dialogs::help_lines(&a.theme)
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

/// The first screen row whose text contains `needle`.
fn row_containing(buf: &Buffer, needle: &str) -> u16 {
    (0..buf.area.height)
        .find(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, *y)].symbol())
                .collect::<String>()
                .contains(needle)
        })
        .unwrap()
}

#[test]
fn meaning_is_not_carried_by_colour_alone() {
    let mut a = App::new(demo_state(), Theme::monochrome());
    let t = render(&mut a, 120, 40);
    let buf = t.backend().buffer();
    // The selected row is REVERSED, and statuses have symbols.
    let row = row_containing(buf, "ema-demo/tiny-bert");
    assert!(buf[(5, row)].modifier.contains(Modifier::REVERSED));
    let s = screen(&t);
    for sym in ["✓", "↓", "…", "✗"] {
        assert!(s.contains(sym), "{sym} missing:\n{s}");
    }
    // In colour, a corrupted model is red.
    let mut a = app();
    let t = render(&mut a, 120, 40);
    let buf = t.backend().buffer();
    let row = row_containing(buf, "tiny-t5");
    assert_eq!(buf[(1, row)].symbol(), "✗");
    assert_eq!(buf[(1, row)].fg, a.theme.error.fg.unwrap());
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
    expect_actions(
        &mut a,
        KeyCode::Char('y'),
        vec![Action::Quit { confirmed: true }],
    );
    assert!(a.quit);

    let mut idle = App::new(ConsoleState::default(), Theme::monochrome());
    assert_eq!(
        idle.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        vec![Action::Quit { confirmed: true }]
    );
}

/// Two saved recommendations (one a configuration change, one a manual cleanup).
fn two_recommendations() -> Vec<crate::engine::advice::Recommendation> {
    use crate::engine::advice::{Recommendation, Takes};
    vec![
        Recommendation {
            id: "downloads.connections_per_file".into(),
            title: "Use 8 parallel connections per large file".into(),
            evidence: vec!["one connection 10.0 MB/s".into()],
            key: Some("downloads.connections_per_file".into()),
            from: Some(4.into()),
            to: Some(8.into()),
            takes: Takes::Restart,
            action: None,
        },
        Recommendation {
            id: "storage.cleanup".into(),
            title: "Free space in the store".into(),
            evidence: vec![],
            key: None,
            from: None,
            to: None,
            takes: Takes::Manual,
            action: Some("remove models no longer used".into()),
        },
    ]
}

#[test]
fn snapshot_health_with_recommendations_and_the_key_that_applies_the_selected_one() {
    use crate::tui::state::RecommendationFacts;
    let mut a = app();
    a.state.recommendations = RecommendationFacts::Ready(two_recommendations());
    press(&mut a, KeyCode::Char('3'));
    let t = render(&mut a, 120, 40);
    let s = screen(&t);
    assert!(s.contains("recommendations 2 pending"), "{s}");
    assert!(
        s.contains("▸ downloads.connections_per_file: 4 → 8 · restart"),
        "{s}"
    );
    insta::assert_snapshot!("pane_health_recommendations_120x40", s);
    assert_eq!(
        press(&mut a, KeyCode::Char('o')),
        vec![Action::ApplyRecommendation(
            "downloads.connections_per_file".into()
        )]
    );
    // The manual one has nothing to apply.
    assert!(press(&mut a, KeyCode::Char(']')).is_empty());
    assert!(press(&mut a, KeyCode::Char('o')).is_empty());
    // Attached: the section says it is not available.
    a.state.recommendations = RecommendationFacts::Unavailable(
        "performance recommendations is not available when attached to http://h:1".into(),
    );
    let s = screen(&render(&mut a, 120, 40));
    assert!(s.contains("not available when attached"), "{s}");
}

#[test]
fn snapshot_health_with_the_analytics_summary() {
    use crate::engine::analytics::report::{AnalyticsSummary, DownloadFigures, FallbackFigures};
    use crate::tui::state::AnalyticsFacts;
    let mut a = app();
    a.state.analytics = AnalyticsFacts::Ready(Box::new(AnalyticsSummary {
        database: "sqlite:///cache/analytics.db".into(),
        schema_version: 1,
        since_ms: Some(0),
        events: 40,
        top_by_requests: vec![],
        top_by_bytes: vec![],
        fallback: FallbackFigures {
            requests: 12,
            offered: 4,
            taken: 3,
            mock_served: 0,
            rate: Some(0.25),
            substitutes: vec![],
        },
        downloads: DownloadFigures {
            started: 4,
            completed: 3,
            failed: 1,
            success_rate: Some(0.75),
            bytes: 60 << 20,
            ..Default::default()
        },
        alerts_by_kind: vec![],
        verifications_by_result: vec![],
        dropped_total: 7,
        dropped_by_kind: vec![],
    }));
    press(&mut a, KeyCode::Char('3'));
    let t = render(&mut a, 120, 40);
    let s = screen(&t);
    assert!(
        s.contains(
            "24h: 12 requests · fallback 25% · downloads 3 ok 1 failed (75%) · 63 MB · dropped 7"
        ),
        "{s}"
    );
    insta::assert_snapshot!("pane_health_analytics_120x40", s);
}
