//! The five panes, one module each (as trippy's and gitui's components): each owns its slice of the view state, its
//! key list, its key handling and its drawing. [`Pane`] names them for focus, tabs and the help overlay.

pub mod downloads;
pub mod fallback;
pub mod health;
pub mod migration;
pub mod models;

use super::component::KeyHelp;

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
            Pane::Models => models::KEYS,
            Pane::Downloads => downloads::KEYS,
            Pane::Health => health::KEYS,
            Pane::Fallback => fallback::KEYS,
            Pane::Migration => migration::KEYS,
        }
    }
}
