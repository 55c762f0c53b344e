//! ema — Enhanced Model Availability.
//!
//! One engine (`engine`), three faces: the console (`tui`), the headless CLI (`cli`) and the server (`server`).
//! The engine never prints and never knows which face drives it.

pub mod cli;
pub mod engine;
pub mod server;
pub mod tui;
