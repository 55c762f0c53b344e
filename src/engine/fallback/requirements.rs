//! What the client requires of a substitute (`--require KEY=VALUE`, the spec's `"requirements": {…}`): `quality`,
//! `max_size_gb`, `task`, `library`. Unknown keys and bad values are errors naming the known keys and the fix.
//!
//! The quality rule (r = substitute parameters / requested parameters when the substitute is smaller; bits =
//! bits per weight, from `quantization_config` or the weights' dtypes):
//!
//! | quality | parameter ratio | precision |
//! |---|---|---|
//! | `high` | r ≥ 0.5 | bits ≥ the requested model's (a 4-bit quantization of a 16-bit model is refused) |
//! | `medium` | r ≥ 0.25 | bits ≥ half the requested model's (8-bit of 16-bit is fine, 4-bit is not) |
//! | `low` | any | any |
//!
//! A fact unknown on either side does not refuse (the reasons say it was unknown).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::error::{EmaError, Result};

/// The known requirement keys.
pub const KEYS: &[&str] = &["quality", "max_size_gb", "task", "library"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    High,
    Medium,
    Low,
}

impl Quality {
    /// The smallest parameter ratio (substitute / requested) and the smallest share of the requested bits.
    pub fn limits(self) -> (f64, f64) {
        match self {
            Quality::High => (0.5, 1.0),
            Quality::Medium => (0.25, 0.5),
            Quality::Low => (0.0, 0.0),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::High => "high",
            Quality::Medium => "medium",
            Quality::Low => "low",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirements {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size_gb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
}

impl Requirements {
    /// From `KEY=VALUE` strings (the CLI's `--require`).
    pub fn from_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<Requirements> {
        let mut r = Requirements::default();
        for p in pairs {
            let p = p.as_ref();
            let Some((k, v)) = p.split_once('=') else {
                return Err(EmaError::Config(format!(
                    "--require {p:?} is not KEY=VALUE; e.g. --require quality=high (keys: {})",
                    KEYS.join(", ")
                )));
            };
            r.set(k.trim(), &Value::String(v.trim().to_string()))?;
        }
        Ok(r)
    }

    /// From a JSON object (the API's `"requirements"`).
    pub fn from_json(v: &Value) -> Result<Requirements> {
        let mut r = Requirements::default();
        match v {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    r.set(k, v)?;
                }
            }
            _ => {
                return Err(EmaError::Config(format!(
                    "requirements must be an object like {{\"quality\": \"high\"}} (keys: {})",
                    KEYS.join(", ")
                )));
            }
        }
        Ok(r)
    }

    fn set(&mut self, key: &str, v: &Value) -> Result<()> {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        let bad = |what: &str| EmaError::Config(format!("requirement {key}={text:?}: {what}"));
        match key {
            "quality" => {
                self.quality = Some(match text.to_ascii_lowercase().as_str() {
                    "high" => Quality::High,
                    "medium" => Quality::Medium,
                    "low" => Quality::Low,
                    _ => return Err(bad("expected high, medium or low")),
                })
            }
            "max_size_gb" => {
                let f: f64 = text
                    .parse()
                    .ok()
                    .filter(|f: &f64| f.is_finite() && *f > 0.0)
                    .ok_or_else(|| bad("expected a number of gigabytes > 0, e.g. max_size_gb=8"))?;
                self.max_size_gb = Some(f);
            }
            "task" | "library" => {
                if text.trim().is_empty() {
                    return Err(bad("expected a non-empty name, e.g. task=text-generation"));
                }
                let t = Some(text.trim().to_string());
                if key == "task" {
                    self.task = t;
                } else {
                    self.library = t;
                }
            }
            _ => {
                let hint = crate::engine::config::suggest::suggest(key, KEYS.iter().copied())
                    .map(|s| format!("did you mean {:?}? ", s.candidate))
                    .unwrap_or_default();
                return Err(EmaError::Config(format!(
                    "unknown requirement {key:?}; {hint}the known requirements are {}",
                    KEYS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_and_json_agree() {
        let a =
            Requirements::from_pairs(&["quality=high", "max_size_gb=8", "task=text-generation"])
                .unwrap();
        let b = Requirements::from_json(
            &json!({"quality": "high", "max_size_gb": 8, "task": "text-generation"}),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.quality, Some(Quality::High));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_fix() {
        let e = Requirements::from_pairs(&["qualty=high"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown requirement \"qualty\"")
                && e.contains("quality, max_size_gb, task, library"),
            "{e}"
        );
        assert!(e.contains("did you mean \"quality\""), "{e}");
        for bad in [
            "quality=best",
            "max_size_gb=-1",
            "max_size_gb=x",
            "noequals",
        ] {
            let e = Requirements::from_pairs(&[bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
        assert!(Requirements::from_json(&json!([1])).is_err());
    }
}
