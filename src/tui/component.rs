//! The contract between the app and its panes (as gitui's components): what a pane is given to draw itself, what it
//! answers to a key, the scrollable list position every pane keeps, and the key-help entries every pane lists (the
//! hint line and the help overlay are generated from them).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::events::Severity;

use super::action::Action;
use super::state::ConsoleState;
use super::theme::Theme;

/// One documented key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHelp {
    pub keys: &'static str,
    /// One or two words for the hint line.
    pub hint: &'static str,
    /// The full description for the help overlay.
    pub action: &'static str,
}

/// Shorthand for one entry of a key table.
pub const fn k(keys: &'static str, hint: &'static str, action: &'static str) -> KeyHelp {
    KeyHelp { keys, hint, action }
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
    /// Move the selection by `delta` rows, staying inside a list of `len` rows.
    pub fn step(&mut self, delta: isize, len: usize) {
        if len == 0 {
            return;
        }
        let s = self.selected as isize + delta;
        self.selected = s.clamp(0, len as isize - 1) as usize;
    }
    /// Apply a navigation key (rows, ends, pages; `page` rows a page). False when the key is not a navigation key.
    pub fn navigate(&mut self, key: &KeyEvent, len: usize, page: usize) -> bool {
        let page = page.max(1) as isize;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('j') | KeyCode::Down if !ctrl => self.step(1, len),
            KeyCode::Char('k') | KeyCode::Up if !ctrl => self.step(-1, len),
            KeyCode::Char('g') | KeyCode::Home => self.selected = 0,
            KeyCode::Char('G') | KeyCode::End => self.selected = len.saturating_sub(1),
            KeyCode::PageDown => self.step(page, len),
            KeyCode::PageUp => self.step(-page, len),
            KeyCode::Char('d') if ctrl => self.step(page, len),
            KeyCode::Char('u') if ctrl => self.step(-page, len),
            _ => return false,
        }
        true
    }
}

/// What a pane is given to draw itself.
pub struct DrawCtx<'a> {
    pub theme: &'a Theme,
    pub state: &'a ConsoleState,
    /// The pane has the keyboard focus.
    pub focused: bool,
}

/// What a pane answers to a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Handled (or ignored) inside the pane.
    Done,
    /// Show a message in the message line.
    Say(Severity, String),
    /// Hand an action to the app (it asks first when the action needs confirmation).
    Request(Action),
}

impl Reply {
    pub fn say(level: Severity, msg: impl Into<String>) -> Reply {
        Reply::Say(level, msg.into())
    }
}
