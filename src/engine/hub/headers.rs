//! Reading what a server sends in headers: trimmed values, ETags, the wait a server asks for (`Retry-After`,
//! `RateLimit`), the next page of a paginated listing (`Link`), and server text cut short for messages.

use reqwest::header::{self, HeaderMap};
use url::Url;

pub(super) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The first `n` characters of `s` (server text in messages).
pub(super) fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Strip `W/` and quotes from an ETag value.
pub fn clean_etag(v: &str) -> String {
    v.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase()
}

/// Seconds to wait from `Retry-After` (seconds or an HTTP date) or `RateLimit: …;t=N`.
pub fn retry_after_seconds(h: &HeaderMap) -> Option<f64> {
    if let Some(v) = header_str(h, "retry-after") {
        if let Ok(n) = v.parse::<f64>()
            && n.is_finite()
            && n >= 0.0
        {
            return Some(n);
        }
        if let Ok(t) = httpdate::parse_http_date(v) {
            let now = std::time::SystemTime::now();
            return Some(
                t.duration_since(now)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
            );
        }
    }
    if let Some(v) = header_str(h, "ratelimit") {
        for part in v.split([';', ',']) {
            if let Some(t) = part.trim().strip_prefix("t=")
                && let Ok(n) = t.trim().parse::<f64>()
                && n.is_finite()
                && n >= 0.0
            {
                return Some(n);
            }
        }
    }
    None
}

/// The `rel="next"` target of a `Link` header, resolved against `current`.
pub(super) fn next_link(h: &HeaderMap, current: &Url) -> Option<Url> {
    for v in h.get_all(header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let t = target.trim_start_matches('<').trim_end_matches('>');
                return current.join(t).ok();
            }
        }
    }
    None
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::Duration;

    /// A header map of `pairs` (for tests).
    pub(in crate::engine::hub) fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after_seconds(&hm(&[("retry-after", "7")])), Some(7.0));
        let future =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(100));
        let s = retry_after_seconds(&hm(&[("retry-after", &future)])).unwrap();
        assert!((90.0..=101.0).contains(&s), "{s}");
        assert_eq!(
            retry_after_seconds(&hm(&[("ratelimit", "\"api\";r=0;t=55")])),
            Some(55.0)
        );
        assert_eq!(retry_after_seconds(&hm(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn link_header_next() {
        let cur = Url::parse("http://127.0.0.1:9/api/models/a/b/tree/x?recursive=true").unwrap();
        let h = hm(&[(
            "link",
            "<http://127.0.0.1:9/api/models/a/b/tree/x?recursive=true&cursor=abc>; rel=\"next\"",
        )]);
        assert_eq!(
            next_link(&h, &cur).unwrap().as_str(),
            "http://127.0.0.1:9/api/models/a/b/tree/x?recursive=true&cursor=abc"
        );
        assert!(next_link(&hm(&[("link", "<x>; rel=\"prev\"")]), &cur).is_none());
        let rel = hm(&[("link", "</p2?c=1>; rel=\"next\"")]);
        assert_eq!(
            next_link(&rel, &cur).unwrap().as_str(),
            "http://127.0.0.1:9/p2?c=1"
        );
    }
}
