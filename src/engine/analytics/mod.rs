//! Usage analytics: one store on two backends (SQLite by default, PostgreSQL with a `postgresql://` URL), the
//! non-blocking recorder fed by the event bus, the legacy usage-log import, and the report.

pub mod db;
pub mod import;
pub mod record;
pub mod recorder;
pub mod report;
pub mod url;

pub use db::{AnalyticsDb, SCHEMA_VERSION};
pub use import::{ImportReport, import_usage_log};
pub use record::{EventMapper, Record, kind};
pub use recorder::{Recorder, RecorderStats};
pub use report::{AnalyticsSummary, successes_since, summary};
pub use url::{Backend, DbUrl};

use crate::engine::config::Config;
use crate::engine::error::{EmaError, Result};

/// Does the configuration ask for recording (`analytics.enabled` and `features.usage_analytics`)?
pub fn enabled(config: &Config) -> bool {
    config.analytics.enabled && config.features.usage_analytics
}

/// The database `flag` (a command's `--db-url`) or the configuration names; the default location's directory (the
/// cache directory) is created.
pub fn locate(flag: Option<&str>, config: &Config) -> Result<DbUrl> {
    let url = DbUrl::resolve(flag, config)?;
    if flag.is_none()
        && config.analytics.db_url.is_none()
        && let Some(dir) = url.sqlite_path().and_then(|p| p.parent())
    {
        std::fs::create_dir_all(dir).map_err(|e| EmaError::Io {
            action: "create the analytics directory",
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    Ok(url)
}

/// Open (creating or upgrading) the database `flag` or the configuration names.
pub async fn open(flag: Option<&str>, config: &Config) -> Result<AnalyticsDb> {
    AnalyticsDb::open(&locate(flag, config)?).await
}

/// `--since`: a duration back from `now_ms` (`90s`, `30m`, `24h`, `7d`, `2w`) or a date / date-time
/// (`2024-01-01`, `2024-01-01T12:00:00Z`). Milliseconds since the epoch.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64> {
    let t = s.trim();
    let bad = || {
        EmaError::Config(format!(
            "--since `{s}` is neither a duration (90s, 30m, 24h, 7d, 2w) nor a date (2024-01-01 or \
             2024-01-01T12:00:00Z)"
        ))
    };
    if let Some(unit) = t.chars().last().filter(|c| c.is_ascii_alphabetic())
        && let Ok(n) = t[..t.len() - 1].parse::<u64>()
    {
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        return Ok(now_ms - (n.saturating_mul(secs).min(i64::MAX as u64 / 1000) as i64) * 1000);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .ok_or_else(bad)?
            .and_utc()
            .timestamp_millis());
    }
    if t.contains('-') && (t.contains('T') || t.contains(' ')) {
        return import::parse_ts(t).map_err(|_| bad());
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_dates() {
        let now = 1_704_110_400_000;
        assert_eq!(parse_since("24h", now).unwrap(), now - 86_400_000);
        assert_eq!(parse_since("2w", now).unwrap(), now - 14 * 86_400_000);
        assert_eq!(parse_since("2024-01-01", now).unwrap(), 1_704_067_200_000);
        assert_eq!(
            parse_since("2024-01-01T12:00:00Z", now).unwrap(),
            1_704_110_400_000
        );
        for bad in ["soon", "5y", "", "12"] {
            assert_eq!(parse_since(bad, now).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
