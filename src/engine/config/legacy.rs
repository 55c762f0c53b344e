//! The legacy → enhanced key mapping table from the migration guide, read by migration (to convert a legacy file)
//! and by validation (to point at a legacy key left in an enhanced file).
//!
//! | Legacy                     | Enhanced                             |
//! | -------------------------- | ------------------------------------ |
//! | `models_directory`         | `storage.models_directory`           |
//! | `download_retries`         | `downloads.max_retries`              |
//! | `max_concurrent_downloads` | `downloads.max_concurrent_downloads` |
//! | `health_check_enabled`     | `health_monitoring.enabled`          |
//! | `fallback_to_mock`         | `fallback.mock_fallback_enabled`     |

/// (legacy key, enhanced path, the guide's note)
pub const LEGACY_MAPPING: &[(&str, &str, &str)] = &[
    (
        "models_directory",
        "storage.models_directory",
        "Direct mapping",
    ),
    (
        "download_retries",
        "downloads.max_retries",
        "Direct mapping",
    ),
    (
        "max_concurrent_downloads",
        "downloads.max_concurrent_downloads",
        "Direct mapping",
    ),
    (
        "health_check_enabled",
        "health_monitoring.enabled",
        "Enhanced with more options",
    ),
    (
        "fallback_to_mock",
        "fallback.mock_fallback_enabled",
        "Part of intelligent fallback",
    ),
];

/// The legacy keys of the table, comma-separated, for messages.
pub fn legacy_keys() -> String {
    LEGACY_MAPPING
        .iter()
        .map(|(k, _, _)| *k)
        .collect::<Vec<_>>()
        .join(", ")
}
