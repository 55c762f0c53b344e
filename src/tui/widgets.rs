//! Drawing bits every pane uses: symbols and styles for availability, health and severity (a symbol always goes
//! with the colour, for NO_COLOR users), the bordered pane block, the one-line gauge and short dates.

use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, LineGauge};

use crate::engine::events::{Availability, HealthState, Severity};

use super::theme::Theme;

/// The symbol that says a model's availability without colour.
pub fn availability_symbol(a: Availability) -> &'static str {
    match a {
        Availability::Available => "✓",
        Availability::Downloading => "↓",
        Availability::Queued => "…",
        Availability::Paused => "‖",
        Availability::Incomplete => "◐",
        Availability::Corrupted => "✗",
        Availability::Missing => "○",
    }
}

pub fn availability_style(t: &Theme, a: Availability) -> Style {
    match a {
        Availability::Available => t.ok,
        Availability::Downloading => t.info,
        Availability::Queued | Availability::Paused => t.accent,
        Availability::Incomplete => t.warn,
        Availability::Corrupted => t.error,
        Availability::Missing => t.dim,
    }
}

pub fn health_style(t: &Theme, h: HealthState) -> Style {
    match h {
        HealthState::Healthy => t.ok,
        HealthState::Degraded | HealthState::Incomplete => t.warn,
        HealthState::Corrupted => t.error,
        HealthState::Missing | HealthState::Unknown => t.dim,
    }
}

/// The symbol and word that say an alert's severity without colour.
pub fn severity_symbol(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "‼ critical",
        Severity::Warning => "! warning",
        Severity::Info => "i info",
    }
}

pub fn severity_style(t: &Theme, s: Severity) -> Style {
    match s {
        Severity::Critical => t.error,
        Severity::Warning => t.warn,
        Severity::Info => t.info,
    }
}

/// A pane's border with its title: thick and highlighted when the pane has the focus.
pub fn block<'a>(t: &Theme, title: String, focused: bool) -> Block<'a> {
    Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(if focused { t.border_focused } else { t.border })
        .title(Span::styled(title, t.title))
}

/// A one-line gauge whose filled part differs by symbol, not only by colour (readable under NO_COLOR).
pub fn line_gauge<'a>(t: &Theme, ratio: f64, label: String, filled: Style) -> LineGauge<'a> {
    LineGauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .label(label)
        .filled_symbol("━")
        .unfilled_symbol("─")
        .filled_style(filled)
        .unfilled_style(t.dim)
}

/// `2026-11-24 09:30` from an RFC 3339 time; `never` when there is none.
pub fn short_date(s: Option<&str>) -> String {
    match s {
        Some(s) if s.len() >= 16 => s[..16].replace('T', " "),
        Some(s) => s.to_string(),
        None => "never".into(),
    }
}
