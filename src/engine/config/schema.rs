//! The configuration schema described once: every section and key with its type, allowed range, default and
//! meaning. Validation (`config_validate`), "did you mean", `fix-config`, `configure --set`, the migration output
//! order and the README reference table are all driven from this table. Defaults are not repeated here: they come
//! from `Config::default()` (the typed schema in `config.rs`), and a unit test checks that this table and the typed
//! `Config` name exactly the same keys.

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

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// What a key expects, for messages and the README ("an integer from 1 to 64").
pub fn expected(kind: Kind) -> String {
    match kind {
        Kind::Bool => "true or false".to_string(),
        Kind::UInt { min, max } => {
            if max >= u32::MAX as u64 {
                format!("a whole number >= {min}")
            } else {
                format!("a whole number from {min} to {max}")
            }
        }
        Kind::Float {
            min,
            min_exclusive,
            max,
        } => match (min_exclusive, max) {
            (true, None) => format!("a number > {}", fmt_num(min)),
            (false, None) => format!("a number >= {}", fmt_num(min)),
            (false, Some(max)) => format!("a number from {} to {}", fmt_num(min), fmt_num(max)),
            (true, Some(max)) => format!("a number > {} and <= {}", fmt_num(min), fmt_num(max)),
        },
        Kind::Text => "a non-empty string".to_string(),
        Kind::OptText => "a non-empty string, or null".to_string(),
        Kind::DbUrl => "null, or a URL `sqlite:///path` or `postgresql://…`".to_string(),
        Kind::TextList => "an array of strings".to_string(),
        Kind::FreeMap => "an object".to_string(),
    }
}

/// The short type name for the README.
pub fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "bool",
        Kind::UInt { .. } => "integer",
        Kind::Float { .. } => "number",
        Kind::Text => "string",
        Kind::OptText | Kind::DbUrl => "string or null",
        Kind::TextList => "array of strings",
        Kind::FreeMap => "object",
    }
}

/// Why a value does not fit its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Misfit {
    /// The JSON type is wrong. `convert` is the same value in the right type when that is unambiguous
    /// (`"3"` → `3`, `"true"` → `true`, `3.0` → `3`, `"x"` → `["x"]`).
    WrongType { convert: Option<Value> },
    /// The right type but outside the range; `clamp` is the nearest allowed value, or the default when the bound
    /// is strict (`to_default`).
    OutOfRange {
        clamp: Value,
        detail: String,
        to_default: bool,
    },
    /// The right type but not an allowed value (empty string, bad URL scheme).
    Invalid { detail: String },
    /// null where a value is required: removing the key gives the default.
    Null,
}

fn numeric_string(s: &str) -> Option<Number> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    serde_json::from_str::<Number>(t).ok()
}

/// Check a value against its key's kind.
pub fn check(section: &str, key: &Key, v: &Value) -> Result<(), Misfit> {
    match key.kind {
        Kind::Bool => match v {
            Value::Bool(_) => Ok(()),
            Value::Null => Err(Misfit::Null),
            Value::String(s) => Err(Misfit::WrongType {
                convert: match s.trim().to_ascii_lowercase().as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
            }),
            _ => Err(Misfit::WrongType { convert: None }),
        },
        Kind::UInt { min, max } => {
            let n = match v {
                Value::Number(n) => n.clone(),
                Value::Null => return Err(Misfit::Null),
                Value::String(s) => {
                    let convert = numeric_string(s).and_then(|n| whole(&n)).map(Value::Number);
                    return Err(Misfit::WrongType { convert });
                }
                _ => return Err(Misfit::WrongType { convert: None }),
            };
            if let Some(u) = n.as_u64() {
                if u < min {
                    return Err(Misfit::OutOfRange {
                        clamp: Value::from(min),
                        detail: format!("{u} is below the minimum {min}"),
                        to_default: false,
                    });
                }
                if u > max {
                    return Err(Misfit::OutOfRange {
                        clamp: Value::from(max),
                        detail: format!("{u} is above the maximum {max}"),
                        to_default: false,
                    });
                }
                Ok(())
            } else if let Some(i) = n.as_i64() {
                Err(Misfit::OutOfRange {
                    clamp: Value::from(min),
                    detail: format!("{i} is negative; the minimum is {min}"),
                    to_default: false,
                })
            } else {
                Err(Misfit::WrongType {
                    convert: whole(&n).map(Value::Number),
                })
            }
        }
        Kind::Float {
            min,
            min_exclusive,
            max,
        } => {
            let f = match v {
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::Null => return Err(Misfit::Null),
                Value::String(s) => {
                    return Err(Misfit::WrongType {
                        convert: numeric_string(s).map(Value::Number),
                    });
                }
                _ => return Err(Misfit::WrongType { convert: None }),
            };
            if min_exclusive && f <= min {
                return Err(Misfit::OutOfRange {
                    clamp: default_value(section, key.name),
                    detail: format!("{} is not above {}", fmt_num(f), fmt_num(min)),
                    to_default: true,
                });
            }
            if !min_exclusive && f < min {
                return Err(Misfit::OutOfRange {
                    clamp: tidy_number(Value::from(min)),
                    detail: format!("{} is below the minimum {}", fmt_num(f), fmt_num(min)),
                    to_default: false,
                });
            }
            if let Some(max) = max
                && f > max
            {
                return Err(Misfit::OutOfRange {
                    clamp: tidy_number(Value::from(max)),
                    detail: format!("{} is above the maximum {}", fmt_num(f), fmt_num(max)),
                    to_default: false,
                });
            }
            Ok(())
        }
        Kind::Text => match v {
            Value::String(s) if s.trim().is_empty() => Err(Misfit::Invalid {
                detail: "the string is empty".to_string(),
            }),
            Value::String(_) => Ok(()),
            Value::Null => Err(Misfit::Null),
            _ => Err(Misfit::WrongType { convert: None }),
        },
        Kind::OptText => match v {
            Value::String(s) if s.trim().is_empty() => Err(Misfit::Invalid {
                detail: "the string is empty (use null to leave it unset)".to_string(),
            }),
            Value::String(_) | Value::Null => Ok(()),
            _ => Err(Misfit::WrongType { convert: None }),
        },
        Kind::DbUrl => match v {
            Value::Null => Ok(()),
            Value::String(s) => {
                if s.starts_with("sqlite:///") && s.len() > "sqlite:///".len()
                    || s.starts_with("postgresql://")
                    || s.starts_with("postgres://")
                {
                    Ok(())
                } else {
                    // Never echo the URL: it may carry a password.
                    let scheme = s.split_once("://").map(|(a, _)| a).unwrap_or("(none)");
                    Err(Misfit::Invalid {
                        detail: format!("the URL scheme `{scheme}` is not supported"),
                    })
                }
            }
            _ => Err(Misfit::WrongType { convert: None }),
        },
        Kind::TextList => match v {
            Value::Array(items) => {
                if items
                    .iter()
                    .all(|i| i.as_str().is_some_and(|s| !s.trim().is_empty()))
                {
                    Ok(())
                } else {
                    Err(Misfit::Invalid {
                        detail: "every item must be a non-empty string".to_string(),
                    })
                }
            }
            Value::String(s) if !s.trim().is_empty() => Err(Misfit::WrongType {
                convert: Some(Value::Array(vec![Value::String(s.clone())])),
            }),
            Value::Null => Err(Misfit::Null),
            _ => Err(Misfit::WrongType { convert: None }),
        },
        Kind::FreeMap => match v {
            Value::Object(_) => Ok(()),
            Value::Null => Err(Misfit::Null),
            _ => Err(Misfit::WrongType { convert: None }),
        },
    }
}

/// A whole number as an integer Number (3.0 → 3); None for fractions and negatives' fractions.
fn whole(n: &Number) -> Option<Number> {
    if n.is_u64() || n.is_i64() {
        return Some(n.clone());
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        if f >= 0.0 {
            Some(Number::from(f as u64))
        } else {
            Some(Number::from(f as i64))
        }
    } else {
        None
    }
}

/// Parse a command-line value (`--set KEY=VALUE`, interactive edits) according to the key's kind, and check it.
pub fn parse_cli_value(section: &str, key: &Key, raw: &str) -> Result<Value, String> {
    let t = raw.trim();
    let v = match key.kind {
        Kind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Value::Bool(true),
            "false" | "no" | "off" | "0" => Value::Bool(false),
            _ => return Err(format!("`{raw}` is not a boolean; expected true or false")),
        },
        Kind::UInt { .. } | Kind::Float { .. } => match numeric_string(t) {
            Some(n) => {
                let v = Value::Number(n);
                if let Kind::UInt { .. } = key.kind {
                    match check(section, key, &v) {
                        Err(Misfit::WrongType { convert: Some(c) }) => c,
                        _ => v,
                    }
                } else {
                    tidy_number(v)
                }
            }
            None => {
                return Err(format!(
                    "`{raw}` is not a number; expected {}",
                    expected(key.kind)
                ));
            }
        },
        Kind::Text => Value::String(unquote(t)),
        Kind::OptText | Kind::DbUrl => {
            if t == "null" || t.is_empty() {
                Value::Null
            } else {
                Value::String(unquote(t))
            }
        }
        Kind::TextList => {
            if t.starts_with('[') {
                serde_json::from_str(t).map_err(|e| format!("`{raw}` is not a JSON array: {e}"))?
            } else if t.is_empty() {
                Value::Array(Vec::new())
            } else {
                Value::Array(
                    t.split(',')
                        .map(|s| Value::String(s.trim().to_string()))
                        .collect(),
                )
            }
        }
        Kind::FreeMap => {
            serde_json::from_str(t).map_err(|e| format!("`{raw}` is not a JSON object: {e}"))?
        }
    };
    match check(section, key, &v) {
        Ok(()) => Ok(v),
        Err(Misfit::OutOfRange { detail, .. }) | Err(Misfit::Invalid { detail }) => Err(format!(
            "{detail}; {section}.{} expects {}",
            key.name,
            expected(key.kind)
        )),
        Err(_) => Err(format!(
            "`{raw}` does not fit {section}.{}; expected {}",
            key.name,
            expected(key.kind)
        )),
    }
}

fn unquote(t: &str) -> String {
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        serde_json::from_str::<String>(t).unwrap_or_else(|_| t[1..t.len() - 1].to_string())
    } else {
        t.to_string()
    }
}

/// The result of a "did you mean" search.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub candidate: String,
    /// No other candidate is as close.
    pub unambiguous: bool,
}

fn normalize(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace(['-', ' ', '.'], "_")
}

/// The closest candidate to `name`, if it is close enough to be a plausible misspelling.
pub fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<Suggestion> {
    let n = normalize(name);
    let limit = match n.chars().count() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&n, &normalize(c)), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort_by_key(|(d, _)| *d);
    let (best_d, best) = *scored.first()?;
    let unambiguous = scored.iter().filter(|(d, _)| *d == best_d).count() == 1;
    Some(Suggestion {
        candidate: best.to_string(),
        unambiguous,
    })
}

/// Sections that contain a key with exactly this name.
pub fn sections_with_key(name: &str) -> Vec<&'static str> {
    SCHEMA
        .iter()
        .filter(|s| s.key(name).is_some())
        .map(|s| s.name)
        .collect()
}

/// The README's configuration reference, generated from this table.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    out.push_str("| Key | Type | Default | Meaning |\n");
    out.push_str("| --- | --- | --- | --- |\n");
    for s in SCHEMA {
        for key in s.keys {
            let default = match key.default_note {
                Some(note) => note.to_string(),
                None => format!("`{}`", default_value(s.name, key.name)),
            };
            let ty = match key.kind {
                Kind::UInt { min, max } if max >= u32::MAX as u64 => format!("integer ≥ {min}"),
                Kind::UInt { min, max } => format!("integer {min}–{max}"),
                Kind::Float {
                    min,
                    min_exclusive,
                    max,
                } => match (min_exclusive, max) {
                    (true, None) => format!("number > {}", fmt_num(min)),
                    (false, None) => format!("number ≥ {}", fmt_num(min)),
                    (_, Some(max)) => format!("number {}–{}", fmt_num(min), fmt_num(max)),
                },
                _ => type_name(key.kind).to_string(),
            };
            out.push_str(&format!(
                "| `{}.{}` | {} | {} | {} |\n",
                s.name,
                key.name,
                ty,
                default,
                key.doc.replace('|', "\\|")
            ));
        }
    }
    out
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

    /// Every default passes its own check, and the complete default document loads as the default Config.
    #[test]
    fn defaults_are_valid_and_load() {
        for s in SCHEMA {
            for key in s.keys {
                let v = default_value(s.name, key.name);
                assert_eq!(check(s.name, key, &v), Ok(()), "{}.{}", s.name, key.name);
            }
        }
        let doc = default_document();
        let c: Config = serde_json::from_value(doc).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn ranges() {
        let (s, key) = lookup("fallback.suggestion_threshold").unwrap();
        assert!(check(s.name, key, &Value::from(1.5)).is_err());
        assert!(check(s.name, key, &Value::from(0)).is_ok());
        let (s, key) = lookup("downloads.max_concurrent_downloads").unwrap();
        assert_eq!(
            check(s.name, key, &Value::from(0)),
            Err(Misfit::OutOfRange {
                clamp: Value::from(1),
                detail: "0 is below the minimum 1".into(),
                to_default: false
            })
        );
        assert!(matches!(
            check(s.name, key, &Value::from(-3)),
            Err(Misfit::OutOfRange { .. })
        ));
        assert_eq!(
            check(s.name, key, &Value::from("3")),
            Err(Misfit::WrongType {
                convert: Some(Value::from(3))
            })
        );
        assert_eq!(
            check(s.name, key, &Value::from(3.0)),
            Err(Misfit::WrongType {
                convert: Some(Value::from(3u64))
            })
        );
        let (s, key) = lookup("health_monitoring.check_interval_hours").unwrap();
        assert_eq!(
            check(s.name, key, &Value::from(0)),
            Err(Misfit::OutOfRange {
                clamp: Value::from(24),
                detail: "0 is not above 0".into(),
                to_default: true
            })
        );
    }

    #[test]
    fn did_you_mean() {
        let keys = section("storage").unwrap().keys.iter().map(|k| k.name);
        let s = suggest("modles_directory", keys).unwrap();
        assert_eq!(s.candidate, "models_directory");
        assert!(s.unambiguous);
        let s = suggest("Max-Retries", ["max_retries", "max_retry"]).unwrap();
        assert_eq!(s.candidate, "max_retries");
        assert!(suggest("zzzz", ["storage", "downloads"]).is_none());
        let s = suggest("enabld", ["enabled", "enabled"]).unwrap();
        assert!(!s.unambiguous);
    }

    #[test]
    fn cli_values_parse_per_type() {
        let (s, key) = lookup("downloads.max_retries").unwrap();
        assert_eq!(parse_cli_value(s.name, key, "7"), Ok(Value::from(7)));
        assert!(parse_cli_value(s.name, key, "seven").is_err());
        assert!(parse_cli_value(s.name, key, "-1").is_err());
        let (s, key) = lookup("api.legacy_support").unwrap();
        assert_eq!(parse_cli_value(s.name, key, "off"), Ok(Value::Bool(false)));
        let (s, key) = lookup("storage.wanted_models").unwrap();
        assert_eq!(
            parse_cli_value(s.name, key, "a/b, c/d"),
            Ok(serde_json::json!(["a/b", "c/d"]))
        );
        let (s, key) = lookup("api.token").unwrap();
        assert_eq!(parse_cli_value(s.name, key, "null"), Ok(Value::Null));
        let (s, key) = lookup("storage.max_storage_gb").unwrap();
        assert_eq!(parse_cli_value(s.name, key, "250.0"), Ok(Value::from(250)));
    }
}

#[cfg(test)]
mod readme {
    /// The README's configuration reference is generated from the schema table. Regenerate with
    /// `EMA_UPDATE_README=1 cargo test --lib readme_reference_is_current`.
    #[test]
    fn readme_reference_is_current() {
        const START: &str = "<!-- config-reference:start -->\n";
        const END: &str = "<!-- config-reference:end -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
            panic!("README.md lacks the {START:?} … {END:?} markers");
        };
        let current = &readme[a + START.len()..b];
        let wanted = super::reference_markdown();
        if current != wanted {
            if std::env::var_os("EMA_UPDATE_README").is_some() {
                let new = format!("{}{START}{wanted}{}", &readme[..a], &readme[b..]);
                std::fs::write(&path, new).unwrap();
            } else {
                panic!(
                    "the README's configuration reference is out of date; run \
                     `EMA_UPDATE_README=1 cargo test --lib readme_reference_is_current`"
                );
            }
        }
    }
}
