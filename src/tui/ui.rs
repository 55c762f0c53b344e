//! Drawing. Pure functions of the [`App`]; only the rows that fit are built, so thousands of models cost what a
//! screenful costs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, BorderType, Cell, Clear, LineGauge, Paragraph, Row, Sparkline, Table, TableState, Wrap,
};

use crate::engine::events::{Availability, HealthState, Severity};
use crate::engine::migration::{Phase, STEPS, StepKind, StepState};

use super::app::{App, GLOBAL_KEYS, KeyHelp, MIN_HEIGHT, MIN_WIDTH, Pane};
use super::state::{DownloadState, human_bytes, human_eta, human_rate};
use super::theme::Theme;

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

fn block<'a>(t: &Theme, title: String, focused: bool) -> Block<'a> {
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
fn line_gauge<'a>(t: &Theme, ratio: f64, label: String, filled: Style) -> LineGauge<'a> {
    LineGauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .label(label)
        .filled_symbol("━")
        .unfilled_symbol("─")
        .filled_style(filled)
        .unfilled_style(t.dim)
}

fn short_date(s: Option<&str>) -> String {
    match s {
        Some(s) if s.len() >= 16 => s[..16].replace('T', " "),
        Some(s) => s.to_string(),
        None => "never".into(),
    }
}

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
    match pane {
        Pane::Models => draw_models(frame, app, area),
        Pane::Downloads => draw_downloads(frame, app, area),
        Pane::Health => draw_health(frame, app, area),
        Pane::Fallback => draw_fallback(frame, app, area),
        Pane::Migration => draw_migration(frame, app, area),
    }
}

fn draw_models(frame: &mut Frame, app: &mut App, area: Rect) {
    app.refresh_view();
    let focused = app.focus == Pane::Models;
    let title = format!(
        " 1 Models ({}/{}) · sort {}{} ",
        app.view.len(),
        app.state.models.len(),
        app.sort.as_str(),
        if app.reverse { " ↓" } else { " ↑" }
    );
    let outer = block(&app.theme, title, focused);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);

    let show_filter = app.filtering || !app.filter.value().is_empty() || app.watch_input.is_some();
    let details_h = if app.details {
        (inner.height / 2).max(6)
    } else {
        0
    };
    let [filter_area, table_area, details_area] = inner.layout(&Layout::vertical([
        Constraint::Length(if show_filter { 1 } else { 0 }),
        Constraint::Min(3),
        Constraint::Length(details_h),
    ]));
    let t = app.theme.clone();
    if let Some(input) = &app.watch_input {
        let prefix = "watch: ";
        let width = filter_area.width.saturating_sub(prefix.len() as u16) as usize;
        let scroll = input.visual_scroll(width);
        let value: String = input.value().chars().skip(scroll).collect();
        frame.render_widget(
            Line::from(vec![
                Span::styled(prefix, t.accent),
                Span::styled(value, t.text),
            ]),
            filter_area,
        );
        if focused {
            let x = (input.visual_cursor().max(scroll) - scroll) as u16;
            frame.set_cursor_position((filter_area.x + prefix.len() as u16 + x, filter_area.y));
        }
    } else if show_filter {
        let prefix = "/ ";
        let width = filter_area.width.saturating_sub(prefix.len() as u16) as usize;
        let scroll = app.filter.visual_scroll(width);
        let value: String = app.filter.value().chars().skip(scroll).collect();
        let style = if app.filtering { t.accent } else { t.dim };
        frame.render_widget(
            Line::from(vec![
                Span::styled(prefix, style),
                Span::styled(value, t.text),
            ]),
            filter_area,
        );
        if app.filtering && focused {
            let x = (app.filter.visual_cursor().max(scroll) - scroll) as u16;
            frame.set_cursor_position((filter_area.x + prefix.len() as u16 + x, filter_area.y));
        }
    }

    if app.state.models.is_empty() {
        let msg = format!(
            "No models in {} and none wanted.\nPress w to add a repo id to the watch list, then d to download \
             it (or run `ema download ORG/NAME`).",
            app.state.store_root.display()
        );
        frame.render_widget(
            Paragraph::new(msg).style(t.dim).wrap(Wrap { trim: true }),
            table_area,
        );
        return;
    }

    let wide = table_area.width >= 100;
    let header_cells: Vec<&str> = if wide {
        vec![
            "", "model", "task", "size", "commit", "status", "health", "verified",
        ]
    } else {
        vec!["", "model", "size", "status", "health"]
    };
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(1),
            Constraint::Min(24),
            Constraint::Length(22),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(16),
            Constraint::Length(10),
            Constraint::Length(16),
        ]
    } else {
        vec![
            Constraint::Length(1),
            Constraint::Min(20),
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Length(10),
        ]
    };
    let rows_h = table_area.height.saturating_sub(1) as usize;
    app.page = rows_h.max(1);
    let range = app.models_pos.window(app.view.len(), rows_h);
    let mut rows = Vec::with_capacity(range.len());
    for vi in range.clone() {
        let m = &app.state.models[app.view[vi]];
        let avail = app.state.effective_availability(m);
        let sym = Cell::from(availability_symbol(avail)).style(availability_style(&t, avail));
        let id = if m.wanted {
            format!("{} ★", m.id)
        } else {
            m.id.to_string()
        };
        let status = Cell::from(app.state.status_label(m)).style(availability_style(&t, avail));
        let health = Cell::from(m.health.as_str()).style(health_style(&t, m.health));
        let size = match app.state.size_of(m) {
            0 => "-".into(),
            s => human_bytes(s),
        };
        let cells: Vec<Cell> = if wide {
            let commit = m
                .metadata
                .as_ref()
                .and_then(|x| x.commit.as_deref())
                .map(|c| c.chars().take(7).collect::<String>())
                .unwrap_or_else(|| "-".into());
            vec![
                sym,
                Cell::from(id),
                Cell::from(app.state.task_of(m).unwrap_or("-").to_string()),
                Cell::from(size),
                Cell::from(commit).style(t.dim),
                status,
                health,
                Cell::from(short_date(
                    m.metadata
                        .as_ref()
                        .and_then(|x| x.last_verified_at.as_deref()),
                ))
                .style(t.dim),
            ]
        } else {
            vec![sym, Cell::from(id), Cell::from(size), status, health]
        };
        rows.push(Row::new(cells));
    }
    let mut ts = TableState::default().with_selected(Some(app.models_pos.selected - range.start));
    let table = Table::new(rows, widths)
        .header(Row::new(header_cells).style(t.header))
        .row_highlight_style(if focused {
            t.selected
        } else {
            t.dim.add_modifier(Modifier::REVERSED)
        })
        .column_spacing(1);
    frame.render_stateful_widget(table, table_area, &mut ts);

    if app.details && details_area.height > 0 {
        draw_model_details(frame, app, details_area);
    }
}

fn draw_model_details(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(m) = app.selected_model() else {
        return;
    };
    let mut lines = vec![];
    let mut kv = |k: &str, v: String| {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:<10}"), t.header),
            Span::raw(v),
        ]))
    };
    kv(
        "path",
        app.state
            .store_root
            .join(m.id.folder_name())
            .display()
            .to_string(),
    );
    if let Some(meta) = &m.metadata {
        kv(
            "revision",
            format!(
                "{} @ {}",
                meta.requested_revision,
                meta.commit
                    .as_deref()
                    .unwrap_or("(no commit: local metadata)")
            ),
        );
        kv(
            "library",
            format!(
                "{}  tags: {}",
                meta.library_name.as_deref().unwrap_or("-"),
                if meta.tags.is_empty() {
                    "-".into()
                } else {
                    meta.tags.join(", ")
                }
            ),
        );
        kv(
            "verified",
            format!(
                "{:?} · last {}",
                meta.verification,
                short_date(meta.last_verified_at.as_deref())
            ),
        );
    }
    for p in &m.problems {
        lines.push(Line::styled(format!("⚠ {p}"), t.warn));
    }
    if let Some(meta) = &m.metadata {
        lines.push(Line::styled(
            format!(
                "files ({}, {})",
                meta.files.len(),
                human_bytes(meta.total_size)
            ),
            t.header,
        ));
        for f in &meta.files {
            let hash = f
                .sha256
                .as_deref()
                .map(|h| format!("sha256:{}", &h[..h.len().min(16)]))
                .or_else(|| {
                    f.git_sha1
                        .as_deref()
                        .map(|h| format!("sha1:{}", &h[..h.len().min(16)]))
                })
                .unwrap_or_else(|| "no hash".into());
            lines.push(Line::from(vec![
                Span::raw(format!("  {:<36} ", f.path)),
                Span::raw(format!("{:>9} ", human_bytes(f.size))),
                Span::styled(hash, t.dim),
                Span::raw(if f.lfs { " lfs" } else { "" }),
            ]));
        }
    }
    let b = Block::bordered()
        .border_style(t.border)
        .title(Span::styled(format!(" {} ", m.id), t.title));
    frame.render_widget(Paragraph::new(lines).block(b), area);
}

fn draw_downloads(frame: &mut Frame, app: &mut App, area: Rect) {
    let t = app.theme.clone();
    let focused = app.focus == Pane::Downloads;
    let active = app.state.active_downloads();
    let title = format!(
        " 2 Downloads · {active} active · {} ",
        human_rate(app.state.total_rate())
    );
    let outer = block(&t, title, focused);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let [list_area, spark_area] = inner.layout(&Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(5),
    ]));
    if app.state.download_order.is_empty() {
        frame.render_widget(
            Paragraph::new(
                "No downloads yet.\nSelect a model in pane 1 (Models) and press d to start one; progress, rate, ETA \
                 and retries show up here.",
            )
            .style(t.dim)
            .wrap(Wrap { trim: true }),
            list_area,
        );
    } else {
        // Each download takes 2 lines (gauge + facts); the selected one also lists its files and last error.
        let order = app.state.download_order.clone();
        let per = 2usize;
        let sel_extra = app
            .selected_download()
            .and_then(|id| app.state.download(&id))
            .map(|d| d.files.len().min(6) + usize::from(d.last_error.is_some()))
            .unwrap_or(0);
        let fit = ((list_area.height as usize).saturating_sub(sel_extra) / per).max(1);
        app.page = fit;
        let range = app.downloads_pos.window(order.len(), fit);
        let mut y = list_area.y;
        let bottom = list_area.y + list_area.height;
        for i in range {
            let Some(d) = app.state.download(&order[i]) else {
                continue;
            };
            if y >= bottom {
                break;
            }
            let selected = i == app.downloads_pos.selected;
            let name_style = if selected && focused {
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
            let label = format!("{:>3.0}%", d.ratio() * 100.0);
            let row = Rect::new(list_area.x, y, list_area.width, 1);
            let [name_a, gauge_a] = row.layout(&Layout::horizontal([
                Constraint::Percentage(40),
                Constraint::Percentage(60),
            ]));
            frame.render_widget(
                Line::from(vec![
                    Span::styled(if selected { "▶ " } else { "  " }, name_style),
                    Span::styled(d.model_id.clone(), name_style),
                ]),
                name_a,
            );
            frame.render_widget(line_gauge(&t, d.ratio(), label, t.gauge), gauge_a);
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
                // Files still moving first, then the finished ones.
                let mut files: Vec<_> = d.files.iter().collect();
                files.sort_by_key(|(p, f)| (f.verified || (f.total > 0 && f.done >= f.total), *p));
                for (path, f) in files.into_iter().take(6) {
                    if y >= bottom {
                        break;
                    }
                    let r = Rect::new(list_area.x, y, list_area.width, 1);
                    let [a, b] = r.layout(&Layout::horizontal([
                        Constraint::Percentage(40),
                        Constraint::Percentage(60),
                    ]));
                    let ratio = if f.total == 0 {
                        0.0
                    } else {
                        (f.done as f64 / f.total as f64).clamp(0.0, 1.0)
                    };
                    frame.render_widget(
                        Line::styled(
                            format!("      {}{}", if f.verified { "✓ " } else { "" }, path),
                            t.dim,
                        ),
                        a,
                    );
                    frame.render_widget(
                        line_gauge(&t, ratio, format!("{:>3.0}%", ratio * 100.0), t.gauge),
                        b,
                    );
                    y += 1;
                }
                if let Some(e) = &d.last_error
                    && y < bottom
                {
                    frame.render_widget(
                        Line::styled(format!("    last error: {e}"), t.error),
                        Rect::new(list_area.x, y, list_area.width, 1),
                    );
                    y += 1;
                }
            }
        }
    }
    let data: Vec<u64> = app.state.rate_history.iter().copied().collect();
    let peak = data.iter().copied().max().unwrap_or(0);
    let width = spark_area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(width)..];
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().border_style(t.border).title(Span::styled(
                format!(
                    " throughput · now {} · peak {} ",
                    human_rate(app.state.total_rate()),
                    human_rate(peak as f64)
                ),
                t.title,
            )))
            .data(shown)
            .style(t.sparkline),
        spark_area,
    );
}

fn draw_health(frame: &mut Frame, app: &mut App, area: Rect) {
    let t = app.theme.clone();
    let focused = app.focus == Pane::Health;
    let n = app.state.unacknowledged_alerts();
    let outer = block(
        &t,
        format!(" 3 Health · {n} unacknowledged alert(s) "),
        focused,
    );
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let [storage_a, alerts_a, detail_a] = inner.layout(&Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(4),
        Constraint::Length(6),
    ]));

    // Storage against the budget and the cleanup threshold.
    let s = &app.state.storage;
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
            &t,
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
    for m in &app.state.models {
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

    if app.state.alerts.is_empty() {
        frame.render_widget(
            Paragraph::new(
                "No alerts. Problems found in the store and by health checks appear here.",
            )
            .style(t.dim)
            .wrap(Wrap { trim: true }),
            alerts_a,
        );
    } else {
        let h = alerts_a.height.saturating_sub(1) as usize;
        app.page = h.max(1);
        let range = app.health_pos.window(app.state.alerts.len(), h);
        let rows: Vec<Row> = app.state.alerts[range.clone()]
            .iter()
            .map(|a| {
                let style = if a.acknowledged {
                    t.dim
                } else {
                    severity_style(&t, a.severity)
                };
                Row::new(vec![
                    Cell::from(severity_symbol(a.severity)).style(style),
                    Cell::from(short_date(Some(&a.at))).style(t.dim),
                    Cell::from(if a.acknowledged { "✓ ack" } else { "" }).style(t.dim),
                    Cell::from(if a.count > 1 {
                        format!("×{} {}", a.count, a.message)
                    } else {
                        a.message.clone()
                    })
                    .style(if a.acknowledged { t.dim } else { t.text }),
                ])
            })
            .collect();
        let mut ts =
            TableState::default().with_selected(Some(app.health_pos.selected - range.start));
        frame.render_stateful_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(10),
                    Constraint::Length(16),
                    Constraint::Length(5),
                    Constraint::Min(20),
                ],
            )
            .header(Row::new(vec!["severity", "when", "", "alert"]).style(t.header))
            .row_highlight_style(if focused { t.selected } else { t.text }),
            alerts_a,
            &mut ts,
        );
    }

    // Details of the selected alert's model.
    let mut lines = Vec::new();
    if let Some(a) = app.selected_alert() {
        if let Some(act) = &a.suggested_action {
            lines.push(Line::from(vec![
                Span::styled("fix      ", t.header),
                Span::raw(act.clone()),
            ]));
        }
        if let Some(mid) = &a.model_id
            && let Some(m) = app.state.model(mid)
        {
            lines.push(Line::from(vec![
                Span::styled("model    ", t.header),
                Span::raw(format!("{} · ", m.id)),
                Span::styled(m.health.as_str(), health_style(&t, m.health)),
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

fn draw_fallback(frame: &mut Frame, app: &mut App, area: Rect) {
    let t = app.theme.clone();
    let focused = app.focus == Pane::Fallback;
    let outer = block(&t, " 4 Fallback ".into(), focused);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let Some(target) = app.fallback_target() else {
        frame.render_widget(
            Paragraph::new("Select a model in pane 1 and press f to see what to use instead.")
                .style(t.dim)
                .wrap(Wrap { trim: true }),
            inner,
        );
        return;
    };
    let [head, list, foot] = inner.layout(&Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(3),
        Constraint::Length(2),
    ]));
    let (status, task) = match app.state.model(&target) {
        Some(m) => (
            app.state.status_label(m),
            app.state
                .task_of(m)
                .unwrap_or("unknown task (not in the store; the hub has not said)")
                .to_string(),
        ),
        None => ("not in the store".into(), "unknown task".into()),
    };
    let avail = app
        .state
        .model(&target)
        .map(|m| app.state.effective_availability(m));
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
                    avail.map(|a| availability_style(&t, a)).unwrap_or(t.dim),
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
    let sugg = app.state.fallback_for(&target);
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
        app.page = h.max(1);
        let range = app.fallback_pos.window(sugg.len(), h);
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
        let mut ts =
            TableState::default().with_selected(Some(app.fallback_pos.selected - range.start));
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
}

fn draw_migration(frame: &mut Frame, app: &mut App, area: Rect) {
    let t = app.theme.clone();
    let focused = app.focus == Pane::Migration;
    let st = &app.state.migration;
    let total_done: usize = [Phase::PreMigration, Phase::Migration, Phase::PostMigration]
        .iter()
        .map(|p| st.progress(*p).0)
        .sum();
    let outer = block(
        &t,
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
    // Lines: a header per phase, then its steps. Keep the selected step visible.
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
        let selected = i == app.migration_pos.selected;
        let base = step_style(&t, state);
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
    app.page = h.max(1);
    let sel_line = lines
        .iter()
        .position(|(i, _)| *i == Some(app.migration_pos.selected))
        .unwrap_or(0);
    let offset = sel_line.saturating_sub(h.saturating_sub(2));
    let shown: Vec<Line> = lines
        .into_iter()
        .skip(offset)
        .take(h)
        .map(|(_, l)| l)
        .collect();
    frame.render_widget(Paragraph::new(shown), list_a);

    let Some(def) = app.selected_step() else {
        return;
    };
    let rec = app.state.migration.record(def.id);
    let state = rec.map(|r| r.state).unwrap_or(StepState::Pending);
    let mut d: Vec<Line> = vec![
        Line::from(vec![
            Span::styled(step_symbol(state), step_style(&t, state)),
            Span::raw(" "),
            Span::styled(def.title, t.text.add_modifier(Modifier::BOLD)),
            Span::styled(format!("  {}", state.as_str()), step_style(&t, state)),
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
                Span::styled(det.clone(), step_style(&t, state)),
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
    if let Some(b) = &app.state.migration.last_backup {
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
    let n = app.state.active_downloads();
    let mut text = format!(
        " {online} {} │ ↓ {n} · {} │ ⚠ {} alerts",
        hub.endpoint,
        human_rate(app.state.total_rate()),
        app.state.unacknowledged_alerts(),
    );
    if area.width >= 100 {
        text.push_str(&format!(" │ {} models", app.state.models.len()));
    }
    text.push_str(" │ ? help · q quit");
    frame.render_widget(Paragraph::new(text).style(t.status_bar), area);
}

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

fn draw_help(frame: &mut Frame, app: &App, area: Rect) {
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

fn draw_confirm(frame: &mut Frame, app: &App, area: Rect) {
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
