//! Sizes, rates and durations for humans (`1.5 GB`, `2.5 MB/s`, `1m05s`), as the panes and the status bar show them.

/// `1.5 GB`, `320 MB`, `12 KB`, `17 B` (decimal units, as the Hub shows sizes).
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", U[i])
    } else {
        format!("{v:.0} {}", U[i])
    }
}

pub fn human_rate(bps: f64) -> String {
    format!("{}/s", human_bytes(bps.max(0.0) as u64))
}

pub fn human_eta(secs: Option<f64>) -> String {
    match secs {
        None => "--".into(),
        Some(s) if !s.is_finite() || s < 0.0 => "--".into(),
        Some(s) => {
            let s = s.round() as u64;
            if s >= 3600 {
                format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
            } else if s >= 60 {
                format!("{}m{:02}s", s / 60, s % 60)
            } else {
                format!("{s}s")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(human_bytes(17), "17 B");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
        assert_eq!(human_eta(Some(65.0)), "1m05s");
    }
}
