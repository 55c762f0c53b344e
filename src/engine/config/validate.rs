//! Configuration validation that lists every problem at once, each with its JSON path, its line:column in the file,
//! what was expected and a fix (the report types are in `problem`). Driven by the schema table in `schema`. A
//! document without problems is guaranteed to load with `config::parse` (checked at the end, so the two can never
//! disagree silently).

use std::path::Path;

use serde_json::Value;

use super::check::{self, Misfit};
use super::json_spans::{self, Member, Node, Pos, Spanned};
use super::legacy::LEGACY_MAPPING;
use super::problem::{FixAction, Problem, ProblemKind, Validation};
use super::redact::redact_at;
use super::schema::{self as schema, Key, SCHEMA, Section};
use super::suggest;
use super::{self as config};

const SYNTAX_FIX: &str = "correct the JSON at this position (JSON allows no comments and no trailing commas; keys and strings take double quotes)";

/// Validate configuration text.
pub fn validate_text(text: &str) -> Validation {
    let tree = match json_spans::parse(text) {
        Ok(t) => t,
        Err(e) => {
            return Validation {
                problems: vec![Problem {
                    path: String::new(),
                    line: e.pos.line,
                    column: e.pos.column,
                    kind: ProblemKind::Syntax,
                    message: format!("malformed JSON: {}", e.message),
                    expected: "valid JSON".to_string(),
                    fix: SYNTAX_FIX.to_string(),
                    action: None,
                }],
                document: None,
                has_duplicates: false,
            };
        }
    };
    // Belt and braces: our parser and serde_json must agree on syntax.
    if let Err(e) = serde_json::from_str::<Value>(text) {
        return Validation {
            problems: vec![Problem {
                path: String::new(),
                line: e.line(),
                column: e.column(),
                kind: ProblemKind::Syntax,
                message: format!("malformed JSON: {e}"),
                expected: "valid JSON".to_string(),
                fix: SYNTAX_FIX.to_string(),
                action: None,
            }],
            document: None,
            has_duplicates: false,
        };
    }
    let mut v = Validator {
        problems: Vec::new(),
        root: &tree,
        has_duplicates: false,
    };
    v.root();
    let mut problems = v.problems;
    let has_duplicates = v.has_duplicates;
    if problems.is_empty()
        && let Err(e) = config::parse(text, Path::new("config"))
    {
        // The schema table and the typed Config disagree: never call such a file valid.
        problems.push(Problem {
            path: String::new(),
            line: 1,
            column: 1,
            kind: ProblemKind::InvalidValue,
            message: format!("the file does not load: {e}"),
            expected: "a document the typed configuration accepts".to_string(),
            fix: "correct the value named in the message".to_string(),
            action: None,
        });
    }
    problems.sort_by_key(|p| (p.line, p.column));
    Validation {
        problems,
        document: Some(tree.to_value()),
        has_duplicates,
    }
}

struct Validator<'a> {
    problems: Vec<Problem>,
    root: &'a Spanned,
    has_duplicates: bool,
}

fn json_text(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

fn section_names() -> String {
    SCHEMA.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

fn key_names(s: &Section) -> String {
    s.keys.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

impl<'a> Validator<'a> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        path: String,
        pos: Pos,
        kind: ProblemKind,
        message: String,
        expected: String,
        fix: String,
        action: Option<FixAction>,
    ) {
        self.problems.push(Problem {
            path,
            line: pos.line,
            column: pos.column,
            kind,
            message,
            expected,
            fix,
            action,
        });
    }

    /// Is `section.key` already present in the document?
    fn present(&self, section: &str, key: &str) -> bool {
        self.root
            .members()
            .and_then(|m| m.iter().rev().find(|m| m.key == section))
            .and_then(|s| s.value.members())
            .is_some_and(|m| m.iter().any(|m| m.key == key))
    }

    fn root_has(&self, key: &str) -> bool {
        self.root
            .members()
            .is_some_and(|m| m.iter().any(|m| m.key == key))
    }

    fn duplicates(&mut self, members: &[Member], prefix: &str) {
        for (i, m) in members.iter().enumerate() {
            if let Some(first) = members[..i].iter().find(|f| f.key == m.key) {
                self.has_duplicates = true;
                self.push(
                    join(prefix, &m.key),
                    m.key_pos,
                    ProblemKind::DuplicateKey,
                    format!(
                        "key `{}` appears again (first at line {}, column {})",
                        m.key, first.key_pos.line, first.key_pos.column
                    ),
                    "each key once per object".to_string(),
                    "keep one of the two and delete the other".to_string(),
                    None,
                );
            }
        }
    }

    fn root(&mut self) {
        let Some(members) = self.root.members() else {
            self.push(
                String::new(),
                self.root.pos,
                ProblemKind::WrongType,
                format!(
                    "the document is {}, not an object",
                    self.root.node.type_name()
                ),
                format!("an object with sections {}", section_names()),
                "wrap the settings in { … } with one object per section".to_string(),
                None,
            );
            return;
        };
        self.duplicates(members, "");
        for m in members {
            match schema::section(&m.key) {
                Some(sec) => self.section(sec, m),
                None => self.root_unknown(m),
            }
        }
    }

    fn section(&mut self, sec: &'static Section, m: &Member) {
        let Some(members) = m.value.members() else {
            let action = matches!(m.value.node, Node::Null).then(|| FixAction::SetSection {
                section: sec.name.to_string(),
                value: Value::Object(Default::default()),
            });
            self.push(
                sec.name.to_string(),
                m.value.pos,
                ProblemKind::WrongType,
                format!("section `{}` is {}", sec.name, m.value.node.type_name()),
                format!("an object with keys {}", key_names(sec)),
                if action.is_some() {
                    "replace null with {} (or remove the section) to use the defaults".to_string()
                } else {
                    format!("make `{}` an object: {{ \"key\": value, … }}", sec.name)
                },
                action,
            );
            return;
        };
        self.duplicates(members, sec.name);
        for km in members {
            match sec.key(&km.key) {
                Some(key) => self.value(sec, key, km),
                None => self.section_unknown(sec, km),
            }
        }
    }

    fn value(&mut self, sec: &Section, key: &Key, m: &Member) {
        let path = format!("{}.{}", sec.name, key.name);
        let raw = m.value.to_value();
        // Messages never show a credential.
        let v = redact_at(&path, &raw);
        let expected = check::expected(key.kind);
        let default = schema::default_value(sec.name, key.name);
        match check::check(sec.name, key, &raw) {
            Ok(()) => {}
            Err(Misfit::Null) => self.push(
                path,
                m.value.pos,
                ProblemKind::WrongType,
                "the value is null".to_string(),
                expected,
                format!(
                    "set a value, or remove the key to use the default ({})",
                    json_text(&default)
                ),
                Some(FixAction::RemoveKey {
                    section: sec.name.to_string(),
                    key: key.name.to_string(),
                }),
            ),
            Err(Misfit::WrongType { convert }) => {
                let what = format!("{} is {}", json_text(&v), m.value.node.type_name());
                let fix = match &convert {
                    Some(c) => format!("write {} instead", json_text(c)),
                    None => format!("write {expected} (default {})", json_text(&default)),
                };
                self.push(
                    path,
                    m.value.pos,
                    ProblemKind::WrongType,
                    what,
                    expected,
                    fix,
                    convert.map(|value| FixAction::SetValue {
                        section: sec.name.to_string(),
                        key: key.name.to_string(),
                        value,
                    }),
                )
            }
            Err(Misfit::OutOfRange {
                clamp,
                detail,
                to_default,
            }) => self.push(
                path,
                m.value.pos,
                ProblemKind::OutOfRange,
                detail,
                expected,
                format!(
                    "set it to {} ({})",
                    json_text(&clamp),
                    if to_default {
                        "the default"
                    } else {
                        "the nearest allowed value"
                    }
                ),
                Some(FixAction::SetValue {
                    section: sec.name.to_string(),
                    key: key.name.to_string(),
                    value: clamp,
                }),
            ),
            Err(Misfit::Invalid { detail }) => {
                // Point at the offending array item when there is one.
                let (path, pos) = match &m.value.node {
                    Node::Array(items) => items
                        .iter()
                        .enumerate()
                        .find(|(_, i)| !matches!(&i.node, Node::String(s) if !s.trim().is_empty()))
                        .map(|(i, item)| (format!("{path}[{i}]"), item.pos))
                        .unwrap_or((path, m.value.pos)),
                    _ => (path, m.value.pos),
                };
                self.push(
                    path,
                    pos,
                    ProblemKind::InvalidValue,
                    detail,
                    expected,
                    format!(
                        "write {} (default {})",
                        check::expected(key.kind),
                        json_text(&default)
                    ),
                    None,
                )
            }
        }
    }

    fn root_unknown(&mut self, m: &Member) {
        let pos = m.key_pos;
        let path = m.key.clone();
        // A legacy setting at the top level.
        if let Some((legacy, target, _)) = LEGACY_MAPPING.iter().find(|(l, _, _)| *l == m.key) {
            let (to_section, to_key) = target.split_once('.').unwrap_or(("", target));
            let free = !self.present(to_section, to_key);
            self.push(
                path,
                pos,
                ProblemKind::MisplacedKey,
                format!("`{legacy}` is a legacy setting; the enhanced configuration calls it `{target}`"),
                format!("`{target}`"),
                if free {
                    format!("move it to `{target}` (or convert the whole legacy file with `ema migrate-config`)")
                } else {
                    format!("`{target}` is already set; delete this legacy `{legacy}`")
                },
                free.then(|| move_key(None, &m.key, to_section, to_key)),
            );
            return;
        }
        // A known key placed at the top level instead of inside its section.
        let homes = schema::sections_with_key(&m.key);
        if !homes.is_empty() {
            self.misplaced(None, m, &homes);
            return;
        }
        if let Some(s) = suggest::suggest(&m.key, SCHEMA.iter().map(|s| s.name)) {
            let ok = s.unambiguous && !self.root_has(&s.candidate);
            self.unknown(
                None,
                m,
                format!("did you mean `{}`? rename it", s.candidate),
                ok.then(|| FixAction::RenameKey {
                    section: None,
                    from: m.key.clone(),
                    to: s.candidate.clone(),
                }),
            );
            return;
        }
        if let Some(s) = suggest::suggest(&m.key, all_keys()) {
            self.fuzzy_elsewhere(None, m, s);
            return;
        }
        self.unknown(
            None,
            m,
            "remove it; see the configuration reference in the README".to_string(),
            None,
        );
    }

    fn section_unknown(&mut self, sec: &Section, m: &Member) {
        if let Some(s) = suggest::suggest(&m.key, sec.keys.iter().map(|k| k.name)) {
            let ok = s.unambiguous && !self.present(sec.name, &s.candidate);
            self.unknown(
                Some(sec.name),
                m,
                if ok || !s.unambiguous {
                    format!("did you mean `{}`? rename it", s.candidate)
                } else {
                    format!(
                        "did you mean `{}`? it is already set, so delete this one",
                        s.candidate
                    )
                },
                ok.then(|| FixAction::RenameKey {
                    section: Some(sec.name.to_string()),
                    from: m.key.clone(),
                    to: s.candidate.clone(),
                }),
            );
            return;
        }
        let homes: Vec<_> = schema::sections_with_key(&m.key)
            .into_iter()
            .filter(|h| *h != sec.name)
            .collect();
        if !homes.is_empty() {
            self.misplaced(Some(sec.name), m, &homes);
            return;
        }
        if let Some(s) = suggest::suggest(&m.key, all_keys()) {
            self.fuzzy_elsewhere(Some(sec.name), m, s);
            return;
        }
        self.unknown(
            Some(sec.name),
            m,
            "remove it; see the configuration reference in the README".to_string(),
            None,
        );
    }

    /// A key that exists, exactly, in other section(s).
    fn misplaced(&mut self, from: Option<&str>, m: &Member, homes: &[&'static str]) {
        let path = key_path(from, &m.key);
        let here = match from {
            Some(s) => format!("section `{s}`"),
            None => "the top level".to_string(),
        };
        if let [home] = homes {
            let free = !self.present(home, &m.key);
            self.push(
                path,
                m.key_pos,
                ProblemKind::MisplacedKey,
                format!("`{}` belongs in section `{home}`, not {here}", m.key),
                format!("`{home}.{}`", m.key),
                if free {
                    format!("move it to `{home}.{}`", m.key)
                } else {
                    format!("`{home}.{}` is already set; delete this one", m.key)
                },
                free.then(|| move_key(from, &m.key, home, &m.key)),
            );
        } else {
            let list = qualified(homes, &m.key);
            self.push(
                path,
                m.key_pos,
                ProblemKind::MisplacedKey,
                format!("`{}` is not a key of {here}; it exists as {list}", m.key),
                list.clone(),
                format!("move it to the section you meant: {list}"),
                None,
            );
        }
    }

    /// A misspelling of a key that lives in another section.
    fn fuzzy_elsewhere(&mut self, from: Option<&str>, m: &Member, s: suggest::Suggestion) {
        let homes = schema::sections_with_key(&s.candidate);
        let action = match (s.unambiguous, homes.as_slice()) {
            (true, [home]) if !self.present(home, &s.candidate) => {
                Some(move_key(from, &m.key, home, &s.candidate))
            }
            _ => None,
        };
        let targets = qualified(&homes, &s.candidate);
        self.unknown(
            from,
            m,
            format!("did you mean {targets}? move it there"),
            action,
        );
    }

    /// An unknown section (`from` is None) or an unknown key of section `from`, with the fix given.
    fn unknown(&mut self, from: Option<&str>, m: &Member, fix: String, action: Option<FixAction>) {
        self.push(
            key_path(from, &m.key),
            m.key_pos,
            ProblemKind::UnknownKey,
            match from {
                Some(sec) => format!("unknown key `{}` in section `{sec}`", m.key),
                None => format!("unknown section `{}`", m.key),
            },
            match from {
                Some(sec) => format!(
                    "one of {}",
                    key_names(schema::section(sec).expect("known section"))
                ),
                None => format!("one of the sections {}", section_names()),
            },
            fix,
            action,
        );
    }
}

/// `section.key`, or the bare key at the top level (`from` is None).
fn key_path(from: Option<&str>, key: &str) -> String {
    join(from.unwrap_or_default(), key)
}

/// "`home.key` or `other.key`": the places a key exists.
fn qualified(homes: &[&str], key: &str) -> String {
    homes
        .iter()
        .map(|h| format!("`{h}.{key}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The repair that moves `key` from section `from` (the top level when None) to `to_section.to_key`.
fn move_key(from: Option<&str>, key: &str, to_section: &str, to_key: &str) -> FixAction {
    FixAction::MoveKey {
        from_section: from.map(str::to_string),
        from_key: key.to_string(),
        to_section: to_section.to_string(),
        to_key: to_key.to_string(),
    }
}

fn all_keys() -> impl Iterator<Item = &'static str> {
    SCHEMA.iter().flat_map(|s| s.keys.iter().map(|k| k.name))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, usize, usize, ProblemKind)> {
        validate_text(text)
            .problems
            .into_iter()
            .map(|p| (p.path, p.line, p.column, p.kind))
            .collect()
    }

    #[test]
    fn valid_files() {
        assert!(validate_text("{}").is_valid());
        assert!(validate_text("{\"downloads\": {\"max_retries\": 9}}").is_valid());
        let full = serde_json::to_string_pretty(&schema::default_document()).unwrap();
        assert!(validate_text(&full).is_valid());
    }

    #[test]
    fn syntax_error_position() {
        let v = validate_text("{\n  \"storage\": {\n    \"max_storage_gb\": 5,\n  }\n}");
        assert_eq!(v.problems.len(), 1);
        let p = &v.problems[0];
        assert_eq!((p.line, p.column, p.kind), (4, 3, ProblemKind::Syntax));
        assert!(p.message.contains("trailing comma"), "{}", p.message);
    }

    #[test]
    fn every_problem_at_once() {
        let text = r#"{
  "storage": {
    "modles_directory": "/m",
    "cleanup_threshold_percent": 150
  },
  "downloads": {
    "max_concurrent_downloads": 0,
    "max_retries": "3",
    "enabled": true
  },
  "fallback": {"suggestion_threshold": 1.5},
  "api": {"port": 0},
  "health_monitoring": {"check_interval_hours": -1},
  "bogus": 1
}"#;
        let k = kinds(text);
        assert_eq!(
            k,
            vec![
                (
                    "storage.modles_directory".into(),
                    3,
                    5,
                    ProblemKind::UnknownKey
                ),
                (
                    "storage.cleanup_threshold_percent".into(),
                    4,
                    34,
                    ProblemKind::OutOfRange
                ),
                (
                    "downloads.max_concurrent_downloads".into(),
                    7,
                    33,
                    ProblemKind::OutOfRange
                ),
                (
                    "downloads.max_retries".into(),
                    8,
                    20,
                    ProblemKind::WrongType
                ),
                ("downloads.enabled".into(), 9, 5, ProblemKind::MisplacedKey),
                (
                    "fallback.suggestion_threshold".into(),
                    11,
                    40,
                    ProblemKind::OutOfRange
                ),
                ("api.port".into(), 12, 19, ProblemKind::OutOfRange),
                (
                    "health_monitoring.check_interval_hours".into(),
                    13,
                    49,
                    ProblemKind::OutOfRange
                ),
                ("bogus".into(), 14, 3, ProblemKind::UnknownKey),
            ]
        );
        let v = validate_text(text);
        assert!(
            v.problems[0]
                .fix
                .contains("did you mean `models_directory`")
        );
        // `enabled` exists in two sections: ambiguous, not auto-fixable.
        assert!(v.problems[4].action.is_none());
        assert!(v.problems[4].message.contains("health_monitoring.enabled"));
    }

    #[test]
    fn misplaced_and_legacy_keys() {
        let v = validate_text("{\"storage\": {\"max_retries\": 3}, \"download_retries\": 4}");
        assert_eq!(v.problems.len(), 2);
        assert_eq!(v.problems[0].kind, ProblemKind::MisplacedKey);
        assert!(
            v.problems[0]
                .message
                .contains("belongs in section `downloads`")
        );
        assert_eq!(
            v.problems[0].action,
            Some(FixAction::MoveKey {
                from_section: Some("storage".into()),
                from_key: "max_retries".into(),
                to_section: "downloads".into(),
                to_key: "max_retries".into()
            })
        );
        // The destination is taken by the first move's key: not auto-fixable as a second move.
        assert_eq!(v.problems[1].path, "download_retries");
        assert!(v.problems[1].message.contains("legacy"));
    }

    #[test]
    fn duplicates_and_null_sections() {
        let v = validate_text("{\"api\": {\"port\": 1, \"port\": 2}, \"ui\": null}");
        assert!(v.has_duplicates);
        assert_eq!(v.problems[0].kind, ProblemKind::DuplicateKey);
        assert_eq!(v.problems[0].column, 21);
        assert_eq!(v.problems[1].kind, ProblemKind::WrongType);
        assert!(v.problems[1].action.is_some());
    }

    #[test]
    fn root_not_object_and_bad_items() {
        assert_eq!(kinds("[1]")[0].3, ProblemKind::WrongType);
        let k = kinds("{\"storage\": {\"wanted_models\": [\"a/b\", 3]}}");
        assert_eq!(k[0].0, "storage.wanted_models[1]");
        assert_eq!(k[0].2, 39);
        let k = kinds("{\"analytics\": {\"db_url\": \"mysql://x\"}}");
        assert_eq!(k[0].3, ProblemKind::InvalidValue);
    }

    /// Whatever validates also loads with the typed parser.
    #[test]
    fn validation_agrees_with_typed_config() {
        for text in [
            "{\"downloads\": {\"max_retries\": 0}}",
            "{\"storage\": {\"cache_directory\": null, \"wanted_models\": []}}",
            "{\"api\": {\"port\": 65535, \"token\": \"t\"}}",
            "{\"fallback\": {\"suggestion_threshold\": 1}}",
            "{\"migration\": {\"unmapped_legacy_settings\": {\"x\": [1]}}}",
            "{\"analytics\": {\"db_url\": \"sqlite:///tmp/a.db\"}}",
        ] {
            assert!(validate_text(text).is_valid(), "{text}");
            assert!(config::parse(text, Path::new("x")).is_ok(), "{text}");
        }
        for text in [
            "{\"downloads\": {\"max_retries\": 3.5}}",
            "{\"api\": {\"port\": 70000}}",
            "{\"storage\": {\"shared_storage\": \"yes\"}}",
        ] {
            assert!(!validate_text(text).is_valid(), "{text}");
            assert!(config::parse(text, Path::new("x")).is_err(), "{text}");
        }
    }
}
