//! The configuration schema described once: every section and key with its type, allowed range, default and
//! meaning. Validation, "did you mean", `fix-config`, `configure --set`, the migration output order and the README
//! reference table (`reference`) are all driven from this table; checking a value against its key lives in `check`.
//! Defaults are not repeated here: they come from `Config::default()` (the typed configuration in the parent
//! module), and a unit test checks that this table and the typed `Config` name exactly the same keys.

use std::sync::OnceLock;

use serde_json::{Map, Number, Value};

use super::Config;

/// The type (and allowed range) of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Bool,
    /// A whole number in `min..=max`.
    UInt {
        min: u64,
        max: u64,
    },
    /// A number. `min_exclusive` makes the lower bound strict (`> min`).
    Float {
        min: f64,
        min_exclusive: bool,
        max: Option<f64>,
    },
    /// A non-empty string.
    Text,
    /// A non-empty string, or null (unset).
    OptText,
    /// null, or a database URL: `sqlite:///path` or `postgresql://…`.
    DbUrl,
    /// An array of non-empty strings.
    TextList,
    /// A free-form object (kept verbatim).
    FreeMap,
    /// `fallback.rules`: ordered substitutes per model id or glob (an object of lists, or a list of
    /// `{match, fallbacks}`), checked by `fallback::rules`.
    FallbackRules,
}

#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
    /// How to describe the default when the literal default value says too little (e.g. null = derived).
    pub default_note: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub name: &'static str,
    pub doc: &'static str,
    pub keys: &'static [Key],
}

impl Section {
    pub fn key(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.name == name)
    }
}

const fn k(name: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        doc,
        default_note: None,
    }
}

const fn kd(name: &'static str, kind: Kind, doc: &'static str, note: &'static str) -> Key {
    Key {
        name,
        kind,
        doc,
        default_note: Some(note),
    }
}

const BOOL: Kind = Kind::Bool;
const fn uint(min: u64, max: u64) -> Kind {
    Kind::UInt { min, max }
}
const fn at_least(min: f64) -> Kind {
    Kind::Float {
        min,
        min_exclusive: false,
        max: None,
    }
}
const fn positive() -> Kind {
    Kind::Float {
        min: 0.0,
        min_exclusive: true,
        max: None,
    }
}
const fn between(min: f64, max: f64) -> Kind {
    Kind::Float {
        min,
        min_exclusive: false,
        max: Some(max),
    }
}

/// Sections and keys in the order the migration guide's "Enhanced Configuration Equivalent" shows them (storage,
/// downloads, health_monitoring, fallback, features; the guide's keys first), then ema's additional keys and sections.
pub static SCHEMA: &[Section] = &[
    Section {
        name: "storage",
        doc: "Where models and scratch data live.",
        keys: &[
            kd(
                "models_directory",
                Kind::Text,
                "Where models live. A relative path is relative to the directory holding `config/` (or the file's own directory).",
                "`models` (platform data dir when no file is in force)",
            ),
            kd(
                "cache_directory",
                Kind::OptText,
                "Scratch space: partial downloads, backups, analytics database.",
                "null = `cache` beside `models_directory`",
            ),
            k(
                "max_storage_gb",
                positive(),
                "Storage budget for the models directory, in GB (> 0).",
            ),
            k(
                "cleanup_threshold_percent",
                uint(1, 100),
                "Alert when use passes this percentage of `max_storage_gb` (1–100).",
            ),
            k(
                "shared_storage",
                BOOL,
                "The models directory is shared with another installation (side-by-side migration): never delete files ema did not create.",
            ),
            k(
                "wanted_models",
                Kind::TextList,
                "Repo ids the operator wants present (the console's watch list).",
            ),
            k(
                "repair_sources",
                Kind::TextList,
                "Other ema stores (a mirror's store, a backup) repair copies a bad file from when a copy with the \
                 expected hash is there, before downloading it again; the Hugging Face cache is always searched.",
            ),
        ],
    },
    Section {
        name: "downloads",
        doc: "The download engine.",
        keys: &[
            k(
                "max_concurrent_downloads",
                uint(1, 64),
                "Files downloaded at once, across all models (1–64).",
            ),
            k(
                "max_retries",
                uint(0, 100),
                "Retries per file after the first attempt (0–100).",
            ),
            k(
                "retry_delay_seconds",
                between(0.0, 3600.0),
                "Base of the exponential backoff (with jitter) between retries, seconds (0–3600).",
            ),
            k(
                "bandwidth_limit_mbps",
                at_least(0.0),
                "Shared bandwidth cap, megabits per second; 0 = no cap.",
            ),
            k(
                "resume_enabled",
                BOOL,
                "Resume interrupted files with HTTP Range requests.",
            ),
            k(
                "integrity_check_enabled",
                BOOL,
                "Verify every file's sha256 / git sha1 while streaming.",
            ),
            k(
                "connections_per_file",
                uint(1, 32),
                "Parallel Range connections for one large file (1–32).",
            ),
            k(
                "parallel_threshold_mb",
                uint(1, u32::MAX as u64),
                "Files at least this large (MB) are split into parallel parts (>= 1).",
            ),
            k(
                "connect_timeout_seconds",
                positive(),
                "TCP connect timeout, seconds (> 0).",
            ),
            k(
                "stall_timeout_seconds",
                positive(),
                "Drop and retry a connection that delivers no byte for this long, seconds (> 0).",
            ),
            k(
                "max_retry_after_seconds",
                at_least(0.0),
                "Longest `Retry-After` ema obeys, seconds (>= 0).",
            ),
            k(
                "allow_token_over_http",
                BOOL,
                "Send the token over plain http to a non-loopback host (off: refuse).",
            ),
            k(
                "zero_copy_http",
                BOOL,
                "Read plain-http file bodies with ema's own HTTP/1.1 reader straight into the write buffers \
                 (off: the general HTTP client for everything).",
            ),
            k(
                "direct_io",
                BOOL,
                "Write downloads with O_DIRECT where the filesystem allows it, bypassing the page cache \
                 (off: buffered writes).",
            ),
        ],
    },
    Section {
        name: "health_monitoring",
        doc: "Periodic integrity checks of the installed models.",
        keys: &[
            k("enabled", BOOL, "Run the health monitor."),
            k(
                "check_interval_hours",
                positive(),
                "Full verification interval, hours (> 0).",
            ),
            k(
                "auto_repair_enabled",
                BOOL,
                "Re-download files that fail verification.",
            ),
            k(
                "performance_monitoring_enabled",
                BOOL,
                "Record load and download performance.",
            ),
            k(
                "quick_check_interval_minutes",
                positive(),
                "Quick checks (existence, size, mtime) interval, minutes (> 0).",
            ),
        ],
    },
    Section {
        name: "fallback",
        doc: "What to offer when a requested model is missing.",
        keys: &[
            k(
                "intelligent_fallback_enabled",
                BOOL,
                "Suggest similar installed models.",
            ),
            k(
                "suggestion_threshold",
                between(0.0, 1.0),
                "Minimum similarity score (0–1) for a suggestion to be shown.",
            ),
            k(
                "queue_requests_enabled",
                BOOL,
                "Queue requests for a model until its download finishes.",
            ),
            k(
                "mock_fallback_enabled",
                BOOL,
                "Answer with a mock model when nothing else fits.",
            ),
            kd(
                "rules",
                Kind::FallbackRules,
                "Operator substitutes tried before the score, in order: `{\"org/*\": [\"org/a\", \"org/b\"]}` or \
                 `[{\"match\": \"org/*\", \"fallbacks\": [\"org/a\"]}]` (`*` and `?` are wildcards).",
                "`[]`",
            ),
        ],
    },
    Section {
        name: "features",
        doc: "Feature switches (`ema enable-feature`, `ema configure`).",
        keys: &[
            k(
                "enhanced_downloads",
                BOOL,
                "Parallel, resumable, verified downloads.",
            ),
            k("health_monitoring", BOOL, "The health monitor feature."),
            k(
                "intelligent_fallback",
                BOOL,
                "The intelligent fallback feature.",
            ),
            k("usage_analytics", BOOL, "Record usage analytics."),
        ],
    },
    Section {
        name: "api",
        doc: "The server (`ema serve`).",
        keys: &[
            k("host", Kind::Text, "Address the server binds to."),
            k("port", uint(1, 65535), "TCP port (1–65535)."),
            kd(
                "token",
                Kind::OptText,
                "Bearer token clients must send. Never printed.",
                "null = no authentication",
            ),
            k(
                "legacy_support",
                BOOL,
                "Serve the legacy endpoints (`/api/v1/models/status`, `/download`, `/health`).",
            ),
            k(
                "legacy_endpoints_only",
                BOOL,
                "Serve only the legacy endpoints.",
            ),
            k(
                "allowed_hosts",
                Kind::TextList,
                "Host names requests may name besides loopback and the bound address; others get 403.",
            ),
            k(
                "allowed_origins",
                Kind::TextList,
                "Web origins (`http://host:port`) allowed besides the server's own; no wildcards.",
            ),
        ],
    },
    Section {
        name: "analytics",
        doc: "Usage analytics.",
        keys: &[
            k("enabled", BOOL, "Record usage analytics."),
            kd(
                "db_url",
                Kind::DbUrl,
                "`sqlite:///path` or `postgresql://…`.",
                "null = `analytics.db` in the cache directory",
            ),
        ],
    },
    Section {
        name: "migration",
        doc: "Side-by-side migration from the legacy system.",
        keys: &[
            k(
                "compatibility_mode",
                BOOL,
                "Behave like the legacy system where they differ.",
            ),
            k("legacy_api_support", BOOL, "Accept legacy API clients."),
            kd(
                "unmapped_legacy_settings",
                Kind::FreeMap,
                "Legacy settings `migrate-config` did not know, kept verbatim so nothing is lost.",
                "`{}` (omitted when empty)",
            ),
        ],
    },
    Section {
        name: "ui",
        doc: "The console.",
        keys: &[k(
            "theme",
            Kind::Text,
            "Theme name (a file in `themes/`) or a path to a theme TOML file.",
        )],
    },
];

pub fn section(name: &str) -> Option<&'static Section> {
    SCHEMA.iter().find(|s| s.name == name)
}

/// Look up `section.key`.
pub fn lookup(path: &str) -> Option<(&'static Section, &'static Key)> {
    let (s, key) = path.split_once('.')?;
    let sec = section(s)?;
    Some((sec, sec.key(key)?))
}

/// Every `section.key` path, in schema order.
pub fn all_paths() -> impl Iterator<Item = String> {
    SCHEMA
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| format!("{}.{}", s.name, k.name)))
}

fn defaults() -> &'static Value {
    static D: OnceLock<Value> = OnceLock::new();
    D.get_or_init(|| serde_json::to_value(Config::default()).unwrap_or(Value::Null))
}

/// The default value of `section.key`, from `Config::default()`, with whole floats written as integers.
pub fn default_value(section: &str, key: &str) -> Value {
    let v = defaults()
        .get(section)
        .and_then(|s| s.get(key))
        .cloned()
        .unwrap_or_else(|| {
            if key == "unmapped_legacy_settings" {
                Value::Object(Map::new())
            } else {
                Value::Null
            }
        });
    tidy_number(v)
}

/// `500.0` → `500` (so generated files read like the guide's examples); other values unchanged.
pub fn tidy_number(v: Value) -> Value {
    if let Value::Number(n) = &v
        && n.is_f64()
        && let Some(f) = n.as_f64()
        && f.fract() == 0.0
        && f.abs() < 9.0e15
    {
        return Value::Number(Number::from(f as i64));
    }
    v
}

/// A complete document with every section and key at its default, in schema order (empty
/// `unmapped_legacy_settings` omitted).
pub fn default_document() -> Value {
    let mut root = Map::new();
    for s in SCHEMA {
        let mut m = Map::new();
        for key in s.keys {
            if key.kind == Kind::FreeMap {
                continue;
            }
            m.insert(key.name.to_string(), default_value(s.name, key.name));
        }
        root.insert(s.name.to_string(), Value::Object(m));
    }
    Value::Object(root)
}

/// A bound or value for messages: whole numbers without a fraction (`1`, not `1.0`).
pub fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Sections that contain a key with exactly this name.
pub fn sections_with_key(name: &str) -> Vec<&'static str> {
    SCHEMA
        .iter()
        .filter(|s| s.key(name).is_some())
        .map(|s| s.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The schema table and the typed `Config` name exactly the same sections and keys.
    #[test]
    fn schema_matches_typed_config() {
        let mut d = serde_json::to_value(Config::default()).unwrap();
        // Serialized only when non-empty.
        d["migration"]["unmapped_legacy_settings"] = Value::Object(Map::new());
        let typed: BTreeSet<String> = d
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(s, v)| {
                v.as_object()
                    .unwrap()
                    .keys()
                    .map(move |k| format!("{s}.{k}"))
            })
            .collect();
        let ours: BTreeSet<String> = all_paths().collect();
        assert_eq!(typed, ours);
    }
}
