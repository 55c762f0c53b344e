//! Pane 2, Downloads: every download with its gauge, rate, ETA and retries (the selected one with its files and last
//! error), the throughput sparkline, and the pause / resume / cancel keys.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline, Wrap};

use crate::engine::events::Severity;

use crate::tui::action::Action;
use crate::tui::component::{DrawCtx, KeyHelp, ListPos, Reply, k};
use crate::tui::state::{ConsoleState, DownloadState, DownloadView};
use crate::tui::theme::Theme;
use crate::tui::units::{human_bytes, human_eta, human_rate};
use crate::tui::widgets::{block, line_gauge};

pub const KEYS: &[KeyHelp] = &[
    k("p", "pause", "pause the download"),
    k("u", "resume", "resume the download"),
    k("c", "cancel", "cancel the download (asks first)"),
];

/// The Downloads pane's view state.
#[derive(Debug, Clone, Copy, Default)]
pub struct DownloadsPane {
    pub pos: ListPos,
}

impl DownloadsPane {
    /// The selected download's model id.
    pub fn selected(&self, state: &ConsoleState) -> Option<String> {
        state.download_order.get(self.pos.selected).cloned()
    }

    /// The pane's own keys.
    pub fn on_key(&mut self, key: KeyEvent, state: &ConsoleState) -> Reply {
        let Some(id) = self.selected(state) else {
            if matches!(key.code, KeyCode::Char('p' | 'u' | 'c')) {
                return Reply::say(Severity::Warning, "no download selected");
            }
            return Reply::Done;
        };
        match key.code {
            KeyCode::Char('p') => Reply::Request(Action::Pause(id)),
            KeyCode::Char('u') => Reply::Request(Action::Resume(id)),
            KeyCode::Char('c') => Reply::Request(Action::Cancel {
                model_id: id,
                confirmed: false,
            }),
            _ => Reply::Done,
        }
    }

    /// Draw the pane (only the rows that fit). Returns the rows of a page for PgUp/PgDn when it drew a list.
    pub fn draw(&mut self, frame: &mut Frame, ctx: &DrawCtx, area: Rect) -> Option<usize> {
        let active = ctx.state.active_downloads();
        let title = format!(
            " 2 Downloads · {active} active · {} ",
            human_rate(ctx.state.total_rate())
        );
        let outer = block(ctx.theme, title, ctx.focused);
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let [list_area, spark_area] = inner.layout(&Layout::vertical([
            Constraint::Min(4),
            Constraint::Length(5),
        ]));
        let page = self.draw_list(frame, ctx, list_area);
        draw_throughput(frame, ctx, spark_area);
        page
    }

    /// The downloads that fit. Returns the rows of a page when it drew a list.
    fn draw_list(&mut self, frame: &mut Frame, ctx: &DrawCtx, list_area: Rect) -> Option<usize> {
        let t = ctx.theme;
        if ctx.state.download_order.is_empty() {
            frame.render_widget(
                Paragraph::new(
                    "No downloads yet.\nSelect a model in pane 1 (Models) and press d to start one; progress, rate, ETA \
                     and retries show up here.",
                )
                .style(t.dim)
                .wrap(Wrap { trim: true }),
                list_area,
            );
            return None;
        }
        // Each download takes 2 lines (gauge + facts); the selected one also lists its files and last error.
        let order = ctx.state.download_order.clone();
        let per = 2usize;
        let sel_extra = self
            .selected(ctx.state)
            .and_then(|id| ctx.state.download(&id))
            .map(|d| d.files.len().min(6) + usize::from(d.last_error.is_some()))
            .unwrap_or(0);
        let fit = ((list_area.height as usize).saturating_sub(sel_extra) / per).max(1);
        let range = self.pos.window(order.len(), fit);
        let mut y = list_area.y;
        let bottom = list_area.y + list_area.height;
        for i in range {
            let Some(d) = ctx.state.download(&order[i]) else {
                continue;
            };
            if y >= bottom {
                break;
            }
            let selected = i == self.pos.selected;
            let name_style = if selected && ctx.focused {
                t.selected
            } else if selected {
                t.text.add_modifier(Modifier::BOLD)
            } else {
                t.text
            };
            let state_style = match d.state {
                DownloadState::Running => t.info,
                DownloadState::Finished => t.ok,
                DownloadState::Failed => t.error,
                DownloadState::Paused | DownloadState::Queued => t.accent,
                DownloadState::Cancelled => t.dim,
            };
            gauge_row(
                frame,
                t,
                Rect::new(list_area.x, y, list_area.width, 1),
                Line::from(vec![
                    Span::styled(if selected { "▶ " } else { "  " }, name_style),
                    Span::styled(d.model_id.clone(), name_style),
                ]),
                d.ratio(),
            );
            y += 1;
            if y >= bottom {
                break;
            }
            let facts = format!(
                "    {} · {}/{} · {} files of {} · {} · ETA {} · retries {}",
                d.state.as_str(),
                human_bytes(d.bytes_done),
                human_bytes(d.bytes_total),
                d.files_done,
                d.files_total,
                human_rate(d.rate),
                human_eta(d.eta),
                d.retries
            );
            frame.render_widget(
                Line::styled(facts, state_style),
                Rect::new(list_area.x, y, list_area.width, 1),
            );
            y += 1;
            if selected {
                y = draw_files(
                    frame,
                    t,
                    d,
                    Rect::new(list_area.x, y, list_area.width, bottom - y),
                );
            }
        }
        Some(fit)
    }
}

/// The selected download's files (those still moving first, at most 6) and its last error, from the top of `area`.
/// Returns the row below the last one drawn.
fn draw_files(frame: &mut Frame, t: &Theme, d: &DownloadView, area: Rect) -> u16 {
    let mut y = area.y;
    let bottom = area.y + area.height;
    let mut files: Vec<_> = d.files.iter().collect();
    files.sort_by_key(|(p, f)| (f.verified || (f.total > 0 && f.done >= f.total), *p));
    for (path, f) in files.into_iter().take(6) {
        if y >= bottom {
            break;
        }
        let ratio = if f.total == 0 {
            0.0
        } else {
            (f.done as f64 / f.total as f64).clamp(0.0, 1.0)
        };
        gauge_row(
            frame,
            t,
            Rect::new(area.x, y, area.width, 1),
            Line::styled(
                format!("      {}{}", if f.verified { "✓ " } else { "" }, path),
                t.dim,
            ),
            ratio,
        );
        y += 1;
    }
    if let Some(e) = &d.last_error
        && y < bottom
    {
        frame.render_widget(
            Line::styled(format!("    last error: {e}"), t.error),
            Rect::new(area.x, y, area.width, 1),
        );
        y += 1;
    }
    y
}

/// One row: `name` on the left 40%, a percentage gauge on the right 60%.
fn gauge_row(frame: &mut Frame, t: &Theme, row: Rect, name: Line, ratio: f64) {
    let [name_a, gauge_a] = row.layout(&Layout::horizontal([
        Constraint::Percentage(40),
        Constraint::Percentage(60),
    ]));
    frame.render_widget(name, name_a);
    frame.render_widget(
        line_gauge(t, ratio, format!("{:>3.0}%", ratio * 100.0), t.gauge),
        gauge_a,
    );
}

/// Total throughput over the last two minutes, with its current and peak rate.
fn draw_throughput(frame: &mut Frame, ctx: &DrawCtx, spark_area: Rect) {
    let t = ctx.theme;
    let data: Vec<u64> = ctx.state.rate_history.iter().copied().collect();
    let peak = data.iter().copied().max().unwrap_or(0);
    let width = spark_area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(width)..];
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().border_style(t.border).title(Span::styled(
                format!(
                    " throughput · now {} · peak {} ",
                    human_rate(ctx.state.total_rate()),
                    human_rate(peak as f64)
                ),
                t.title,
            )))
            .data(shown)
            .style(t.sparkline),
        spark_area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::tests::fixtures::*;

    #[test]
    fn downloads_pause_resume_cancel() {
        let mut a = app();
        press(&mut a, KeyCode::Char('2'));
        expect_actions(
            &mut a,
            KeyCode::Char('p'),
            vec![Action::Pause("ema-demo/tiny-gpt2".into())],
        );
        expect_actions(
            &mut a,
            KeyCode::Char('u'),
            vec![Action::Resume("ema-demo/tiny-gpt2".into())],
        );
        assert!(press(&mut a, KeyCode::Char('c')).is_empty());
        expect_actions(
            &mut a,
            KeyCode::Enter,
            vec![Action::Cancel {
                model_id: "ema-demo/tiny-gpt2".into(),
                confirmed: true,
            }],
        );
        press(&mut a, KeyCode::Char('j'));
        expect_actions(
            &mut a,
            KeyCode::Char('p'),
            vec![Action::Pause("ema-demo/tiny-roberta".into())],
        );
    }
}
