//! Pane 3, Health: storage against its budget, the models' health, the saved performance recommendations (the
//! selected one applied with `o`), the alert list (open ones first) with the selected alert's details, and the
//! acknowledge keys.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::engine::advice::Recommendation;
use crate::tui::action::Action;
use crate::tui::component::{DrawCtx, KeyHelp, ListPos, Reply, k};
use crate::tui::state::alerts::AlertView;
use crate::tui::state::{ConsoleState, RecommendationFacts};
use crate::tui::units::human_bytes;
use crate::tui::widgets::{
    block, health_style, line_gauge, severity_style, severity_symbol, short_date,
};

pub const KEYS: &[KeyHelp] = &[
    k("a", "ack", "acknowledge the alert"),
    k("A", "ack all", "acknowledge every alert"),
    k(
        "]",
        "next rec",
        "select the next performance recommendation",
    ),
    k(
        "o",
        "optimize",
        "apply the selected recommendation to the configuration file (backup first)",
    ),
];

/// Recommendation rows shown at most.
const MAX_REC_ROWS: usize = 3;

/// The Health pane's view state.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthPane {
    pub pos: ListPos,
    /// The selected recommendation.
    pub rec: usize,
}

fn recs(state: &ConsoleState) -> &[Recommendation] {
    match &state.recommendations {
        RecommendationFacts::Ready(v) => v,
        _ => &[],
    }
}

impl HealthPane {
    pub fn selected<'a>(&self, state: &'a ConsoleState) -> Option<&'a AlertView> {
        state.alerts.get(self.pos.selected)
    }

    /// Keep the recommendation selection within the list.
    pub fn clamp_recommendation(&mut self, state: &ConsoleState) {
        self.rec = self.rec.min(recs(state).len().saturating_sub(1));
    }

    /// The pane's own keys.
    pub fn on_key(&mut self, key: KeyEvent, state: &ConsoleState) -> Reply {
        match key.code {
            KeyCode::Char(']') => {
                let n = recs(state).len();
                if n > 0 {
                    self.rec = (self.rec + 1) % n;
                }
                Reply::Done
            }
            KeyCode::Char('o') => match recs(state).get(self.rec) {
                Some(r) if r.key.is_some() => {
                    Reply::Request(Action::ApplyRecommendation(r.id.clone()))
                }
                _ => Reply::Done,
            },
            KeyCode::Char('a') => match self.selected(state).map(|a| a.id.clone()) {
                Some(id) => Reply::Request(Action::Acknowledge(id)),
                None => Reply::Done,
            },
            KeyCode::Char('A') => Reply::Request(Action::AcknowledgeAll),
            _ => Reply::Done,
        }
    }

    /// Draw the pane (only the rows that fit). Returns the rows of a page for PgUp/PgDn when it drew a list.
    pub fn draw(&mut self, frame: &mut Frame, ctx: &DrawCtx, area: Rect) -> Option<usize> {
        let t = ctx.theme;
        let n = ctx.state.unacknowledged_alerts();
        let outer = block(
            t,
            format!(" 3 Health · {n} unacknowledged alert(s) "),
            ctx.focused,
        );
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let rec_rows = match &ctx.state.recommendations {
            RecommendationFacts::Unknown => 0,
            RecommendationFacts::Ready(v) => 1 + v.len().clamp(1, MAX_REC_ROWS) as u16,
            RecommendationFacts::Unavailable(_) => 2,
        };
        let [storage_a, recs_a, alerts_a, detail_a] = inner.layout(&Layout::vertical([
            Constraint::Length(4),
            Constraint::Length(rec_rows),
            Constraint::Min(4),
            Constraint::Length(6),
        ]));

        draw_storage(frame, ctx, storage_a);
        if rec_rows > 0 {
            self.draw_recommendations(frame, ctx, recs_a);
        }
        let page = self.draw_alerts(frame, ctx, alerts_a);
        self.draw_details(frame, ctx, detail_a);
        page
    }

    /// The alert list (only the rows that fit). Returns the rows of a page when it drew a list.
    fn draw_alerts(&mut self, frame: &mut Frame, ctx: &DrawCtx, alerts_a: Rect) -> Option<usize> {
        let t = ctx.theme;
        let focused = ctx.focused;
        if ctx.state.alerts.is_empty() {
            frame.render_widget(
                Paragraph::new(
                    "No alerts. Problems found in the store and by health checks appear here.",
                )
                .style(t.dim)
                .wrap(Wrap { trim: true }),
                alerts_a,
            );
            None
        } else {
            let h = alerts_a.height.saturating_sub(1) as usize;
            let range = self.pos.window(ctx.state.alerts.len(), h);
            let rows: Vec<Row> = ctx.state.alerts[range.clone()]
                .iter()
                .map(|a| {
                    let quiet = a.acknowledged || a.resolved;
                    let style = if quiet {
                        t.dim
                    } else {
                        severity_style(t, a.severity)
                    };
                    Row::new(vec![
                        Cell::from(severity_symbol(a.severity)).style(style),
                        Cell::from(short_date(Some(&a.at))).style(t.dim),
                        Cell::from(if a.resolved {
                            "✓ resolved"
                        } else if a.acknowledged {
                            "✓ ack"
                        } else {
                            ""
                        })
                        .style(t.dim),
                        Cell::from(if a.count > 1 {
                            format!("×{} {}", a.count, a.message)
                        } else {
                            a.message.clone()
                        })
                        .style(if quiet { t.dim } else { t.text }),
                    ])
                })
                .collect();
            let mut ts = TableState::default().with_selected(Some(self.pos.selected - range.start));
            frame.render_stateful_widget(
                Table::new(
                    rows,
                    [
                        Constraint::Length(10),
                        Constraint::Length(16),
                        Constraint::Length(10),
                        Constraint::Min(20),
                    ],
                )
                .header(Row::new(vec!["severity", "when", "", "alert"]).style(t.header))
                .row_highlight_style(if focused { t.selected } else { t.text }),
                alerts_a,
                &mut ts,
            );
            Some(h.max(1))
        }
    }

    /// The recommendations section: a title with the keys, then the rows around the selected one.
    fn draw_recommendations(&self, frame: &mut Frame, ctx: &DrawCtx, area: Rect) {
        let t = ctx.theme;
        let list = recs(ctx.state);
        let mut lines = vec![Line::from(vec![
            Span::styled("recommendations ", t.header),
            Span::styled(
                match &ctx.state.recommendations {
                    RecommendationFacts::Ready(v) if !v.is_empty() => {
                        format!("{} pending · ] next · o apply the selected one", v.len())
                    }
                    _ => String::new(),
                },
                t.dim,
            ),
        ])];
        match &ctx.state.recommendations {
            RecommendationFacts::Unavailable(e) => lines.push(Line::styled(e.clone(), t.dim)),
            RecommendationFacts::Ready(v) if v.is_empty() => lines.push(Line::styled(
                "none pending: `ema analyze-performance --generate-recommendations` makes them from `ema \
                 benchmark --save-baseline` and the download history",
                t.dim,
            )),
            _ => {
                let start = self
                    .rec
                    .saturating_sub(MAX_REC_ROWS - 1)
                    .min(list.len().saturating_sub(MAX_REC_ROWS));
                for (i, r) in list.iter().enumerate().skip(start).take(MAX_REC_ROWS) {
                    let sel = i == self.rec;
                    let style = if sel && ctx.focused {
                        t.selected
                    } else {
                        t.text
                    };
                    lines.push(Line::from(vec![
                        Span::styled(if sel { "▸ " } else { "  " }, style),
                        Span::styled(r.change(), style),
                        Span::styled(format!(" · {} · {}", r.takes.as_str(), r.title), t.dim),
                    ]));
                }
            }
        }
        frame.render_widget(Paragraph::new(lines), area);
    }

    /// The selected alert's fix and its model's health and problems.
    fn draw_details(&self, frame: &mut Frame, ctx: &DrawCtx, detail_a: Rect) {
        let t = ctx.theme;
        let mut lines = Vec::new();
        if let Some(a) = self.selected(ctx.state) {
            if let Some(act) = &a.suggested_action {
                lines.push(Line::from(vec![
                    Span::styled("fix      ", t.header),
                    Span::raw(act.clone()),
                ]));
            }
            if let Some(mid) = &a.model_id
                && let Some(m) = ctx.state.model(mid)
            {
                lines.push(Line::from(vec![
                    Span::styled("model    ", t.header),
                    Span::raw(format!("{} · ", m.id)),
                    Span::styled(m.health.as_str(), health_style(t, m.health)),
                    Span::raw(format!(
                        " · {} · last verified {}",
                        m.availability.as_str(),
                        short_date(
                            m.metadata
                                .as_ref()
                                .and_then(|x| x.last_verified_at.as_deref())
                        )
                    )),
                ]));
                for p in m
                    .problems
                    .iter()
                    .filter(|p| a.suggested_action.as_deref() != Some(p.as_str()))
                    .take(3)
                {
                    lines.push(Line::styled(format!("         {p}"), t.dim));
                }
            }
        }
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: true }).block(
                Block::bordered()
                    .border_style(t.border)
                    .title(Span::styled(" details ", t.title)),
            ),
            detail_a,
        );
    }
}

/// Storage against the budget and the cleanup threshold, and the models by health.
fn draw_storage(frame: &mut Frame, ctx: &DrawCtx, storage_a: Rect) {
    let t = ctx.theme;
    let s = &ctx.state.storage;
    let ratio = s.used_ratio();
    let gauge_style = if s.over_threshold() { t.warn } else { t.gauge };
    frame.render_widget(
        Line::from(vec![
            Span::styled("storage ", t.header),
            Span::raw(format!(
                "{} of {} GB max ({:.1}%) · cleanup threshold {}%{}",
                human_bytes(s.used_bytes),
                s.max_storage_gb,
                ratio * 100.0,
                s.cleanup_threshold_percent,
                match s.disk_available_bytes {
                    Some(a) => format!(" · disk free {}", human_bytes(a)),
                    None => String::new(),
                }
            )),
        ]),
        Rect::new(storage_a.x, storage_a.y, storage_a.width, 1),
    );
    frame.render_widget(
        line_gauge(
            t,
            ratio,
            format!(
                "{:>3.0}%{}",
                ratio * 100.0,
                if s.over_threshold() {
                    " over threshold"
                } else {
                    ""
                }
            ),
            gauge_style,
        ),
        Rect::new(storage_a.x, storage_a.y + 1, storage_a.width, 1),
    );
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for m in &ctx.state.models {
        *counts.entry(m.health.as_str()).or_default() += 1;
    }
    let summary = counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" · ");
    frame.render_widget(
        Line::from(vec![
            Span::styled("models  ", t.header),
            Span::raw(if summary.is_empty() {
                "none".into()
            } else {
                summary
            }),
        ]),
        Rect::new(storage_a.x, storage_a.y + 2, storage_a.width, 1),
    );
    frame.render_widget(
        Line::from(vec![
            Span::styled("usage   ", t.header),
            Span::raw(analytics_line(&ctx.state.analytics)),
        ]),
        Rect::new(storage_a.x, storage_a.y + 3, storage_a.width, 1),
    );
}

/// The analytics summary of the last 24 hours in one line.
fn analytics_line(a: &crate::tui::state::AnalyticsFacts) -> String {
    use crate::tui::state::AnalyticsFacts;
    let pct = |x: Option<f64>| {
        x.map(|v| format!("{:.0}%", v * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    match a {
        AnalyticsFacts::Unknown => "-".into(),
        AnalyticsFacts::Off => {
            "analytics off (analytics.enabled / features.usage_analytics)".into()
        }
        AnalyticsFacts::Unavailable(e) => format!("analytics unavailable: {e}"),
        AnalyticsFacts::Ready(s) => format!(
            "24h: {} requests · fallback {} · downloads {} ok {} failed ({}) · {} · dropped {}",
            s.fallback.requests,
            pct(s.fallback.rate),
            s.downloads.completed,
            s.downloads.failed,
            pct(s.downloads.success_rate),
            human_bytes(s.downloads.bytes),
            s.dropped_total
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::Severity;
    use crate::tui::tests::fixtures::*;

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
}
