//! Pane 5, Migration: the recorded plan (the detected legacy setup, the mode, what will happen), the wizard's steps
//! by phase with the selected step's details and log, and the keys to run a step, confirm or skip a manual one
//! with a note, or retry. The same wizard `ema migrate …` drives: every call goes through the engine's `Wizard`.

use ratatui::Frame;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::engine::events::Severity;
use crate::engine::migration::{MigrationPlan, Phase, STEPS, StepDef, StepKind, StepState};

use crate::tui::action::Action;
use crate::tui::component::{DrawCtx, KeyHelp, ListPos, Reply, k};
use crate::tui::state::ConsoleState;
use crate::tui::theme::Theme;
use crate::tui::units::human_bytes;
use crate::tui::widgets::{block, short_date};

pub const KEYS: &[KeyHelp] = &[
    k(
        "Enter",
        "run/confirm",
        "run the step (automatic) or confirm it done with a note (manual)",
    ),
    k("m", "done", "confirm a manual step done, with a note"),
    k("s", "skip", "skip a manual step, with a note saying why"),
    k(
        "t",
        "retry",
        "retry a failed, blocked, skipped or done step",
    ),
];

/// The note prompt of a manual step being confirmed or skipped.
#[derive(Debug, Clone)]
pub struct NotePrompt {
    pub step: &'static str,
    pub skip: bool,
    pub input: Input,
}

/// The Migration pane's view state.
#[derive(Debug, Clone, Default)]
pub struct MigrationPane {
    pub pos: ListPos,
    pub note: Option<NotePrompt>,
}

impl MigrationPane {
    pub fn selected(&self) -> Option<&'static StepDef> {
        STEPS.get(self.pos.selected)
    }

    /// Keys while the note prompt is open: it takes every key. None when it is closed.
    pub fn on_prompt_key(&mut self, key: KeyEvent) -> Option<Reply> {
        let mut p = self.note.take()?;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        Some(match key.code {
            KeyCode::Esc => Reply::say(Severity::Info, "cancelled"),
            KeyCode::Enter => {
                let note = p.input.value().trim().to_string();
                if note.is_empty() {
                    self.note = Some(p);
                    Reply::say(
                        Severity::Warning,
                        "a note is required: say what was done (or why it is skipped); Esc cancels",
                    )
                } else if p.skip {
                    Reply::Request(Action::MigrationSkip {
                        step: p.step.to_string(),
                        note,
                    })
                } else {
                    Reply::Request(Action::MigrationMarkDone {
                        step: p.step.to_string(),
                        note,
                    })
                }
            }
            KeyCode::Char('c') if ctrl => Reply::Request(Action::Quit { confirmed: false }),
            _ => {
                p.input.handle_event(&TermEvent::Key(key));
                self.note = Some(p);
                Reply::Done
            }
        })
    }

    /// The pane's own keys.
    pub fn on_key(&mut self, key: KeyEvent, state: &ConsoleState) -> Reply {
        let Some(def) = self.selected() else {
            return Reply::Done;
        };
        let step = def.id.to_string();
        let busy = state.migration_running.is_some();
        let manual = def.kind == StepKind::Manual;
        let a = match key.code {
            KeyCode::Enter | KeyCode::Char('r') if !manual => Action::MigrationRun {
                step,
                confirmed: false,
            },
            KeyCode::Enter | KeyCode::Char('m') | KeyCode::Char('s') if manual => {
                let skip = key.code == KeyCode::Char('s');
                self.note = Some(NotePrompt {
                    step: def.id,
                    skip,
                    input: Input::default(),
                });
                return Reply::say(
                    Severity::Info,
                    if skip {
                        "why is it skipped? type a note, Enter to skip the step, Esc to cancel"
                    } else {
                        "what was done? type a note, Enter to confirm the step, Esc to cancel"
                    },
                );
            }
            KeyCode::Char('m') | KeyCode::Char('s') => {
                return Reply::say(
                    Severity::Warning,
                    format!(
                        "\"{}\" is automatic: ema does it — press Enter to run it (t to retry); only manual steps \
                         are confirmed or skipped",
                        def.title
                    ),
                );
            }
            KeyCode::Char('r') => {
                return Reply::say(
                    Severity::Warning,
                    format!(
                        "\"{}\" is manual: do it, then press m (or Enter) and say what was done",
                        def.title
                    ),
                );
            }
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
        if let Some(link) = &ctx.state.link {
            let msg = format!(
                "The migration wizard is not available when attached to {}: it works on the files of the \
                 server's machine. Run `ema migrate status` there (or open the console there).",
                link.server
            );
            frame.render_widget(
                Paragraph::new(msg).style(t.dim).wrap(Wrap { trim: true }),
                inner,
            );
            return None;
        }
        let header = plan_lines(t, st.plan.as_ref());
        let w = inner.width.max(1) as usize;
        let head_h: usize = header.iter().map(|l| l.width().max(1).div_ceil(w)).sum();
        let [head_a, inner, prompt_a] = inner.layout(&Layout::vertical([
            Constraint::Length(head_h.min(inner.height as usize / 2) as u16 + 1),
            Constraint::Min(3),
            Constraint::Length(u16::from(self.note.is_some())),
        ]));
        frame.render_widget(Paragraph::new(header).wrap(Wrap { trim: false }), head_a);
        if let Some(p) = &self.note {
            let prefix = if p.skip { "skip, because: " } else { "done: " };
            let width = prompt_a.width.saturating_sub(prefix.len() as u16) as usize;
            let scroll = p.input.visual_scroll(width);
            let value: String = p.input.value().chars().skip(scroll).collect();
            frame.render_widget(
                Line::from(vec![
                    Span::styled(prefix, t.accent),
                    Span::styled(value, t.text),
                ]),
                prompt_a,
            );
            if focused {
                let x = (p.input.visual_cursor().max(scroll) - scroll) as u16;
                frame.set_cursor_position((prompt_a.x + prefix.len() as u16 + x, prompt_a.y));
            }
        }
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
                    "manual: a person does it — then m (or Enter) confirms it with a note, s skips it with a note"
                } else {
                    "automatic: Enter runs it, t runs it again"
                },
                t.accent,
            ),
            Line::raw(def.description),
        ];
        if let Some(why) = def.confirm {
            d.push(Line::styled(format!("asks first: {why}"), t.warn));
        }
        if let Some(r) = rec {
            if let Some(n) = &r.note {
                d.push(Line::from(vec![
                    Span::styled("note: ", t.header),
                    Span::styled(n.clone(), t.text),
                ]));
            }
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
        StepState::NotApplicable => "[·]",
        StepState::Failed => "[✗]",
        StepState::Blocked => "[!]",
        StepState::Skipped => "[-]",
    }
}

fn step_style(t: &Theme, s: StepState) -> Style {
    match s {
        StepState::Pending => t.text,
        StepState::Running => t.info,
        StepState::Done => t.ok,
        StepState::NotApplicable => t.dim,
        StepState::Failed => t.error,
        StepState::Blocked => t.warn,
        StepState::Skipped => t.dim,
    }
}

/// The plan header: the detected legacy setup, the mode, and what will happen.
fn plan_lines(t: &Theme, plan: Option<&MigrationPlan>) -> Vec<Line<'static>> {
    let Some(p) = plan else {
        return vec![
            Line::styled("No migration planned yet.", t.header),
            Line::styled(
                "In the legacy install directory run `ema migrate plan` (or `ema demo --legacy` for a sample), \
                 then come back: the steps below run on that plan.",
                t.dim,
            ),
        ];
    };
    let layouts = p
        .layouts()
        .iter()
        .map(|(l, n)| format!("{n} {l}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut extras = Vec::new();
    if p.database.is_some() {
        extras.push("models.db");
    }
    if p.usage_log.is_some() {
        extras.push("logs/usage.log");
    }
    vec![
        Line::from(vec![
            Span::styled("Plan: ", t.header),
            Span::styled(
                p.root.display().to_string(),
                t.text.add_modifier(Modifier::BOLD),
            ),
            Span::styled(
                format!(
                    "  {} · planned {}",
                    p.mode.as_str(),
                    short_date(Some(&p.planned_at))
                ),
                t.dim,
            ),
        ]),
        Line::from(vec![
            Span::styled("Found: ", t.header),
            Span::styled(
                format!(
                    "{} · models {}: {} model(s), {} ({layouts}) · legacy API port {}{}",
                    if p.legacy_config.is_some() {
                        "config.json"
                    } else {
                        "no config.json"
                    },
                    p.models_dir.display(),
                    p.models.len(),
                    human_bytes(p.total_bytes),
                    p.legacy_api_port,
                    if extras.is_empty() {
                        String::new()
                    } else {
                        format!(" · {}", extras.join(", "))
                    }
                ),
                t.text,
            ),
        ]),
        Line::from(vec![
            Span::styled("Will: ", t.header),
            Span::styled(
                match (&p.install_dir, &p.store) {
                    (Some(install), Some(store)) => format!(
                        "side by side — the legacy system keeps running: back up the install and ema's side to {} \
                         → test the restore → migrate config.json into {} → record the {} model(s) where they lie \
                         (links in {}; nothing of the legacy system changes) → verify every byte",
                        p.backups_dir.display(),
                        install.join("config").display(),
                        p.models.len(),
                        store.display()
                    ),
                    _ => format!(
                        "back up the install to {} → test the restore → check the legacy service is stopped → \
                         migrate config.json → adopt the {} model(s) in place (no downloads) → verify every byte",
                        p.backups_dir.display(),
                        p.models.len()
                    ),
                },
                t.text,
            ),
        ]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::tests::fixtures::*;

    #[test]
    fn a_side_by_side_plan_says_the_legacy_system_keeps_running_and_where_ema_records_the_models() {
        let mut p = demo_state().migration.plan.unwrap();
        let text = |p: &MigrationPlan| {
            plan_lines(&crate::tui::theme::Theme::monochrome(), Some(p))
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(text(&p).contains("adopt the 2 model(s) in place"));
        p.mode = crate::engine::migration::Mode::SideBySide;
        p.install_dir = Some("/opt/ema".into());
        p.store = Some("/opt/ema/models".into());
        let t = text(&p);
        assert!(t.contains("side-by-side"), "{t}");
        assert!(t.contains("the legacy system keeps running"), "{t}");
        assert!(t.contains("links in /opt/ema/models"), "{t}");
        assert!(!t.contains("in place"), "{t}");
    }

    #[test]
    fn migration_keys_respect_step_kinds_and_ask_for_notes() {
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
        // Automatic steps are neither confirmed nor skipped by hand.
        assert!(press(&mut a, KeyCode::Char('s')).is_empty());
        assert!(a.message.as_ref().unwrap().1.contains("automatic"));
        // The backup asks first.
        press(&mut a, KeyCode::Char('j'));
        assert!(press(&mut a, KeyCode::Enter).is_empty());
        assert!(a.confirm.as_ref().unwrap().question.contains("backed up"));
        expect_actions(
            &mut a,
            KeyCode::Char('y'),
            vec![Action::MigrationRun {
                step: "backup".into(),
                confirmed: true,
            }],
        );
        // Manual steps are confirmed with a note, not run.
        press(&mut a, KeyCode::Char('j'));
        assert!(press(&mut a, KeyCode::Char('r')).is_empty());
        assert!(a.message.as_ref().unwrap().1.contains("manual"));
        assert!(press(&mut a, KeyCode::Char('m')).is_empty());
        assert!(a.migration.note.is_some());
        // An empty note is refused; the prompt stays open and takes every key (q is text, not quit).
        assert!(press(&mut a, KeyCode::Enter).is_empty());
        assert!(a.message.as_ref().unwrap().1.contains("note is required"));
        for c in "read it q".chars() {
            assert!(press(&mut a, KeyCode::Char(c)).is_empty());
        }
        expect_actions(
            &mut a,
            KeyCode::Enter,
            vec![Action::MigrationMarkDone {
                step: "plan_reviewed".into(),
                note: "read it q".into(),
            }],
        );
        assert!(a.migration.note.is_none());
        press(&mut a, KeyCode::Char('s'));
        press(&mut a, KeyCode::Char('x'));
        expect_actions(
            &mut a,
            KeyCode::Enter,
            vec![Action::MigrationSkip {
                step: "plan_reviewed".into(),
                note: "x".into(),
            }],
        );
        press(&mut a, KeyCode::Char('m'));
        press(&mut a, KeyCode::Esc);
        assert!(a.migration.note.is_none());
        expect_actions(
            &mut a,
            KeyCode::Char('t'),
            vec![Action::MigrationRetry("plan_reviewed".into())],
        );
    }
}
