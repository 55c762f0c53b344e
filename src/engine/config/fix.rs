//! `fix-config`: plan every mechanical repair of a configuration text from its validation problems, apply them to
//! the document (keeping key order), re-validate and add missing sections with their defaults.

use serde::Serialize;
use serde_json::{Map, Value};

use super::document::render;
use super::problem::{FixAction, Problem, ProblemKind};
use super::schema::{self as schema, SCHEMA};
use super::validate;

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
                if first.has_duplicates && p.kind != ProblemKind::DuplicateKey {
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
}
