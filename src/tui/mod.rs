//! The console face (ratatui).
