//! Keeping credentials out of what ema prints: secret-looking keys and URL passwords are redacted.

use serde_json::Value;

/// Does a key name look like it holds a credential (`token`, `hf_token`, `api_key`, `password`, …)?
pub fn is_secret_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "api_key",
        "apikey",
        "credential",
        "auth",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// A copy of `v` for display with every value under a secret-looking key replaced by `"<redacted>"`.
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String("<redacted>".to_string())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::String(s) => Value::String(mask_url_password(s)),
        other => other.clone(),
    }
}

/// `postgresql://user:pw@host/db` → `postgresql://user:<redacted>@host/db`; other strings unchanged.
pub fn mask_url_password(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:<redacted>@{host}");
    }
    s.to_string()
}

/// `value` for display under `path` (`api.token`, or anything secret-looking): redacted when it is a credential.
pub fn redact_at(path: &str, value: &Value) -> Value {
    let last = path.rsplit('.').next().unwrap_or(path);
    if is_secret_key(last) && !value.is_null() {
        Value::String("<redacted>".to_string())
    } else {
        redact(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            mask_url_password("postgresql://u:pw@h:5432/db"),
            "postgresql://u:<redacted>@h:5432/db"
        );
        assert_eq!(mask_url_password("sqlite:///a@b"), "sqlite:///a@b");
        let v: Value =
            serde_json::from_str(r#"{"hf_token": "x", "n": {"Password": "y"}, "ok": [1]}"#)
                .unwrap();
        assert_eq!(
            redact(&v),
            serde_json::json!({"hf_token": "<redacted>", "n": {"Password": "<redacted>"}, "ok": [1]})
        );
    }
}
