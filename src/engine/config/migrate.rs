//! Legacy → enhanced configuration migration, following the migration guide's mapping table
//! ([`super::legacy::LEGACY_MAPPING`]) exactly.
//!
//! Everything else takes its default; `storage.cache_directory` is derived as `cache` beside the models directory.
//! Legacy keys outside the table are kept verbatim under `migration.unmapped_legacy_settings`. The output lists the
//! guide's sections and keys in the guide's order first, then ema's additional keys and sections.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::check::{self, Misfit};
use super::document::{render, set_path};
use super::legacy::{LEGACY_MAPPING, legacy_keys};
use super::schema::{self as schema, SCHEMA};
use super::validate;
use crate::engine::error::{EmaError, Result};

/// The guide's "N/A → new feature" rows: enabled at their defaults.
pub const NEW_FEATURES: &[&str] = &[
    "analytics.enabled",
    "downloads.resume_enabled",
    "fallback.intelligent_fallback_enabled",
];

/// One value the migration set from the legacy file (or derived from it).
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Enhanced path, e.g. `downloads.max_retries`.
    pub path: String,
    pub value: Value,
    /// The enhanced default, for comparison.
    pub default: Value,
    /// The legacy key it came from, or how it was derived.
    pub source: String,
    /// The legacy value, when mapped directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_value: Option<Value>,
    pub note: String,
    /// The operator changed this value during `--interactive` review.
    pub edited: bool,
}

/// A planned migration: the document and what went into it.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    pub document: Value,
    pub changes: Vec<Change>,
    /// Legacy keys the mapping table does not know, kept verbatim under `migration.unmapped_legacy_settings`.
    pub unmapped: Map<String, Value>,
    /// New features and their (default) values.
    pub new_features: Vec<(String, Value)>,
    pub notes: Vec<String>,
}

/// The note printed when the legacy file disabled health checks.
pub const HEALTH_CONFLICT_NOTE: &str = "health_check_enabled is false: the guide's mapping table maps it to \
health_monitoring.enabled = false, while the guide's example output shows true. ema follows the mapping table and \
keeps health monitoring disabled, as you had it; nothing you turned off is switched on silently. Enable it when ready \
with `ema enable-feature --feature health-monitoring --test-first`.";

/// `cache` beside the models directory: `/data/models` → `/data/cache`, `models` → `cache`.
pub fn derive_cache_directory(models_directory: &str) -> String {
    match Path::new(models_directory).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("cache").to_string_lossy().into_owned(),
        _ => "cache".to_string(),
    }
}

/// Plan the migration of legacy configuration text. Nothing is written here.
pub fn migrate(text: &str, source: &Path) -> Result<Migration> {
    let legacy: Value = serde_json::from_str(text).map_err(|e| {
        EmaError::Config(format!(
            "{}:{}:{}: the source is not valid JSON ({e}); fix the file (or point --source at the legacy config.json); \
             nothing was written",
            source.display(),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(legacy) = legacy else {
        return Err(EmaError::Config(format!(
            "{} is not a legacy configuration: expected a JSON object with keys such as {}; nothing was written",
            source.display(),
            legacy_keys()
        )));
    };
    let enhanced_sections: Vec<&str> = SCHEMA
        .iter()
        .map(|s| s.name)
        .filter(|s| legacy.get(*s).is_some_and(Value::is_object))
        .collect();
    if !enhanced_sections.is_empty() {
        return Err(EmaError::Config(format!(
            "{} already looks like an enhanced configuration (it has the section(s) {}); there is nothing to \
             migrate — check it with `ema validate-config --config {}`; nothing was written",
            source.display(),
            enhanced_sections.join(", "),
            source.display()
        )));
    }
    if !LEGACY_MAPPING
        .iter()
        .any(|(k, _, _)| legacy.contains_key(*k))
    {
        return Err(EmaError::Config(format!(
            "{} is not a legacy configuration: none of the legacy settings {} is in it; point --source at the \
             legacy config.json; nothing was written",
            source.display(),
            legacy_keys()
        )));
    }

    let mut doc = schema::default_document();
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    // Check every mapped value first so a bad source names all its problems at once.
    let mut errors = Vec::new();
    for (lk, target, note) in LEGACY_MAPPING {
        let Some(v) = legacy.get(*lk) else { continue };
        let (sec, key) = schema::lookup(target).expect("mapping targets are schema keys");
        match check::check(sec.name, key, v) {
            Ok(()) => {
                set_path(&mut doc, target, v.clone());
                let (s, k) = target.split_once('.').unwrap_or_default();
                changes.push(Change {
                    path: target.to_string(),
                    value: v.clone(),
                    default: schema::default_value(s, k),
                    source: lk.to_string(),
                    legacy_value: Some(v.clone()),
                    note: note.to_string(),
                    edited: false,
                });
            }
            Err(m) => {
                let why = match m {
                    Misfit::OutOfRange { detail, .. } | Misfit::Invalid { detail } => detail,
                    _ => format!("{v} has the wrong type"),
                };
                errors.push(format!(
                    "legacy `{lk}` ({why}) cannot become `{target}`, which expects {}",
                    check::expected(key.kind)
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(EmaError::Config(format!(
            "{}: {}; correct the legacy file and run migrate-config again; nothing was written",
            source.display(),
            errors.join("; ")
        )));
    }
    let models_dir = doc["storage"]["models_directory"]
        .as_str()
        .unwrap_or("models")
        .to_string();
    let cache = derive_cache_directory(&models_dir);
    set_path(
        &mut doc,
        "storage.cache_directory",
        Value::String(cache.clone()),
    );
    changes.insert(
        changes
            .iter()
            .position(|c| c.path == "storage.models_directory")
            .map(|i| i + 1)
            .unwrap_or(0),
        Change {
            path: "storage.cache_directory".to_string(),
            value: Value::String(cache),
            default: Value::Null,
            source: "derived: `cache` beside storage.models_directory".to_string(),
            legacy_value: None,
            note: "Scratch space for partial downloads and backups".to_string(),
            edited: false,
        },
    );
    if legacy.get("health_check_enabled") == Some(&Value::Bool(false)) {
        notes.push(HEALTH_CONFLICT_NOTE.to_string());
    }
    if Path::new(&models_dir).is_relative() {
        notes.push(format!(
            "storage.models_directory `{models_dir}` is relative: ema resolves it against the directory that holds \
             config/ (or the file's own directory); check that it still points at your models"
        ));
    }

    let mut unmapped = Map::new();
    for (k, v) in &legacy {
        if !LEGACY_MAPPING.iter().any(|(lk, _, _)| lk == k) {
            unmapped.insert(k.clone(), v.clone());
        }
    }
    if !unmapped.is_empty() {
        set_path(
            &mut doc,
            "migration.unmapped_legacy_settings",
            Value::Object(unmapped.clone()),
        );
        notes.push(format!(
            "{} legacy setting(s) have no enhanced equivalent and were kept verbatim under \
             migration.unmapped_legacy_settings: {}",
            unmapped.len(),
            unmapped.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let new_features = NEW_FEATURES
        .iter()
        .map(|p| {
            let (s, k) = p.split_once('.').unwrap_or_default();
            (p.to_string(), schema::default_value(s, k))
        })
        .collect();
    let m = Migration {
        document: doc,
        changes,
        unmapped,
        new_features,
        notes,
    };
    m.check_valid()?;
    Ok(m)
}

impl Migration {
    /// Replace a change's value (interactive review), keeping the derived cache directory in step with the models
    /// directory unless it was reviewed already.
    pub fn set_value(&mut self, path: &str, value: Value) {
        set_path(&mut self.document, path, value.clone());
        if let Some(c) = self.changes.iter_mut().find(|c| c.path == path) {
            if c.value != value {
                c.edited = true;
            }
            c.value = value.clone();
        }
        if path == "health_monitoring.enabled" {
            // The conflict note only applies while health monitoring stays off as the legacy file had it.
            self.notes.retain(|n| n != HEALTH_CONFLICT_NOTE);
            if value == Value::Bool(false) {
                self.notes.insert(0, HEALTH_CONFLICT_NOTE.to_string());
            }
        }
        if path == "storage.models_directory"
            && let Some(md) = value.as_str()
        {
            let cache = Value::String(derive_cache_directory(md));
            set_path(&mut self.document, "storage.cache_directory", cache.clone());
            if let Some(c) = self
                .changes
                .iter_mut()
                .find(|c| c.path == "storage.cache_directory")
            {
                c.value = cache;
            }
        }
    }

    /// The document as file text (pretty JSON, trailing newline).
    pub fn render(&self) -> String {
        render(&self.document)
    }

    /// The result must validate; anything else is a bug and nothing is written.
    pub fn check_valid(&self) -> Result<()> {
        let v = validate::validate_text(&self.render());
        if let Some(p) = v.problems.first() {
            return Err(EmaError::Config(format!(
                "the migrated configuration does not validate ({}: {}); nothing was written",
                p.path, p.message
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_LEGACY: &str = r#"{
  "models_directory": "/data/models",
  "download_retries": 3,
  "max_concurrent_downloads": 2,
  "health_check_enabled": false,
  "fallback_to_mock": true
}"#;

    #[test]
    fn spec_example_maps_field_by_field() {
        let m = migrate(SPEC_LEGACY, Path::new("config.json")).unwrap();
        let d = &m.document;
        assert_eq!(d["storage"]["models_directory"], "/data/models");
        assert_eq!(d["storage"]["cache_directory"], "/data/cache");
        assert_eq!(d["downloads"]["max_retries"], 3);
        assert_eq!(d["downloads"]["max_concurrent_downloads"], 2);
        assert_eq!(d["health_monitoring"]["enabled"], false);
        assert_eq!(d["fallback"]["mock_fallback_enabled"], true);
        assert_eq!(d["storage"]["max_storage_gb"], 500);
        assert!(m.unmapped.is_empty());
        assert!(m.notes.iter().any(|n| n.contains("mapping table")));
        let order: Vec<_> = d.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            &order[..5],
            [
                "storage",
                "downloads",
                "health_monitoring",
                "fallback",
                "features"
            ]
        );
        let hm: Vec<_> = d["health_monitoring"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            hm,
            [
                "enabled",
                "check_interval_hours",
                "auto_repair_enabled",
                "performance_monitoring_enabled",
                "quick_check_interval_minutes"
            ]
        );
        assert!(validate::validate_text(&m.render()).is_valid());
    }

    #[test]
    fn unknown_legacy_keys_are_kept() {
        let m = migrate(
            r#"{"models_directory": "models", "log_level": "debug", "port": 8000}"#,
            Path::new("c.json"),
        )
        .unwrap();
        assert_eq!(m.document["storage"]["cache_directory"], "cache");
        assert_eq!(
            m.document["migration"]["unmapped_legacy_settings"],
            serde_json::json!({"log_level": "debug", "port": 8000})
        );
        assert!(m.notes.iter().any(|n| n.contains("log_level")));
    }

    #[test]
    fn refuses_non_legacy_sources() {
        assert!(migrate("{not json", Path::new("c")).is_err());
        assert!(migrate("[1]", Path::new("c")).is_err());
        let e = migrate(r#"{"storage": {}}"#, Path::new("c")).unwrap_err();
        assert!(e.to_string().contains("enhanced configuration"));
        let e = migrate(r#"{"hello": 1}"#, Path::new("c")).unwrap_err();
        assert!(e.to_string().contains("not a legacy configuration"));
        let e = migrate(
            r#"{"download_retries": "three", "max_concurrent_downloads": 0}"#,
            Path::new("c"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("download_retries") && e.contains("max_concurrent_downloads"),
            "{e}"
        );
    }

    #[test]
    fn editing_models_directory_rederives_cache() {
        let mut m = migrate(SPEC_LEGACY, Path::new("c")).unwrap();
        m.set_value(
            "storage.models_directory",
            Value::String("/srv/m/models".into()),
        );
        assert_eq!(m.document["storage"]["cache_directory"], "/srv/m/cache");
    }
}
