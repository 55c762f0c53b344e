//! Pane 1, Models: the store and the watch list as a table (filter as you type, sort, details of the selected model),
//! the "watch a repo id" prompt, and the keys that act on the selected model.

use ratatui::Frame;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::engine::events::{Availability, Severity};
use crate::engine::inventory::ModelInfo;

use crate::tui::action::Action;
use crate::tui::component::{DrawCtx, KeyHelp, ListPos, Reply, k};
use crate::tui::state::ConsoleState;
use crate::tui::units::human_bytes;
use crate::tui::widgets::{
    availability_style, availability_symbol, block, health_style, short_date,
};

pub const KEYS: &[KeyHelp] = &[
    k(
        "/",
        "filter",
        "filter as you type (Enter keeps, Esc clears)",
    ),
    k("s / S", "sort", "cycle sort column / reverse order"),
    k("Enter", "details", "details: files, hashes, metadata"),
    k("d", "download", "download (or resume) the model"),
    k("v", "verify", "verify the model's files"),
    k("r", "repair", "repair the model"),
    k("x", "delete", "delete the model (asks first)"),
    k("f", "fallback", "suggest a fallback (opens pane 4)"),
    k("w", "watch", "watch a repo id (saved in the configuration)"),
];

/// The Models table's sort column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Id,
    Task,
    Size,
    Status,
    Health,
    Verified,
}

impl SortKey {
    pub fn next(self) -> Self {
        match self {
            SortKey::Id => SortKey::Task,
            SortKey::Task => SortKey::Size,
            SortKey::Size => SortKey::Status,
            SortKey::Status => SortKey::Health,
            SortKey::Health => SortKey::Verified,
            SortKey::Verified => SortKey::Id,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Task => "task",
            SortKey::Size => "size",
            SortKey::Status => "status",
            SortKey::Health => "health",
            SortKey::Verified => "verified",
        }
    }
}

/// The Models pane's view state.
#[derive(Debug, Clone, Default)]
pub struct ModelsPane {
    pub pos: ListPos,
    pub filter: Input,
    pub filtering: bool,
    /// The "add to the watch list" prompt, when open.
    pub watch_input: Option<Input>,
    pub sort: SortKey,
    pub reverse: bool,
    pub details: bool,
    /// Indices into `state.models` in display order.
    pub view: Vec<usize>,
    view_key: Option<(u64, String, SortKey, bool)>,
}

impl ModelsPane {
    /// Recompute the filtered, sorted model order when its inputs changed.
    pub fn refresh_view(&mut self, st: &ConsoleState) {
        let key = (
            st.models_generation,
            self.filter.value().to_string(),
            self.sort,
            self.reverse,
        );
        if self.view_key.as_ref() == Some(&key) {
            return;
        }
        let selected_id = self
            .view
            .get(self.pos.selected)
            .and_then(|i| st.models.get(*i))
            .map(|m| m.id.clone());
        let needle = self.filter.value().to_lowercase();
        let models = &st.models;
        let mut v: Vec<usize> = (0..models.len())
            .filter(|i| {
                needle.is_empty() || {
                    let m = &models[*i];
                    m.id.as_str().to_lowercase().contains(&needle)
                        || st
                            .task_of(m)
                            .is_some_and(|t| t.to_lowercase().contains(&needle))
                }
            })
            .collect();
        let sort = self.sort;
        if sort != SortKey::Id {
            v.sort_by(|a, b| {
                let (ma, mb) = (&models[*a], &models[*b]);
                let o = match sort {
                    SortKey::Id => std::cmp::Ordering::Equal,
                    SortKey::Task => st.task_of(ma).cmp(&st.task_of(mb)),
                    SortKey::Size => st.size_of(mb).cmp(&st.size_of(ma)),
                    SortKey::Status => {
                        status_rank(ma.availability).cmp(&status_rank(mb.availability))
                    }
                    SortKey::Health => ma.health.as_str().cmp(mb.health.as_str()),
                    SortKey::Verified => last_verified(mb).cmp(&last_verified(ma)),
                };
                o.then_with(|| ma.id.cmp(&mb.id))
            });
        }
        if self.reverse {
            v.reverse();
        }
        self.view = v;
        self.view_key = Some(key);
        // Keep the same model selected when it is still shown.
        if let Some(id) = selected_id
            && let Some(p) = self.view.iter().position(|i| st.models[*i].id == id)
        {
            self.pos.selected = p;
        }
        self.pos.clamp(self.view.len());
    }

    pub fn selected<'a>(&self, state: &'a ConsoleState) -> Option<&'a ModelInfo> {
        self.view
            .get(self.pos.selected)
            .and_then(|i| state.models.get(*i))
    }

    /// Clear the filter and select `id` (the Fallback pane's "use this instead").
    pub fn show(&mut self, state: &ConsoleState, id: &str) {
        self.filter.reset();
        self.filtering = false;
        self.refresh_view(state);
        if let Some(p) = self
            .view
            .iter()
            .position(|i| state.models[*i].id.as_str() == id)
        {
            self.pos.selected = p;
        }
    }

    /// Esc outside the filter line: forget the filter.
    pub fn clear_filter(&mut self, state: &ConsoleState) {
        if !self.filter.value().is_empty() {
            self.filter.reset();
            self.refresh_view(state);
        }
    }

    /// Keys while the watch prompt or the filter line is open: they take every key. None when neither is open
    /// (the filter line only counts while the pane has the focus).
    pub fn on_prompt_key(
        &mut self,
        key: KeyEvent,
        state: &ConsoleState,
        focused: bool,
    ) -> Option<Reply> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(mut input) = self.watch_input.take() {
            return Some(match key.code {
                KeyCode::Esc => Reply::say(Severity::Info, "cancelled"),
                KeyCode::Enter => {
                    let id = input.value().trim().to_string();
                    if id.is_empty() {
                        Reply::say(Severity::Info, "cancelled")
                    } else if let Err(e) = crate::engine::store::RepoId::parse(&id) {
                        self.watch_input = Some(input);
                        Reply::say(Severity::Warning, e.to_string())
                    } else {
                        Reply::Request(Action::Watch(id))
                    }
                }
                KeyCode::Char('c') if ctrl => Reply::Request(Action::Quit { confirmed: false }),
                _ => {
                    input.handle_event(&TermEvent::Key(key));
                    self.watch_input = Some(input);
                    Reply::Done
                }
            });
        }
        if !(self.filtering && focused) {
            return None;
        }
        match key.code {
            KeyCode::Esc => {
                self.filtering = false;
                self.filter.reset();
            }
            KeyCode::Enter => self.filtering = false,
            KeyCode::Down | KeyCode::Up => {
                self.pos.navigate(&key, self.view.len(), 1);
            }
            KeyCode::Char('c') if ctrl => {
                return Some(Reply::Request(Action::Quit { confirmed: false }));
            }
            _ => {
                self.filter.handle_event(&TermEvent::Key(key));
                self.pos.selected = 0;
            }
        }
        self.refresh_view(state);
        Some(Reply::Done)
    }

    /// The pane's own keys.
    pub fn on_key(&mut self, key: KeyEvent, state: &ConsoleState) -> Reply {
        match key.code {
            KeyCode::Char('/') => {
                self.filtering = true;
                Reply::Done
            }
            KeyCode::Char('w') => {
                self.watch_input = Some(Input::default());
                Reply::say(
                    Severity::Info,
                    "repo id to watch (org/name), Enter adds it, Esc cancels",
                )
            }
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.refresh_view(state);
                Reply::Done
            }
            KeyCode::Char('S') => {
                self.reverse = !self.reverse;
                self.refresh_view(state);
                Reply::Done
            }
            KeyCode::Enter => {
                self.details = !self.details;
                Reply::Done
            }
            KeyCode::Char(c @ ('d' | 'v' | 'r' | 'x' | 'f')) => {
                let Some(id) = self.selected(state).map(|m| m.id.to_string()) else {
                    return Reply::say(Severity::Warning, "no model selected");
                };
                Reply::Request(match c {
                    'd' => Action::Download(id),
                    'v' => Action::Verify(id),
                    'r' => Action::Repair(id),
                    'x' => Action::Delete {
                        model_id: id,
                        confirmed: false,
                    },
                    _ => Action::SuggestFallback(id),
                })
            }
            _ => Reply::Done,
        }
    }

    /// Draw the pane (only the rows that fit). Returns the rows of a page for PgUp/PgDn when it drew a list.
    pub fn draw(&mut self, frame: &mut Frame, ctx: &DrawCtx, area: Rect) -> Option<usize> {
        self.refresh_view(ctx.state);
        let focused = ctx.focused;
        let title = format!(
            " 1 Models ({}/{}) · sort {}{} ",
            self.view.len(),
            ctx.state.models.len(),
            self.sort.as_str(),
            if self.reverse { " ↓" } else { " ↑" }
        );
        let outer = block(ctx.theme, title, focused);
        let inner = outer.inner(area);
        frame.render_widget(outer, area);

        let show_filter =
            self.filtering || !self.filter.value().is_empty() || self.watch_input.is_some();
        let details_h = if self.details {
            (inner.height / 2).max(6)
        } else {
            0
        };
        let [filter_area, table_area, details_area] = inner.layout(&Layout::vertical([
            Constraint::Length(if show_filter { 1 } else { 0 }),
            Constraint::Min(3),
            Constraint::Length(details_h),
        ]));
        if show_filter {
            self.draw_prompt(frame, ctx, filter_area);
        }

        if ctx.state.models.is_empty() {
            let msg = format!(
                "No models in {} and none wanted.\nPress w to add a repo id to the watch list, then d to download \
                 it (or run `ema download ORG/NAME`).",
                ctx.state.store_root.display()
            );
            frame.render_widget(
                Paragraph::new(msg)
                    .style(ctx.theme.dim)
                    .wrap(Wrap { trim: true }),
                table_area,
            );
            return None;
        }

        let page = self.draw_table(frame, ctx, table_area);

        if self.details && details_area.height > 0 {
            self.draw_details(frame, ctx, details_area);
        }
        Some(page)
    }

    /// The table of models (only the rows that fit). Returns the rows of a page.
    fn draw_table(&mut self, frame: &mut Frame, ctx: &DrawCtx, table_area: Rect) -> usize {
        let t = ctx.theme;
        let focused = ctx.focused;
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
        let range = self.pos.window(self.view.len(), rows_h);
        let mut rows = Vec::with_capacity(range.len());
        for vi in range.clone() {
            let m = &ctx.state.models[self.view[vi]];
            let avail = ctx.state.effective_availability(m);
            let sym = Cell::from(availability_symbol(avail)).style(availability_style(t, avail));
            let id = if m.wanted {
                format!("{} ★", m.id)
            } else {
                m.id.to_string()
            };
            let status = Cell::from(ctx.state.status_label(m)).style(availability_style(t, avail));
            let health = Cell::from(m.health.as_str()).style(health_style(t, m.health));
            let size = match ctx.state.size_of(m) {
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
                    Cell::from(ctx.state.task_of(m).unwrap_or("-").to_string()),
                    Cell::from(size),
                    Cell::from(commit).style(t.dim),
                    status,
                    health,
                    Cell::from(short_date(last_verified(m))).style(t.dim),
                ]
            } else {
                vec![sym, Cell::from(id), Cell::from(size), status, health]
            };
            rows.push(Row::new(cells));
        }
        let mut ts = TableState::default().with_selected(Some(self.pos.selected - range.start));
        let table = Table::new(rows, widths)
            .header(Row::new(header_cells).style(t.header))
            .row_highlight_style(if focused {
                t.selected
            } else {
                t.dim.add_modifier(Modifier::REVERSED)
            })
            .column_spacing(1);
        frame.render_stateful_widget(table, table_area, &mut ts);

        rows_h.max(1)
    }

    /// The watch prompt when it is open, else the filter line.
    fn draw_prompt(&self, frame: &mut Frame, ctx: &DrawCtx, area: Rect) {
        let t = ctx.theme;
        match &self.watch_input {
            Some(input) => draw_input_line(
                frame,
                area,
                input,
                ("watch: ", t.accent),
                t.text,
                ctx.focused,
            ),
            None => {
                let style = if self.filtering { t.accent } else { t.dim };
                let cursor = self.filtering && ctx.focused;
                draw_input_line(frame, area, &self.filter, ("/ ", style), t.text, cursor);
            }
        }
    }

    fn draw_details(&self, frame: &mut Frame, ctx: &DrawCtx, area: Rect) {
        let t = ctx.theme;
        let Some(m) = self.selected(ctx.state) else {
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
            ctx.state
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
}

/// One input line: a styled prefix, then the part of the input that fits; the cursor placed when `cursor`.
fn draw_input_line(
    frame: &mut Frame,
    area: Rect,
    input: &Input,
    (prefix, prefix_style): (&str, Style),
    text: Style,
    cursor: bool,
) {
    let width = area.width.saturating_sub(prefix.len() as u16) as usize;
    let scroll = input.visual_scroll(width);
    let value: String = input.value().chars().skip(scroll).collect();
    frame.render_widget(
        Line::from(vec![
            Span::styled(prefix, prefix_style),
            Span::styled(value, text),
        ]),
        area,
    );
    if cursor {
        let x = (input.visual_cursor().max(scroll) - scroll) as u16;
        frame.set_cursor_position((area.x + prefix.len() as u16 + x, area.y));
    }
}

fn status_rank(a: Availability) -> u8 {
    match a {
        Availability::Corrupted => 0,
        Availability::Incomplete => 1,
        Availability::Downloading => 2,
        Availability::Paused => 3,
        Availability::Queued => 4,
        Availability::Missing => 5,
        Availability::Available => 6,
    }
}

fn last_verified(m: &ModelInfo) -> Option<&str> {
    m.metadata
        .as_ref()
        .and_then(|x| x.last_verified_at.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::HealthState;
    use crate::engine::store::VerificationState;
    use crate::tui::app::App;
    use crate::tui::panes::Pane;
    use crate::tui::tests::fixtures::*;
    use crate::tui::theme::Theme;

    #[test]
    fn filter_as_you_type() {
        let mut a = app();
        chars(&mut a, "/distil");
        assert!(a.models.filtering);
        assert_eq!(a.models.view.len(), 1);
        // Keys go to the filter while it is open, not to actions.
        assert!(chars(&mut a, "q").is_empty());
        assert!(!a.quit);
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Enter);
        assert!(!a.models.filtering);
        assert_eq!(a.models.filter.value(), "distil");
        assert_eq!(
            a.selected_model().unwrap().id.as_str(),
            "ema-demo/tiny-distilbert"
        );
        // Filter by task too.
        let mut a = app();
        chars(&mut a, "/text2text");
        assert_eq!(a.models.view.len(), 1);
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.models.view.len(), 5);
        assert_eq!(a.models.filter.value(), "");
    }

    #[test]
    fn delete_asks_first() {
        let mut a = app();
        assert!(press(&mut a, KeyCode::Char('x')).is_empty());
        assert!(a.confirm.is_some());
        // Other keys do nothing while the dialog is open.
        assert!(press(&mut a, KeyCode::Char('j')).is_empty());
        assert!(press(&mut a, KeyCode::Char('n')).is_empty());
        assert!(a.confirm.is_none());
        press(&mut a, KeyCode::Char('x'));
        expect_actions(
            &mut a,
            KeyCode::Char('y'),
            vec![Action::Delete {
                model_id: "ema-demo/tiny-bert".into(),
                confirmed: true,
            }],
        );
    }

    #[test]
    fn model_actions_map_to_engine_requests() {
        let mut a = app();
        press(&mut a, KeyCode::Char('j'));
        press(&mut a, KeyCode::Char('j'));
        expect_actions(
            &mut a,
            KeyCode::Char('d'),
            vec![Action::Download("ema-demo/tiny-gpt2".into())],
        );
        expect_actions(
            &mut a,
            KeyCode::Char('v'),
            vec![Action::Verify("ema-demo/tiny-gpt2".into())],
        );
        expect_actions(
            &mut a,
            KeyCode::Char('r'),
            vec![Action::Repair("ema-demo/tiny-gpt2".into())],
        );
        // f opens the Fallback pane on the model; Enter there uses the top suggestion.
        press(&mut a, KeyCode::Char('j'));
        assert!(press(&mut a, KeyCode::Char('f')).is_empty());
        assert_eq!(a.focus, Pane::Fallback);
        assert_eq!(a.fallback_target().unwrap(), "ema-demo/tiny-roberta");
        let s = a.state.fallback_offers("ema-demo/tiny-roberta");
        // Both are the same task and healthy; the closer size ranks first.
        assert_eq!(s[0].model_id, "ema-demo/tiny-distilbert");
        assert!(s[0].score > s[1].score);
        assert!(press(&mut a, KeyCode::Enter).is_empty());
        assert_eq!(a.focus, Pane::Models);
        assert_eq!(
            a.selected_model().unwrap().id.as_str(),
            "ema-demo/tiny-distilbert"
        );
        press(&mut a, KeyCode::Char('4'));
        expect_actions(
            &mut a,
            KeyCode::Char('d'),
            vec![Action::QueueRequest("ema-demo/tiny-roberta".into())],
        );
    }

    #[test]
    fn list_window_keeps_selection_visible_with_5000_models() {
        let mut st = ConsoleState::default();
        st.set_models(
            (0..5000)
                .map(|i| {
                    model(
                        &format!("org/model-{i:05}"),
                        Some(meta(
                            &format!("org/model-{i:05}"),
                            "text-generation",
                            &[("model.safetensors", 1000 + i as u64)],
                            VerificationState::Verified,
                        )),
                        Availability::Available,
                        HealthState::Healthy,
                        false,
                        &[],
                    )
                })
                .collect(),
        );
        let mut a = App::new(st, Theme::load("dark", false, None).unwrap());
        press(&mut a, KeyCode::Char('G'));
        let t = render(&mut a, 120, 40);
        assert!(screen(&t).contains("org/model-04999"));
        press(&mut a, KeyCode::PageUp);
        press(&mut a, KeyCode::PageUp);
        let t = render(&mut a, 120, 40);
        let s = screen(&t);
        let sel = a.selected_model().unwrap().id.to_string();
        assert!(s.contains(&sel) && !s.contains("org/model-04999"), "{s}");
        chars(&mut a, "/model-0420");
        assert_eq!(a.models.view.len(), 10);
    }

    #[test]
    fn watch_prompt_adds_a_repo_id() {
        let mut a = app();
        assert!(press(&mut a, KeyCode::Char('w')).is_empty());
        assert!(a.models.watch_input.is_some());
        // Keys go to the prompt: not a download, not a quit.
        assert!(chars(&mut a, "org/bad name").is_empty());
        assert!(press(&mut a, KeyCode::Enter).is_empty());
        assert!(a.message.as_ref().unwrap().1.contains("invalid repo id"));
        for _ in 0.."bad name".len() {
            press(&mut a, KeyCode::Backspace);
        }
        chars(&mut a, "new-model");
        let t = render(&mut a, 80, 24);
        assert!(screen(&t).contains("watch: org/new-model"));
        expect_actions(
            &mut a,
            KeyCode::Enter,
            vec![Action::Watch("org/new-model".into())],
        );
        assert!(a.models.watch_input.is_none());
        press(&mut a, KeyCode::Char('w'));
        press(&mut a, KeyCode::Esc);
        assert!(a.models.watch_input.is_none());
    }
}
