//! The server face: the Hub-compatible mirror, REST + WebSocket API and metrics.

pub mod faults;
pub mod mirror;
