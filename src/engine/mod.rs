//! The model engine: configuration, store, hub client, downloads, integrity, health, events. No UI code here.

pub mod advice;
pub mod analytics;
pub mod api_check;
pub mod atomic;
pub mod backup;
pub mod benchmark;
pub mod config;
pub mod demo;
pub mod demo_family;
pub mod error;
pub mod events;
pub mod health;
pub mod integrity;
pub mod legacy;
pub mod store;
pub mod syscheck;

pub use error::{EmaError, Result};
pub mod download;
pub mod facade;
pub mod fallback;
pub mod http1;
pub mod hub;
pub mod inventory;
pub mod jobs;
pub mod migration;
pub mod monitoring;
pub mod online;
pub mod selftest;
pub mod validate_migration;

pub use facade::Engine;
