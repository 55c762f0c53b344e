//! A reader of the Prometheus text exposition format (what `GET /metrics` answers): the declared families
//! (`# TYPE`) and every sample with its labels, strict enough to say which line is malformed.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Family name → type (`counter`, `gauge`, `histogram`, …).
    pub families: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|d| d.is_ascii_alphanumeric() || d == '_' || d == ':')
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        v => v.parse().ok(),
    }
}

/// `{a="x",b="y"}` (the braces stripped) into labels.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let eq = s[i..].find('=').ok_or("a label without '='")? + i;
        let key = s[i..eq].trim().to_string();
        if !valid_name(&key) {
            return Err(format!("bad label name {key:?}"));
        }
        if b.get(eq + 1) != Some(&b'"') {
            return Err(format!("label {key} has no quoted value"));
        }
        let mut j = eq + 2;
        let mut val = String::new();
        loop {
            match b.get(j) {
                None => return Err(format!("label {key}'s value is not closed")),
                Some(b'\\') => {
                    match b.get(j + 1) {
                        Some(b'n') => val.push('\n'),
                        Some(&c) => val.push(c as char),
                        None => return Err("a dangling escape".into()),
                    }
                    j += 2;
                }
                Some(b'"') => break,
                Some(_) => {
                    let ch = s[j..].chars().next().expect("in bounds");
                    val.push(ch);
                    j += ch.len_utf8();
                }
            }
        }
        out.insert(key, val);
        i = j + 1;
    }
    Ok(out)
}

impl Exposition {
    /// Parse `text`; the error names the first malformed line.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut e = Exposition::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            let bad = |why: String| format!("line {}: {why}: {line:?}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut w = rest.split_whitespace();
                match (w.next(), w.next()) {
                    (Some(name), Some(t)) if valid_name(name) => {
                        e.families.insert(name.to_string(), t.to_string());
                    }
                    _ => return Err(bad("a malformed TYPE line".into())),
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, labels, rest) = match line.find('{') {
                Some(open) => {
                    let close = line
                        .rfind('}')
                        .ok_or_else(|| bad("labels not closed".into()))?;
                    let labels = parse_labels(&line[open + 1..close]).map_err(bad)?;
                    (&line[..open], labels, &line[close + 1..])
                }
                None => {
                    let sp = line.find(' ').ok_or_else(|| bad("no value".into()))?;
                    (&line[..sp], BTreeMap::new(), &line[sp..])
                }
            };
            if !valid_name(name) {
                return Err(bad(format!("bad metric name {name:?}")));
            }
            let v = rest
                .split_whitespace()
                .next()
                .ok_or_else(|| bad("no value".into()))?;
            let value =
                parse_value(v).ok_or_else(|| bad(format!("value {v:?} is not a number")))?;
            e.samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Ok(e)
    }

    /// Whether `metric` (as a query names it: a family, a sample name, or a histogram's `_bucket` / `_sum` /
    /// `_count`, a counter's `_total`) is exported — declared, even when it has no sample yet.
    pub fn has(&self, metric: &str) -> bool {
        if self.families.contains_key(metric) || self.samples.iter().any(|s| s.name == metric) {
            return true;
        }
        ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .any(|suf| {
                metric
                    .strip_suffix(suf)
                    .is_some_and(|f| self.families.contains_key(f))
            })
    }

    /// The metrics of `wanted` not exported.
    pub fn missing(&self, wanted: &[String]) -> Vec<String> {
        wanted.iter().filter(|m| !self.has(m)).cloned().collect()
    }

    /// The sum of the samples named `name` whose labels include every pair of `labels`; None without any.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = false;
        let mut total = 0.0;
        for s in self.samples.iter().filter(|s| s.name == name) {
            if labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            {
                found = true;
                total += s.value;
            }
        }
        found.then_some(total)
    }

    /// The family names, for reports.
    pub fn family_names(&self) -> BTreeSet<&str> {
        self.families.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_samples_and_suffixes() {
        let t = "# HELP ema_downloads Downloads.\n# TYPE ema_downloads counter\n\
                 ema_downloads_total{outcome=\"failed\"} 2\nema_downloads_total{outcome=\"ok, \\\"x\\\"\"} 1\n\
                 # TYPE ema_lat_seconds histogram\nema_lat_seconds_bucket{le=\"+Inf\"} 3\n# TYPE ema_r gauge\n\
                 # EOF\n";
        let e = Exposition::parse(t).unwrap();
        assert!(e.has("ema_downloads_total") && e.has("ema_lat_seconds_bucket") && e.has("ema_r"));
        assert!(!e.has("ema_nothing"));
        assert_eq!(
            e.sum("ema_downloads_total", &[("outcome", "failed")]),
            Some(2.0)
        );
        assert_eq!(e.sum("ema_downloads_total", &[]), Some(3.0));
        assert_eq!(e.samples[1].labels["outcome"], "ok, \"x\"");
        assert!(Exposition::parse("ema_x{a=\"b\" 1\n").is_err());
        assert!(Exposition::parse("ema_x one\n").is_err());
    }
}
