//! The console's app: the view model, the focus, each pane's view state, the message line and the dialogs' state.
//! Keys are routed here (dialogs and prompts first, then global keys, list navigation, the focused pane's keys) and
//! become [`Action`]s; what needs the engine is returned to the runtime, the rest (navigation, dialogs, filter, pane
//! switching) happens here.

use ratatui::crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};

use crate::engine::error::Result;
use crate::engine::events::Severity;
use crate::engine::inventory::ModelInfo;
use crate::engine::migration::{MigrationState, STEPS, StepState, step_def};

use super::action::Action;
use super::component::{KeyHelp, ListPos, Reply, k};
use super::panes::Pane;
use super::panes::downloads::DownloadsPane;
use super::panes::fallback::FallbackPane;
use super::panes::health::HealthPane;
use super::panes::migration::MigrationPane;
use super::panes::models::ModelsPane;
use super::state::{ConsoleState, StorageFacts};
use super::theme::Theme;

/// Terminals at least this wide show two panes side by side.
pub const WIDE_BREAKPOINT: u16 = 160;

/// The keys that work in every pane.
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
    pub models: ModelsPane,
    pub downloads: DownloadsPane,
    pub health: HealthPane,
    pub fallback: FallbackPane,
    pub migration: MigrationPane,
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
            models: ModelsPane::default(),
            downloads: DownloadsPane::default(),
            health: HealthPane::default(),
            fallback: FallbackPane::default(),
            migration: MigrationPane::default(),
            help: false,
            help_scroll: 0,
            confirm: None,
            message: None,
            quit: false,
            page: 10,
        };
        app.models.refresh_view(&app.state);
        app
    }

    pub fn say(&mut self, level: Severity, msg: impl Into<String>) {
        self.message = Some((level, msg.into()));
    }

    pub fn selected_model(&self) -> Option<&ModelInfo> {
        self.models.selected(&self.state)
    }

    /// The model the Fallback pane is about: the one it was opened on, else the one selected in Models.
    pub fn fallback_target(&self) -> Option<String> {
        self.fallback
            .target
            .clone()
            .or_else(|| self.selected_model().map(|m| m.id.to_string()))
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
            Pane::Models => self.models.view.len(),
            Pane::Downloads => self.state.download_order.len(),
            Pane::Health => self.state.alerts.len(),
            Pane::Fallback => self
                .fallback_target()
                .map(|t| self.state.fallback_offers(&t).len())
                .unwrap_or(0),
            Pane::Migration => STEPS.len(),
        }
    }

    fn pos_mut(&mut self, pane: Pane) -> &mut ListPos {
        match pane {
            Pane::Models => &mut self.models.pos,
            Pane::Downloads => &mut self.downloads.pos,
            Pane::Health => &mut self.health.pos,
            Pane::Fallback => &mut self.fallback.pos,
            Pane::Migration => &mut self.migration.pos,
        }
    }

    fn navigate(&mut self, key: &KeyEvent) -> bool {
        let len = self.list_len(self.focus);
        let page = self.page;
        self.pos_mut(self.focus).navigate(key, len, page)
    }

    /// Act on a pane's answer to a key.
    fn reply(&mut self, r: Reply) -> Vec<Action> {
        match r {
            Reply::Done => Vec::new(),
            Reply::Say(level, msg) => {
                self.say(level, msg);
                Vec::new()
            }
            Reply::Request(a) => self.request(a),
        }
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
                self.fallback.open(id);
                self.focus_pane(Pane::Fallback);
                Vec::new()
            }
            Action::UseFallback {
                requested,
                alternative,
            } => {
                self.models.show(&self.state, &alternative);
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
            return self.on_confirm_key(c, key);
        }
        if self.help {
            return self.on_help_key(key);
        }
        // So do the Models prompts (the watch prompt, the filter line).
        if let Some(r) = self
            .models
            .on_prompt_key(key, &self.state, self.focus == Pane::Models)
        {
            return self.reply(r);
        }
        // And the Migration pane's note prompt.
        if let Some(r) = self.migration.on_prompt_key(key) {
            return self.reply(r);
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
                if self.focus == Pane::Models {
                    self.models.clear_filter(&self.state);
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
        let reply = match self.focus {
            Pane::Models => self.models.on_key(key, &self.state),
            Pane::Downloads => self.downloads.on_key(key, &self.state),
            Pane::Health => self.health.on_key(key, &self.state),
            Pane::Fallback => {
                let target = self.fallback_target();
                self.fallback.on_key(key, &self.state, target)
            }
            Pane::Migration => self.migration.on_key(key, &self.state),
        };
        self.reply(reply)
    }

    /// Apply the result of a wizard call: the persisted state after it, and a message saying how the step ended.
    pub fn migration_finished(&mut self, step: &str, result: Result<MigrationState>) {
        if self.state.migration_running.as_deref() == Some(step) {
            self.state.migration_running = None;
        }
        let title = step_def(step).map(|d| d.title).unwrap_or(step);
        match result {
            Ok(st) => {
                let rec = st.record(step).cloned();
                self.state.migration = st;
                if let Some(r) = rec {
                    let sev = match r.state {
                        StepState::Failed => Severity::Critical,
                        StepState::Blocked => Severity::Warning,
                        _ => Severity::Info,
                    };
                    self.say(
                        sev,
                        format!(
                            "{title}: {} — {}",
                            r.state.as_str(),
                            r.details.unwrap_or_default()
                        ),
                    );
                }
            }
            Err(e) => {
                // The local "running" mark was only for display: go back to what is persisted.
                if let Some(r) = self.state.migration.steps.iter_mut().find(|r| r.id == step)
                    && r.state == StepState::Running
                {
                    r.state = StepState::Pending;
                }
                self.say(Severity::Critical, format!("{title}: {e}"));
            }
        }
    }

    pub fn set_storage(&mut self, s: StorageFacts) {
        self.state.set_storage(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::tests::fixtures::*;

    #[test]
    fn navigation_keys_move_and_switch_panes() {
        let mut a = app();
        assert_eq!(
            a.selected_model().unwrap().id.as_str(),
            "ema-demo/tiny-bert"
        );
        press(&mut a, KeyCode::Char('j'));
        press(&mut a, KeyCode::Down);
        assert_eq!(
            a.selected_model().unwrap().id.as_str(),
            "ema-demo/tiny-gpt2"
        );
        press(&mut a, KeyCode::Char('G'));
        assert_eq!(a.selected_model().unwrap().id.as_str(), "ema-demo/tiny-t5");
        press(&mut a, KeyCode::Char('k'));
        assert_eq!(
            a.selected_model().unwrap().id.as_str(),
            "ema-demo/tiny-roberta"
        );
        press(&mut a, KeyCode::Home);
        assert_eq!(a.models.pos.selected, 0);
        press(&mut a, KeyCode::Up);
        assert_eq!(a.models.pos.selected, 0);
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.focus, Pane::Downloads);
        press(&mut a, KeyCode::BackTab);
        press(&mut a, KeyCode::BackTab);
        assert_eq!(a.focus, Pane::Migration);
        press(&mut a, KeyCode::Char('3'));
        assert_eq!(a.focus, Pane::Health);
        press(&mut a, KeyCode::Char('1'));
        // Sort cycles and reverses.
        press(&mut a, KeyCode::Char('s'));
        assert_eq!(a.models.sort.as_str(), "task");
        press(&mut a, KeyCode::Char('s'));
        assert_eq!(a.models.sort.as_str(), "size");
        assert_eq!(
            a.selected_model().unwrap().id.as_str(),
            "ema-demo/tiny-bert"
        );
        press(&mut a, KeyCode::Char('g'));
        assert_eq!(a.selected_model().unwrap().id.as_str(), "ema-demo/tiny-t5");
    }

    #[test]
    fn readme_keys_table_matches_the_key_lists() {
        let readme = include_str!("../../README.md");
        let mut all: Vec<(&str, &KeyHelp)> =
            GLOBAL_KEYS.iter().map(|k| ("Everywhere", k)).collect();
        let titles = [
            "1 Models",
            "2 Downloads",
            "3 Health",
            "4 Fallback",
            "5 Migration",
        ];
        for (p, t) in Pane::ALL.iter().zip(titles) {
            all.extend(p.keys().iter().map(|k| (t, k)));
        }
        for (t, k) in all {
            let row = format!("| {t} | `{}` | {} |", k.keys, k.action);
            assert!(readme.contains(&row), "README's keys table lacks: {row}");
        }
    }
}
