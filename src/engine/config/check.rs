//! Checking one value against its key's kind and range (`Misfit` says why it does not fit and what would), what a
//! key expects in words, and parsing command-line values (`--set KEY=VALUE`, interactive edits) per the schema.

use serde_json::{Number, Value};

use super::schema::{Key, Kind, default_value, fmt_num, tidy_number};

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
        Kind::FallbackRules => {
            "an object {\"org/model-or-glob\": [\"org/substitute\", …]} or a list of {\"match\", \"fallbacks\"}"
                .to_string()
        }
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
        Kind::FallbackRules => match v {
            Value::Object(_) | Value::Array(_) => crate::engine::fallback::rules::Rules::parse(v)
                .map(|_| ())
                .map_err(|detail| Misfit::Invalid { detail }),
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
        Kind::FallbackRules => {
            serde_json::from_str(t).map_err(|e| format!("`{raw}` is not JSON: {e}"))?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Config;
    use crate::engine::config::schema::{SCHEMA, default_document, lookup};

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
