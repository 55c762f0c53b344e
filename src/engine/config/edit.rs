//! Editing a configuration file in place: `configure` settings (`--set`, `--basic-mode`) and the keys
//! `enable-feature` switches on. Every edit keeps key order and unknown content (serde_json `preserve_order`), is
//! validated before it is written, and is written atomically.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::check;
use super::document::{render, set_path};
use super::schema;
use super::suggest;
use super::validate;
use super::writer::write_creating_dir;
use super::{self as config, Config};
use crate::engine::error::{EmaError, Result};

/// One key a `configure` or `enable-feature` run sets.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub path: String,
    pub value: Value,
}

/// What `--basic-mode` turns off: the resource-intensive extras. Integrity checks, resume and mock fallback stay as
/// they are (basic mode never trades away correctness). Each can be turned back on with `enable-feature` or `--set`.
pub const BASIC_MODE: &[(&str, bool)] = &[
    ("features.health_monitoring", false),
    ("health_monitoring.enabled", false),
    ("health_monitoring.performance_monitoring_enabled", false),
    ("features.usage_analytics", false),
    ("analytics.enabled", false),
    ("features.intelligent_fallback", false),
    ("fallback.intelligent_fallback_enabled", false),
];

/// `--basic-mode` also limits downloads to one connection per file.
pub const BASIC_MODE_CONNECTIONS_PER_FILE: u64 = 1;

/// The features `enable-feature` knows, and the keys each one switches on.
pub const FEATURES: &[(&str, &[&str])] = &[
    (
        "health-monitoring",
        &["features.health_monitoring", "health_monitoring.enabled"],
    ),
    (
        "intelligent-fallback",
        &[
            "features.intelligent_fallback",
            "fallback.intelligent_fallback_enabled",
        ],
    ),
    (
        "usage-analytics",
        &["features.usage_analytics", "analytics.enabled"],
    ),
    ("enhanced-downloads", &["features.enhanced_downloads"]),
];

pub fn feature_names() -> String {
    FEATURES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The keys a feature switches on, or a did-you-mean error.
pub fn feature_keys(name: &str) -> Result<&'static [&'static str]> {
    if let Some((_, keys)) = FEATURES.iter().find(|(n, _)| *n == name) {
        return Ok(keys);
    }
    let hint = suggest::suggest(name, FEATURES.iter().map(|(n, _)| *n))
        .map(|s| format!("did you mean `{}`? ", s.candidate))
        .unwrap_or_default();
    Err(EmaError::Config(format!(
        "unknown feature `{name}`; {hint}the features are {}",
        feature_names()
    )))
}

/// Parse `KEY=VALUE` for `--set`, with the value typed and checked per the schema.
pub fn parse_set(arg: &str) -> Result<Setting> {
    let Some((path, raw)) = arg.split_once('=') else {
        return Err(EmaError::Config(format!(
            "`--set {arg}` needs the form section.key=value, e.g. --set downloads.max_retries=7"
        )));
    };
    let path = path.trim();
    let Some((sec, key)) = schema::lookup(path) else {
        let hint = suggest::suggest(
            path,
            schema::all_paths()
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )
        .map(|s| format!("did you mean `{}`? ", s.candidate))
        .or_else(|| {
            let homes = schema::sections_with_key(path);
            (!homes.is_empty()).then(|| format!("did you mean `{}.{path}`? ", homes.join("` or `")))
        })
        .unwrap_or_default();
        return Err(EmaError::Config(format!(
            "unknown configuration key `{path}`; {hint}keys are written section.key (see the README's configuration \
             reference); nothing was written"
        )));
    };
    let value = check::parse_cli_value(sec.name, key, raw)
        .map_err(|e| EmaError::Config(format!("--set {path}: {e}; nothing was written")))?;
    Ok(Setting {
        path: path.to_string(),
        value,
    })
}

/// One key's change in an edited file.
#[derive(Debug, Clone, Serialize)]
pub struct EditChange {
    pub path: String,
    /// null when the key was absent (its default applied).
    pub old: Option<Value>,
    pub new: Value,
    pub changed: bool,
}

/// The result of an in-place edit.
#[derive(Debug, Clone, Serialize)]
pub struct EditOutcome {
    pub file: PathBuf,
    pub created: bool,
    pub written: bool,
    pub changes: Vec<EditChange>,
}

/// The file `configure` edits: the one in force, or — when none exists — the path in force (`--config`,
/// `EMA_CONFIG`, else `./config/enhanced_model_config.json`).
pub fn edit_target(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Ok((Some(p), _, _)) = config::discover(None) {
        return p;
    }
    if let Some(v) = std::env::var_os("EMA_CONFIG").filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    PathBuf::from("config").join(config::CONFIG_FILE_NAME)
}

/// Apply settings to the file at `path` in place (creating it with every default when it does not exist). The
/// existing file must validate first; the result is validated before an atomic write. With `dry_run` nothing is
/// written.
pub fn edit_file(path: &Path, settings: &[Setting], dry_run: bool) -> Result<EditOutcome> {
    let (mut doc, created) = if path.exists() {
        if path.is_dir() {
            return Err(EmaError::Config(format!(
                "{} is a directory, not a configuration file",
                path.display()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| EmaError::io("cannot read", path, e))?;
        let v = validate::validate_text(&text);
        if !v.is_valid() {
            let list = v
                .problems
                .iter()
                .map(|p| p.human(path))
                .collect::<Vec<_>>()
                .join("\n  ");
            return Err(EmaError::Config(format!(
                "{} has problems, so it is not edited:\n  {list}\nrepair it first with `ema fix-config --config {} \
                 --auto-fix`",
                path.display(),
                path.display()
            )));
        }
        (v.document.unwrap_or(Value::Null), false)
    } else {
        (schema::default_document(), true)
    };
    let mut changes = Vec::new();
    for s in settings {
        let (sec, key) = s.path.split_once('.').unwrap_or_default();
        let old = doc.get(sec).and_then(|m| m.get(key)).cloned();
        let effective_old = old
            .clone()
            .unwrap_or_else(|| schema::default_value(sec, key));
        let changed = old.is_none() && !created || !same(&effective_old, &s.value);
        if changed {
            set_path(&mut doc, &s.path, s.value.clone());
        }
        // A later setting of the same key wins; report it once.
        changes.retain(|c: &EditChange| c.path != s.path);
        changes.push(EditChange {
            path: s.path.clone(),
            old: if created { None } else { old },
            new: s.value.clone(),
            changed: changed || created,
        });
    }
    let text = render(&doc);
    let v = validate::validate_text(&text);
    if let Some(p) = v.problems.first() {
        return Err(EmaError::Config(format!(
            "the edited configuration would not validate ({}: {} — {}); nothing was written",
            p.path, p.message, p.fix
        )));
    }
    let any = created || changes.iter().any(|c| c.changed);
    let mut written = false;
    if any && !dry_run {
        write_creating_dir(path, &text)?;
        written = true;
    }
    Ok(EditOutcome {
        file: path.to_path_buf(),
        created: created && written,
        written,
        changes,
    })
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The configuration a file gives (or would give, when it does not exist yet: the defaults, with relative paths
/// resolved against the file's location as `ema` resolves them).
pub fn load_for_edit(path: &Path) -> Result<Config> {
    if path.exists() {
        return Ok(config::load(Some(path))?.config);
    }
    let mut c = Config::default();
    c.storage.models_directory = config::base_dir_for(path).join(&c.storage.models_directory);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_parses_and_suggests() {
        let s = parse_set("downloads.max_retries=7").unwrap();
        assert_eq!(s.value, Value::from(7));
        let e = parse_set("downloads.max_retires=7")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `downloads.max_retries`"), "{e}");
        let e = parse_set("max_retries=7").unwrap_err().to_string();
        assert!(e.contains("downloads.max_retries"), "{e}");
        assert!(parse_set("downloads.max_retries=x").is_err());
        assert!(parse_set("fallback.suggestion_threshold=2").is_err());
        assert!(
            feature_keys("health-monitorin")
                .unwrap_err()
                .to_string()
                .contains("did you mean")
        );
    }

    #[test]
    fn edit_keeps_order_and_unknown_free_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"ui": {"theme": "light"}, "downloads": {"max_retries": 1, "resume_enabled": false}, "migration": {"unmapped_legacy_settings": {"z": 1, "a": 2}}}"#,
        )
        .unwrap();
        let out = edit_file(
            &p,
            &[
                parse_set("downloads.max_retries=7").unwrap(),
                parse_set("api.port=9000").unwrap(),
            ],
            false,
        )
        .unwrap();
        assert!(out.written);
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["ui", "downloads", "migration", "api"]);
        let dk: Vec<_> = doc["downloads"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(dk, ["max_retries", "resume_enabled"]);
        assert_eq!(doc["downloads"]["max_retries"], 7);
        let uk: Vec<_> = doc["migration"]["unmapped_legacy_settings"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(uk, ["z", "a"]);
    }
}
