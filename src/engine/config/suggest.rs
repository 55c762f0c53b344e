//! "Did you mean": the closest candidate to a misspelled section, key or feature name.

/// The result of a "did you mean" search.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub candidate: String,
    /// No other candidate is as close.
    pub unambiguous: bool,
}

fn normalize(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace(['-', ' ', '.'], "_")
}

/// The closest candidate to `name`, if it is close enough to be a plausible misspelling.
pub fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<Suggestion> {
    let n = normalize(name);
    let limit = match n.chars().count() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&n, &normalize(c)), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort_by_key(|(d, _)| *d);
    let (best_d, best) = *scored.first()?;
    let unambiguous = scored.iter().filter(|(d, _)| *d == best_d).count() == 1;
    Some(Suggestion {
        candidate: best.to_string(),
        unambiguous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::schema::section;

    #[test]
    fn did_you_mean() {
        let keys = section("storage").unwrap().keys.iter().map(|k| k.name);
        let s = suggest("modles_directory", keys).unwrap();
        assert_eq!(s.candidate, "models_directory");
        assert!(s.unambiguous);
        let s = suggest("Max-Retries", ["max_retries", "max_retry"]).unwrap();
        assert_eq!(s.candidate, "max_retries");
        assert!(suggest("zzzz", ["storage", "downloads"]).is_none());
        let s = suggest("enabld", ["enabled", "enabled"]).unwrap();
        assert!(!s.unambiguous);
    }
}
