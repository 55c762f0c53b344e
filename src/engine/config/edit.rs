//! Editing configuration files in place: `fix-config` repairs, `configure` settings, `enable-feature` (with its
//! self-tests), timestamped backups and refusing to overwrite. Every edit keeps key order and unknown content
//! (serde_json `preserve_order`), is validated before it is written, and is written atomically.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::migrate::set_path;
use super::schema::{self as schema, SCHEMA};
use super::validate::{self, FixAction, Problem};
use super::{self as config, Config};
use crate::engine::atomic;
use crate::engine::error::{EmaError, Result};

/// Pretty JSON with a trailing newline: the format ema writes configuration files in.
pub fn render(doc: &Value) -> String {
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
    s.push('\n');
    s
}

/// Copy `path` to `<name>.backup-YYYYMMDDTHHMMSSZ` beside it (atomically, same permissions). Returns the copy.
pub fn backup(path: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(path).map_err(|e| EmaError::io("cannot read", path, e))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_string());
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut candidate = dir.join(format!("{name}.backup-{stamp}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = dir.join(format!("{name}.backup-{stamp}-{n}"));
        n += 1;
    }
    atomic::write_atomic(&candidate, &bytes)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&candidate, meta.permissions());
    }
    Ok(candidate)
}

/// How to treat an existing target file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overwrite {
    pub force: bool,
    pub backup: bool,
}

/// Write a new configuration file: refuse to replace an existing one unless `force` or `backup` (which copies it
/// first). Creates the parent directory. The text must validate. Returns the backup path, if one was made.
pub fn write_new(target: &Path, text: &str, how: Overwrite) -> Result<Option<PathBuf>> {
    let v = validate::validate_text(text);
    if let Some(p) = v.problems.first() {
        return Err(EmaError::Config(format!(
            "refusing to write {}: the result does not validate ({}: {}); nothing was written",
            target.display(),
            p.path,
            p.message
        )));
    }
    if target.is_dir() {
        return Err(EmaError::Config(format!(
            "{} is a directory; give --target a file path such as config/enhanced_model_config.json",
            target.display()
        )));
    }
    let mut made = None;
    if target.exists() {
        if how.backup {
            made = Some(backup(target)?);
        } else if !how.force {
            return Err(EmaError::Config(format!(
                "{} already exists; pass --backup to keep a timestamped copy of it first, or --force to overwrite \
                 it; nothing was written",
                target.display()
            )));
        }
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| EmaError::io("cannot create directory", dir, e))?;
    }
    atomic::write_atomic(target, text.as_bytes())?;
    Ok(made)
}

// ---------------------------------------------------------------------------------------------------------------
// fix-config
// ---------------------------------------------------------------------------------------------------------------

/// One repair `fix-config` made (or would make).
#[derive(Debug, Clone, Serialize)]
pub struct FixChange {
    pub path: String,
    pub description: String,
}

/// The outcome of planning repairs.
#[derive(Debug, Clone, Serialize)]
pub struct FixPlan {
    /// Problems found before any repair.
    pub problems_before: Vec<Problem>,
    pub changes: Vec<FixChange>,
    /// Problems no mechanical repair can solve.
    pub remaining: Vec<Problem>,
    /// The repaired text, when there is anything to write.
    #[serde(skip)]
    pub new_text: Option<String>,
}

fn section_map<'a>(
    root: &'a mut Map<String, Value>,
    section: &str,
) -> Option<&'a mut Map<String, Value>> {
    root.get_mut(section).and_then(Value::as_object_mut)
}

/// Rename a key in place, keeping its position.
fn rename_in_place(m: &mut Map<String, Value>, from: &str, to: &str) -> bool {
    if m.contains_key(to) {
        return false;
    }
    let Some(idx) = m.keys().position(|k| k == from) else {
        return false;
    };
    let Some(v) = m.shift_remove(from) else {
        return false;
    };
    m.shift_insert(idx, to.to_string(), v);
    true
}

/// Apply one repair to a document. Returns its description, or None when it no longer applies (e.g. an earlier
/// repair took the destination).
pub fn apply_fix(doc: &mut Value, action: &FixAction) -> Option<FixChange> {
    let root = doc.as_object_mut()?;
    match action {
        FixAction::SetValue {
            section,
            key,
            value,
        } => {
            let m = section_map(root, section)?;
            let old = m.get(key)?.clone();
            m.insert(key.clone(), value.clone());
            Some(FixChange {
                path: format!("{section}.{key}"),
                description: format!("{old} → {value}"),
            })
        }
        FixAction::RemoveKey { section, key } => {
            let m = section_map(root, section)?;
            m.shift_remove(key)?;
            Some(FixChange {
                path: format!("{section}.{key}"),
                description: format!(
                    "removed null; the default {} applies",
                    schema::default_value(section, key)
                ),
            })
        }
        FixAction::SetSection { section, value } => {
            let old = root.get(section)?.clone();
            root.insert(section.clone(), value.clone());
            Some(FixChange {
                path: section.clone(),
                description: format!("{old} → {value}"),
            })
        }
        FixAction::RenameKey { section, from, to } => {
            let (m, prefix) = match section {
                Some(s) => (section_map(root, s)?, format!("{s}.")),
                None => (root, String::new()),
            };
            rename_in_place(m, from, to).then(|| FixChange {
                path: format!("{prefix}{from}"),
                description: format!("renamed to `{prefix}{to}`"),
            })
        }
        FixAction::MoveKey {
            from_section,
            from_key,
            to_section,
            to_key,
        } => {
            if section_map(root, to_section).is_some_and(|m| m.contains_key(to_key)) {
                return None;
            }
            if root.get(to_section).is_some_and(|v| !v.is_object()) {
                return None;
            }
            let value = match from_section {
                Some(s) => section_map(root, s)?.shift_remove(from_key)?,
                None => root.shift_remove(from_key)?,
            };
            let dest = root
                .entry(to_section.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            dest.as_object_mut()?.insert(to_key.clone(), value);
            let from = match from_section {
                Some(s) => format!("{s}.{from_key}"),
                None => from_key.clone(),
            };
            Some(FixChange {
                path: from,
                description: format!("moved to `{to_section}.{to_key}`"),
            })
        }
    }
}

/// Plan every mechanical repair of `text`: apply the fixable problems' actions, re-validate, repeat (a conversion
/// can reveal an out-of-range value), then add missing sections with their defaults.
pub fn plan_fixes(text: &str) -> FixPlan {
    let first = validate::validate_text(text);
    let problems_before = first.problems.clone();
    // Malformed JSON or duplicate keys: nothing can be rewritten without guessing.
    if first.document.is_none() || first.has_duplicates {
        let remaining = first
            .problems
            .into_iter()
            .map(|mut p| {
                if first.has_duplicates && p.kind != validate::ProblemKind::DuplicateKey {
                    p.fix = format!("{} (after removing the duplicate keys)", p.fix);
                }
                p
            })
            .collect();
        return FixPlan {
            problems_before,
            changes: Vec::new(),
            remaining,
            new_text: None,
        };
    }
    let mut doc = first.document.clone().unwrap_or(Value::Null);
    let mut changes = Vec::new();
    let mut current = first;
    for _ in 0..5 {
        let mut applied = false;
        for p in &current.problems {
            if let Some(action) = &p.action
                && let Some(c) = apply_fix(&mut doc, action)
            {
                changes.push(c);
                applied = true;
            }
        }
        current = validate::validate_text(&render(&doc));
        if !applied {
            break;
        }
    }
    if let Value::Object(root) = &mut doc {
        for s in SCHEMA {
            if !root.contains_key(s.name) {
                let defaults = schema::default_document()[s.name].clone();
                root.insert(s.name.to_string(), defaults);
                changes.push(FixChange {
                    path: s.name.to_string(),
                    description: "added the missing section with its defaults".to_string(),
                });
            }
        }
    }
    let new_text = render(&doc);
    let remaining = validate::validate_text(&new_text).problems;
    FixPlan {
        problems_before,
        new_text: (!changes.is_empty()).then_some(new_text),
        changes,
        remaining,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// configure / enable-feature
// ---------------------------------------------------------------------------------------------------------------

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
    let hint = schema::suggest(name, FEATURES.iter().map(|(n, _)| *n))
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
        let hint = schema::suggest(
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
    let value = schema::parse_cli_value(sec.name, key, raw)
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
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| EmaError::io("cannot create directory", dir, e))?;
        }
        atomic::write_atomic(path, text.as_bytes())?;
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

/// One prerequisite check of `enable-feature --test-first`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Prove a directory is usable: it exists (or its nearest existing ancestor lets us create it) and a file can be
/// created, written, synced and removed in it.
fn check_writable_dir(label: &str, dir: &Path) -> Check {
    let mut probe_dir = dir.to_path_buf();
    let exists = dir.is_dir();
    if !exists {
        if dir.exists() {
            return Check {
                name: label.to_string(),
                ok: false,
                detail: format!("{} exists but is not a directory", dir.display()),
            };
        }
        match dir.ancestors().find(|a| a.is_dir()) {
            Some(a) => probe_dir = a.to_path_buf(),
            None => {
                return Check {
                    name: label.to_string(),
                    ok: false,
                    detail: format!("no parent of {} exists", dir.display()),
                };
            }
        }
    }
    let result = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = tempfile::Builder::new()
            .prefix(".ema-selftest.")
            .tempfile_in(&probe_dir)?;
        f.write_all(b"ema self-test")?;
        f.as_file().sync_all()?;
        if exists {
            std::fs::read_dir(dir)?.next().transpose()?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Check {
            name: label.to_string(),
            ok: true,
            detail: if exists {
                format!("{} is readable and writable", dir.display())
            } else {
                format!(
                    "{} does not exist yet; {} is writable, so it can be created",
                    dir.display(),
                    probe_dir.display()
                )
            },
        },
        Err(e) => Check {
            name: label.to_string(),
            ok: false,
            detail: format!(
                "cannot write in {}: {e}; fix its permissions (e.g. chown/chmod) or change the path in the \
                 configuration",
                probe_dir.display()
            ),
        },
    }
}

/// Open the analytics database and prove it takes a write transaction.
fn check_analytics_db(c: &Config) -> Check {
    let name = "analytics database opens".to_string();
    let url = c.analytics.db_url.clone();
    let path = match url.as_deref() {
        None => c.storage.cache_dir().join("analytics.db"),
        Some(u) if u.starts_with("sqlite:///") => PathBuf::from(&u["sqlite://".len()..]),
        Some(u) => {
            return Check {
                name,
                ok: false,
                detail: format!(
                    "ema can only test sqlite:/// databases and `{}` is not one; use a sqlite:/// URL, or enable \
                     without --test-first after checking the database yourself",
                    u.split('@').next_back().unwrap_or("the URL")
                ),
            };
        }
    };
    let mut created_dir = false;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
        && url.is_none()
    {
        // The default location is ema's own cache directory: create it, as the feature would.
        if std::fs::create_dir_all(dir).is_ok() {
            created_dir = true;
        }
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Check {
            name,
            ok: false,
            detail: format!(
                "the directory {} for the analytics database does not exist; create it or change analytics.db_url",
                dir.display()
            ),
        };
    }
    let existed = path.exists();
    let r = (|| -> rusqlite::Result<()> {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch("BEGIN IMMEDIATE; CREATE TEMP TABLE ema_selftest(x); ROLLBACK;")?;
        let _: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        Ok(())
    })();
    match r {
        Ok(()) => Check {
            name,
            ok: true,
            detail: format!(
                "{} opens and accepts a write transaction{}",
                path.display(),
                match (existed, created_dir) {
                    (true, _) => "",
                    (false, false) => " (created the database file)",
                    (false, true) => " (created the database file and its directory)",
                }
            ),
        },
        Err(e) => {
            if !existed {
                let _ = std::fs::remove_file(&path);
            }
            Check {
                name,
                ok: false,
                detail: format!(
                    "cannot use {}: {e}; fix its permissions or point analytics.db_url elsewhere",
                    path.display()
                ),
            }
        }
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

/// Run the real prerequisites of a feature against a configuration.
pub fn self_test(feature: &str, c: &Config) -> Result<Vec<Check>> {
    feature_keys(feature)?;
    let models = check_writable_dir("models directory writable", &c.storage.models_directory);
    let cache = check_writable_dir("cache directory writable", &c.storage.cache_dir());
    Ok(match feature {
        "health-monitoring" => vec![models],
        "intelligent-fallback" => {
            let readable = match std::fs::read_dir(&c.storage.models_directory) {
                Ok(rd) => Check {
                    name: "installed models listable".to_string(),
                    ok: true,
                    detail: format!(
                        "{} entries in {}",
                        rd.count(),
                        c.storage.models_directory.display()
                    ),
                },
                Err(e) => Check {
                    name: "installed models listable".to_string(),
                    ok: false,
                    detail: format!(
                        "cannot list {}: {e}; suggestions are made from the installed models, so create the \
                         directory or fix storage.models_directory",
                        c.storage.models_directory.display()
                    ),
                },
            };
            vec![readable]
        }
        "usage-analytics" => vec![cache, check_analytics_db(c)],
        _ => vec![models, cache],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_clamp_rename_move_convert_and_add_sections() {
        let text = r#"{
  "storage": {"modles_directory": "/m", "cleanup_threshold_percent": 150},
  "downloads": {"max_concurrent_downloads": "0", "health_check_interval": 1},
  "fallback": {"suggestion_threshold": 1.5, "max_retries": 4},
  "download_retries": 2
}"#;
        let plan = plan_fixes(text);
        let doc: Value = serde_json::from_str(plan.new_text.as_deref().unwrap()).unwrap();
        assert_eq!(doc["storage"]["models_directory"], "/m");
        // Renamed in place: still the first key.
        assert_eq!(
            doc["storage"].as_object().unwrap().keys().next().unwrap(),
            "models_directory"
        );
        assert_eq!(doc["storage"]["cleanup_threshold_percent"], 100);
        // "0" → 0 → clamped to 1.
        assert_eq!(doc["downloads"]["max_concurrent_downloads"], 1);
        assert_eq!(doc["fallback"]["suggestion_threshold"], 1);
        assert_eq!(doc["downloads"]["max_retries"], 4);
        assert!(
            doc.get("download_retries").is_some(),
            "destination taken: left for the operator"
        );
        assert!(doc.get("api").is_some());
        let left: Vec<_> = plan.remaining.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            left,
            ["downloads.health_check_interval", "download_retries"]
        );
    }

    #[test]
    fn duplicates_and_syntax_are_not_rewritten() {
        let plan = plan_fixes("{\"api\": {\"port\": 0, \"port\": 1}}");
        assert!(plan.new_text.is_none());
        assert_eq!(plan.remaining.len(), 2);
        let plan = plan_fixes("{\"api\": ");
        assert!(plan.new_text.is_none());
    }

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

    #[test]
    fn write_new_refuses_then_backs_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("c.json");
        let text = render(&schema::default_document());
        assert!(
            write_new(&p, &text, Overwrite::default())
                .unwrap()
                .is_none()
        );
        let before = std::fs::read(&p).unwrap();
        assert!(write_new(&p, "{}\n", Overwrite::default()).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), before);
        let b = write_new(
            &p,
            "{}\n",
            Overwrite {
                backup: true,
                force: false,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), before);
        assert_eq!(std::fs::read(&p).unwrap(), b"{}\n");
        assert!(
            write_new(
                &p,
                "{\"api\": {\"port\": 0}}",
                Overwrite {
                    force: true,
                    backup: false
                }
            )
            .is_err()
        );
    }

    #[test]
    fn self_tests_really_probe() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.json");
        std::fs::write(
            &cfg,
            serde_json::json!({"storage": {"models_directory": dir.path().join("models")}})
                .to_string(),
        )
        .unwrap();
        let checks = self_test("health-monitoring", &load_for_edit(&cfg).unwrap()).unwrap();
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        let checks = self_test("usage-analytics", &load_for_edit(&cfg).unwrap()).unwrap();
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        assert!(dir.path().join("cache").join("analytics.db").is_file());
        // A models "directory" that is a file fails.
        std::fs::write(dir.path().join("models"), b"x").unwrap();
        let checks = self_test("health-monitoring", &load_for_edit(&cfg).unwrap()).unwrap();
        assert!(!checks[0].ok);
        // A missing directory for the analytics db fails.
        std::fs::write(
            &cfg,
            serde_json::json!({"analytics": {"db_url": format!("sqlite:///{}/nope/a.db", dir.path().display())}})
                .to_string(),
        )
        .unwrap();
        let checks = self_test("usage-analytics", &load_for_edit(&cfg).unwrap()).unwrap();
        assert!(!checks[1].ok);
    }
}
