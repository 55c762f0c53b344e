//! What changed between two configurations: the `section.key` paths whose values differ, so a reload can say what it
//! applied and what needs a restart. Only names are returned, never values (a token may be among them).

use serde_json::Value;

use super::Config;

/// Every `section.key` whose value differs between `old` and `new`, in schema order of the serialized form.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or(Value::Null),
        serde_json::to_value(new).unwrap_or(Value::Null),
    );
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().collect();
            keys.extend(y.keys().filter(|k| !x.contains_key(*k)));
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(
                    &path,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_changed_key_and_nothing_else() {
        let a = Config::default();
        assert!(changed_keys(&a, &a).is_empty());
        let mut b = a.clone();
        b.api.token = Some("s3cret".into());
        b.downloads.max_retries += 1;
        b.api.allowed_hosts.push("models.example".into());
        let keys = changed_keys(&a, &b);
        assert_eq!(
            keys,
            ["downloads.max_retries", "api.token", "api.allowed_hosts"]
        );
        assert!(!format!("{keys:?}").contains("s3cret"));
    }
}
