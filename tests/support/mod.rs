//! The set-up every integration test shares: the test hub, the `ema` binary, test data, bounded waits.
//!
//! Each test binary compiles this module on its own and uses a part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cli;
pub mod data;
pub mod http;
pub mod hub;
pub mod legacy;
pub mod server;
pub mod store;
pub mod tmux;
pub mod wait;
