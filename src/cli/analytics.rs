//! `ema init-analytics-db`, `ema migrate-usage-data` and `ema analytics`: the analytics database from the command
//! line (create or upgrade it, import the legacy usage log, print the report).

use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::engine::analytics::{self, AnalyticsSummary, ImportReport};
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{EmaError, Result, exit};

/// `ema init-analytics-db`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// sqlite:///path or postgresql://user:password@host:5432/db (default: analytics.db_url, else analytics.db in
    /// the cache directory).
    #[arg(long, value_name = "URL", env = "EMA_ANALYTICS_DB_URL")]
    pub db_url: Option<String>,
}

/// `ema migrate-usage-data`.
#[derive(Debug, Args)]
#[command(
    after_help = "Formats read, one event per line: JSON lines ({\"timestamp\": \"2024-01-01T12:00:00Z\" or epoch \
    seconds/milliseconds, \"model_id\": \"org/name\", \"event\": \"request\", …}) and the text form \
    `2024-01-01T12:00:00Z INFO model=org/name event=request latency_ms=12`. Bad lines are counted and listed by \
    number; re-running adds nothing. Exit 0 with the counts, 2 when the source or target is unusable."
)]
pub struct MigrateUsageArgs {
    /// The legacy usage log (e.g. logs/usage.log).
    #[arg(long, value_name = "FILE")]
    pub source: PathBuf,
    /// sqlite:///path or postgresql://… (default: analytics.db_url, else analytics.db in the cache directory).
    #[arg(long, value_name = "URL", alias = "db-url")]
    pub target_db: Option<String>,
}

/// `ema analytics`.
#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    /// Only events since then: a duration back from now (90s, 30m, 24h, 7d, 2w) or a date (2024-01-01,
    /// 2024-01-01T12:00:00Z).
    #[arg(long, value_name = "DURATION|DATE")]
    pub since: Option<String>,
    /// sqlite:///path or postgresql://… (default: analytics.db_url, else analytics.db in the cache directory).
    #[arg(long, value_name = "URL", env = "EMA_ANALYTICS_DB_URL")]
    pub db_url: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))
}

/// `ema init-analytics-db`.
pub fn init_db(args: InitArgs, ctx: &Ctx) -> Result<i32> {
    let cfg = ctx.load_config()?.config;
    let url = analytics::locate(args.db_url.as_deref(), &cfg)?;
    let (before, version) = runtime()?.block_on(async {
        let existed = url.sqlite_path().map(|p| p.exists());
        let db = analytics::AnalyticsDb::open(&url).await?;
        let v = db.schema_version().await?;
        db.close().await;
        Ok::<_, EmaError>((existed, v))
    })?;
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "database": url.redacted(),
            "backend": url.backend().as_str(),
            "schema_version": version,
            "created": before == Some(false),
        }));
    } else {
        println!(
            "analytics database {} ({}): schema version {version}{}",
            url.redacted(),
            url.backend().as_str(),
            if before == Some(false) {
                " (created)"
            } else {
                ""
            }
        );
    }
    Ok(exit::OK)
}

/// `ema migrate-usage-data`.
pub fn migrate_usage(args: MigrateUsageArgs, ctx: &Ctx) -> Result<i32> {
    let cfg = ctx.load_config()?.config;
    if !args.source.is_file() {
        return Err(EmaError::Config(format!(
            "the usage log {} does not exist or is not a file; give the legacy logs/usage.log with --source",
            args.source.display()
        )));
    }
    let url = analytics::locate(args.target_db.as_deref(), &cfg)?;
    let report = runtime()?.block_on(async {
        let db = analytics::AnalyticsDb::open(&url).await?;
        let r = analytics::import_usage_log(&db, &args.source).await;
        db.close().await;
        r
    })?;
    if ctx.out.json {
        ctx.out.json(&report);
    } else {
        print_import(&report);
    }
    Ok(exit::OK)
}

fn print_import(r: &ImportReport) {
    println!("{} → {}", r.source, r.target);
    println!(
        "{} lines: {} imported, {} already present, {} bad",
        r.lines, r.imported, r.already_present, r.bad
    );
    for b in &r.bad_lines {
        println!("  line {}: {}", b.line, b.reason);
    }
    if r.bad > r.bad_lines.len() {
        println!("  … and {} more bad lines", r.bad - r.bad_lines.len());
    }
}

/// `ema analytics`.
pub fn report(args: AnalyticsArgs, ctx: &Ctx) -> Result<i32> {
    let cfg = ctx.load_config()?.config;
    let since = args
        .since
        .as_deref()
        .map(|s| analytics::parse_since(s, analytics::record::now_ms()))
        .transpose()?;
    let url = analytics::locate(args.db_url.as_deref(), &cfg)?;
    let s = runtime()?.block_on(async {
        let db = analytics::AnalyticsDb::open(&url).await?;
        let s = analytics::summary(&db, since).await;
        db.close().await;
        s
    })?;
    if ctx.out.json {
        ctx.out.json(&s);
    } else {
        print_summary(&s, analytics::enabled(&cfg));
    }
    Ok(exit::OK)
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1} %", v * 100.0))
        .unwrap_or_else(|| "—".into())
}

fn secs(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2} s")).unwrap_or_else(|| "—".into())
}

fn rate(x: Option<f64>) -> String {
    x.map(|v| format!("{}/s", human_bytes(v as u64)))
        .unwrap_or_else(|| "—".into())
}

fn print_summary(s: &AnalyticsSummary, recording: bool) {
    println!(
        "analytics database {} (schema {}){}",
        s.database,
        s.schema_version,
        if recording {
            ""
        } else {
            " — recording is off (analytics.enabled or features.usage_analytics)"
        }
    );
    match s.since_ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => println!("{} events since {}", s.events, t.to_rfc3339()),
        None => println!("{} events", s.events),
    }
    println!("top models by requests:");
    for m in &s.top_by_requests {
        println!("  {:>8}  {}", m.count, m.model_id);
    }
    if s.top_by_requests.is_empty() {
        println!("  (none)");
    }
    println!("top models by bytes downloaded:");
    for m in &s.top_by_bytes {
        println!("  {:>10}  {}", human_bytes(m.count), m.model_id);
    }
    if s.top_by_bytes.is_empty() {
        println!("  (none)");
    }
    let f = &s.fallback;
    println!(
        "fallback: {} requests, {} offered, {} taken (rate {}), {} mock served",
        f.requests,
        f.offered,
        f.taken,
        pct(f.rate),
        f.mock_served
    );
    for t in &f.substitutes {
        println!("  {:>8}  {} → {}", t.count, t.requested, t.substitute);
    }
    let d = &s.downloads;
    println!(
        "downloads: {} started, {} completed, {} failed (success {}), {} downloaded, {} retries",
        d.started,
        d.completed,
        d.failed,
        pct(d.success_rate),
        human_bytes(d.bytes),
        d.retries
    );
    println!(
        "  duration p50 {} p95 {}; rate p50 {} p95 {}",
        secs(d.duration_p50_s),
        secs(d.duration_p95_s),
        rate(d.rate_p50_bytes_per_sec),
        rate(d.rate_p95_bytes_per_sec)
    );
    let alerts: Vec<String> = s
        .alerts_by_kind
        .iter()
        .map(|k| format!("{} {}", k.count, k.kind))
        .collect();
    println!(
        "alerts: {}",
        if alerts.is_empty() {
            "none".to_string()
        } else {
            alerts.join(", ")
        }
    );
    let dropped: Vec<String> = s
        .dropped_by_kind
        .iter()
        .map(|k| format!("{} {}", k.count, k.kind))
        .collect();
    println!(
        "dropped events: {}{}",
        s.dropped_total,
        if dropped.is_empty() {
            String::new()
        } else {
            format!(" ({})", dropped.join(", "))
        }
    );
}
