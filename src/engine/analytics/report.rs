//! What the analytics say: the summary `ema analytics` prints (and the server will serve), and the recent successful
//! use per model that the fallback score reads.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::db::{AnalyticsDb, DROPPED_PREFIX};
use super::record::kind;
use crate::engine::error::Result;

/// How many models the top lists show.
pub const TOP_N: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCount {
    pub model_id: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubstituteTaken {
    pub requested: String,
    pub substitute: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FallbackFigures {
    pub requests: u64,
    pub offered: u64,
    pub taken: u64,
    pub mock_served: u64,
    /// Fallbacks taken per request (None without requests).
    pub rate: Option<f64>,
    pub substitutes: Vec<SubstituteTaken>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DownloadFigures {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// completed / (completed + failed) (None when none ended).
    pub success_rate: Option<f64>,
    pub bytes: u64,
    pub duration_p50_s: Option<f64>,
    pub duration_p95_s: Option<f64>,
    pub rate_p50_bytes_per_sec: Option<f64>,
    pub rate_p95_bytes_per_sec: Option<f64>,
    pub retries: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindCount {
    pub kind: String,
    pub count: u64,
}

/// Everything `ema analytics` reports, for a window starting at `since_ms` (all time when None).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsSummary {
    /// The database (password redacted).
    pub database: String,
    pub schema_version: i64,
    pub since_ms: Option<i64>,
    /// Events in the window.
    pub events: u64,
    pub top_by_requests: Vec<ModelCount>,
    pub top_by_bytes: Vec<ModelCount>,
    pub fallback: FallbackFigures,
    pub downloads: DownloadFigures,
    /// Health alerts by severity (`critical`, `warning`, `info`).
    pub alerts_by_kind: Vec<KindCount>,
    pub verifications_by_result: Vec<KindCount>,
    /// Events dropped under overload or while the database was away (all time: counters carry no time).
    pub dropped_total: u64,
    pub dropped_by_kind: Vec<KindCount>,
}

/// The summary of the window starting at `since_ms`.
pub async fn summary(db: &AnalyticsDb, since_ms: Option<i64>) -> Result<AnalyticsSummary> {
    let since = since_ms.unwrap_or(i64::MIN);
    let pool = db.pool();
    let count_of = |k: &'static str| async move {
        let r = sqlx::query("SELECT COUNT(*) FROM events WHERE kind = $1 AND ts_ms >= $2")
            .bind(k)
            .bind(since)
            .fetch_one(pool)
            .await
            .map_err(|e| db.err("count events", e))?;
        Ok::<u64, crate::engine::EmaError>(r.get::<i64, _>(0).max(0) as u64)
    };
    let events: i64 = sqlx::query("SELECT COUNT(*) FROM events WHERE ts_ms >= $1")
        .bind(since)
        .fetch_one(pool)
        .await
        .map_err(|e| db.err("count events", e))?
        .get(0);
    let grouped = |sql: &'static str, k: &'static str, limit: i64| async move {
        let rows = sqlx::query(sql)
            .bind(k)
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(|e| db.err("group events", e))?;
        Ok::<Vec<(String, u64)>, crate::engine::EmaError>(
            rows.iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1).max(0) as u64))
                .collect(),
        )
    };
    let by_count = "SELECT model_id, COUNT(*) AS n FROM events WHERE kind = $1 AND ts_ms >= $2 AND model_id IS NOT \
                    NULL GROUP BY model_id ORDER BY n DESC, model_id LIMIT $3";
    let by_bytes = "SELECT model_id, CAST(SUM(bytes) AS BIGINT) AS n FROM events WHERE kind = $1 AND ts_ms >= $2 \
                    AND model_id IS NOT NULL AND bytes IS NOT NULL GROUP BY model_id ORDER BY n DESC, model_id \
                    LIMIT $3";
    let by_result = "SELECT COALESCE(result, 'unknown') AS r, COUNT(*) AS n FROM events WHERE kind = $1 AND \
                     ts_ms >= $2 GROUP BY r ORDER BY n DESC, r LIMIT $3";
    let mc = |v: Vec<(String, u64)>| {
        v.into_iter()
            .map(|(model_id, count)| ModelCount { model_id, count })
            .collect::<Vec<_>>()
    };
    let kc = |v: Vec<(String, u64)>| {
        v.into_iter()
            .map(|(kind, count)| KindCount { kind, count })
            .collect::<Vec<_>>()
    };
    let top_by_requests = mc(grouped(by_count, kind::MODEL_REQUESTED, TOP_N as i64).await?);
    let top_by_bytes = mc(grouped(by_bytes, kind::DOWNLOAD_COMPLETED, TOP_N as i64).await?);

    let requests = count_of(kind::MODEL_REQUESTED).await?;
    let taken = count_of(kind::FALLBACK_TAKEN).await?;
    let subs = sqlx::query(
        "SELECT COALESCE(model_id, ''), COALESCE(substitute, ''), COUNT(*) AS n FROM events WHERE kind = $1 AND \
         ts_ms >= $2 GROUP BY model_id, substitute ORDER BY n DESC, 1, 2 LIMIT $3",
    )
    .bind(kind::FALLBACK_TAKEN)
    .bind(since)
    .bind(TOP_N as i64)
    .fetch_all(pool)
    .await
    .map_err(|e| db.err("group substitutes", e))?;
    let fallback = FallbackFigures {
        requests,
        offered: count_of(kind::FALLBACK_OFFERED).await?,
        taken,
        mock_served: count_of(kind::MOCK_SERVED).await?,
        rate: (requests > 0).then(|| taken as f64 / requests as f64),
        substitutes: subs
            .iter()
            .map(|r| SubstituteTaken {
                requested: r.get(0),
                substitute: r.get(1),
                count: r.get::<i64, _>(2).max(0) as u64,
            })
            .collect(),
    };

    let done = sqlx::query(
        "SELECT duration_ms, rate, bytes, retries FROM events WHERE kind = $1 AND ts_ms >= $2",
    )
    .bind(kind::DOWNLOAD_COMPLETED)
    .bind(since)
    .fetch_all(pool)
    .await
    .map_err(|e| db.err("read downloads", e))?;
    let mut durations: Vec<f64> = Vec::new();
    let mut rates: Vec<f64> = Vec::new();
    let (mut bytes, mut retries) = (0u64, 0u64);
    for r in &done {
        if let Some(d) = r.get::<Option<i64>, _>(0) {
            durations.push(d as f64 / 1000.0);
        }
        if let Some(x) = r.get::<Option<f64>, _>(1) {
            rates.push(x);
        }
        bytes += r.get::<Option<i64>, _>(2).unwrap_or(0).max(0) as u64;
        retries += r.get::<Option<i64>, _>(3).unwrap_or(0).max(0) as u64;
    }
    let completed = done.len() as u64;
    let failed = count_of(kind::DOWNLOAD_FAILED).await?;
    let downloads = DownloadFigures {
        started: count_of(kind::DOWNLOAD_STARTED).await?,
        completed,
        failed,
        success_rate: (completed + failed > 0)
            .then(|| completed as f64 / (completed + failed) as f64),
        bytes,
        duration_p50_s: percentile(&mut durations, 50.0),
        duration_p95_s: percentile(&mut durations, 95.0),
        rate_p50_bytes_per_sec: percentile(&mut rates, 50.0),
        rate_p95_bytes_per_sec: percentile(&mut rates, 95.0),
        retries,
    };
    let alerts_by_kind = kc(grouped(by_result, kind::HEALTH_ALERT, 100).await?);
    let verifications_by_result = kc(grouped(by_result, kind::VERIFICATION, 100).await?);
    let dropped = db.counters(DROPPED_PREFIX).await?;
    Ok(AnalyticsSummary {
        database: db.url().redacted(),
        schema_version: db.schema_version().await?,
        since_ms,
        events: events.max(0) as u64,
        top_by_requests,
        top_by_bytes,
        fallback,
        downloads,
        alerts_by_kind,
        verifications_by_result,
        dropped_total: dropped.iter().map(|(_, n)| n).sum(),
        dropped_by_kind: dropped
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(kind, count)| KindCount { kind, count })
            .collect(),
    })
}

/// Recent successful use per model since `since_ms`: models served, and substitutes served in their place
/// (`model_served` by model, `fallback_taken` by substitute). The fallback score reads this.
pub async fn successes_since(db: &AnalyticsDb, since_ms: i64) -> Result<HashMap<String, u64>> {
    let rows = sqlx::query(
        "SELECT CASE WHEN kind = $1 THEN substitute ELSE model_id END AS m, COUNT(*) FROM events WHERE \
         (kind = $1 OR kind = $2) AND ts_ms >= $3 GROUP BY m",
    )
    .bind(kind::FALLBACK_TAKEN)
    .bind(kind::MODEL_SERVED)
    .bind(since_ms)
    .fetch_all(db.pool())
    .await
    .map_err(|e| db.err("count successful use", e))?;
    let mut out = HashMap::new();
    for r in &rows {
        if let Some(m) = r.get::<Option<String>, _>(0) {
            *out.entry(m).or_insert(0) += r.get::<i64, _>(1).max(0) as u64;
        }
    }
    Ok(out)
}

/// The nearest-rank percentile of `v` (sorted in place); None when empty.
pub fn percentile(v: &mut [f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(10.0));
        assert_eq!(percentile(&mut v, 95.0), Some(19.0));
        assert_eq!(percentile(&mut [], 50.0), None);
        assert_eq!(percentile(&mut [7.0], 95.0), Some(7.0));
    }
}
