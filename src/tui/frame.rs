//! The frame around the panes: the layout (one pane, or two side by side on wide terminals), the tabs, the message
//! line with the focused pane's key hints, the status bar, and the "terminal too small" screen. Draws on demand from
//! the [`App`]; only the rows that fit are built, so thousands of models cost what a screenful costs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Paragraph, Wrap};

use super::app::App;
use super::component::DrawCtx;
use super::dialogs::{draw_confirm, draw_help};
use super::panes::Pane;
use super::units::human_rate;
use super::widgets::severity_style;

/// The smallest terminal the console draws in; below it, a "too small" screen.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Draw the whole console.
pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, app, area);
        return;
    }
    let [tabs, body, msg, status] = area.layout(&Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(10),
        Constraint::Length(1),
        Constraint::Length(1),
    ]));
    draw_tabs(frame, app, tabs);
    let panes = app.visible_panes(area.width);
    if panes.len() == 2 {
        let [l, r] = body.layout(&Layout::horizontal([
            Constraint::Percentage(55),
            Constraint::Percentage(45),
        ]));
        draw_pane(frame, app, panes[0], l);
        draw_pane(frame, app, panes[1], r);
    } else {
        draw_pane(frame, app, panes[0], body);
    }
    draw_message(frame, app, msg);
    draw_status(frame, app, status);
    if app.help {
        draw_help(frame, app, body);
    }
    if app.confirm.is_some() {
        draw_confirm(frame, app, body);
    }
}

fn draw_too_small(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let text = Text::from(vec![
        Line::styled("Terminal too small", t.error),
        Line::raw(format!(
            "{}×{} — ema needs at least {MIN_WIDTH}×{MIN_HEIGHT}.",
            area.width, area.height
        )),
        Line::raw("Enlarge the window (or the font smaller); q quits."),
    ]);
    let h = 3.min(area.height);
    let y = area.y + area.height.saturating_sub(h) / 2;
    frame.render_widget(
        Paragraph::new(text).centered().wrap(Wrap { trim: true }),
        Rect::new(area.x, y, area.width, area.height - (y - area.y)),
    );
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut spans = vec![Span::styled(" ema ", t.title.add_modifier(Modifier::BOLD))];
    for p in Pane::ALL {
        let mut label = format!(" {} {} ", p.index() + 1, p.title());
        if p == Pane::Health {
            let n = app.state.unacknowledged_alerts();
            if n > 0 {
                label = format!(" {} {} ({n}) ", p.index() + 1, p.title());
            }
        }
        if p == Pane::Downloads {
            let n = app.state.active_downloads();
            if n > 0 {
                label = format!(" {} {} ({n}) ", p.index() + 1, p.title());
            }
        }
        let style = if p == app.focus { t.selected } else { t.text };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Line::from(spans), area);
}

fn draw_pane(frame: &mut Frame, app: &mut App, pane: Pane, area: Rect) {
    // The Fallback pane is about the model selected in Models unless it was opened on one.
    let target = if pane == Pane::Fallback {
        app.fallback_target()
    } else {
        None
    };
    let ctx = DrawCtx {
        theme: &app.theme,
        state: &app.state,
        focused: app.focus == pane,
    };
    let page = match pane {
        Pane::Models => app.models.draw(frame, &ctx, area),
        Pane::Downloads => app.downloads.draw(frame, &ctx, area),
        Pane::Health => app.health.draw(frame, &ctx, area),
        Pane::Fallback => app.fallback.draw(frame, &ctx, area, target),
        Pane::Migration => app.migration.draw(frame, &ctx, area),
    };
    if let Some(p) = page {
        app.page = p;
    }
}

fn draw_message(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let line = match &app.message {
        Some((sev, m)) => Line::styled(format!(" {m}"), severity_style(t, *sev)),
        None => {
            // A hint generated from the focused pane's keys.
            let keys: Vec<String> = app
                .focus
                .keys()
                .iter()
                .map(|k| format!("{} {}", k.keys, k.hint))
                .collect();
            Line::styled(format!(" {} · ? help", keys.join(" · ")), t.dim)
        }
    };
    frame.render_widget(line, area);
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let hub = &app.state.hub;
    let online = if hub.offline_mode {
        "○ offline (HF_HUB_OFFLINE)"
    } else {
        match hub.reachable {
            Some(true) => "● online",
            Some(false) => "○ hub unreachable",
            None => "◌ checking hub",
        }
    };
    // Attached to a server: which one, and whether its event stream is up, instead of the hub.
    let place = match &app.state.link {
        Some(l) if l.connected => format!("⇄ attached to {}", l.server),
        Some(l) => format!("✗ disconnected from {}, reconnecting…", l.server),
        None => format!("{online} {}", hub.endpoint),
    };
    let n = app.state.active_downloads();
    let mut text = format!(
        " {place} │ ↓ {n} · {} │ ⚠ {} alerts",
        human_rate(app.state.total_rate()),
        app.state.unacknowledged_alerts(),
    );
    if area.width >= 100 {
        text.push_str(&format!(" │ {} models", app.state.models.len()));
    }
    text.push_str(" │ ? help · q quit");
    frame.render_widget(Paragraph::new(text).style(t.status_bar), area);
}
