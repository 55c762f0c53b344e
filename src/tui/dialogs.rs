//! The overlays: the confirmation dialog (delete, cancel, quit, risky migration steps) and the help overlay generated
//! from the key lists, with the keys they take while open.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

use crate::engine::events::Severity;

use super::action::Action;
use super::app::{App, Confirm, GLOBAL_KEYS};
use super::component::KeyHelp;
use super::panes::Pane;
use super::theme::Theme;

impl App {
    /// A key while the confirmation dialog `c` is open: yes runs its action, no drops it, anything else keeps it.
    pub(super) fn on_confirm_key(&mut self, c: Confirm, key: KeyEvent) -> Vec<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                let a = c.action.confirmed();
                self.request(a)
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                self.say(Severity::Info, "cancelled");
                Vec::new()
            }
            KeyCode::Char('c') if ctrl => self.request(Action::Quit { confirmed: true }),
            _ => {
                self.confirm = Some(c);
                Vec::new()
            }
        }
    }

    /// A key while the help overlay is open: scroll or close it.
    pub(super) fn on_help_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') => self.help = false,
            KeyCode::Char('j') | KeyCode::Down => self.help_scroll += 1,
            KeyCode::Char('k') | KeyCode::Up => {
                self.help_scroll = self.help_scroll.saturating_sub(1)
            }
            KeyCode::Char('c') if ctrl => {
                return self.request(Action::Quit { confirmed: false });
            }
            _ => {}
        }
        Vec::new()
    }
}

/// A `w`×`h` rectangle in the middle of `area` (clipped to it).
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// The help overlay's lines, generated from the key lists.
pub fn help_lines(t: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut section = |title: &str, keys: &[KeyHelp]| {
        lines.push(Line::styled(title.to_string(), t.header));
        for k in keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<26}", k.keys), t.accent),
                Span::raw(k.action.to_string()),
            ]));
        }
    };
    section("Everywhere", GLOBAL_KEYS);
    for p in Pane::ALL {
        section(&format!("{} {}", p.index() + 1, p.title()), p.keys());
    }
    lines
}

/// The help overlay, scrolled by `app.help_scroll`.
pub fn draw_help(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let lines = help_lines(t);
    let r = centered(area, 84.min(area.width.saturating_sub(2)), area.height);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).scroll((app.help_scroll, 0)).block(
            Block::bordered()
                .border_type(BorderType::Double)
                .border_style(t.border_focused)
                .title(Span::styled(
                    " Keys · j/k scroll · Esc or ? closes ",
                    t.title,
                )),
        ),
        r,
    );
}

/// The confirmation dialog, when one is open.
pub fn draw_confirm(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(c) = &app.confirm else { return };
    let w = 64.min(area.width.saturating_sub(4));
    let r = centered(area, w, 7);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(vec![
            Line::raw(c.question.clone()),
            Line::raw(""),
            Line::styled("[y] yes    [n] no", t.dialog.add_modifier(Modifier::BOLD)),
        ])
        .style(t.dialog)
        .wrap(Wrap { trim: true })
        .block(
            Block::bordered()
                .border_type(BorderType::Double)
                .title(" Confirm "),
        ),
        r,
    );
}
