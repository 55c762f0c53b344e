//! `migrate-usage-data`: the legacy usage log into the analytics database. Reads JSON lines
//! (`{"timestamp": …, "model_id": …, "event": …}`, ISO-8601 or epoch timestamps) and the text form
//! (`2024-01-01T12:00:00Z INFO model=org/name event=request latency_ms=12`). Bad lines are counted with their line
//! numbers and never stop the import; each line is keyed by a content hash (plus its occurrence among identical
//! lines), so importing the same file again adds nothing.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::db::AnalyticsDb;
use super::record::{Record, kind};
use crate::engine::error::{EmaError, Result};

/// Bad lines listed by number in the report (the rest are only counted).
pub const BAD_LINES_LISTED: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    pub source: String,
    pub target: String,
    /// Non-empty lines read.
    pub lines: usize,
    /// Good lines.
    pub parsed: usize,
    /// Good lines added now.
    pub imported: u64,
    /// Good lines already in the database (an earlier import).
    pub already_present: u64,
    pub bad: usize,
    /// The first few bad lines, with why.
    pub bad_lines: Vec<BadLine>,
}

/// Import `source` into `db`.
pub async fn import_usage_log(db: &AnalyticsDb, source: &Path) -> Result<ImportReport> {
    let bytes = std::fs::read(source).map_err(|e| {
        EmaError::Config(format!(
            "cannot read the usage log {}: {e}; give the path of logs/usage.log with --source",
            source.display()
        ))
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let (records, lines, bad, bad_lines) = parse_log(&text);
    let imported = db.write(&records, &HashMap::new()).await?;
    Ok(ImportReport {
        source: source.display().to_string(),
        target: db.url().redacted(),
        lines,
        parsed: records.len(),
        imported,
        already_present: records.len() as u64 - imported,
        bad,
        bad_lines,
    })
}

/// Parse a whole log: (records, non-empty lines, bad count, first bad lines).
pub fn parse_log(text: &str) -> (Vec<Record>, usize, usize, Vec<BadLine>) {
    let mut records = Vec::new();
    let mut seen: HashMap<[u8; 32], u32> = HashMap::new();
    let (mut lines, mut bad) = (0, 0);
    let mut bad_lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        lines += 1;
        match parse_line(line) {
            Ok(mut r) => {
                let h: [u8; 32] = Sha256::digest(line.as_bytes()).into();
                let n = seen.entry(h).or_insert(0);
                *n += 1;
                r.source_key = Some(format!("usage:{}:{}", hex::encode(h), n));
                records.push(r);
            }
            Err(reason) => {
                bad += 1;
                if bad_lines.len() < BAD_LINES_LISTED {
                    bad_lines.push(BadLine {
                        line: i + 1,
                        reason,
                    });
                }
            }
        }
    }
    (records, lines, bad, bad_lines)
}

/// One line, JSON or text.
pub fn parse_line(line: &str) -> std::result::Result<Record, String> {
    if line.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not valid JSON ({e})"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        let ts = obj
            .get("timestamp")
            .or_else(|| obj.get("ts"))
            .or_else(|| obj.get("time"))
            .ok_or("no timestamp")?;
        let ts_ms = match ts {
            serde_json::Value::Number(n) => epoch_ms(n.as_f64().ok_or("bad epoch timestamp")?)?,
            serde_json::Value::String(s) => parse_ts(s)?,
            _ => return Err("timestamp is neither a number nor a string".into()),
        };
        let model = obj
            .get("model_id")
            .or_else(|| obj.get("model"))
            .and_then(|m| m.as_str())
            .filter(|m| !m.trim().is_empty())
            .ok_or("no model_id")?;
        let event = obj
            .get("event")
            .and_then(|e| e.as_str())
            .filter(|e| !e.trim().is_empty())
            .ok_or("no event")?;
        let mut fields: HashMap<String, String> = HashMap::new();
        let mut rest = serde_json::Map::new();
        for (k, v) in obj {
            if matches!(
                k.as_str(),
                "timestamp" | "ts" | "time" | "model_id" | "model" | "event"
            ) {
                continue;
            }
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fields.insert(k.clone(), s);
            rest.insert(k.clone(), v.clone());
        }
        Ok(build(
            ts_ms,
            model,
            event,
            &fields,
            serde_json::Value::Object(rest),
        ))
    } else {
        let mut parts = line.split_whitespace();
        let ts = parts.next().ok_or("empty line")?;
        let ts_ms = parse_ts(ts)?;
        let mut fields: HashMap<String, String> = HashMap::new();
        let mut level = None;
        for p in parts {
            match p.split_once('=') {
                Some((k, v)) => {
                    fields.insert(k.to_string(), v.trim_matches('"').to_string());
                }
                None if level.is_none() => level = Some(p.to_string()),
                None => return Err(format!("`{p}` is not key=value")),
            }
        }
        let model = fields.remove("model").or_else(|| fields.remove("model_id"));
        let model = model.filter(|m| !m.is_empty()).ok_or("no model=")?;
        let event = fields
            .remove("event")
            .filter(|e| !e.is_empty())
            .ok_or("no event=")?;
        let mut detail = serde_json::Map::new();
        if let Some(l) = level {
            detail.insert("level".into(), l.into());
        }
        for (k, v) in &fields {
            detail.insert(k.clone(), v.clone().into());
        }
        Ok(build(
            ts_ms,
            &model,
            &event,
            &fields,
            serde_json::Value::Object(detail),
        ))
    }
}

/// A record from a legacy event: `request` → model_requested, `download` → download_completed, `fallback` →
/// fallback_taken, `error`/`failure` → download_failed; any other event keeps its name prefixed `legacy_`.
fn build(
    ts_ms: i64,
    model: &str,
    event: &str,
    f: &HashMap<String, String>,
    detail: serde_json::Value,
) -> Record {
    let k = match event.to_ascii_lowercase().as_str() {
        "request" | "requested" | "model_requested" => kind::MODEL_REQUESTED.to_string(),
        "served" | "model_served" | "load" | "loaded" => kind::MODEL_SERVED.to_string(),
        "download" | "downloaded" | "download_completed" => kind::DOWNLOAD_COMPLETED.to_string(),
        "download_failed" | "error" | "failure" => kind::DOWNLOAD_FAILED.to_string(),
        "fallback" | "fallback_taken" => kind::FALLBACK_TAKEN.to_string(),
        other => format!(
            "legacy_{}",
            other
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        ),
    };
    let num = |names: &[&str]| names.iter().find_map(|n| f.get(*n)?.parse::<f64>().ok());
    let mut r = Record::new(&k, Some(model)).face("legacy");
    r.ts_ms = ts_ms;
    r.duration_ms = num(&["latency_ms", "duration_ms"])
        .map(|x| x.round() as i64)
        .or_else(|| num(&["duration_s", "seconds"]).map(|x| (x * 1000.0).round() as i64));
    r.bytes = num(&["bytes", "size"]).map(|x| x as i64);
    r.substitute = f
        .get("substitute")
        .or_else(|| f.get("fallback_model"))
        .cloned();
    r.score = num(&["score"]);
    r.result = f.get("status").or_else(|| f.get("result")).cloned();
    if let (Some(b), Some(d)) = (r.bytes, r.duration_ms)
        && d > 0
        && r.kind == kind::DOWNLOAD_COMPLETED
    {
        r.rate = Some(b as f64 * 1000.0 / d as f64);
    }
    r.detail = Some(detail);
    r
}

/// Epoch seconds (or milliseconds when it is that large) to milliseconds.
fn epoch_ms(x: f64) -> std::result::Result<i64, String> {
    if !x.is_finite() || x < 0.0 {
        return Err(format!("epoch timestamp {x} is out of range"));
    }
    Ok(if x >= 1e11 {
        x.round()
    } else {
        (x * 1000.0).round()
    } as i64)
}

/// ISO-8601 (with zone, or without it meaning UTC; `T` or a space) or an epoch number, to milliseconds.
pub fn parse_ts(s: &str) -> std::result::Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(x) = s.parse::<f64>() {
        return epoch_ms(x);
    }
    Err(format!("`{s}` is not an ISO-8601 or epoch timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_bad_lines_are_numbered() {
        let log = "2024-01-01T12:00:00Z INFO model=org/a event=request latency_ms=12\n\
                   {\"timestamp\": 1704110400, \"model_id\": \"org/b\", \"event\": \"request\"}\n\
                   \n\
                   garbage here\n\
                   {\"timestamp\": \"2024-01-01T12:00:00+01:00\", \"model_id\": \"org/c\", \"event\": \"download\", \"bytes\": 100, \"duration_ms\": 50}\n\
                   {\"model_id\": \"org/d\", \"event\": \"request\"}\n\
                   2024-01-01T12:00:00Z INFO model=org/a event=request latency_ms=12\n";
        let (recs, lines, bad, bad_lines) = parse_log(log);
        assert_eq!((recs.len(), lines, bad), (4, 6, 2));
        assert_eq!(
            bad_lines.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![4, 6]
        );
        assert!(bad_lines[1].reason.contains("timestamp"), "{bad_lines:?}");
        assert_eq!(recs[0].kind, kind::MODEL_REQUESTED);
        assert_eq!(recs[0].ts_ms, 1_704_110_400_000);
        assert_eq!(recs[0].duration_ms, Some(12));
        assert_eq!(recs[1].ts_ms, 1_704_110_400_000);
        assert_eq!(recs[2].ts_ms, 1_704_106_800_000);
        assert_eq!(recs[2].rate, Some(2000.0));
        // Identical lines are distinct records with distinct keys.
        assert_ne!(recs[0].source_key, recs[3].source_key);
        assert_eq!(parse_ts("1704110400123").unwrap(), 1_704_110_400_123);
    }
}
