//! Configuration documents as JSON values: set one `section.key` in place, and render a document as the file text
//! ema writes.

use serde_json::{Map, Value};

/// Pretty JSON with a trailing newline: the format ema writes configuration files in.
pub fn render(doc: &Value) -> String {
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
    s.push('\n');
    s
}

/// Set `section.key` in a document, keeping the key's position when it exists.
pub fn set_path(doc: &mut Value, path: &str, value: Value) {
    let Some((s, k)) = path.split_once('.') else {
        return;
    };
    if let Value::Object(root) = doc {
        let sec = root
            .entry(s.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !sec.is_object() {
            *sec = Value::Object(Map::new());
        }
        if let Value::Object(m) = sec {
            m.insert(k.to_string(), value);
        }
    }
}
