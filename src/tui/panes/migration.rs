//! Pane 5, Migration: the wizard's steps by phase with the selected step's details and log, and the keys to run,
//! mark done, skip or retry a step.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::engine::events::Severity;
use crate::engine::migration::{Phase, STEPS, StepDef, StepKind, StepState};

use crate::tui::action::Action;
use crate::tui::component::{DrawCtx, KeyHelp, ListPos, Reply, k};
use crate::tui::state::ConsoleState;
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, short_date};

pub const KEYS: &[KeyHelp] = &[
    k(
        "Enter",
        "run/confirm",
        "run the step (automatic) or mark it done (manual)",
    ),
    k("m", "done", "mark a manual step done"),
    k("s", "skip", "skip the step"),
    k("t", "retry", "retry a failed, skipped or done step"),
];

/// The Migration pane's view state.
#[derive(Debug, Clone, Copy, Default)]
pub struct MigrationPane {
    pub pos: ListPos,
}

impl MigrationPane {
    pub fn selected(&self) -> Option<&'static StepDef> {
        STEPS.get(self.pos.selected)
    }

    /// The pane's own keys.
    pub fn on_key(&mut self, key: KeyEvent, state: &ConsoleState) -> Reply {
        let Some(def) = self.selected() else {
            return Reply::Done;
        };
        let step = def.id.to_string();
        let busy = state.migration_running.is_some();
        let a = match key.code {
            KeyCode::Enter | KeyCode::Char('r') if def.kind == StepKind::Automatic => {
                Action::MigrationRun {
                    step,
                    confirmed: false,
                }
            }
            KeyCode::Enter | KeyCode::Char('m') if def.kind == StepKind::Manual => {
                Action::MigrationMarkDone {
                    step,
                    confirmed: false,
                }
            }
            KeyCode::Char('m') => {
                return Reply::say(
                    Severity::Warning,
                    format!("\"{}\" is automatic: press Enter to run it", def.title),
                );
            }
            KeyCode::Char('r') => {
                return Reply::say(
                    Severity::Warning,
                    format!(
                        "\"{}\" is manual: ema has no engine work for it yet; do it, then press m",
                        def.title
                    ),
                );
            }
            KeyCode::Char('s') => Action::MigrationSkip(step),
            KeyCode::Char('t') => Action::MigrationRetry(step),
            _ => return Reply::Done,
        };
        if busy && matches!(a, Action::MigrationRun { .. } | Action::MigrationRetry(_)) {
            return Reply::say(
                Severity::Warning,
                "a migration step is running; wait for it to finish",
            );
        }
        Reply::Request(a)
    }

    /// Draw the pane (only the rows that fit). Returns the rows of a page for PgUp/PgDn when it drew a list.
    pub fn draw(&mut self, frame: &mut Frame, ctx: &DrawCtx, area: Rect) -> Option<usize> {
        let t = ctx.theme;
        let focused = ctx.focused;
        let st = &ctx.state.migration;
        let total_done: usize = [Phase::PreMigration, Phase::Migration, Phase::PostMigration]
            .iter()
            .map(|p| st.progress(*p).0)
            .sum();
        let outer = block(
            t,
            format!(" 5 Migration · {total_done}/{} steps ", STEPS.len()),
            focused,
        );
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let vertical = inner.width < 110;
        let [list_a, detail_a] = if vertical {
            inner.layout(&Layout::vertical([
                Constraint::Percentage(55),
                Constraint::Percentage(45),
            ]))
        } else {
            inner.layout(&Layout::horizontal([
                Constraint::Percentage(50),
                Constraint::Percentage(50),
            ]))
        };
        let page = self.draw_steps(frame, ctx, list_a);
        self.draw_step(frame, ctx, detail_a);
        Some(page)
    }

    /// The steps by phase (a header per phase), keeping the selected one visible. Returns the rows of a page.
    fn draw_steps(&self, frame: &mut Frame, ctx: &DrawCtx, list_a: Rect) -> usize {
        let t = ctx.theme;
        let focused = ctx.focused;
        let st = &ctx.state.migration;
        let mut lines: Vec<(Option<usize>, Line)> = Vec::new();
        let mut phase = None;
        for (i, d) in STEPS.iter().enumerate() {
            if phase != Some(d.phase) {
                phase = Some(d.phase);
                let (done, total) = st.progress(d.phase);
                lines.push((
                    None,
                    Line::styled(format!("{} {done}/{total}", d.phase.title()), t.header),
                ));
            }
            let state = st
                .record(d.id)
                .map(|r| r.state)
                .unwrap_or(StepState::Pending);
            let selected = i == self.pos.selected;
            let base = step_style(t, state);
            let style = if selected && focused {
                t.selected
            } else if selected {
                base.add_modifier(Modifier::BOLD)
            } else {
                base
            };
            lines.push((
                Some(i),
                Line::from(vec![
                    Span::styled(format!(" {} ", step_symbol(state)), style),
                    Span::styled(d.title.to_string(), style),
                    Span::styled(
                        format!(
                            "  {}{}",
                            if d.kind == StepKind::Manual {
                                "manual"
                            } else {
                                "auto"
                            },
                            if d.confirm.is_some() { " ⚠" } else { "" }
                        ),
                        t.dim,
                    ),
                ]),
            ));
        }
        let h = list_a.height as usize;
        let sel_line = lines
            .iter()
            .position(|(i, _)| *i == Some(self.pos.selected))
            .unwrap_or(0);
        let offset = sel_line.saturating_sub(h.saturating_sub(2));
        let shown: Vec<Line> = lines
            .into_iter()
            .skip(offset)
            .take(h)
            .map(|(_, l)| l)
            .collect();
        frame.render_widget(Paragraph::new(shown), list_a);
        h.max(1)
    }

    /// The selected step: what it does, its result and the end of its log, and the last backup.
    fn draw_step(&self, frame: &mut Frame, ctx: &DrawCtx, detail_a: Rect) {
        let t = ctx.theme;
        let Some(def) = self.selected() else {
            return;
        };
        let rec = ctx.state.migration.record(def.id);
        let state = rec.map(|r| r.state).unwrap_or(StepState::Pending);
        let mut d: Vec<Line> = vec![
            Line::from(vec![
                Span::styled(step_symbol(state), step_style(t, state)),
                Span::raw(" "),
                Span::styled(def.title, t.text.add_modifier(Modifier::BOLD)),
                Span::styled(format!("  {}", state.as_str()), step_style(t, state)),
            ]),
            Line::styled(
                if def.kind == StepKind::Manual {
                    "manual step: ema has no engine work for it yet — do it yourself, then press m (or s to skip)"
                } else {
                    "automatic: Enter runs it, t retries, s skips"
                },
                t.accent,
            ),
            Line::raw(def.description),
        ];
        if let Some(why) = def.confirm {
            d.push(Line::styled(format!("asks first: {why}"), t.warn));
        }
        if let Some(r) = rec {
            if let Some(det) = &r.details {
                d.push(Line::from(vec![
                    Span::styled("result: ", t.header),
                    Span::styled(det.clone(), step_style(t, state)),
                ]));
            }
            if !r.log.is_empty() {
                d.push(Line::styled("log:", t.header));
                let room = (detail_a.height as usize).saturating_sub(d.len() + 3);
                for l in r.log.iter().skip(r.log.len().saturating_sub(room.max(1))) {
                    d.push(Line::styled(
                        format!(
                            "{} {}",
                            short_date(Some(&l.at)).get(11..).unwrap_or(""),
                            l.text
                        ),
                        t.dim,
                    ));
                }
            }
        }
        if let Some(b) = &ctx.state.migration.last_backup {
            d.push(Line::styled(format!("backup: {}", b.display()), t.dim));
        }
        frame.render_widget(
            Paragraph::new(d).wrap(Wrap { trim: false }).block(
                Block::bordered()
                    .border_style(t.border)
                    .title(Span::styled(" step ", t.title)),
            ),
            detail_a,
        );
    }
}

fn step_symbol(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "[ ]",
        StepState::Running => "[~]",
        StepState::Done => "[✓]",
        StepState::Failed => "[✗]",
        StepState::Skipped => "[-]",
    }
}

fn step_style(t: &Theme, s: StepState) -> Style {
    match s {
        StepState::Pending => t.text,
        StepState::Running => t.info,
        StepState::Done => t.ok,
        StepState::Failed => t.error,
        StepState::Skipped => t.dim,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::tests::fixtures::*;

    #[test]
    fn migration_keys_respect_step_kinds_and_confirmation() {
        let mut a = app();
        press(&mut a, KeyCode::Char('5'));
        // Step 0 (system requirements) is automatic.
        expect_actions(
            &mut a,
            KeyCode::Enter,
            vec![Action::MigrationRun {
                step: "system_requirements".into(),
                confirmed: false,
            }],
        );
        // Manual steps are confirmed, not run.
        press(&mut a, KeyCode::Char('j'));
        press(&mut a, KeyCode::Char('j'));
        assert!(press(&mut a, KeyCode::Char('r')).is_empty());
        assert!(a.message.as_ref().unwrap().1.contains("manual"));
        expect_actions(
            &mut a,
            KeyCode::Char('m'),
            vec![Action::MigrationMarkDone {
                step: "plan_reviewed".into(),
                confirmed: false,
            }],
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
        expect_actions(
            &mut a,
            KeyCode::Char('y'),
            vec![Action::MigrationMarkDone {
                step: "services_stopped".into(),
                confirmed: true,
            }],
        );
        expect_actions(
            &mut a,
            KeyCode::Char('s'),
            vec![Action::MigrationSkip("services_stopped".into())],
        );
        expect_actions(
            &mut a,
            KeyCode::Char('t'),
            vec![Action::MigrationRetry("services_stopped".into())],
        );
    }
}
