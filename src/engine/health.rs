//! Health monitor.
