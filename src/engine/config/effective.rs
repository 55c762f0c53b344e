//! The effective value of every key for `validate-config --verbose`: the file's value, else the default.

use serde::Serialize;
use serde_json::Value;

use super::redact::redact_at;
use super::schema::{self, SCHEMA};

/// One row of `validate-config --verbose`: a key's effective value and whether it came from the file.
#[derive(Debug, Clone, Serialize)]
pub struct Effective {
    pub path: String,
    pub value: Value,
    pub from_file: bool,
}

/// The effective value of every schema key for a (valid) document: the file's value, else the default. The API
/// token is redacted.
pub fn effective_values(doc: &Value) -> Vec<Effective> {
    let mut out = Vec::new();
    for s in SCHEMA {
        for key in s.keys {
            let from = doc.get(s.name).and_then(|sec| sec.get(key.name));
            let path = format!("{}.{}", s.name, key.name);
            let value = redact_at(
                &path,
                &from
                    .cloned()
                    .unwrap_or_else(|| schema::default_value(s.name, key.name)),
            );
            out.push(Effective {
                path,
                value,
                from_file: from.is_some(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_values_mark_defaults() {
        let doc: Value =
            serde_json::from_str("{\"api\": {\"port\": 9, \"token\": \"s3cret\"}}").unwrap();
        let e = effective_values(&doc);
        let port = e.iter().find(|e| e.path == "api.port").unwrap();
        assert!(port.from_file);
        let tok = e.iter().find(|e| e.path == "api.token").unwrap();
        assert_eq!(tok.value, Value::String("<redacted>".into()));
        assert!(!e.iter().find(|e| e.path == "ui.theme").unwrap().from_file);
    }
}
