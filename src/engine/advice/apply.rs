//! Keeping a recommendation set (what `analyze-performance` showed, so `optimize` applies exactly that) and
//! applying recommendations to the configuration file in force: validated first, a timestamped backup, then one
//! atomic in-place edit of exactly the named keys. A change already in force is left alone (re-running is
//! harmless); a key changed by hand since the analysis is not overwritten.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Recommendation, Takes};
use crate::engine::atomic::write_json_atomic;
use crate::engine::config::edit::{Setting, edit_file};
use crate::engine::config::{self, validate, writer};
use crate::engine::error::{EmaError, Result};

/// The saved set's format.
pub const SET_FORMAT: &str = "ema-recommendations/1";

/// Recommendations as `analyze-performance --generate-recommendations` showed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSet {
    pub format: String,
    pub generated_at: String,
    /// The configuration file they were made for (None: built-in defaults).
    pub config_file: Option<PathBuf>,
    pub recommendations: Vec<Recommendation>,
}

/// Where the set is kept: `<cache>/advice/recommendations.json`.
pub fn set_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("advice").join("recommendations.json")
}

pub fn save_set(path: &Path, set: &SavedSet) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EmaError::io("cannot create", dir, e))?;
    }
    write_json_atomic(path, set)
}

/// The saved set, None when there is none; a damaged one is an error naming the fix.
pub fn load_set(path: &Path) -> Result<Option<SavedSet>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmaError::io("cannot read", path, e)),
    };
    let set: SavedSet = serde_json::from_slice(&bytes)
        .ok()
        .filter(|s: &SavedSet| s.format == SET_FORMAT)
        .ok_or_else(|| {
            EmaError::Config(format!(
                "the saved recommendations {} are damaged or of another format; make new ones with `ema \
                 analyze-performance --generate-recommendations`",
                path.display()
            ))
        })?;
    Ok(Some(set))
}

/// What happened to one recommended change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Written to the file.
    Applied,
    /// `--dry-run`: would be written.
    WouldApply,
    /// The file already has the recommended value.
    AlreadyApplied,
    /// The key was changed since the analysis (neither its `from` nor its `to`): left alone.
    ChangedSince,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub id: String,
    pub key: String,
    pub from: Value,
    pub to: Value,
    /// The value in the file before this run (defaults filled in).
    pub before: Value,
    pub status: Status,
    pub takes: Takes,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub file: PathBuf,
    pub dry_run: bool,
    /// The copy made before writing (None when nothing was written).
    pub backup: Option<PathBuf>,
    pub changes: Vec<Change>,
    /// Recommendations with no configuration change: actions for the operator.
    pub manual: Vec<Recommendation>,
}

impl Outcome {
    /// Keys written (or, in a dry run, to be written) that a running server reads only at start / on reload.
    pub fn keys(&self, takes: Takes) -> Vec<String> {
        self.changes
            .iter()
            .filter(|c| {
                c.takes == takes && matches!(c.status, Status::Applied | Status::WouldApply)
            })
            .map(|c| c.key.clone())
            .collect()
    }
}

/// The saved recommendations not yet in force in `file` (all of them when no file is in force): what the console
/// offers to apply.
pub fn pending(cache_dir: &Path, file: Option<&Path>) -> Result<Vec<Recommendation>> {
    let Some(set) = load_set(&set_path(cache_dir))? else {
        return Ok(Vec::new());
    };
    let Some(file) = file.filter(|f| f.is_file()) else {
        return Ok(set.recommendations);
    };
    let shown = apply(file, &set.recommendations, true)?;
    Ok(set
        .recommendations
        .into_iter()
        .filter(|r| {
            r.key.is_none()
                || shown
                    .changes
                    .iter()
                    .any(|c| c.id == r.id && c.status == Status::WouldApply)
        })
        .collect())
}

/// Apply the saved recommendation `id` alone to `file`.
pub fn apply_saved(cache_dir: &Path, file: &Path, id: &str) -> Result<Outcome> {
    let set = load_set(&set_path(cache_dir))?.ok_or_else(|| {
        EmaError::Config(
            "no saved recommendations: run `ema analyze-performance --generate-recommendations` first".into(),
        )
    })?;
    let r = set
        .recommendations
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| {
            EmaError::Config(format!(
                "no saved recommendation `{id}`: run `ema analyze-performance --generate-recommendations` again"
            ))
        })?;
    apply(file, &[r], false)
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        _ => a == b,
    }
}

/// Apply `recs` to the configuration file `file`: it must exist and validate; a backup is made before the one
/// atomic write; with `dry_run` nothing is written.
pub fn apply(file: &Path, recs: &[Recommendation], dry_run: bool) -> Result<Outcome> {
    if !file.is_file() {
        return Err(EmaError::Config(format!(
            "no configuration file at {}: the changes need a file to go into; create one with `ema configure \
             --config {}` (or name the one in force with --config); nothing was written",
            file.display(),
            file.display()
        )));
    }
    let text = std::fs::read_to_string(file).map_err(|e| EmaError::io("cannot read", file, e))?;
    let v = validate::validate_text(&text);
    if !v.is_valid() {
        let list = v
            .problems
            .iter()
            .map(|p| p.human(file))
            .collect::<Vec<_>>()
            .join("\n  ");
        return Err(EmaError::Config(format!(
            "{} has problems, so no recommendation is applied:\n  {list}\nrepair it first with `ema fix-config \
             --config {} --auto-fix`; nothing was written",
            file.display(),
            file.display()
        )));
    }
    let in_force = serde_json::to_value(config::load(Some(file))?.config)
        .map_err(|e| EmaError::Other(format!("cannot read the configuration: {e}")))?;
    let mut out = Outcome {
        file: file.to_path_buf(),
        dry_run,
        backup: None,
        changes: Vec::new(),
        manual: Vec::new(),
    };
    let mut settings = Vec::new();
    for r in recs {
        let (Some(key), Some(from), Some(to)) = (&r.key, &r.from, &r.to) else {
            out.manual.push(r.clone());
            continue;
        };
        let (sec, k) = key.split_once('.').unwrap_or((key, ""));
        if config::schema::lookup(key).is_none() {
            return Err(EmaError::Config(format!(
                "the recommendation {} names the unknown key `{key}`; make new recommendations with `ema \
                 analyze-performance --generate-recommendations`; nothing was written",
                r.id
            )));
        }
        let before = in_force
            .get(sec)
            .and_then(|s| s.get(k))
            .cloned()
            .unwrap_or(Value::Null);
        let status = if same(&before, to) {
            Status::AlreadyApplied
        } else if same(&before, from) {
            settings.push(Setting {
                path: key.clone(),
                value: to.clone(),
            });
            if dry_run {
                Status::WouldApply
            } else {
                Status::Applied
            }
        } else {
            Status::ChangedSince
        };
        out.changes.push(Change {
            id: r.id.clone(),
            key: key.clone(),
            from: from.clone(),
            to: to.clone(),
            before,
            status,
            takes: r.takes,
        });
    }
    if !settings.is_empty() {
        // The whole edit is checked before the backup, so a refused edit leaves no stray copy.
        edit_file(file, &settings, true)?;
        if !dry_run {
            out.backup = Some(writer::backup(file)?);
            edit_file(file, &settings, false)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(key: &str, from: Value, to: Value) -> Recommendation {
        Recommendation {
            id: key.into(),
            title: String::new(),
            evidence: vec![],
            key: Some(key.into()),
            from: Some(from),
            to: Some(to),
            takes: Takes::Restart,
            action: None,
        }
    }

    #[test]
    fn the_console_sees_what_is_pending_and_applies_one_recommendation_alone() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("c.json");
        std::fs::write(&file, r#"{"downloads": {"max_retries": 2}}"#).unwrap();
        let cache = d.path().join("cache");
        assert!(pending(&cache, Some(&file)).unwrap().is_empty());
        let set = SavedSet {
            format: SET_FORMAT.into(),
            generated_at: "now".into(),
            config_file: Some(file.clone()),
            recommendations: vec![
                rec("downloads.connections_per_file", json!(4), json!(8)),
                rec("downloads.max_concurrent_downloads", json!(4), json!(2)),
            ],
        };
        save_set(&set_path(&cache), &set).unwrap();
        assert_eq!(pending(&cache, Some(&file)).unwrap().len(), 2);
        let out = apply_saved(&cache, &file, "downloads.connections_per_file").unwrap();
        assert_eq!(out.changes.len(), 1);
        assert_eq!(out.changes[0].status, Status::Applied);
        assert!(out.backup.as_ref().unwrap().is_file());
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            doc,
            json!({"downloads": {"max_retries": 2, "connections_per_file": 8}})
        );
        let left = pending(&cache, Some(&file)).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "downloads.max_concurrent_downloads");
        assert!(apply_saved(&cache, &file, "nope").is_err());
    }
}
