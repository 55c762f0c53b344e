//! The console's UI state and key handling. Keys become [`Action`]s; what needs the engine is returned to the
//! runtime, the rest (navigation, dialogs, filter, pane switching) happens here.

use ratatui::crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::engine::events::{Availability, Severity};
use crate::engine::inventory::ModelInfo;
use crate::engine::migration::{STEPS, StepKind, StepOutcome, step_def};

use super::action::Action;
use super::state::{ConsoleState, StorageFacts};
use super::theme::Theme;

/// Terminals at least this wide show two panes side by side.
pub const WIDE_BREAKPOINT: u16 = 160;
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Models,
    Downloads,
    Health,
    Fallback,
    Migration,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Models,
        Pane::Downloads,
        Pane::Health,
        Pane::Fallback,
        Pane::Migration,
    ];

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Models => "Models",
            Pane::Downloads => "Downloads",
            Pane::Health => "Health",
            Pane::Fallback => "Fallback",
            Pane::Migration => "Migration",
        }
    }

    /// The pane's own keys (the help overlay and the hint line are generated from these).
    pub fn keys(self) -> &'static [KeyHelp] {
        match self {
            Pane::Models => MODELS_KEYS,
            Pane::Downloads => DOWNLOADS_KEYS,
            Pane::Health => HEALTH_KEYS,
            Pane::Fallback => FALLBACK_KEYS,
            Pane::Migration => MIGRATION_KEYS,
        }
    }
}

/// One documented key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHelp {
    pub keys: &'static str,
    /// One or two words for the hint line.
    pub hint: &'static str,
    /// The full description for the help overlay.
    pub action: &'static str,
}

const fn k(keys: &'static str, hint: &'static str, action: &'static str) -> KeyHelp {
    KeyHelp { keys, hint, action }
}

pub const GLOBAL_KEYS: &[KeyHelp] = &[
    k("1-5", "panes", "go to pane 1 Models … 5 Migration"),
    k("Tab / Shift-Tab", "next", "next / previous pane"),
    k("j k / ↓ ↑", "move", "move down / up"),
    k("g G / Home End", "ends", "first / last row"),
    k("PgDn PgUp / Ctrl-d Ctrl-u", "page", "page down / up"),
    k("Ctrl-r / F5", "rescan", "rescan the store"),
    k("?", "help", "this help"),
    k("Esc", "close", "close help, dialog or filter"),
    k(
        "q / Ctrl-c",
        "quit",
        "quit (asks when downloads are active)",
    ),
];

pub const MODELS_KEYS: &[KeyHelp] = &[
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

pub const DOWNLOADS_KEYS: &[KeyHelp] = &[
    k("p", "pause", "pause the download"),
    k("u", "resume", "resume the download"),
    k("c", "cancel", "cancel the download (asks first)"),
];

pub const HEALTH_KEYS: &[KeyHelp] = &[
    k("a", "ack", "acknowledge the alert"),
    k("A", "ack all", "acknowledge every alert"),
];

pub const FALLBACK_KEYS: &[KeyHelp] = &[
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

pub const MIGRATION_KEYS: &[KeyHelp] = &[
    k(
        "Enter",
        "run/confirm",
        "run the step (automatic) or mark it done (manual)",
    ),
    k("m", "done", "mark a manual step done"),
    k("s", "skip", "skip the step"),
    k("t", "retry", "retry a failed, skipped or done step"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
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

/// A scrollable list position: the selected row and the first visible row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListPos {
    pub selected: usize,
    pub offset: usize,
}

impl ListPos {
    pub fn clamp(&mut self, len: usize) {
        if len == 0 {
            self.selected = 0;
            self.offset = 0;
        } else if self.selected >= len {
            self.selected = len - 1;
        }
    }
    /// Keep the selection inside a window of `height` rows; returns the visible range.
    pub fn window(&mut self, len: usize, height: usize) -> std::ops::Range<usize> {
        self.clamp(len);
        let h = height.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + h {
            self.offset = self.selected + 1 - h;
        }
        if self.offset + h > len {
            self.offset = len.saturating_sub(h);
        }
        self.offset..(self.offset + h).min(len)
    }
    fn step(&mut self, delta: isize, len: usize) {
        if len == 0 {
            return;
        }
        let s = self.selected as isize + delta;
        self.selected = s.clamp(0, len as isize - 1) as usize;
    }
}

/// A question the operator must answer before `action` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub question: String,
    pub action: Action,
}

pub struct App {
    pub state: ConsoleState,
    pub theme: Theme,
    pub focus: Pane,
    /// The pane shown beside Models on wide terminals when Models has the focus.
    pub companion: Pane,
    pub models_pos: ListPos,
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
    pub downloads_pos: ListPos,
    pub health_pos: ListPos,
    pub fallback_pos: ListPos,
    /// The model the Fallback pane is about (else the one selected in Models).
    pub fallback_for: Option<String>,
    pub migration_pos: ListPos,
    pub help: bool,
    pub help_scroll: u16,
    pub confirm: Option<Confirm>,
    pub message: Option<(Severity, String)>,
    pub quit: bool,
    /// Rows of a page for PgUp/PgDn (updated by the renderer).
    pub page: usize,
}

impl App {
    pub fn new(state: ConsoleState, theme: Theme) -> Self {
        let mut app = App {
            state,
            theme,
            focus: Pane::Models,
            companion: Pane::Downloads,
            models_pos: ListPos::default(),
            filter: Input::default(),
            filtering: false,
            watch_input: None,
            sort: SortKey::Id,
            reverse: false,
            details: false,
            view: Vec::new(),
            view_key: None,
            downloads_pos: ListPos::default(),
            health_pos: ListPos::default(),
            fallback_pos: ListPos::default(),
            fallback_for: None,
            migration_pos: ListPos::default(),
            help: false,
            help_scroll: 0,
            confirm: None,
            message: None,
            quit: false,
            page: 10,
        };
        app.refresh_view();
        app
    }

    pub fn say(&mut self, level: Severity, msg: impl Into<String>) {
        self.message = Some((level, msg.into()));
    }

    /// Recompute the filtered, sorted model order when its inputs changed.
    pub fn refresh_view(&mut self) {
        let key = (
            self.state.models_generation,
            self.filter.value().to_string(),
            self.sort,
            self.reverse,
        );
        if self.view_key.as_ref() == Some(&key) {
            return;
        }
        let selected_id = self
            .view
            .get(self.models_pos.selected)
            .and_then(|i| self.state.models.get(*i))
            .map(|m| m.id.clone());
        let needle = self.filter.value().to_lowercase();
        let st = &self.state;
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
            && let Some(p) = self
                .view
                .iter()
                .position(|i| self.state.models[*i].id == id)
        {
            self.models_pos.selected = p;
        }
        self.models_pos.clamp(self.view.len());
    }

    pub fn selected_model(&self) -> Option<&ModelInfo> {
        self.view
            .get(self.models_pos.selected)
            .and_then(|i| self.state.models.get(*i))
    }

    /// The model the Fallback pane is about.
    pub fn fallback_target(&self) -> Option<String> {
        self.fallback_for
            .clone()
            .or_else(|| self.selected_model().map(|m| m.id.to_string()))
    }

    pub fn selected_download(&self) -> Option<String> {
        self.state
            .download_order
            .get(self.downloads_pos.selected)
            .cloned()
    }

    pub fn selected_alert(&self) -> Option<&super::state::AlertView> {
        self.state.alerts.get(self.health_pos.selected)
    }

    pub fn selected_step(&self) -> Option<&'static crate::engine::migration::StepDef> {
        STEPS.get(self.migration_pos.selected)
    }

    /// Panes on screen for a terminal `width` wide: the focused one, plus a companion on wide terminals.
    pub fn visible_panes(&self, width: u16) -> Vec<Pane> {
        if width >= WIDE_BREAKPOINT {
            if self.focus == Pane::Models {
                vec![Pane::Models, self.companion]
            } else {
                vec![Pane::Models, self.focus]
            }
        } else {
            vec![self.focus]
        }
    }

    fn focus_pane(&mut self, p: Pane) {
        self.focus = p;
        if p != Pane::Models {
            self.companion = p;
        }
    }

    fn list_len(&self, pane: Pane) -> usize {
        match pane {
            Pane::Models => self.view.len(),
            Pane::Downloads => self.state.download_order.len(),
            Pane::Health => self.state.alerts.len(),
            Pane::Fallback => self
                .fallback_target()
                .map(|t| self.state.fallback_for(&t).len())
                .unwrap_or(0),
            Pane::Migration => STEPS.len(),
        }
    }

    fn pos_mut(&mut self, pane: Pane) -> &mut ListPos {
        match pane {
            Pane::Models => &mut self.models_pos,
            Pane::Downloads => &mut self.downloads_pos,
            Pane::Health => &mut self.health_pos,
            Pane::Fallback => &mut self.fallback_pos,
            Pane::Migration => &mut self.migration_pos,
        }
    }

    fn navigate(&mut self, key: &KeyEvent) -> bool {
        let len = self.list_len(self.focus);
        let page = self.page.max(1) as isize;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let pos = self.pos_mut(self.focus);
        match key.code {
            KeyCode::Char('j') | KeyCode::Down if !ctrl => pos.step(1, len),
            KeyCode::Char('k') | KeyCode::Up if !ctrl => pos.step(-1, len),
            KeyCode::Char('g') | KeyCode::Home => pos.selected = 0,
            KeyCode::Char('G') | KeyCode::End => pos.selected = len.saturating_sub(1),
            KeyCode::PageDown => pos.step(page, len),
            KeyCode::PageUp => pos.step(-page, len),
            KeyCode::Char('d') if ctrl => pos.step(page, len),
            KeyCode::Char('u') if ctrl => pos.step(-page, len),
            _ => return false,
        }
        true
    }

    /// Route an action: ask first when it needs confirmation, handle UI-only ones here, return the rest.
    pub fn request(&mut self, a: Action) -> Vec<Action> {
        if let Some(question) = a.confirmation() {
            self.confirm = Some(Confirm {
                question,
                action: a,
            });
            return Vec::new();
        }
        match a {
            Action::Quit { confirmed: false } => {
                let n = self.state.active_downloads();
                if let Some(step) = self.state.migration_running.clone() {
                    let title = step_def(&step).map(|d| d.title).unwrap_or("a step");
                    self.confirm = Some(Confirm {
                        question: format!(
                            "The migration step \"{title}\" is running; quitting interrupts it (it is marked failed \
                             and can be retried). {n} download(s) active. Quit?"
                        ),
                        action: Action::Quit { confirmed: true },
                    });
                    Vec::new()
                } else if n > 0 {
                    self.confirm = Some(Confirm {
                        question: format!(
                            "{n} download(s) are active; they stop when the console quits (partial files are \
                             kept and resume next time). Quit?"
                        ),
                        action: Action::Quit { confirmed: true },
                    });
                    Vec::new()
                } else {
                    self.quit = true;
                    vec![Action::Quit { confirmed: true }]
                }
            }
            Action::Quit { confirmed: true } => {
                self.quit = true;
                vec![a]
            }
            Action::SuggestFallback(id) => {
                self.fallback_for = Some(id);
                self.fallback_pos = ListPos::default();
                self.focus_pane(Pane::Fallback);
                Vec::new()
            }
            Action::UseFallback {
                requested,
                alternative,
            } => {
                self.filter.reset();
                self.filtering = false;
                self.refresh_view();
                if let Some(p) = self
                    .view
                    .iter()
                    .position(|i| self.state.models[*i].id.as_str() == alternative)
                {
                    self.models_pos.selected = p;
                }
                let dir = crate::engine::store::RepoId::parse(&alternative)
                    .map(|r| {
                        self.state
                            .store_root
                            .join(r.folder_name())
                            .display()
                            .to_string()
                    })
                    .unwrap_or_default();
                self.focus_pane(Pane::Models);
                self.say(
                    Severity::Info,
                    format!("use {alternative} instead of {requested}: its files are in {dir}"),
                );
                Vec::new()
            }
            Action::Acknowledge(id) => {
                let derived = self.state.alerts.iter().any(|a| a.id == id && a.derived);
                if self.state.acknowledge(&id) {
                    self.say(Severity::Info, "alert acknowledged");
                    if !derived {
                        // Persist it in the engine's alert history too.
                        return vec![Action::Acknowledge(id)];
                    }
                }
                Vec::new()
            }
            Action::AcknowledgeAll => {
                let ids: Vec<String> = self.state.alerts.iter().map(|a| a.id.clone()).collect();
                let n = ids.iter().filter(|id| self.state.acknowledge(id)).count();
                self.say(Severity::Info, format!("{n} alert(s) acknowledged"));
                if n > 0 {
                    vec![Action::AcknowledgeAll]
                } else {
                    Vec::new()
                }
            }
            other => vec![other],
        }
    }

    /// Handle one terminal event. Returns the actions the runtime must execute.
    pub fn on_terminal_event(&mut self, ev: &TermEvent) -> Vec<Action> {
        match ev {
            TermEvent::Key(key) => self.on_key(*key),
            _ => Vec::new(),
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.kind != KeyEventKind::Press {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        // A dialog takes every key.
        if let Some(c) = self.confirm.take() {
            return match key.code {
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
            };
        }
        if self.help {
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
            return Vec::new();
        }
        if let Some(mut input) = self.watch_input.take() {
            match key.code {
                KeyCode::Esc => self.say(Severity::Info, "cancelled"),
                KeyCode::Enter => {
                    let id = input.value().trim().to_string();
                    if id.is_empty() {
                        self.say(Severity::Info, "cancelled");
                    } else if let Err(e) = crate::engine::store::RepoId::parse(&id) {
                        self.say(Severity::Warning, e.to_string());
                        self.watch_input = Some(input);
                    } else {
                        return self.request(Action::Watch(id));
                    }
                }
                KeyCode::Char('c') if ctrl => {
                    return self.request(Action::Quit { confirmed: false });
                }
                _ => {
                    input.handle_event(&TermEvent::Key(key));
                    self.watch_input = Some(input);
                }
            }
            return Vec::new();
        }
        if self.filtering && self.focus == Pane::Models {
            match key.code {
                KeyCode::Esc => {
                    self.filtering = false;
                    self.filter.reset();
                }
                KeyCode::Enter => self.filtering = false,
                KeyCode::Down | KeyCode::Up => {
                    self.navigate(&key);
                }
                KeyCode::Char('c') if ctrl => {
                    return self.request(Action::Quit { confirmed: false });
                }
                _ => {
                    self.filter.handle_event(&TermEvent::Key(key));
                    self.models_pos.selected = 0;
                }
            }
            self.refresh_view();
            return Vec::new();
        }
        // Global keys.
        match key.code {
            KeyCode::Char('c') if ctrl => return self.request(Action::Quit { confirmed: false }),
            KeyCode::Char('r') if ctrl => return self.request(Action::Refresh),
            KeyCode::F(5) => return self.request(Action::Refresh),
            KeyCode::Char('q') => return self.request(Action::Quit { confirmed: false }),
            KeyCode::Char('?') => {
                self.help = true;
                self.help_scroll = 0;
                return Vec::new();
            }
            KeyCode::Esc => {
                if !self.filter.value().is_empty() && self.focus == Pane::Models {
                    self.filter.reset();
                    self.refresh_view();
                }
                self.message = None;
                return Vec::new();
            }
            KeyCode::Char(c @ '1'..='5') => {
                self.focus_pane(Pane::ALL[(c as u8 - b'1') as usize]);
                return Vec::new();
            }
            KeyCode::Tab => {
                self.focus_pane(Pane::ALL[(self.focus.index() + 1) % 5]);
                return Vec::new();
            }
            KeyCode::BackTab => {
                self.focus_pane(Pane::ALL[(self.focus.index() + 4) % 5]);
                return Vec::new();
            }
            _ => {}
        }
        if self.navigate(&key) {
            return Vec::new();
        }
        match self.focus {
            Pane::Models => self.models_key(key),
            Pane::Downloads => self.downloads_key(key),
            Pane::Health => self.health_key(key),
            Pane::Fallback => self.fallback_key(key),
            Pane::Migration => self.migration_key(key),
        }
    }

    fn models_key(&mut self, key: KeyEvent) -> Vec<Action> {
        match key.code {
            KeyCode::Char('/') => {
                self.filtering = true;
                Vec::new()
            }
            KeyCode::Char('w') => {
                self.watch_input = Some(Input::default());
                self.say(
                    Severity::Info,
                    "repo id to watch (org/name), Enter adds it, Esc cancels",
                );
                Vec::new()
            }
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.refresh_view();
                Vec::new()
            }
            KeyCode::Char('S') => {
                self.reverse = !self.reverse;
                self.refresh_view();
                Vec::new()
            }
            KeyCode::Enter => {
                self.details = !self.details;
                Vec::new()
            }
            KeyCode::Char(c @ ('d' | 'v' | 'r' | 'x' | 'f')) => {
                let Some(id) = self.selected_model().map(|m| m.id.to_string()) else {
                    self.say(Severity::Warning, "no model selected");
                    return Vec::new();
                };
                let a = match c {
                    'd' => Action::Download(id),
                    'v' => Action::Verify(id),
                    'r' => Action::Repair(id),
                    'x' => Action::Delete {
                        model_id: id,
                        confirmed: false,
                    },
                    _ => Action::SuggestFallback(id),
                };
                self.request(a)
            }
            _ => Vec::new(),
        }
    }

    fn downloads_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let Some(id) = self.selected_download() else {
            if matches!(key.code, KeyCode::Char('p' | 'u' | 'c')) {
                self.say(Severity::Warning, "no download selected");
            }
            return Vec::new();
        };
        match key.code {
            KeyCode::Char('p') => self.request(Action::Pause(id)),
            KeyCode::Char('u') => self.request(Action::Resume(id)),
            KeyCode::Char('c') => self.request(Action::Cancel {
                model_id: id,
                confirmed: false,
            }),
            _ => Vec::new(),
        }
    }

    fn health_key(&mut self, key: KeyEvent) -> Vec<Action> {
        match key.code {
            KeyCode::Char('a') => match self.selected_alert().map(|a| a.id.clone()) {
                Some(id) => self.request(Action::Acknowledge(id)),
                None => Vec::new(),
            },
            KeyCode::Char('A') => self.request(Action::AcknowledgeAll),
            _ => Vec::new(),
        }
    }

    fn fallback_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let Some(target) = self.fallback_target() else {
            return Vec::new();
        };
        match key.code {
            KeyCode::Enter => {
                let sugg = self.state.fallback_for(&target);
                match sugg.get(self.fallback_pos.selected) {
                    Some(s) => self.request(Action::UseFallback {
                        requested: target,
                        alternative: s.model_id.clone(),
                    }),
                    None => {
                        self.say(Severity::Warning, "no suggestion to use");
                        Vec::new()
                    }
                }
            }
            KeyCode::Char('d') => self.request(Action::Download(target)),
            _ => Vec::new(),
        }
    }

    fn migration_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let Some(def) = self.selected_step() else {
            return Vec::new();
        };
        let step = def.id.to_string();
        let busy = self.state.migration_running.is_some();
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
                self.say(
                    Severity::Warning,
                    format!("\"{}\" is automatic: press Enter to run it", def.title),
                );
                return Vec::new();
            }
            KeyCode::Char('r') => {
                self.say(
                    Severity::Warning,
                    format!(
                        "\"{}\" is manual: ema has no engine work for it yet; do it, then press m",
                        def.title
                    ),
                );
                return Vec::new();
            }
            KeyCode::Char('s') => Action::MigrationSkip(step),
            KeyCode::Char('t') => Action::MigrationRetry(step),
            _ => return Vec::new(),
        };
        if busy && matches!(a, Action::MigrationRun { .. } | Action::MigrationRetry(_)) {
            self.say(
                Severity::Warning,
                "a migration step is running; wait for it to finish",
            );
            return Vec::new();
        }
        self.request(a)
    }

    /// Apply the result of a migration step run.
    pub fn migration_finished(&mut self, step: &str, outcome: StepOutcome) {
        self.state.migration_running = None;
        let title = step_def(step).map(|d| d.title).unwrap_or(step);
        let ok = outcome.ok;
        let details = outcome.details.clone();
        match self.state.migration.finish(step, outcome) {
            Ok(()) => self.say(
                if ok {
                    Severity::Info
                } else {
                    Severity::Critical
                },
                format!("{title}: {}", details),
            ),
            Err(e) => self.say(Severity::Critical, e.to_string()),
        }
    }

    pub fn set_storage(&mut self, s: StorageFacts) {
        self.state.set_storage(s);
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
