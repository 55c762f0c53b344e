//! The operator's fallback rules (`fallback.rules`): ordered substitute lists per model id or glob, LiteLLM-style.
//!
//! Two spellings, both ordered:
//! - an object `{"meta-llama/*": ["org/a", "org/b"], "org/x": ["org/y"]}` (keys tried in file order), or
//! - a list `[{"match": "meta-llama/*", "fallbacks": ["org/a", "org/b"]}, …]`.
//!
//! A pattern is a repo id or a glob (`*` any run of characters, `?` one character); a substitute is a repo id. The
//! first matching entry's list is tried, in order. This file only parses and matches; it knows nothing else of the
//! configuration, so the configuration's validation can call it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::engine::store::RepoId;

/// One rule: the requests it matches and their substitutes, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub pattern: String,
    pub fallbacks: Vec<String>,
}

/// The ordered rules (empty by default).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// Parse and validate a `fallback.rules` value; the error names the entry, what is wrong and the expected form.
    pub fn parse(v: &Value) -> Result<Rules, String> {
        const FORM: &str = "expected {\"org/model-or-glob*\": [\"org/substitute\", …]} or [{\"match\": \"…\", \
                            \"fallbacks\": [\"…\"]}, …]";
        let mut out = Vec::new();
        match v {
            Value::Object(m) => {
                for (pattern, list) in m {
                    out.push(rule(pattern, list, &format!("rules[{pattern:?}]"))?);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("rules[{i}]");
                    let Some(o) = item.as_object() else {
                        return Err(format!("{at} is not an object; {FORM}"));
                    };
                    if let Some(k) = o.keys().find(|k| *k != "match" && *k != "fallbacks") {
                        return Err(format!(
                            "{at} has an unknown key {k:?}; the keys are \"match\" and \"fallbacks\""
                        ));
                    }
                    let Some(pattern) = o.get("match").and_then(|m| m.as_str()) else {
                        return Err(format!("{at} needs a \"match\" string (a repo id or glob)"));
                    };
                    let list = o.get("fallbacks").unwrap_or(&Value::Null);
                    out.push(rule(pattern, list, &at)?);
                }
            }
            Value::Null => {}
            _ => {
                return Err(format!(
                    "fallback.rules is neither an object nor a list; {FORM}"
                ));
            }
        }
        Ok(Rules(out))
    }

    /// The first rule matching `model_id`, if any.
    pub fn matching(&self, model_id: &str) -> Option<&Rule> {
        self.0.iter().find(|r| glob_match(&r.pattern, model_id))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn rule(pattern: &str, list: &Value, at: &str) -> Result<Rule, String> {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Err(format!(
            "{at}: the pattern is empty; use a repo id or a glob like \"org/*\""
        ));
    }
    if pattern
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '*' | '?')))
    {
        return Err(format!(
            "{at}: the pattern {pattern:?} has a character a repo id never has; use letters, digits, `-_./` and \
             the wildcards `*` `?`"
        ));
    }
    let Some(items) = list.as_array() else {
        return Err(format!(
            "{at}: the substitutes must be a list of repo ids, e.g. [\"org/a\", \"org/b\"]"
        ));
    };
    if items.is_empty() {
        return Err(format!(
            "{at}: the substitute list is empty; name at least one repo id"
        ));
    }
    let mut fallbacks = Vec::new();
    for (j, it) in items.iter().enumerate() {
        let Some(s) = it.as_str() else {
            return Err(format!(
                "{at}[{j}] is not a string; name a repo id like \"org/name\""
            ));
        };
        RepoId::parse(s.trim()).map_err(|e| format!("{at}[{j}]: {e}"))?;
        if fallbacks.iter().any(|f| f == s.trim()) {
            return Err(format!("{at}[{j}]: {s:?} is listed twice"));
        }
        fallbacks.push(s.trim().to_string());
    }
    Ok(Rule {
        pattern: pattern.to_string(),
        fallbacks,
    })
}

/// `*` matches any run of characters (also `/`), `?` one character; everything else literally.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Serialize for Rules {
    /// Written back in the list spelling (it keeps the order in every JSON tool).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<Value> = self
            .0
            .iter()
            .map(|r| serde_json::json!({"match": r.pattern, "fallbacks": r.fallbacks}))
            .collect();
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rules {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Rules::parse(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_in_order_and_first_match_wins() {
        let a =
            Rules::parse(&json!({"meta-llama/*": ["org/a", "org/b"], "meta-llama/x": ["org/c"]}))
                .unwrap();
        let b = Rules::parse(&json!([
            {"match": "meta-llama/*", "fallbacks": ["org/a", "org/b"]},
            {"match": "meta-llama/x", "fallbacks": ["org/c"]}
        ]))
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.matching("meta-llama/x").unwrap().fallbacks,
            vec!["org/a", "org/b"]
        );
        assert!(a.matching("other/x").is_none());
        let round: Rules = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(round, a);
    }

    #[test]
    fn globs() {
        assert!(glob_match("org/*", "org/a-b"));
        assert!(glob_match("*", "x/y"));
        assert!(glob_match("org/m-?b", "org/m-7b"));
        assert!(!glob_match("org/m-?b", "org/m-70b"));
        assert!(!glob_match("org/a", "org/ab"));
        assert!(glob_match("*/llama-*-instruct", "meta/llama-3-instruct"));
    }

    #[test]
    fn bad_rules_say_what_and_how() {
        for (v, says) in [
            (json!({"org/*": "org/a"}), "must be a list"),
            (json!({"org/*": []}), "is empty"),
            (json!({"org/*": ["bad id!"]}), "rules[\"org/*\"][0]"),
            (json!({"": ["org/a"]}), "pattern is empty"),
            (
                json!([{"match": "x/*", "fallback": ["org/a"]}]),
                "unknown key \"fallback\"",
            ),
            (json!([{"fallbacks": ["org/a"]}]), "needs a \"match\""),
            (json!(3), "neither an object nor a list"),
            (json!({"org/*": ["org/a", "org/a"]}), "listed twice"),
        ] {
            let e = Rules::parse(&v).unwrap_err();
            assert!(e.contains(says), "{v}: {e}");
        }
    }
}
