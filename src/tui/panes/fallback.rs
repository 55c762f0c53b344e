//! Pane 4, Fallback: what can stand in for a model that is not available (same task, ranked), and the keys to use a
//! suggestion or queue the requested model's download.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::engine::events::{Availability, Severity};

use crate::tui::action::Action;
use crate::tui::component::{DrawCtx, KeyHelp, ListPos, Reply, k};
use crate::tui::state::ConsoleState;
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
            KeyCode::Enter => {
                let sugg = state.fallback_for(&target);
                match sugg.get(self.pos.selected) {
                    Some(s) => Reply::Request(Action::UseFallback {
                        requested: target,
                        alternative: s.model_id.clone(),
                    }),
                    None => Reply::say(Severity::Warning, "no suggestion to use"),
                }
            }
            KeyCode::Char('d') => Reply::Request(Action::Download(target)),
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
        let [head, list, foot] = inner.layout(&Layout::vertical([
            Constraint::Length(3),
            Constraint::Min(3),
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
                Line::styled(
                    if avail == Some(Availability::Available) {
                        "It is available: no fallback needed, but these would also do."
                    } else {
                        "Unavailable: these available models can stand in."
                    },
                    t.dim,
                ),
            ]),
            head,
        );
        let sugg = ctx.state.fallback_for(&target);
        if sugg.is_empty() {
            frame.render_widget(
                Paragraph::new(format!(
                    "No available model with the same task ({task}). Press d to queue {target}'s download."
                ))
                .style(t.warn)
                .wrap(Wrap { trim: true }),
                list,
            );
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
                        Cell::from(s.reasons.join(" · ")).style(t.dim),
                    ])
                })
                .collect();
            let mut ts = TableState::default().with_selected(Some(self.pos.selected - range.start));
            frame.render_stateful_widget(
                Table::new(
                    rows,
                    [
                        Constraint::Length(3),
                        Constraint::Percentage(35),
                        Constraint::Length(5),
                        Constraint::Min(20),
                    ],
                )
                .header(Row::new(vec!["#", "suggestion", "score", "reasons"]).style(t.header))
                .row_highlight_style(if focused { t.selected } else { t.text }),
                list,
                &mut ts,
            );
        }
        frame.render_widget(
            Paragraph::new(
                "Ranking: same task, health and size (the scored fallback engine comes later). Enter uses the \
                 selected one; d queues the requested download.",
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
    use crate::tui::state::RemoteModel;
    use crate::tui::tests::fixtures::*;
    use crate::tui::theme::Theme;

    #[test]
    fn hub_facts_give_missing_models_a_task_size_and_fallbacks() {
        let mut st = demo_state();
        // tiny-gpt2 is wanted but not in the store: no task, so no suggestions yet.
        assert!(st.fallback_for("ema-demo/tiny-gpt2").is_empty());
        st.set_remote(
            "ema-demo/tiny-gpt2".into(),
            RemoteModel {
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
        assert_eq!(a.models.view.len(), 4);
        let t = render(&mut a, 120, 40);
        assert!(
            screen(&t).lines().any(|l| l.contains("tiny-gpt2")
                && l.contains("text-classification")
                && l.contains("10 MB")),
            "{}",
            screen(&t)
        );
    }
}
