//! Pane 4, Fallback: the engine's answer for a model (operator rules, the scored ranking with every term of the
//! selected suggestion, the mock flagged), and the keys to use a suggestion or queue the requested model's download.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::engine::events::Severity;
use crate::engine::fallback::{Offer, Via};

use crate::tui::action::Action;
use crate::tui::component::{DrawCtx, KeyHelp, ListPos, Reply, k};
use crate::tui::state::ConsoleState;
use crate::tui::units::human_bytes;
use crate::tui::widgets::{availability_style, block};

pub const KEYS: &[KeyHelp] = &[
    k(
        "Enter",
        "use",
        "use the suggestion instead (selects it in Models)",
    ),
    k(
        "d",
        "download requested",
        "queue the requested model's download",
    ),
];

/// The Fallback pane's view state.
#[derive(Debug, Clone, Default)]
pub struct FallbackPane {
    pub pos: ListPos,
    /// The model the pane is about (else the one selected in Models).
    pub target: Option<String>,
}

impl FallbackPane {
    /// Open the pane on `id`.
    pub fn open(&mut self, id: String) {
        self.target = Some(id);
        self.pos = ListPos::default();
    }

    /// The pane's own keys; `target` is the model it is about.
    pub fn on_key(&mut self, key: KeyEvent, state: &ConsoleState, target: Option<String>) -> Reply {
        let Some(target) = target else {
            return Reply::Done;
        };
        match key.code {
            KeyCode::Enter => match state.fallback_offers(&target).get(self.pos.selected) {
                Some(s) => Reply::Request(Action::UseFallback {
                    requested: target,
                    alternative: s.model_id.clone(),
                }),
                None => Reply::say(Severity::Warning, "no suggestion to use"),
            },
            KeyCode::Char('d') => Reply::Request(Action::QueueRequest(target)),
            _ => Reply::Done,
        }
    }

    /// Draw the pane about `target`. Returns the rows of a page for PgUp/PgDn when it drew a list.
    pub fn draw(
        &mut self,
        frame: &mut Frame,
        ctx: &DrawCtx,
        area: Rect,
        target: Option<String>,
    ) -> Option<usize> {
        let t = ctx.theme;
        let focused = ctx.focused;
        let mut page = None;
        let outer = block(t, " 4 Fallback ".into(), focused);
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let Some(target) = target else {
            frame.render_widget(
                Paragraph::new("Select a model in pane 1 and press f to see what to use instead.")
                    .style(t.dim)
                    .wrap(Wrap { trim: true }),
                inner,
            );
            return None;
        };
        let [head, list, terms, foot] = inner.layout(&Layout::vertical([
            Constraint::Length(3),
            Constraint::Min(3),
            Constraint::Length(8),
            Constraint::Length(2),
        ]));
        let (status, task) = match ctx.state.model(&target) {
            Some(m) => (
                ctx.state.status_label(m),
                ctx.state
                    .task_of(m)
                    .unwrap_or("unknown task (not in the store; the hub has not said)")
                    .to_string(),
            ),
            None => ("not in the store".into(), "unknown task".into()),
        };
        let avail = ctx
            .state
            .model(&target)
            .map(|m| ctx.state.effective_availability(m));
        let report = ctx.state.fallback.get(&target);
        let facts_line = match report {
            None => "asking the engine…".to_string(),
            Some(r) if r.unknown.is_empty() => format!(
                "facts from {} · threshold {:.2}{}",
                r.facts_from.describe(),
                r.threshold,
                if r.scoring {
                    ""
                } else {
                    " · scoring off: rules only"
                }
            ),
            Some(r) => format!(
                "facts from {} · unknown: {} · threshold {:.2}",
                r.facts_from.describe(),
                r.unknown.join(", "),
                r.threshold
            ),
        };
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(vec![
                    Span::styled("requested ", t.header),
                    Span::styled(target.clone(), t.text.add_modifier(Modifier::BOLD)),
                ]),
                Line::from(vec![
                    Span::styled("status    ", t.header),
                    Span::styled(
                        status,
                        avail.map(|a| availability_style(t, a)).unwrap_or(t.dim),
                    ),
                    Span::raw(format!(" · task {task}")),
                ]),
                Line::styled(facts_line, t.dim),
            ]),
            head,
        );
        let sugg: &[Offer] = ctx.state.fallback_offers(&target);
        if sugg.is_empty() {
            let mut lines = vec![Line::styled(
                match report {
                    None => String::new(),
                    Some(r) => format!(
                        "No real model qualifies ({} left out for another task, {} below the threshold). Press d to \
                         queue {target}'s download.",
                        r.task_mismatches,
                        r.below_threshold.len()
                    ),
                },
                t.warn,
            )];
            if let Some(m) = report.and_then(|r| r.mock.as_ref()) {
                lines.push(Line::styled(
                    format!("MOCK (not a real model, no files): {}", m.reason),
                    t.warn.add_modifier(Modifier::BOLD),
                ));
            }
            frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), list);
        } else {
            let h = list.height.saturating_sub(1) as usize;
            page = Some(h.max(1));
            let range = self.pos.window(sugg.len(), h);
            let rows: Vec<Row> = sugg[range.clone()]
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    Row::new(vec![
                        Cell::from(format!("{}", range.start + i + 1)),
                        Cell::from(s.model_id.clone()),
                        Cell::from(format!("{:.2}", s.score)).style(t.accent),
                        Cell::from(match s.via {
                            Via::Rule => "operator rule",
                            Via::Scored => "scored",
                        }),
                        Cell::from(human_bytes(s.size_bytes)).style(t.dim),
                    ])
                })
                .collect();
            let mut ts = TableState::default().with_selected(Some(self.pos.selected - range.start));
            frame.render_stateful_widget(
                Table::new(
                    rows,
                    [
                        Constraint::Length(3),
                        Constraint::Percentage(45),
                        Constraint::Length(5),
                        Constraint::Length(14),
                        Constraint::Min(8),
                    ],
                )
                .header(Row::new(vec!["#", "suggestion", "score", "how", "size"]).style(t.header))
                .row_highlight_style(if focused { t.selected } else { t.text }),
                list,
                &mut ts,
            );
        }
        let selected = sugg.get(self.pos.selected);
        let term_lines: Vec<Line> = match selected {
            None => Vec::new(),
            Some(s) => s
                .reasons
                .iter()
                .map(|r| {
                    Line::from(vec![
                        Span::styled(format!("{:<13}", r.term), t.header),
                        Span::styled(
                            format!("{:.2}×{:.2}={:.3} ", r.weight, r.value, r.contribution),
                            t.accent,
                        ),
                        Span::styled(r.detail.clone(), t.dim),
                    ])
                })
                .collect(),
        };
        frame.render_widget(Paragraph::new(term_lines), terms);
        frame.render_widget(
            Paragraph::new(
                "Score = the sum of the terms above (rules first). Enter uses the selected one; d queues the \
                 requested download.",
            )
            .style(t.dim)
            .wrap(Wrap { trim: true }),
            foot,
        );
        page
    }
}

#[cfg(test)]
mod tests {
    use crate::tui::app::App;
    use crate::tui::panes::Pane;
    use crate::tui::tests::fixtures::*;
    use crate::tui::theme::Theme;

    #[test]
    fn shows_the_engine_answer_its_terms_and_a_flagged_mock() {
        let st = demo_state();
        let mut a = App::new(st, Theme::monochrome());
        a.focus = Pane::Fallback;
        a.fallback.target = Some("ema-demo/tiny-roberta".into());
        let s = screen(&render(&mut a, 120, 40));
        // The selected suggestion's terms, each with weight × value = contribution.
        assert!(
            s.contains("task         0.25×1.00=0.250 same task (text-classification)"),
            "{s}"
        );
        assert!(
            s.contains("recent use   0.10×0.00=0.000 no usage data"),
            "{s}"
        );
        // Nothing real for the missing model whose task nobody knows: the mock, flagged.
        a.fallback.target = Some("ema-demo/tiny-gpt2".into());
        let s = screen(&render(&mut a, 120, 40));
        assert!(s.contains("No real model qualifies"), "{s}");
        assert!(s.contains("MOCK (not a real model, no files)"), "{s}");
        assert!(s.contains("unknown: task"), "{s}");
    }
}
